"""Patient-level cross-validation (brats_lib.crossval): grouping of the two releases' copies of a patient,
disjoint folds, lesion-wise scoring with known answers, aggregation with n, cross-fitted post-processing, and
the fold runner on tiny cases."""

import json

import numpy as np
import pandas as pd
import pytest

from brats_lib import crossval
from brats_lib.labels import REGION_ORDER
from conftest import tiny_train_config, write_tiny_case

IDS = ["BraTS-GLI-00002-000", "BraTS2021_00002", "BraTS2021_00006", "BraTS-GLI-00007-000",
       "BraTS-GLI-00007-001", "BraTS2021_00031", "BraTS2021_00019"]


def test_the_two_releases_copies_of_a_patient_are_one_patient():
    groups = crossval.patient_groups(IDS)
    assert groups == {"00002": ["BraTS-GLI-00002-000", "BraTS2021_00002"], "00006": ["BraTS2021_00006"],
                      "00007": ["BraTS-GLI-00007-000", "BraTS-GLI-00007-001"], "00019": ["BraTS2021_00019"],
                      "00031": ["BraTS2021_00031"]}


@pytest.mark.parametrize("k", [2, 3, 5])
def test_folds_partition_the_cases_and_never_split_a_patient(k):
    folds = crossval.make_folds(IDS, k, seed=1)
    assert len(folds) == k
    vals = [set(f["val"]) for f in folds]
    assert sorted(c for v in vals for c in v) == sorted(IDS)  # every case validated exactly once
    for fold in folds:
        assert set(fold["train"]).isdisjoint(fold["val"])
        assert set(fold["train"]) | set(fold["val"]) == set(IDS)
        train_patients = {crossval.patient_of(c) for c in fold["train"]}
        val_patients = {crossval.patient_of(c) for c in fold["val"]}
        assert train_patients.isdisjoint(val_patients)
        assert sorted(val_patients) == fold["patients"]
    sizes = [len(f["patients"]) for f in folds]
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) == 5


def test_folds_do_not_depend_on_input_order_and_check_k():
    assert crossval.make_folds(IDS, 3, seed=4) == crossval.make_folds(IDS[::-1], 3, seed=4)
    for k in (1, 6):
        with pytest.raises(ValueError, match="between 2 and the number of patients"):
            crossval.make_folds(IDS, k)


def _box(shape=(40, 40, 40)):
    gt = np.zeros(shape, np.uint8)
    gt[5:15, 5:15, 5:15] = 2  # 1000 voxels of SNFH
    gt[8:12, 8:12, 8:12] = 3  # 64 of ET
    return gt


def test_score_prediction_known_answers():
    gt = _box()
    perfect = crossval.score_prediction(gt, gt, (1, 1, 1))
    assert all(perfect[r]["lesionwise_dice"] == 1.0 for r in ("WT", "TC", "ET", "SNFH"))
    pred = gt.copy()
    pred[30:35, 30:35, 30:35] = 2  # a 125-voxel false-positive WT lesion far away
    scores = crossval.score_prediction(pred, gt, (1, 1, 1))
    assert scores["WT"]["num_fp"] == 1 and scores["WT"]["num_fn"] == 0
    assert scores["WT"]["lesionwise_dice"] == pytest.approx(0.5)  # (1 + 0) / 2 lesions
    assert scores["WT"]["legacy_dice"] == pytest.approx(2 * 1000 / (1000 + 1125))
    assert scores["ET"]["lesionwise_dice"] == 1.0


