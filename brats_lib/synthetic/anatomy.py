"""Healthy anatomy on the BraTS 2023+/2024 grid: MNI152 template, tissue maps, random deformation.

The MNI152 (ICBM 2009a) 1 mm T1 template and GM/WM probability maps ship inside the ``nilearn`` wheel, so
nothing is downloaded. They are resampled once (by world coordinates) from their 197×233×189 grid to the
182×218×182 BraTS grid, kept in memory (``lru_cache``) and in an ``.npz`` under the cache folder
(``$BRATS_LAB_CACHE``, default ``~/.cache/brats_lab``), so each case only pays for its own deformation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

from .._atomic import atomic_path
from ..io import Geometry
from .fields import cosine_field

#: Voxel grid of the BraTS 2023+/2024 releases (MNI152 1 mm, FSL layout).
GRID_SHAPE: tuple[int, int, int] = (182, 218, 182)
#: Voxel → world (mm) matrix of that grid: LAS, origin (90, -126, -72).
GRID_AFFINE = np.array(
    [[-1.0, 0.0, 0.0, 90.0], [0.0, 1.0, 0.0, -126.0], [0.0, 0.0, 1.0, -72.0], [0.0, 0.0, 0.0, 1.0]]
)

#: Bump when the cached arrays change.
ANATOMY_VERSION = 1
#: Voxels added around the template brain's bounding box; deformations are clipped below it.
BBOX_MARGIN = 14
MAX_DISPLACEMENT = 12.0


@dataclass(frozen=True)
class Anatomy:
    """Template anatomy on :data:`GRID_SHAPE` (float32 maps in [0, 1]).

    Attributes:
        t1: template T1 intensity (0 outside the brain).
        gm, wm, csf: tissue probability maps; ``csf = mask - gm - wm`` (ventricles, sulci, cisterns).
        mask: brain mask (template > 0).
        bbox: slices of the brain's bounding box plus :data:`BBOX_MARGIN`.
        seeds: (N, 3) int16 voxel indices of deep supratentorial white matter where tumours may start.
        seed_depth: (N,) distance (mm) of each seed to the brain surface.
        seed_outward: (N, 3) unit vectors from each seed towards the nearest brain surface.
    """

    t1: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    mask: np.ndarray
    bbox: tuple[slice, slice, slice]
    seeds: np.ndarray
    seed_depth: np.ndarray
    seed_outward: np.ndarray


@dataclass
class WarpedAnatomy:
    """One subject's anatomy after deformation: full-grid float32 maps and a boolean brain mask."""

    t1: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    mask: np.ndarray

    def tissue_map(self) -> np.ndarray:
        """uint8 map of the most probable tissue: 0 background, 1 CSF, 2 GM, 3 WM."""
        stack = np.stack([self.csf, self.gm, self.wm])
        tissue = (np.argmax(stack, axis=0) + 1).astype(np.uint8)
        tissue[~self.mask] = 0
        return tissue


def grid_geometry() -> Geometry:
    """:class:`brats_lib.io.Geometry` of the BraTS 2024 grid (qform and sform code 1, mm units)."""
    header = nib.Nifti1Header()
    header.set_data_shape(GRID_SHAPE)
    header.set_data_dtype(np.float32)
    header.set_qform(GRID_AFFINE, code=1)
    header.set_sform(GRID_AFFINE, code=1)
    header.set_xyzt_units("mm", "sec")
    return Geometry(GRID_AFFINE.copy(), header, GRID_SHAPE)


