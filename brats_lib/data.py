"""Patient-level splits and the patch data pipeline over the preprocessing cache.

* :func:`make_splits` / :func:`save_splits` / :func:`load_splits`: train/val/test by patient (every
  timepoint of a patient on one side), saved as JSON so every run and notebook uses the same split.
* :class:`PatchDataset`: fixed-size patches read from the memory-mapped cache, with foreground and
  rare-label oversampling; sample ``i`` depends only on ``(seed, epoch, i)``.
* :func:`make_loader`: a ``DataLoader`` over it with sensible worker settings.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ._atomic import write_text_atomic
from .io import BratsInputError, Case, parse_case_id
from .preprocess import COORDS_NAME, FOREGROUND_LABELS, IMAGE_NAME, LABEL_NAME, read_meta

SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")

# ------------------------------------------------------------------------------------------------ splits


def patient_of(case: Case | str) -> str:
    """Patient id of a :class:`~brats_lib.io.Case` or case id (``BraTS-GLI-00012-001`` → ``00012``,
    ``Brats18_CBICA_ABM_1`` → ``CBICA_ABM``: :func:`brats_lib.io.parse_case_id`); a case id in no known naming
    is its own patient."""
    if isinstance(case, Case):
        return case.patient_id
    return parse_case_id(case).patient


def _split_counts(n: int, fractions: Sequence[float]) -> list[int]:
    """Patients per split for ``n`` patients: largest-remainder rounding of ``fractions * n``, then at least
    one patient in every split with a positive fraction while ``n`` allows it (taken from the largest)."""
    f = np.asarray(fractions, dtype=np.float64)
    f = f / f.sum()
    raw = f * n
    counts = np.floor(raw).astype(int)
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[: n - counts.sum()]] += 1
    for k in np.flatnonzero((f > 0) & (counts == 0)):
        donor = int(np.argmax(counts))
        if counts[donor] > 1:
            counts[donor] -= 1
            counts[k] += 1
    return counts.tolist()


def make_splits(cases: Iterable[Case | str], fractions: Sequence[float] = (0.7, 0.15, 0.15),
                seed: int = 0) -> dict[str, list[str]]:
    """Split cases into train/val/test by patient.

    Patients are sorted, shuffled with ``seed`` and dealt out in proportion to ``fractions`` (of patients),
    so the result does not depend on the input order. With >= 3 patients, val and test each get at least
    one patient.

    Args:
        cases: :class:`~brats_lib.io.Case` objects or case ids.
        fractions: (train, val, test) fractions, non-negative, summing to > 0 (normalised).
        seed: shuffle seed.
    Returns:
        ``{"train": [case ids], "val": [...], "test": [...]}``, each sorted.
    """
    if len(fractions) != len(SPLIT_NAMES) or min(fractions) < 0 or sum(fractions) <= 0:
        raise ValueError(f"fractions must be three non-negative numbers with a positive sum, got {fractions}")
    by_patient: dict[str, list[str]] = {}
    for case in cases:
        case_id = case.case_id if isinstance(case, Case) else str(case)
        by_patient.setdefault(patient_of(case), []).append(case_id)
    patients = sorted(by_patient)
    rng = np.random.default_rng(seed)
    patients = [patients[i] for i in rng.permutation(len(patients))]
    counts = _split_counts(len(patients), fractions)
    splits, start = {}, 0
    for name, count in zip(SPLIT_NAMES, counts):
        splits[name] = sorted(cid for p in patients[start:start + count] for cid in by_patient[p])
        start += count
    return splits


def save_splits(splits: Mapping[str, Sequence[str]], path: str | Path, **info: Any) -> Path:
    """Write ``splits`` (and any JSON-ready ``info``, e.g. seed) to ``path`` as JSON, atomically."""
    payload = {name: list(splits.get(name, [])) for name in SPLIT_NAMES}
    if info:
        payload["info"] = info
    write_text_atomic(path, json.dumps(payload, indent=1) + "\n")
    return Path(path)


def load_splits(path: str | Path) -> dict[str, list[str]]:
    """Read a split file from :func:`save_splits` → ``{"train": [...], "val": [...], "test": [...]}``.

    Raises:
        BratsInputError: missing file, bad JSON, or a case in more than one split.
    """
    path = Path(path)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise BratsInputError(f"{path}: split file does not exist") from exc
    except json.JSONDecodeError as exc:
        raise BratsInputError(f"{path}: not valid JSON ({exc})") from exc
    splits = {name: [str(c) for c in payload.get(name, [])] for name in SPLIT_NAMES}
    seen: dict[str, str] = {}
    for name, ids in splits.items():
        for cid in ids:
            if cid in seen:
                raise BratsInputError(f"{path}: case {cid} is in both {seen[cid]!r} and {name!r}")
            seen[cid] = name
    return splits


# ------------------------------------------------------------------------------------------------ patches


def _as_triple(size: int | Sequence[int]) -> tuple[int, int, int]:
    t = (int(size),) * 3 if np.isscalar(size) else tuple(int(s) for s in size)
    if len(t) != 3 or min(t) < 1:
        raise ValueError(f"patch_size must be a positive int or three positive ints, got {size}")
    return t  # type: ignore[return-value]


def patch_start_range(dim: int, patch: int) -> tuple[int, int]:
    """Inclusive (lowest, highest) start index of a ``patch``-voxel window along an axis of ``dim`` voxels:
    inside the volume when it fits, otherwise covering it with zero padding on both sides."""
    return (min(0, dim - patch), max(0, dim - patch))


def read_window(array: np.ndarray, start: Sequence[int], size: Sequence[int]) -> np.ndarray:
    """Copy a window from the last three axes of ``array`` (C, X, Y, Z) or (X, Y, Z), zero-padded where it
    leaves the volume; only the overlapping part is read (cheap on a memory map). Same dtype as ``array``."""
    lead = array.shape[:-3]
    spatial = array.shape[-3:]
    out = np.zeros(lead + tuple(size), dtype=array.dtype)
    src, dst = [], []
    for s, n, dim in zip(start, size, spatial):
        lo, hi = max(s, 0), min(s + n, dim)
        if hi <= lo:
            return out
        src.append(slice(lo, hi))
        dst.append(slice(lo - s, hi - s))
    ell = (slice(None),) * len(lead)
    out[ell + tuple(dst)] = array[ell + tuple(src)]
    return out


class _CaseFiles:
    """Memory maps and foreground coordinates of one cached case, opened on demand."""

    def __init__(self, folder: Path):
        self.image = np.load(folder / IMAGE_NAME, mmap_mode="r")
        self.label = np.load(folder / LABEL_NAME, mmap_mode="r")
        with np.load(folder / COORDS_NAME) as npz:
            self.coords = {k: npz[f"label_{k}"] for k in FOREGROUND_LABELS}


class PatchDataset(Dataset):
    """Random fixed-size patches from cached cases, with foreground and rare-label oversampling.

    Sample ``i`` of epoch ``e`` is drawn from ``numpy.random.default_rng((seed, e, i))``, so it does not
    depend on the worker that loads it; call :meth:`set_epoch` for fresh patches each epoch.

    Patch choice: a fraction ``oversample_foreground`` = p of the indices (index ``i`` where
    ``floor((i + 1) * p) > floor(i * p)``: evenly spread, exactly ``floor(n * p)`` of any first ``n``, not
    left to chance) is centred on a tumour voxel; the label to centre on is drawn uniformly from the choices "each of ``rare_labels`` present in
    the case" and "any foreground voxel", so rare labels are sampled on purpose. Other patches are
    uniform over the valid windows. Windows larger than the volume are zero-padded (image 0 = background
    after z-scoring, label 0).

    Memory: only the case metadata (shape, label counts) is kept for all cases; image and label are
    memory-mapped per worker and at most ``max_open`` cases are held open (least recently used closed).

    Args:
        cache_dir: cache root from :func:`brats_lib.preprocess.preprocess_dataset`.
        case_ids: cases to draw from (each must have a label).
        patch_size: int or (px, py, pz) voxels, e.g. 128 at full resolution, 64 for the demo profile.
        oversample_foreground: fraction p in [0, 1] of tumour-centred patches.
        rare_labels: labels sampled on purpose (default NETC 1, ET 3, RC 4).
        samples_per_epoch: dataset length.
        seed: base seed.
        max_open: cases kept memory-mapped per process.

    Items: ``(image (4, px, py, pz) float32 tensor, label (px, py, pz) int64 tensor)``.
    """

    def __init__(self, cache_dir: str | Path, case_ids: Sequence[str], patch_size: int | Sequence[int] = 128,
                 oversample_foreground: float = 0.33, rare_labels: Sequence[int] = (1, 3, 4),
                 samples_per_epoch: int = 250, seed: int = 0, max_open: int = 8):
        if not 0.0 <= oversample_foreground <= 1.0:
            raise ValueError(f"oversample_foreground must be in [0, 1], got {oversample_foreground}")
        self.cache_dir = Path(cache_dir)
        self.case_ids = list(case_ids)
        if not self.case_ids:
            raise ValueError("PatchDataset needs at least one case id")
        self.patch_size = _as_triple(patch_size)
        self.oversample_foreground = float(oversample_foreground)
        self.rare_labels = tuple(int(k) for k in rare_labels)
        self.samples_per_epoch = int(samples_per_epoch)
        self.seed = int(seed)
        self.epoch = 0
        self.max_open = max(1, int(max_open))
        self.shapes: list[tuple[int, int, int]] = []
        self.present: list[tuple[int, ...]] = []
        for cid in self.case_ids:
            meta = read_meta(self.cache_dir, cid)
            if meta is None:
                raise BratsInputError(f"{self.cache_dir / cid}: not a complete cached case (no meta.json)")
            if not meta.get("has_label"):
                raise BratsInputError(f"{self.cache_dir / cid}: cached case has no label; cannot train on it")
            self.shapes.append(tuple(meta["shape"]))
            counts = meta.get("label_voxels") or {}
            self.present.append(tuple(k for k in FOREGROUND_LABELS if counts.get(str(k), 0) > 0))
        self._open: OrderedDict[int, _CaseFiles] = OrderedDict()
        self._pid = os.getpid()

    def __len__(self) -> int:
        return self.samples_per_epoch

    def set_epoch(self, epoch: int) -> None:
        """Draw different (but reproducible) patches in ``epoch``."""
        self.epoch = int(epoch)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_open"] = OrderedDict()  # memory maps are reopened lazily in each worker
        return state

    def _files(self, index: int) -> _CaseFiles:
        if self._pid != os.getpid():  # forked worker: do not share the parent's maps
            self._open, self._pid = OrderedDict(), os.getpid()
        files = self._open.pop(index, None)
        if files is None:
            files = _CaseFiles(self.cache_dir / self.case_ids[index])
        self._open[index] = files
        while len(self._open) > self.max_open:
            self._open.popitem(last=False)
        return files

    def is_foreground_index(self, index: int) -> bool:
        """Whether sample ``index`` is forced onto tumour (exactly ``floor(n * p)`` of the first ``n``)."""
        p = self.oversample_foreground
        return int(np.floor((index + 1) * p + 1e-9)) > int(np.floor(index * p + 1e-9))

    def _choose_centre(self, rng: np.random.Generator, files: _CaseFiles, present: Sequence[int]
                       ) -> np.ndarray | None:
        """A (3,) voxel centre on tumour, or None if the case has no foreground."""
        if not present:
            return None
        choices: list[tuple[int, ...]] = [(k,) for k in self.rare_labels if k in present]
        choices.append(tuple(present))
        labels = choices[int(rng.integers(len(choices)))]
        if len(labels) == 1:
            coords = files.coords[labels[0]]
        else:
            sizes = np.array([len(files.coords[k]) for k in labels])
            pick = int(rng.integers(sizes.sum()))
            k = labels[int(np.searchsorted(np.cumsum(sizes), pick, side="right"))]
            coords = files.coords[k]
        return coords[int(rng.integers(len(coords)))].astype(np.int64)

    def sample_window(self, index: int, epoch: int | None = None) -> tuple[int, tuple[int, int, int], bool]:
        """``(case index, window start (3 ints, may be negative), tumour-centred?)`` of sample ``index`` of
        ``epoch`` (default: the epoch of :meth:`set_epoch`)."""
        epoch = self.epoch if epoch is None else int(epoch)
        rng = np.random.default_rng((self.seed, epoch, int(index)))
        case = int(rng.integers(len(self.case_ids)))
        shape, size = self.shapes[case], self.patch_size
        ranges = [patch_start_range(d, p) for d, p in zip(shape, size)]
        centre = None
        if self.is_foreground_index(index):
            centre = self._choose_centre(rng, self._files(case), self.present[case])
        if centre is None:
            start = [int(rng.integers(lo, hi + 1)) for lo, hi in ranges]
        else:
            start = [int(np.clip(c - p // 2, lo, hi)) for c, p, (lo, hi) in zip(centre, size, ranges)]
        return case, tuple(start), centre is not None  # type: ignore[return-value]

    def __getitem__(self, index: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample ``index`` of the current epoch, or ``(epoch, index)`` (from :class:`EpochSampler`)."""
        epoch, index = index if isinstance(index, tuple) else (None, index)
        if not 0 <= index < len(self):
            raise IndexError(index)
        case, start, _ = self.sample_window(index, epoch)
        files = self._files(case)
        image = read_window(files.image, start, self.patch_size).astype(np.float32)
        label = read_window(files.label, start, self.patch_size).astype(np.int64)
        return torch.from_numpy(image), torch.from_numpy(label)