def test_aggregate_counts_a_patient_once_and_states_n():
    rows = []
    # fold 0: patient A with two cases (WT 0.2 and 0.4 → 0.3), patient B (0.9) → fold mean 0.6
    # fold 1: patient C (0.5) → fold mean 0.5; overall over patients (0.3 + 0.9 + 0.5) / 3
    for fold, patient, case, value in [(0, "A", "a1", 0.2), (0, "A", "a2", 0.4), (0, "B", "b", 0.9),
                                       (1, "C", "c", 0.5)]:
        rows.append({"fold": fold, "patient": patient, "case": case, "region": "WT", "lesionwise_dice": value,
                     "legacy_dice": 1.0})
    table = crossval.aggregate(pd.DataFrame(rows)).set_index("fold")
    assert table.loc["0", "lesionwise_dice"] == pytest.approx(0.6)
    assert table.loc["1", "lesionwise_dice"] == pytest.approx(0.5)
    assert table.loc["all", "lesionwise_dice"] == pytest.approx(1.7 / 3)
    assert (table.loc["0", "n_patients"], table.loc["0", "n_cases"]) == (2, 3)
    assert (table.loc["all", "n_patients"], table.loc["all", "n_cases"]) == (3, 4)
    assert table.loc["all", "lesionwise_dice_fold_sd"] == pytest.approx(np.std([0.6, 0.5], ddof=1))
    assert list(table.index) == ["0", "1", "all"]


def test_aggregate_keeps_variants_apart():
    rows = [{"variant": v, "fold": f, "patient": p, "case": p, "region": "ET", "lesionwise_dice": x}
            for v, f, p, x in [("none", 0, "A", 0.1), ("none", 1, "B", 0.3), ("rules", 0, "A", 0.5),
                               ("rules", 1, "B", 0.9)]]
    table = crossval.aggregate(pd.DataFrame(rows))
    overall = table[table.fold == "all"].set_index("variant")["lesionwise_dice"]
    assert overall["none"] == pytest.approx(0.2) and overall["rules"] == pytest.approx(0.7)


def test_crossfit_tunes_each_fold_on_the_other_folds_only():
    preds = {"a": np.array(1.0), "b": np.array(2.0), "c": np.array(4.0), "d": np.array(8.0)}
    fold_of = {"a": 0, "b": 0, "c": 1, "d": 2}
    seen = []

    def tune(p, g, s):
        seen.append(sorted(float(x) for x in p))
        return float(sum(p))

    out, settings = crossval.crossfit_postprocessing(preds, preds, {c: (1, 1, 1) for c in preds}, fold_of,
                                                     tune, lambda label, total, spacing: label + total)
    assert settings == {0: 12.0, 1: 11.0, 2: 7.0}
    assert out["a"] == 13.0 and out["b"] == 14.0 and out["c"] == 15.0 and out["d"] == 15.0
    assert seen == [[4.0, 8.0], [1.0, 2.0, 8.0], [1.0, 2.0, 4.0]]
    with pytest.raises(ValueError, match="at least two folds"):
        crossval.crossfit_postprocessing({"a": preds["a"]}, preds, {"a": (1, 1, 1)}, {"a": 0}, tune,
                                         lambda *a: a[0])


@pytest.mark.slow
def test_run_folds_trains_predicts_and_scores_tiny_cases(tmp_path):
    data = tmp_path / "raw"
    for i in range(4):
        write_tiny_case(data, i)
    config = tiny_train_config(tmp_path, iterations=1)
    cv_dir = tmp_path / "cv"
    folds = crossval.run_folds(data, cv_dir, 2, config, log=lambda line: None)
    assert json.loads((cv_dir / "folds.json").read_text())["folds"] == folds
    for i, fold in enumerate(folds):
        assert (cv_dir / f"fold{i}" / "run" / "last.pt").is_file()
        for case_id in fold["val"]:
            assert crossval.raw_prediction_path(cv_dir, i, case_id).is_file()
    preds, truths, spacings, fold_of, patient = crossval.load_fold_predictions(cv_dir, data)
    assert sorted(preds) == sorted(c for f in folds for c in f["val"])
    assert all(preds[c].shape == truths[c].shape == (28, 28, 28) for c in preds)
    scores = crossval.score_variants({"none": preds}, truths, spacings, fold_of, patient)
    assert len(scores) == 4 * 6 and scores["lesionwise_dice"].between(0, 1).all()
    summary = crossval.aggregate(scores)
    assert int(summary[summary.fold == "all"]["n_patients"].iloc[0]) == 4
    # done folds are skipped; other folds in the same directory are refused
    mtime = (cv_dir / "fold0" / "run" / "last.pt").stat().st_mtime
    crossval.run_folds(data, cv_dir, 2, config, log=lambda line: None)
    assert (cv_dir / "fold0" / "run" / "last.pt").stat().st_mtime == mtime
    with pytest.raises(ValueError, match="other folds"):
        crossval.run_folds(data, cv_dir, 3, config, log=lambda line: None)


