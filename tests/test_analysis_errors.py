"""brats_lib.analysis errors, volumes, pairs and the `brats volumes` command: hand-built maps with known counts."""

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from brats_lib import analysis
from brats_lib.cli import main as cli_main
from brats_lib.io import BratsInputError
from brats_lib.labels import LEGACY_TO_2024, REGIONS

SHAPE = (20, 22, 16)
SPACING_AFFINE = np.diag([1.0, 1.0, 2.0, 1.0])  # 2 mm³ voxels = 0.002 mL


def known_pair():
    """GT: a 10×10×10 SNFH cube with a 4×4×4 ET core. Prediction: the GT with 7 ET voxels missed (→ 0), 3 ET
    voxels called NETC, and 5 NETC voxels added outside the tumour."""
    gt = np.zeros(SHAPE, np.uint8)
    gt[2:12, 2:12, 2:12] = 2
    gt[5:9, 5:9, 5:9] = 3
    pred = gt.copy()
    et = np.argwhere(gt == 3)
    for i, j, k in et[:7]:
        pred[i, j, k] = 0
    for i, j, k in et[7:10]:
        pred[i, j, k] = 1
    pred[15, 15, 10:15] = 1
    return pred, gt


def test_confusion_matrix_known_cells():
    pred, gt = known_pair()
    m = analysis.confusion_matrix(pred, gt)
    assert m.shape == (5, 5) and m.sum() == pred.size
    assert m[3, 0] == 7 and m[3, 1] == 3 and m[3, 3] == 54 and m[0, 1] == 5 and m[2, 2] == 1000 - 64
    assert m[0, 0] == pred.size - 1000 - 5
    assert np.count_nonzero(m) == 6
    table = analysis.confusion_table(m, voxel_ml=0.002)
    assert table.loc["ET", "NETC"] == pytest.approx(0.006) and table.index.name == "truth"


def test_error_table_known_counts_volumes_and_percentages():
    pred, gt = known_pair()
    table = analysis.error_table(pred, gt, voxel_ml=0.002).set_index("region")
    expected = {"WT": (993, 5, 7), "TC": (57, 5, 7), "ET": (54, 0, 10), "NETC": (0, 8, 0), "SNFH": (936, 0, 0),
                "RC": (0, 0, 0)}
    for region, (tp, fp, fn) in expected.items():
        row = table.loc[region]
        assert (row.tp_voxels, row.fp_voxels, row.fn_voxels) == (tp, fp, fn), region
        assert row.fn_ml == pytest.approx(fn * 0.002) and row.gt_ml == pytest.approx((tp + fn) * 0.002)
    et = table.loc["ET"]
    assert et.fn_pct_of_gt == pytest.approx(100 * 10 / 64) and et.error_pct_of_union == pytest.approx(100 * 10 / 64)
    wt = table.loc["WT"]
    assert wt.error_pct_of_gt == pytest.approx(1.2)
    assert wt.error_pct_of_union == pytest.approx(100 * 12 / 1005)
    assert wt.fp_pct_of_union == pytest.approx(100 * 5 / 1005)
    assert np.isnan(table.loc["NETC"].fn_pct_of_gt)  # NETC absent from the truth
    assert np.isnan(table.loc["RC"].error_pct_of_union)  # absent from both


def test_error_map_codes():
    pred, gt = known_pair()
    emap = analysis.error_map(pred, gt, "ET")
    assert np.count_nonzero(emap == analysis.ERROR_CODES["FN"]) == 10
    assert np.count_nonzero(emap == analysis.ERROR_CODES["TP"]) == 54
    assert np.count_nonzero(emap == analysis.ERROR_CODES["FP"]) == 0
    assert np.count_nonzero(analysis.error_map(pred, gt, "NETC") == analysis.ERROR_CODES["FP"]) == 8


def test_volumes_and_bland_altman_known_values():
    pred, gt = known_pair()
    volumes = analysis.region_volumes(gt, 0.002)
    assert volumes["WT"] == (1000, pytest.approx(2.0)) and volumes["ET"] == (64, pytest.approx(0.128))
    errors = pd.concat([analysis.error_table(pred, gt, 0.002, "a"), analysis.error_table(gt, gt, 0.002, "b")])
    agreement = analysis.volume_agreement(errors)
    wt = agreement[agreement.region == "WT"].set_index("case")
    assert wt.loc["a", "diff_ml"] == pytest.approx(-2 * 0.002) and wt.loc["b", "diff_ml"] == 0.0
    stats = analysis.bland_altman(agreement).set_index("region")
    assert stats.loc["WT", "bias_ml"] == pytest.approx(-0.002)
    sd = np.std([-0.004, 0.0], ddof=1)
    assert stats.loc["WT", "sd_ml"] == pytest.approx(sd)
    assert stats.loc["WT", "loa_high_ml"] == pytest.approx(-0.002 + 1.96 * sd)


