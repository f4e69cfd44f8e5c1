"""Every analysis of a case in one pass, and of a folder of predictions per model, streamed case by case.

:func:`analyse_pair` runs the error map (:mod:`.errors`), the boundary distances (:mod:`.boundaries`), the
lesions (:mod:`.lesions`) and, on request, the per-patient error projections (:mod:`.heatmaps`) on one
prediction / ground-truth pair; volumes come from the error table (``gt_ml``, ``pred_ml``).
:func:`analyse_predictions` pairs the prediction folders of several models with the ground truths the way
``brats evaluate`` does (:mod:`.pairs`), loads one case at a time, and accumulates fixed-size results
(boundary-distance histograms, :class:`~.heatmaps.ErrorFrequency`), so memory does not grow with the cases.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..labels import LABEL_NAMES, LABELS_2024, REGION_ORDER
from .boundaries import HISTOGRAM_EDGES, boundary_stats, distance_histogram, region_boundaries
from .errors import ERROR_COLUMNS, confusion_matrix, error_rows
from .heatmaps import FREQUENCY_REGIONS, ErrorFrequency, error_projections
from .lesions import LESION_TABLE_COLUMNS, lesion_table
from .pairs import Pair, load_pair, plan_pairs
from .volumes import volume_agreement


@dataclass
class CaseAnalysis:
    """All analyses of one case (tables with a ``case`` column, one row per region unless stated)."""

    case_id: str
    errors: pd.DataFrame
    confusion: np.ndarray
    boundaries: pd.DataFrame
    histograms: dict[str, np.ndarray]
    lesions: pd.DataFrame
    projections: dict | None = None


def analyse_pair(pair: Pair, regions: Sequence[str] = REGION_ORDER, projections: bool = False) -> CaseAnalysis:
    """Error table, confusion matrix, boundary statistics and histograms, lesions (and error projections)."""
    matrix = confusion_matrix(pair.pred, pair.gt)
    errors = pd.DataFrame(error_rows(matrix, pair.voxel_ml, pair.case_id, regions), columns=list(ERROR_COLUMNS))
    distances = region_boundaries(pair.pred, pair.gt, pair.spacing, regions)
    boundaries = pd.DataFrame([{"case": pair.case_id, "region": r, **boundary_stats(d)}
                               for r, d in distances.items()])
    histograms = {r: distance_histogram(d) for r, d in distances.items()}
    lesions = lesion_table(pair.pred, pair.gt, pair.affine, pair.case_id, regions)
    mips = error_projections(pair.pred, pair.gt, regions) if projections else None
    return CaseAnalysis(pair.case_id, errors, matrix, boundaries, histograms, lesions, mips)


def confusion_rows(matrix: np.ndarray, voxel_ml: float, case_id: str) -> list[dict]:
    """Long-format rows (case, truth, prediction, voxels, ml) of a 5×5 confusion matrix."""
    return [{"case": case_id, "truth": LABEL_NAMES[t], "prediction": LABEL_NAMES[p], "voxels": int(matrix[t, p]),
             "ml": float(matrix[t, p]) * voxel_ml} for t in LABELS_2024 for p in LABELS_2024]


@dataclass
class AnalysisResults:
    """Tables over cases and models (each with ``model`` and ``case`` columns) and fixed-size accumulators.

    Attributes:
        errors: :data:`~.errors.ERROR_COLUMNS` per model, case and region.
        confusion: long 5×5 confusion per model and case (``truth``, ``prediction``, ``voxels``, ``ml``).
        boundaries: :func:`~.boundaries.boundary_stats` per model, case and region.
        histogram: surfel area (mm²) per model, region and signed-distance bin (``bin_lo_mm``, ``bin_hi_mm``).
        lesions: :func:`~.lesions.lesion_table` rows per model.
        volumes: :func:`~.volumes.volume_agreement` per model, case and region.
        frequency: ``{model: ErrorFrequency}`` (empty when not accumulated).
    """

    errors: pd.DataFrame
    confusion: pd.DataFrame
    boundaries: pd.DataFrame
    histogram: pd.DataFrame
    lesions: pd.DataFrame
    volumes: pd.DataFrame
    frequency: dict[str, ErrorFrequency] = field(default_factory=dict)


def _with_model(frame: pd.DataFrame, model: str) -> pd.DataFrame:
    frame = frame.copy()
    frame.insert(0, "model", model)
    return frame


def _analyse_job(job, regions: Sequence[str], frequency_regions: Sequence[str] | None):
    """One case in a worker: its analysis and its error-frequency counts (``None`` when not accumulated)."""
    pair = load_pair(job)
    result = analyse_pair(pair, regions)
    counts = None
    if frequency_regions is not None:
        counts = ErrorFrequency(frequency_regions)
        counts.add_pair(pair)
    return result, pair.voxel_ml, counts


def analyse_predictions(pred_dirs: Mapping[str, str | Path], gt_dir: str | Path,
                        case_ids: Sequence[str] | None = None, regions: Sequence[str] = REGION_ORDER,
                        frequency_regions: Sequence[str] | None = FREQUENCY_REGIONS,
                        progress: bool = False, workers: int = 1) -> AnalysisResults:
    """Run :func:`analyse_pair` on every case of every model, one case in memory at a time (per worker).

    Args:
        pred_dirs: ``{model: folder of <case-id>.nii.gz}``.
        gt_dir: ground truths (dataset root in either layout, or a flat folder), as ``brats evaluate --gt``.
        case_ids: the cases (default: every prediction of each folder).
        frequency_regions: regions of the cross-patient :class:`~.heatmaps.ErrorFrequency` (``None``: not
            accumulated; needs every case on the MNI152 1 mm grid).
        progress: a tqdm bar over cases.
        workers: processes analysing cases in parallel (results are the same for any count, in the same order).
    Raises:
        BratsInputError: a missing prediction or ground truth, unknown labels, or a shape / grid mismatch
            (naming the file).
    """
    errors, confusion, boundaries, lesions = [], [], [], []
    histogram_rows, frequency = [], {}
    plans = {model: plan_pairs(folder, gt_dir, case_ids) for model, folder in pred_dirs.items()}
    bar = None
    if progress:
        from ..progress import tqdm

        bar = tqdm(total=sum(len(p) for p in plans.values()), desc="analyse", unit="case")
    pool = None
    if workers > 1 and sum(len(p) for p in plans.values()) > 1:
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(max_workers=int(workers))
    try:
        for model, jobs in plans.items():
            totals = {r: np.zeros(len(HISTOGRAM_EDGES) - 1) for r in regions}
            if frequency_regions is not None:
                frequency[model] = ErrorFrequency(frequency_regions)
            args = (jobs, [regions] * len(jobs), [frequency_regions] * len(jobs))
            for result, voxel_ml, counts in (pool.map(_analyse_job, *args) if pool else map(_analyse_job, *args)):
                errors.append(_with_model(result.errors, model))
                confusion.append(_with_model(pd.DataFrame(confusion_rows(result.confusion, voxel_ml,
                                                                         result.case_id)), model))
                boundaries.append(_with_model(result.boundaries, model))
                lesions.append(_with_model(result.lesions, model))
                for r in regions:
                    totals[r] += result.histograms[r]
                if counts is not None:
                    frequency[model].merge(counts)
                del result, counts
                if bar is not None:
                    bar.update()
            for r in regions:
                for lo, hi, area in zip(HISTOGRAM_EDGES[:-1], HISTOGRAM_EDGES[1:], totals[r]):
                    histogram_rows.append({"model": model, "region": r, "bin_lo_mm": lo, "bin_hi_mm": hi,
                                           "area_mm2": area})
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    if bar is not None:
        bar.close()
    errors_table = pd.concat(errors, ignore_index=True)
    lesion_frames = [f for f in lesions if len(f)]
    return AnalysisResults(
        errors=errors_table,
        confusion=pd.concat(confusion, ignore_index=True),
        boundaries=pd.concat(boundaries, ignore_index=True),
        histogram=pd.DataFrame(histogram_rows),
        lesions=(pd.concat(lesion_frames, ignore_index=True) if lesion_frames
                 else pd.DataFrame(columns=["model", *LESION_TABLE_COLUMNS])),
        volumes=volume_agreement(errors_table),
        frequency=frequency,
    )


__all__ = ["AnalysisResults", "CaseAnalysis", "analyse_pair", "analyse_predictions", "confusion_rows"]
