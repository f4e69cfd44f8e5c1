"""Figures for BraTS cases: label colours, overlays, montages, summary plots and a slice browser.

Display conventions (used by every function here, so figures agree with each other):

* a volume is indexed in stored voxel order ``(X, Y, Z)`` (nothing is reoriented, see :mod:`brats_lib.io`);
* planes: ``axial`` = ``[:, :, k]``, ``coronal`` = ``[:, j, :]``, ``sagittal`` = ``[i, :, :]``
  (:func:`take_slice`); a slice is shown with its first axis horizontal and its second axis vertical,
  increasing upwards (:func:`display_slice`), and images are drawn with their physical aspect (mm);
* labels use the BraTS 2024 GLI convention and the colours of :data:`LABEL_COLORS`.

:class:`SliceBrowser` is an ipywidgets browser. Its slice slider is linked to a stack of pre-rendered
PNG slices in the browser itself (``jslink``), so it keeps working in a static HTML page where no Python
kernel runs; case, plane, modality and opacity re-render the stack through Python callbacks.
"""

from __future__ import annotations

import contextlib
import io as _io
import os
import warnings
from collections import OrderedDict
from typing import Iterable, Mapping, Sequence

import numpy as np

from .io import MODALITIES, Case, LoadedCase, load_case
from .labels import LABEL_COLORS, LABEL_DESCRIPTIONS, LABEL_NAMES, REGION_COLORS, REGION_ORDER

#: Plane name → array axis that is fixed by the slice index.
PLANES: Mapping[str, int] = {"sagittal": 0, "coronal": 1, "axial": 2}

# The house palette lives in :mod:`brats_lib.labels`; re-exported here for the figures.

MODALITY_NAMES: Mapping[str, str] = {
    "t1n": "T1 native", "t1c": "T1 contrast-enhanced", "t2w": "T2-weighted", "t2f": "T2-FLAIR",
}


# ------------------------------------------------------------------------------------------- slicing


def _axis(plane: str) -> int:
    try:
        return PLANES[plane]
    except KeyError:
        raise ValueError(f"unknown plane {plane!r}; expected one of {list(PLANES)}") from None


def take_slice(volume: np.ndarray, plane: str, index: int) -> np.ndarray:
    """The 2D slice ``index`` of a 3D ``volume`` across ``plane``, in stored voxel order.

    ``axial`` → ``volume[:, :, index]``, ``coronal`` → ``volume[:, index, :]``,
    ``sagittal`` → ``volume[index, :, :]``.
    """
    axis = _axis(plane)
    if volume.ndim != 3:
        raise ValueError(f"expected a 3D volume, got shape {volume.shape}")
    size = volume.shape[axis]
    if not -size <= index < size:
        raise IndexError(f"{plane} slice {index} out of range for {size} slices")
    return np.take(volume, index, axis=axis)


def display_slice(volume: np.ndarray, plane: str, index: int) -> np.ndarray:
    """:func:`take_slice` turned for display: rows are the slice's second axis, top row its last index."""
    return np.rot90(take_slice(volume, plane, index))


def slice_spacing(spacing: Sequence[float], plane: str) -> tuple[float, float]:
    """(row, column) pixel size in mm of a :func:`display_slice` of a volume with voxel ``spacing``."""
    in_plane = [float(s) for axis, s in enumerate(spacing) if axis != _axis(plane)]
    return in_plane[1], in_plane[0]


def slice_extent(shape2d: Sequence[int], pixel_mm: Sequence[float]) -> tuple[float, float, float, float]:
    """matplotlib ``extent`` (left, right, bottom, top) in mm of a display slice."""
    rows, cols = shape2d
    return (0.0, cols * pixel_mm[1], 0.0, rows * pixel_mm[0])


def informative_slices(label: np.ndarray | None, plane: str, n: int,
                       image: np.ndarray | None = None) -> list[int]:
    """``n`` evenly spaced slice indices across the labelled region (or the brain, or the whole volume)."""
    axis = _axis(plane)
    reference = label if label is not None and np.any(label) else None
    if reference is None and image is not None:
        reference = image if image.ndim == 3 else np.any(image != 0, axis=0)
    size = (label if label is not None else image).shape[-3:][axis]
    if reference is not None and np.any(reference):
        other = tuple(a for a in range(3) if a != axis)
        present = np.flatnonzero(np.any(reference, axis=other))
        lo, hi = int(present[0]), int(present[-1])
    else:
        lo, hi = 0, size - 1
    return sorted({int(round(v)) for v in np.linspace(lo, hi, max(int(n), 1))})


