"""Follow-up timepoints of a synthetic patient: same anatomy, the lesion grows, shrinks or is resected.

A BraTS 2024 case id carries a patient and a timepoint (``BraTS-GLI-PPPPP-TTT``). Timepoint ``000`` of patient
``index`` is the baseline case of :func:`brats_lib.synthetic.synthesise_case`; a follow-up (timepoint ≥ 1)
replays the baseline's random stream up to the deformation (the same lesion plan and the same mass effect,
hence the same deformed anatomy and brain mask), then changes the plan before painting:

* ``grow``: tumour foci ×1.35 in radius, oedema ×1.25;
* ``shrink``: tumour foci ×0.6, oedema ×0.75 (response to treatment);
* ``resect``: every tumour focus becomes a resection cavity of 1.15× its radius with a thin patchy enhancing
  rim, oedema ×0.8 (a focus-free plan only loses some oedema).

Which patients have follow-ups is fixed (:func:`followup_changes`): every sixth patient (index 3, 9, 15, 21, …)
gets one, cycling through the three changes. The follow-up's image noise is drawn from its own stream, so it
is a new scan of the same brain.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .lesions import Cavity, CasePlan, Edema, Focus

#: The changes between consecutive timepoints, in the order they cycle through patients.
CHANGES: tuple[str, ...] = ("grow", "shrink", "resect")

_FOCUS_SCALE = {"grow": 1.35, "shrink": 0.6}
_EDEMA_SCALE = {"grow": 1.25, "shrink": 0.75, "resect": 0.8}


def followup_changes(seed: int, index: int) -> tuple[str, ...]:
    """The change leading to each follow-up of patient ``index`` (empty: no follow-up).

    Patients with ``index % 6 == 3`` have one follow-up (timepoint ``001``); its change is
    ``CHANGES[(index // 6) % 3]`` (patient 3 grows, 9 shrinks, 15 is resected, 21 grows…). ``seed`` is accepted
    for symmetry with :func:`~brats_lib.synthetic.variant_for`; the rule does not depend on it.
    """
    del seed
    index = int(index)
    return (CHANGES[(index // 6) % len(CHANGES)],) if index % 6 == 3 else ()


def change_plan(plan: CasePlan, change: str) -> CasePlan:
    """A copy of ``plan`` after ``change`` (one of :data:`CHANGES`); mass effects (``pushes``) are kept, so
    the deformed anatomy stays that of the baseline."""
    if change not in CHANGES:
        raise ValueError(f"unknown change {change!r}; expected one of {CHANGES}")
    edemas = [Edema(e.centre.copy(), e.radius * _EDEMA_SCALE[change]) for e in plan.edemas]
    if change == "resect":
        cavities = list(plan.cavities) + [Cavity(f.centre.copy(), f.radius * 1.15, 0.3, 1.5) for f in plan.foci]
        foci: list[Focus] = []
    else:
        cavities = list(plan.cavities)
        foci = [dataclasses.replace(f, centre=f.centre.copy(), radius=f.radius * _FOCUS_SCALE[change])
                for f in plan.foci]
    return CasePlan(plan.variant, foci, cavities, edemas, list(plan.pushes),
                    plan.n_satellites if change != "resect" else 0)


def followup_rng(seed: int, index: int, timepoint: int) -> np.random.Generator:
    """The image-noise stream of a follow-up scan (independent of the baseline's)."""
    return np.random.default_rng([int(seed), int(index), 0xF011, int(timepoint)])


__all__ = ["CHANGES", "change_plan", "followup_changes", "followup_rng"]
