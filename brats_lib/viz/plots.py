"""Figures of cases and score tables: overlay montages, a case's modalities, label volumes, intensities,
per-region scores and best/worst overlays. Every figure has a title, axes in their units and a legend naming
the labels, in the house colours of :mod:`brats_lib.labels`.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Mapping, Sequence

import numpy as np

from ..io import MODALITIES, LoadedCase
from ..labels import REGION_COLORS, REGION_ORDER
from .slices import (MODALITY_NAMES, _axis, _modality_channel, display_slice, informative_slices,
                     intensity_window, largest_label_slice, legend_handles, normalize, overlay_rgba,
                     slice_extent, slice_spacing)

def plot_overlay_montage(loaded: LoadedCase, modality: str = "t2f", plane: str = "axial", n_slices: int = 6,
                         ncols: int = 3, alpha: float = 0.45, slices: Sequence[int] | None = None,
                         panel_size: float = 2.6):
    """Several slices of one case with the label overlaid, a legend naming the labels and axes in mm."""
    import matplotlib.pyplot as plt

    image = loaded.image[_modality_channel(modality)]
    label = loaded.label
    if slices is None:
        slices = informative_slices(label, plane, n_slices, image)
    window = intensity_window(image)
    pixel_mm = slice_spacing(loaded.geometry.spacing, plane)
    ncols = min(ncols, len(slices))
    nrows = -(-len(slices) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_size * ncols, panel_size * nrows + 0.9),
                             squeeze=False, sharex=True, sharey=True, layout="constrained")
    for ax in axes.flat[len(slices):]:
        ax.set_visible(False)
    axis_mm = loaded.geometry.spacing[_axis(plane)]
    for ax, index in zip(axes.flat, slices):
        img2d = display_slice(image, plane, index)
        lab2d = display_slice(label, plane, index) if label is not None else None
        ax.imshow(overlay_rgba(img2d, lab2d, alpha, window), extent=slice_extent(img2d.shape, pixel_mm),
                  interpolation="nearest")
        ax.set_title(f"{plane} {index} ({index * axis_mm:.0f} mm)", fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes[-1, :]:
        ax.set_xlabel("mm")
    for ax in axes[:, 0]:
        ax.set_ylabel("mm")
    fig.suptitle(f"{loaded.case.case_id}: {MODALITY_NAMES.get(modality, modality)} with labels", fontsize=11)
    if label is not None:
        fig.legend(handles=legend_handles(), loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    return fig


def plot_case_overlay(loaded: LoadedCase, plane: str = "axial", index: int | None = None, alpha: float = 0.45,
                      panel_size: float = 2.6):
    """The four modalities of one case at one slice (default: most labelled) plus the label overlay."""
    import matplotlib.pyplot as plt

    label = loaded.label
    if index is None:
        index = largest_label_slice(label, plane)
        if index is None:
            index = loaded.image.shape[1 + _axis(plane)] // 2
    pixel_mm = slice_spacing(loaded.geometry.spacing, plane)
    n = len(MODALITIES) + (label is not None)
    fig, axes = plt.subplots(1, n, figsize=(panel_size * n, panel_size + 1.0), sharey=True,
                             layout="constrained")
    for ax, (channel, modality) in zip(axes, enumerate(MODALITIES)):
        img2d = display_slice(loaded.image[channel], plane, index)
        ax.imshow(normalize(img2d, intensity_window(loaded.image[channel])), cmap="gray", vmin=0, vmax=1,
                  extent=slice_extent(img2d.shape, pixel_mm), interpolation="nearest")
        ax.set_title(MODALITY_NAMES[modality], fontsize=9)
        ax.set_xlabel("mm")
    if label is not None:
        t2f = loaded.image[_modality_channel("t2f")]
        img2d = display_slice(t2f, plane, index)
        ax = axes[-1]
        ax.imshow(overlay_rgba(img2d, display_slice(label, plane, index), alpha, intensity_window(t2f)),
                  extent=slice_extent(img2d.shape, pixel_mm), interpolation="nearest")
        ax.set_title("T2-FLAIR + labels", fontsize=9)
        ax.set_xlabel("mm")
        fig.legend(handles=legend_handles(), loc="outside lower center", ncols=4, fontsize=8, frameon=False)
    axes[0].set_ylabel("mm")
    fig.suptitle(f"{loaded.case.case_id}, {plane} slice {index}", fontsize=11)
    return fig


@contextlib.contextmanager
def _quiet_seaborn():
    """Silence the deprecation warnings seaborn 0.13 triggers in newer matplotlib (not ours to fix)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="seaborn")
        warnings.filterwarnings("ignore", message=".*vert: bool was deprecated.*")
        yield


