"""Preprocessing of loaded cases and the per-case on-disk cache that training reads.

Steps of :func:`preprocess_case`, in order:

1. brain mask: voxels non-zero in any modality;
2. crop to the bounding box of the mask (and of any labelled voxel) plus ``margin`` voxels, clipped to
   the volume, then widened to a multiple of an integer ``downsample`` factor (zero padding only where
   the volume itself is too small);
3. per modality: clip intensities to the ``clip_percentiles`` of the in-mask voxels;
4. optional isotropic resampling by ``downsample`` (integer factor: image and mask averaged over each
   f×f×f block, label by block majority vote or nearest; otherwise trilinear);
5. per modality: z-score inside the (resampled) mask; background is exactly 0.

Every step is recorded in a JSON-serialisable ``meta`` dict, so :func:`invert_label` can put a label map
predicted on the cache grid back onto the original grid: exactly at ``downsample == 1`` (crop + paste),
and up to the detail lost by down- then nearest up-sampling otherwise (on the real GLI sample case at
factor 2: whole-tumour Dice ≈ 0.96, per label 0.80–0.91).

Cache layout (one folder per case)::

    CACHE/<case_id>/image.npy      (4, x, y, z) float16 (default) or float32, z-scored
    CACHE/<case_id>/label.npy      (x, y, z) uint8, 2024 convention (absent for inference-only cases)
    CACHE/<case_id>/fg_coords.npz  label_<k>: (n, 3) int16 voxel coordinates of label k (subsample)
    CACHE/<case_id>/meta.json      written last: its presence means the case is complete

Each file is written atomically (temporary file + ``os.replace``); a rebuild deletes ``meta.json`` first.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import time
import zlib
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import nibabel as nib
import numpy as np

from ._atomic import atomic_path, write_text_atomic
from .errors import BratsConfigError
from .io import MODALITIES, BratsInputError, Case, Geometry, LoadedCase, discover_cases, load_case

#: Bumped when the cache format or the preprocessing maths change; part of the config hash.
CACHE_VERSION = 1

#: Foreground labels whose coordinates are stored in ``fg_coords.npz``.
FOREGROUND_LABELS: tuple[int, ...] = (1, 2, 3, 4)

META_NAME = "meta.json"
IMAGE_NAME = "image.npy"
LABEL_NAME = "label.npy"
COORDS_NAME = "fg_coords.npz"


@dataclass(frozen=True)
class PreprocessConfig:
    """Preprocessing settings (JSON-serialisable via :meth:`to_dict`).

    Attributes:
        clip_percentiles: (low, high) percentiles (0–100) of the in-mask intensities of each modality;
            values outside are clipped before normalisation.
        margin: voxels added on every side of the brain bounding box (clipped to the volume).
        downsample: isotropic resampling factor >= 1 (``2`` halves each side; ``1`` keeps full resolution).
        dtype: ``"float16"`` or ``"float32"``: stored dtype of ``image.npy``.
        label_resample: how labels are downsampled when ``downsample > 1``: ``"majority"`` (default: each
            label's indicator is resampled like the image and the largest wins, ties to the higher label,
            so labels stay centred on the same points as the trilinear image) or ``"nearest"`` (one voxel
            per block; for an even factor it sits half an original voxel off the image's sample point).
            :func:`invert_label` always upsamples with nearest.
        max_fg_coords: at most this many voxel coordinates per foreground label in ``fg_coords.npz``.
        seed: seed of the coordinate subsample.
    """

    clip_percentiles: tuple[float, float] = (0.5, 99.5)
    margin: int = 4
    downsample: float = 1
    dtype: str = "float16"
    label_resample: str = "majority"
    max_fg_coords: int = 10_000
    seed: int = 0

    def __post_init__(self) -> None:
        try:
            low, high = (float(p) for p in self.clip_percentiles)
            float(self.margin), float(self.downsample), int(self.max_fg_coords)
        except (TypeError, ValueError):
            raise BratsConfigError(f"clip_percentiles must be two numbers and margin, downsample, max_fg_coords "
                                   f"numbers, got {self.clip_percentiles}, {self.margin!r}, "
                                   f"{self.downsample!r}, {self.max_fg_coords!r}") from None
        if not 0.0 <= low < high <= 100.0:
            raise BratsConfigError(f"clip_percentiles must satisfy 0 <= low < high <= 100, got {self.clip_percentiles}")
        object.__setattr__(self, "clip_percentiles", (low, high))
        if int(self.margin) != self.margin or self.margin < 0:
            raise BratsConfigError(f"margin must be a non-negative integer, got {self.margin}")
        object.__setattr__(self, "margin", int(self.margin))
        if not float(self.downsample) >= 1.0:
            raise BratsConfigError(f"downsample must be >= 1, got {self.downsample}")
        factor = float(self.downsample)
        object.__setattr__(self, "downsample", int(factor) if factor.is_integer() else factor)
        if self.dtype not in ("float16", "float32"):
            raise BratsConfigError(f"dtype must be 'float16' or 'float32', got {self.dtype!r}")
        if self.label_resample not in ("majority", "nearest"):
            raise BratsConfigError(f"label_resample must be 'majority' or 'nearest', got {self.label_resample!r}")
        if self.max_fg_coords < 1:
            raise BratsConfigError(f"max_fg_coords must be >= 1, got {self.max_fg_coords}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (tuples become lists)."""
        d = dataclasses.asdict(self)
        d["clip_percentiles"] = list(d["clip_percentiles"])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PreprocessConfig":
        """Inverse of :meth:`to_dict` (unknown keys are an error)."""
        d = dict(d)
        if "clip_percentiles" in d:
            d["clip_percentiles"] = tuple(d["clip_percentiles"])
        return cls(**d)

    def hash(self) -> str:
        """Short stable hash of the settings and :data:`CACHE_VERSION` (16 hex digits)."""
        text = json.dumps({"config": self.to_dict(), "version": CACHE_VERSION}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class PreprocessedCase:
    """A case on the cache grid.

    Attributes:
        image: (4, x, y, z) float32, z-scored per modality inside the brain mask, exactly 0 outside.
        label: (x, y, z) uint8 (2024 convention) or ``None``.
        meta: JSON-serialisable record of every step (see :func:`preprocess_case`).
    """

    image: np.ndarray
    label: np.ndarray | None
    meta: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- geometry


def brain_mask(image: np.ndarray) -> np.ndarray:
    """(4, X, Y, Z) image → (X, Y, Z) bool mask of voxels non-zero in any modality."""
    return np.any(image != 0, axis=0)


def bounding_box(mask: np.ndarray, margin: int = 0) -> tuple[tuple[int, int], ...]:
    """Half-open ``((x0, x1), (y0, y1), (z0, z1))`` voxel box of the true voxels of a 3D ``mask``,
    widened by ``margin`` voxels on every side and clipped to the volume. ``mask`` must not be empty."""
    box = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=other))
        lo, hi = int(hits[0]) - margin, int(hits[-1]) + 1 + margin
        box.append((max(lo, 0), min(hi, mask.shape[axis])))
    return tuple(box)


