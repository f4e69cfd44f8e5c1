"""Post-treatment glioma lesions: case variants, lesion plans and label painting.

A case is planned first (where the foci, cavities and oedema sit; how strongly they push the anatomy),
then the anatomy is deformed with that mass effect, then the labels are painted on the deformed anatomy:

* a tumour focus is an irregular blob (a random ellipsoid whose radius is modulated by smoothed noise);
  its inner part is NETC and an eroded-core test keeps NETC enclosed by an ET rim at least 2 voxels thick;
* a resection cavity (RC) is a smoother blob, usually towards the nearest cortex, with residual tumour on
  its deep wall and optionally a patchy enhancing rim;
* SNFH spreads from the lesion preferentially along white matter (reach scales with the local WM
  probability), spares CSF, and is painted below the core labels.

Every label is kept inside the brain mask. Painting works on lesion bounding boxes only.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np
from scipy import ndimage as ndi
from scipy.special import ndtri

from ..labels import ET, NETC, RC, SNFH
from .anatomy import GRID_SHAPE, Anatomy, WarpedAnatomy
from .fields import noise_field, random_rotation, random_unit_vector

#: Case variants, in the order they cycle through consecutive case indices. Any 3 consecutive cases
#: include one with all four labels; any 2 include one lacking a label.
VARIANTS: tuple[str, ...] = (
    "resected_residual",  # RC + residual ET/NETC + SNFH            (all four)
    "untreated",  # ET rim around NETC + SNFH                        (no RC)
    "resected_non_enhancing",  # RC + residual NETC + SNFH          (no ET)
    "multifocal",  # resected focus + 1–2 distant foci              (all four)
    "resected_rim_enhancing",  # RC + enhancing rim/nodule + SNFH   (no NETC)
    "satellites",  # resected focus + small enhancing satellites    (all four)
    "cavity_only",  # RC + SNFH                                     (no ET, no NETC)
    "non_enhancing",  # NETC + SNFH                                 (no ET, no RC)
)

#: Labels each variant is built to contain (others are absent by construction).
VARIANT_LABELS: dict[str, tuple[int, ...]] = {
    "resected_residual": (NETC, SNFH, ET, RC),
    "untreated": (NETC, SNFH, ET),
    "resected_non_enhancing": (NETC, SNFH, RC),
    "multifocal": (NETC, SNFH, ET, RC),
    "resected_rim_enhancing": (SNFH, ET, RC),
    "satellites": (NETC, SNFH, ET, RC),
    "cavity_only": (SNFH, RC),
    "non_enhancing": (NETC, SNFH),
}


def variant_for(seed: int, index: int, variants: Sequence[str] | None = None) -> str:
    """Variant of case ``index``: the :data:`VARIANTS` cycle (or the cycle of ``variants``, a subset of them in
    :data:`VARIANTS` order), started at a seed-dependent offset."""
    cycle = VARIANTS if variants is None else check_variants(variants)
    offset = int(np.random.default_rng([int(seed), 0x5EED]).integers(len(cycle)))
    return cycle[(int(index) + offset) % len(cycle)]


def check_variants(variants: Sequence[str]) -> tuple[str, ...]:
    """``variants`` as a tuple in :data:`VARIANTS` order; ValueError naming any unknown or an empty choice."""
    names = [str(v) for v in variants]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown or not names:
        raise ValueError(f"unknown variant(s) {unknown or names}; expected some of {', '.join(VARIANTS)}")
    return tuple(v for v in VARIANTS if v in names)


#: Largest oedema scale :func:`oedema_scale_for` accepts (a factor of 3 on the radius is already ~27x the volume).
MAX_OEDEMA_SCALE = 3.0


def check_oedema_scale(scale) -> tuple[float, float]:
    """``scale`` (one factor or a ``(low, high)`` range) as a ``(low, high)`` pair of floats with
    ``0 < low <= high <= MAX_OEDEMA_SCALE``; ValueError saying what is wrong otherwise."""
    values = [scale] if isinstance(scale, (int, float, np.floating, np.integer)) else list(scale)
    try:
        values = [float(v) for v in values]
    except (TypeError, ValueError):
        raise ValueError(f"expected one number or a low,high pair, got {scale!r}") from None
    if len(values) == 1:
        values *= 2
    if len(values) != 2 or not all(np.isfinite(values)) or not 0 < values[0] <= values[1] <= MAX_OEDEMA_SCALE:
        raise ValueError(f"expected 0 < low <= high <= {MAX_OEDEMA_SCALE:g}, got {scale!r}")
    return values[0], values[1]


def oedema_scale_for(seed: int, index: int, scale) -> float:
    """The factor on every oedema radius of case ``index``: uniform in the ``scale`` range
    (:func:`check_oedema_scale`), from its own stream ``default_rng([seed, index, 0xED])``: drawing it does not
    shift the case's stream, so the variant, foci, cavities and mass effect stay those of the default case (the
    draws after the oedema is painted differ, as their number depends on its size)."""
    low, high = check_oedema_scale(scale)
    if low == high:
        return low
    return float(np.random.default_rng([int(seed), int(index), 0xED]).uniform(low, high))


def scale_oedema(plan: "CasePlan", factor: float) -> "CasePlan":
    """``plan`` with every oedema radius times ``factor`` (the foci, cavities and mass effect unchanged)."""
    return replace(plan, edemas=[replace(e, radius=e.radius * float(factor)) for e in plan.edemas])


@dataclass
class Focus:
    """A solid tumour focus: core radius (mm); NETC inner radius as a fraction (0: all ET, 1: all NETC)."""

    centre: np.ndarray
    radius: float
    netc_fraction: float
    irregularity: float = 0.25


@dataclass
class Cavity:
    """A resection cavity; ``rim_fraction`` of its wall (``rim_thickness`` mm) enhances."""

    centre: np.ndarray
    radius: float
    rim_fraction: float = 0.0
    rim_thickness: float = 2.0


@dataclass
class Edema:
    """SNFH around a lesion: nominal radius (mm) in white matter, about half of it in grey matter."""

    centre: np.ndarray
    radius: float


@dataclass
class CasePlan:
    variant: str
    foci: list[Focus] = field(default_factory=list)
    cavities: list[Cavity] = field(default_factory=list)
    edemas: list[Edema] = field(default_factory=list)
    #: (centre, sigma mm, strength) of each mass effect, see :func:`anatomy.mass_effect`.
    pushes: list[tuple[np.ndarray, float, float]] = field(default_factory=list)
    n_satellites: int = 0


# ------------------------------------------------------------------------------------------------ planning


def _pick_seed(rng, anat: Anatomy, min_depth: float, avoid=(), min_distance: float = 0.0):
    """A deep-WM voxel at least ``min_depth`` mm from the surface and ``min_distance`` from ``avoid``."""
    ok = anat.seed_depth >= min_depth
    if not ok.any():
        ok = anat.seed_depth >= np.percentile(anat.seed_depth, 90)
    candidates = np.flatnonzero(ok)
    for _ in range(64):
        n = int(candidates[rng.integers(candidates.size)])
        centre = anat.seeds[n].astype(np.float64) + rng.uniform(-0.5, 0.5, 3)
        if all(np.linalg.norm(centre - a) >= min_distance for a in avoid):
            break
    return centre, anat.seed_outward[n].astype(np.float64)


def _inside(anat: Anatomy, point, min_wm: float = 0.0) -> bool:
    idx = np.round(point).astype(int)
    if np.any(idx < 0) or np.any(idx >= GRID_SHAPE):
        return False
    i, j, k = idx
    return bool(anat.mask[i, j, k]) and float(anat.wm[i, j, k]) >= min_wm


def _resected_site(rng, anat: Anatomy, plan: CasePlan, rim: tuple[float, float], residual, avoid=()):
    """Cavity at a deep WM seed, residual tumour on its deep wall, oedema around both."""
    r_rc = rng.uniform(11.0, 19.0)
    centre, outward = _pick_seed(rng, anat, 0.6 * r_rc + 6.0, avoid, 40.0)
    outward = outward + 0.35 * random_unit_vector(rng)
    outward /= np.linalg.norm(outward)
    cavity_centre = centre + outward * rng.uniform(0.0, 3.0)
    plan.cavities.append(Cavity(cavity_centre, r_rc, rng.uniform(*rim), rng.uniform(1.5, 3.0)))
    if residual is not None:
        r_core, netc_fraction = residual
        plan.foci.append(Focus(centre - outward * r_rc * rng.uniform(0.95, 1.15), r_core, netc_fraction,
                               rng.uniform(0.15, 0.3)))
    plan.edemas.append(Edema(centre - outward * r_rc * 0.3, r_rc * rng.uniform(1.3, 1.8) + 5.0))
    plan.pushes.append((cavity_centre, r_rc, rng.uniform(0.1, 0.25)))
    return centre


def _untreated_site(rng, anat: Anatomy, plan: CasePlan, radius, netc_fraction, avoid=()):
    r = rng.uniform(*radius)
    centre, _ = _pick_seed(rng, anat, r + 6.0, avoid, 40.0)
    plan.foci.append(Focus(centre, r, netc_fraction, rng.uniform(0.15, 0.3)))
    plan.edemas.append(Edema(centre + rng.normal(0, 2.0, 3), r * rng.uniform(1.4, 2.0) + 4.0))
    plan.pushes.append((centre, r + 3.0, rng.uniform(0.3, 0.55)))
    return centre


def _satellites(rng, anat: Anatomy, plan: CasePlan, centre, extent: float, count: int, netc: bool):
    for _ in range(count):
        for _try in range(20):
            r = rng.uniform(2.5, 5.0)
            point = centre + random_unit_vector(rng) * (extent + rng.uniform(5.0, 15.0))
            if _inside(anat, point, min_wm=0.3):
                break
        else:
            continue
        fraction = 1.0 if netc else (0.0 if r < 4.0 else 0.5)
        plan.foci.append(Focus(point, r, fraction, 0.2))
        plan.edemas.append(Edema(point, r * rng.uniform(2.0, 3.0)))
        plan.n_satellites += 1


def plan_case(rng: np.random.Generator, anat: Anatomy, variant: str) -> CasePlan:
    """Draw the lesions of one case of ``variant`` (see :data:`VARIANTS`)."""
    plan = CasePlan(variant)
    if variant == "untreated":
        c = _untreated_site(rng, anat, plan, (11.0, 17.0), rng.uniform(0.45, 0.7))
        if rng.random() < 0.3:
            _satellites(rng, anat, plan, c, plan.foci[0].radius, 1, netc=False)
    elif variant == "non_enhancing":
        c = _untreated_site(rng, anat, plan, (12.0, 19.0), 1.0)
        if rng.random() < 0.3:
            _satellites(rng, anat, plan, c, plan.foci[0].radius, 1, netc=True)
    elif variant == "resected_residual":
        _resected_site(rng, anat, plan, (0.3, 0.6), (rng.uniform(8.0, 12.0), rng.uniform(0.45, 0.65)))
    elif variant == "resected_non_enhancing":
        _resected_site(rng, anat, plan, (0.0, 0.0), (rng.uniform(7.0, 11.0), 1.0))
    elif variant == "resected_rim_enhancing":
        _resected_site(rng, anat, plan, (0.5, 0.8), (rng.uniform(5.0, 8.0), 0.0))
    elif variant == "cavity_only":
        _resected_site(rng, anat, plan, (0.0, 0.0), None)
    elif variant == "multifocal":
        first = _resected_site(rng, anat, plan, (0.2, 0.5), (rng.uniform(7.0, 11.0), rng.uniform(0.45, 0.65)))
        centres = [first]
        for _ in range(int(rng.integers(1, 3))):
            centres.append(_untreated_site(rng, anat, plan, (7.0, 12.0), rng.uniform(0.4, 0.65), centres))
    elif variant == "satellites":
        c = _resected_site(rng, anat, plan, (0.3, 0.6), (rng.uniform(8.0, 12.0), rng.uniform(0.45, 0.65)))
        _satellites(rng, anat, plan, c, plan.cavities[0].radius + 6.0, int(rng.integers(2, 5)), netc=False)
    else:
        raise ValueError(f"unknown variant {variant!r}; expected one of {VARIANTS}")
    return plan


# ------------------------------------------------------------------------------------------------ painting


def _box(centre, reach: float):
    lo = np.maximum(np.floor(np.asarray(centre) - reach).astype(int), 0)
    hi = np.minimum(np.ceil(np.asarray(centre) + reach).astype(int) + 1, GRID_SHAPE)
    if np.any(hi <= lo):
        return None, None
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi)), lo


def _ellipsoid_radius(rng, box, origin, centre, anisotropy: float) -> np.ndarray:
    """Distance (mm) from ``centre`` in a randomly rotated, volume-preserving ellipsoidal metric."""
    scales = np.exp(rng.uniform(-anisotropy, anisotropy, 3))
    scales /= np.prod(scales) ** (1.0 / 3.0)
    m = (random_rotation(rng).T / scales[:, None]).astype(np.float32)
    d = [np.arange(s.stop - s.start, dtype=np.float32) + np.float32(o - c) for s, o, c in zip(box, origin, centre)]
    d = (d[0][:, None, None], d[1][None, :, None], d[2][None, None, :])
    r2 = np.zeros(tuple(s.stop - s.start for s in box), np.float32)
    for row in m:
        r2 += (row[0] * d[0] + row[1] * d[1] + row[2] * d[2]) ** 2
    return np.sqrt(r2, out=r2)


def _irregular(rng, shape, radius: float, irregularity: float, sigma: float) -> np.ndarray:
    """Radius field ``radius * (1 + irregularity * noise)`` (kept above 0.3 radius)."""
    n = noise_field(rng, shape, max(sigma, 1.0))
    return (np.float32(radius) * np.maximum(1.0 + np.float32(irregularity) * n, 0.3)).astype(np.float32)


@dataclass
class _Layers:
    netc: np.ndarray
    et: np.ndarray
    snfh: np.ndarray
    rc: np.ndarray


def _paint_focus(rng, focus: Focus, warped: WarpedAnatomy, layers: _Layers) -> None:
    box, origin = _box(focus.centre, focus.radius * (1.0 + 3.0 * focus.irregularity) * 1.3 + 2.0)
    if box is None:
        return
    r = _ellipsoid_radius(rng, box, origin, focus.centre, 0.2)
    core = r < _irregular(rng, r.shape, focus.radius, focus.irregularity, focus.radius / 3.0)
    core &= warped.mask[box]
    if focus.netc_fraction >= 1.0:
        layers.netc[box] |= core
        return
    if focus.netc_fraction <= 0.0:
        layers.et[box] |= core
        return
    inner = r < _irregular(rng, r.shape, focus.radius * focus.netc_fraction, focus.irregularity, focus.radius / 4.0)
    netc = inner & ndi.binary_erosion(core, iterations=2)
    layers.netc[box] |= netc
    layers.et[box] |= core & ~netc


def _paint_cavity(rng, cavity: Cavity, warped: WarpedAnatomy, layers: _Layers) -> None:
    box, origin = _box(cavity.centre, cavity.radius * 1.6 + cavity.rim_thickness + 2.0)
    if box is None:
        return
    r = _ellipsoid_radius(rng, box, origin, cavity.centre, 0.25)
    phi = r / _irregular(rng, r.shape, cavity.radius, 0.12, cavity.radius / 2.5)
    mask = warped.mask[box]
    layers.rc[box] |= (phi < 1.0) & mask
    if cavity.rim_fraction > 0.0:
        patch = noise_field(rng, r.shape, 3.0) > np.float32(ndtri(1.0 - cavity.rim_fraction))
        rim = (phi >= 1.0) & (phi < 1.0 + cavity.rim_thickness / cavity.radius) & patch & mask
        layers.et[box] |= rim


def _paint_edema(rng, edema: Edema, warped: WarpedAnatomy, layers: _Layers) -> None:
    box, origin = _box(edema.centre, edema.radius * 1.2 * 1.9 + 2.0)
    if box is None:
        return
    r = _ellipsoid_radius(rng, box, origin, edema.centre, 0.25)
    reach = _irregular(rng, r.shape, edema.radius, 0.3, edema.radius / 4.0)
    wm = ndi.gaussian_filter(warped.wm[box], 1.5)
    reach *= 0.45 + 0.75 * wm
    layers.snfh[box] |= (r < reach) & warped.mask[box] & (warped.csf[box] < 0.5)


def paint_labels(rng: np.random.Generator, plan: CasePlan, warped: WarpedAnatomy) -> np.ndarray:
    """The (X, Y, Z) uint8 label map of ``plan`` on the deformed anatomy (2024 convention).

    Precedence, low to high: SNFH < ET < NETC < RC, so each voxel has one label; all labels lie in the mask.
    """
    layers = _Layers(*(np.zeros(GRID_SHAPE, bool) for _ in range(4)))
    for edema in plan.edemas:
        _paint_edema(rng, edema, warped, layers)
    for focus in plan.foci:
        _paint_focus(rng, focus, warped, layers)
    for cavity in plan.cavities:
        _paint_cavity(rng, cavity, warped, layers)
    seg = np.zeros(GRID_SHAPE, np.uint8)
    seg[layers.snfh] = SNFH
    seg[layers.et] = ET
    seg[layers.netc] = NETC
    seg[layers.rc] = RC
    seg[~warped.mask] = 0
    _drop_snfh_specks(seg)
    return seg


def _drop_snfh_specks(seg: np.ndarray, min_voxels: int = 200) -> None:
    """Remove SNFH islands smaller than ``min_voxels`` that touch no other label (in place)."""
    hit = np.argwhere(seg)
    if hit.size == 0:
        return
    box = tuple(slice(int(a), int(b) + 1) for a, b in zip(hit.min(0), hit.max(0)))
    sub = seg[box]
    components, n = ndi.label(sub == SNFH)
    if n == 0:
        return
    sizes = np.bincount(components.ravel(), minlength=n + 1)
    touching = np.zeros(n + 1, bool)
    touching[np.unique(components[ndi.binary_dilation((sub != 0) & (sub != SNFH))])] = True
    drop = ~touching & (sizes < min_voxels)
    drop[0] = False
    sub[drop[components]] = 0
