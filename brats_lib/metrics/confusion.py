"""Label confusion matrices: which true label each predicted label came from.

Region Dice says *that* a label is missed; the confusion matrix says *as what*. In the demo it showed that the
U-Nets painted the necrotic core (NETC) as resection cavity (RC); see notebook 05.
:func:`brats_lib.report.confusion_matrix` names the rows and columns for a notebook.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..labels import LABELS_2024


def label_confusion(truth: np.ndarray, prediction: np.ndarray, labels: Sequence[int] = LABELS_2024) -> np.ndarray:
    """(L, L) int64 voxel counts: row = true label, column = predicted label, in the order of ``labels``.

    Voxels whose true or predicted value is not in ``labels`` are not counted.

    Raises:
        ValueError: shapes differ, or ``labels`` holds a negative or repeated value.
    """
    truth, prediction = np.asarray(truth), np.asarray(prediction)
    if truth.shape != prediction.shape:
        raise ValueError(f"truth {truth.shape} and prediction {prediction.shape} differ in shape")
    labels = [int(k) for k in labels]
    if min(labels) < 0 or len(set(labels)) != len(labels):
        raise ValueError(f"labels must be distinct non-negative ints, got {labels}")
    t, p = truth.ravel().astype(np.int64), prediction.ravel().astype(np.int64)
    top = max(max(labels), int(t.max(initial=0)), int(p.max(initial=0))) + 1
    index = np.full(top, -1, np.int64)
    index[labels] = np.arange(len(labels))
    t = np.where(t >= 0, index[np.clip(t, 0, None)], -1)
    p = np.where(p >= 0, index[np.clip(p, 0, None)], -1)
    keep = (t >= 0) & (p >= 0)
    n = len(labels)
    return np.bincount(t[keep] * n + p[keep], minlength=n * n).reshape(n, n)
