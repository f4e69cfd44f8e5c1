"""Figures of the error analysis (:mod:`brats_lib.analysis`): error maps, confusion, error projections and
frequency, boundary distances, volume agreement, lesion detection and change over time.

Each function takes analysis results (tables, arrays) and draws them; none computes an analysis itself.
Every figure has a title, axis labels with units and a legend or colour bar naming what is drawn; colours
are the house palette of :mod:`brats_lib.labels` (``ERROR_COLORS`` for TP/FP/FN, ``REGION_COLORS`` for regions)
and colour maps are perceptually uniform and readable with red–green colour blindness (``viridis``, ``cividis``;
``PuOr`` for signed distances). Figures are at most 7 in wide (the book's column).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ..labels import ERROR_COLORS, LABEL_NAMES, LABELS_2024, REGION_COLORS, REGION_ORDER
from .slices import PLANES, display_slice, intensity_window, normalize, slice_extent, slice_spacing

#: Colour of pixels that are both FN and FP along a projection ray (Okabe–Ito reddish purple).
BOTH_COLOR = (0.8, 0.475, 0.655)
#: Diverging, colour-blind-safe map of signed distances (purple inside the truth, orange outside).
SIGNED_CMAP = "PuOr_r"
#: Sequential colour-blind-safe maps: frequencies over anatomy, counts in tables.
FREQUENCY_CMAP = "viridis"
COUNT_CMAP = "cividis"
_PLANE_ORDER = ("sagittal", "coronal", "axial")
_MODEL_MARKERS = ("o", "s", "^", "D", "v", "P")


def _patch(color, label):
    from matplotlib.patches import Patch

    return Patch(facecolor=color, edgecolor="black", linewidth=0.5, label=label)


def error_legend_handles(include_tn: bool = False):
    """Patches naming the error-map colours (TP, FP, FN)."""
    names = {"TP": "TP: true positive", "FP": "FP: false positive (over-segmentation)",
             "FN": "FN: false negative (missed)"}
    return [_patch(ERROR_COLORS[k], v) for k, v in names.items()]


def error_rgba(image2d: np.ndarray, error2d: np.ndarray, alpha: float = 0.6,
               window: tuple[float, float] | None = None) -> np.ndarray:
    """(H, W, 4) RGBA: grey image with TP / FP / FN (codes 1 / 2 / 3 of
    :func:`brats_lib.analysis.error_map`) blended in the :data:`~brats_lib.labels.ERROR_COLORS`."""
    grey = normalize(image2d, window)
    rgba = np.empty(grey.shape + (4,), dtype=np.float32)
    rgba[..., :3] = grey[..., None]
    rgba[..., 3] = 1.0
    for code, kind in ((1, "TP"), (2, "FP"), (3, "FN")):
        mask = error2d == code
        if np.any(mask):
            rgba[mask, :3] = (1 - alpha) * rgba[mask, :3] + alpha * np.asarray(ERROR_COLORS[kind], np.float32)
    return rgba


def plot_error_slice(image: np.ndarray, error: np.ndarray, spacing, plane: str = "axial",
                     index: int | None = None, region: str = "WT", case_id: str = "", alpha: float = 0.6, ax=None):
    """One slice with a region's error map (TP grey, FP orange, FN sky blue) over the image, axes in mm.

    Args:
        image: (X, Y, Z) image (e.g. FLAIR); error: :func:`brats_lib.analysis.error_map` of the same grid.
        index: slice index (default: the slice with the most FP + FN voxels).
    """
    import matplotlib.pyplot as plt

    axis = PLANES[plane]
    if index is None:
        other = tuple(a for a in range(3) if a != axis)
        index = int(np.argmax(np.count_nonzero(error >= 2, axis=other)))
    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 4.6), layout="constrained")
    img2d = display_slice(image, plane, index)
    ax.imshow(error_rgba(img2d, display_slice(error, plane, index), alpha, intensity_window(image)),
              extent=slice_extent(img2d.shape, slice_spacing(spacing, plane)), interpolation="nearest")
    ax.set_xlabel("mm")
    ax.set_ylabel("mm")
    ax.set_title(f"{case_id} {region} errors, {plane} slice {index}".strip(), fontsize=10)
    ax.legend(handles=error_legend_handles(), loc="upper center", bbox_to_anchor=(0.5, -0.12), fontsize=7,
              frameon=False, ncols=1)
    return ax.figure


def plot_confusion(matrix: np.ndarray, voxel_ml: float | None = None, title: str = "Label confusion", ax=None):
    """The 5×5 label confusion (rows truth, columns prediction) as an annotated heatmap, in voxels or mL
    (``voxel_ml`` given); colour on a log scale so that small off-diagonal cells stay visible."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    values = np.asarray(matrix, dtype=np.float64) * (voxel_ml if voxel_ml is not None else 1.0)
    unit = "mL" if voxel_ml is not None else "voxels"
    if ax is None:
        _, ax = plt.subplots(figsize=(5.4, 4.4), layout="constrained")
    positive = values[values > 0]
    norm = LogNorm(vmin=positive.min(), vmax=positive.max()) if positive.size and positive.max() > positive.min() \
        else None
    shown = np.where(values > 0, values, np.nan)
    im = ax.imshow(shown, cmap=COUNT_CMAP, norm=norm)
    names = [LABEL_NAMES[v] for v in LABELS_2024]
    ax.set_xticks(range(5), names)
    ax.set_yticks(range(5), names)
    ax.set_xlabel("predicted label")
    ax.set_ylabel("true label")
    for (t, p), v in np.ndenumerate(values):
        text = f"{v:.2f}" if unit == "mL" else f"{int(v):d}"
        ax.text(p, t, text, ha="center", va="center", fontsize=7,
                color="black" if (norm is not None and v > 0 and norm(v) > 0.6) else "white" if v > 0 else "grey")
    ax.figure.colorbar(im, ax=ax, label=f"{unit} (log scale)", shrink=0.85)
    ax.set_title(f"{title} ({unit}; background–background dominates)", fontsize=10)
    return ax.figure