def largest_label_slice(label: np.ndarray | None, plane: str) -> int | None:
    """Index of the slice with the most labelled voxels, ``None`` without label or label voxels."""
    if label is None or not np.any(label):
        return None
    axis = _axis(plane)
    other = tuple(a for a in range(3) if a != axis)
    return int(np.argmax(np.count_nonzero(label, axis=other)))


# ------------------------------------------------------------------------------------------- colours


def intensity_window(image: np.ndarray, percentiles: tuple[float, float] = (0.5, 99.5)) -> tuple[float, float]:
    """(low, high) display window: percentiles of the non-zero voxels (all voxels if none is non-zero)."""
    values = image[image != 0]
    if values.size == 0:
        values = image.reshape(-1)
    if values.size > 2_000_000:  # a fixed subsample keeps this fast and deterministic on large volumes
        values = values[:: values.size // 1_000_000]
    lo, hi = np.percentile(values, percentiles)
    if hi <= lo:
        hi = lo + 1.0
    return float(lo), float(hi)


def normalize(image: np.ndarray, window: tuple[float, float] | None = None) -> np.ndarray:
    """``image`` mapped linearly from ``window`` (default :func:`intensity_window`) to [0, 1], clipped."""
    lo, hi = intensity_window(image) if window is None else window
    return np.clip((np.asarray(image, dtype=np.float32) - lo) / (hi - lo), 0.0, 1.0)


def label_rgba(label2d: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """(H, W, 4) float32 RGBA of a label slice: label colours with opacity ``alpha``, background transparent."""
    rgba = np.zeros(label2d.shape + (4,), dtype=np.float32)
    for value, color in LABEL_COLORS.items():
        mask = label2d == value
        rgba[mask, :3] = color
        rgba[mask, 3] = alpha
    return rgba


def overlay_rgba(image2d: np.ndarray, label2d: np.ndarray | None = None, alpha: float = 0.4,
                 window: tuple[float, float] | None = None) -> np.ndarray:
    """(H, W, 4) float32 opaque RGBA: the grey image with label colours blended in at opacity ``alpha``.

    A labelled pixel is ``(1 - alpha) * grey + alpha * LABEL_COLORS[label]``; others are ``grey``.
    """
    grey = normalize(image2d, window)
    rgba = np.empty(grey.shape + (4,), dtype=np.float32)
    rgba[..., :3] = grey[..., None]
    rgba[..., 3] = 1.0
    if label2d is not None:
        if label2d.shape != grey.shape:
            raise ValueError(f"label slice {label2d.shape} differs from image slice {grey.shape}")
        for value, color in LABEL_COLORS.items():
            mask = label2d == value
            if np.any(mask):
                rgba[mask, :3] = (1.0 - alpha) * rgba[mask, :3] + alpha * np.asarray(color, np.float32)
    return rgba


def montage(slices: Sequence[np.ndarray], ncols: int, pad: int = 0, fill: float = 0.0) -> np.ndarray:
    """Tile equally shaped 2D (or 2D × channels) ``slices`` row by row into one array.

    The result has ``rows = ceil(len / ncols)`` tiles down and ``min(ncols, len)`` across, with ``pad``
    pixels of ``fill`` between tiles, e.g. shape ``(rows*H + (rows-1)*pad, cols*W + (cols-1)*pad[, C])``.
    """
    if not slices:
        raise ValueError("montage of no slices")
    first = np.asarray(slices[0])
    if any(np.shape(s) != first.shape for s in slices):
        raise ValueError("montage slices must share one shape")
    cols = min(int(ncols), len(slices))
    rows = -(-len(slices) // cols)
    h, w = first.shape[:2]
    out = np.full((rows * h + (rows - 1) * pad, cols * w + (cols - 1) * pad) + first.shape[2:], fill,
                  dtype=np.result_type(first.dtype, np.asarray(fill).dtype))
    for i, tile in enumerate(slices):
        r, c = divmod(i, cols)
        out[r * (h + pad): r * (h + pad) + h, c * (w + pad): c * (w + pad) + w] = tile
    return out


def legend_handles(labels: Iterable[int] = (1, 2, 3, 4)):
    """matplotlib patches naming each label, e.g. ``NETC (1): non-enhancing tumour core``."""
    from matplotlib.patches import Patch

    return [Patch(facecolor=LABEL_COLORS[v], edgecolor="black", linewidth=0.5,
                  label=f"{LABEL_NAMES[v]} ({v}): {LABEL_DESCRIPTIONS[v]}") for v in labels]


# ------------------------------------------------------------------------------------------- figures


def _modality_channel(modality: str) -> int:
    try:
        return MODALITIES.index(modality)
    except ValueError:
        raise ValueError(f"unknown modality {modality!r}; expected one of {MODALITIES}") from None


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


def plot_label_volumes(volumes, ax=None, log: bool = False):
    """Box + strip plot of :func:`brats_lib.eda.label_volumes_table`: volume (mL) per region."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    order = [r for r in REGION_ORDER if r in set(volumes["region"])]
    palette = {r: REGION_COLORS.get(r, (0.5, 0.5, 0.5)) for r in order}
    with _quiet_seaborn():
        sns.boxplot(data=volumes, x="region", y="volume_ml", hue="region", order=order, palette=palette,
                    showfliers=False, boxprops={"alpha": 0.45}, legend=False, ax=ax)
    sns.stripplot(data=volumes, x="region", y="volume_ml", order=order, color="black", size=4, jitter=0.15,
                  ax=ax)
    if log:
        ax.set_yscale("symlog", linthresh=1.0)
    ax.set_xlabel("region")
    ax.set_ylabel("volume (mL)")
    ax.set_title(f"Label volume per region ({volumes['case_id'].nunique()} cases)")
    ax.grid(axis="y", alpha=0.3)
    return ax


def plot_intensity_distributions(intensities, value: str = "zscore", ax=None):
    """Box plots of sampled voxel intensities per modality (x) and region (colour)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    from .eda import BRAIN_REGION

    if ax is None:
        _, ax = plt.subplots(figsize=(10, 4.5), layout="constrained")
    present = set(intensities["region"])
    hue_order = [r for r in (BRAIN_REGION, *REGION_ORDER) if r in present]
    palette = {r: REGION_COLORS.get(r, (0.8, 0.8, 0.8)) for r in hue_order}
    order = [m for m in MODALITIES if m in set(intensities["modality"])]
    with _quiet_seaborn():
        sns.boxplot(data=intensities, x="modality", y=value, hue="region", order=order, hue_order=hue_order,
                    palette=palette, showfliers=False, linewidth=0.8, ax=ax)
    ax.set_xticks(range(len(order)), [f"{m}\n{MODALITY_NAMES.get(m, m)}" for m in order])
    ax.set_xlabel("modality")
    ax.set_ylabel("intensity (z-score within brain)" if value == "zscore" else "intensity (a.u., raw)")
    ax.set_title(f"Voxel intensities per modality and region "
                 f"({intensities['case_id'].nunique()} cases, sampled voxels)")
    ax.axhline(0.0, color="black", linewidth=0.6, alpha=0.4)
    ax.legend(title="region", fontsize=8, title_fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="y", alpha=0.3)
    return ax


# ------------------------------------------------------------------------------------------- browser


def render_slice_png(loaded: LoadedCase, plane: str, index: int, modality: str = "t2f", alpha: float = 0.4,
                     window: tuple[float, float] | None = None, scale: float = 1.0) -> bytes:
    """PNG bytes of one overlay slice drawn at its physical aspect (``scale`` pixels per mm)."""
    from PIL import Image

    image = loaded.image[_modality_channel(modality)]
    img2d = display_slice(image, plane, index)
    lab2d = display_slice(loaded.label, plane, index) if loaded.label is not None else None
    rgb = (overlay_rgba(img2d, lab2d, alpha, window or intensity_window(image))[..., :3] * 255 + 0.5)
    pil = Image.fromarray(rgb.astype(np.uint8), mode="RGB")
    row_mm, col_mm = slice_spacing(loaded.geometry.spacing, plane)
    size = (max(1, round(img2d.shape[1] * col_mm * scale)), max(1, round(img2d.shape[0] * row_mm * scale)))
    if size != pil.size:
        pil = pil.resize(size, Image.Resampling.NEAREST)
    buffer = _io.BytesIO()
    pil.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _legend_html() -> str:
    items = "".join(
        f'<span style="display:inline-block;margin-right:12px"><span style="display:inline-block;width:12px;'
        f"height:12px;background:rgb({','.join(str(int(c * 255)) for c in LABEL_COLORS[v])});"
        f'border:1px solid #333;vertical-align:middle"></span> {LABEL_NAMES[v]}: {LABEL_DESCRIPTIONS[v]}</span>'
        for v in LABEL_COLORS
    )
    return f'<div class="brats-legend" style="font-size:12px">{items}</div>'


def _import_widgets():
    import ipywidgets as widgets

    return widgets


class SliceBrowser(_import_widgets().VBox):
    """Browse cases slice by slice: case, plane, slice, modality and label opacity.

    The slice slider selects among ``n_slices`` pre-rendered PNG slices held in a ``widgets.Stack``;
    slider and stack are linked in the browser (``jslink``), so sliding works with or without a kernel,
    e.g. in the static HTML book. Changing case, plane, modality or opacity re-renders the stack in Python
    (needs a running kernel). Loaded cases are cached (``cache_size`` most recent).

    Args:
        cases: dataset folder or sequence of :class:`~brats_lib.io.Case`.
        n_slices: slices pre-rendered per (case, plane), evenly spaced over the labelled region (or brain).
        case: initial case id (default: the first).
        plane, modality, alpha: initial plane, modality and label opacity.
        width: displayed image width in CSS pixels.
    """

    def __init__(self, cases: str | os.PathLike | Iterable[Case], n_slices: int = 16, case: str | None = None,
                 plane: str = "axial", modality: str = "t2f", alpha: float = 0.4, width: int = 360,
                 max_cases: int | None = None, cache_size: int = 2, **kwargs):
        widgets = _import_widgets()
        from .eda import as_cases

        self._cases = {c.case_id: c for c in as_cases(cases, max_cases)}
        if not self._cases:
            raise ValueError("SliceBrowser needs at least one case")
        self.n_slices = int(n_slices)
        self._cache: OrderedDict[str, LoadedCase] = OrderedDict()
        self._cache_size = max(1, int(cache_size))
        self._image_layout = widgets.Layout(width=f"{int(width)}px", height="auto", object_fit="contain")
        self.indices: list[int] = []

        self.case_dropdown = widgets.Dropdown(options=list(self._cases), value=case or next(iter(self._cases)),
                                              description="case")
        self.plane_buttons = widgets.ToggleButtons(options=list(("axial", "coronal", "sagittal")), value=plane,
                                                   tooltips=["[:, :, k]", "[:, j, :]", "[i, :, :]"],
                                                   style={"button_width": "88px"})
        self.modality_dropdown = widgets.Dropdown(
            options=[(f"{m} ({MODALITY_NAMES[m]})", m) for m in MODALITIES], value=modality,
            description="modality")
        self.opacity_slider = widgets.FloatSlider(value=alpha, min=0.0, max=1.0, step=0.05,
                                                  description="label opacity", readout_format=".2f",
                                                  continuous_update=False,
                                                  style={"description_width": "initial"})
        self.slice_slider = widgets.SelectionSlider(options=[("0", 0)], description="slice",
                                                    continuous_update=True,
                                                    layout=widgets.Layout(width="420px"))
        self.stack = widgets.Stack(children=[], selected_index=None)
        self.status = widgets.HTML()
        self._link = widgets.jslink((self.slice_slider, "index"), (self.stack, "selected_index"))
        self._busy = False
        self._render_all()
        for control in (self.case_dropdown, self.plane_buttons, self.modality_dropdown, self.opacity_slider):
            control.observe(self._on_change, names="value")
        super().__init__(
            children=[
                widgets.HBox([self.case_dropdown, self.modality_dropdown]),
                widgets.HBox([widgets.Label("plane", layout=widgets.Layout(width="90px")), self.plane_buttons]),
                self.slice_slider,
                self.opacity_slider,
                self.stack,
                widgets.HTML(_legend_html()),
                self.status,
            ],
            layout=widgets.Layout(border="1px solid #ddd", padding="6px"),
            **kwargs,
        )
        self.add_class("brats-slice-browser")

    # -- data
    def load(self, case_id: str) -> LoadedCase:
        """The loaded case ``case_id`` (cached)."""
        if case_id in self._cache:
            self._cache.move_to_end(case_id)
            return self._cache[case_id]
        loaded = load_case(self._cases[case_id])
        self._cache[case_id] = loaded
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return loaded

    def slice_2d(self, plane: str | None = None, index: int | None = None, modality: str | None = None,
                 case_id: str | None = None) -> np.ndarray:
        """The raw (stored order, :func:`take_slice`) 2D image slice the browser shows for these settings."""
        loaded = self.load(case_id or self.case_dropdown.value)
        channel = _modality_channel(modality or self.modality_dropdown.value)
        plane = plane or self.plane_buttons.value
        if index is None:
            index = self.current_index
        return take_slice(loaded.image[channel], plane, index)

    @property
    def current_index(self) -> int:
        """The slice index (in the volume) selected by the slider."""
        return int(self.slice_slider.value)

    # -- rendering
    def _render_all(self, keep_index: bool = False) -> None:
        widgets = _import_widgets()
        loaded = self.load(self.case_dropdown.value)
        plane, modality = self.plane_buttons.value, self.modality_dropdown.value
        image = loaded.image[_modality_channel(modality)]
        indices = informative_slices(loaded.label, plane, self.n_slices, loaded.image)
        window = intensity_window(image)
        pngs = [render_slice_png(loaded, plane, i, modality, self.opacity_slider.value, window) for i in indices]
        previous = self.current_index if keep_index and self.indices else None
        if indices == self.indices and len(self.stack.children) == len(pngs):
            for img, png in zip(self.stack.children, pngs):
                img.value = png
        else:
            self.stack.children = [widgets.Image(value=png, format="png", layout=self._image_layout)
                                   for png in pngs]
            self.indices = indices
            self.slice_slider.options = [(str(i), i) for i in indices]
        if previous is not None and previous in indices:
            start = indices.index(previous)
        else:
            best = largest_label_slice(loaded.label, plane)
            start = (int(np.argmin([abs(i - best) for i in indices])) if best is not None
                     else len(indices) // 2)
        self.slice_slider.index = start
        self.stack.selected_index = start
        row_mm, col_mm = slice_spacing(loaded.geometry.spacing, plane)
        self.status.value = (
            f'<span style="font-size:12px;color:#555">{loaded.case.case_id} · {plane} · '
            f"{MODALITY_NAMES[modality]} · {len(indices)} of {image.shape[_axis(plane)]} slices "
            f"({indices[0]}–{indices[-1]}) · pixel {col_mm:.2f} × {row_mm:.2f} mm · "
            f"case, plane, modality and opacity need a running kernel</span>")

    def _on_change(self, change) -> None:
        if self._busy:
            return
        self._busy = True
        try:
            keep = change["owner"] in (self.modality_dropdown, self.opacity_slider)
            self._render_all(keep_index=keep)
        finally:
            self._busy = False


__all__ = [
    "PLANES", "LABEL_COLORS", "REGION_COLORS", "MODALITY_NAMES", "take_slice", "display_slice", "slice_spacing",
    "slice_extent", "informative_slices", "largest_label_slice", "intensity_window", "normalize", "label_rgba",
    "overlay_rgba", "montage", "legend_handles", "plot_overlay_montage", "plot_case_overlay",
    "plot_label_volumes", "plot_intensity_distributions", "render_slice_png", "SliceBrowser",
]


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


__all__ += ["METRIC_LABELS", "plot_region_scores", "plot_best_worst_overlays"]
