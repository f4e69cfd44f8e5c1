"""The report's tables and "What this shows" sentences: known numbers in, known words out."""

import numpy as np
import pandas as pd
import pytest

from brats_lib import report
from brats_lib.labels import REGION_COLORS


def _history(val_loss, dice_wt, dice_et, seconds=10.0):
    n = len(val_loss)
    rows = []
    for i in range(n):
        rows.append({"epoch": i + 1, "train_loss": 1.0 - 0.1 * i, "val_loss": val_loss[i], "val_dice_WT": dice_wt[i],
                     "val_dice_TC": np.nan, "val_dice_ET": dice_et[i], "lr": 1e-3, "seconds": seconds})
    return pd.DataFrame(rows)


def test_plural():
    assert report.plural(1, "case") == "1 case"
    assert report.plural(3, "case") == "3 cases"
    assert report.plural(0, "patch", "patches") == "0 patches"


def test_training_log_is_a_table_by_epoch():
    table = report.training_log(_history([0.9, 0.8], [0.51234, 0.6], [0.1, 0.2], seconds=12.345))
    assert list(table.index) == [1, 2]
    assert list(table.columns) == ["train loss", "val loss", "WT", "TC", "ET", "s"]
    assert table.loc[1, "WT"] == 0.512 and table.loc[2, "s"] == 12.3


def test_confusion_matrix_counts_truth_against_prediction():
    label = np.array([[0, 1, 1, 4], [2, 2, 3, 3]], np.uint8)
    pred = np.array([[0, 4, 4, 4], [2, 0, 3, 3]], np.uint8)
    cm = report.confusion_matrix([(None, label, pred)])
    assert cm.loc["NETC", "RC"] == 2 and cm.loc["NETC", "NETC"] == 0
    assert cm.loc["SNFH", "background"] == 1 and cm.loc["SNFH", "SNFH"] == 1
    assert cm.loc["ET", "ET"] == 2 and cm.loc["RC", "RC"] == 1
    assert int(cm.to_numpy().sum()) == label.size
    assert report.most_confused(cm) == ("NETC", "RC", 1.0)


def test_most_confused_is_none_when_every_foreground_voxel_is_right():
    label = np.array([1, 2, 3, 0], np.uint8)
    cm = report.confusion_matrix([(None, label, np.array([1, 2, 3, 1], np.uint8))])  # only a false positive
    assert report.most_confused(cm) is None


def test_training_findings_from_the_numbers():
    still_falling = _history([0.9, 0.8, 0.7], [0.2, 0.4, 0.6], [0.0, 0.1, 0.05])
    text = report.training_findings(still_falling, 3.25)
    assert "3.2 min (3 epochs)" in text or "3.3 min (3 epochs)" in text
    assert "epoch 3: WT reached 0.600 and ET only 0.050" in text
    assert "still falling" in text
    plateau = _history([0.9, 0.7, 0.8], [0.2, 0.6, 0.5], [0.1, 0.3, 0.2])
    text = report.training_findings(plateau, 1.0)
    assert "lowest at epoch 2 of 3" in text and "still falling" not in text
    cm = pd.DataFrame([[90, 0, 10], [0, 1, 3], [0, 0, 5]], index=["background", "NETC", "RC"],
                      columns=["background", "NETC", "RC"])
    assert "NETC predicted as RC (75 % of the NETC voxels)" in report.training_findings(plateau, 1.0, cm)
    single = report.training_findings(_history([0.9], [0.1], [0.0]), 0.1)
    assert "single epoch" in single


def test_training_findings_name_the_epoch_of_the_kept_checkpoint():
    # all six regions would pick epoch 1 (NETC dominates), best.pt is chosen by WT, TC, ET: epoch 2
    history = _history([0.9, 0.8], [0.5, 0.6], [0.5, 0.6]).assign(val_dice_NETC=[0.9, 0.1])
    text = report.training_findings(history, 1.0)
    assert "by mean validation Dice on patches over WT, ET) was epoch 2" in text


def test_roundtrip_findings_name_the_ceiling():
    text = report.roundtrip_findings({"NETC": 0.866, "SNFH": 0.97, "ET": 0.9}, 2, True, 8, 12.3, 45.6)
    assert "8 cases" in text and "12.3 s" in text and "45.6 MiB" in text
    assert "0.866 for NETC" in text and "ceiling" in text and "exact" in text
    exact = report.roundtrip_findings({"NETC": 1.0}, 1, True, 1, 1.0, 1.0)
    assert "sets no ceiling" in exact and "1 case " in exact
    assert "bug" in report.roundtrip_findings({"NETC": 1.0}, 1, False, 1, 1.0, 1.0)


