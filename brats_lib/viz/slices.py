"""Slicing and colouring volumes for display: planes, slices in mm, intensity windows, label overlays, montages.

Display conventions (used by every figure and widget of :mod:`brats_lib.viz`, so they agree):

* a volume is indexed in stored voxel order ``(X, Y, Z)`` (nothing is reoriented, see :mod:`brats_lib.io`);
* planes: ``axial`` = ``[:, :, k]``, ``coronal`` = ``[:, j, :]``, ``sagittal`` = ``[i, :, :]``
  (:func:`take_slice`); a slice is shown with its first axis horizontal and its second axis vertical,
  increasing upwards (:func:`display_slice`), and images are drawn with their physical aspect (mm);
* labels use the BraTS 2024 GLI convention and the house colours of :mod:`brats_lib.labels`.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np

from ..io import MODALITIES
from ..labels import LABEL_COLORS, LABEL_DESCRIPTIONS, LABEL_NAMES

PLANES: Mapping[str, int] = {"sagittal": 0, "coronal": 1, "axial": 2}

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


def _modality_channel(modality: str) -> int:
    try:
        return MODALITIES.index(modality)
    except ValueError:
        raise ValueError(f"unknown modality {modality!r}; expected one of {MODALITIES}") from None


__all__ = [
    "MODALITY_NAMES", "PLANES", "display_slice", "informative_slices", "intensity_window", "label_rgba",
    "largest_label_slice", "legend_handles", "montage", "normalize", "overlay_rgba", "slice_extent",
    "slice_spacing", "take_slice",
]