def plot_error_projections(projections: Mapping, anatomy: Mapping[str, np.ndarray], spacing,
                           region: str = "WT", case_id: str = "", panel_size: float = 2.25):
    """Per-patient error MIPs of one region in the three planes over the case's anatomy.

    Args:
        projections: :func:`brats_lib.analysis.error_projections` of the case.
        anatomy: ``{plane: 2D backdrop}`` (:func:`brats_lib.analysis.anatomy_projection`).
        spacing: voxel size (mm).
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(panel_size * 3, panel_size + 1.3), layout="constrained")
    for ax, plane in zip(axes, _PLANE_ORDER):
        backdrop = np.rot90(anatomy[plane])
        fn, fp = (np.rot90(projections[region][plane][k]) for k in ("FN", "FP"))
        rgba = np.empty(backdrop.shape + (4,), np.float32)
        rgba[..., :3] = normalize(backdrop, intensity_window(backdrop))[..., None] * 0.8
        rgba[..., 3] = 1.0
        for mask, color in ((fn & ~fp, ERROR_COLORS["FN"]), (fp & ~fn, ERROR_COLORS["FP"]), (fn & fp, BOTH_COLOR)):
            rgba[mask, :3] = color
        ax.imshow(rgba, extent=slice_extent(backdrop.shape, slice_spacing(spacing, plane)), interpolation="nearest")
        ax.set_title(f"{plane} MIP", fontsize=9)
        ax.set_xlabel("mm")
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("mm")
    fig.suptitle(f"{case_id}: where {region} is missed (FN) or over-called (FP), projected".strip(), fontsize=10)
    fig.legend(handles=[_patch(ERROR_COLORS["FN"], "FN somewhere along the ray"),
                        _patch(ERROR_COLORS["FP"], "FP somewhere along the ray"),
                        _patch(BOTH_COLOR, "both FN and FP along the ray")],
               loc="outside lower center", ncols=3, fontsize=7, frameon=False)
    return fig


def plot_error_frequency(frequency, region: str, template: np.ndarray, spacing=(1.0, 1.0, 1.0),
                         title: str | None = None, panel_size: float = 2.25):
    """Cross-patient error frequency of one region over the MNI152 template: rows FN and FP, columns the three
    planes, each pixel the highest share of cases with that error along the ray (0 transparent).

    Args:
        frequency: a :class:`brats_lib.analysis.ErrorFrequency` with cases added.
        template: (X, Y, Z) template on the same grid (:func:`brats_lib.analysis.mni_template`).
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(panel_size * 3, panel_size * 2 + 1.0), layout="constrained")
    image = None
    for row, kind in zip(axes, ("FN", "FP")):
        for ax, plane in zip(row, _PLANE_ORDER):
            axis = PLANES[plane]
            backdrop = np.rot90(template.max(axis=axis))
            extent = slice_extent(backdrop.shape, slice_spacing(spacing, plane))
            ax.imshow(normalize(backdrop, intensity_window(backdrop)), cmap="gray", extent=extent,
                      interpolation="nearest")
            share = np.rot90(frequency.projection(region, kind, plane)) * 100.0
            image = ax.imshow(np.ma.masked_equal(share, 0.0), cmap=FREQUENCY_CMAP, vmin=0, vmax=100,
                              extent=extent, interpolation="nearest", alpha=0.9)
            ax.set_title(f"{kind}, {plane}", fontsize=9)
            ax.tick_params(labelsize=7)
            ax.set_xlabel("mm")
        row[0].set_ylabel("mm")
    fig.colorbar(image, ax=axes, label="cases with the error along the ray (%)", shrink=0.8)
    fig.suptitle(title or f"{region}: error frequency over {frequency.n_cases} case(s), MNI152 template",
                 fontsize=10)
    return fig