@pytest.mark.slow
def test_run_folds_adds_extra_training_cases_to_every_fold_and_never_scores_them(tmp_path):
    data, extra = tmp_path / "raw", tmp_path / "extra"
    for i in range(4):
        write_tiny_case(data, i)
    for i in (10, 11):
        write_tiny_case(extra, i)
    config = tiny_train_config(tmp_path, iterations=1)
    cv_dir = tmp_path / "cv"
    folds = crossval.run_folds(data, cv_dir, 2, config, log=lambda line: None, extra_train=extra)
    extra_ids = ["BraTS-GLI-00010-000", "BraTS-GLI-00011-000"]
    assert json.loads((cv_dir / "folds.json").read_text())["extra_cases"] == extra_ids
    for i, fold in enumerate(folds):
        splits = json.loads((cv_dir / f"fold{i}" / "splits.json").read_text())
        assert splits["train"] == fold["train"] + extra_ids and splits["val"] == fold["val"]
        assert not set(extra_ids) & set(fold["val"])
        assert json.loads((cv_dir / f"fold{i}" / "run" / "config.json").read_text())["data_dir"] == str(
            cv_dir / "train_data")
    # linked, not copied: the training folder holds two symbolic links
    assert sorted(p.name for p in (cv_dir / "train_data").iterdir()) == ["extra", "real"]
    assert all(p.is_symlink() for p in (cv_dir / "train_data").iterdir())
    preds, *_ = crossval.load_fold_predictions(cv_dir, data)
    assert sorted(preds) == sorted(c for f in folds for c in f["val"])  # the extra cases are never predicted
    # the same directory with another extra set, or a case id clash, is refused
    with pytest.raises(ValueError, match="extra case"):
        crossval.run_folds(data, cv_dir, 2, config, log=lambda line: None)
    with pytest.raises(ValueError, match="also in"):
        crossval.run_folds(data, tmp_path / "cv2", 2, config, log=lambda line: None, extra_train=data)


@pytest.mark.slow
def test_run_folds_with_extra_cases_made_per_fold_from_that_folds_training_cases(tmp_path):
    """A function makes each fold's extra cases (a GAN's, say) from the fold's own training cases only; it is
    called only for folds still to train, and each fold records its extra cases."""
    data = tmp_path / "raw"
    for i in range(4):
        write_tiny_case(data, i)
    calls = []

    def make_extra(i, fold):
        calls.append((i, list(fold["train"])))
        folder = tmp_path / f"extra{i}"
        write_tiny_case(folder, 10 + i)
        return folder

    config = tiny_train_config(tmp_path, iterations=1)
    cv_dir = tmp_path / "cv"
    folds = crossval.run_folds(data, cv_dir, 2, config, log=lambda line: None, extra_train=make_extra)
    assert calls == [(0, folds[0]["train"]), (1, folds[1]["train"])]
    assert json.loads((cv_dir / "folds.json").read_text())["extra_train"] == crossval.PER_FOLD
    for i, fold in enumerate(folds):
        own = [f"BraTS-GLI-{10 + i:05d}-000"]
        assert json.loads((cv_dir / f"fold{i}" / crossval.EXTRA_FILE).read_text()) == {
            "extra_train": str(tmp_path / f"extra{i}"), "extra_cases": own}
        splits = json.loads((cv_dir / f"fold{i}" / "splits.json").read_text())
        assert splits["train"] == fold["train"] + own and splits["val"] == fold["val"]
        train_data = cv_dir / f"fold{i}" / "train_data"
        assert json.loads((cv_dir / f"fold{i}" / "run" / "config.json").read_text())["data_dir"] == str(train_data)
        assert (train_data / "extra").resolve() == (tmp_path / f"extra{i}").resolve()
    preds, *_ = crossval.load_fold_predictions(cv_dir, data)
    assert sorted(preds) == sorted(c for f in folds for c in f["val"])
    crossval.score_folds(cv_dir, data, ["none"], log=lambda line: None)
    assert crossval.read_results(cv_dir).training["n_extra"].tolist() == [1, 1]
    # done folds do not make their extra cases again; a per-fold directory is not reused without them
    crossval.run_folds(data, cv_dir, 2, config, log=lambda line: None, extra_train=make_extra)
    assert len(calls) == 2
    with pytest.raises(ValueError, match="per-fold extra cases"):
        crossval.run_folds(data, cv_dir, 2, config, log=lambda line: None)