# ------------------------------------------------------------------------------------------ pairs and errors


def _save(path, array, affine=SPACING_AFFINE):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(array), affine), path)
    return path


def test_bad_inputs_name_the_file(tmp_path):
    pred, gt = known_pair()
    _save(tmp_path / "gt" / "A.nii.gz", gt)
    _save(tmp_path / "gt" / "B.nii.gz", gt)
    _save(tmp_path / "pred" / "A.nii.gz", pred)
    jobs = analysis.plan_pairs(tmp_path / "pred", tmp_path / "gt")
    pair = analysis.load_pair(jobs[0])
    assert pair.case_id == "A" and pair.spacing == (1.0, 1.0, 2.0) and pair.voxel_ml == pytest.approx(0.002)
    # prediction without ground truth
    _save(tmp_path / "pred" / "C.nii.gz", pred)
    with pytest.raises(BratsInputError, match=r"C\.nii\.gz: prediction has no ground truth"):
        analysis.plan_pairs(tmp_path / "pred", tmp_path / "gt")
    (tmp_path / "pred" / "C.nii.gz").unlink()
    # listed case without prediction
    with pytest.raises(BratsInputError, match=r"B\.nii\.gz: prediction missing"):
        analysis.plan_pairs(tmp_path / "pred", tmp_path / "gt", ["A", "B"])
    # shape mismatch
    _save(tmp_path / "pred" / "B.nii.gz", pred[:-1])
    job_b = analysis.plan_pairs(tmp_path / "pred", tmp_path / "gt", ["B"])[0]
    with pytest.raises(BratsInputError, match=r"pred/B\.nii\.gz: shape .* differs from the ground truth"):
        analysis.load_pair(job_b)
    # grid mismatch
    _save(tmp_path / "pred" / "B.nii.gz", pred, np.diag([1.0, 1.0, 1.0, 1.0]))
    with pytest.raises(BratsInputError, match=r"pred/B\.nii\.gz: affine differs from the ground truth"):
        analysis.load_pair(job_b)
    # unknown label
    bad = pred.copy()
    bad[0, 0, 0] = 7
    _save(tmp_path / "pred" / "B.nii.gz", bad)
    with pytest.raises(BratsInputError, match=r"pred/B\.nii\.gz: unknown label values \[7\]"):
        analysis.load_pair(job_b)


def test_analyse_predictions_streams_every_table(tmp_path):
    pred, gt = known_pair()
    _save(tmp_path / "gt" / "A.nii.gz", gt)
    _save(tmp_path / "gt" / "B.nii.gz", gt)
    _save(tmp_path / "m1" / "A.nii.gz", pred)
    _save(tmp_path / "m1" / "B.nii.gz", gt)
    _save(tmp_path / "m2" / "A.nii.gz", gt)
    results = analysis.analyse_predictions({"m1": tmp_path / "m1", "m2": tmp_path / "m2"}, tmp_path / "gt",
                                           ["A"], frequency_regions=None)
    assert set(results.errors["model"]) == {"m1", "m2"} and set(results.errors["case"]) == {"A"}
    et = results.errors.set_index(["model", "region"]).loc[("m1", "ET")]
    assert et.fn_voxels == 10
    assert results.confusion.query("model == 'm1' and truth == 'ET' and prediction == 'NETC'")["voxels"].item() == 3
    assert results.boundaries.set_index(["model", "region"]).loc[("m2", "WT"), "bias_mm"] == 0.0
    assert results.volumes.query("model == 'm2'")["diff_ml"].abs().max() == 0.0
    assert results.frequency == {}
    with pytest.raises(BratsInputError, match="grid .* is not the common grid"):
        analysis.analyse_predictions({"m1": tmp_path / "m1"}, tmp_path / "gt", ["A"])


