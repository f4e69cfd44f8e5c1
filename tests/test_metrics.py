"""Unit tests of the BraTS 2024 GLI lesion-wise metrics on small hand-made volumes, one rule at a time."""

from __future__ import annotations

import math

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from brats_lib.io import BratsInputError
from brats_lib.labels import REGION_ORDER
from brats_lib.metrics import (
    evaluate_folders,
    hd95,
    lesion_wise_results,
    summarise,
    surface,
    surface_distances,
)
from brats_lib.metrics import lesionwise as lw
from brats_lib.metrics import evaluate as evaluate_module
from brats_lib.metrics.evaluate import TABLE_COLUMNS

SHAPE = (40, 40, 40)


def blank() -> np.ndarray:
    return np.zeros(SHAPE, dtype=np.uint8)


def cube(seg: np.ndarray, corner, size, label: int) -> np.ndarray:
    """Paint a cube of ``size`` voxels per side at ``corner`` with ``label`` (in place) and return seg."""
    x, y, z = corner
    seg[x : x + size, y : y + size, z : z + size] = label
    return seg


def row(results: pd.DataFrame, region: str) -> pd.Series:
    return results.set_index("Labels").loc[region]


def lesions_of(lesions: pd.DataFrame, region: str) -> pd.DataFrame:
    return lesions[lesions["Label"] == region].reset_index(drop=True)


# ------------------------------------------------------------------------------------------------ surface


