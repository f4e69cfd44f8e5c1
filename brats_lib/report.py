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


# ------------------------------------------------------------------------------------------------ sweeps

#: Okabe–Ito colours for runs compared in one figure (not labels or regions, which keep the house palette).
RUN_COLORS: tuple[str, ...] = ("#000000", "#56B4E9", "#CC79A7", "#009E73", "#E69F00", "#0072B2")
RUN_STYLES: tuple[str, ...] = ("o-", "s--", "^-.", "D:", "v-", "P--")


def plot_ablation(ablation: pd.DataFrame, regions: Sequence[str] = ("WT", "TC", "ET"),
                  xlabel: str = "lesion-wise Dice (mean over test cases)", title: str = ""):
    """Horizontal bars of each arm's Dice per region (house region colours), arms top to bottom in order.

    ``ablation`` is :func:`brats_lib.sweep.ablation_table` (index: arm, a column per region). Returns the Figure.
    """
    regions = [r for r in regions if r in ablation]
    n = len(ablation)
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.45 * n * max(1, len(regions)) / 2), constrained_layout=True)
    height = 0.8 / max(1, len(regions))
    y = np.arange(n)
    for k, region in enumerate(regions):
        ax.barh(y + (k - (len(regions) - 1) / 2) * height, ablation[region].fillna(0).to_numpy(), height,
                color=region_hex(region), edgecolor="black", linewidth=0.3, label=region)
    ax.set_yticks(y, [str(i) for i in ablation.index])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("arm (each adds one change)")
    ax.legend(title="region", fontsize="small", loc="lower right")
    ax.set_title(title or "ablation: from the student's set-up to the project's")
    return fig


def plot_stage_gradients(gradients: pd.DataFrame, names: Sequence[str] | None = None, title: str = ""):
    """Gradient norm per encoder stage for a few runs: the mean over epochs against the stage (left), and the
    ratio of the first stage's norm to the last stage's against the epoch (right). Vanishing gradients would
    show as a first stage orders of magnitude below the deep ones, and a ratio falling with training.

    ``gradients`` is :func:`brats_lib.sweep.stage_gradients` (``name``, ``epoch``, ``stage``, ``grad_norm``).
    Returns the Figure (two panels).
    """
    names = list(names) if names is not None else list(dict.fromkeys(gradients["name"]))
    fig, (ax_stage, ax_ratio) = plt.subplots(1, 2, figsize=(7, 3.2), constrained_layout=True)
    for i, name in enumerate(names):
        runs = gradients[gradients["name"] == name]
        if runs.empty:
            continue
        color, style = RUN_COLORS[i % len(RUN_COLORS)], RUN_STYLES[i % len(RUN_STYLES)]
        by_stage = runs.groupby("stage")["grad_norm"].mean()
        ax_stage.plot(by_stage.index, by_stage.to_numpy(), style, color=color, label=name)
        wide = runs.pivot(index="epoch", columns="stage", values="grad_norm")
        ax_ratio.plot(wide.index, wide[wide.columns.min()] / wide[wide.columns.max()], style, color=color,
                      label=name)
    ax_stage.set_yscale("log")
    ax_stage.set_xlabel("encoder stage (1 = full resolution)")
    ax_stage.set_ylabel("gradient L2 norm (log)")
    ax_stage.set_title("mean over epochs", fontsize="medium")
    ax_stage.xaxis.get_major_locator().set_params(integer=True)
    ax_ratio.axhline(1.0, color="grey", linewidth=0.8)
    ax_ratio.set_yscale("log")
    ax_ratio.set_xlabel("epoch")
    ax_ratio.set_ylabel("stage 1 / deepest stage (log)")
    ax_ratio.set_title("first vs deepest stage", fontsize="medium")
    ax_stage.legend(fontsize="small")
    fig.suptitle(title or "gradient norm per encoder stage")
    return fig


def plot_score_vs_cost(table: pd.DataFrame, score: str = "best_val_dice_mean_WT_TC_ET", cost: str = "forward_GFLOPs",
                       label: str = "name", xlabel: str = "forward GFLOPs per patch",
                       ylabel: str = "best validation Dice (mean WT, TC, ET)", title: str = ""):
    """A sweep's runs as points: ``score`` against ``cost``, each point labelled. Returns the Figure."""
    fig, ax = plt.subplots(figsize=(7, 3.6), constrained_layout=True)
    ax.scatter(table[cost], table[score], color=RUN_COLORS[1], edgecolor="black", zorder=2, label="run")
    for _, row in table.iterrows():
        ax.annotate(str(row[label]), (row[cost], row[score]), fontsize="x-small", xytext=(3, 3),
                    textcoords="offset points")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize="small")
    ax.set_title(title or "score against cost")
    return fig
