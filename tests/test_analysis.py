"""brats_lib.analysis tables (hand-made tidy tables with known statistics) and the evaluation plots of viz."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from brats_lib import analysis  # noqa: E402
from brats_lib.analysis import DICE, HD95, PUBLISHED_LABEL  # noqa: E402
from brats_lib.labels import REGION_ORDER  # noqa: E402
from brats_lib.viz import METRIC_LABELS, plot_best_worst_overlays, plot_region_scores  # noqa: E402

#: model → case → (Dice, HD95) identical for every region, except where REGION_OFFSETS adds to Dice.
CASE_VALUES = {
    "unet3d": {"c1": (0.2, 10.0), "c2": (0.4, 20.0), "c3": (0.9, 60.0)},
    "resunet3d": {"c1": (0.5, 5.0), "c2": (0.7, 1.0), "c3": (0.3, 3.0)},
}


def tidy_table() -> pd.DataFrame:
    rows = []
    for model, cases in CASE_VALUES.items():
        for case, (dice, hd) in cases.items():
            for region in REGION_ORDER:
                rows.append({"model": model, "case": case, "region": region, DICE: dice, HD95: hd,
                             "Num_TP": 1, "Num_FP": 0, "Num_FN": 0})
    return pd.DataFrame(rows)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# --------------------------------------------------------------------------------------------- summaries


def test_summarise_models_known_statistics():
    summary = analysis.summarise_models(tidy_table())
    assert list(summary.columns) == ["model", "region", "metric", "n", "mean", "std", "median"]
    assert len(summary) == 2 * 6 * 2
    assert list(summary["region"].unique()) == list(REGION_ORDER)
    row = summary[(summary.model == "unet3d") & (summary.region == "ET") & (summary.metric == DICE)].iloc[0]
    assert row["n"] == 3
    assert row["mean"] == pytest.approx(0.5)
    assert row["std"] == pytest.approx(np.std([0.2, 0.4, 0.9], ddof=1))
    assert row["median"] == pytest.approx(0.4)
    row = summary[(summary.model == "resunet3d") & (summary.region == "WT") & (summary.metric == HD95)].iloc[0]
    assert row["mean"] == pytest.approx(3.0)
    assert row["std"] == pytest.approx(2.0)
    assert row["median"] == pytest.approx(3.0)


def test_summarise_skips_nan_and_single_case_has_nan_std():
    table = tidy_table()
    table.loc[(table.model == "unet3d") & (table.case == "c3") & (table.region == "RC"), DICE] = np.nan
    summary = analysis.summarise_models(table[table.case.isin(["c1", "c3"])], metrics=[DICE])
    rc = summary[(summary.model == "unet3d") & (summary.region == "RC")].iloc[0]
    assert rc["n"] == 1 and rc["mean"] == pytest.approx(0.2) and np.isnan(rc["std"])


def test_summary_table_formats_mean_std_and_median():
    summary = analysis.summarise_models(tidy_table())
    table = analysis.summary_table(summary)
    assert list(table.index) == list(REGION_ORDER)
    assert list(table.columns.get_level_values(0).unique()) == ["3D U-Net", "Residual 3D U-Net"]
    assert table.loc["ET", ("3D U-Net", "Dice mean ± std")] == "0.500 ± 0.361"
    assert table.loc["ET", ("3D U-Net", "Dice median")] == "0.400"
    assert table.loc["WT", ("Residual 3D U-Net", "HD95 mean ± std (mm)")] == "3.0 ± 2.0"
    assert table.loc["WT", ("3D U-Net", "HD95 median (mm)")] == "20.0"
    assert analysis.mean_std(0.25, float("nan")) == "0.250"
    assert analysis.mean_std(float("nan"), 0.1) == "—"


def test_comparison_table_appends_the_given_published_numbers():
    """Published numbers given here (not the module's constant): each lands in its own model and region."""
    summary = analysis.summarise_models(tidy_table())
    published = {"unet3d": {"ET": 0.1234, "RC": 0.5}, "resunet3d": {"SNFH": 0.98765}}
    table = analysis.comparison_table(summary, published, published_label="paper")
    groups = list(table.columns.get_level_values(0).unique())
    assert groups == ["3D U-Net", "Residual 3D U-Net", "paper"]
    theirs = table["paper"]
    assert list(theirs.columns) == ["3D U-Net Dice", "Residual 3D U-Net Dice"]
    assert theirs["3D U-Net Dice"].to_dict() == {"WT": "—", "TC": "—", "ET": "0.123", "NETC": "—",
                                                  "SNFH": "—", "RC": "0.500"}
    assert theirs["Residual 3D U-Net Dice"].to_dict() == {"WT": "—", "TC": "—", "ET": "—", "NETC": "—",
                                                          "SNFH": "0.988", "RC": "—"}
    # our own columns are unchanged by the appended group
    assert table.loc["ET", ("3D U-Net", "Dice mean ± std")] == "0.500 ± 0.361"
    assert PUBLISHED_LABEL == "student project (published, different data)"


def test_published_table_numbers():
    table = analysis.published_table({"unet3d": {"ET": 0.25, "NETC": 0.5}, "resunet3d": {"RC": 0.75}})
    assert list(table.columns) == ["3D U-Net", "Residual 3D U-Net"] and list(table.index) == list(REGION_ORDER)
    assert table.loc["NETC", "3D U-Net"] == 0.5 and table.loc["RC", "Residual 3D U-Net"] == 0.75
    assert table.isna().sum().sum() == 2 * len(REGION_ORDER) - 3


# ------------------------------------------------------------------------------------------ best / worst


def test_case_scores_mean_over_regions():
    table = tidy_table()
    table.loc[(table.model == "unet3d") & (table.case == "c1") & (table.region == "ET"), DICE] = 0.8
    scores = analysis.case_scores(table)
    c1 = scores[(scores.model == "unet3d") & (scores.case == "c1")]["score"].item()
    assert c1 == pytest.approx((0.2 * 5 + 0.8) / 6)
    assert scores["score"].iloc[0] == pytest.approx(0.9)  # best first
    hd = analysis.case_scores(table, metric=HD95)
    assert hd["score"].iloc[0] == pytest.approx(1.0)  # distances: lowest first


def test_best_worst_cases_per_model_and_ties():
    picked = analysis.best_worst_cases(tidy_table())
    assert picked.to_dict("records") == [
        {"model": "unet3d", "rank": "best", "case": "c3", "score": pytest.approx(0.9)},
        {"model": "unet3d", "rank": "worst", "case": "c1", "score": pytest.approx(0.2)},
        {"model": "resunet3d", "rank": "best", "case": "c2", "score": pytest.approx(0.7)},
        {"model": "resunet3d", "rank": "worst", "case": "c3", "score": pytest.approx(0.3)},
    ]
    one = analysis.best_worst_cases(tidy_table(), model="resunet3d", metric=HD95)
    assert one["case"].tolist() == ["c2", "c1"]
    table = tidy_table()
    table.loc[table.case == "c2", DICE] = table.loc[table.case == "c1", DICE].to_numpy()  # c1 ties c2
    assert analysis.best_worst_cases(table, model="unet3d")["case"].tolist() == ["c3", "c1"]
    single = analysis.best_worst_cases(tidy_table()[lambda t: t.case == "c2"], model="unet3d")
    assert single["case"].tolist() == ["c2", "c2"]
    with pytest.raises(ValueError, match="no rows"):
        analysis.best_worst_cases(tidy_table(), model="fcnn")


# ---------------------------------------------------------------------------------------------- effects


def test_effect_table_means_and_deltas():
    base = tidy_table()[lambda t: t.model == "unet3d"].drop(columns="model")
    better = base.assign(**{DICE: base[DICE] + 0.1})
    better.loc[better.region == "RC", DICE] += 0.3
    table = analysis.effect_table({"no TTA": base, "TTA ×8": better})
    assert list(table.index) == ["no TTA", "TTA ×8"]
    assert list(table.columns) == [*REGION_ORDER, "mean", "Δ mean vs no TTA"]
    assert table.loc["no TTA", "ET"] == pytest.approx(0.5)
    assert table.loc["TTA ×8", "RC"] == pytest.approx(0.9)
    assert table.loc["TTA ×8", "mean"] == pytest.approx(0.6 + 0.3 / 6)
    assert table.loc["no TTA", "Δ mean vs no TTA"] == 0.0
    assert table.loc["TTA ×8", "Δ mean vs no TTA"] == pytest.approx(0.1 + 0.05)
    rounded = analysis.effect_table({"a": base, "b": better}, baseline="b", decimals=2)
    assert rounded.loc["a", "Δ mean vs b"] == pytest.approx(-0.15)
    with pytest.raises(ValueError, match="different cases"):
        analysis.effect_table({"a": base, "b": better[better.case != "c3"]})
    with pytest.raises(KeyError):
        analysis.effect_table({"a": base}, baseline="z")


def test_combine_tables_adds_leading_model_column():
    part = tidy_table()[lambda t: t.model == "unet3d"].drop(columns="model")
    combined = analysis.combine_tables({"fcnn": part, "unet3d": part})
    assert combined.columns[0] == "model"
    assert combined["model"].value_counts().to_dict() == {"fcnn": 18, "unet3d": 18}


def test_find_runs_skips_missing_with_note(tmp_path, capsys):
    (tmp_path / "unet3d").mkdir()
    (tmp_path / "unet3d" / "config.json").write_text("{}")
    (tmp_path / "unet3d" / "last.pt").write_bytes(b"")
    (tmp_path / "fcnn").mkdir()
    (tmp_path / "fcnn" / "config.json").write_text("{}")  # no checkpoint
    found = analysis.find_runs(tmp_path, ["fcnn", "unet3d", "resunet3d"])
    assert found == {"unet3d": tmp_path / "unet3d"}
    out = capsys.readouterr().out
    assert "fcnn" in out and "resunet3d" in out and "skipped" in out
    assert analysis.model_name("resunet3d") == "Residual 3D U-Net" and analysis.model_name("x") == "x"


# ------------------------------------------------------------------ evaluation of a subset and post-processing


def _write(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(array, np.uint8), np.eye(4)), str(path))