def random_blobs(seed: int, shape=(24, 26, 22), n=3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.random(shape), 2.0)
    return noise > np.quantile(noise, 1 - n * 0.04)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize(
    "spacing", [(1.0, 1.0, 1.0), (2.0, 1.0, 1.0), (1.2, 0.9, 2.5), (0.9375, 0.9375, 1.5)]
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_surface_distances_match_deepmind_bit_for_bit(seed, spacing):
    import surface_distance as deepmind  # a declared dependency (pyproject.toml)

    a, b = random_blobs(seed), random_blobs(seed + 100)
    expected = deepmind.compute_surface_distances(a, b, spacing)
    mine = surface_distances(a, b, spacing)
    np.testing.assert_array_equal(mine.distances_a_to_b, expected["distances_gt_to_pred"])
    np.testing.assert_array_equal(mine.distances_b_to_a, expected["distances_pred_to_gt"])
    np.testing.assert_array_equal(mine.areas_a, expected["surfel_areas_gt"])
    assert hd95(a, b, spacing) == deepmind.compute_robust_hausdorff(expected, 95)


@pytest.mark.parametrize("max_label", [1, 3, 7, 200])
def test_neighbour_codes_wrap_like_scipy_correlate_on_uint8(max_label):
    """The neighbour code of a labelled map wraps modulo 256, as scipy's uint8 correlate does."""
    values = np.random.default_rng(max_label).integers(0, max_label + 1, (9, 10, 11)).astype(np.uint8)
    cropped = np.zeros(tuple(s + 1 for s in values.shape), np.uint8)
    cropped[:-1, :-1, :-1] = values
    kernel = np.array([[[128, 64], [32, 16]], [[8, 4], [2, 1]]])
    expected = ndimage.correlate(cropped, kernel, mode="constant", cval=0)
    np.testing.assert_array_equal(surface.neighbour_codes(values), expected)


@pytest.mark.parametrize(
    "spacing, expected", [((1.0, 1.0, 1.0), 3.0), ((2.0, 1.0, 1.0), 6.0), ((1.0, 3.0, 1.0), 3.0)]
)
def test_hd95_of_two_single_voxels_scales_with_spacing_along_the_offset(spacing, expected):
    # Corners of the two voxels are 2 or 3 voxels apart along axis 0; 95 % of equal areas → the farther.
    a, b = blank(), blank()
    a[10, 10, 10] = 1
    b[13, 10, 10] = 1
    assert hd95(a, b, spacing) == expected


def test_hd95_is_inf_with_an_empty_side_and_the_fast_edt_equals_scipy():
    a = random_blobs(5)
    assert math.isinf(hd95(a, np.zeros_like(a)))
    borders = random_blobs(6)
    at = random_blobs(7)
    fast = surface.distances_to_surface(borders, at, (1.0, 1.0, 1.0))
    slow = ndimage.distance_transform_edt(~borders, sampling=(1.0, 1.0, 1.0))[at]
    np.testing.assert_array_equal(fast, slow)


# --------------------------------------------------------------------------------------------- the rules


def test_empty_prediction_and_empty_ground_truth_score_perfectly():
    results, lesions = lesion_wise_results(blank(), blank())
    assert list(results["Labels"]) == list(REGION_ORDER)
    assert (results[["Num_TP", "Num_FP", "Num_FN"]] == 0).all().all()
    for column, value in [
        ("Sensitivity", 1.0),
        ("Specificity", 1.0),
        ("Legacy_Dice", 1.0),
        ("Legacy_HD95", 0.0),
        ("GT_Complete_Volume", 0.0),
        ("LesionWise_Score_Dice", 1.0),
        ("LesionWise_Score_HD95", 0.0),
        ("Clean_Sensitivity", 1.0),
        ("Clean_Legacy_HD95", 0.0),
    ]:
        assert (results[column] == value).all(), column
    assert lesions.empty and list(lesions.columns) == list(lw.LESION_COLUMNS)


@pytest.mark.parametrize(
    "label, hit_regions",
    [(2, {"WT", "SNFH"}), (3, {"WT", "TC", "ET"}), (4, {"RC"}), (1, {"WT", "TC", "NETC"})],
)
def test_false_positive_only_scores_zero_and_the_penalty(label, hit_regions):
    pred = cube(blank(), (10, 10, 10), 3, label)  # 27 voxels, above every threshold
    results, lesions = lesion_wise_results(pred, blank())
    for region in REGION_ORDER:
        r = row(results, region)
        if region in hit_regions:
            assert (r.Num_TP, r.Num_FP, r.Num_FN) == (0, 1, 0)
            assert (r.LesionWise_Score_Dice, r.LesionWise_Score_HD95) == (0.0, 337.0)
            assert (r.Legacy_Dice, r.Legacy_HD95) == (0.0, 337.0)
        else:
            assert (r.Num_FP, r.LesionWise_Score_Dice, r.LesionWise_Score_HD95) == (0, 1.0, 0.0)
    assert lesions.empty


def test_missed_lesion_is_a_false_negative_with_the_penalty():
    gt = cube(blank(), (10, 10, 10), 4, 1)  # NETC, 64 voxels
    results, lesions = lesion_wise_results(blank(), gt)
    for region in ("WT", "TC", "NETC"):
        r = row(results, region)
        assert (r.Num_TP, r.Num_FP, r.Num_FN) == (0, 0, 1)
        assert (r.LesionWise_Score_Dice, r.LesionWise_Score_HD95) == (0.0, 337.0)
        assert r.GT_Complete_Volume == 64.0
        les = lesions_of(lesions, region)
        assert les.loc[0, "predicted_lesion_numbers"] == [] and les.loc[0, "_len"] == 0
        assert (
            les.loc[0, "gt_lesion_vol"],
            les.loc[0, "dice_lesionwise"],
            les.loc[0, "hd95_lesionwise"],
        ) == (
            64.0,
            0.0,
            337.0,
        )


def test_matched_lesion_dice_and_hd95():
    gt = cube(blank(), (10, 10, 10), 4, 2)
    pred = cube(blank(), (11, 10, 10), 4, 2)  # shifted by one voxel: overlap 48 of 64 + 64
    results, lesions = lesion_wise_results(pred, gt)
    r = row(results, "SNFH")
    assert (r.Num_TP, r.Num_FP, r.Num_FN) == (1, 0, 0)
    assert r.LesionWise_Score_Dice == r.Legacy_Dice == 2 * 48 / 128
    les = lesions_of(lesions, "SNFH")
    assert les.loc[0, "predicted_lesion_numbers"] == [1]
    assert les.loc[0, "hd95_lesionwise"] == r.LesionWise_Score_HD95 == r.Legacy_HD95 == 1.0


def test_sub_threshold_specks_are_dropped_from_prediction_and_ignored_in_ground_truth():
    gt = cube(blank(), (5, 5, 5), 2, 2)  # 8 voxels of SNFH: ≤ 20 mm³, not scored
    pred = cube(blank(), (30, 30, 30), 2, 2)  # 8 voxels elsewhere: ≤ 20 voxels, removed
    cube(pred, (30, 5, 30), 3, 3)  # 27 voxels of ET: above 10, a real FP for ET
    cube(pred, (5, 30, 5), 2, 3)  # 8 voxels of ET: ≤ 10, removed
    results, lesions = lesion_wise_results(pred, gt)
    snfh = row(results, "SNFH")
    assert (snfh.Num_TP, snfh.Num_FP, snfh.Num_FN) == (0, 0, 0)
    assert (snfh.LesionWise_Score_Dice, snfh.LesionWise_Score_HD95) == (1.0, 0.0)
    assert snfh.Legacy_Dice == 0.0  # the speck still counts in the legacy Dice
    assert len(lesions_of(lesions, "SNFH")) == 1  # but is listed
    et = row(results, "ET")
    assert (et.Num_FP, et.LesionWise_Score_Dice, et.LesionWise_Score_HD95) == (1, 0.0, 337.0)


@pytest.mark.parametrize(
    "label, gap, n_lesions",
    [
        (3, 6, 1),  # ET, 3 dilations from each side close a 6-voxel gap
        (3, 7, 2),
        (2, 7, 2),  # SNFH gets 3 iterations (the "SFNH" typo), not 5
        (1, 10, 1),  # NETC gets 5
        (1, 11, 2),
        (4, 10, 1),  # RC gets 5
    ],
)
def test_dilation_merges_nearby_lesions(label, gap, n_lesions):
    gt = cube(blank(), (5, 10, 10), 4, label)
    cube(gt, (5 + 4 + gap, 10, 10), 4, label)
    _, lesions = lesion_wise_results(gt, gt)
    region = {1: "NETC", 2: "SNFH", 3: "ET", 4: "RC"}[label]
    les = lesions_of(lesions, region)
    assert len(les) == n_lesions
    assert les["gt_lesion_vol"].sum() == 128.0
    assert (les["dice_lesionwise"] == 1.0).all()


def test_dilation_merge_two_voxels_apart_becomes_one_lesion_in_wt():
    gt = cube(blank(), (10, 10, 10), 3, 2)
    cube(gt, (15, 10, 10), 3, 2)  # 2 background voxels between the cubes
    pred = cube(blank(), (10, 10, 10), 3, 2)
    results, lesions = lesion_wise_results(pred, gt)
    les = lesions_of(lesions, "WT")
    assert len(les) == 1 and les.loc[0, "gt_lesion_vol"] == 54.0
    assert les.loc[0, "dice_lesionwise"] == 2 * 27 / (54 + 27)
    assert row(results, "WT").Num_TP == 1


def test_cross_tissue_merge_joins_lesions_touching_the_same_other_tissue_lesion():
    gt = blank()
    gt[5:35, 18:21, 18:21] = 3  # one long ET bar
    cube(gt, (5, 21, 18), 3, 1)  # NETC lesion at one end, touching the bar
    cube(gt, (32, 21, 18), 3, 1)  # NETC lesion at the other end, 24 voxels away: separate in step 1
    step1 = lw.merge_by_dilation(gt == 1, lw.DILATION_ITERATIONS["NETC"])
    assert step1.max() == 2
    _, lesions = lesion_wise_results(gt, gt)
    netc = lesions_of(lesions, "NETC")
    assert len(netc) == 1 and netc.loc[0, "gt_lesion_vol"] == 54.0


def test_cross_tissue_merge_needs_more_than_one_touching_pair():
    gt = blank()
    gt[5:35, 18:21, 18:21] = 3
    cube(gt, (5, 21, 18), 3, 1)  # touches the ET bar
    cube(gt, (30, 5, 5), 3, 1)  # far from everything
    _, lesions = lesion_wise_results(gt, gt)
    assert len(lesions_of(lesions, "NETC")) == 2


def test_relabel_by_touch_follows_the_sorted_pairs():
    a = np.zeros((12, 3, 3), np.int64)
    a[0, 1, 1], a[4, 1, 1], a[8, 1, 1] = 1, 2, 3
    b = np.zeros_like(a)
    b[1, 1, 1], b[5, 1, 1], b[7, 1, 1] = 5, 3, 3
    # pairs (1, 5), (2, 3), (3, 3): b=5 → 4, b=3 → 5 (order of first appearance); 1 → 4, 2 and 3 → 5
    out = lw.relabel_by_touch(a, b)
    assert (out[0, 1, 1], out[4, 1, 1], out[8, 1, 1]) == (4, 5, 5)
    np.testing.assert_array_equal(lw.renumber(out)[[0, 4, 8], 1, 1], [1, 2, 2])


def test_labelled_sensitivity_quirk_and_the_clean_value():
    gt = cube(blank(), (5, 5, 5), 3, 2)
    cube(gt, (25, 25, 25), 3, 2)  # two SNFH lesions, labelled 1 and 2
    results, _ = lesion_wise_results(gt, gt)
    r = row(results, "SNFH")
    assert r.Sensitivity == 27 / (27 + 2 * 27)  # only label-1 voxels count as true positives
    assert r.Clean_Sensitivity == 1.0 and r.Clean_Specificity == 1.0
    assert r.Legacy_Dice == 1.0 and r.LesionWise_Score_Dice == 1.0


def test_anisotropic_spacing_scales_volumes_thresholds_and_hd95():
    gt = cube(blank(), (10, 10, 10), 2, 2)  # 8 voxels
    pred = cube(blank(), (10, 10, 10), 3, 2)  # 27 voxels: kept whatever the spacing
    gt_big = cube(blank(), (10, 10, 10), 4, 2)
    pred_big = cube(blank(), (11, 10, 10), 4, 2)
    iso, _ = lesion_wise_results(pred, gt, (1.0, 1.0, 1.0))
    aniso, les = lesion_wise_results(pred, gt, (2.0, 1.5, 1.0))
    assert row(iso, "SNFH").GT_Complete_Volume == 8.0 and row(aniso, "SNFH").GT_Complete_Volume == 24.0
    # 8 voxels: not scored at 1 mm³ each (≤ 20), scored at 3 mm³ each (24 > 20)...
    assert row(iso, "SNFH").Num_TP == 0 and row(aniso, "SNFH").Num_TP == 1
    assert lesions_of(les, "SNFH").loc[0, "gt_lesion_vol"] == 24.0
    big_iso, _ = lesion_wise_results(pred_big, gt_big, (1.0, 1.0, 1.0))
    big_aniso, _ = lesion_wise_results(pred_big, gt_big, (2.0, 1.0, 1.0))
    assert row(big_iso, "SNFH").LesionWise_Score_HD95 == 1.0
    assert row(big_aniso, "SNFH").LesionWise_Score_HD95 == 2.0  # the shift is along the 2 mm axis


def test_prediction_threshold_counts_voxels_whatever_the_spacing():
    gt = cube(blank(), (10, 10, 10), 4, 2)
    pred = cube(blank(), (30, 30, 30), 2, 2)  # 8 voxels = 64 mm³ at 2 mm, still ≤ 20 voxels → dropped
    results, _ = lesion_wise_results(pred, gt, (2.0, 2.0, 2.0))
    assert row(results, "SNFH").Num_FP == 0


def test_cropping_never_changes_a_result():
    """A tumour at the volume's edge and the same tumour in the middle of a larger volume score alike."""
    rng = np.random.default_rng(3)
    tumour = ndimage.gaussian_filter(rng.random((20, 22, 18)), 1.5)
    gt_small = np.digitize(tumour, np.quantile(tumour, [0.55, 0.75, 0.9])).astype(np.uint8)
    pred_small = np.roll(gt_small, 1, axis=0)
    big_gt, big_pred = np.zeros((50, 52, 48), np.uint8), np.zeros((50, 52, 48), np.uint8)
    big_gt[15:35, 15:37, 15:33], big_pred[15:35, 15:37, 15:33] = gt_small, pred_small
    small, small_lesions = lesion_wise_results(pred_small, gt_small)
    big, big_lesions = lesion_wise_results(big_pred, big_gt)
    columns = [c for c in small.columns if c not in ("Specificity", "Clean_Specificity")]  # TN differ
    pd.testing.assert_frame_equal(small[columns], big[columns])
    pd.testing.assert_frame_equal(small_lesions, big_lesions)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.9375, 0.9375, 1.5), (2.0, 2.0, 2.0)])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_lesion_wise_dice_alone_equals_the_full_results(seed, spacing):
    """The distance-free scorer of the post-processing search gives the official Dice column exactly, on
    multi-label maps with missed, matched, merged and false-positive lesions of every region."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.random((36, 38, 34)), 1.6)
    gt = np.digitize(field, np.quantile(field, [0.7, 0.8, 0.88, 0.95])).astype(np.uint8)
    gt = np.where(gt > 0, gt % 4 + 1, 0).astype(np.uint8)  # labels 1..4 in a shuffled order
    pred = np.roll(gt, int(rng.integers(1, 4)), axis=int(rng.integers(0, 3)))
    specks = rng.random(gt.shape) > 0.9993
    pred[specks] = rng.integers(1, 5, int(specks.sum()))
    pred = cube(pred.copy(), (2, 2, 2), 5, 2)  # a false-positive SNFH lesion
    results, _ = lesion_wise_results(pred, gt, spacing)
    dice = lw.lesion_wise_dice(pred, gt, spacing)
    assert list(dice) == list(REGION_ORDER)
    for region, value in dice.items():
        assert value == row(results, region).LesionWise_Score_Dice, region
    # and a case with no prediction at all, and one with nothing in either map
    assert lw.lesion_wise_dice(np.zeros_like(gt), gt, spacing) == dict(
        zip(results["Labels"], lesion_wise_results(np.zeros_like(gt), gt, spacing)[0]["LesionWise_Score_Dice"]))
    assert set(lw.lesion_wise_dice(blank(), blank()).values()) == {1.0}


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        lesion_wise_results(np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4, 5), np.uint8))


# ------------------------------------------------------------------------------------------------ folders


def save(seg: np.ndarray, path, spacing=(1.0, 1.0, 1.0)):
    nib.save(nib.Nifti1Image(seg.astype(np.uint8), np.diag([*spacing, 1.0])), str(path))


@pytest.fixture()
def folders(tmp_path):
    pred_dir, gt_dir = tmp_path / "pred", tmp_path / "gt"
    pred_dir.mkdir()
    gt_dir.mkdir()
    gt_a = cube(blank(), (10, 10, 10), 4, 2)
    save(gt_a, gt_dir / "case-a-seg.nii.gz", spacing=(2.0, 1.0, 1.0))
    save(np.roll(gt_a, 1, axis=0), pred_dir / "case-a.nii.gz", spacing=(2.0, 1.0, 1.0))
    save(blank(), gt_dir / "case-b.nii.gz")
    save(cube(blank(), (5, 5, 5), 3, 3), pred_dir / "case-b.nii.gz")
    return pred_dir, gt_dir


@pytest.mark.parametrize("workers", [1, 2])
def test_evaluate_folders_writes_a_tidy_table(folders, tmp_path, workers):
    pred_dir, gt_dir = folders
    out = tmp_path / "out" / "metrics.csv"
    table = evaluate_folders(pred_dir, gt_dir, out, workers=workers, progress=False)
    assert list(table.columns) == list(TABLE_COLUMNS)
    assert list(table["case"]) == ["case-a"] * 6 + ["case-b"] * 6
    assert list(table["region"]) == list(REGION_ORDER) * 2
    a = table[(table["case"] == "case-a") & (table["region"] == "SNFH")].iloc[0]
    assert a.LesionWise_Score_HD95 == 2.0  # spacing from the prediction's affine
    assert a.GT_Complete_Volume == 128.0
    b = table[(table["case"] == "case-b") & (table["region"] == "ET")].iloc[0]
    assert (b.Num_FP, b.LesionWise_Score_Dice) == (1, 0.0)
    written = pd.read_csv(out)
    pd.testing.assert_frame_equal(written, table, check_dtype=False)
    assert not [p for p in out.parent.iterdir() if p.name != "metrics.csv"]  # no temp file left


def test_evaluate_folders_errors_name_the_file(folders, tmp_path):
    pred_dir, gt_dir = folders
    (pred_dir / "case-b.nii.gz").rename(tmp_path / "away.nii.gz")
    with pytest.raises(BratsInputError, match="case-b.nii.gz"):
        evaluate_folders(pred_dir, gt_dir, None, progress=False)
    save(blank(), pred_dir / "case-b.nii.gz")
    save(blank(), pred_dir / "case-c.nii.gz")
    with pytest.raises(BratsInputError, match="case-c.nii.gz.*no ground truth"):
        evaluate_folders(pred_dir, gt_dir, None, progress=False)
    (pred_dir / "case-c.nii.gz").unlink()
    save(np.zeros((8, 8, 8)), pred_dir / "case-b.nii.gz")
    with pytest.raises(BratsInputError, match="case-b.nii.gz: shape"):
        evaluate_folders(pred_dir, gt_dir, None, progress=False)


def test_summarise_gives_the_challenge_statistics_per_region():
    table = pd.DataFrame(
        {
            "case": ["a", "b", "c", "a", "b", "c"],
            "region": ["WT"] * 3 + ["ET"] * 3,
            "LesionWise_Score_Dice": [0.5, 0.7, 0.9, 0.0, 1.0, 1.0],
            "LesionWise_Score_HD95": [1.0, 2.0, 6.0, 337.0, 0.0, 0.0],
        }
    )
    summary = summarise(table, metrics=("LesionWise_Score_Dice", "LesionWise_Score_HD95"))
    wt = summary[summary["region"] == "WT"].set_index("statistic")
    assert list(summary["region"].unique()) == ["WT", "ET"]
    assert wt.loc["mean", "LesionWise_Score_Dice"] == pytest.approx(0.7)
    assert wt.loc["std", "LesionWise_Score_Dice"] == pytest.approx(0.2)
    assert wt.loc["median", "LesionWise_Score_HD95"] == 2.0
    assert wt.loc["25quantile", "LesionWise_Score_HD95"] == 1.5
    assert wt.loc["75quantile", "LesionWise_Score_HD95"] == 4.0


def test_evaluate_folders_reads_a_dataset_root_and_converts_legacy_labels(tmp_path):
    gt_root, pred_dir = tmp_path / "dataset", tmp_path / "pred"
    pred_dir.mkdir()
    for case_id, sep, et_label in [("BraTS-GLI-00001-000", "-", 3), ("BraTS2021_00002", "_", 4)]:
        folder = gt_root / case_id
        folder.mkdir(parents=True)
        save(cube(blank(), (10, 10, 10), 4, et_label), folder / f"{case_id}{sep}seg.nii.gz")
        save(cube(blank(), (10, 10, 10), 4, 3), pred_dir / f"{case_id}.nii.gz")
    table = evaluate_folders(pred_dir, gt_root, None, progress=False)
    et = table[table["region"] == "ET"].set_index("case")
    assert list(et.index) == ["BraTS-GLI-00001-000", "BraTS2021_00002"]
    assert (et["LesionWise_Score_Dice"] == 1.0).all()  # legacy ET 4 became 3
    assert (table[table["region"] == "RC"]["Num_FP"] == 0).all()


# ------------------------------------------------------------------------------- fast paths, known answers

F32 = tuple(float(np.float32(s)) for s in (1.1, 0.9, 2.2))  # not exact in float32, like aniso-00014


def blobs_with_a_far_false_positive(seed: int, labelled: bool) -> tuple[np.ndarray, np.ndarray]:
    """Two overlapping blob maps, the second with a distant extra blob (its HD95 lies beyond the shells)."""
    a = random_blobs(seed, shape=(40, 36, 30)).astype(np.uint8)
    b = random_blobs(seed + 50, shape=(40, 36, 30)).astype(np.uint8)
    b[30:38, 28:34, 22:28] = 1
    if labelled:  # lesion ids ≠ 1: interiors count as surface (the legacy quirk)
        a, _ = ndimage.label(a)
        b, _ = ndimage.label(b)
    return a, b


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.9375, 0.9375, 1.5), (2.0, 1.0, 1.0), F32])
@pytest.mark.parametrize("labelled", [False, True])
@pytest.mark.parametrize("route", ["kd-tree", "transform"])
def test_fast_hd95_equals_the_distance_transform_reference(spacing, labelled, route, monkeypatch):
    """Every route of the fast HD95 gives the reference's float (itself DeepMind's, tested above)."""
    monkeypatch.setattr(surface, "_KD_COST", 0.0 if route == "kd-tree" else 1.0)
    for seed in range(3):
        a, b = blobs_with_a_far_false_positive(seed, labelled)
        reference = surface.robust_hausdorff(surface.surface_distances(a, b, spacing))
        assert surface.fast_hd95(a, b, spacing) == reference
        assert surface.fast_hd95(b, a, spacing) == reference


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.9375, 0.9375, 1.5)])
def test_fast_hd95_certifies_without_falling_back(spacing, monkeypatch):
    """On exact-arithmetic spacings the fast path decides alone: no distance transform of the reference."""
    cases = [blobs_with_a_far_false_positive(s, labelled) for s in range(2) for labelled in (False, True)]
    expected = [surface.robust_hausdorff(surface.surface_distances(a, b, spacing)) for a, b in cases]

    def no_fallback(*args, **kwargs):
        raise AssertionError("fell back to the reference distance transform")

    monkeypatch.setattr(surface, "surface_distances", no_fallback)
    assert [surface.fast_hd95(a, b, spacing) for a, b in cases] == expected


def test_fast_hd95_known_values():
    a, b = blank(), blank()
    a[10, 10, 10] = 1
    b[13, 10, 10] = 1
    assert surface.fast_hd95(a, b, (1.0, 1.0, 1.0)) == 3.0
    assert surface.fast_hd95(a, b, (2.0, 1.0, 1.0)) == 6.0
    b[:] = 0
    b[10, 10, 30] = 1  # corners 19 and 20 voxels apart along the last axis: beyond the shells
    assert surface.fast_hd95(a, b, (1.0, 1.0, 1.5)) == 30.0  # the farther corners (4 of 8 ≥ 95 %)
    assert math.isinf(surface.fast_hd95(a, np.zeros_like(a)))


@pytest.mark.parametrize("iterations", [1, 3, 5])
def test_separable_s18_dilation_equals_scipy(iterations):
    mask = np.random.default_rng(iterations).random((17, 19, 15)) > 0.97
    expected = ndimage.binary_dilation(mask, structure=lw.S18, iterations=iterations)
    np.testing.assert_array_equal(lw.dilate_s18(mask, iterations), expected)


# ----------------------------------------------------------------------------------- brats evaluate (CLI)


def run_evaluate(*args: str) -> int:
    from brats_lib import cli

    return cli.main(["evaluate", *args])


def test_evaluate_command_writes_seconds_and_the_lesion_table(folders, tmp_path, capsys):
    pred_dir, gt_dir = folders
    out, lesions_csv = tmp_path / "metrics.csv", tmp_path / "lesions.csv"
    assert run_evaluate("--pred", str(pred_dir), "--gt", str(gt_dir), "--out", str(out),
                        "--lesions", str(lesions_csv)) == 0
    table, lesions = pd.read_csv(out), pd.read_csv(lesions_csv)
    assert list(table.columns)[-1] == "seconds"
    per_case = table.groupby("case")["seconds"]
    assert (per_case.nunique() == 1).all() and (per_case.first() > 0).all()
    assert list(lesions.columns) == ["case", *lw.LESION_COLUMNS]
    # case-a: one GT lesion per region of {1, 2, 3}: WT, TC, NETC, SNFH, ET (the cube is label 2 → WT, SNFH).
    a = lesions[lesions["case"] == "case-a"]
    assert list(a["Label"]) == ["WT", "SNFH"]
    assert list(a["predicted_lesion_numbers"]) == ["[1]", "[1]"]
    assert list(a["gt_lesion_vol"]) == [128.0, 128.0]  # 4³ voxels of 2 mm³
    assert (lesions["case"] == "case-b").sum() == 0  # an empty ground truth has no lesion rows
    assert "lesion table" in capsys.readouterr().out


def legacy_pair(tmp_path):
    """A ground truth with ET (3) and a prediction of the same tumour in the 2018–2021 labels (ET = 4)."""
    pred_dir, gt_dir = tmp_path / "pred", tmp_path / "gt"
    pred_dir.mkdir()
    gt_dir.mkdir()
    gt = cube(cube(blank(), (10, 10, 10), 8, 2), (12, 12, 12), 4, 3)
    save(gt, gt_dir / "c1-seg.nii.gz")
    legacy = gt.copy()
    legacy[gt == 3] = 4
    save(legacy, pred_dir / "c1.nii.gz")
    return pred_dir, gt_dir


def test_pred_labels_legacy_converts_4_to_et(tmp_path):
    pred_dir, gt_dir = legacy_pair(tmp_path)
    out = tmp_path / "legacy.csv"
    assert run_evaluate("--pred", str(pred_dir), "--gt", str(gt_dir), "--out", str(out),
                        "--pred-labels", "legacy") == 0
    table = pd.read_csv(out).set_index("region")
    assert table.loc["ET", "LesionWise_Score_Dice"] == 1.0
    assert table.loc["RC", "Num_FP"] == 0


def test_a_legacy_looking_prediction_read_as_2024_is_scored_with_a_warning(tmp_path, capsys):
    pred_dir, gt_dir = legacy_pair(tmp_path)
    out = tmp_path / "as2024.csv"
    assert run_evaluate("--pred", str(pred_dir), "--gt", str(gt_dir), "--out", str(out)) == 0
    err = capsys.readouterr().err
    assert "c1.nii.gz" in err and "2018–2021 convention" in err and "--pred-labels legacy" in err
    table = pd.read_csv(out).set_index("region")
    assert table.loc["ET", "LesionWise_Score_Dice"] == 0.0  # 4 read as RC: ET missed, RC a false positive
    assert table.loc["RC", "Num_FP"] == 1
    with pytest.warns(evaluate_module.LabelConventionWarning, match="looks like the 2018–2021"):
        evaluate_folders(pred_dir, gt_dir, None, progress=False)


def test_a_2024_prediction_raises_no_convention_warning(tmp_path, capsys):
    pred_dir, gt_dir = legacy_pair(tmp_path)
    gt = nib.load(gt_dir / "c1-seg.nii.gz").get_fdata().astype(np.uint8)
    save(gt, pred_dir / "c1.nii.gz")
    assert run_evaluate("--pred", str(pred_dir), "--gt", str(gt_dir), "--out", str(tmp_path / "o.csv")) == 0
    assert "warning" not in capsys.readouterr().err


def test_prediction_on_another_grid_is_one_clear_error_naming_both_files(tmp_path, capsys):
    pred_dir, gt_dir = tmp_path / "pred", tmp_path / "gt"
    pred_dir.mkdir()
    gt_dir.mkdir()
    seg = cube(blank(), (10, 10, 10), 4, 2)
    save(seg, gt_dir / "c1-seg.nii.gz")
    shifted = np.diag([1.0, 1.0, 1.0, 1.0])
    shifted[:3, 3] = (5.0, 0.0, 0.0)  # same shape and spacing, another origin
    nib.save(nib.Nifti1Image(seg, shifted), str(pred_dir / "c1.nii.gz"))
    out = tmp_path / "o.csv"
    assert run_evaluate("--pred", str(pred_dir), "--gt", str(gt_dir), "--out", str(out)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert str(pred_dir / "c1.nii.gz") in err and str(gt_dir / "c1-seg.nii.gz") in err and "affine" in err
    assert not out.exists()


def test_a_dataset_root_with_a_stray_nifti_at_its_top_is_still_a_dataset_root(tmp_path):
    gt_root, pred_dir = tmp_path / "dataset", tmp_path / "pred"
    pred_dir.mkdir()
    case = gt_root / "BraTS-GLI-00001-000"
    case.mkdir(parents=True)
    save(cube(blank(), (10, 10, 10), 4, 3), case / "BraTS-GLI-00001-000-seg.nii.gz")
    save(blank(), gt_root / "template.nii.gz")  # the stray file
    save(cube(blank(), (10, 10, 10), 4, 3), pred_dir / "BraTS-GLI-00001-000.nii.gz")
    table = evaluate_folders(pred_dir, gt_root, None, progress=False)
    assert set(table["case"]) == {"BraTS-GLI-00001-000"}
    assert table.set_index("region").loc["ET", "LesionWise_Score_Dice"] == 1.0