def _models(table, models):
    if "model" not in table:
        return [None]
    return list(models) if models is not None else list(dict.fromkeys(table["model"]))


def _model_colors(names):
    import seaborn as sns

    return dict(zip(names, sns.color_palette("colorblind", max(len(names), 1))))


def plot_boundary_distributions(histogram, regions: Sequence[str] | None = None,
                                models: Sequence[str] | None = None, names: Mapping[str, str] | None = None,
                                panel_size: tuple[float, float] = (3.4, 2.3)):
    """Per region, the area-weighted distribution of the signed boundary distance of each model (the
    ``histogram`` table of :func:`brats_lib.analysis.analyse_predictions`): share of predicted-boundary area
    per 0.5 mm bin; left of 0 the prediction lies inside the truth (under-segmentation), right of it outside."""
    import matplotlib.pyplot as plt

    names = dict(names or {})
    models = _models(histogram, models)
    present = [r for r in (regions or REGION_ORDER) if r in set(histogram["region"])]
    ncols = 2
    nrows = -(-len(present) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_size[0] * ncols, panel_size[1] * nrows + 0.8),
                             squeeze=False, sharex=True, layout="constrained")
    colors = _model_colors(models)
    for ax in axes.flat[len(present):]:
        ax.set_visible(False)
    for ax, region in zip(axes.flat, present):
        for model in models:
            part = histogram[(histogram["region"] == region) & ((histogram["model"] == model) if model else True)]
            total = part["area_mm2"].sum()
            centres = (part["bin_lo_mm"] + part["bin_hi_mm"]) / 2
            share = part["area_mm2"] / total * 100 if total > 0 else part["area_mm2"] * np.nan
            ax.step(centres, share, where="mid", color=colors[model], label=names.get(model, model), linewidth=1.2)
        ax.axvline(0.0, color="black", linewidth=0.6)
        ax.set_title(region, fontsize=9, color="black")
        ax.set_ylabel("boundary area (%)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("signed distance (mm); < 0 inside the truth", fontsize=8)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if any(m is not None for m in models):
        fig.legend(handles, labels, title="model", loc="outside lower center", ncols=len(models), fontsize=8)
    fig.suptitle("Signed distance of the predicted boundary to the true one (area-weighted, all cases)",
                 fontsize=10)
    return fig


def plot_boundary_stats(boundaries, metrics: Sequence[str] = ("bias_mm", "nsd_2mm"),
                        models: Sequence[str] | None = None, names: Mapping[str, str] | None = None,
                        regions: Sequence[str] | None = None):
    """Per-case boundary statistics per region (x) and model (colour): by default the bias (mean signed
    distance, mm; < 0 under-segmentation) and the normalised surface Dice at 2 mm."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    from .plots import _quiet_seaborn

    labels = {"bias_mm": "bias: mean signed distance (mm)", "mean_abs_mm": "mean |distance| (mm)",
              "nsd_1mm": "surface Dice at 1 mm (unitless)", "nsd_2mm": "surface Dice at 2 mm (unitless)",
              "p5_mm": "5th percentile (mm)", "p95_mm": "95th percentile (mm)", "p50_mm": "median (mm)"}
    names = dict(names or {})
    data = (boundaries if "model" in boundaries else boundaries.assign(model="model")).reset_index(drop=True)
    models = _models(data, models)
    data = data[data["model"].isin(models)].assign(model=lambda d: d["model"].map(lambda m: names.get(m, m)))
    hue_order = [names.get(m, m) for m in models]
    order = [r for r in (regions or REGION_ORDER) if r in set(data["region"])]
    palette = _model_colors(hue_order)
    fig, axes = plt.subplots(len(metrics), 1, figsize=(7.0, 2.9 * len(metrics)), squeeze=False,
                             layout="constrained")
    for ax, metric in zip(axes[:, 0], metrics):
        values = data.assign(**{metric: data[metric].astype(float)})
        with _quiet_seaborn():
            sns.boxplot(data=values, x="region", y=metric, hue="model", order=order, hue_order=hue_order,
                        palette=palette, showfliers=False, boxprops={"alpha": 0.45}, linewidth=0.8, ax=ax)
            sns.stripplot(data=values, x="region", y=metric, hue="model", order=order, hue_order=hue_order,
                          palette=palette, dodge=True, size=4, jitter=0.12, edgecolor="black", linewidth=0.4,
                          legend=False, ax=ax)
        if metric == "bias_mm":
            ax.axhline(0.0, color="black", linewidth=0.6)
        ax.set_xlabel("region")
        ax.set_ylabel(labels.get(metric, metric), fontsize=8)
        ax.set_title(f"{labels.get(metric, metric)} per case", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(title="model", fontsize=7, title_fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def plot_boundary_slice(image: np.ndarray, signed: np.ndarray, gt_mask: np.ndarray, spacing,
                        plane: str = "axial", index: int | None = None, region: str = "WT", case_id: str = "",
                        limit_mm: float = 5.0, margin_mm: float | None = 20.0, ax=None):
    """One slice: the predicted boundary coloured by its signed distance to the truth (purple inside the
    truth = under-segmentation, orange outside = over-segmentation), the true boundary as a black line.

    The image is dimmed (at most mid-grey) so that the near-white colour of a boundary on the truth stays
    visible over bright tumour, and the view is cropped to both boundaries plus ``margin_mm``.

    Args:
        signed: :func:`brats_lib.analysis.signed_boundary_map` (NaN off the predicted boundary).
        gt_mask: the true region (its outline is drawn).
        limit_mm: colour range ±limit (mm).
        margin_mm: margin around the two boundaries in the cropped view; ``None`` shows the whole slice.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    axis = PLANES[plane]
    if index is None:
        other = tuple(a for a in range(3) if a != axis)
        index = int(np.argmax(np.count_nonzero(~np.isnan(signed), axis=other) + np.count_nonzero(gt_mask, axis=other)))
    if ax is None:
        _, ax = plt.subplots(figsize=(4.8, 4.4), layout="constrained")
    img2d = display_slice(image, plane, index)
    extent = slice_extent(img2d.shape, slice_spacing(spacing, plane))
    ax.imshow(0.55 * normalize(img2d, intensity_window(image)), cmap="gray", vmin=0.0, vmax=1.0, extent=extent,
              interpolation="nearest")
    shown = display_slice(signed, plane, index)
    im = ax.imshow(np.ma.masked_invalid(shown), cmap=SIGNED_CMAP, vmin=-limit_mm, vmax=limit_mm, extent=extent,
                   interpolation="nearest")
    truth = display_slice(gt_mask.astype(np.float32), plane, index)
    rows, cols = truth.shape
    row_mm, col_mm = slice_spacing(spacing, plane)
    if truth.any():
        x = (np.arange(cols) + 0.5) * col_mm
        y = (rows - np.arange(rows) - 0.5) * row_mm
        ax.contour(x, y, truth, levels=[0.5], colors="black", linewidths=0.8)
    drawn = np.argwhere((truth > 0) | ~np.isnan(shown))
    if margin_mm is not None and len(drawn):
        (r0, c0), (r1, c1) = drawn.min(axis=0), drawn.max(axis=0) + 1
        ax.set_xlim(max(0.0, c0 * col_mm - margin_mm), min(cols * col_mm, c1 * col_mm + margin_mm))
        ax.set_ylim(max(0.0, (rows - r1) * row_mm - margin_mm), min(rows * row_mm, (rows - r0) * row_mm + margin_mm))
    ax.figure.colorbar(im, ax=ax, label="signed distance (mm): < 0 inside, > 0 outside the truth", shrink=0.8)
    ax.legend(handles=[Line2D([], [], color="black", linewidth=0.8, label=f"true {region} boundary")],
              loc="lower left", fontsize=7)
    ax.set_xlabel("mm")
    ax.set_ylabel("mm")
    ax.set_title(f"{case_id}\npredicted {region} boundary, {plane} slice {index}".strip(), fontsize=9)
    return ax.figure


def plot_volume_agreement(agreement, bland_altman=None, regions: Sequence[str] | None = None,
                          models: Sequence[str] | None = None, names: Mapping[str, str] | None = None):
    """Predicted against true volume (left, with the identity line) and the Bland–Altman plot (right:
    difference against mean, with each region's bias and 95 % limits of agreement when ``bland_altman`` is
    given); colour = region (house palette), marker = model."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    names = dict(names or {})
    models = _models(agreement, models)
    present = [r for r in (regions or REGION_ORDER) if r in set(agreement["region"])]
    fig, (left, right) = plt.subplots(1, 2, figsize=(7.0, 3.6), layout="constrained")
    for m_index, model in enumerate(models):
        part = agreement if model is None else agreement[agreement["model"] == model]
        for region in present:
            rows = part[part["region"] == region]
            kwargs = dict(color=REGION_COLORS[region], marker=_MODEL_MARKERS[m_index % len(_MODEL_MARKERS)],
                          s=22, edgecolor="black", linewidth=0.4)
            left.scatter(rows["gt_ml"], rows["pred_ml"], **kwargs)
            right.scatter(rows["mean_ml"], rows["diff_ml"], **kwargs)
    top = float(np.nanmax(agreement[["gt_ml", "pred_ml"]].to_numpy(float))) if len(agreement) else 1.0
    top = max(top, 1e-3) * 1.05
    left.plot([0, top], [0, top], color="black", linewidth=0.8, linestyle="--")
    left.set_xlim(0, top)
    left.set_ylim(0, top)
    left.set_xlabel("true volume (mL)")
    left.set_ylabel("predicted volume (mL)")
    left.set_title("Predicted vs true volume", fontsize=10)
    right.axhline(0.0, color="black", linewidth=0.6)
    if bland_altman is not None:
        for _, row in bland_altman[bland_altman["region"].isin(present)].iterrows():
            color = REGION_COLORS[row["region"]]
            right.axhline(row["bias_ml"], color=color, linewidth=1.0)
            for limit in ("loa_low_ml", "loa_high_ml"):
                if np.isfinite(row[limit]):
                    right.axhline(row[limit], color=color, linewidth=0.8, linestyle=":")
    right.set_xlabel("mean of predicted and true (mL)")
    right.set_ylabel("predicted − true (mL)")
    right.set_title("Bland–Altman (solid: bias, dotted: 95 % limits)", fontsize=10)
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    handles = [Line2D([], [], linestyle="", marker="o", color=REGION_COLORS[r], markeredgecolor="black", label=r)
               for r in present]
    handles += [Line2D([], [], linestyle="", marker=_MODEL_MARKERS[i % len(_MODEL_MARKERS)], color="grey",
                       markeredgecolor="black", label=names.get(m, m)) for i, m in enumerate(models) if m is not None]
    handles.append(Line2D([], [], color="black", linestyle="--", label="identity (pred = true)"))
    fig.legend(handles=handles, loc="outside lower center", ncols=5, fontsize=7, frameon=False)
    return fig


def plot_lesion_detection(rate, lesions, names: Mapping[str, str] | None = None, region: str | None = None):
    """Left: share of true lesions detected per lesion-volume bin (:func:`brats_lib.analysis.detection_rate`),
    per region (colour) and model (marker). Right: where the missed true lesions (FN, sky blue) and the
    false-positive components (FP, orange) are, seen from above (world x, y in mm), area ∝ volume."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from ..analysis.lesions import FALSE_POSITIVE, TRUE_LESION

    names = dict(names or {})
    fig, (left, right) = plt.subplots(1, 2, figsize=(7.0, 3.6), layout="constrained")
    models = _models(rate, None)
    regions = [r for r in REGION_ORDER if r in set(rate["region"]) and (region is None or r == region)]
    for m_index, model in enumerate(models):
        part = rate if model is None else rate[rate["model"] == model]
        for r in regions:
            rows = part[(part["region"] == r) & (part["n"] > 0)]
            lo = np.maximum(rows["bin_lo_ml"].to_numpy(float), 1e-3)
            hi = rows["bin_hi_ml"].to_numpy(float)
            centres = np.sqrt(lo * np.where(np.isfinite(hi), hi, lo * 4))  # geometric bin centre
            left.plot(centres, rows["rate"] * 100, color=REGION_COLORS[r],
                      marker=_MODEL_MARKERS[m_index % len(_MODEL_MARKERS)], markeredgecolor="black",
                      linewidth=0.8, markersize=5)
    left.set_xscale("log")
    from matplotlib.ticker import LogFormatterSciNotation, NullFormatter

    left.xaxis.set_major_formatter(LogFormatterSciNotation())
    left.xaxis.set_minor_formatter(NullFormatter())  # no overlapping minor labels
    left.set_ylim(-5, 105)
    left.set_xlabel("true lesion volume (mL, bin centre, log scale)")
    left.set_ylabel("lesions detected (%)")
    left.set_title("Detection rate against lesion volume", fontsize=10)
    left.grid(alpha=0.3)
    sel = lesions if region is None else lesions[lesions["region"] == region]
    missed = sel[(sel["kind"] == TRUE_LESION) & ~sel["detected"].astype(bool)]
    false = sel[sel["kind"] == FALSE_POSITIVE]
    for rows, kind in ((missed, "FN"), (false, "FP")):
        if len(rows):
            right.scatter(rows["x_mm"], rows["y_mm"], s=10 + 20 * np.sqrt(rows["volume_ml"].astype(float)),
                          color=ERROR_COLORS[kind], edgecolor="black", linewidth=0.4, alpha=0.8)
    right.set_xlabel("x (mm, world)")
    right.set_ylabel("y (mm, world)")
    right.set_title(f"{len(missed)} missed lesion(s), {len(false)} false positive(s)", fontsize=10)
    right.grid(alpha=0.3)
    right.set_aspect("equal", adjustable="datalim")
    handles = [Line2D([], [], linestyle="", marker="o", color=REGION_COLORS[r], markeredgecolor="black", label=r)
               for r in regions]
    handles += [Line2D([], [], linestyle="", marker=_MODEL_MARKERS[i % len(_MODEL_MARKERS)], color="grey",
                       markeredgecolor="black", label=names.get(m, m)) for i, m in enumerate(models) if m is not None]
    handles += [_patch(ERROR_COLORS["FN"], "missed true lesion"), _patch(ERROR_COLORS["FP"], "false positive")]
    fig.legend(handles=handles, loc="outside lower center", ncols=5, fontsize=7, frameon=False)
    return fig


def plot_longitudinal(series, changes=None, regions: Sequence[str] = ("WT", "TC", "SNFH"),
                      models: Sequence[str] | None = None, names: Mapping[str, str] | None = None):
    """Volume per region across each patient's timepoints: truth (black, solid) and each model (colour,
    dashed), one panel per patient and region; the title says whether each model got the direction of change
    right (✓) or not (✗) when ``changes`` (:func:`brats_lib.analysis.change_table`) is given."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    names = dict(names or {})
    patients = list(dict.fromkeys(series["patient"]))
    regions = [r for r in regions if r in set(series["region"])]
    models = _models(series, models)
    colors = _model_colors(models)
    nrows, ncols = max(len(patients), 1), max(len(regions), 1)
    fig, axes = plt.subplots(nrows, ncols, figsize=(min(7.0, 2.3 * ncols), 2.2 * nrows + 0.9), squeeze=False,
                             layout="constrained")
    for row, patient in zip(axes, patients):
        for ax, region in zip(row, regions):
            part = series[(series["patient"] == patient) & (series["region"] == region)]
            truth = part.drop_duplicates("timepoint")
            ax.plot(truth["timepoint"], truth["gt_ml"], color="black", marker="o", linewidth=1.4)
            marks = []
            for model in models:
                rows = part if model is None else part[part["model"] == model]
                ax.plot(rows["timepoint"], rows["pred_ml"], color=colors[model], marker="s", linestyle="--",
                        linewidth=1.0)
                if changes is not None and len(changes):
                    c = changes[(changes["patient"] == patient) & (changes["region"] == region)]
                    if model is not None and "model" in c:
                        c = c[c["model"] == model]
                    marks.append("".join("✓" if ok else "✗" for ok in c["direction_correct"]))
            ax.set_title(f"{patient[-5:]} {region}" + (f"  {' '.join(marks)}" if marks else ""), fontsize=8)
            ax.set_xticks(sorted(set(part["timepoint"])))
            ax.set_xlabel("timepoint", fontsize=8)
            ax.set_ylabel("volume (mL)", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
    handles = [Line2D([], [], color="black", marker="o", label="ground truth")]
    handles += [Line2D([], [], color=colors[m], marker="s", linestyle="--", label=names.get(m, m))
                for m in models if m is not None]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=7, frameon=False)
    fig.suptitle("Volume across timepoints (✓/✗: direction of change right/wrong, per model)", fontsize=10)
    return fig


__all__ = ["BOTH_COLOR", "COUNT_CMAP", "FREQUENCY_CMAP", "SIGNED_CMAP", "error_legend_handles", "error_rgba",
           "plot_boundary_distributions", "plot_boundary_slice", "plot_boundary_stats", "plot_confusion",
           "plot_error_frequency", "plot_error_projections", "plot_error_slice", "plot_lesion_detection",
           "plot_longitudinal", "plot_volume_agreement"]