class EpochSampler(torch.utils.data.Sampler):
    """Indices ``(epoch, i)`` for ``i`` in ``indices``, with the epoch set in the main process.

    The epoch travels with each index, so a loader with *persistent* workers (started once, not once per epoch)
    still draws each epoch's own patches: :class:`PatchDataset` sample ``(e, i)`` depends on ``(seed, e, i)``
    only, whichever worker loads it.
    """

    def __init__(self, indices: Iterable[int]):
        self.indices = [int(i) for i in indices]
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        epoch = self.epoch
        return iter([(epoch, i) for i in self.indices])

    def __len__(self) -> int:
        return len(self.indices)


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


def make_loader(dataset: Dataset, batch_size: int = 2, workers: int | None = None,
                pin_memory: bool | None = None, prefetch_factor: int = 2,
                sampler: EpochSampler | None = None) -> DataLoader:
    """A ``DataLoader`` over a :class:`PatchDataset` (or any map-style dataset).

    Args:
        dataset: the dataset; its own sampling is random, so the loader does not shuffle.
        batch_size: patches per batch.
        workers: loader processes (default ``min(4, cpu_count - 1)``, 0 loads in the main process).
        pin_memory: default: when CUDA is available.
        prefetch_factor: batches prefetched per worker.
        sampler: an :class:`EpochSampler`: the workers are then persistent (started once; set the sampler's
            epoch before each epoch); without one they are re-created at each iteration over the loader and see
            the dataset's current epoch.
    """
    if workers is None:
        workers = max(0, min(4, (os.cpu_count() or 1) - 1))
    if pin_memory is None:
        pin_memory = torch.cuda.is_available()
    kwargs: dict[str, Any] = {}
    if workers > 0:
        kwargs.update(worker_init_fn=_worker_init, prefetch_factor=prefetch_factor,
                      persistent_workers=sampler is not None)
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers, sampler=sampler,
                      pin_memory=pin_memory, drop_last=False, **kwargs)
