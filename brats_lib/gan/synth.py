"""New training cases from a trained inpainting GAN: a real case + a tumour label taken from another case.

For each new case (all randomness from ``default_rng((seed, i))``, so a seed gives the same bytes):

1. a **source** case and a **donor** case (another patient where there is one) are drawn from the labelled
   cases; the donor's whole tumour label (its bounding box) is flipped along random axes, turned by a
   random multiple of 90° in the axial plane and **elastically deformed** (a smooth random displacement field,
   :func:`elastic_field`: σ = ``elastic_sigma`` voxels on control points 16 voxels apart, nearest-neighbour
   resampling of the labels; 0 turns it off);
2. it is **placed** at a random brain voxel of the source such that every inserted tumour voxel lies in the
   brain (non-zero in some contrast) and the inpainting region (the inserted tumour dilated by the run's
   ``dilation`` × its resolution factor) does not touch the existing tumour; a pair whose ``tries_per_pair``
   random centres all fail gets a start drawn from all its valid ones (computed exactly), and after
   ``max_tries // tries_per_pair`` pairs without room synthesis gives up with a message;
3. a cube around it, at least the run's ``crop_size`` (larger for a larger tumour: the generator is fully
   convolutional), is normalised as the cache was (clip to the source's in-brain 0.5/99.5 percentiles,
   z-score over the brain), resampled to the GAN's resolution, its region replaced by noise and
   **inpainted**; the output is resampled back (trilinear) and de-normalised;
4. each contrast's inpainted intensities are **matched to the surrounding tissue**: an affine map takes the
   mean and spread of the generated voxels on the inner border of the region to those of the real voxels
   just outside it (the spread ratio bounded to [0.5, 2]), then clipped to the source's intensity range;
   (with ``method="copy_paste"``, the baseline without a GAN, the region gets the donor's own voxels instead,
   flipped, turned and deformed as its label was (trilinear), then matched the same way; a seed gives the same placements either way);
5. only the region's brain voxels are replaced; the new label is the source's label with the inserted one
   written into it (they do not overlap). Every other voxel is the source's, bit for bit.

Cases are written in the official 2024 layout (``BraTS-GLI-<start + i>-000/…-t1n.nii.gz`` …, float32 images,
uint8 label) on the source's grid with :mod:`brats_lib.io`'s atomic writers, each case into a hidden folder
renamed into place when complete; ``provenance.csv`` names each case's source, donor, placement, flips,
rotation, deformation scale and tries. Inputs are checked before anything is written.
"""

from __future__ import annotations

import csv
import io as _io
import math
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from scipy import ndimage
from scipy.signal import fftconvolve
import torch.nn.functional as F

from .._atomic import write_text_atomic
from ..data import read_window
from ..errors import BratsConfigError, BratsInputError
from ..io import (MODALITIES, Case, case_file_name, discover_cases, load_case, load_case_label, load_image,
                  save_label_map, save_nifti)
from ..preprocess import resample_image, resample_majority
from ..progress import tqdm
from .crops import dilate, erode, generator_input
from .train import GanConfig, load_gan_run, network_divisor

#: How the inserted region is filled: the GAN, or the donor's own voxels (the copy-paste baseline, no GAN).
METHODS = ("gan", "copy_paste")

#: Context (voxels of the GAN grid) kept on every side of the inpainting region inside the crop.
CONTEXT = 4

#: Default displacement scale (voxels of the source grid, σ of :func:`elastic_field`) of the inserted label's
#: elastic deformation, and the spacing of the field's control points (voxels).
ELASTIC_SIGMA = 2.0
ELASTIC_CONTROL_SPACING = 16.0
#: Largest change of the elastic displacement between neighbouring voxels (voxels per voxel): below 1, the
#: deformation does not fold the label onto itself.
MAX_ELASTIC_GRADIENT = 0.5


