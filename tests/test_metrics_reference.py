"""`brats evaluate` agrees with the official BraTS 2024 GLI scorer on every reference pair, bit for bit.

The pairs and the official code's outputs live in ``../shared/reference/brats2024-metrics`` beside the
repository (never copied in); the tests skip when that folder is absent. Every pair — 1 mm, anisotropic
(0.9375×0.9375×1.5 mm, 1.1×0.9×2.2 mm) and oblique — is scored once through the production path: the
``brats evaluate`` command itself (:func:`brats_lib.cli.main`, its own discovery, loading, grid checks and
CSV writing) on a prediction folder and a ground-truth folder of symlinks, with ``--lesions``. The tests
then read back the two CSVs the command wrote. The official CSVs hold exact float64 values (shortest
round-trip repr) and ours 17 significant digits, so every float is compared with ``==``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from brats_lib import cli
from brats_lib.io import nifti_stem
from brats_lib.metrics import CLEAN_COLUMNS, LESION_COLUMNS, RESULT_COLUMNS

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REFERENCE = SHARED / "reference" / "brats2024-metrics"
NAMES = sorted(
    stem for p in (REFERENCE / "pairs" / "pred").glob("*") if (stem := nifti_stem(p.name)) is not None
)


def require_reference() -> None:
    if not (REFERENCE / "README.md").is_file():
        pytest.skip(
            f"reference outputs of the official scorer not found at {REFERENCE} (../shared is absent)"
        )


@pytest.fixture(scope="module")
def command_output(tmp_path_factory):
    """(region table, lesion table) as written by one ``brats evaluate`` run over every pair."""
    require_reference()
    root = tmp_path_factory.mktemp("reference")
    pred_dir, gt_dir = root / "pred", root / "gt"
    pred_dir.mkdir()
    gt_dir.mkdir()
    for name in NAMES:
        (pred_dir / f"{name}.nii.gz").symlink_to(REFERENCE / "pairs" / "pred" / f"{name}.nii.gz")
        (gt_dir / f"{name}-seg.nii.gz").symlink_to(REFERENCE / "pairs" / "gt" / f"{name}.nii.gz")
    out, lesions = root / "metrics.csv", root / "lesions.csv"
    status = cli.main(["evaluate", "--pred", str(pred_dir), "--gt", str(gt_dir), "--out", str(out),
                       "--lesions", str(lesions), "--workers", "1"])
    assert status == 0
    return pd.read_csv(out), pd.read_csv(lesions)


def test_every_reference_pair_is_present():
    require_reference()
    assert len(NAMES) >= 16
    assert {"aniso-00001", "aniso-00002", "aniso-00014"} <= set(NAMES)
    for name in NAMES:
        for suffix in ("results.csv", "lesions.csv", "seconds"):
            assert (REFERENCE / "official" / f"{name}.{suffix}").is_file()


def test_the_command_scored_every_pair_and_timed_each(command_output):
    table, _ = command_output
    assert sorted(set(table["case"])) == NAMES
    assert len(table) == 6 * len(NAMES)
    per_case = table.groupby("case")["seconds"]
    assert (per_case.nunique() == 1).all()  # one time per case, on each of its rows
    assert (per_case.first() > 0).all()


@pytest.mark.parametrize("name", NAMES or ["<none>"])
def test_results_table_is_bit_identical(command_output, name):
    table, _ = command_output
    mine = table[table["case"] == name].reset_index(drop=True)
    official = pd.read_csv(REFERENCE / "official" / f"{name}.results.csv")
    assert list(official.columns) == list(RESULT_COLUMNS)
    assert list(mine["region"]) == list(official["Labels"])
    for column in RESULT_COLUMNS[1:]:
        ours = mine[column].to_numpy(dtype=np.float64)
        theirs = official[column].to_numpy(dtype=np.float64)
        assert np.array_equal(ours, theirs), f"{name} {column}: {ours.tolist()} != {theirs.tolist()}"


@pytest.mark.parametrize("name", NAMES or ["<none>"])
def test_lesion_table_is_identical_row_by_row(command_output, name):
    _, lesions = command_output
    mine = lesions[lesions["case"] == name].reset_index(drop=True)
    official = pd.read_csv(REFERENCE / "official" / f"{name}.lesions.csv")
    assert list(official.columns) == list(LESION_COLUMNS)
    assert list(mine.columns[1:]) == list(LESION_COLUMNS)
    assert len(mine) == len(official)
    assert [json.loads(x) for x in mine["predicted_lesion_numbers"]] == [
        json.loads(x) for x in official["predicted_lesion_numbers"]
    ]
    assert list(mine["Label"]) == list(official["Label"])
    for column in ("gt_lesion_numbers", "gt_lesion_vol", "dice_lesionwise", "hd95_lesionwise", "_len"):
        ours = mine[column].to_numpy(dtype=np.float64)
        theirs = official[column].to_numpy(dtype=np.float64)
        assert np.array_equal(ours, theirs), f"{name} {column}: {ours.tolist()} != {theirs.tolist()}"


@pytest.mark.parametrize("name", NAMES or ["<none>"])
def test_distance_free_lesion_wise_dice_equals_the_official_column(name):
    """The Dice-only scorer that the post-processing search calls gives the official values bit for bit."""
    require_reference()
    from brats_lib.io import load_label
    from brats_lib.metrics import lesion_wise_dice
    from brats_lib.metrics.evaluate import load_prediction

    pred, spacing = load_prediction(REFERENCE / "pairs" / "pred" / f"{name}.nii.gz")
    gt = load_label(REFERENCE / "pairs" / "gt" / f"{name}.nii.gz")
    official = pd.read_csv(REFERENCE / "official" / f"{name}.results.csv")
    dice = lesion_wise_dice(pred, gt, spacing)
    assert list(dice) == list(official["Labels"])
    assert np.array_equal(np.array(list(dice.values()), dtype=np.float64),
                          official["LesionWise_Score_Dice"].to_numpy(dtype=np.float64))


def test_clean_columns_differ_from_the_quirky_ones_somewhere(command_output):
    """The reference cases exercise the labelled-map quirks, so the clean values must differ there."""
    table, _ = command_output
    assert set(CLEAN_COLUMNS) <= set(table.columns)
    assert (table["Clean_Sensitivity"] != table["Sensitivity"]).any()
    assert (table["Clean_Legacy_HD95"] != table["Legacy_HD95"]).any()
    assert ((table["Clean_Sensitivity"] >= 0) & (table["Clean_Sensitivity"] <= 1)).all()
