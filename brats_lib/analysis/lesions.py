"""Lesions: which true lesions a model finds, by size, and where its misses and false positives are.

Lesions are those of the BraTS 2024 lesion-wise score, taken from :mod:`brats_lib.metrics.lesionwise` itself
(``lesion_maps``: components after the dilation merge and the cross-tissue merge, small predicted components
dropped; ``score_lesions``: a true lesion is **detected** when a predicted lesion overlaps its dilated
neighbourhood, a predicted lesion matched to no true lesion is a **false positive**). :func:`lesion_table` lists
every true lesion (volume, detected or missed, lesion Dice) and every false-positive component (volume), with
its centroid in voxel indices and in world mm; ``counted`` says whether the score counts a true lesion (above
the region's size threshold). :func:`detection_rate` bins true lesions by volume.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ..labels import REGION_ORDER
from ..metrics.lesionwise import DILATION_ITERATIONS, LESION_THRESHOLD, lesion_maps, score_lesions
from ..metrics.surface import bounding_box

#: Columns of :func:`lesion_table`.
LESION_TABLE_COLUMNS = (
    "case", "region", "kind", "lesion", "volume_ml", "detected", "counted", "dice", "i", "j", "k",
    "x_mm", "y_mm", "z_mm",
)
#: Kinds of rows of :func:`lesion_table`.
TRUE_LESION, FALSE_POSITIVE = "true lesion", "false positive"
#: Default volume bins (mL) of :func:`detection_rate`.
VOLUME_BINS_ML: tuple[float, ...] = (0.0, 0.1, 0.5, 1.0, 5.0, 20.0, np.inf)
_MARGIN = max(DILATION_ITERATIONS.values()) + 1


def _centroids(labels: np.ndarray, numbers: Sequence[int]) -> np.ndarray:
    """(n, 3) mean voxel index of each lesion ``numbers[i]`` of a lesion map (one pass over its voxels)."""
    if not len(numbers):
        return np.zeros((0, 3))
    where = np.nonzero(labels)
    ids = labels[where]
    size = int(ids.max()) + 1
    counts = np.bincount(ids, minlength=size).astype(np.float64)
    sums = np.stack([np.bincount(ids, weights=axis, minlength=size) for axis in where], axis=1)
    index = np.asarray(numbers, dtype=np.intp)
    return sums[index] / counts[index, None]


def lesion_table(pred: np.ndarray, gt: np.ndarray, affine: np.ndarray, case_id: str = "",
                 regions: Sequence[str] = REGION_ORDER) -> pd.DataFrame:
    """True lesions and false-positive components of one case (columns :data:`LESION_TABLE_COLUMNS`).

    Args:
        pred, gt: (X, Y, Z) uint8 label maps, 2024 convention.
        affine: voxel → world (mm) matrix (spacing from its column norms; centroids mapped through it).
    """
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from ground truth {gt.shape}")
    affine = np.asarray(affine, dtype=np.float64)
    spacing = tuple(float(s) for s in np.linalg.norm(affine[:3, :3], axis=0))
    voxel_ml = float(abs(np.linalg.det(affine[:3, :3]))) / 1000.0
    box = bounding_box((pred != 0) | (gt != 0))
    rows: list[dict] = []
    if box is None:
        return pd.DataFrame(rows, columns=list(LESION_TABLE_COLUMNS))
    box = tuple(slice(max(s.start - _MARGIN, 0), min(s.stop + _MARGIN, n)) for s, n in zip(box, gt.shape))
    origin = np.array([s.start for s in box], dtype=np.float64)
    gt_lesions, pred_lesions = lesion_maps(gt[box], False), lesion_maps(pred[box], True)

    def located(ijk: np.ndarray) -> dict:
        ijk = ijk + origin
        xyz = affine[:3, :3] @ ijk + affine[:3, 3]
        return {"i": ijk[0], "j": ijk[1], "k": ijk[2], "x_mm": xyz[0], "y_mm": xyz[1], "z_mm": xyz[2]}

    for region in regions:
        g, p = gt_lesions[region], pred_lesions[region]
        scores, false_positives = score_lesions(g, p, DILATION_ITERATIONS[region], spacing)
        gt_centres = _centroids(g, [s.number for s in scores])
        for score, centre in zip(scores, gt_centres):
            rows.append({"case": case_id, "region": region, "kind": TRUE_LESION, "lesion": score.number,
                         "volume_ml": score.volume / 1000.0, "detected": bool(score.matched),
                         "counted": bool(score.volume > LESION_THRESHOLD[region]), "dice": score.dice,
                         **located(centre)})
        sizes = np.bincount(p.ravel())
        for number, centre in zip(false_positives, _centroids(p, false_positives)):
            rows.append({"case": case_id, "region": region, "kind": FALSE_POSITIVE, "lesion": number,
                         "volume_ml": float(sizes[number]) * voxel_ml, "detected": np.nan, "counted": True,
                         "dice": 0.0, **located(centre)})
    return pd.DataFrame(rows, columns=list(LESION_TABLE_COLUMNS))


def detection_rate(lesions: pd.DataFrame, bins_ml: Sequence[float] = VOLUME_BINS_ML,
                   counted_only: bool = False) -> pd.DataFrame:
    """Share of true lesions detected per (model,) region and volume bin.

    Args:
        lesions: :func:`lesion_table` rows (several cases; a ``model`` column for several models).
        bins_ml: bin edges in mL (a lesion of volume v falls in ``[lo, hi)``).
        counted_only: only the lesions the lesion-wise score counts (above its size threshold).
    Returns:
        columns (``model``,) ``region``, ``bin_lo_ml``, ``bin_hi_ml``, ``n``, ``detected``, ``rate`` (NaN for an
        empty bin).
    """
    true = lesions[lesions["kind"] == TRUE_LESION]
    if counted_only:
        true = true[true["counted"].astype(bool)]
    keys = ["model", "region"] if "model" in lesions else ["region"]
    edges = np.asarray(bins_ml, dtype=np.float64)
    rows = []
    groups = true.groupby(keys, sort=False) if len(true) else []
    for key, part in groups:
        key = key if isinstance(key, tuple) else (key,)
        which = np.digitize(part["volume_ml"].to_numpy(float), edges) - 1
        detected = part["detected"].astype(bool).to_numpy()
        for b in range(len(edges) - 1):
            inside = which == b
            n = int(inside.sum())
            rows.append({**dict(zip(keys, key)), "bin_lo_ml": edges[b], "bin_hi_ml": edges[b + 1], "n": n,
                         "detected": int(detected[inside].sum()),
                         "rate": float(detected[inside].mean()) if n else float("nan")})
    return pd.DataFrame(rows, columns=[*keys, "bin_lo_ml", "bin_hi_ml", "n", "detected", "rate"])


def missed_and_false(lesions: pd.DataFrame) -> pd.DataFrame:
    """The missed true lesions and the false-positive components of a :func:`lesion_table`, largest first."""
    missed = (lesions["kind"] == TRUE_LESION) & ~lesions["detected"].astype(bool)
    out = lesions[missed | (lesions["kind"] == FALSE_POSITIVE)]
    return out.sort_values("volume_ml", ascending=False, kind="stable").reset_index(drop=True)


__all__ = ["FALSE_POSITIVE", "LESION_TABLE_COLUMNS", "TRUE_LESION", "VOLUME_BINS_ML", "detection_rate",
           "lesion_table", "missed_and_false"]