@dataclass
class Insertion:
    """Where one new case came from (a row of ``provenance.csv``)."""

    case_id: str
    source: str
    donor: str
    centre_x: int
    centre_y: int
    centre_z: int
    flips: str  # axes flipped, e.g. "0,2"
    rot90: int  # quarter turns in the axial (x, y) plane
    elastic_sigma: float  # displacement scale of the label's elastic deformation (voxels; 0: none)
    tries: int
    crop_size: int  # GAN-grid voxels
    inserted_voxels: int


def _window(start: Sequence[int], size: Sequence[int], shape: Sequence[int]) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """(volume slices, window slices) of the overlap of a window (start may be negative) with a volume."""
    src, dst = [], []
    for s, n, dim in zip(start, size, shape):
        lo, hi = max(s, 0), min(s + n, dim)
        src.append(slice(lo, max(hi, lo)))
        dst.append(slice(lo - s, lo - s + max(hi - lo, 0)))
    return tuple(src), tuple(dst)


def _dilate_np(mask: np.ndarray, radius: int) -> np.ndarray:
    return dilate(torch.from_numpy(np.ascontiguousarray(mask))[None], radius)[0].numpy()


def _bounding_box(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lowest, highest) voxel index of a non-empty mask along each axis, from its projections (no voxel list)."""
    lo, hi = [], []
    for axis in range(mask.ndim):
        hits = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        lo.append(hits[0])
        hi.append(hits[-1])
    return np.array(lo), np.array(hi)


def valid_starts(brain: np.ndarray, occupied: np.ndarray, piece: np.ndarray, region: np.ndarray,
                 radius: int) -> np.ndarray:
    """Every start voxel (the piece's corner) where a piece fits: the whole piece box inside the volume, every
    ``piece`` voxel inside ``brain``, and ``region`` (the piece's frame grown by ``radius`` on each side, placed at
    start − radius; its part outside the volume ignored) off ``occupied``. (N, 3) int array, C order.

    Both conditions are correlations of binary masks, computed by FFT over the starts that keep the piece's
    voxels inside the brain's bounding box; counts are integers, so a half-voxel tolerance makes them exact.
    """
    shape, size = np.array(brain.shape), np.array(piece.shape)
    if (size > shape).any() or not piece.any() or not brain.any():
        return np.zeros((0, 3), dtype=np.int64)
    (brain_lo, brain_hi), (piece_lo, piece_hi) = _bounding_box(brain), _bounding_box(piece)
    first = np.maximum(brain_lo - piece_lo, 0)  # starts outside this box put a voxel off the brain
    last = np.minimum(brain_hi - piece_hi, shape - size)
    if (last < first).any():
        return np.zeros((0, 3), dtype=np.int64)
    span = tuple(slice(a, b + size_i) for a, b, size_i in zip(first, last, size))
    outside = fftconvolve((~brain[span]).astype(np.float32), piece[::-1, ::-1, ::-1].astype(np.float32), mode="valid")
    # the occupied mask over the same starts, widened by the radius (zeros beyond the volume)
    vol, win = _window(first - radius, last - first + size + 2 * radius, shape)
    near = np.zeros(tuple(last - first + size + 2 * radius), dtype=np.float32)
    near[win] = occupied[vol]
    touch = fftconvolve(near, region[::-1, ::-1, ::-1].astype(np.float32), mode="valid")
    ok = (outside < 0.5) & (touch < 0.5)
    return np.argwhere(ok) + first


def transformed_piece(label: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, list[int], int, np.ndarray]:
    """The bounding box of ``label``'s tumour (values kept, background 0), flipped and turned by ``rng``:
    (piece, flipped axes, quarter turns in the (x, y) plane, the box's lowest voxel in ``label``)."""
    where = np.argwhere(label > 0)
    lo, hi = where.min(0), where.max(0) + 1
    piece = label[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    flips = [a for a in range(3) if rng.random() < 0.5]
    k = int(rng.integers(4))
    return transform(piece, flips, k), flips, k, lo


def elastic_margin(sigma: float) -> int:
    """Voxels by which a piece is padded before an elastic deformation of displacement scale ``sigma``: the
    largest displacement :func:`elastic_field` allows (3 σ), rounded up."""
    return int(math.ceil(3.0 * sigma)) if sigma > 0 else 0


def elastic_field(shape: Sequence[int], rng: np.random.Generator, sigma: float,
                  control_spacing: float = ELASTIC_CONTROL_SPACING) -> np.ndarray:
    """A smooth random displacement field (3, X, Y, Z) float32 in voxels over a box of ``shape``.

    Displacements drawn N(0, σ²) per axis on a coarse grid of control points about ``control_spacing`` voxels
    apart (at least 2 per axis), interpolated with cubic splines to every voxel, clipped to ±3 σ (so that a
    piece padded by :func:`elastic_margin` keeps its whole tumour) and scaled down where needed so that the
    displacement changes by at most half a voxel from one voxel to the next (no folding). ``sigma`` ≤ 0 gives
    zeros.
    """
    shape = tuple(int(s) for s in shape)
    if sigma <= 0:
        return np.zeros((3, *shape), np.float32)
    points = [max(2, int(math.ceil(s / control_spacing)) + 1) for s in shape]
    coarse = rng.normal(0.0, sigma, (3, *points))
    where = np.meshgrid(*[np.linspace(0, p - 1, s) for p, s in zip(points, shape)], indexing="ij")
    field = np.stack([ndimage.map_coordinates(c, where, order=3, mode="nearest") for c in coarse])
    limit = 3.0 * sigma
    field = np.clip(field, -limit, limit)
    steepest = max((float(np.abs(np.diff(field, axis=a)).max()) for a in (1, 2, 3) if field.shape[a] > 1),
                   default=0.0)
    if steepest > MAX_ELASTIC_GRADIENT:
        field *= MAX_ELASTIC_GRADIENT / steepest
    return field.astype(np.float32)


def deform(volume: np.ndarray, field: np.ndarray, order: int) -> np.ndarray:
    """``volume`` (X, Y, Z) or (C, X, Y, Z) resampled at ``voxel + field`` (0 outside): ``order`` 0 (nearest) for
    labels, 1 (trilinear) for images; the dtype is kept. A zero field returns a copy."""
    if not field.any():
        return np.array(volume, copy=True)
    where = np.indices(field.shape[1:], dtype=np.float32) + field
    channels = volume[None] if volume.ndim == 3 else volume
    out = np.stack([ndimage.map_coordinates(c, where, order=order, mode="constant", cval=0, output=c.dtype)
                    for c in channels])
    return out[0] if volume.ndim == 3 else out


def transform(volume: np.ndarray, flips: Sequence[int], k: int) -> np.ndarray:
    """Flip the last three axes of ``volume`` listed in ``flips`` (0–2), then turn by ``k`` quarter turns in the
    plane of the first two of them: the transformation :func:`transformed_piece` drew, for any array."""
    lead = volume.ndim - 3
    if flips:
        volume = np.flip(volume, axis=[lead + a for a in flips])
    return np.ascontiguousarray(np.rot90(volume, k, axes=(lead, lead + 1)))


class _Source:
    """A loaded source case with what placement and normalisation need."""

    def __init__(self, case: Case, clip: tuple[float, float]):
        loaded = load_case(case)
        self.case, self.image, self.label, self.geometry = case, loaded.image, loaded.label, loaded.geometry
        self.brain = self.image.any(axis=0)
        if not self.brain.any():
            raise BratsInputError(f"{case.folder}: empty brain (every contrast is 0 everywhere)")
        self.brain_coords = np.argwhere(self.brain)
        self.low = np.empty(4)
        self.high = np.empty(4)
        self.mean = np.empty(4)
        self.std = np.empty(4)
        self.range = np.empty((4, 2))
        for c in range(4):
            values = self.image[c][self.brain]
            self.low[c], self.high[c] = np.percentile(values, clip)
            clipped = np.clip(values, self.low[c], self.high[c]).astype(np.float64)
            self.mean[c], self.std[c] = clipped.mean(), max(clipped.std(), 1e-6)
            self.range[c] = values.min(), values.max()

    def normalise(self, crop: np.ndarray, brain: np.ndarray) -> np.ndarray:
        z = (np.clip(crop, self.low[:, None, None, None], self.high[:, None, None, None])
             - self.mean[:, None, None, None]) / self.std[:, None, None, None]
        return (z * brain).astype(np.float32)


class Synthesiser:
    """Inserts donor tumours into source cases with a trained GAN run; see the module docstring.

    Raises (at construction, before anything is written):
        BratsConfigError: ``run`` is not a GAN run (or a GanConfig with ``method="gan"``).
        BratsInputError: ``data_dir`` holds fewer than two labelled cases, or ``case_ids`` names a case it
            does not hold.
    """

    def __init__(self, run: str | Path | GanConfig, data_dir: str | Path, case_ids: Sequence[str] | None = None,
                 device: str | torch.device = "cpu", max_tries: int = 200, tries_per_pair: int = 20,
                 method: str = "gan", elastic_sigma: float = ELASTIC_SIGMA):
        from ..device import resolve_device

        if method not in METHODS:
            raise BratsConfigError(f"synthesis method must be one of {list(METHODS)}, got {method!r}")
        self.method = method
        if isinstance(elastic_sigma, bool) or not isinstance(elastic_sigma, (int, float)) or not 0 <= elastic_sigma <= 10:
            raise BratsConfigError(f"elastic deformation sigma must be a number of voxels in [0, 10], got {elastic_sigma!r}")
        self.elastic_sigma = float(elastic_sigma)

        self.device = resolve_device(device)
        if isinstance(run, GanConfig):  # copy-paste needs the run's geometry only, not a trained generator
            if method == "gan":
                raise BratsConfigError("GAN synthesis needs a trained GAN run, not only its config")
            self.generator, self.config = None, run.validate()
            self.divisor = network_divisor(run.generator)
        else:
            self.generator, self.config = load_gan_run(run, device=self.device)
            self.divisor = self.generator.divisor
        cases = discover_cases(data_dir, require_images=False)
        labelled = [c for c in cases if c.has_label and c.has_images]
        if case_ids is not None:
            wanted = set(case_ids)
            missing = sorted(wanted - {c.case_id for c in labelled})
            if missing:
                raise BratsInputError(f"{data_dir}: no labelled case {missing[0]} (of the {len(wanted)} asked for)")
            labelled = [c for c in labelled if c.case_id in wanted]
        if len(labelled) < 2:
            raise BratsInputError(f"{data_dir}: {len(labelled)} case(s) with images and a label (-seg) file; "
                                  "synthesis needs at least two (a source and a donor of the inserted tumour)")
        self.cases = labelled
        self.factor = float(self.config.preprocess.get("downsample", 1))
        self.clip = tuple(self.config.preprocess.get("clip_percentiles", (0.5, 99.5)))
        self.dilation_full = int(math.ceil(self.config.dilation * self.factor))
        self.max_tries, self.tries_per_pair = int(max_tries), int(tries_per_pair)
        self._labels: dict[str, np.ndarray] = {}
        self._source: _Source | None = None

    # ----------------------------------------------------------------------------------------- pieces
    def _label(self, case: Case) -> np.ndarray:
        if case.case_id not in self._labels:
            self._labels[case.case_id] = load_case_label(case)
        return self._labels[case.case_id]

    def _load_source(self, case: Case) -> _Source:
        if self._source is None or self._source.case.case_id != case.case_id:
            self._source = None
            self._source = _Source(case, self.clip)
        return self._source

    def _pair(self, rng: np.random.Generator) -> tuple[Case, Case]:
        source = self.cases[int(rng.integers(len(self.cases)))]
        others = [c for c in self.cases if c.patient_id != source.patient_id and self._has_tumour(c)]
        others = others or [c for c in self.cases if c.case_id != source.case_id and self._has_tumour(c)]
        if not others:
            raise BratsInputError(f"{source.folder}: no other case has a tumour label to insert")
        return source, others[int(rng.integers(len(others)))]

    def _has_tumour(self, case: Case) -> bool:
        return bool((self._label(case) > 0).any())

    def place(self, rng: np.random.Generator) -> tuple[_Source, Case, np.ndarray, np.ndarray, np.ndarray, dict]:
        """(source, donor, piece, its region, its start voxel, details) of a valid placement.

        Each source/donor pair first gets ``tries_per_pair`` random brain voxels as centres (cheap, and what
        most placements need); when none fits, every valid start of that pair is computed exactly
        (:func:`valid_starts`) and one is drawn, so a pair is only given up when it has no room at all.

        Raises:
            BratsInputError: none of ``max_tries // tries_per_pair`` pairs has room.
        """
        tried: list[str] = []
        n_pairs = max(1, self.max_tries // max(1, self.tries_per_pair))
        for pair in range(n_pairs):
            source_case, donor = self._pair(rng)
            source = self._load_source(source_case)
            piece, flips, k, lo = transformed_piece(self._label(donor), rng)
            r = self.dilation_full
            # the elastic field covers the region's frame: the piece padded by the deformation's margin
            # and the dilation; the label is deformed in it and the dilation margin cut off again
            margin = elastic_margin(self.elastic_sigma)
            field = elastic_field(np.array(piece.shape) + 2 * (margin + r), rng, self.elastic_sigma)
            piece = deform(np.pad(piece, margin + r), field, order=0)[(slice(r, -r or None),) * 3]
            region = _dilate_np(np.pad(piece > 0, r), r)
            occupied = source.label > 0
            tried.append(f"{donor.case_id} into {source_case.case_id}")
            details = {"flips": flips, "rot90": k, "lo": lo - margin, "field": field}
            for attempt in range(self.tries_per_pair):
                centre = source.brain_coords[int(rng.integers(len(source.brain_coords)))]
                start = centre - np.array(piece.shape) // 2
                if (start < 0).any() or (start + piece.shape > np.array(source.brain.shape)).any():
                    continue
                box = tuple(slice(s, s + n) for s, n in zip(start, piece.shape))
                if not source.brain[box][piece > 0].all():
                    continue
                vol, win = _window(start - r, region.shape, source.brain.shape)
                if (occupied[vol] & region[win]).any():
                    continue
                # tries: each earlier pair took its random centres and one exact search
                return source, donor, piece, region, start, {
                    **details, "tries": pair * (self.tries_per_pair + 1) + attempt + 1}
            starts = valid_starts(source.brain, occupied, piece > 0, region, r)
            if len(starts):
                start = starts[int(rng.integers(len(starts)))]
                return source, donor, piece, region, start, {**details, "tries": (pair + 1) * (self.tries_per_pair + 1)}
        raise BratsInputError(f"no place for an inserted tumour inside the brain and away from the existing "
                              f"tumour: none of {n_pairs} source/donor pair(s) has room ({self.tries_per_pair} random "
                              f"centres, then an exact search, each; {'; '.join(tried[-3:])}); the cases' brains are "
                              "too small for their tumours")

    # ----------------------------------------------------------------------------------------- inpaint
    @torch.no_grad()
    def make_case(self, index: int, seed: int, case_id: str) -> tuple[np.ndarray, np.ndarray, _Source, Insertion]:
        """(image (4, X, Y, Z) float32, label (X, Y, Z) uint8, source, provenance) of new case ``index``."""
        rng = np.random.default_rng((seed, index))
        source, donor, piece, region, start, details = self.place(rng)
        r = self.dilation_full
        shape = np.array(source.brain.shape)
        divisor = self.divisor
        need = max(region.shape) / self.factor + 2 * CONTEXT
        size = max(self.config.crop_size, int(math.ceil(need / divisor)) * divisor)
        full = int(round(size * self.factor))
        centre = start + np.array(piece.shape) // 2
        wstart = centre - full // 2
        vol, win = _window(wstart, (full,) * 3, shape)
        # the crop: the inserted label, its region (inside the brain), the source's contrasts and brain
        inserted = np.zeros((full,) * 3, np.uint8)
        pstart = start - wstart
        inserted[tuple(slice(s, s + n) for s, n in zip(pstart, piece.shape))] = piece
        region_crop = np.zeros((full,) * 3, bool)
        region_crop[tuple(slice(s - r, s - r + n) for s, n in zip(pstart, region.shape))] = region
        brain_crop = read_window(source.brain, wstart, (full,) * 3)
        region_crop &= brain_crop
        image_crop = read_window(source.image, wstart, (full,) * 3)
        # the GAN's grid
        z = source.normalise(image_crop, brain_crop)
        low = (size,) * 3
        z_low = resample_image(z, low)
        label_low = resample_majority(inserted, low)
        mask_low = resample_image(region_crop[None].astype(np.float32), low)[0] > 0
        noise = torch.randn((1, 4, *low), generator=torch.Generator().manual_seed(int(rng.integers(2**63))))
        x = generator_input(torch.from_numpy(z_low)[None], torch.from_numpy(label_low.astype(np.int64))[None],
                            torch.from_numpy(mask_low)[None, None].float(), noise).to(self.device)
        if self.method == "gan":
            out = self.generator(x).float()
            out = F.interpolate(out, size=(full,) * 3, mode="trilinear", align_corners=False)[0].cpu().numpy()
            generated = out * source.std[:, None, None, None] + source.mean[:, None, None, None]
        else:  # copy-paste: the donor's own voxels of the region, transformed as its label was
            donor_image, _ = load_image(donor)
            shape = tuple(region.shape[i] for i in ((1, 0, 2) if details["rot90"] % 2 else (0, 1, 2)))
            block = transform(read_window(donor_image, details["lo"] - r, shape), details["flips"], details["rot90"])
            block = deform(block, details["field"], order=1)
            generated = np.zeros((4,) + (full,) * 3, np.float32)
            generated[(slice(None),) + tuple(slice(s - r, s - r + n) for s, n in zip(pstart, region.shape))] = block
        # match each contrast to the tissue around the region
        t_region = torch.from_numpy(region_crop)[None]
        outer = (dilate(t_region, 1) & ~t_region)[0].numpy() & brain_crop
        inner = (t_region & ~erode(t_region, 1))[0].numpy()
        for c in range(4):
            if outer.any() and inner.any():
                mu_in, sd_in = generated[c][inner].mean(), generated[c][inner].std()
                mu_out, sd_out = image_crop[c][outer].mean(), image_crop[c][outer].std()
                scale = float(np.clip(sd_out / sd_in, 0.5, 2.0)) if sd_in > 0 and sd_out > 0 else 1.0
                generated[c] = (generated[c] - mu_in) * scale + mu_out
            generated[c] = np.clip(generated[c], *source.range[c])
        # paste into a copy of the source
        image = source.image.copy()
        label = source.label.copy()
        view = image[(slice(None),) + vol]
        paint = region_crop[win]
        view[:, paint] = generated[(slice(None),) + win][:, paint].astype(np.float32)
        label_view = label[vol]
        put = inserted[win] > 0
        label_view[put] = inserted[win][put]
        provenance = Insertion(case_id, source.case.case_id, donor.case_id, *(int(v) for v in centre),
                               ",".join(map(str, details["flips"])), details["rot90"], self.elastic_sigma,
                               details["tries"], size,
                               int((piece > 0).sum()))
        return image, label, source, provenance


def split_case_ids(run: str | Path, split: str) -> list[str]:
    """The case ids of ``split`` (e.g. ``train``) of a GAN run's patient split (its ``splits_file``, else
    ``<cache_dir>/splits.json``).

    Raises:
        BratsConfigError: the run is not a GAN run, its split file is missing, or has no such split.
    """
    from ..data import load_splits

    _, config = load_gan_run(run)
    path = Path(config.splits_file or Path(config.cache_dir) / "splits.json")
    if not path.is_file():
        raise BratsConfigError(f"{path}: the run's split file does not exist (give --data without --split)")
    splits = load_splits(path)
    if not splits.get(split):
        raise BratsConfigError(f"{path}: no split {split!r} (has {sorted(k for k, v in splits.items() if v)})")
    return list(splits[split])


def synthesise(run: str | Path | GanConfig, data_dir: str | Path, out_dir: str | Path, n: int, seed: int = 0,
               case_ids: Sequence[str] | None = None, start: int = 90000, device: str = "cpu",
               max_tries: int = 200, progress: bool = False, replace: bool = False, method: str = "gan",
               elastic_sigma: float = ELASTIC_SIGMA) -> list[Insertion]:
    """Write ``n`` new cases ``BraTS-GLI-<start + i>-000`` into ``out_dir``; returns their provenance.

    ``method``: ``gan`` (inpaint), or ``copy_paste`` (the donor's voxels, intensity-matched: the baseline; the
    same seed gives the same placements with either method). ``run``: a GAN run directory; for ``copy_paste``
    also a :class:`~brats_lib.gan.train.GanConfig` (its resolution, dilation and crop size: no trained generator
    is needed, and the placements equal those of a run of that config). ``replace``: case folders of these ids
    already in ``out_dir`` are replaced (each when its new case is complete) instead of refused.

    Raises (before anything is written):
        BratsConfigError: ``n`` is not a positive integer, ``run`` is not a GAN run, or ``out_dir`` already
            holds one of the case folders.
        BratsInputError: see :class:`Synthesiser`; also a failed placement (cases written before it stay).
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise BratsConfigError(f"--n must be a positive number of cases, got {n!r}")
    if not (0 <= start and start + n <= 100000):
        raise BratsConfigError(f"case numbers {start}..{start + n - 1} do not fit the 5-digit BraTS ids")
    out_dir = Path(out_dir)
    ids = [f"BraTS-GLI-{start + i:05d}-000" for i in range(n)]
    clash = [i for i in ids if (out_dir / i).exists()]
    if clash and not replace:
        raise BratsConfigError(f"{out_dir / clash[0]}: already exists; choose a new --out (or --start)")
    synth = Synthesiser(run, data_dir, case_ids, device=device, max_tries=max_tries, method=method,
                        elastic_sigma=elastic_sigma)
    records: list[Insertion] = []
    for i, case_id in enumerate(tqdm(ids, desc="gan-synth", disable=not progress)):
        image, label, source, provenance = synth.make_case(i, seed, case_id)
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = out_dir / f".{case_id}.partial"
        if tmp.exists():
            shutil.rmtree(tmp)
        for c, modality in enumerate(MODALITIES):
            save_nifti(image[c], source.geometry, tmp / case_file_name(case_id, modality), dtype=np.float32)
        save_label_map(label, source.geometry, tmp / case_file_name(case_id, "seg"))
        if (out_dir / case_id).exists():  # replace: the old case goes only once the new one is complete
            old = out_dir / f".{case_id}.old"
            os.replace(out_dir / case_id, old)
            os.replace(tmp, out_dir / case_id)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out_dir / case_id)
        records.append(provenance)
    buffer = _io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(asdict(records[0])))
    writer.writeheader()
    writer.writerows(asdict(r) for r in records)
    write_text_atomic(out_dir / "provenance.csv", buffer.getvalue())
    return records


__all__ = ["ELASTIC_SIGMA", "METHODS", "Insertion", "Synthesiser", "deform", "elastic_field", "elastic_margin",
           "split_case_ids", "synthesise", "transform", "transformed_piece"]