def test_augmentation_findings_follow_the_conditions():
    good = report.augmentation_findings(4, 0.5, "cpu", True, True)
    assert "4 samples in 0.50 s on cpu" in good and "identical" in good and "never blends" in good
    bad = report.augmentation_findings(1, 0.5, "cuda:0", False, False)
    assert "1 sample in" in bad and "NOT" in bad and "blended" in bad


def test_dataset_findings():
    cases = pd.DataFrame({"patient": ["a", "a", "b"], "has_label": [True, True, False],
                          "shape": [(182, 218, 182)] * 3, "spacing_mm": [(1.0, 1.0, 1.0)] * 3})
    text = report.dataset_findings(cases, ["SNFH", "ET"], ["NETC", "RC"], "case-1")
    assert "3 cases from 2 patients, all on one 182×218×182 grid of 1×1×1 mm voxels" in text
    assert "1 case has no label map" in text
    assert "case-1, contains SNFH, ET but no NETC, RC" in text


def test_eda_findings():
    summary = pd.DataFrame({"cases": [4, 4, 4], "present": [4, 4, 2], "median_ml": [50.0, 3.0, 1.5],
                            "min_ml": [20.0, 1.0, 0.0], "max_ml": [90.0, 8.0, 4.0]},
                           index=pd.Index(["WT", "SNFH", "ET"], name="region"))
    intensities = pd.DataFrame({
        "region": ["brain (no label)"] * 2 + ["ET"] * 2,
        "modality": ["t1c", "t2f"] * 2,
        "zscore": [0.0, 0.0, 2.5, 0.5]})
    text = report.eda_findings(summary, intensities)
    assert "4 labelled cases, WT is the largest region (median 50.0 mL, range 20.0–90.0)" in text
    assert "ET the smallest (median 1.5 mL)" in text
    assert "ET in 2 of 4" in text
    assert "ET on t1c (+2.5 SD)" in text


def test_learning_curves_use_the_house_palette_and_fit_the_column():
    import matplotlib

    matplotlib.use("Agg")
    fig = report.plot_learning_curves(_history([0.9, 0.8], [0.2, 0.4], [0.1, 0.2]))
    assert fig.get_size_inches()[0] <= 7.0
    lines = {line.get_label(): line.get_color() for line in fig.axes[1].get_lines()}
    assert matplotlib.colors.to_rgb(lines["WT"]) == pytest.approx(REGION_COLORS["WT"])
    assert matplotlib.colors.to_rgb(lines["ET"]) == pytest.approx(REGION_COLORS["ET"])


def test_cases_display_is_compact():
    cases = pd.DataFrame({"case_id": ["a"], "shape": [(182, 218, 182)], "spacing_mm": [(1.0, 1.0, 1.5)],
                          "voxel_ml": [0.0015]})
    shown = report.cases_display(cases)
    assert shown.index.tolist() == ["a"] and "voxel_ml" not in shown
    assert shown.loc["a", "grid (voxels)"] == "182×218×182" and shown.loc["a", "voxel (mm)"] == "1×1×1.5"


def _scores():
    rows = []
    for model, dice_wt in (("a", 0.8), ("b", 0.4)):
        rows.append({"model": model, "case": "BraTS-GLI-00001-000", "region": "WT", "LesionWise_Score_Dice": dice_wt,
                     "LesionWise_Score_HD95": 5.0, "Num_TP": 1, "Num_FP": 0, "Num_FN": 0, "GT_Complete_Volume": 100})
        rows.append({"model": model, "case": "BraTS-GLI-00001-000", "region": "ET", "LesionWise_Score_Dice": 1.0,
                     "LesionWise_Score_HD95": 0.0, "Num_TP": 0, "Num_FP": 0, "Num_FN": 0, "GT_Complete_Volume": 0})
        rows.append({"model": model, "case": "BraTS-GLI-00001-000", "region": "RC", "LesionWise_Score_Dice": 0.0,
                     "LesionWise_Score_HD95": 337.0, "Num_TP": 0, "Num_FP": 2, "Num_FN": 0, "GT_Complete_Volume": 0})
    return pd.DataFrame(rows)


def test_both_empty_marks_only_regions_absent_from_truth_and_prediction():
    assert report.both_empty(_scores()).tolist() == [False, True, False] * 2
    shown = report.scores_display(_scores(), names={"a": "Model A"})
    assert shown.loc[1, "Dice"] == "1.000 †" and shown.loc[1, "HD95 (mm)"] == "0.0 †"
    assert shown.loc[2, "Dice"] == "0.000" and shown.loc[0, "case"] == "00001-000"
    assert shown.loc[0, "model"] == "Model A"


