"""Paired comparisons (brats_lib.analysis.paired) and the cross-validation comparison script built on them."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from brats_lib.analysis.paired import bootstrap_interval, paired_summary
from brats_lib.data import patient_of
from brats_lib.labels import REGION_ORDER

ROOT = Path(__file__).resolve().parents[1]


def test_bootstrap_interval_brackets_the_mean_and_is_reproducible():
    diff = np.array([0.1, -0.05, 0.2, 0.0, 0.15])
    low, high = bootstrap_interval(diff, n_boot=2000, seed=3)
    assert low < diff.mean() < high and (low, high) == bootstrap_interval(diff, n_boot=2000, seed=3)
    # by hand: the percentiles of resampled means
    rng = np.random.default_rng(3)
    means = diff[rng.integers(0, 5, (2000, 5))].mean(axis=1)
    assert (low, high) == (np.percentile(means, 2.5), np.percentile(means, 97.5))
    assert bootstrap_interval(np.full(4, 0.3)) == pytest.approx((0.3, 0.3))
    with pytest.raises(ValueError, match="paired differences"):
        bootstrap_interval(np.array([]))
    with pytest.raises(ValueError, match="paired differences"):
        bootstrap_interval(np.array([0.1, np.nan]))


def test_paired_summary_compares_every_arm_with_the_baseline_unit_by_unit():
    per_unit = pd.DataFrame({"real": [0.5, 0.6, 0.7], "gan": [0.6, 0.5, 0.9]}, index=["a", "b", "c"])
    table = paired_summary(per_unit, "real", n_boot=500).set_index("arm")
    assert table.loc["real", "paired_diff"] == 0 and table.loc["real", "ci95_low"] == 0
    assert table.loc["gan", "mean"] == pytest.approx(2 / 3)
    assert table.loc["gan", "paired_diff"] == pytest.approx((0.1 - 0.1 + 0.2) / 3)
    assert table.loc["gan", "better"] == "2/3" and (table["n"] == 3).all()
    low, high = bootstrap_interval(np.array([0.1, -0.1, 0.2]), n_boot=500)
    assert (table.loc["gan", "ci95_low"], table.loc["gan", "ci95_high"]) == pytest.approx((low, high))
    with pytest.raises(KeyError, match="baseline"):
        paired_summary(per_unit, "nope")
    with pytest.raises(ValueError, match="'gan' has no score for \\['b'\\]"):
        paired_summary(per_unit.assign(gan=[0.6, np.nan, 0.9]))


# ------------------------------------------------------------------------------------------ compare_cv.py


def _compare_cv():
    spec = importlib.util.spec_from_file_location("compare_cv", ROOT / "benchmarks" / "compare_cv.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FOLDS = [{"train": ["BraTS2021_00003"], "val": ["BraTS-GLI-00001-000", "BraTS2021_00001", "BraTS2021_00002"],
          "test": [], "patients": ["00001", "00002"]},
         {"train": ["BraTS2021_00001"], "val": ["BraTS2021_00003"], "test": [], "patients": ["00003"]}]


def _write_cv(folder: Path, dice: dict, folds=FOLDS) -> Path:
    """A scored cross-validation directory as read_results reads it; ``dice``: case → lesion-wise Dice (all regions)."""
    folder.mkdir(parents=True)
    (folder / "folds.json").write_text(json.dumps({"k": 2, "folds": folds}))
    rows = [{"variant": v, "fold": 0, "patient": patient_of(c), "case": c, "region": r, "lesionwise_dice": d,
             "legacy_dice": d, "lesionwise_hd95": 10.0, "num_fp": 0, "num_fn": 0}
            for v in ("none", "rules") for c, d in dice.items() for r in REGION_ORDER]
    pd.DataFrame(rows).to_csv(folder / "scores.csv", index=False)
    pd.DataFrame([{"variant": "none", "fold": "all", "region": "WT"}]).to_csv(folder / "summary.csv", index=False)
    return folder


def test_compare_cv_averages_a_patients_cases_first_and_pairs_patients(tmp_path, capsys):
    real = _write_cv(tmp_path / "real", {"BraTS-GLI-00001-000": 0.2, "BraTS2021_00001": 0.4,
                                         "BraTS2021_00002": 0.5, "BraTS2021_00003": 0.9})
    gan = _write_cv(tmp_path / "gan", {"BraTS-GLI-00001-000": 0.6, "BraTS2021_00001": 0.6,
                                       "BraTS2021_00002": 0.4, "BraTS2021_00003": 0.9})
    _compare_cv().main(["--arm", f"real={real}", "--arm", f"gan={gan}", "--out", str(tmp_path / "out")])
    summary = pd.read_csv(tmp_path / "out" / "summary.csv").set_index("arm")
    # patient 00001 once (its two cases averaged: 0.3 against 0.6), then 00002 and 00003
    assert summary.loc["real", "mean"] == pytest.approx((0.3 + 0.5 + 0.9) / 3)
    assert summary.loc["gan", "paired_diff"] == pytest.approx((0.3 - 0.1 + 0) / 3)
    assert summary.loc["gan", "better"] == "1/3" and (summary["n"] == 3).all()
    assert summary.loc["gan", "WT"] == pytest.approx((0.6 + 0.4 + 0.9) / 3)
    experiment = pd.read_csv(tmp_path / "out" / "experiment.csv")
    assert list(experiment.columns) == ["arm", "fraction", "patient", "case", "region", "dice", "hd95"]
    assert len(experiment) == 2 * 4 * len(REGION_ORDER)
    assert "n = 3 patients (4 cases)" in capsys.readouterr().out
    _compare_cv().main(["--arm", f"real={real}", "--arm", f"gan={gan}", "--out", str(tmp_path / "out"),
                        "--conspicuity"])
    assert "no arm made inserted-tumour cases per fold" in capsys.readouterr().out
    assert not (tmp_path / "out" / "conspicuity.csv").exists()


def test_compare_cv_refuses_arms_of_other_folds_or_unfinished_ones_in_one_line(tmp_path, capsys):
    dice = {"BraTS-GLI-00001-000": 0.2, "BraTS2021_00001": 0.4, "BraTS2021_00002": 0.5, "BraTS2021_00003": 0.9}
    real = _write_cv(tmp_path / "real", dice)
    other = _write_cv(tmp_path / "other", dice, folds=FOLDS[::-1])
    (tmp_path / "unfinished").mkdir()
    script = _compare_cv()
    for arms, message in ((["--arm", f"real={real}", "--arm", f"x={other}"], "other folds"),
                          (["--arm", f"real={real}", "--arm", f"x={tmp_path / 'unfinished'}"], "folds.json: missing"),
                          (["--arm", f"real={real}", "--arm", "x"], "expected NAME=CV_DIR"),
                          (["--arm", f"real={real}"], "at least two"),
                          (["--arm", f"real={real}", "--arm", f"x={real}", "--variant", "size"], "no post-processing")):
        with pytest.raises(SystemExit) as stop:
            script.main([*arms, "--out", str(tmp_path / "out")])
        assert stop.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("compare_cv.py: error:") and message in err and "\n" not in err
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------ gan_experiment_analysis.py


def _analysis():
    spec = importlib.util.spec_from_file_location("gan_experiment_analysis",
                                                  ROOT / "benchmarks" / "gan_experiment_analysis.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_analysis_voxel_rows_recall_precision_and_false_positives_outside_every_tumour():
    from brats_lib.analysis.errors import confusion_matrix

    gt = np.zeros((10, 10, 10), np.uint8)
    gt[2:4, 2:4, 2:4] = 4  # 8 RC voxels
    gt[5:7, 5:7, 5:7] = 2  # 8 SNFH voxels
    pred = gt.copy()
    pred[2, 2, 2] = 0  # one RC voxel missed
    pred[8, 8, 8] = 4  # one RC voxel in the background
    pred[5, 5, 5] = 3  # one SNFH voxel called ET: still WT
    rows = {r["region"]: r for r in _analysis().voxel_rows("gan", confusion_matrix(pred, gt), 0.001)}
    assert rows["RC"]["recall"] == pytest.approx(7 / 8) and rows["RC"]["precision"] == pytest.approx(7 / 8)
    assert rows["RC"]["fp_outside_tumour_ml"] == pytest.approx(0.001)
    assert rows["WT"]["recall"] == 1 and rows["WT"]["fp_outside_tumour_ml"] == 0
    assert rows["ET"]["precision"] == 0 and np.isnan(rows["ET"]["recall"])


def test_analysis_of_an_unfinished_experiment_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        _analysis().main(["--out", str(tmp_path), "--fraction", "0.5"])
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and "test_data: missing" in err and "--fractions 0.5" in err and "\n" not in err
    assert not (tmp_path / "analysis").exists()