#: Fewest cases for which a box (quartiles) is drawn; below it each case is a dot and the median a bar.
MIN_CASES_FOR_BOXES = 10


def plot_label_volumes(volumes, ax=None, log: bool = False):
    """Volume (mL) per region of :func:`brats_lib.eda.label_volumes_table`: every case a dot, with boxes
    (quartiles) from :data:`MIN_CASES_FOR_BOXES` cases and a median bar below that (quartiles of a handful of
    cases mislead)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    order = [r for r in REGION_ORDER if r in set(volumes["region"])]
    palette = {r: REGION_COLORS.get(r, (0.5, 0.5, 0.5)) for r in order}
    n_cases = volumes["case_id"].nunique()
    boxes = n_cases >= MIN_CASES_FOR_BOXES
    if boxes:
        with _quiet_seaborn():
            sns.boxplot(data=volumes, x="region", y="volume_ml", hue="region", order=order, palette=palette,
                        showfliers=False, boxprops={"alpha": 0.45}, legend=False, ax=ax)
        sns.stripplot(data=volumes, x="region", y="volume_ml", order=order, color="black", size=4, jitter=0.15,
                      ax=ax)
    else:
        sns.stripplot(data=volumes, x="region", y="volume_ml", hue="region", order=order, palette=palette,
                      size=6, jitter=0.15, edgecolor="black", linewidth=0.5, legend=False, ax=ax)
        medians = volumes.groupby("region")["volume_ml"].median()
        ax.hlines([medians[r] for r in order], [i - 0.3 for i in range(len(order))],
                  [i + 0.3 for i in range(len(order))], colors="black", linewidth=1.5, label="median")
        ax.legend(loc="upper right", fontsize=9, frameon=False)
    if log:
        ax.set_yscale("symlog", linthresh=1.0)
    ax.set_xlabel("region")
    ax.set_ylabel("volume (mL)")
    how = "boxes: quartiles" if boxes else f"each dot a case, bar the median; boxes from {MIN_CASES_FOR_BOXES} cases"
    ax.set_title(f"Label volume per region ({n_cases} cases; {how})", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return ax


def plot_intensity_distributions(intensities, value: str = "zscore", ax=None):
    """Box plots of sampled voxel intensities per modality (x) and region (colour)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    from ..eda import BRAIN_REGION

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")  # the book's column
    present = set(intensities["region"])
    hue_order = [r for r in (BRAIN_REGION, *REGION_ORDER) if r in present]
    palette = {r: REGION_COLORS.get(r, (0.8, 0.8, 0.8)) for r in hue_order}
    order = [m for m in MODALITIES if m in set(intensities["modality"])]
    with _quiet_seaborn():
        sns.boxplot(data=intensities, x="modality", y=value, hue="region", order=order, hue_order=hue_order,
                    palette=palette, showfliers=False, linewidth=0.8, ax=ax)
    ax.set_xticks(range(len(order)), [f"{m}\n{MODALITY_NAMES.get(m, m)}" for m in order], fontsize=8)
    ax.set_xlabel("modality")
    ax.set_ylabel("intensity (z-score within brain)" if value == "zscore" else "intensity (a.u., raw)")
    ax.set_title(f"Voxel intensities per modality and region "
                 f"({intensities['case_id'].nunique()} cases, sampled voxels)", fontsize=10)
    ax.axhline(0.0, color="black", linewidth=0.6, alpha=0.4)
    ax.legend(title="region", fontsize=8, title_fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="y", alpha=0.3)
    return ax


# ------------------------------------------------------------------------------------------- evaluation

#: Metric column of the evaluation table → axis label (Dice is unitless, distances are in mm).
METRIC_LABELS: Mapping[str, str] = {
    "LesionWise_Score_Dice": "lesion-wise Dice (unitless)",
    "LesionWise_Score_HD95": "lesion-wise HD95 (mm)",
    "Legacy_Dice": "Dice (unitless)",
    "Legacy_HD95": "HD95 (mm)",
}