def fit_box_to_factor(box: Sequence[Sequence[int]], shape: Sequence[int], factor: float
                      ) -> tuple[tuple[int, int], ...]:
    """Widen a half-open voxel ``box`` inside a volume of ``shape`` so that each side is a multiple of an
    integer ``factor`` (unchanged for factor 1 or a non-integer factor). The box is grown about its centre
    and kept inside the volume where it fits; only a volume smaller than the widened box makes it reach
    outside (that part is zero padding, see :func:`crop_padded`)."""
    if float(factor) == 1.0 or not float(factor).is_integer():
        return tuple((int(lo), int(hi)) for lo, hi in box)
    f = int(factor)
    out = []
    for (lo, hi), dim in zip(box, shape):
        size = -(-(hi - lo) // f) * f
        start = lo - (size - (hi - lo)) // 2
        start = int(np.clip(start, min(0, dim - size), max(0, dim - size)))
        out.append((start, start + size))
    return tuple(out)


def _box_overlap(box: Sequence[Sequence[int]], shape: Sequence[int]) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """(slices into the box's array, slices into the volume) of the part of ``box`` inside ``shape``."""
    src, dst = [], []
    for (lo, hi), dim in zip(box, shape):
        a, b = max(lo, 0), min(hi, dim)
        src.append(slice(a - lo, b - lo))
        dst.append(slice(a, b))
    return tuple(src), tuple(dst)


def crop_padded(array: np.ndarray, box: Sequence[Sequence[int]]) -> np.ndarray:
    """Copy of the half-open ``box`` of the last three axes of ``array`` ((C, X, Y, Z) or (X, Y, Z)),
    zero (False) where the box leaves the volume. Same dtype."""
    lead = array.shape[:-3]
    out = np.zeros(lead + tuple(hi - lo for lo, hi in box), dtype=array.dtype)
    src, dst = _box_overlap(box, array.shape[-3:])
    ell = (slice(None),) * len(lead)
    out[ell + src] = array[ell + dst]
    return out


def resampled_shape(shape: Sequence[int], factor: float) -> tuple[int, ...]:
    """Grid shape after isotropic resampling of ``shape`` (voxels) by ``factor``: ``max(1, round(n / f))``
    per axis (``round`` half-up, so the result does not depend on floating-point ties)."""
    return tuple(max(1, int(np.floor(n / factor + 0.5))) for n in shape)


def nearest_indices(n_in: int, n_out: int) -> np.ndarray:
    """(n_out,) int64 source index of each output voxel for nearest resampling ``n_in`` → ``n_out`` voxels.

    Voxel centres are aligned as in ``align_corners=False`` (the grids span the same physical extent):
    output voxel ``i`` reads input voxel ``floor((i + 0.5) * n_in / n_out)``. For a factor 2 down then up
    this maps each voxel of a 2×2×2 block to the block's odd corner."""
    idx = np.floor((np.arange(n_out) + 0.5) * (n_in / n_out)).astype(np.int64)
    return np.minimum(idx, n_in - 1)


def resample_nearest(volume: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Nearest-neighbour resampling of a (X, Y, Z) array (any dtype) to ``shape``; identity if equal."""
    if tuple(volume.shape) == tuple(shape):
        return volume
    index = np.ix_(*(nearest_indices(n, m) for n, m in zip(volume.shape, shape)))
    return volume[index]


def resample_image(image: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Resample a (C, X, Y, Z) float32 array to (C, *shape); identity if the shape is unchanged.

    When every axis shrinks by an integer factor f (the crop of :func:`preprocess_case` is sized so), each
    output voxel is the mean of its f×f×f block (area / box filter: no aliasing); otherwise trilinear with
    ``align_corners=False``. Either way output voxel i is centred on input coordinate (i + 0.5)·n/m − 0.5."""
    if tuple(image.shape[1:]) == tuple(shape):
        return image
    import torch
    import torch.nn.functional as F

    whole = all(n % m == 0 and n >= m for n, m in zip(image.shape[1:], shape))
    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None]
        if whole:
            out = F.interpolate(x, size=tuple(shape), mode="area")
        else:
            out = F.interpolate(x, size=tuple(shape), mode="trilinear", align_corners=False)
    return out[0].numpy()


def resample_majority(label: np.ndarray, shape: Sequence[int], labels: Sequence[int] = (0, 1, 2, 3, 4)
                      ) -> np.ndarray:
    """Downsample a (X, Y, Z) uint8 label map to ``shape`` by a soft vote: each label's 0/1 indicator is
    resampled as the image (:func:`resample_image`: with an integer factor, a vote over each block) and the
    label with the largest weight wins; ties go to the higher label (foreground over background).
    Identity if the shape is unchanged. Returns uint8."""
    if tuple(label.shape) == tuple(shape):
        return label
    best = np.full(tuple(shape), -1.0, dtype=np.float32)
    out = np.zeros(tuple(shape), dtype=np.uint8)
    for k in labels:
        weight = resample_image((label == k)[None].astype(np.float32), shape)[0]
        wins = weight >= best
        out[wins] = k
        best[wins] = weight[wins]
    return out


def cache_affine(affine: np.ndarray, box: Sequence[Sequence[int]], shape: Sequence[int]) -> np.ndarray:
    """(4, 4) voxel → world (mm) matrix of the cache grid: the crop ``box`` of the original grid
    (``affine``) resampled to ``shape`` with voxel centres as in :func:`nearest_indices`."""
    sizes = np.array([hi - lo for lo, hi in box], dtype=np.float64)
    scale = sizes / np.asarray(shape, dtype=np.float64)
    start = np.array([lo for lo, _ in box], dtype=np.float64)
    local = np.eye(4)
    local[:3, :3] = np.diag(scale)
    local[:3, 3] = start + scale / 2.0 - 0.5
    return np.asarray(affine, dtype=np.float64) @ local


# ----------------------------------------------------------------------------------------- normalisation


def clip_percentiles(image: np.ndarray, mask: np.ndarray, percentiles: tuple[float, float],
                     source: str = "") -> np.ndarray:
    """Clip each modality of a (4, X, Y, Z) float32 image to its in-``mask`` percentiles, in place.

    Returns:
        (4, 2) float64 array of the (low, high) clip values per modality (raw intensity units).
    Raises:
        BratsInputError: a modality is constant inside the mask (after clipping), naming ``source``.
    """
    bounds = np.empty((image.shape[0], 2))
    for c in range(image.shape[0]):
        values = image[c][mask]
        low, high = np.percentile(values, percentiles)
        if not high > low:
            name = MODALITIES[c] if c < len(MODALITIES) else f"channel {c}"
            raise BratsInputError(
                f"{source}: modality {name} is constant inside the brain mask "
                f"(value {low:.6g} between the {percentiles[0]}th and {percentiles[1]}th percentiles); "
                f"it cannot be normalised"
            )
        np.clip(image[c], low, high, out=image[c])
        bounds[c] = (low, high)
    return bounds


def zscore_in_mask(image: np.ndarray, mask: np.ndarray, source: str = "") -> np.ndarray:
    """Z-score each modality of a (4, x, y, z) float32 image inside ``mask``, in place; voxels outside the
    mask are set to exactly 0.

    Returns:
        (4, 2) float64 array of the (mean, std) per modality before normalisation.
    Raises:
        BratsInputError: a modality has zero spread inside the mask, naming ``source``.
    """
    stats = np.empty((image.shape[0], 2))
    outside = ~mask
    for c in range(image.shape[0]):
        values = image[c][mask].astype(np.float64)
        mean, std = float(values.mean()), float(values.std())
        if not std > 0:
            name = MODALITIES[c] if c < len(MODALITIES) else f"channel {c}"
            raise BratsInputError(f"{source}: modality {name} is constant inside the brain mask")
        image[c] -= mean
        image[c] /= std
        image[c][outside] = 0.0
        stats[c] = (mean, std)
    return stats


# ------------------------------------------------------------------------------------------ main entries


def _header_to_text(header: nib.Nifti1Header) -> dict[str, str]:
    return {"class": type(header).__name__, "binaryblock": base64.b64encode(header.binaryblock).decode()}


def _header_from_text(d: dict[str, str]) -> nib.Nifti1Header:
    cls = {"Nifti1Header": nib.Nifti1Header, "Nifti2Header": nib.Nifti2Header}[d["class"]]
    return cls(binaryblock=base64.b64decode(d["binaryblock"]))


def preprocess_case(loaded: LoadedCase, config: PreprocessConfig = PreprocessConfig()) -> PreprocessedCase:
    """Mask, crop, clip, resample and z-score one loaded case.

    Args:
        loaded: from :func:`brats_lib.io.load_case`; ``image`` (4, X, Y, Z) float32 raw intensities.
        config: settings.

    Returns:
        :class:`PreprocessedCase` with ``image`` (4, x, y, z) float32 and ``label`` (x, y, z) uint8 or None
        on the cache grid, and ``meta`` holding: ``case_id``, ``patient_id``, ``original_shape`` (X, Y, Z),
        ``crop_box`` (half-open voxel box on the original grid; it reaches outside the volume, as zero
        padding, only when the volume is smaller than the factor-aligned box), ``crop_shape``, ``shape`` (x, y, z),
        ``factor`` (the per-axis crop_shape / shape), ``spacing`` and ``original_spacing`` (mm), ``affine``
        (original) and ``cache_affine`` (4×4 lists), ``header`` (base64 NIfTI header), ``orientation``,
        ``clip_bounds`` and ``norm_stats`` per modality, ``brain_voxels``, ``label_voxels`` (per label on
        the cache grid), ``config`` and ``config_hash``.

    Raises:
        BratsInputError: empty brain mask or a constant modality inside it (the message names the case).
    """
    source = f"{loaded.case.case_id} ({loaded.case.folder})"
    image = np.asarray(loaded.image, dtype=np.float32)
    mask = brain_mask(image)
    if not mask.any():
        raise BratsInputError(f"{source}: empty brain mask (every modality is 0 everywhere)")
    keep = mask if loaded.label is None else (mask | (loaded.label > 0))
    box = fit_box_to_factor(bounding_box(keep, config.margin), image.shape[1:],
                            config.downsample)
    image = crop_padded(image, box)
    mask = crop_padded(mask, box)
    bounds = clip_percentiles(image, mask, config.clip_percentiles, source)

    crop_shape = tuple(hi - lo for lo, hi in box)
    shape = resampled_shape(crop_shape, config.downsample)
    if shape != crop_shape:
        image = resample_image(image, shape)
        mask = resample_image(mask[None].astype(np.float32), shape)[0] >= 0.5
        if not mask.any():
            raise BratsInputError(f"{source}: brain mask vanishes after downsampling by {config.downsample}")
    stats = zscore_in_mask(image, mask, source)
    label = None
    if loaded.label is not None:
        resample = resample_majority if config.label_resample == "majority" else resample_nearest
        label = np.ascontiguousarray(resample(crop_padded(loaded.label, box), shape), dtype=np.uint8)

    geometry = loaded.geometry
    factor = [c / s for c, s in zip(crop_shape, shape)]
    new_affine = cache_affine(geometry.affine, box, shape)
    meta = {
        "case_id": loaded.case.case_id,
        "patient_id": loaded.case.patient_id,
        "original_shape": list(geometry.shape),
        "crop_box": [list(b) for b in box],
        "crop_shape": list(crop_shape),
        "shape": list(shape),
        "factor": factor,
        "original_spacing": list(geometry.spacing),
        "spacing": [float(s) for s in np.linalg.norm(new_affine[:3, :3], axis=0)],
        "affine": np.asarray(geometry.affine, dtype=np.float64).tolist(),
        "cache_affine": new_affine.tolist(),
        "header": _header_to_text(geometry.header),
        "orientation": geometry.orientation,
        "modalities": list(MODALITIES),
        "clip_bounds": bounds.tolist(),
        "norm_stats": stats.tolist(),
        "brain_voxels": int(mask.sum()),
        "label_voxels": None if label is None else label_voxel_counts(label),
        "config": config.to_dict(),
        "config_hash": config.hash(),
    }
    return PreprocessedCase(np.ascontiguousarray(image, dtype=np.float32), label, meta)


def label_voxel_counts(label: np.ndarray) -> dict[str, int]:
    """Voxel count of each foreground label (keys ``"1"``…``"4"``) of a uint8 label map."""
    counts = np.bincount(label.ravel(), minlength=max(FOREGROUND_LABELS) + 1)
    return {str(k): int(counts[k]) for k in FOREGROUND_LABELS}


def invert_label(label: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
    """Put a label map from the cache grid back on the original grid.

    Args:
        label: (x, y, z) integer labels on the cache grid (``meta["shape"]``).
        meta: the case's preprocessing record.
    Returns:
        (X, Y, Z) uint8 on the original grid: nearest-upsampled to the crop box, pasted into zeros.
        Exact inverse of the label path of :func:`preprocess_case` when ``downsample == 1``; otherwise
        each cache voxel fills its block (detail below the cache resolution is lost).
    """
    if list(label.shape) != list(meta["shape"]):
        raise BratsInputError(f"{meta.get('case_id')}: label shape {label.shape} differs from the cache "
                              f"grid {tuple(meta['shape'])}")
    out = np.zeros(tuple(meta["original_shape"]), dtype=np.uint8)
    full = resample_nearest(np.asarray(label, dtype=np.uint8), meta["crop_shape"])
    src, dst = _box_overlap(meta["crop_box"], out.shape)
    out[dst] = full[src]
    return out


def geometry_from_meta(meta: dict[str, Any]) -> Geometry:
    """The original grid's :class:`~brats_lib.io.Geometry` (affine, header, shape), for
    :func:`brats_lib.io.save_label_map` of an :func:`invert_label` result."""
    return Geometry(np.array(meta["affine"], dtype=np.float64), _header_from_text(meta["header"]),
                    tuple(meta["original_shape"]))


# ------------------------------------------------------------------------------------------------- cache


def source_stamps(case: Case) -> dict[str, dict[str, int | str]]:
    """Tag (``t1n``… ``seg``) → ``{"path", "size" (bytes), "mtime_ns"}`` of each source file."""
    paths = dict(case.image_paths)
    if case.seg_path is not None:
        paths["seg"] = case.seg_path
    stamps = {}
    for tag, path in paths.items():
        st = Path(path).stat()
        stamps[tag] = {"path": str(Path(path).resolve()), "size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}
    return stamps


def foreground_coords(label: np.ndarray, max_coords: int, seed: int | Sequence[int] = 0) -> dict[str, np.ndarray]:
    """``label_<k>`` → (n, 3) int16 voxel coordinates of label ``k`` in a (x, y, z) map, a uniform random
    subsample of at most ``max_coords`` rows (sorted, so the file is deterministic); empty (0, 3) if absent."""
    rng = np.random.default_rng(seed)
    flat = label.ravel()
    out = {}
    for k in FOREGROUND_LABELS:
        idx = np.flatnonzero(flat == k)
        if idx.size > max_coords:
            idx = np.sort(rng.choice(idx, size=max_coords, replace=False))
        out[f"label_{k}"] = np.stack(np.unravel_index(idx, label.shape), axis=1).astype(np.int16)
    return out


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def write_cached_case(cache_dir: str | Path, pre: PreprocessedCase, config: PreprocessConfig,
                      extra_meta: dict[str, Any] | None = None) -> Path:
    """Write one preprocessed case to ``cache_dir/<case_id>/`` (each file atomic, ``meta.json`` last).

    An existing ``meta.json`` is removed first, so an interrupted rebuild leaves the case incomplete.
    Raises :class:`~brats_lib.io.BratsInputError` if the normalised intensities overflow ``config.dtype``
    (float16), ``RuntimeError`` if the float32 image already holds NaN or inf (a bug: loading rejects
    non-finite inputs); nothing of the case is then marked complete.
    """
    case_id = pre.meta["case_id"]
    folder = Path(cache_dir) / case_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / META_NAME).unlink(missing_ok=True)
    with np.errstate(over="ignore"):  # an overflow becomes inf and is caught just below
        image = pre.image.astype(config.dtype)
    if not np.isfinite(image).all():
        if not np.isfinite(pre.image).all():
            raise RuntimeError(f"{case_id}: non-finite values in the preprocessed image")
        raise BratsInputError(f"{case_id}: normalised intensities overflow {config.dtype} "
                              f"(largest |value| {float(np.abs(pre.image).max()):.4g}); use dtype float32")
    _save_npy(folder / IMAGE_NAME, image)
    meta = dict(pre.meta, **(extra_meta or {}))
    if pre.label is not None:
        _save_npy(folder / LABEL_NAME, pre.label.astype(np.uint8))
        seed = (config.seed, zlib.crc32(case_id.encode()))
        _save_npz(folder / COORDS_NAME, foreground_coords(pre.label, config.max_fg_coords, seed))
    else:
        (folder / LABEL_NAME).unlink(missing_ok=True)
        (folder / COORDS_NAME).unlink(missing_ok=True)
    meta["has_label"] = pre.label is not None
    meta["image_dtype"] = config.dtype
    meta["written_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    write_text_atomic(folder / META_NAME, json.dumps(meta, indent=1))
    return folder


def read_meta(cache_dir: str | Path, case_id: str) -> dict[str, Any] | None:
    """The case's ``meta.json`` as a dict, or ``None`` if the case is absent or incomplete."""
    path = Path(cache_dir) / case_id / META_NAME
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def is_current(cache_dir: str | Path, case: Case, config: PreprocessConfig) -> bool:
    """True if ``case`` is cached completely with the same config hash and unchanged source files."""
    meta = read_meta(cache_dir, case.case_id)
    return (meta is not None and meta.get("config_hash") == config.hash()
            and meta.get("sources") == source_stamps(case))


def load_cached(cache_dir: str | Path, case_id: str, mmap: bool = True
                ) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    """Read a cached case.

    Returns:
        ``(image, label, meta)``: image (4, x, y, z) in the stored dtype, label (x, y, z) uint8 or None,
        memory-mapped read-only when ``mmap`` (default) so only the touched pages are read.
    Raises:
        BratsInputError: the case is absent or incomplete (no ``meta.json``).
    """
    folder = Path(cache_dir) / case_id
    meta = read_meta(cache_dir, case_id)
    if meta is None:
        raise BratsInputError(f"{folder}: no complete cached case (meta.json missing); run `brats preprocess`")
    mode = "r" if mmap else None
    image = np.load(folder / IMAGE_NAME, mmap_mode=mode)
    label = np.load(folder / LABEL_NAME, mmap_mode=mode) if meta.get("has_label") else None
    return image, label, meta


def cached_case_ids(cache_dir: str | Path) -> list[str]:
    """Sorted ids of the complete cases (with ``meta.json``) in ``cache_dir``."""
    root = Path(cache_dir)
    if not root.is_dir():
        return []
    return sorted(p.parent.name for p in root.glob(f"*/{META_NAME}"))


def cache_case(case: Case, cache_dir: str | Path, config: PreprocessConfig = PreprocessConfig(),
               force: bool = False) -> dict[str, Any]:
    """Preprocess and cache one case unless its cache is current.

    Returns:
        ``{"case_id", "status" ("built" | "skipped"), "seconds" (wall time), "bytes" (cache size on
        disk), "shape"}``.
    """
    start = time.perf_counter()
    status = "skipped"
    if force or not is_current(cache_dir, case, config):
        stamps = source_stamps(case)
        pre = preprocess_case(load_case(case), config)
        write_cached_case(cache_dir, pre, config, {"sources": stamps})
        status = "built"
    folder = Path(cache_dir) / case.case_id
    meta = read_meta(cache_dir, case.case_id) or {}
    return {
        "case_id": case.case_id,
        "status": status,
        "seconds": time.perf_counter() - start,
        "bytes": sum(p.stat().st_size for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")),
        "shape": tuple(meta.get("shape", ())),
    }


def _worker_init() -> None:
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass


def preprocess_dataset(data_dir: str | Path, cache_dir: str | Path,
                       config: PreprocessConfig = PreprocessConfig(), workers: int | None = None,
                       progress: bool = True, case_ids: Iterable[str] | None = None,
                       force: bool = False) -> list[dict[str, Any]]:
    """Preprocess every case with images under ``data_dir`` into ``cache_dir``, in parallel.

    Cases whose cache is current (same config hash, unchanged source size and mtime) are skipped; stale
    or incomplete ones are rebuilt. Label-only folders are ignored.

    Args:
        data_dir: dataset root (any layout :func:`brats_lib.io.discover_cases` recognises).
        cache_dir: cache root (created).
        config: settings.
        workers: processes (default: CPU count, at most the number of cases); ``<= 1`` runs in-process.
        progress: show a tqdm bar.
        case_ids: restrict to these case ids.
        force: rebuild even current cases.
    Returns:
        One :func:`cache_case` record per case, sorted by case id.
    Raises:
        BratsInputError: from discovery or from a case (the first failure; its message names the case).
    """
    cases = [c for c in discover_cases(data_dir, require_images=False) if c.has_images]
    if case_ids is not None:
        wanted = set(case_ids)
        cases = [c for c in cases if c.case_id in wanted]
    if not cases:
        raise BratsInputError(f"{data_dir}: no case with images to preprocess")
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    records = []
    if not force:  # checking staleness is cheap: do it here and start processes only for real work
        records = [cache_case(c, cache_dir, config) for c in cases if is_current(cache_dir, c, config)]
        done = {r["case_id"] for r in records}
        cases = [c for c in cases if c.case_id not in done]
    workers = min(workers or os.cpu_count() or 1, max(len(cases), 1))
    from .progress import tqdm

    bar = tqdm(total=len(cases), desc="preprocess", unit="case", disable=not progress or not cases)
    try:
        if workers <= 1:
            for case in cases:
                records.append(cache_case(case, cache_dir, config, force))
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=workers, initializer=_worker_init) as pool:
                futures = [pool.submit(cache_case, case, cache_dir, config, force) for case in cases]
                try:
                    for future in as_completed(futures):
                        records.append(future.result())
                        bar.update()
                except BaseException:
                    for f in futures:
                        f.cancel()
                    raise
    finally:
        bar.close()
    return sorted(records, key=lambda r: r["case_id"])