def test_evaluate_cases_only_listed_ids_and_postprocessing(tmp_path):
    gt = np.zeros((40, 40, 40), np.uint8)
    gt[4:12, 4:12, 4:12] = 2
    gt[6:9, 6:9, 6:9] = 1
    pred = gt.copy()
    pred[28:33, 28:33, 28:33] = 2  # a 125-voxel false-positive lesion far from the true one
    for case in ("A", "B"):  # B has a ground truth but no prediction: not listed, not scored
        _write(tmp_path / "gt" / f"{case}.nii.gz", gt)
    _write(tmp_path / "pred" / "A.nii.gz", pred)
    table = analysis.evaluate_cases(tmp_path / "pred", tmp_path / "gt", ["A"])
    assert table["case"].unique().tolist() == ["A"]
    wt = table.set_index("region").loc["WT"]
    assert wt["Num_FP"] == 1 and wt[DICE] == pytest.approx(0.5)
    analysis.postprocess_predictions(tmp_path / "pred", ["A"], {"WT": 200}, tmp_path / "pp")
    both = analysis.evaluate_cases({"raw": tmp_path / "pred", "pp": tmp_path / "pp"}, tmp_path / "gt", ["A"])
    assert both.columns[0] == "model"
    pp_wt = both[(both.model == "pp") & (both.region == "WT")].iloc[0]
    assert pp_wt["Num_FP"] == 0 and pp_wt[DICE] == pytest.approx(1.0)
    from brats_lib.io import BratsInputError

    with pytest.raises(BratsInputError, match="prediction missing"):
        analysis.evaluate_cases(tmp_path / "pred", tmp_path / "gt", ["A", "B"])