def cache_dir() -> Path:
    """Folder of cached derived data (``$BRATS_LAB_CACHE`` or ``~/.cache/brats_lab``)."""
    env = os.environ.get("BRATS_LAB_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "brats_lab"


def resample_to_grid(img: nib.spatialimages.SpatialImage, order: int = 1) -> np.ndarray:
    """Resample ``img`` onto :data:`GRID_SHAPE` / :data:`GRID_AFFINE` through world coordinates, float32.

    Voxels outside ``img`` become 0. For the nilearn MNI152 templates the voxel-to-voxel map is a flip plus
    an integer shift, so linear interpolation reproduces the template values exactly.
    """
    data = np.asarray(img.get_fdata(dtype=np.float32), dtype=np.float32)
    vox2vox = np.linalg.inv(img.affine) @ GRID_AFFINE
    return ndi.affine_transform(data, vox2vox[:3, :3], offset=vox2vox[:3, 3], output_shape=GRID_SHAPE,
                                order=order, mode="constant", cval=0.0, output=np.float32)


def _bbox(mask: np.ndarray, margin: int) -> tuple[slice, slice, slice]:
    idx = np.argwhere(mask)
    lo = np.maximum(idx.min(0) - margin, 0)
    hi = np.minimum(idx.max(0) + 1 + margin, mask.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def _seeds(wm: np.ndarray, mask: np.ndarray):
    """Deep supratentorial white-matter voxels (every 2nd voxel), their depth and outward direction."""
    depth = ndi.distance_transform_edt(mask).astype(np.float32)
    ijk = np.indices(GRID_SHAPE, dtype=np.int16)[:, ::2, ::2, ::2].reshape(3, -1).T
    ok = (wm[::2, ::2, ::2] > 0.95).ravel() & (depth[::2, ::2, ::2] >= 12).ravel()
    ijk = ijk[ok]
    world = ijk.astype(np.float64) @ GRID_AFFINE[:3, :3].T + GRID_AFFINE[:3, 3]
    x, y, z = world.T
    # gliomas are mostly supratentorial: leave out cerebellum and brainstem
    supratentorial = (z > -20) & ~((y < -35) & (z < 5)) & ~((np.abs(x) < 15) & (z < 5))
    ijk = ijk[supratentorial]
    i, j, k = ijk.T.astype(np.intp)
    grad = np.stack([
        depth[np.minimum(i + 2, GRID_SHAPE[0] - 1), j, k] - depth[np.maximum(i - 2, 0), j, k],
        depth[i, np.minimum(j + 2, GRID_SHAPE[1] - 1), k] - depth[i, np.maximum(j - 2, 0), k],
        depth[i, j, np.minimum(k + 2, GRID_SHAPE[2] - 1)] - depth[i, j, np.maximum(k - 2, 0)],
    ], axis=1).astype(np.float64)
    outward = -grad / np.maximum(np.linalg.norm(grad, axis=1, keepdims=True), 1e-6)
    return ijk.astype(np.int16), depth[i, j, k].astype(np.float32), outward.astype(np.float32)


def build_anatomy() -> Anatomy:
    """Resample the nilearn MNI152 templates to the BraTS grid (about 3 s; see :func:`load_anatomy`)."""
    from nilearn import datasets  # heavy import, only when the cache is cold

    t1 = resample_to_grid(datasets.load_mni152_template(resolution=1))
    gm = resample_to_grid(datasets.load_mni152_gm_template(resolution=1))
    wm = resample_to_grid(datasets.load_mni152_wm_template(resolution=1))
    mask = t1 > 0
    gm = np.where(mask, np.clip(gm, 0, 1), 0).astype(np.float32)
    wm = np.where(mask, np.clip(wm, 0, 1), 0).astype(np.float32)
    total = gm + wm
    over = total > 1
    gm[over] /= total[over]
    wm[over] /= total[over]
    csf = np.where(mask, 1.0 - gm - wm, 0).clip(0, 1).astype(np.float32)
    seeds, depth, outward = _seeds(wm, mask)
    return Anatomy(t1, gm, wm, csf, mask, _bbox(mask, BBOX_MARGIN), seeds, depth, outward)


def _cache_file() -> Path:
    from importlib.metadata import version  # not ``import nilearn``: that alone takes about 2 s

    return cache_dir() / f"mni152_brats_grid_v{ANATOMY_VERSION}_nilearn{version('nilearn')}.npz"


def _to_npz(anat: Anatomy, path: Path) -> None:
    bbox = np.array([[s.start, s.stop] for s in anat.bbox], dtype=np.int64)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, t1=anat.t1, gm=anat.gm, wm=anat.wm, csf=anat.csf, mask=anat.mask,
                                bbox=bbox, seeds=anat.seeds, seed_depth=anat.seed_depth,
                                seed_outward=anat.seed_outward)


def _from_npz(path: Path) -> Anatomy:
    with np.load(path) as z:
        bbox = tuple(slice(int(a), int(b)) for a, b in z["bbox"])
        anat = Anatomy(z["t1"], z["gm"], z["wm"], z["csf"], z["mask"], bbox, z["seeds"], z["seed_depth"],
                       z["seed_outward"])
    if anat.t1.shape != GRID_SHAPE or anat.t1.dtype != np.float32 or anat.mask.dtype != bool:
        raise ValueError(f"{path}: unexpected cached arrays")
    return anat


@lru_cache(maxsize=1)
def load_anatomy() -> Anatomy:
    """The template anatomy on the BraTS grid, from memory, the ``.npz`` cache, or built (and cached).

    The cached arrays are bit-identical to freshly built ones, so outputs never depend on the cache state.
    An unwritable or corrupt cache is ignored.
    """
    try:
        path = _cache_file()
    except Exception:  # nilearn not installed: let build_anatomy raise the useful error
        return build_anatomy()
    if path.is_file():
        try:
            return _from_npz(path)
        except Exception:
            pass
    anat = build_anatomy()
    try:
        _to_npz(anat, path)
    except OSError:
        pass
    return anat


# ------------------------------------------------------------------------------------------- deformation


def mass_effect(displacement: np.ndarray, origin, centre, sigma: float, strength: float) -> None:
    """Add a radial push away from ``centre`` to ``displacement`` (3, bx, by, bz), in place.

    ``u(y) = strength * (y - c) * exp(-|y - c|^2 / (2 sigma^2))``: zero at the centre, largest
    (``strength * sigma * 0.61`` mm) at ``sigma`` from it, and a one-to-one map for ``strength < 1``. The
    image samples the template at ``y - u(y)``, so tissue is pushed outwards (ventricles compressed and shifted).
    """
    shape = displacement.shape[1:]
    reach = 3.5 * sigma
    lo = [max(int(np.floor(c - reach)) - o, 0) for c, o in zip(centre, origin)]
    hi = [min(int(np.ceil(c + reach)) + 1 - o, n) for c, o, n in zip(centre, origin, shape)]
    if any(h <= l for l, h in zip(lo, hi)):
        return
    d = [(np.arange(l, h, dtype=np.float32) + o - c) for l, h, o, c in zip(lo, hi, origin, centre)]
    r2 = d[0][:, None, None] ** 2 + d[1][None, :, None] ** 2 + d[2][None, None, :] ** 2
    w = strength * np.exp(-r2 / np.float32(2.0 * sigma**2))
    box = tuple(slice(l, h) for l, h in zip(lo, hi))
    displacement[(0,) + box] += w * d[0][:, None, None]
    displacement[(1,) + box] += w * d[1][None, :, None]
    displacement[(2,) + box] += w * d[2][None, None, :]


def random_displacement(rng: np.random.Generator, anat: Anatomy, pushes=()) -> np.ndarray:
    """Smooth per-subject displacement (mm) over ``anat.bbox``: (3, bx, by, bz) float32.

    Sum of a low-frequency random field (2–3 mm rms per axis), an anisotropic global scaling (±4 %) about the
    brain centre, and the mass effect of each ``(centre, sigma, strength)`` in ``pushes``; clipped to
    :data:`MAX_DISPLACEMENT`.
    """
    origin = [s.start for s in anat.bbox]
    shape = tuple(s.stop - s.start for s in anat.bbox)
    amplitude = rng.uniform(1.5, 3.0)
    u = np.stack([amplitude * cosine_field(rng, shape, n_freq=3) for _ in range(3)])
    scale = rng.uniform(0.96, 1.04, size=3)
    centre = [(s.start + s.stop - 1) / 2.0 for s in anat.bbox]
    for axis in range(3):
        coord = np.arange(shape[axis], dtype=np.float32) + origin[axis] - centre[axis]
        view = [None, None, None]
        view[axis] = slice(None)
        u[axis] += np.float32(scale[axis] - 1.0) * coord[tuple(view)]
    for c, sigma, strength in pushes:
        mass_effect(u, origin, c, sigma, strength)
    np.clip(u, -MAX_DISPLACEMENT, MAX_DISPLACEMENT, out=u)
    return u


def warp_anatomy(anat: Anatomy, displacement: np.ndarray) -> WarpedAnatomy:
    """Resample the template maps at ``y - u(y)`` inside ``anat.bbox`` (linear), zero elsewhere.

    The brain mask is warped over the whole box first; the other maps only where it is non-zero.
    """
    origin = [s.start for s in anat.bbox]
    shape = displacement.shape[1:]
    coords = np.empty((3,) + shape, dtype=np.float32)
    for axis in range(3):
        view = [None, None, None]
        view[axis] = slice(None)
        base = np.arange(shape[axis], dtype=np.float32) + origin[axis]
        np.subtract(base[tuple(view)], displacement[axis], out=coords[axis])
    brain_box = ndi.map_coordinates(anat.mask.astype(np.float32), coords, order=1, mode="constant", cval=0.0,
                                    prefilter=False, output=np.float32)
    inside = brain_box >= 0.5
    points = coords[:, inside]
    del coords
    maps = []
    for source in (anat.t1, anat.gm, anat.wm):
        full = np.zeros(GRID_SHAPE, dtype=np.float32)
        view = full[anat.bbox]
        view[inside] = ndi.map_coordinates(source, points, order=1, mode="constant", cval=0.0,
                                           prefilter=False, output=np.float32)
        maps.append(full)
    t1, gm, wm = maps
    mask = np.zeros(GRID_SHAPE, dtype=bool)
    mask[anat.bbox] = inside
    brain = np.zeros(GRID_SHAPE, dtype=np.float32)
    brain[anat.bbox] = np.where(inside, brain_box, 0.0)
    csf = np.clip(brain - gm - wm, 0.0, 1.0)
    return WarpedAnatomy(t1, gm, wm, csf, mask)
