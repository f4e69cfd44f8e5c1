"""Voxel-level error maps: TP / FP / FN per region, the 5×5 label confusion matrix, error percentages.

Definitions (per case and region ``R``, a union of labels, see :data:`brats_lib.labels.REGIONS`):

* ``TP`` = voxels in ``R`` in both maps, ``FP`` = in ``R`` in the prediction only, ``FN`` = in ``R`` in the
  ground truth only; ``GT = TP + FN``, ``pred = TP + FP``, ``union = TP + FP + FN``;
* volumes in mL: voxel count × voxel volume (|det| of the affine, mm³) / 1000;
* **error percentage of the ground truth**: ``fn_pct_of_gt = 100·FN/GT`` (share of the true region missed),
  ``fp_pct_of_gt = 100·FP/GT`` (spurious volume relative to the true volume, may exceed 100),
  ``error_pct_of_gt = fn_pct_of_gt + fp_pct_of_gt``; NaN when the region is absent from the ground truth;
* **error percentage of the union**: ``fn_pct_of_union = 100·FN/union``, ``fp_pct_of_union = 100·FP/union``,
  ``error_pct_of_union = 100·(FN+FP)/union = 100·(1 − IoU)`` (always 0–100); NaN when both maps lack ``R``.

The confusion matrix counts voxels by (true label, predicted label), labels 0–4; every region's TP/FP/FN is
a sum of its cells, so one ``bincount`` inside the tumour's bounding box gives all of them (voxels outside
the box are background in both maps and counted analytically).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ..labels import LABEL_NAMES, LABELS_2024, REGION_ORDER, REGIONS
from ..metrics.surface import bounding_box

#: Error-map codes of :func:`error_map` (0 = true negative).
ERROR_CODES = {"TP": 1, "FP": 2, "FN": 3}
#: Columns of :func:`error_table`.
ERROR_COLUMNS = (
    "case", "region", "tp_voxels", "fp_voxels", "fn_voxels", "gt_voxels", "pred_voxels", "tp_ml", "fp_ml",
    "fn_ml", "gt_ml", "pred_ml", "fn_pct_of_gt", "fp_pct_of_gt", "error_pct_of_gt", "fn_pct_of_union",
    "fp_pct_of_union", "error_pct_of_union",
)
_N = len(LABELS_2024)


def confusion_matrix(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(5, 5) int64 voxel counts: row = true label, column = predicted label (0 background … 4 RC).

    Args:
        pred, gt: (X, Y, Z) uint8 label maps in the 2024 convention, same shape.
    """
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from ground truth {gt.shape}")
    box = bounding_box((gt != 0) | (pred != 0))
    matrix = np.zeros((_N, _N), dtype=np.int64)
    if box is not None:
        codes = gt[box].astype(np.intp) * _N + pred[box]
        matrix += np.bincount(codes.ravel(), minlength=_N * _N).reshape(_N, _N)
    matrix[0, 0] += gt.size - matrix.sum()
    return matrix


def region_counts(matrix: np.ndarray, region: str) -> tuple[int, int, int]:
    """(TP, FP, FN) voxels of ``region`` from a :func:`confusion_matrix`."""
    inside = np.zeros(_N, dtype=bool)
    inside[list(REGIONS[region])] = True
    tp = int(matrix[np.ix_(inside, inside)].sum())
    fp = int(matrix[np.ix_(~inside, inside)].sum())
    fn = int(matrix[np.ix_(inside, ~inside)].sum())
    return tp, fp, fn


def _pct(numerator: float, denominator: float) -> float:
    return 100.0 * numerator / denominator if denominator > 0 else float("nan")


def error_rows(matrix: np.ndarray, voxel_ml: float, case_id: str = "",
               regions: Sequence[str] = REGION_ORDER) -> list[dict]:
    """The :func:`error_table` rows of one case from its confusion matrix."""
    rows = []
    for region in regions:
        tp, fp, fn = region_counts(matrix, region)
        gt, pred, union = tp + fn, tp + fp, tp + fp + fn
        rows.append({
            "case": case_id, "region": region, "tp_voxels": tp, "fp_voxels": fp, "fn_voxels": fn,
            "gt_voxels": gt, "pred_voxels": pred, "tp_ml": tp * voxel_ml, "fp_ml": fp * voxel_ml,
            "fn_ml": fn * voxel_ml, "gt_ml": gt * voxel_ml, "pred_ml": pred * voxel_ml,
            "fn_pct_of_gt": _pct(fn, gt), "fp_pct_of_gt": _pct(fp, gt), "error_pct_of_gt": _pct(fn + fp, gt),
            "fn_pct_of_union": _pct(fn, union), "fp_pct_of_union": _pct(fp, union),
            "error_pct_of_union": _pct(fn + fp, union),
        })
    return rows


def error_table(pred: np.ndarray, gt: np.ndarray, voxel_ml: float = 0.001, case_id: str = "",
                regions: Sequence[str] = REGION_ORDER) -> pd.DataFrame:
    """TP / FP / FN per region of one case in voxels and mL, and the error percentages (module docstring).

    Args:
        pred, gt: (X, Y, Z) uint8 label maps, 2024 convention.
        voxel_ml: volume of one voxel in mL (0.001 for 1 mm³; see :func:`~brats_lib.analysis.pairs.voxel_volume_ml`).
    Returns:
        one row per region, columns :data:`ERROR_COLUMNS`.
    """
    return pd.DataFrame(error_rows(confusion_matrix(pred, gt), voxel_ml, case_id, regions),
                        columns=list(ERROR_COLUMNS))


def confusion_table(matrix: np.ndarray, voxel_ml: float | None = None) -> pd.DataFrame:
    """A :func:`confusion_matrix` as a labelled table: index ``truth`` (label names), columns ``prediction``;
    voxel counts, or mL when ``voxel_ml`` is given."""
    names = [LABEL_NAMES[v] for v in LABELS_2024]
    values = matrix if voxel_ml is None else matrix * float(voxel_ml)
    return pd.DataFrame(values, index=pd.Index(names, name="truth"), columns=pd.Index(names, name="prediction"))


def error_map(pred: np.ndarray, gt: np.ndarray, region: str) -> np.ndarray:
    """(X, Y, Z) uint8 map of ``region``: 0 true negative, 1 TP, 2 FP, 3 FN (:data:`ERROR_CODES`)."""
    labels = list(REGIONS[region])
    p, g = np.isin(pred, labels), np.isin(gt, labels)
    out = np.zeros(pred.shape, dtype=np.uint8)
    out[p & g] = ERROR_CODES["TP"]
    out[p & ~g] = ERROR_CODES["FP"]
    out[~p & g] = ERROR_CODES["FN"]
    return out


__all__ = ["ERROR_CODES", "ERROR_COLUMNS", "confusion_matrix", "confusion_table", "error_map", "error_rows",
           "error_table", "region_counts"]
