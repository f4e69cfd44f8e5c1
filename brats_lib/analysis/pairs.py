"""Prediction / ground-truth pairs on one grid: the input of every per-voxel analysis.

Pairing reuses the folder evaluation of :mod:`brats_lib.metrics.evaluate` (``find_ground_truths``: a dataset
root in either layout or a flat folder of label maps; ``nifti_files``: a folder of ``<case-id>.nii.gz``
predictions; :class:`~brats_lib.metrics.evaluate.CaseJob`), so an analysis pairs exactly the files that
``brats evaluate`` scores. Loading checks what a voxel-wise comparison needs and names the file at fault:
unknown labels, different shapes, different grids (affines further apart than
:data:`brats_lib.io.AFFINE_TOLERANCE` mm), a prediction without a ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..io import AFFINE_TOLERANCE, BratsInputError
from ..metrics.evaluate import CaseJob, find_ground_truths, nifti_files, read_label_map

PathLike = str | Path


@dataclass
class Pair:
    """One case's prediction and ground truth on one grid.

    Attributes:
        case_id: the case.
        pred, gt: (X, Y, Z) uint8 label maps, 2024 convention.
        affine: (4, 4) voxel → world (mm) matrix shared by both (the ground truth's).
        pred_path, gt_path: where they were read from (``None`` for in-memory pairs).
    """

    case_id: str
    pred: np.ndarray
    gt: np.ndarray
    affine: np.ndarray
    pred_path: Path | None = None
    gt_path: Path | None = None

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size (mm) along the three array axes (column norms of the affine)."""
        return tuple(float(s) for s in np.linalg.norm(self.affine[:3, :3], axis=0))

    @property
    def voxel_ml(self) -> float:
        """Volume of one voxel in mL (|det| of the affine's 3×3 part, mm³, / 1000)."""
        return voxel_volume_ml(self.affine)


def voxel_volume_ml(affine: np.ndarray) -> float:
    """Volume (mL) of one voxel of a grid with this voxel → world (mm) ``affine``."""
    return float(abs(np.linalg.det(np.asarray(affine, dtype=np.float64)[:3, :3]))) / 1000.0


def check_same_grid(pred_path, pred_shape, pred_affine, gt_path, gt_shape, gt_affine) -> None:
    """Raise :class:`BratsInputError` naming the prediction file when its shape or grid differs from the GT's."""
    if tuple(pred_shape) != tuple(gt_shape):
        raise BratsInputError(f"{pred_path}: shape {tuple(pred_shape)} differs from the ground truth "
                              f"{gt_path} {tuple(gt_shape)}")
    if not np.allclose(pred_affine, gt_affine, atol=AFFINE_TOLERANCE):
        difference = float(np.abs(np.asarray(pred_affine) - np.asarray(gt_affine)).max())
        raise BratsInputError(f"{pred_path}: grid (affine) differs from the ground truth {gt_path} by up to "
                              f"{difference:.4g} mm; resample it onto the ground truth's grid first")


def load_pair(job: CaseJob) -> Pair:
    """Read and check one :class:`~brats_lib.metrics.evaluate.CaseJob` exactly as ``brats evaluate`` does
    (:func:`brats_lib.metrics.evaluate.load_pair`: labels converted from each file's convention, shapes and
    affines compared, both files named on a mismatch); the affine is the ground truth's."""
    import nibabel as nib

    from ..metrics.evaluate import load_pair as load_checked_pair

    pred, gt, _, _ = load_checked_pair(job)
    gt_affine = np.asarray(nib.load(job.gt_path).affine, dtype=np.float64)
    return Pair(job.case_id, pred, gt, gt_affine, Path(job.pred_path), Path(job.gt_path))


def plan_pairs(pred_dir: PathLike, gt_dir: PathLike, case_ids: Sequence[str] | None = None) -> list[CaseJob]:
    """The (prediction, ground truth) jobs of ``case_ids`` (default: every prediction in ``pred_dir``).

    Raises:
        BratsInputError: a missing prediction folder, a listed case without prediction, or a prediction
            without ground truth in ``gt_dir`` (naming the file).
    """
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise BratsInputError(f"{pred_dir}: prediction folder does not exist")
    predictions = nifti_files(pred_dir)
    truths = find_ground_truths(gt_dir)
    ids = sorted(predictions) if case_ids is None else list(case_ids)
    if not ids:
        raise BratsInputError(f"{pred_dir}: no prediction (<case-id>.nii.gz) to analyse")
    jobs = []
    for case_id in ids:
        if case_id not in predictions:
            raise BratsInputError(f"{pred_dir / (case_id + '.nii.gz')}: prediction missing for case {case_id}")
        if case_id not in truths:
            raise BratsInputError(f"{predictions[case_id]}: prediction has no ground truth in {gt_dir}")
        jobs.append(CaseJob(case_id, predictions[case_id], truths[case_id][0], truths[case_id][1]))
    return jobs


def iter_pairs(pred_dir: PathLike, gt_dir: PathLike, case_ids: Sequence[str] | None = None):
    """Yield the checked :class:`Pair` of each case of :func:`plan_pairs`, one at a time (one in memory)."""
    for job in plan_pairs(pred_dir, gt_dir, case_ids):
        yield load_pair(job)


__all__ = ["Pair", "check_same_grid", "iter_pairs", "load_pair", "plan_pairs", "read_label_map",
           "voxel_volume_ml"]