def plot_region_scores(table, metrics: Sequence[str] = ("LesionWise_Score_Dice", "LesionWise_Score_HD95"),
                       models: Sequence[str] | None = None, names: Mapping[str, str] | None = None,
                       regions: Sequence[str] | None = None, panel_size: tuple[float, float] = (7.0, 3.6)):
    """Box + strip plots of per-case scores per region (x) and model (colour), one panel per metric.

    Args:
        table: tidy evaluation table (columns ``case``, ``region``, the ``metrics``; ``model`` for several
            models), e.g. :func:`brats_lib.analysis.combine_tables` of :func:`brats_lib.metrics.evaluate_folders`.
        models: model order (default: order of appearance); names: model → legend label.
        regions: region order (default :data:`~brats_lib.labels.REGION_ORDER`, those present).
    Returns:
        the figure; its axes are labelled with :data:`METRIC_LABELS` (Dice unitless, HD95 in mm).
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    data = table if "model" in table else table.assign(model="model")
    models = list(models) if models is not None else list(dict.fromkeys(data["model"]))
    names = dict(names or {})
    data = data[data["model"].isin(models)].assign(model=lambda d: d["model"].map(lambda m: names.get(m, m)))
    hue_order = [names.get(m, m) for m in models]
    present = set(data["region"])
    order = [r for r in (regions or REGION_ORDER) if r in present]
    palette = dict(zip(hue_order, sns.color_palette("colorblind", len(hue_order))))
    n_cases = data["case"].nunique()
    fig, axes = plt.subplots(len(metrics), 1, figsize=(panel_size[0], panel_size[1] * len(metrics)),
                             squeeze=False, layout="constrained")
    for ax, metric in zip(axes[:, 0], metrics):
        values = data.assign(**{metric: data[metric].astype(float)})
        with _quiet_seaborn():
            sns.boxplot(data=values, x="region", y=metric, hue="model", order=order, hue_order=hue_order,
                        palette=palette, showfliers=False, boxprops={"alpha": 0.45}, linewidth=0.8, ax=ax)
            sns.stripplot(data=values, x="region", y=metric, hue="model", order=order, hue_order=hue_order,
                          palette=palette, dodge=True, size=4, jitter=0.12, edgecolor="black", linewidth=0.4,
                          legend=False, ax=ax)
        label = METRIC_LABELS.get(metric, metric)
        ax.set_xlabel("region")
        ax.set_ylabel(label)
        ax.set_title(f"{label[0].upper() + label[1:]} per region ({n_cases} case{'s' if n_cases != 1 else ''})",
                     fontsize=10)
        if "Dice" in metric:
            ax.set_ylim(-0.05, 1.05)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(title="model", fontsize=8, title_fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def plot_best_worst_overlays(panels: Sequence[tuple[str, LoadedCase, np.ndarray]], plane: str = "axial",
                             modality: str = "t2f", alpha: float = 0.45, panel_size: float = 2.6):
    """One row per case: the image (FLAIR by default), the ground truth and the prediction overlaid.

    Args:
        panels: ``(row title, loaded case with its ground-truth label, predicted label map)`` per row, e.g. the
            best and the worst case of :func:`brats_lib.analysis.best_worst_cases`; the prediction is on the
            case's grid (as :func:`brats_lib.inference.predict_case` writes it).
        plane: slice plane; each row shows the slice with the most ground-truth voxels (else predicted ones).
    Returns:
        the figure (rows × 3 panels, axes in mm, a legend naming the labels).
    """
    import matplotlib.pyplot as plt

    if not panels:
        raise ValueError("no case to show")
    channel = _modality_channel(modality)
    titles = (MODALITY_NAMES.get(modality, modality), "ground truth", "prediction")
    fig, axes = plt.subplots(len(panels), 3, figsize=(panel_size * 3, panel_size * len(panels) + 1.0),
                             squeeze=False, layout="constrained")
    for row, (title, loaded, prediction) in zip(axes, panels):
        image = loaded.image[channel]
        gt = loaded.label if loaded.label is not None else np.zeros(image.shape, np.uint8)
        prediction = np.asarray(prediction)
        if prediction.shape != image.shape:
            raise ValueError(f"{title}: prediction shape {prediction.shape} differs from image {image.shape}")
        index = largest_label_slice(gt, plane)
        if index is None:
            index = largest_label_slice(prediction, plane)
        if index is None:
            index = image.shape[_axis(plane)] // 2
        window = intensity_window(image)
        pixel_mm = slice_spacing(loaded.geometry.spacing, plane)
        img2d = display_slice(image, plane, index)
        extent = slice_extent(img2d.shape, pixel_mm)
        for ax, lab, name in zip(row, (None, gt, prediction), titles):
            lab2d = display_slice(lab, plane, index) if lab is not None else None
            ax.imshow(overlay_rgba(img2d, lab2d, alpha, window), extent=extent, interpolation="nearest")
            ax.set_title(name, fontsize=9)
            ax.set_xlabel("mm")
            ax.set_ylabel("mm")
            ax.tick_params(labelsize=7)
        row[0].set_title(f"{title}\n{loaded.case.case_id}, {plane} {index}\n{titles[0]}", fontsize=9)
    fig.legend(handles=legend_handles(), loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    return fig


__all__ = [
    "METRIC_LABELS", "plot_best_worst_overlays", "plot_case_overlay", "plot_intensity_distributions",
    "plot_label_volumes", "plot_overlay_montage", "plot_region_scores",
]
