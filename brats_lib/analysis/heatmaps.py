"""Where errors fall: per-patient projections of FN and FP, and error frequency across patients.

* :func:`error_projections`: for one case and each region, the maximum-intensity projection (MIP) of its false
  negatives and false positives onto the three planes (a pixel is set when any voxel along the ray is an
  error), plus :func:`anatomy_projection` to draw them over the case's anatomy.
* :class:`ErrorFrequency`: per voxel of the common grid, how many cases have a FN (or FP) there. BraTS 2023+
  and 2024 cases all lie on the MNI152 1 mm grid (182×218×182, LAS, origin (90, −126, −72); the grid the
  synthetic generator writes), so counts add up voxel by voxel without registration. A case on another grid
  is refused with an error naming both grids: nothing is ever resampled silently. The accumulator holds
  one ``uint16`` count map per region and error kind and adds each case inside its bounding box, so memory
  does not depend on the number of cases (stream cases through :meth:`ErrorFrequency.add`).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ..io import AFFINE_TOLERANCE, BratsInputError
from ..labels import REGION_ORDER, REGIONS
from ..metrics.surface import bounding_box
from ..synthetic.anatomy import GRID_AFFINE, GRID_SHAPE

#: Plane → array axis the projection runs along (the slicing convention of :mod:`brats_lib.viz`).
PLANE_AXES: Mapping[str, int] = {"sagittal": 0, "coronal": 1, "axial": 2}
#: Name of the common grid.
MNI_GRID_NAME = "MNI152 1 mm (182×218×182, LAS, origin (90, −126, −72))"
#: Regions accumulated by default (one count map per region and error kind, 2 × 14.4 MB each).
FREQUENCY_REGIONS: tuple[str, ...] = ("WT", "TC", "ET")


def error_projections(pred: np.ndarray, gt: np.ndarray, regions: Sequence[str] = REGION_ORDER
                      ) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """``{region: {plane: {"FN": mip, "FP": mip}}}``: boolean MIPs of one case's errors.

    A plane's MIP has the shape of the volume without the projected axis (``axial``: (X, Y)), in stored voxel
    order like :func:`brats_lib.viz.take_slice`. Computed inside the bounding box of both maps.
    """
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from ground truth {gt.shape}")
    box = bounding_box((pred != 0) | (gt != 0))
    out: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for region in regions:
        labels = list(REGIONS[region])
        out[region] = {}
        if box is not None:
            p, g = np.isin(pred[box], labels), np.isin(gt[box], labels)
            errors = {"FN": g & ~p, "FP": p & ~g}
        for plane, axis in PLANE_AXES.items():
            shape2d = tuple(n for a, n in enumerate(pred.shape) if a != axis)
            inner = tuple(s for a, s in enumerate(box) if a != axis) if box is not None else None
            out[region][plane] = {}
            for kind in ("FN", "FP"):
                mip = np.zeros(shape2d, dtype=bool)
                if box is not None:
                    mip[inner] = errors[kind].any(axis=axis)
                out[region][plane][kind] = mip
    return out


def anatomy_projection(image: np.ndarray, plane: str) -> np.ndarray:
    """Mean intensity of the brain (non-zero voxels) along ``plane``'s axis: a soft 2D backdrop for MIPs
    (0 where a ray meets no brain)."""
    axis = PLANE_AXES[plane]
    image = np.asarray(image, dtype=np.float32)
    inside = np.count_nonzero(image, axis=axis)
    total = image.sum(axis=axis, dtype=np.float64)
    return np.divide(total, inside, out=np.zeros(total.shape), where=inside > 0).astype(np.float32)


def describe_grid(shape: Sequence[int], affine: np.ndarray) -> str:
    """``182×218×182, spacing (1, 1, 1) mm, origin (90, -126, -72)``."""
    affine = np.asarray(affine, dtype=np.float64)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    return (f"{'×'.join(str(int(n)) for n in shape)}, spacing ({', '.join(f'{s:g}' for s in spacing)}) mm, "
            f"origin ({', '.join(f'{o:g}' for o in affine[:3, 3])})")


class ErrorFrequency:
    """Streaming per-voxel error counts over cases on one common grid.

    Args:
        regions: regions to count (one FN and one FP ``uint16`` map each).
        shape, affine: the common grid (default the MNI152 1 mm grid of BraTS 2024).
        grid_name: how the grid is named in errors.
    """

    def __init__(self, regions: Sequence[str] = FREQUENCY_REGIONS, shape: Sequence[int] = GRID_SHAPE,
                 affine: np.ndarray = GRID_AFFINE, grid_name: str = MNI_GRID_NAME):
        unknown = [r for r in regions if r not in REGIONS]
        if unknown:
            raise KeyError(f"unknown region(s) {unknown}; expected some of {list(REGIONS)}")
        self.regions = tuple(regions)
        self.shape = tuple(int(n) for n in shape)
        self.affine = np.asarray(affine, dtype=np.float64)
        self.grid_name = grid_name
        self.n_cases = 0
        self.counts = {(r, kind): np.zeros(self.shape, dtype=np.uint16) for r in self.regions for kind in ("FN", "FP")}

    @property
    def nbytes(self) -> int:
        """Bytes held by the count maps (independent of the number of cases)."""
        return sum(a.nbytes for a in self.counts.values())

    def check_grid(self, shape: Sequence[int], affine: np.ndarray, source: str) -> None:
        """Raise :class:`~brats_lib.io.BratsInputError` naming ``source`` and both grids when a case is not on
        the common grid."""
        affine = np.asarray(affine, dtype=np.float64)
        if tuple(shape) != self.shape or not np.allclose(affine, self.affine, atol=AFFINE_TOLERANCE):
            raise BratsInputError(
                f"{source}: grid {describe_grid(shape, affine)} is not the common grid {self.grid_name} "
                f"[{describe_grid(self.shape, self.affine)}]; error frequency needs every case on the common "
                f"grid (register or resample it first; nothing is resampled here)")

    def add(self, pred: np.ndarray, gt: np.ndarray, affine: np.ndarray, source: str = "case") -> None:
        """Count one case's FN and FP voxels (2024-convention label maps on the grid ``affine``)."""
        if pred.shape != gt.shape:
            raise BratsInputError(f"{source}: prediction shape {pred.shape} differs from ground truth {gt.shape}")
        self.check_grid(gt.shape, affine, source)
        if self.n_cases >= np.iinfo(np.uint16).max:
            raise OverflowError(f"more than {np.iinfo(np.uint16).max} cases in one ErrorFrequency")
        box = bounding_box((pred != 0) | (gt != 0))
        self.n_cases += 1
        if box is None:
            return
        for region in self.regions:
            labels = list(REGIONS[region])
            p, g = np.isin(pred[box], labels), np.isin(gt[box], labels)
            self.counts[(region, "FN")][box] += g & ~p
            self.counts[(region, "FP")][box] += p & ~g

    def merge(self, other: "ErrorFrequency") -> None:
        """Add the counts of ``other`` (same regions and grid), e.g. accumulated in another process."""
        if other.regions != self.regions or other.shape != self.shape or not np.allclose(other.affine, self.affine):
            raise ValueError("ErrorFrequency.merge: regions or grids differ")
        if self.n_cases + other.n_cases > np.iinfo(np.uint16).max:
            raise OverflowError(f"more than {np.iinfo(np.uint16).max} cases in one ErrorFrequency")
        for key, counts in other.counts.items():
            self.counts[key] += counts
        self.n_cases += other.n_cases

    def add_pair(self, pair) -> None:
        """:meth:`add` a :class:`~brats_lib.analysis.pairs.Pair` (named by its prediction file)."""
        self.add(pair.pred, pair.gt, pair.affine, str(pair.pred_path or pair.case_id))

    def frequency(self, region: str, kind: str) -> np.ndarray:
        """(X, Y, Z) float32 share of the cases with a ``kind`` (``"FN"``/``"FP"``) error at each voxel."""
        counts = self.counts[(region, kind)]
        return counts.astype(np.float32) / max(self.n_cases, 1)

    def projection(self, region: str, kind: str, plane: str) -> np.ndarray:
        """Maximum over ``plane``'s axis of :meth:`frequency`: the highest error frequency along each ray."""
        return self.counts[(region, kind)].max(axis=PLANE_AXES[plane]).astype(np.float32) / max(self.n_cases, 1)


def mni_template() -> np.ndarray:
    """The MNI152 T1 template on the common grid (float32, 0 outside the brain), the backdrop of the
    error-frequency maps: the template the synthetic generator deforms (:mod:`brats_lib.synthetic.anatomy`)."""
    from ..synthetic.anatomy import load_anatomy

    return load_anatomy().t1


__all__ = ["ErrorFrequency", "FREQUENCY_REGIONS", "MNI_GRID_NAME", "PLANE_AXES", "anatomy_projection",
           "describe_grid", "error_projections", "mni_template"]