def test_analyse_predictions_in_workers_matches_one_process(tmp_path):
    pred, gt = known_pair()
    for case in ("A", "B", "C"):
        _save(tmp_path / "gt" / f"{case}.nii.gz", gt)
    _save(tmp_path / "m1" / "A.nii.gz", pred)
    _save(tmp_path / "m1" / "B.nii.gz", gt)
    _save(tmp_path / "m1" / "C.nii.gz", np.roll(pred, 1, axis=0))
    one = analysis.analyse_predictions({"m1": tmp_path / "m1"}, tmp_path / "gt", frequency_regions=None)
    two = analysis.analyse_predictions({"m1": tmp_path / "m1"}, tmp_path / "gt", frequency_regions=None, workers=2)
    for name in ("errors", "confusion", "boundaries", "histogram", "lesions", "volumes"):
        pd.testing.assert_frame_equal(getattr(one, name), getattr(two, name))
    assert list(two.errors["case"].unique()) == ["A", "B", "C"]
    with pytest.raises(BratsInputError, match="grid .* is not the common grid"):  # raised in a worker, same error
        analysis.analyse_predictions({"m1": tmp_path / "m1"}, tmp_path / "gt", workers=2)


def test_error_frequency_merge_adds_counts_and_cases():
    from brats_lib.analysis.heatmaps import ErrorFrequency

    affine = np.eye(4)
    gt = np.zeros((4, 4, 4), np.uint8)
    gt[1:3, 1:3, 1:3] = 2
    pred = np.zeros_like(gt)
    pred[0, 0, 0] = 2
    a, b, both = (ErrorFrequency(["WT"], shape=gt.shape, affine=affine) for _ in range(3))
    a.add(pred, gt, affine)
    b.add(gt, gt, affine)
    both.add(pred, gt, affine)
    both.add(gt, gt, affine)
    a.merge(b)
    assert a.n_cases == 2
    for key in both.counts:
        np.testing.assert_array_equal(a.counts[key], both.counts[key])
    assert a.frequency("WT", "FN")[1, 1, 1] == 0.5 and a.frequency("WT", "FP")[0, 0, 0] == 0.5
    with pytest.raises(ValueError, match="differ"):
        a.merge(ErrorFrequency(["TC"], shape=gt.shape, affine=affine))


# ------------------------------------------------------------------------------------------- brats volumes


def test_brats_volumes_flat_folder_and_bad_label(tmp_path, capsys):
    pred, gt = known_pair()
    _save(tmp_path / "seg" / "BraTS-GLI-00001-000.nii.gz", gt)
    out = tmp_path / "v.csv"
    assert cli_main(["volumes", "--seg", str(tmp_path / "seg"), "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert list(table.columns[:2]) == ["case", "region"] and "volume_ml" in table
    assert table.set_index("region").loc["WT", "volume_ml"] == pytest.approx(2.0)
    assert table.set_index("region").loc["TC", "volume_ml"] == pytest.approx(0.128)
    bad = gt.copy()
    bad[0, 0, 0] = 9
    _save(tmp_path / "seg" / "BraTS-GLI-00002-000.nii.gz", bad)
    out2 = tmp_path / "v2.csv"
    assert cli_main(["volumes", "--seg", str(tmp_path / "seg"), "--out", str(out2)]) == 2
    assert "BraTS-GLI-00002-000.nii.gz: unknown label values [9]" in capsys.readouterr().err
    assert not out2.exists()


@pytest.mark.parametrize("layout", ["brats-gli", "brats2021"])
def test_brats_volumes_matches_hand_count_on_real_cases(real_data_dir, tmp_path, layout):
    out = tmp_path / "volumes.csv"
    assert cli_main(["volumes", "--seg", str(real_data_dir / layout), "--out", str(out)]) == 0
    table = pd.read_csv(out)
    segs = sorted((real_data_dir / layout).glob("*/*seg.nii.gz"))
    assert table["case"].nunique() == len(segs) > 1
    for path in segs:
        img = nib.load(path)
        data = np.asarray(img.dataobj)
        if layout == "brats2021":  # legacy labels: 4 is ET (label 3 in 2024)
            data = np.select([data == k for k in LEGACY_TO_2024], list(LEGACY_TO_2024.values()), 0)
        voxel_mm3 = abs(np.linalg.det(img.affine[:3, :3]))
        case = path.parent.name
        rows = table[table["case"] == case].set_index("region")
        for region, labels in REGIONS.items():
            by_hand = np.count_nonzero(np.isin(data, labels)) * voxel_mm3 / 1000.0
            assert rows.loc[region, "volume_ml"] == pytest.approx(by_hand, rel=1e-12, abs=1e-12), (case, region)