@pytest.mark.slow
def test_score_folds_read_results_and_out_of_fold_maps(tmp_path):
    """The whole path on tiny cases: folds → cross-fitted scoring → read back → the scored maps as folders."""
    from brats_lib.inference import postprocess_label
    from brats_lib.io import load_label

    data = tmp_path / "raw"
    for i in range(4):
        write_tiny_case(data, i)
    config = tiny_train_config(tmp_path, iterations=2)
    cv_dir = tmp_path / "cv"
    folds = crossval.run_folds(data, cv_dir, 2, config, log=lambda line: None)
    with pytest.raises(ValueError, match="unknown post-processing variant"):
        crossval.score_folds(cv_dir, data, ["none", "bogus"], log=lambda line: None)
    summary = crossval.score_folds(cv_dir, data, ["none", "rules"], log=lambda line: None)
    results = crossval.read_results(cv_dir)
    pd.testing.assert_frame_equal(results.summary.reset_index(drop=True), summary.astype({"fold": str}),
                                  check_dtype=False)
    assert results.variants == ["none", "rules"] and results.extra_cases == []
    assert results.training["iterations"].tolist() == [2, 2]
    assert results.training["n_val"].tolist() == [len(f["val"]) for f in folds]
    assert set(results.crossfit["rules"]) == {"0", "1"}
    # each fold's run keeps the settings its predictions were scored with
    for fold in ("0", "1"):
        stored = json.loads((cv_dir / f"fold{fold}" / "run" / "postprocess.json").read_text())
        assert stored["min_component_voxels"] == results.crossfit["rules"][fold]["min_component_voxels"]
    raw_dir, rules_dir = crossval.write_out_of_fold(cv_dir, "none"), crossval.write_out_of_fold(cv_dir, "rules")
    for i, fold in enumerate(folds):
        for case_id in fold["val"]:
            raw = load_label(crossval.raw_prediction_path(cv_dir, i, case_id))
            np.testing.assert_array_equal(load_label(raw_dir / f"{case_id}.nii.gz"), raw)
            expected = postprocess_label(raw, results.crossfit["rules"][str(i)], (1.0, 1.0, 1.0))
            np.testing.assert_array_equal(load_label(rules_dir / f"{case_id}.nii.gz"), expected)
    # the scores of the written maps are the scores in the table
    case_id = folds[0]["val"][0]
    truth = load_label(data / case_id / f"{case_id}-seg.nii.gz")
    rescored = crossval.score_prediction(load_label(rules_dir / f"{case_id}.nii.gz"), truth, (1.0, 1.0, 1.0))
    table = results.scores.query("variant == 'rules' and case == @case_id").set_index("region")
    for region, values in rescored.items():
        assert values["lesionwise_dice"] == pytest.approx(table.loc[region, "lesionwise_dice"], nan_ok=True)
    with pytest.raises(ValueError, match="no cross-fitted settings for variant 'size'"):
        crossval.write_out_of_fold(cv_dir, "size")
    with pytest.raises(FileNotFoundError, match="folds.json: missing"):
        crossval.read_results(tmp_path / "nothing")


def test_compare_arms_pairs_patients_and_states_n():
    def table(values):
        return pd.DataFrame([{"variant": "rules", "patient": p, "case": f"{p}-{c}", "region": r,
                              "lesionwise_dice": v + (0.1 if c else 0.0)}
                             for p, v in values.items() for c in (0, 1) for r in ("WT", "TC", "ET", "NETC",
                                                                                  "SNFH", "RC")])
    base = table({"a": 0.5, "b": 0.7, "c": 0.2})
    better = table({"a": 0.6, "b": 0.6, "c": 0.5})
    out = crossval.compare_arms({"base": base, "new": better}).set_index("region")
    assert out.loc["WT", "base"] == pytest.approx((0.55 + 0.75 + 0.25) / 3)
    assert out.loc["WT", "new − base"] == pytest.approx((0.1 - 0.1 + 0.3) / 3)
    assert out.loc["WT", "new: patients better"] == "2/3" and out.loc["WT", "n_patients"] == 3
    assert list(out.index) == list(REGION_ORDER)


