"""Figures, tables and sentences for the report: learning curves, validation patches with predictions, the
training log as a table, and the "What this shows" sentences each chapter ends with.

Reads only a run directory (``metrics.csv``, checkpoints) and the preprocessing cache, so the training
notebooks stay thin and a finished run can be re-plotted at any time. The sentence helpers (``*_findings``)
take numbers and return Markdown, so a chapter's interpretation is written from its own run's results and
stays true when the data change; every colour comes from the house palette of :mod:`brats_lib.labels`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from .data import PatchDataset, load_splits
from .labels import LABEL_NAMES, REGION_COLORS, REGION_ORDER, region_hex
from .models import decode_logits
from .train import SELECTION_REGIONS, TrainConfig, load_run_model
from .viz import legend_handles, overlay_rgba


def read_history(run_dir: str | Path) -> pd.DataFrame:
    """``metrics.csv`` of a run as a DataFrame (one row per epoch)."""
    path = Path(run_dir) / "metrics.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no metrics yet (has the run finished an epoch?)")
    return pd.read_csv(path)


def plot_learning_curves(history: pd.DataFrame, title: str = "", regions: Sequence[str] = REGION_ORDER):
    """Loss (train vs validation) and validation Dice per region (house region colours) against the epoch.

    Returns the matplotlib Figure (two panels, 7 in wide: the book's column).
    """
    fig, (ax_loss, ax_dice) = plt.subplots(1, 2, figsize=(7.0, 3.2), constrained_layout=True)
    ax_loss.plot(history["epoch"], history["train_loss"], "o-", color="0.15", label="train")
    ax_loss.plot(history["epoch"], history["val_loss"], "s--", color="0.55", label="validation")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss (Dice + CE)")
    ax_loss.set_title("loss", fontsize=10)
    ax_loss.legend(fontsize="small")
    for region in regions:
        column = f"val_dice_{region}"
        if column in history and history[column].notna().any():
            ax_dice.plot(history["epoch"], history[column], "o-", color=REGION_COLORS[region], label=region,
                         markeredgecolor="black", markeredgewidth=0.5, markersize=4)
    ax_dice.set_xlabel("epoch")
    ax_dice.set_ylabel("validation Dice (patches)")
    ax_dice.set_ylim(0, 1)
    ax_dice.set_title("validation Dice per region", fontsize=10)
    ax_dice.legend(ncol=3, fontsize="x-small")
    for ax in (ax_loss, ax_dice):
        ax.tick_params(labelsize=8)
        if len(history) <= 12:
            ax.set_xticks(list(history["epoch"]))
    if title:
        fig.suptitle(title, fontsize=11)
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
    fig, axes = plt.subplots(len(samples), 3, figsize=(6.8, 2.3 * len(samples) + 0.6), squeeze=False,
                             constrained_layout=True)
    for row, (image, label, pred) in zip(axes, samples):
        z = int(np.argmax((label > 0).sum(axis=(0, 1)))) if label.any() else label.shape[2] // 2
        base = image[modality_channel, :, :, z].T
        for ax, overlay, name in zip(row, (None, label, pred), ("FLAIR (z-score)", "ground truth", "prediction")):
            if overlay is None:
                ax.imshow(base, cmap="gray", origin="lower")
            else:
                ax.imshow(overlay_rgba(base, overlay[:, :, z].T, alpha=0.5), origin="lower")
            ax.set_title(name, fontsize=9)
            ax.set_xlabel("x (voxels)", fontsize=8)
            ax.set_ylabel("y (voxels)", fontsize=8)
            ax.tick_params(labelsize=7)
    fig.legend(handles=legend_handles(), loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def load_config(run_dir: str | Path) -> TrainConfig:
    """The TrainConfig a run was started with."""
    return TrainConfig.load(Path(run_dir) / "config.json")


# ------------------------------------------------------------------------------ tables and sentences


def plural(n: int, noun: str, plural_form: str | None = None) -> str:
    """``"1 case"``, ``"3 cases"`` (``plural_form`` for irregular nouns)."""
    return f"{n} {noun if n == 1 else (plural_form or noun + 's')}"


def training_log(history: pd.DataFrame, decimals: int = 3) -> pd.DataFrame:
    """The epoch log of a run as a compact table: index ``epoch``; columns ``train loss``, ``val loss``, the
    validation Dice per region (``WT`` … ``RC``) and ``s`` (seconds the epoch took)."""
    columns = {"train_loss": "train loss", "val_loss": "val loss"}
    columns.update({f"val_dice_{r}": r for r in REGION_ORDER})
    columns["seconds"] = "s"
    present = {k: v for k, v in columns.items() if k in history}
    out = history.set_index("epoch")[list(present)].rename(columns=present)
    out = out.round(decimals)
    if "s" in out:
        out["s"] = out["s"].round(1)
    return out


def confusion_matrix(samples, labels: Sequence[int] = (0, 1, 2, 3, 4)) -> pd.DataFrame:
    """Voxel counts of ground truth (rows) × prediction (columns) over ``(image, label, prediction)`` samples
    (e.g. :func:`validation_predictions`); rows and columns named by :data:`~brats_lib.labels.LABEL_NAMES`.
    The counting is :func:`brats_lib.metrics.label_confusion`."""
    from .metrics.confusion import label_confusion

    labels = list(labels)
    counts = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for _, label, prediction in samples:
        counts += label_confusion(label, prediction, labels)
    names = [LABEL_NAMES.get(v, str(v)) for v in labels]
    return pd.DataFrame(counts, index=pd.Index(names, name="truth"), columns=pd.Index(names, name="prediction"))


def most_confused(confusion: pd.DataFrame, min_voxels: int = 1) -> tuple[str, str, float] | None:
    """The tumour label most often predicted as another label: ``(truth, predicted as, fraction of the truth
    label's voxels)``, the largest off-diagonal fraction over foreground rows with at least ``min_voxels``
    voxels; ``None`` when no foreground voxel is mislabelled."""
    best = None
    for truth in confusion.index:
        if truth == LABEL_NAMES[0]:
            continue
        row = confusion.loc[truth]
        total = int(row.sum())
        if total < min_voxels:
            continue
        for predicted, count in row.items():
            if predicted == truth or count == 0:
                continue
            fraction = float(count) / total
            if best is None or fraction > best[2]:
                best = (str(truth), str(predicted), fraction)
    return best


def training_findings(history: pd.DataFrame, minutes: float, confusion: pd.DataFrame | None = None,
                      regions: Sequence[str] = REGION_ORDER) -> str:
    """Two or three sentences on a training run, from its own numbers.

    Args:
        history: the run's ``metrics.csv`` (:func:`read_history`).
        minutes: wall time of the training call.
        confusion: optional :func:`confusion_matrix` of the best checkpoint on validation patches.
    Returns:
        Markdown: the best validation Dice (WT and the weakest region, with the epoch), whether the validation
        loss was still falling, and the most frequent confusion between labels.
    """
    n = len(history)
    dice = {r: history[f"val_dice_{r}"] for r in regions if f"val_dice_{r}" in history
            and history[f"val_dice_{r}"].notna().any()}
    sentences = []
    if dice:
        # the epoch of best.pt: training selects it by the mean validation Dice over SELECTION_REGIONS
        selecting = [r for r in SELECTION_REGIONS if r in dice] or list(dice)
        mean = pd.concat([dice[r] for r in selecting], axis=1).mean(axis=1).reset_index(drop=True)
        best = int(mean.idxmax())
        row = {r: float(v.iloc[best]) for r, v in dice.items()}
        weakest = min(row, key=row.get)
        strongest = max(row, key=row.get)
        sentences.append(
            f"In {minutes:.1f} min ({plural(n, 'epoch')}), the best epoch (the checkpoint kept, by mean "
            f"validation Dice on patches over {', '.join(selecting)}) was epoch {int(history['epoch'].iloc[best])}: "
            f"{strongest} reached {row[strongest]:.3f} and {weakest} only {row[weakest]:.3f}.")
    if n == 1:
        sentences.append("With a single epoch this run shows that the training loop works, not what the model "
                         "can learn.")
    else:
        val = history["val_loss"].astype(float)
        lowest = int(val.idxmin())
        if lowest == n - 1:
            sentences.append("The validation loss was still falling at the last epoch: the run stopped before "
                             "it converged, and longer training should raise these scores.")
        else:
            sentences.append(f"The validation loss was lowest at epoch {int(history['epoch'].iloc[lowest])} of "
                             f"{n} and did not improve afterwards.")
    if confusion is not None:
        pair = most_confused(confusion)
        if pair is not None:
            truth, predicted, fraction = pair
            as_what = "background" if predicted == LABEL_NAMES[0] else predicted
            sentences.append(f"On the validation patches the largest confusion is {truth} predicted as "
                             f"{as_what} ({100 * fraction:.0f} % of the {truth} voxels).")
    return " ".join(sentences)


def roundtrip_findings(dice: Mapping[str, float], factor: int, exact_full: bool, n_cases: int,
                       seconds: float, mib: float) -> str:
    """Two or three sentences on the preprocessing cache: its cost and the Dice ceiling its resolution sets.

    Args:
        dice: label name → Dice of the cache round trip (cache grid → original grid) against the original.
        factor: the resampling factor of the cache; exact_full: whether the factor-1 round trip was exact.
        n_cases, seconds, mib: cases in the cache, wall time of the cache build, its size on disk.
    """
    sentences = [f"The cache of {plural(n_cases, 'case')} took {seconds:.1f} s to build (or check) and "
                 f"{mib:.1f} MiB on disk."]
    if dice:
        worst = min(dice, key=dice.get)
        if factor > 1 and dice[worst] < 1:
            sentences.append(
                f"Resampling by {factor} costs detail: the round trip back to the original grid keeps a Dice "
                f"of only {dice[worst]:.3f} for {worst}, which is a ceiling "
                f"for any model trained on this cache and scored on the original grid.")
        else:
            sentences.append("The round trip through the cache reproduces every label exactly, so preprocessing "
                             "sets no ceiling on the scores.")
    sentences.append("At full resolution (factor 1) the round trip is exact, voxel for voxel." if exact_full
                     else "Even at factor 1 the round trip is not exact: a bug to fix before trusting any score.")
    return " ".join(sentences)


def augmentation_findings(n_samples: int, seconds: float, device: str, replay_equal: bool,
                          labels_kept: bool) -> str:
    """Two or three sentences on the augmentation run: its speed, reproducibility and label integrity."""
    sentences = [f"One call augmented a batch of {plural(n_samples, 'sample')} in {seconds:.2f} s on {device}, "
                 "each sample with its own parameters."]
    sentences.append("Replaying the sampled parameters gave an identical batch, so every augmented patch can be "
                     "reproduced from its parameters alone." if replay_equal else
                     "Replaying the sampled parameters did NOT give the same batch: the appliers are not "
                     "deterministic here.")
    sentences.append("The augmented label maps hold only label values of the original (nearest-neighbour "
                     "resampling never blends labels)." if labels_kept else
                     "The augmented label maps hold label values absent from the original: labels were blended.")
    return " ".join(sentences)


def dims(value) -> str:
    """``(182, 218, 182)`` → ``"182×218×182"``; ``(1.0, 1.0, 1.0)`` → ``"1×1×1"``; other values as text."""
    if isinstance(value, (tuple, list, np.ndarray)):
        return "×".join(f"{float(v):g}" for v in value)
    return str(value)


def cases_display(cases: pd.DataFrame) -> pd.DataFrame:
    """:func:`brats_lib.eda.cases_table` for reading: indexed by case, short column names, grids and voxel sizes
    as ``182×218×182`` and ``1×1×1`` (the voxel volume in mL left out: it follows from the voxel size), so that
    the table fits the book's column."""
    out = cases.drop(columns=[c for c in ("voxel_ml",) if c in cases]).copy()
    for column in ("shape", "spacing_mm"):
        if column in out:
            out[column] = out[column].map(dims)
    out = out.rename(columns={"has_label": "labelled", "shape": "grid (voxels)", "spacing_mm": "voxel (mm)"})
    return out.set_index("case_id") if "case_id" in out else out


def dataset_findings(cases: pd.DataFrame, labels_present: Sequence[str], labels_absent: Sequence[str],
                     case_id: str) -> str:
    """Two or three sentences on a dataset's cases table (:func:`brats_lib.eda.cases_table`) and the labels of
    the case shown."""
    n = len(cases)
    patients = cases["patient"].nunique() if "patient" in cases else n
    shapes = cases["shape"].map(dims).unique() if "shape" in cases else []
    spacings = cases["spacing_mm"].map(dims).unique() if "spacing_mm" in cases else []
    sentences = [f"The dataset holds {plural(n, 'case')} from {plural(patients, 'patient')}"
                 + (f", all on one {shapes[0]} grid" if len(shapes) == 1 else f", on {len(shapes)} different grids")
                 + (f" of {spacings[0]} mm voxels." if len(spacings) == 1 else ".")]
    unlabelled = int((~cases["has_label"].astype(bool)).sum()) if "has_label" in cases else 0
    if unlabelled:
        sentences.append(f"{plural(unlabelled, 'case')} ha{'s' if unlabelled == 1 else 've'} no label map and "
                         "can only be predicted, not scored.")
    shown = f"The case shown, {case_id}, contains {', '.join(labels_present) or 'no label'}"
    shown += (f" but no {', '.join(labels_absent)}: post-treatment cases often lack a sub-region, and a region "
              "absent from both truth and prediction scores 1 by the challenge's rule." if labels_absent else
              ": all four labels.")
    sentences.append(shown)
    return " ".join(sentences)


def eda_findings(volume_summary: pd.DataFrame, intensities: pd.DataFrame | None = None,
                 reference: str = "brain (no label)") -> str:
    """Two or three sentences on the exploratory analysis, from its own tables.

    Args:
        volume_summary: :func:`brats_lib.eda.volume_summary` (index region; ``cases``, ``present``,
            ``median_ml``, ``min_ml``, ``max_ml``).
        intensities: :func:`brats_lib.eda.dataset_tables` ``["intensities"]`` (``modality``, ``region``,
            ``zscore``), with ``reference`` the region of normal brain tissue.
    """
    sentences = []
    present = volume_summary[volume_summary["present"] > 0]
    if not present.empty:
        n = int(volume_summary["cases"].max())
        largest = present["median_ml"].idxmax()
        smallest = present["median_ml"].idxmin()
        sentences.append(
            f"Over {plural(n, 'labelled case')}, {largest} is the largest region (median "
            f"{present.loc[largest, 'median_ml']:.1f} mL, range {present.loc[largest, 'min_ml']:.1f}–"
            f"{present.loc[largest, 'max_ml']:.1f}) and {smallest} the smallest (median "
            f"{present.loc[smallest, 'median_ml']:.1f} mL).")
        missing = [f"{r} in {int(row.cases - row.present)}" for r, row in volume_summary.iterrows()
                   if row.present < row.cases]
        if missing:
            sentences.append(f"Some regions are missing from some cases ({', '.join(missing)} of {n}): a model "
                             "must learn to predict nothing there, and the challenge scores a region absent from "
                             "both truth and prediction as 1.")
        else:
            sentences.append("Every region is present in every case.")
    if intensities is not None and not intensities.empty and reference in set(intensities["region"]):
        medians = intensities.groupby(["region", "modality"])["zscore"].median().unstack("modality")
        parts = []
        for region in ("ET", "SNFH", "NETC", "RC"):
            if region in medians.index:
                contrast = (medians.loc[region] - medians.loc[reference]).dropna()
                if not contrast.empty:
                    modality = contrast.abs().idxmax()
                    parts.append(f"{region} on {modality} ({contrast[modality]:+.1f} SD)")
        if parts:
            sentences.append("Against normal brain, each region differs most on one sequence (median z-score "
                             "difference): " + ", ".join(parts) + ".")
    return " ".join(sentences)


# ------------------------------------------------------------------------------------- evaluation

#: Mark after a score that comes from the challenge's both-empty rule (region absent from truth and prediction).
BOTH_EMPTY_MARK = "†"


def both_empty(scores: pd.DataFrame) -> pd.Series:
    """Boolean per row of a lesion-wise score table (:func:`brats_lib.metrics.evaluate_folders` columns): the
    region is absent from the ground truth (``GT_Complete_Volume`` 0) and no predicted lesion was counted
    (``Num_FP`` 0), so its Dice of 1 and HD95 of 0 come from the both-empty rule, not from a segmentation."""
    return (scores["GT_Complete_Volume"].astype(float) == 0) & (scores["Num_FP"].astype(float) == 0)


def scores_display(scores: pd.DataFrame, names: Mapping[str, str] | None = None, decimals: int = 3,
                   dice: str = "LesionWise_Score_Dice", hd95: str = "LesionWise_Score_HD95") -> pd.DataFrame:
    """The per-case score table for reading: short column names, case ids without the ``BraTS-GLI-`` prefix,
    and scores from the both-empty rule marked with :data:`BOTH_EMPTY_MARK`."""
    names = dict(names or {})
    empty = both_empty(scores)
    out = pd.DataFrame({
        "model": scores["model"].map(lambda m: names.get(m, m)) if "model" in scores else "",
        "case": scores["case"].astype(str).str.replace(r"^BraTS-GLI-", "", regex=True),
        "region": scores["region"],
        "TP": scores["Num_TP"].astype(int), "FP": scores["Num_FP"].astype(int), "FN": scores["Num_FN"].astype(int),
        "Dice": [f"{v:.{decimals}f}" + (f" {BOTH_EMPTY_MARK}" if e else "") for v, e in zip(scores[dice], empty)],
        "HD95 (mm)": [f"{v:.1f}" + (f" {BOTH_EMPTY_MARK}" if e else "") for v, e in zip(scores[hd95], empty)],
    })
    return out.reset_index(drop=True)


def evaluation_findings(scores: pd.DataFrame, names: Mapping[str, str] | None = None,
                        confusion: pd.DataFrame | None = None, confusion_model: str | None = None,
                        ceiling: Mapping[str, float] | None = None, dice: str = "LesionWise_Score_Dice") -> str:
    """Two or three sentences on a model comparison, from its own per-case scores.

    Args:
        scores: tidy lesion-wise table with ``model``, ``case``, ``region``, ``dice`` and the columns
            :func:`both_empty` reads.
        confusion: optional :func:`confusion_matrix` of ``confusion_model``'s predictions on the same cases.
        ceiling: optional label → Dice of the preprocessing round trip (the resolution's ceiling).
    """
    names = dict(names or {})
    n = scores["case"].nunique()
    empty = both_empty(scores)
    means = scores.groupby("model", sort=False)[dice].mean().sort_values(ascending=False)
    scored = scores[~empty].groupby("model", sort=False)[dice].mean().reindex(means.index)
    best = means.index[0]
    sentences = [f"On {plural(n, 'test case')}, {names.get(best, best)} has the highest mean lesion-wise Dice over "
                 f"the regions ({means.iloc[0]:.3f}"
                 + (f"; {scored.iloc[0]:.3f} without the both-empty scores" if empty.any() and np.isfinite(
                     scored.iloc[0]) else "") + ")"
                 + (f", ahead of {', '.join(f'{names.get(m, m)} ({v:.3f})' for m, v in means.iloc[1:].items())}."
                    if len(means) > 1 else ".")]
    if empty.any():
        regions = sorted(set(scores.loc[empty, "region"]), key=list(REGION_ORDER).index)
        sentences.append(f"{plural(int(empty.sum()), 'score')} of 1 ({BOTH_EMPTY_MARK}) come from the both-empty rule "
                         f"({', '.join(regions)} absent from truth and prediction), not from a segmentation.")
    if n < 10:
        sentences.append(f"With {plural(n, 'case')} the differences between models are anecdotes, not estimates.")
    if confusion is not None:
        pair = most_confused(confusion)
        if pair is not None:
            truth, predicted, fraction = pair
            who = names.get(confusion_model, confusion_model) if confusion_model else "the model"
            as_what = "background" if predicted == LABEL_NAMES[0] else predicted
            sentences.append(f"The largest confusion of {who} is {truth} predicted as {as_what} "
                             f"({100 * fraction:.0f} % of the {truth} voxels).")
    if ceiling:
        worst = min(ceiling, key=ceiling.get)
        if ceiling[worst] < 1:
            sentences.append(f"The preprocessing resolution alone limits {worst} to a Dice of about "
                             f"{ceiling[worst]:.3f} (round trip through the cache).")
    return " ".join(sentences)


def label_dice(truth: np.ndarray, other: np.ndarray, labels: Sequence[int] = (1, 2, 3, 4)) -> dict[str, float]:
    """Voxel-wise Dice per label (named by :data:`~brats_lib.labels.LABEL_NAMES`) of two label maps of one
    shape, for the labels present in ``truth``; e.g. the preprocessing round trip against the original."""
    truth, other = np.asarray(truth), np.asarray(other)
    if truth.shape != other.shape:
        raise ValueError(f"label maps differ in shape: {truth.shape} and {other.shape}")
    out = {}
    for value in labels:
        a, b = truth == value, other == value
        size = int(a.sum()) + int(b.sum())
        if a.any():
            out[LABEL_NAMES[value]] = 2.0 * int(np.logical_and(a, b).sum()) / size
    return out


def summary_by_metric(summary: pd.DataFrame, metric: str, names: Mapping[str, str] | None = None,
                      decimals: int = 3) -> pd.DataFrame:
    """One metric of :func:`brats_lib.analysis.summarise_models` as a narrow table: index region, one column per
    model, cells ``mean ± std (median)`` over the ``n`` cases (``mean (median)`` for one case)."""
    names = dict(names or {})
    part = summary[summary["metric"] == metric]
    if part.empty:
        raise ValueError(f"no rows for metric {metric!r}")

    def cell(row) -> str:
        if not np.isfinite(row["mean"]):
            return "—"
        spread = f" ± {row['std']:.{decimals}f}" if np.isfinite(row["std"]) else ""
        return f"{row['mean']:.{decimals}f}{spread} ({row['median']:.{decimals}f})"

    table = part.assign(cell=part.apply(cell, axis=1), model=part["model"].map(lambda m: names.get(m, m)))
    out = table.pivot(index="region", columns="model", values="cell")
    out = out.reindex(index=list(dict.fromkeys(part["region"])),
                      columns=list(dict.fromkeys(table["model"])))
    out.columns.name = None
    return out


def case_dice_table(scores: pd.DataFrame, names: Mapping[str, str] | None = None, decimals: int = 3,
                    dice: str = "LesionWise_Score_Dice") -> pd.DataFrame:
    """Per-case lesion-wise Dice for a few cases (instead of a box plot): index (model, case), one column per
    region, scores from the both-empty rule marked with :data:`BOTH_EMPTY_MARK`."""
    names = dict(names or {})
    marked = scores.assign(
        cell=[f"{v:.{decimals}f}" + (f" {BOTH_EMPTY_MARK}" if e else "") for v, e in zip(scores[dice], both_empty(scores))],
        model=scores["model"].map(lambda m: names.get(m, m)),
        case=scores["case"].astype(str).str.replace(r"^BraTS-GLI-", "", regex=True))
    regions = [r for r in REGION_ORDER if r in set(scores["region"])]
    out = marked.pivot_table(index=["model", "case"], columns="region", values="cell", aggfunc="first", sort=False)
    out = out.reindex(columns=regions)
    out.columns.name = None
    return out


#: Column names of the student project's models in :func:`student_reference_table` (its "U-Net" had no skips).
STUDENT_MODELS: Mapping[str, str] = {"unet3d": "its “U-Net” (no skip connections)",
                                     "resunet3d": "its Residual U-Net"}
#: How the student project's numbers are cited in the book.
STUDENT_CITATION = ("the student project's report (seed of this project): voxel-wise Dice on its own validation "
                    "set of real BraTS 2024 cases")


def student_reference_table(published: Mapping[str, Mapping[str, float]] | None = None,
                            decimals: int = 3) -> pd.DataFrame:
    """The student project's reported numbers, apart from this project's tables: index region (those it reported),
    one column per model named for what it was (:data:`STUDENT_MODELS`), values its voxel-wise Dice."""
    if published is None:
        from .analysis import STUDENT_PUBLISHED as published
    regions = [r for r in REGION_ORDER if any(r in values for values in published.values())]
    out = pd.DataFrame({STUDENT_MODELS.get(m, m): [values.get(r, np.nan) for r in regions]
                        for m, values in published.items()}, index=pd.Index(regions, name="region"))
    out.columns.name = "voxel-wise Dice, " + "student project's validation set"
    return out.round(decimals)


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


def study_findings(ablation: pd.DataFrame, per_stage: pd.DataFrame, plain: str, residual: str,
                   score: str = "mean") -> str:
    """Two or three sentences on an ablation sweep, from its own numbers.

    Args:
        ablation: one row per arm (index = arm name) with a ``score`` column (e.g. ``sweep.ablation_table``).
        per_stage: one row per run (index = run name), one column per encoder stage (first → deepest), holding
            the mean gradient norm of that stage.
        plain, residual: the two runs of ``per_stage`` compared (same depth, plain vs residual blocks).
    Returns:
        Markdown: the best and worst arm by ``score``, the n of arms, and whether the plain network's first
        stage receives a smaller gradient than its deepest one (vanishing gradients at the early stages) or not.
    """
    sentences = []
    scores = ablation[score].astype(float).dropna() if score in ablation else pd.Series(dtype=float)
    if len(scores):
        best, worst = scores.idxmax(), scores.idxmin()
        sentences.append(f"Of {plural(len(scores), 'arm')} in this run, `{best}` scored highest ({score} "
                         f"{scores[best]:.3f}) and `{worst}` lowest ({scores[worst]:.3f}).")
        if len(scores) < 10:
            sentences.append(f"With {plural(len(scores), 'arm')} trained this briefly, differences of a few "
                             "hundredths are within the noise of training.")
    stages = [c for c in per_stage.columns if str(c).startswith("stage ") and "/" not in str(c)]
    if plain in per_stage.index and len(stages) >= 2:
        first, last = float(per_stage.loc[plain, stages[0]]), float(per_stage.loc[plain, stages[-1]])
        if np.isfinite(first) and np.isfinite(last) and last > 0:
            verdict = ("smaller than" if first < last else "larger than")
            text = (f"In the plain network `{plain}` the first encoder stage received a gradient norm {verdict} its "
                    f"deepest stage's ({first:.3g} against {last:.3g})")
            if first >= last:
                text += ": no sign of gradients vanishing on their way back to the early stages"
            else:
                text += ": the early stages receive the weaker gradient, as the vanishing-gradient story predicts"
            if residual in per_stage.index:
                r_first = float(per_stage.loc[residual, stages[0]])
                text += f"; the residual network `{residual}`'s first stage received {r_first:.3g}"
            sentences.append(text + ".")
    return " ".join(sentences) if sentences else "This run recorded no scores to interpret."
