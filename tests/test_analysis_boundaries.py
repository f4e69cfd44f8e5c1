"""Signed boundary distances: boxes and spheres with known offsets, and DeepMind's surface-distance package."""

import numpy as np
import pytest
import surface_distance

from brats_lib import analysis


def box_pair(k: int, shape=(40, 40, 30), lo=(10, 10, 10), hi=(30, 30, 20)):
    inner = np.zeros(shape, bool)
    inner[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = True
    outer = np.zeros(shape, bool)
    outer[lo[0] - k:hi[0] + k, lo[1] - k:hi[1] + k, lo[2] - k:hi[2] + k] = True
    return inner, outer


def expected_box_distance(corners, lo, hi, k, spacing):
    """Distance (mm) from points inside the grown box to its surface: the nearest of its six faces. Voxel i
    spans corners i − 0.5 … i + 0.5, so the grown box spans lo − k − 0.5 … hi + k − 0.5."""
    low = np.asarray(lo) - k - 0.5
    high = np.asarray(hi) + k - 0.5
    per_axis = np.minimum(corners - low, high - corners) * np.asarray(spacing)
    return per_axis.min(axis=1)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (1.0, 1.0, 2.5), (0.8, 1.2, 3.0)])
@pytest.mark.parametrize("k", [1, 3])
def test_box_inside_a_box_grown_by_k_voxels(spacing, k):
    inner, outer = box_pair(k)
    under = analysis.boundary_distances(inner, outer, spacing)  # prediction inside the truth
    expected = expected_box_distance(under.pred_corners, (10, 10, 10), (30, 30, 20), k, spacing)
    np.testing.assert_allclose(under.signed, -expected, atol=1e-9)
    over = analysis.boundary_distances(outer, inner, spacing)  # prediction around the truth
    assert np.all(over.signed > 0)
    if spacing == (1.0, 1.0, 1.0):
        stats = analysis.boundary_stats(under)
        assert stats["bias_mm"] == pytest.approx(-k) and stats["mean_abs_mm"] == pytest.approx(k)
        assert all(stats[f"p{q}_mm"] == -k for q in analysis.PERCENTILES)
        # k = 1: every surfel of either box within √3 mm of the other box; k = 3: none within 2 mm
        assert stats["nsd_2mm"] == pytest.approx(1.0 if k == 1 else 0.0)
        assert (stats["nsd_1mm"] < 1.0) if k == 1 else (stats["nsd_1mm"] == 0.0)


def sphere(radius, shape=(64, 64, 64), spacing=(1.0, 1.0, 1.0)):
    grid = np.indices(shape).astype(float)
    centre = (np.asarray(shape) - 1) / 2.0
    r = np.sqrt(sum(((g - c) * s) ** 2 for g, c, s in zip(grid, centre, spacing)))
    return r <= radius


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (1.0, 1.0, 2.0)])
@pytest.mark.parametrize("k", [2, 4])
def test_sphere_against_sphere_grown_by_k(spacing, k):
    # radii in mm; growth of k voxels of the finest spacing (1 mm)
    small, large = sphere(14.0, spacing=spacing), sphere(14.0 + k, spacing=spacing)
    under = analysis.boundary_stats(analysis.boundary_distances(small, large, spacing))
    over = analysis.boundary_stats(analysis.boundary_distances(large, small, spacing))
    assert under["bias_mm"] == pytest.approx(-k, abs=0.75)  # staircase surfaces: within a voxel of k mm
    assert over["bias_mm"] == pytest.approx(k, abs=0.75)
    assert under["p95_mm"] <= 0 <= over["p5_mm"]  # never on the wrong side (0 where the surfaces touch)
    assert under["mean_abs_mm"] == pytest.approx(-under["bias_mm"])


def test_unsigned_values_and_surface_dice_match_deepmind():
    rng = np.random.default_rng(3)
    for spacing in [(1.0, 1.0, 1.0), (1.0, 1.0, 2.5), (0.7, 1.3, 2.0)]:
        gt = sphere(9.0, (30, 32, 28))
        pred = np.roll(gt, (2, -1, 1), axis=(0, 1, 2)) | (rng.random(gt.shape) > 0.995)
        ours = analysis.boundary_distances(pred, gt, spacing)
        theirs = surface_distance.compute_surface_distances(gt, pred, spacing)
        np.testing.assert_allclose(np.sort(np.abs(ours.signed)), theirs["distances_pred_to_gt"], rtol=1e-6)
        np.testing.assert_allclose(np.sort(ours.gt_to_pred), theirs["distances_gt_to_pred"], rtol=1e-6)
        assert ours.pred_areas.sum() == pytest.approx(theirs["surfel_areas_pred"].sum())
        for tolerance in (1.0, 2.0):
            assert analysis.surface_dice(ours, tolerance) == pytest.approx(
                surface_distance.compute_surface_dice_at_tolerance(theirs, tolerance))


def test_empty_sides_and_histogram():
    gt = sphere(5.0, (16, 16, 16))
    none = analysis.boundary_stats(analysis.boundary_distances(np.zeros_like(gt), gt))
    assert none["pred_surfels"] == 0 and np.isnan(none["bias_mm"]) and none["nsd_1mm"] == 0.0
    missing_truth = analysis.boundary_stats(analysis.boundary_distances(gt, np.zeros_like(gt)))
    assert np.isnan(missing_truth["p50_mm"])
    inner, outer = box_pair(2)
    bd = analysis.boundary_distances(inner, outer)
    hist = analysis.distance_histogram(bd)
    assert hist.sum() == pytest.approx(bd.pred_areas.sum())
    lo = analysis.HISTOGRAM_EDGES[:-1]
    assert hist[np.searchsorted(lo, -2.0)] == pytest.approx(bd.pred_areas.sum())  # all in the [-2, -1.5) bin


def test_region_boundaries_and_display_map():
    gt = np.zeros((30, 30, 30), np.uint8)
    gt[8:22, 8:22, 8:22] = 2
    gt[12:18, 12:18, 12:18] = 3
    pred = np.zeros_like(gt)
    pred[9:21, 9:21, 9:21] = 2  # WT one voxel inside the truth on every side
    pred[12:18, 12:18, 12:18] = 3  # ET exact
    regions = analysis.region_boundaries(pred, gt, (1.0, 1.0, 1.0), ("WT", "ET"))
    assert analysis.boundary_stats(regions["WT"])["bias_mm"] == pytest.approx(-1.0)
    assert analysis.boundary_stats(regions["ET"])["bias_mm"] == 0.0
    assert regions["WT"].pred_corners.min() == pytest.approx(8.5)  # corners in full-volume voxel units
    shown = analysis.signed_boundary_map(pred > 0, gt > 0)
    edge = ~np.isnan(shown)
    assert edge.sum() == 12 ** 3 - 10 ** 3  # the prediction's outer voxel layer
    assert np.all(shown[edge] == -2.0)  # voxel centres 2 voxels from the first voxel outside the truth
