"""Dataset summary tables for exploratory analysis: pure functions returning :class:`pandas.DataFrame`.

* :func:`cases_table` — one row per case: id, patient, layout, label present, shape, spacing, orientation
  (read from the NIfTI headers only, so it is fast on a large dataset);
* :func:`label_volumes` / :func:`label_volumes_table` — volume in mL of each scored region of
  :data:`brats_lib.labels.REGIONS` (voxel count × voxel volume, so anisotropic spacing is handled);
* :func:`intensity_samples` / :func:`intensity_samples_table` — a fixed-size random sample of voxel
  intensities per modality and region (raw and z-scored within the brain), small enough to plot quickly;
* :func:`dataset_tables` — both of the last two in one pass that loads each case once.

Every table is in "long" form (one observation per row) so that seaborn can plot it directly.
"""

from __future__ import annotations

import os
from typing import Iterable, Sequence

import nibabel as nib
import numpy as np
import pandas as pd

from .paths import project_root, resolve_path  # noqa: F401 (re-exported for notebooks)
from .io import MODALITIES, Case, LoadedCase, discover_cases, load_case
from .labels import REGION_ORDER, REGIONS, region_mask

#: Region name used for brain voxels outside every label (the reference tissue of intensity plots).
BRAIN_REGION = "brain (no label)"

#: Columns of :func:`cases_table`.
CASE_COLUMNS = ("case_id", "patient", "timepoint", "layout", "has_label", "shape", "spacing_mm",
                "orientation", "voxel_ml")


def as_cases(cases: str | os.PathLike | Iterable[Case], max_cases: int | None = None) -> list[Case]:
    """``cases`` itself (a sequence of :class:`Case`) or the cases discovered in a folder, first
    ``max_cases`` of them (all if ``None``)."""
    if isinstance(cases, (str, os.PathLike)):
        cases = discover_cases(resolve_path(cases))
    cases = list(cases)
    return cases if max_cases is None else cases[: int(max_cases)]


def _header_summary(case: Case) -> tuple[tuple[int, ...], tuple[float, ...], str]:
    path = next(iter(case.image_paths.values()), case.seg_path)
    img = nib.load(path)
    affine = np.asarray(img.affine, dtype=np.float64)
    spacing = tuple(round(float(s), 4) for s in np.linalg.norm(affine[:3, :3], axis=0))
    shape = tuple(int(s) for s in img.shape[:3])
    return shape, spacing, "".join(nib.aff2axcodes(affine))


def cases_table(cases: str | os.PathLike | Iterable[Case], max_cases: int | None = None) -> pd.DataFrame:
    """One row per case (columns :data:`CASE_COLUMNS`), read from the headers of the first image.

    ``shape`` is in voxels, ``spacing_mm`` the voxel size in mm per array axis, ``voxel_ml`` the volume
    of one voxel in mL.
    """
    rows = []
    for case in as_cases(cases, max_cases):
        shape, spacing, orientation = _header_summary(case)
        rows.append({
            "case_id": case.case_id,
            "patient": case.patient_id,
            "timepoint": case.timepoint,
            "layout": case.layout,
            "has_label": case.has_label,
            "shape": shape,
            "spacing_mm": spacing,
            "orientation": orientation,
            "voxel_ml": float(np.prod(spacing)) / 1000.0,
        })
    return pd.DataFrame(rows, columns=list(CASE_COLUMNS))


def label_volumes(label: np.ndarray, spacing: Sequence[float],
                  regions: Sequence[str] = REGION_ORDER) -> dict[str, float]:
    """Region → volume in mL of a 2024-convention label map with voxel size ``spacing`` (mm)."""
    voxel_ml = float(np.prod(np.asarray(spacing, dtype=np.float64))) / 1000.0
    return {region: int(np.count_nonzero(region_mask(label, region))) * voxel_ml for region in regions}


def _volume_rows(loaded: LoadedCase, regions: Sequence[str]) -> list[dict]:
    if loaded.label is None:
        return []
    spacing = loaded.geometry.spacing
    voxel_ml = float(np.prod(spacing)) / 1000.0
    rows = []
    for region in regions:
        voxels = int(np.count_nonzero(region_mask(loaded.label, region)))
        rows.append({"case_id": loaded.case.case_id, "region": region, "voxels": voxels,
                     "volume_ml": voxels * voxel_ml})
    return rows


VOLUME_COLUMNS = ("case_id", "region", "voxels", "volume_ml")
INTENSITY_COLUMNS = ("case_id", "modality", "region", "intensity", "zscore")


def brain_mask(image: np.ndarray) -> np.ndarray:
    """Voxels where any modality is non-zero (BraTS images are skull-stripped, background is 0)."""
    return np.any(image != 0, axis=0)


