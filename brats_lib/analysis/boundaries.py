"""Signed boundary distances: where a predicted boundary lies relative to the true one, per region.

For each surface element ("surfel") of the predicted region's boundary, its distance (mm) to the nearest
point of the ground truth's boundary, **signed**: negative when the surfel lies inside the true region (the
prediction stops short: under-segmentation), positive outside it (the prediction spills over:
over-segmentation). Surfels, their areas and the distances are those of DeepMind's ``surface-distance``
package as :mod:`brats_lib.metrics.surface` reproduces it (surfels at voxel corners whose 2×2×2 neighbourhood
is mixed, areas from the marching-cubes table for the grid's spacing, Euclidean distance transforms with the
spacing, so anisotropic grids are measured in mm); every statistic is **weighted by surfel area**, so a
boundary is summarised by its surface, not by how many voxel corners it happens to cross.

Per case and region (:func:`boundary_stats`): area-weighted percentiles of the signed distance (5, 25, 50, 75,
95; the value at which the cumulative area first reaches the percentile, as the package's robust Hausdorff),
the mean signed distance (**bias**: < 0 the model under-segments, > 0 it over-segments), the mean absolute
distance, and the **normalised surface Dice** at 1 and 2 mm (Nikolov et al. 2018: the share of both
boundaries' area lying within the tolerance of the other boundary). Work is confined to the bounding box of
the two masks. Per model, :func:`distance_histogram` accumulates area per signed-distance bin, so the
distribution over many cases needs fixed memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import ndimage

from ..labels import REGION_ORDER, REGIONS
from ..metrics.surface import bounding_box, distances_to_surface, neighbour_codes, surfel_area_table

#: Percentiles of :func:`boundary_stats`.
PERCENTILES: tuple[int, ...] = (5, 25, 50, 75, 95)
#: Tolerances (mm) of the normalised surface Dice in :func:`boundary_stats`.
NSD_TOLERANCES: tuple[float, ...] = (1.0, 2.0)
#: Default bin edges (mm) of :func:`distance_histogram`: 0.5 mm bins over ±15 mm; values beyond go to the
#: outermost bins.
HISTOGRAM_EDGES = np.arange(-15.0, 15.0 + 0.25, 0.5)


@dataclass(frozen=True)
class BoundaryDistances:
    """Surfels of one region's predicted and true boundaries (float64 arrays, mm and mm²).

    ``signed`` / ``pred_areas``: one entry per predicted surfel (C order of the corner grid), the signed
    distance to the true boundary and the surfel area; ``pred_corners``: (n, 3) their positions in voxel
    index units (a corner between voxels ``i-1`` and ``i`` is at ``i - 0.5``). ``gt_to_pred`` / ``gt_areas``:
    the unsigned distance of each true surfel to the predicted boundary and its area. A side without surfels
    has empty arrays; distances to an empty side are ``inf``.
    """

    signed: np.ndarray
    pred_areas: np.ndarray
    pred_corners: np.ndarray
    gt_to_pred: np.ndarray
    gt_areas: np.ndarray


def boundary_distances(pred_mask: np.ndarray, gt_mask: np.ndarray, spacing=(1.0, 1.0, 1.0)) -> BoundaryDistances:
    """Signed predicted-to-true and unsigned true-to-predicted surfel distances of two binary masks."""
    if pred_mask.shape != gt_mask.shape:
        raise ValueError(f"prediction shape {pred_mask.shape} differs from ground truth {gt_mask.shape}")
    spacing = tuple(float(s) for s in spacing)
    pred_mask, gt_mask = pred_mask.astype(bool, copy=False), gt_mask.astype(bool, copy=False)
    box = bounding_box(pred_mask | gt_mask)
    empty = np.zeros(0)
    if box is None:
        return BoundaryDistances(empty, empty, np.zeros((0, 3)), empty, empty)
    code_p, code_g = neighbour_codes(pred_mask[box]), neighbour_codes(gt_mask[box])
    border_p = (code_p != 0) & (code_p != 255)
    border_g = (code_g != 0) & (code_g != 255)
    table = surfel_area_table(spacing)
    unsigned = distances_to_surface(border_g, border_p, spacing)
    # A predicted surfel off the true boundary has a true code of 255 (all 8 voxels inside) or 0 (outside).
    signed = np.where(code_g[border_p] == 255, -unsigned, unsigned)
    offset = np.array([s.start for s in box], dtype=np.float64) - 0.5
    corners = np.argwhere(border_p).astype(np.float64) + offset
    return BoundaryDistances(signed, table[code_p[border_p]], corners,
                             distances_to_surface(border_p, border_g, spacing), table[code_g[border_g]])


def weighted_percentile(values: np.ndarray, weights: np.ndarray, percent: float) -> float:
    """The value at which the cumulative weight (values sorted) first reaches ``percent`` % of the total;
    NaN for no value or no finite value."""
    finite = np.isfinite(values)
    if not finite.any():
        return float("nan")
    values, weights = values[finite], weights[finite]
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weights[order]) / np.sum(weights)
    index = min(int(np.searchsorted(cumulative, percent / 100.0)), values.size - 1)
    return float(values[order][index])


def surface_dice(bd: BoundaryDistances, tolerance: float) -> float:
    """Normalised surface Dice at ``tolerance`` mm: boundary area within the tolerance of the other boundary,
    over both boundaries' total area (1 = every surfel within tolerance); NaN when both are empty."""
    total = bd.pred_areas.sum() + bd.gt_areas.sum()
    if total <= 0:
        return float("nan")
    close = bd.pred_areas[np.abs(bd.signed) <= tolerance].sum() + bd.gt_areas[bd.gt_to_pred <= tolerance].sum()
    return float(close / total)


