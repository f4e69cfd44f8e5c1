"""Error projections, streaming error frequency on the common grid (memory independent of n), lesions and
change over time, on hand-built maps with known answers."""

import tracemalloc

import numpy as np
import pandas as pd
import pytest

from brats_lib import analysis
from brats_lib.io import BratsInputError

SMALL = (12, 14, 10)
SMALL_AFFINE = np.diag([1.0, 1.0, 1.0, 1.0])


def test_error_projections_known_pixels():
    gt = np.zeros(SMALL, np.uint8)
    gt[2, 3, 4] = 3  # missed ET voxel (FN)
    pred = np.zeros(SMALL, np.uint8)
    pred[7, 8, 5] = 3  # spurious ET voxel (FP)
    mips = analysis.error_projections(pred, gt, ("ET", "SNFH"))
    axial = mips["ET"]["axial"]
    assert axial["FN"].shape == (12, 14)
    assert np.argwhere(axial["FN"]).tolist() == [[2, 3]] and np.argwhere(axial["FP"]).tolist() == [[7, 8]]
    assert np.argwhere(mips["ET"]["coronal"]["FN"]).tolist() == [[2, 4]]
    assert np.argwhere(mips["ET"]["sagittal"]["FP"]).tolist() == [[8, 5]]
    assert not mips["SNFH"]["axial"]["FN"].any()


def _case(rng, shape):
    gt = np.zeros(shape, np.uint8)
    pred = np.zeros(shape, np.uint8)
    c = rng.integers(4, np.asarray(shape) - 4)
    gt[c[0] - 2:c[0] + 2, c[1] - 2:c[1] + 2, c[2] - 2:c[2] + 2] = 2
    pred[c[0] - 1:c[0] + 3, c[1] - 2:c[1] + 2, c[2] - 2:c[2] + 2] = 2
    return pred, gt


def test_error_frequency_counts_known_voxels():
    freq = analysis.ErrorFrequency(("WT",), SMALL, SMALL_AFFINE, "test grid")
    gt = np.zeros(SMALL, np.uint8)
    gt[3:5, 3:5, 3:5] = 2
    freq.add(np.zeros(SMALL, np.uint8), gt, SMALL_AFFINE, "a")  # all 8 voxels missed
    freq.add(gt, gt, SMALL_AFFINE, "b")  # perfect
    freq.add(np.zeros(SMALL, np.uint8), np.zeros(SMALL, np.uint8), SMALL_AFFINE, "c")  # empty case
    assert freq.n_cases == 3
    fn = freq.frequency("WT", "FN")
    assert fn[3, 3, 3] == pytest.approx(1 / 3) and fn.sum() == pytest.approx(8 / 3)
    assert freq.frequency("WT", "FP").sum() == 0
    assert freq.projection("WT", "FN", "axial")[4, 4] == pytest.approx(1 / 3)


def test_error_frequency_refuses_another_grid_naming_both():
    freq = analysis.ErrorFrequency(("ET",), SMALL, SMALL_AFFINE, "test grid")
    other = np.diag([1.0, 1.0, 2.0, 1.0])
    with pytest.raises(BratsInputError, match=r"case-7\.nii\.gz: grid 12×14×10, spacing \(1, 1, 2\) mm.*"
                                              r"is not the common grid test grid"):
        freq.add(np.zeros(SMALL, np.uint8), np.zeros(SMALL, np.uint8), other, "case-7.nii.gz")
    with pytest.raises(BratsInputError, match="not the common grid"):
        freq.add(np.zeros((5, 5, 5), np.uint8), np.zeros((5, 5, 5), np.uint8), SMALL_AFFINE, "small.nii.gz")
    default = analysis.ErrorFrequency(("WT",))
    assert default.shape == (182, 218, 182)
    assert "MNI152" in analysis.MNI_GRID_NAME


def _peak_bytes(n_cases: int, shape=(48, 52, 44)) -> int:
    rng = np.random.default_rng(0)
    tracemalloc.start()
    freq = analysis.ErrorFrequency(("WT", "ET"), shape, SMALL_AFFINE)
    for _ in range(n_cases):
        pred, gt = _case(rng, shape)
        freq.add(pred, gt, SMALL_AFFINE)
        del pred, gt
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert freq.n_cases == n_cases and freq.frequency("WT", "FN").max() > 0
    return peak


def test_error_frequency_memory_does_not_grow_with_cases():
    few, many = _peak_bytes(2), _peak_bytes(40)
    assert many <= few * 1.05 + 64 * 1024, (few, many)


# ------------------------------------------------------------------------------------------------- lesions