def _agreement():
    # fold 0 validates a, b (true 100, 120 mL) and over-calls; fold 1 validates c, d (true 20, 30 mL)
    rows = [("a", 100, 150), ("b", 120, 160), ("c", 20, 10), ("d", 30, 15)]
    return pd.DataFrame([{"case": c, "region": "WT", "gt_ml": g, "pred_ml": p} for c, g, p in rows])


def test_volume_prior_table_sets_each_folds_error_beside_its_training_volumes():
    table = crossval.volume_prior_table(_agreement(), {"a": 0, "b": 0, "c": 1, "d": 1}).set_index("fold")
    assert table.loc[0, "train_true_ml"] == 25.0 and table.loc[0, "val_true_ml"] == 110.0
    assert table.loc[0, "val_predicted_ml"] == 155.0 and table.loc[0, "val_error_ml"] == 45.0
    assert table.loc[1, "train_true_ml"] == 110.0 and table.loc[1, "val_error_ml"] == -12.5
    assert table["n_train_cases"].tolist() == [2, 2] and table["n_val_cases"].tolist() == [2, 2]


def test_findings_are_written_from_the_numbers():
    rows = []
    for variant, dice in (("none", 0.5), ("rules", 0.7)):
        for region in REGION_ORDER:
            rows.append({"variant": variant, "fold": "all", "region": region, "lesionwise_dice": dice,
                         "lesionwise_dice_fold_sd": 0.1 if region != "WT" else 0.3, "n_patients": 7, "n_cases": 9})
    summary = pd.DataFrame(rows)
    prior = pd.DataFrame({"fold": [0, 1, 2], "train_true_ml": [50.0, 100.0, 180.0],
                          "val_error_ml": [-80.0, 5.0, 150.0]})
    text = crossval.findings(summary, "rules", prior)
    assert text.startswith("Over 7 patients (9 cases)")
    assert "WT 0.700 (goal 0.80)" in text and "the goal is reached for TC, ET" in text
    assert "up to 0.30" in text and "WT +0.200" in text
    assert "fold 0 calls -80 mL" in text and "fold 2 +150 mL" in text and "typical extent" in text
    flat = prior.assign(train_true_ml=100.0)  # no spread: no claim about a prior, and no warning
    assert "typical extent" not in crossval.findings(summary, "rules", flat)
    assert crossval.findings(summary, "size").startswith("No scores of variant 'size'")
    comparison = pd.DataFrame({"region": ["WT", "TC", "ET"], "base": [0.6, 0.5, 0.5], "a": [0.7, 0.5, 0.6],
                               "a − base": [0.1, 0.0, 0.1], "b": [0.5, 0.6, 0.5], "b − base": [-0.1, 0.1, 0.0],
                               "n_patients": [7, 7, 7]})
    text = crossval.findings(summary, "rules", comparison=comparison)
    assert "a against base (mean per-patient difference, n = 7 patients): WT +0.100, TC +0.000, ET +0.100." in text
    assert "b against base (mean per-patient difference, n = 7 patients): WT -0.100, TC +0.100, ET +0.000." in text


def test_crossval_figures_fit_the_column_and_state_n():
    import matplotlib

    matplotlib.use("Agg")
    from brats_lib import viz

    rows = [{"variant": "rules", "fold": f, "region": r, "lesionwise_dice": 0.5, "lesionwise_dice_fold_sd": 0.1,
             "n_patients": 7 if f == "all" else 2, "n_cases": 9 if f == "all" else 3}
            for f in ("0", "1", "2", "all") for r in ("WT", "TC", "ET")]
    fig = viz.plot_crossval_scores(pd.DataFrame(rows), "rules", goals=crossval.GOALS)
    assert fig.get_size_inches()[0] <= 7.0 and "n = 7 patients, 9 cases" in fig.axes[0].get_title()
    assert [t.get_text() for t in fig.legends[0].get_texts()][-1] == "goal"
    fig = viz.plot_crossval_volumes(_agreement(), {"a": 0, "b": 0, "c": 1, "d": 1}, regions=("WT",))
    assert fig.get_size_inches()[0] <= 7.0 and fig.axes[0].get_title() == "WT (n = 4 cases)"
    assert fig.axes[0].get_xlabel() == "true volume (mL)"