def boundary_stats(bd: BoundaryDistances, percentiles: Sequence[int] = PERCENTILES,
                   tolerances: Sequence[float] = NSD_TOLERANCES) -> dict:
    """Area-weighted summary of one region's :class:`BoundaryDistances` (see the module docstring).

    Returns:
        ``pred_surfels``, ``pred_area_mm2``, ``gt_area_mm2``, ``bias_mm`` (mean signed), ``mean_abs_mm``,
        ``p<q>_mm`` for each percentile, ``nsd_<t>mm`` for each tolerance; distances NaN when either boundary
        is empty (nothing to measure against).
    """
    area = float(bd.pred_areas.sum())
    measurable = bd.signed.size > 0 and bd.gt_to_pred.size > 0
    out = {"pred_surfels": int(bd.signed.size), "pred_area_mm2": area, "gt_area_mm2": float(bd.gt_areas.sum())}
    if measurable:
        out["bias_mm"] = float(np.sum(bd.signed * bd.pred_areas) / area)
        out["mean_abs_mm"] = float(np.sum(np.abs(bd.signed) * bd.pred_areas) / area)
    else:
        out["bias_mm"] = out["mean_abs_mm"] = float("nan")
    for q in percentiles:
        out[f"p{q}_mm"] = weighted_percentile(bd.signed, bd.pred_areas, q) if measurable else float("nan")
    for t in tolerances:
        out[f"nsd_{t:g}mm"] = surface_dice(bd, t)
    return out


def distance_histogram(bd: BoundaryDistances, edges: np.ndarray = HISTOGRAM_EDGES) -> np.ndarray:
    """Surfel area (mm²) per signed-distance bin of ``edges`` (finite distances; values beyond the edges go to
    the outermost bins), for summing over cases in fixed memory."""
    finite = np.isfinite(bd.signed)
    values = np.clip(bd.signed[finite], edges[0], np.nextafter(edges[-1], -np.inf))
    return np.histogram(values, bins=edges, weights=bd.pred_areas[finite])[0]


def region_boundaries(pred: np.ndarray, gt: np.ndarray, spacing=(1.0, 1.0, 1.0),
                      regions: Sequence[str] = REGION_ORDER) -> dict[str, BoundaryDistances]:
    """``{region: BoundaryDistances}`` of two 2024-convention label maps, each region inside its own box."""
    box = bounding_box((pred != 0) | (gt != 0))
    out = {}
    for region in regions:
        labels = list(REGIONS[region])
        if box is None:
            p = g = np.zeros((1, 1, 1), bool)
        else:
            p, g = np.isin(pred[box], labels), np.isin(gt[box], labels)
        bd = boundary_distances(p, g, spacing)
        if box is not None and bd.pred_corners.size:
            bd = BoundaryDistances(bd.signed, bd.pred_areas,
                                   bd.pred_corners + np.array([s.start for s in box], dtype=np.float64),
                                   bd.gt_to_pred, bd.gt_areas)
        out[region] = bd
    return out


def signed_boundary_map(pred_mask: np.ndarray, gt_mask: np.ndarray, spacing=(1.0, 1.0, 1.0)) -> np.ndarray:
    """For display: (X, Y, Z) float32, NaN except on the predicted boundary voxels (predicted voxels with a
    6-neighbour outside the prediction), which hold the signed distance (mm) from the voxel centre to the
    true region: −(distance to the nearest voxel outside the truth) inside it, +(distance to the nearest
    true voxel) outside it. A voxel-centre approximation of :func:`boundary_distances` (within about half a
    voxel), on the voxel grid so that it can be drawn over a slice."""
    out = np.full(pred_mask.shape, np.nan, dtype=np.float32)
    pred_mask, gt_mask = pred_mask.astype(bool, copy=False), gt_mask.astype(bool, copy=False)
    box = bounding_box(pred_mask | gt_mask)
    if box is None or not pred_mask.any():
        return out
    box = tuple(slice(max(s.start - 1, 0), min(s.stop + 1, n)) for s, n in zip(box, pred_mask.shape))
    p, g = pred_mask[box], gt_mask[box]
    edge = p & ~ndimage.binary_erosion(p, border_value=0)
    spacing = tuple(float(s) for s in spacing)
    outside = ndimage.distance_transform_edt(~g, sampling=spacing) if g.any() else np.full(g.shape, np.inf)
    inside = ndimage.distance_transform_edt(g, sampling=spacing)
    signed = np.where(g, -inside, outside).astype(np.float32)
    out[box][edge] = signed[edge]
    return out


__all__ = ["BoundaryDistances", "HISTOGRAM_EDGES", "NSD_TOLERANCES", "PERCENTILES", "boundary_distances",
           "boundary_stats", "distance_histogram", "region_boundaries", "signed_boundary_map", "surface_dice",
           "weighted_percentile"]