def test_predict_cases_passes_the_window_overlap(tmp_path, monkeypatch):
    """The sliding-window overlap reaches predict_case (the demo profile lowers it to save CPU time)."""
    from brats_lib import inference
    from conftest import write_tiny_case

    write_tiny_case(tmp_path / "data", 0)
    seen = []

    def fake_predict(ensemble, loaded, **kwargs):
        seen.append(kwargs)
        return np.zeros(loaded.image.shape[1:], np.uint8)

    monkeypatch.setattr(inference, "as_ensemble", lambda *args, **kwargs: "ensemble")
    monkeypatch.setattr(inference, "predict_case", fake_predict)
    ids = ["BraTS-GLI-00000-000"]
    analysis.predict_cases("run", tmp_path / "data", ids, tmp_path / "a", device="cpu", overlap=0.25)
    analysis.predict_cases("run", tmp_path / "data", ids, tmp_path / "b", device="cpu")
    assert [k["overlap"] for k in seen] == [0.25, 0.5]
    assert (tmp_path / "a" / "BraTS-GLI-00000-000.nii.gz").is_file()


# ------------------------------------------------------------------------------------------------- plots


def test_plot_region_scores_labels_axes():
    fig = plot_region_scores(tidy_table(), names=analysis.MODEL_NAMES)
    dice_ax, hd_ax = fig.axes[:2]
    assert dice_ax.get_ylabel() == METRIC_LABELS[DICE] == "lesion-wise Dice (unitless)"
    assert hd_ax.get_ylabel() == METRIC_LABELS[HD95] == "lesion-wise HD95 (mm)"
    assert dice_ax.get_xlabel() == "region" and hd_ax.get_xlabel() == "region"
    assert [t.get_text() for t in dice_ax.get_xticklabels()] == list(REGION_ORDER)
    assert [t.get_text() for t in dice_ax.get_legend().get_texts()] == ["3D U-Net", "Residual 3D U-Net"]
    assert "3 cases" in dice_ax.get_title()
    assert dice_ax.get_ylim() == pytest.approx((-0.05, 1.05))
    # every case is drawn as a dot: 2 models × 3 cases × 6 regions
    dots = sum(len(c.get_offsets()) for c in dice_ax.collections if hasattr(c, "get_offsets"))
    assert dots == 36
    hd_values = sorted(y for c in hd_ax.collections for _, y in c.get_offsets())
    assert hd_values[0] == pytest.approx(1.0) and hd_values[-1] == pytest.approx(60.0)