def test_evaluation_findings():
    cm = pd.DataFrame([[10, 0, 0], [0, 1, 9], [0, 0, 5]], index=["background", "NETC", "RC"],
                      columns=["background", "NETC", "RC"])
    text = report.evaluation_findings(_scores(), names={"a": "Model A", "b": "Model B"}, confusion=cm,
                                      confusion_model="a", ceiling={"NETC": 0.866, "ET": 0.9})
    assert "On 1 test case, Model A has the highest mean lesion-wise Dice over the regions (0.600" in text
    assert "0.400 without the both-empty scores" in text and "ahead of Model B (0.467)" in text
    assert "2 scores of 1 (†) come from the both-empty rule (ET absent" in text
    assert "anecdotes" in text
    assert "Model A is NETC predicted as RC (90 % of the NETC voxels)" in text
    assert "limits NETC to a Dice of about 0.866" in text


def test_label_dice():
    a = np.array([1, 1, 2, 2, 0, 4])
    b = np.array([1, 0, 2, 2, 2, 4])
    dice = report.label_dice(a, b)
    assert dice == pytest.approx({"NETC": 2 / 3, "SNFH": 0.8, "RC": 1.0})
    with pytest.raises(ValueError):
        report.label_dice(a, b[:3])


def test_summary_by_metric_is_narrow_and_states_mean_std_median():
    summary = pd.DataFrame([
        {"model": "a", "region": "WT", "metric": "D", "n": 3, "mean": 0.5, "std": 0.1, "median": 0.45},
        {"model": "b", "region": "WT", "metric": "D", "n": 1, "mean": 0.7, "std": np.nan, "median": 0.7},
        {"model": "a", "region": "ET", "metric": "D", "n": 3, "mean": np.nan, "std": np.nan, "median": np.nan},
        {"model": "b", "region": "ET", "metric": "D", "n": 1, "mean": 0.2, "std": np.nan, "median": 0.2},
        {"model": "a", "region": "WT", "metric": "H", "n": 3, "mean": 9.0, "std": 1.0, "median": 9.0}])
    table = report.summary_by_metric(summary, "D", names={"a": "A"})
    assert list(table.columns) == ["A", "b"] and list(table.index) == ["WT", "ET"]
    assert table.loc["WT", "A"] == "0.500 ± 0.100 (0.450)"
    assert table.loc["WT", "b"] == "0.700 (0.700)" and table.loc["ET", "A"] == "—"


def test_case_dice_table_marks_both_empty():
    table = report.case_dice_table(_scores(), names={"a": "A"})
    assert list(table.columns) == ["WT", "ET", "RC"]
    assert table.loc[("A", "00001-000"), "ET"] == "1.000 †"
    assert table.loc[("b", "00001-000"), "WT"] == "0.400"


def test_student_reference_table_names_what_the_numbers_are():
    table = report.student_reference_table({"unet3d": {"ET": 0.1, "RC": 0.5}, "resunet3d": {"ET": 0.3}})
    assert list(table.index) == ["ET", "RC"]
    assert table.columns.tolist() == ["its “U-Net” (no skip connections)", "its Residual U-Net"]
    assert table.loc["ET", "its Residual U-Net"] == 0.3 and np.isnan(table.loc["RC", "its Residual U-Net"])
    assert "voxel-wise" in table.columns.name and "voxel-wise" in report.STUDENT_CITATION


def test_study_findings_names_best_arm_and_gradient_direction():
    from brats_lib.report import study_findings

    ablation = pd.DataFrame({"mean": [0.5, 0.7, 0.6]}, index=["0_student", "1_skips", "2_loss"])
    per_stage = pd.DataFrame({"stage 1": [0.12, 0.25], "stage 2": [0.01, 0.02], "stage 3": [0.0005, 0.0017]},
                             index=["6_depth", "7_residual"])
    text = study_findings(ablation, per_stage, "6_depth", "7_residual")
    assert "`1_skips` scored highest (mean 0.700)" in text and "`0_student` lowest (0.500)" in text
    assert "3 arms" in text and "larger than its deepest" in text and "no sign of gradients vanishing" in text
    vanishing = per_stage.iloc[:, ::-1].set_axis(per_stage.columns, axis=1)  # first stage now the weakest
    assert "as the vanishing-gradient story predicts" in study_findings(ablation, vanishing, "6_depth", "7_residual")
    assert study_findings(ablation.iloc[:0], per_stage.iloc[:0], "x", "y") == "This run recorded no scores to interpret."
