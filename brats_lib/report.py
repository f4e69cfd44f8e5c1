"""Figures and tables for training runs: learning curves and validation patches with predictions.

Reads only a run directory (``metrics.csv``, checkpoints) and the preprocessing cache, so the training
notebooks stay thin and a finished run can be re-plotted at any time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from .data import PatchDataset, load_splits
from .labels import REGION_ORDER, region_hex
from .models import decode_logits
from .train import TrainConfig, load_run_model
from .viz import legend_handles, overlay_rgba


def read_history(run_dir: str | Path) -> pd.DataFrame:
    """``metrics.csv`` of a run as a DataFrame (one row per epoch)."""
    path = Path(run_dir) / "metrics.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no metrics yet (has the run finished an epoch?)")
    return pd.read_csv(path)


def plot_learning_curves(history: pd.DataFrame, title: str = "", regions: Sequence[str] = REGION_ORDER):
    """Loss (train vs validation) and validation Dice per region against the epoch.

    Returns the matplotlib Figure (two panels).
    """
    fig, (ax_loss, ax_dice) = plt.subplots(1, 2, figsize=(11, 3.8), constrained_layout=True)
    ax_loss.plot(history["epoch"], history["train_loss"], "o-", label="train")
    ax_loss.plot(history["epoch"], history["val_loss"], "s-", label="validation")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss (Dice + CE)")
    ax_loss.set_title("loss")
    ax_loss.legend()
    for region in regions:
        column = f"val_dice_{region}"
        if column in history and history[column].notna().any():
            ax_dice.plot(history["epoch"], history[column], "o-", label=region)
    ax_dice.set_xlabel("epoch")
    ax_dice.set_ylabel("validation Dice (patches)")
    ax_dice.set_ylim(0, 1)
    ax_dice.set_title("validation Dice per region")
    ax_dice.legend(ncol=3, fontsize="small")
    if title:
        fig.suptitle(title)
    return fig


def grad_norm_columns(history: pd.DataFrame) -> list[str]:
    """The ``grad_norm_stage<i>`` columns of a history, in stage order (empty when none was logged)."""
    columns = [c for c in history.columns if c.startswith("grad_norm_stage")]
    return sorted(columns, key=lambda c: int(c.removeprefix("grad_norm_stage")))


def stage_colors(n: int) -> list:
    """``n`` colours of a sequential colour-blind-safe map (viridis), stage 1 darkest."""
    return [plt.get_cmap("viridis")(x) for x in np.linspace(0.0, 0.85, max(n, 1))][:n]


def plot_dice_and_gradients(history: pd.DataFrame, title: str = "", regions: Sequence[str] = ("WT", "TC", "ET")):
    """Training Dice (dashed) beside validation Dice (solid) per region, and the gradient norm of each encoder
    stage (log scale), against the epoch.

    ``history`` is :func:`read_history` of a run; training Dice is measured on the augmented training patches
    as they were predicted during the epoch, validation Dice on the fixed validation patches, so a widening gap
    is overfitting. Returns the matplotlib Figure (two panels; the second says so when no gradient norm was
    logged).
    """
    fig, (ax_dice, ax_grad) = plt.subplots(1, 2, figsize=(7, 3.2), constrained_layout=True)
    for region in regions:
        for split, style in (("train", "--"), ("val", "-")):
            column = f"{split}_dice_{region}"
            if column in history and history[column].notna().any():
                ax_dice.plot(history["epoch"], history[column], style, marker="o", markersize=3,
                             color=region_hex(region), label=f"{region} {'train' if split == 'train' else 'val.'}")
    ax_dice.set_xlabel("epoch")
    ax_dice.set_ylabel("Dice (patches)")
    ax_dice.set_ylim(0, 1)
    ax_dice.set_title("training (dashed) vs validation Dice", fontsize="medium")
    ax_dice.legend(ncol=2, fontsize="x-small")
    columns = grad_norm_columns(history)
    for column, color in zip(columns, stage_colors(len(columns))):
        ax_grad.plot(history["epoch"], history[column], "o-", markersize=3, color=color,
                     label=f"stage {column.removeprefix('grad_norm_stage')}")
    if columns:
        ax_grad.set_yscale("log")
        ax_grad.legend(fontsize="x-small", title="encoder", title_fontsize="x-small")
    else:
        ax_grad.text(0.5, 0.5, "no gradient norms logged\n(grad_norm_every = 0)", ha="center", va="center",
                     transform=ax_grad.transAxes)
    ax_grad.set_xlabel("epoch")
    ax_grad.set_ylabel("gradient L2 norm (log)")
    ax_grad.set_title("gradient norm per encoder stage", fontsize="medium")
    if title:
        fig.suptitle(title)
    return fig


def final_scores(history: pd.DataFrame) -> pd.DataFrame:
    """The last and the best validation Dice per region, as a small table."""
    rows = []
    for region in REGION_ORDER:
        column = f"val_dice_{region}"
        if column in history:
            rows.append({"region": region, "last": history[column].iloc[-1], "best": history[column].max()})
    return pd.DataFrame(rows).set_index("region")


@torch.no_grad()
def validation_predictions(run_dir: str | Path, n_patches: int = 3, checkpoint: str = "best.pt",
                           device: str = "cpu", seed: int = 123):
    """Tumour-centred validation patches with the run's prediction.

    Returns:
        list of ``(image (4, P, P, P) float32, label (P, P, P) uint8, prediction (P, P, P) uint8)`` numpy
        triples, on the run's preprocessed grid.
    """
    model, config = load_run_model(run_dir, checkpoint, device)
    splits = load_splits(Path(config.splits_file or Path(config.cache_dir) / "splits.json"))
    case_ids = splits.get("val") or splits["train"][:1]
    dataset = PatchDataset(config.cache_dir, case_ids, config.patch_size, oversample_foreground=1.0,
                           samples_per_epoch=n_patches, seed=seed)
    out = []
    for i in range(n_patches):
        image, label = dataset[i]
        logits = model(image[None].to(device)).float()
        pred = decode_logits(logits, config.output_mode)[0].cpu().numpy()
        out.append((image.numpy(), label.numpy().astype(np.uint8), pred))
    return out


def plot_validation_predictions(samples, modality_channel: int = 3, title: str = ""):
    """One row per patch: image, ground truth overlay, prediction overlay, at the slice with most tumour.

    ``samples`` come from :func:`validation_predictions`; channel 3 is FLAIR (t2f).
    """
    fig, axes = plt.subplots(len(samples), 3, figsize=(9, 3 * len(samples)), squeeze=False,
                             constrained_layout=True)
    for row, (image, label, pred) in zip(axes, samples):
        z = int(np.argmax((label > 0).sum(axis=(0, 1)))) if label.any() else label.shape[2] // 2
        base = image[modality_channel, :, :, z].T
        for ax, overlay, name in zip(row, (None, label, pred), ("FLAIR (z-score)", "ground truth", "prediction")):
            if overlay is None:
                ax.imshow(base, cmap="gray", origin="lower")
            else:
                ax.imshow(overlay_rgba(base, overlay[:, :, z].T, alpha=0.5), origin="lower")
            ax.set_title(name)
            ax.set_xlabel("x (voxels)")
            ax.set_ylabel("y (voxels)")
    fig.legend(handles=legend_handles(), loc="lower center", ncol=4, bbox_to_anchor=(0.5, -0.02))
    if title:
        fig.suptitle(title)
    return fig


def load_config(run_dir: str | Path) -> TrainConfig:
    """The TrainConfig a run was started with."""
    return TrainConfig.load(Path(run_dir) / "config.json")