@pytest.mark.slow
def test_train_final_trains_on_every_case_and_takes_the_crossvals_post_processing(tmp_path, capsys):
    """The deliverable run: every real case (+ extra) trains, best.pt is the last epoch, postprocess.json is
    tuned on the cross-validation's out-of-fold predictions, and brats predict --run applies both."""
    from brats_lib.cli import main as cli_main
    from brats_lib.inference import postprocess_label, predict_case
    from brats_lib.io import discover_cases, load_case, load_label

    data, extra = tmp_path / "raw", tmp_path / "extra"
    for i in range(4):
        write_tiny_case(data, i)
    write_tiny_case(extra, 10)
    config = tiny_train_config(tmp_path, iterations=2)
    cv_dir = tmp_path / "cv"
    crossval.run_folds(data, cv_dir, 2, config, log=lambda line: None, extra_train=extra)
    run_dir = tmp_path / "final"
    # refused before any training: not a cross-validation, an unfinished one, a case id clash
    with pytest.raises(ValueError, match="not a cross-validation directory"):
        crossval.train_final(data, run_dir, config, extra_train=extra, postprocess_from=tmp_path,
                             log=lambda line: None)
    assert not run_dir.exists()  # nothing written
    (cv_dir / "fold1" / "raw").rename(tmp_path / "aside")
    with pytest.raises(ValueError, match="unfinished cross-validation"):
        crossval.train_final(data, run_dir, config, postprocess_from=cv_dir, log=lambda line: None)
    (tmp_path / "aside").rename(cv_dir / "fold1" / "raw")
    with pytest.raises(ValueError, match="also in"):
        crossval.train_final(data, run_dir, config, extra_train=data, log=lambda line: None)
    assert not (run_dir / "last.pt").exists()

    lines = []
    record = crossval.train_final(data, run_dir, {**config, "iterations_per_epoch": 3}, extra_train=extra,
                                  postprocess_from=cv_dir, log=lines.append)
    real_ids = sorted(c.case_id for c in discover_cases(data))
    assert record["cases"] == real_ids and record["extra_cases"] == ["BraTS-GLI-00010-000"]
    assert record["iterations"] == 3 and record["postprocess_from"] == str(cv_dir)
    assert record["recipe_differs_from_crossval"] == ["iterations_per_epoch"]
    assert any("measured another recipe (iterations_per_epoch differ)" in line for line in lines)
    assert json.loads((run_dir / crossval.FINAL_FILE).read_text()) == json.loads(json.dumps(record))
    splits = json.loads((run_dir / "splits.json").read_text())
    assert splits["train"] == real_ids + ["BraTS-GLI-00010-000"] and splits["val"] == []
    assert (run_dir / "best.pt").read_bytes() == (run_dir / "last.pt").read_bytes()
    stored = json.loads((run_dir / "postprocess.json").read_text())
    assert stored["min_component_voxels"] == record["postprocessing"]["min_component_voxels"]
    assert stored.get("rules") == record["postprocessing"]["rules"]

    # brats predict --run applies the final weights and the tuned post-processing
    first = discover_cases(data)[0]
    case = load_case(first)
    raw = predict_case(run_dir, case, tta=False, postprocess=False, checkpoint="last.pt")
    expected = postprocess_label(raw, record["postprocessing"], (1.0, 1.0, 1.0))
    out = tmp_path / "pred"
    assert cli_main(["predict", "--run", str(run_dir), "--in", str(data), "--out", str(out), "--device", "cpu",
                     "--no-tta"]) == 0
    capsys.readouterr()
    np.testing.assert_array_equal(load_label(out / f"{first.case_id}.nii.gz"), expected)