def test_lesion_table_detected_missed_and_false_positive():
    shape = (60, 40, 40)
    gt = np.zeros(shape, np.uint8)
    gt[5:11, 5:11, 5:11] = 3  # 216-voxel ET lesion, found
    gt[40:43, 30:33, 30:33] = 3  # 27-voxel ET lesion, missed
    pred = np.zeros(shape, np.uint8)
    pred[6:11, 5:11, 5:11] = 3
    pred[50:54, 5:9, 20:24] = 3  # 64-voxel false positive far from any true lesion
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    affine[:3, 3] = (10.0, 20.0, 30.0)
    table = analysis.lesion_table(pred, gt, affine, "c", regions=("ET",))
    true = table[table.kind == analysis.TRUE_LESION].sort_values("volume_ml")
    assert true["volume_ml"].tolist() == pytest.approx([27 * 0.002, 216 * 0.002])
    assert true["detected"].tolist() == [False, True]
    assert true.iloc[0][["i", "j", "k"]].tolist() == pytest.approx([41.0, 31.0, 31.0])
    assert true.iloc[0][["x_mm", "y_mm", "z_mm"]].tolist() == pytest.approx([51.0, 51.0, 92.0])
    assert true.iloc[1]["dice"] == pytest.approx(2 * 180 / (216 + 180))
    fp = table[table.kind == analysis.FALSE_POSITIVE]
    assert len(fp) == 1 and fp.iloc[0]["volume_ml"] == pytest.approx(64 * 0.002)
    assert fp.iloc[0][["i", "j", "k"]].tolist() == pytest.approx([51.5, 6.5, 21.5])
    rate = analysis.detection_rate(table, bins_ml=(0.0, 0.1, 1.0))
    assert rate["n"].tolist() == [1, 1] and rate["rate"].tolist() == [0.0, 1.0]
    listed = analysis.missed_and_false(table)
    assert listed["kind"].tolist() == [analysis.FALSE_POSITIVE, analysis.TRUE_LESION]


# ----------------------------------------------------------------------------------------- change over time


def test_change_table_direction_of_change():
    rows = []
    for case, gt_ml, pred_ml in [("BraTS-GLI-00001-000", 10.0, 9.0), ("BraTS-GLI-00001-001", 20.0, 8.0),
                                 ("BraTS-GLI-00001-002", 5.0, 4.0), ("BraTS-GLI-00002-000", 3.0, 3.0),
                                 ("BraTS2021_00003", 1.0, 1.0)]:
        rows.append({"model": "m", "case": case, "region": "WT", "gt_ml": gt_ml, "pred_ml": pred_ml})
    volumes = pd.DataFrame(rows)
    assert analysis.patient_timepoint("BraTS-GLI-00001-002") == ("BraTS-GLI-00001", 2)
    assert analysis.patient_timepoint("BraTS2021_00003") is None
    series = analysis.timepoint_table(volumes)
    assert series["timepoint"].tolist() == [0, 1, 2] and set(series["patient"]) == {"BraTS-GLI-00001"}
    changes = analysis.change_table(volumes, tolerance_ml=0.5)
    assert changes["gt_change_ml"].tolist() == [10.0, -15.0]
    assert changes["pred_change_ml"].tolist() == [-1.0, -4.0]
    assert changes["gt_direction"].tolist() == ["grow", "shrink"]
    assert changes["pred_direction"].tolist() == ["shrink", "shrink"]
    assert changes["direction_correct"].tolist() == [False, True]
    assert analysis.direction(0.3, 0.5) == "stable"


def test_change_summary_puts_models_side_by_side():
    rows = []
    for model, preds in [("unet3d", (9.0, 8.0, 4.0)), ("fcnn", (9.0, 30.0, 31.0))]:
        for case, gt_ml, pred_ml in zip(("BraTS-GLI-00001-000", "BraTS-GLI-00001-001", "BraTS-GLI-00001-002"),
                                        (10.0, 20.0, 5.0), preds):
            for region, scale in (("TC", 0.5), ("WT", 1.0)):
                rows.append({"model": model, "case": case, "region": region, "gt_ml": scale * gt_ml,
                             "pred_ml": scale * pred_ml})
    changes = analysis.change_table(pd.DataFrame(rows), tolerance_ml=0.5)
    summary = analysis.change_summary(changes, names={"unet3d": "3D U-Net", "fcnn": "FCNN"})
    assert list(summary.columns) == ["true change (mL)", "3D U-Net", "FCNN"]
    # regions in the house order (WT before TC), steps in time order within each
    assert [idx[1:] for idx in summary.index] == [("WT", "000→001"), ("WT", "001→002"),
                                                 ("TC", "000→001"), ("TC", "001→002")]
    wt = summary[summary.index.get_level_values("region") == "WT"]
    assert wt["true change (mL)"].tolist() == ["+10.0", "−15.0"]
    assert wt["3D U-Net"].tolist() == ["−1.0 ✗", "−4.0 ✓"]  # shrink against grow, then both shrink
    assert wt["FCNN"].tolist() == ["+21.0 ✓", "+1.0 ✗"]
    assert analysis.change_summary(changes.iloc[:0]).empty
    tiny = changes.assign(pred_change_ml=-0.004)
    assert set(analysis.change_summary(tiny).iloc[:, 1:].stack().str[:4]) == {"+0.0"}  # never "−0.0"
