"""Agreement with the official BraTS 2024 GLI scorer on every reference pair, bit for bit.

The pairs and the official code's outputs live in ``../shared/reference/brats2024-metrics`` beside the
repository (never copied in); the tests skip when that folder is absent. The official CSVs were written
with 17 significant digits, so parsing them gives the official float64 values exactly and every float is
compared with ``==``.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from brats_lib.metrics import LESION_COLUMNS, RESULT_COLUMNS, lesion_wise_results
from brats_lib.metrics.evaluate import evaluate_folders

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REFERENCE = SHARED / "reference" / "brats2024-metrics"
NAMES = sorted(p.name[: -len(".nii.gz")] for p in (REFERENCE / "pairs" / "pred").glob("*.nii.gz"))


def require_reference() -> None:
    if not (REFERENCE / "README.md").is_file():
        pytest.skip(
            f"reference outputs of the official scorer not found at {REFERENCE} (../shared is absent)"
        )


@pytest.fixture(scope="module")
def computed():
    """name → (results, lesions) of every pair, computed once."""
    require_reference()
    out = {}
    for name in NAMES:
        pred_img = nib.load(REFERENCE / "pairs" / "pred" / f"{name}.nii.gz")
        gt = np.asanyarray(nib.load(REFERENCE / "pairs" / "gt" / f"{name}.nii.gz").dataobj).astype(np.uint8)
        pred = np.asanyarray(pred_img.dataobj).astype(np.uint8)
        spacing = np.linalg.norm(pred_img.affine[:3, :3], axis=0).astype(np.float32)
        out[name] = lesion_wise_results(pred, gt, spacing)
    return out


def test_every_reference_pair_is_present():
    require_reference()
    assert len(NAMES) >= 13
    for name in NAMES:
        for suffix in ("results.csv", "lesions.csv", "seconds"):
            assert (REFERENCE / "official" / f"{name}.{suffix}").is_file()


@pytest.mark.parametrize("name", NAMES or ["<none>"])
def test_results_table_is_bit_identical(computed, name):
    results, _ = computed[name]
    official = pd.read_csv(REFERENCE / "official" / f"{name}.results.csv")
    assert list(official.columns) == list(RESULT_COLUMNS)
    assert list(results["Labels"]) == list(official["Labels"])
    for column in RESULT_COLUMNS[1:]:
        mine = results[column].to_numpy(dtype=np.float64)
        theirs = official[column].to_numpy(dtype=np.float64)
        assert np.array_equal(mine, theirs), f"{name} {column}: {mine.tolist()} != {theirs.tolist()}"


@pytest.mark.parametrize("name", NAMES or ["<none>"])
def test_lesion_table_is_identical_row_by_row(computed, name):
    _, lesions = computed[name]
    official = pd.read_csv(REFERENCE / "official" / f"{name}.lesions.csv")
    assert list(official.columns) == list(LESION_COLUMNS)
    assert len(lesions) == len(official)
    assert [list(x) for x in lesions["predicted_lesion_numbers"]] == [
        json.loads(x) for x in official["predicted_lesion_numbers"]
    ]
    assert list(lesions["Label"]) == list(official["Label"])
    for column in ("gt_lesion_numbers", "gt_lesion_vol", "dice_lesionwise", "hd95_lesionwise", "_len"):
        mine = lesions[column].to_numpy(dtype=np.float64)
        theirs = official[column].to_numpy(dtype=np.float64)
        assert np.array_equal(mine, theirs), f"{name} {column}: {mine.tolist()} != {theirs.tolist()}"


def test_clean_columns_differ_from_the_quirky_ones_somewhere(computed):
    """The reference cases exercise the labelled-map quirks, so the clean values must differ there."""
    stacked = pd.concat([r for r, _ in computed.values()])
    assert (stacked["Clean_Sensitivity"] != stacked["Sensitivity"]).any()
    assert (stacked["Clean_Legacy_HD95"] != stacked["Legacy_HD95"]).any()
    assert ((stacked["Clean_Sensitivity"] >= 0) & (stacked["Clean_Sensitivity"] <= 1)).all()


def test_evaluate_folders_on_reference_pairs_matches_the_official_tables(tmp_path):
    require_reference()
    names = ["synth-00003", "real2021-01543"]  # the two quickest
    pred_dir, gt_dir = tmp_path / "pred", tmp_path / "gt"
    pred_dir.mkdir()
    gt_dir.mkdir()
    for name in names:
        (pred_dir / f"{name}.nii.gz").symlink_to(REFERENCE / "pairs" / "pred" / f"{name}.nii.gz")
        (gt_dir / f"{name}-seg.nii.gz").symlink_to(REFERENCE / "pairs" / "gt" / f"{name}.nii.gz")
    out = tmp_path / "metrics.csv"
    evaluate_folders(pred_dir, gt_dir, out, progress=False)
    table = pd.read_csv(out)
    for name in names:
        official = pd.read_csv(REFERENCE / "official" / f"{name}.results.csv")
        mine = table[table["case"] == name].reset_index(drop=True)
        assert list(mine["region"]) == list(official["Labels"])
        for column in RESULT_COLUMNS[1:]:
            assert np.array_equal(mine[column].to_numpy(float), official[column].to_numpy(float)), column