def intensity_samples(image: np.ndarray, label: np.ndarray | None, n_per_region: int = 500,
                      seed: int | np.random.Generator = 0, regions: Sequence[str] = REGION_ORDER,
                      case_id: str = "") -> pd.DataFrame:
    """Random voxel intensities per modality and region of one case (columns :data:`INTENSITY_COLUMNS`).

    Args:
        image: (4, X, Y, Z) in :data:`~brats_lib.io.MODALITIES` order.
        label: 2024-convention map or ``None`` (then only :data:`BRAIN_REGION` is sampled).
        n_per_region: voxels drawn (without replacement) per region; fewer if the region is smaller.
            The same voxels are used for every modality.
        seed: seed or generator of the draw.
        regions: scored regions to sample besides :data:`BRAIN_REGION` (empty regions are skipped).
    Returns:
        ``intensity`` is the raw value, ``zscore`` the value standardised by the mean and standard
        deviation of that modality over the whole brain mask of the case (comparable across cases).
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    brain = brain_mask(image)
    masks = {}
    if label is not None:
        masks[BRAIN_REGION] = brain & (label == 0)
        for region in regions:
            masks[region] = region_mask(label, region)
    else:
        masks[BRAIN_REGION] = brain
    flat_image = image.reshape(image.shape[0], -1)
    brain_flat = brain.reshape(-1)
    stats = []
    for channel in range(image.shape[0]):
        values = flat_image[channel, brain_flat]
        mean = float(values.mean()) if values.size else 0.0
        std = float(values.std()) if values.size else 1.0
        stats.append((mean, std if std > 0 else 1.0))
    frames = []
    for region, mask in masks.items():
        index = np.flatnonzero(mask.reshape(-1))
        if index.size == 0:
            continue
        if index.size > n_per_region:
            index = np.sort(rng.choice(index, size=n_per_region, replace=False))
        for channel, modality in enumerate(MODALITIES[: image.shape[0]]):
            values = flat_image[channel, index].astype(np.float64)
            mean, std = stats[channel]
            frames.append(pd.DataFrame({
                "case_id": case_id, "modality": modality, "region": region,
                "intensity": values, "zscore": (values - mean) / std,
            }))
    if not frames:
        return pd.DataFrame(columns=list(INTENSITY_COLUMNS))
    return pd.concat(frames, ignore_index=True)


def dataset_tables(cases: str | os.PathLike | Iterable[Case], max_cases: int | None = None,
                   n_per_region: int = 500, seed: int = 0,
                   regions: Sequence[str] = REGION_ORDER) -> dict[str, pd.DataFrame]:
    """Load each case once and return ``{"volumes": …, "intensities": …}`` (see the two functions below)."""
    rng = np.random.default_rng(seed)
    volume_rows: list[dict] = []
    intensity_frames = []
    for case in as_cases(cases, max_cases):
        loaded = load_case(case)
        volume_rows.extend(_volume_rows(loaded, regions))
        intensity_frames.append(intensity_samples(loaded.image, loaded.label, n_per_region, rng,
                                                  regions, case.case_id))
    volumes = pd.DataFrame(volume_rows, columns=list(VOLUME_COLUMNS))
    intensities = (pd.concat(intensity_frames, ignore_index=True) if intensity_frames
                   else pd.DataFrame(columns=list(INTENSITY_COLUMNS)))
    return {"volumes": volumes, "intensities": intensities}


def label_volumes_table(cases: str | os.PathLike | Iterable[Case], max_cases: int | None = None,
                        regions: Sequence[str] = REGION_ORDER) -> pd.DataFrame:
    """One row per (labelled case, region): ``voxels`` and ``volume_ml`` (columns :data:`VOLUME_COLUMNS`)."""
    rows: list[dict] = []
    for case in as_cases(cases, max_cases):
        if case.has_label:
            rows.extend(_volume_rows(load_case(case), regions))
    return pd.DataFrame(rows, columns=list(VOLUME_COLUMNS))


def intensity_samples_table(cases: str | os.PathLike | Iterable[Case], max_cases: int | None = None,
                            n_per_region: int = 500, seed: int = 0,
                            regions: Sequence[str] = REGION_ORDER) -> pd.DataFrame:
    """:func:`intensity_samples` of every case, concatenated."""
    return dataset_tables(cases, max_cases, n_per_region, seed, regions)["intensities"]


def volume_summary(volumes: pd.DataFrame) -> pd.DataFrame:
    """Per region: number of cases, cases where the region is present, median / min / max volume (mL)."""
    if volumes.empty:
        return pd.DataFrame(columns=["cases", "present", "median_ml", "min_ml", "max_ml"])
    grouped = volumes.groupby("region", sort=False)["volume_ml"]
    summary = pd.DataFrame({
        "cases": grouped.size(),
        "present": grouped.apply(lambda v: int((v > 0).sum())),
        "median_ml": grouped.median(),
        "min_ml": grouped.min(),
        "max_ml": grouped.max(),
    })
    order = [r for r in REGION_ORDER if r in summary.index] + [r for r in summary.index
                                                              if r not in REGION_ORDER]
    return summary.loc[order]


__all__ = [
    "BRAIN_REGION", "CASE_COLUMNS", "VOLUME_COLUMNS", "INTENSITY_COLUMNS", "REGIONS", "project_root",
    "resolve_path", "as_cases", "cases_table", "label_volumes", "brain_mask", "intensity_samples",
    "dataset_tables", "label_volumes_table", "intensity_samples_table", "volume_summary",
]