def test_plot_best_worst_overlays(tmp_path):
    from brats_lib.io import Geometry, LoadedCase, Case

    shape = (20, 22, 18)
    image = np.random.default_rng(0).random((4, *shape), dtype=np.float32) + 1.0
    gt = np.zeros(shape, np.uint8)
    gt[5:10, 5:10, 12] = 2
    pred = np.zeros(shape, np.uint8)
    pred[5:9, 5:9, 12] = 3
    case = Case(case_id="BraTS-GLI-00001-000", patient_id="00001", timepoint="000", layout="2024",
                image_paths={}, seg_path=None)
    geometry = Geometry(np.diag([1.0, 1.0, 2.0, 1.0]), nib.Nifti1Header(), shape)
    loaded = LoadedCase(case=case, image=image, label=gt, geometry=geometry)
    fig = plot_best_worst_overlays([("best", loaded, pred), ("worst", loaded, np.zeros(shape, np.uint8))])
    axes = np.array(fig.axes[:6]).reshape(2, 3)
    assert [ax.get_title() for ax in axes[0, 1:]] == ["ground truth", "prediction"]
    assert "best" in axes[0, 0].get_title() and "axial 12" in axes[0, 0].get_title()
    assert all(ax.get_xlabel() == "mm" and ax.get_ylabel() == "mm" for ax in axes.flat)
    assert axes[0, 0].images[0].get_extent() == pytest.approx((0, 20, 0, 22))  # x across 20 mm, y up 22 mm
    grey = np.asarray(axes[0, 0].images[0].get_array())
    coloured = [np.any(np.asarray(ax.images[0].get_array()) != grey, axis=-1) for ax in axes[0, 1:]]
    assert coloured[0].sum() == 25 and coloured[1].sum() == 16  # GT 5×5 SNFH, prediction 4×4 ET at slice 12
    assert not np.any(np.asarray(axes[1, 2].images[0].get_array()) != grey)  # empty prediction: image only
    with pytest.raises(ValueError, match="differs"):
        plot_best_worst_overlays([("x", loaded, np.zeros((3, 3, 3), np.uint8))])
    with pytest.raises(ValueError):
        plot_best_worst_overlays([])
