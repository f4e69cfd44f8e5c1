"""Label confusion matrices on hand-made label maps with known counts."""

import numpy as np
import pytest

from brats_lib.labels import ET, NETC, RC, SNFH
from brats_lib.metrics import label_confusion


def test_counts_rows_truth_columns_prediction():
    truth = np.zeros((4, 4, 4), np.uint8)
    pred = np.zeros_like(truth)
    truth[0, :, :] = NETC            # 16 NETC voxels ...
    pred[0, :2, :] = RC              # ... 8 predicted as RC,
    pred[0, 2:, :] = NETC            # 8 as NETC
    truth[1, 0, 0] = ET              # 1 ET voxel missed (background)
    pred[3, 0, :] = SNFH             # 4 background voxels predicted SNFH
    counts = label_confusion(truth, pred)
    expected = np.zeros((5, 5), np.int64)
    expected[0, 0] = 64 - 16 - 1 - 4
    expected[0, SNFH] = 4
    expected[NETC, RC] = 8
    expected[NETC, NETC] = 8
    expected[ET, 0] = 1
    np.testing.assert_array_equal(counts, expected)
    assert counts.sum() == truth.size


def test_label_subset_ignores_other_values():
    truth = np.array([0, 1, 1, 4, 4, 4, 7])
    pred = np.array([0, 4, 1, 4, 1, 0, 1])
    counts = label_confusion(truth, pred, labels=(NETC, RC))  # background and the stray 7 are not counted
    np.testing.assert_array_equal(counts, [[1, 1], [1, 1]])
    full = label_confusion(truth, pred)
    assert full[RC].tolist() == [1, 1, 0, 0, 1] and full.sum() == 6
    assert label_confusion(np.array([-1, 1]), np.array([1, 1]), labels=(0, 1)).sum() == 1  # negatives not counted


def test_shape_mismatch_and_bad_labels():
    with pytest.raises(ValueError, match="shape"):
        label_confusion(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="distinct"):
        label_confusion(np.zeros(3), np.zeros(3), labels=(1, 1))
