"""One synthetic case in memory, or a whole dataset written in the official BraTS 2024 layout."""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Sequence

import numpy as np

from .._atomic import write_text_atomic
from ..errors import BratsConfigError
from ..io import MODALITIES, case_file_name, save_label_map, save_nifti
from ..labels import LABEL_NAMES, LABELS_2024
from .anatomy import GRID_AFFINE, GRID_SHAPE, grid_geometry, load_anatomy, random_displacement, warp_anatomy
from .contrasts import render_contrasts
from .followup import change_plan, followup_changes, followup_rng
from .lesions import (check_oedema_scale, check_variants, oedema_scale_for, paint_labels, plan_case, scale_oedema,
                      variant_for)

#: Bump whenever the same (seed, index) would produce different bytes.
GENERATOR_VERSION = "1.1"
MANIFEST_NAME = "dataset.json"


def case_id_for(index: int, timepoint: int = 0) -> str:
    """``BraTS-GLI-<index:05d>-<timepoint:03d>`` (patient ``index``; timepoint 0 is the baseline)."""
    return f"BraTS-GLI-{int(index):05d}-{int(timepoint):03d}"


def label_volumes_ml(seg: np.ndarray) -> dict[str, float]:
    """Volume (mL, 1 mm³ voxels) of each non-background label, keyed by short name."""
    counts = np.bincount(seg.ravel(), minlength=max(LABELS_2024) + 1)
    return {LABEL_NAMES[label]: round(float(counts[label]) / 1000.0, 3) for label in LABELS_2024 if label}


def synthesise_case(seed: int, index: int, with_tissue: bool = False, timepoint: int = 0, randomise: bool = False,
                    variants: Sequence[str] | None = None, oedema_scale=None):
    """Generate one synthetic post-treatment glioma case in memory.

    Args:
        seed: dataset seed (non-negative int).
        index: case number; the case is drawn from ``numpy.random.default_rng([seed, index])``, so it does not
            depend on how many other cases are generated or in which order.
        with_tissue: also return ``meta["tissue"]``, the (X, Y, Z) uint8 dominant-tissue map of the deformed
            anatomy (0 background, 1 CSF, 2 GM, 3 WM).
        timepoint: 0 for the baseline; ``t`` ≥ 1 for the ``t``-th follow-up of patient ``index`` (see
            :mod:`brats_lib.synthetic.followup`: same anatomy, the lesion changed by
            ``followup_changes(seed, index)[t - 1]``).
        randomise: domain randomisation of the contrasts and nuisances (:mod:`.contrasts`): the same label
            map, a randomly drawn look (``meta["domain_randomised"]``).
        variants: draw the case's variant from these :data:`~brats_lib.synthetic.lesions.VARIANTS` only
            (e.g. ``("untreated", "non_enhancing")`` for pre-operative cases without a cavity).
        oedema_scale: None (the generator's oedema), one factor or a ``(low, high)`` range: every oedema
            radius of the case is multiplied by a factor drawn uniformly from it
            (:func:`~brats_lib.synthetic.lesions.oedema_scale_for`, ``meta["oedema_scale"]``), for training
            sets that must cover larger (or smaller) oedema extents than the default cases.
    Returns:
        image: (4, 182, 218, 182) float32 in :data:`brats_lib.io.MODALITIES` order, 0 outside the brain.
        seg: (182, 218, 182) uint8, 2024 labels (1 NETC, 2 SNFH, 3 ET, 4 RC).
        meta: JSON-ready description (case id, variant, label volumes in mL, nuisance parameters…).
    """
    seed, index, timepoint = int(seed), int(index), int(timepoint)
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be non-negative, got seed={seed}, index={index}")
    changes = followup_changes(seed, index)
    if not 0 <= timepoint <= len(changes):
        raise ValueError(f"patient {index} (seed {seed}) has timepoints 0..{len(changes)}, not {timepoint}")
    anat = load_anatomy()
    rng = np.random.default_rng([seed, index])
    variant = variant_for(seed, index, variants)
    plan = plan_case(rng, anat, variant)
    factor = None if oedema_scale is None else oedema_scale_for(seed, index, oedema_scale)
    if factor is not None:
        plan = scale_oedema(plan, factor)
    displacement = random_displacement(rng, anat, plan.pushes)
    warped = warp_anatomy(anat, displacement)
    del displacement
    for change in changes[:timepoint]:
        plan = change_plan(plan, change)
    seg = paint_labels(rng, plan, warped)
    image, params = render_contrasts(rng if timepoint == 0 else followup_rng(seed, index, timepoint), warped, seg,
                                     randomise=randomise)
    meta = {
        "case_id": case_id_for(index, timepoint),
        "seed": seed,
        "index": index,
        **({"timepoint": timepoint, "change": changes[timepoint - 1]} if timepoint else {}),
        "generator_version": GENERATOR_VERSION,
        "variant": variant,
        "domain_randomised": bool(randomise),
        **({"oedema_scale": round(factor, 6)} if factor is not None else {}),
        "volumes_ml": label_volumes_ml(seg),
        "brain_volume_ml": round(float(warped.mask.sum()) / 1000.0, 3),
        "n_foci": len(plan.foci) - plan.n_satellites,
        "n_satellites": plan.n_satellites,
        "n_cavities": len(plan.cavities),
        **params,
    }
    if with_tissue:
        meta["tissue"] = warped.tissue_map()
    return image, seg, meta


def _case_paths(out: Path, case_id: str) -> list[Path]:
    folder = out / case_id
    return [folder / case_file_name(case_id, tag) for tag in (*MODALITIES, "seg")]


def write_case(out: str | Path, seed: int, index: int, timepoint: int = 0, randomise: bool = False,
               variants: Sequence[str] | None = None, oedema_scale=None) -> dict:
    """Synthesise case ``index`` (at ``timepoint``; ``randomise``, ``variants`` and ``oedema_scale`` as in
    :func:`synthesise_case`) and write its five files atomically; returns its manifest entry."""
    out = Path(out)
    image, seg, meta = synthesise_case(seed, index, timepoint=timepoint, randomise=randomise, variants=variants,
                                       oedema_scale=oedema_scale)
    geometry = grid_geometry()
    *image_paths, seg_path = _case_paths(out, meta["case_id"])
    for channel, path in enumerate(image_paths):
        save_nifti(image[channel], geometry, path, dtype=np.float32)
    save_label_map(seg, geometry, seg_path)
    return meta


def _read_manifest(out: Path) -> dict:
    try:
        manifest = json.loads((out / MANIFEST_NAME).read_text(encoding="utf-8"))
        return {entry["case_id"]: entry for entry in manifest.get("cases", [])}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _write_manifest(out: Path, seed: int, entries: dict) -> None:
    manifest = {
        "name": "BraTS Lab synthetic post-treatment glioma dataset (BraTS 2024 GLI layout)",
        "generator": "brats_lib.synthetic",
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "grid": {"shape": list(GRID_SHAPE), "affine": GRID_AFFINE.tolist(), "orientation": "LAS",
                 "spacing_mm": [1.0, 1.0, 1.0]},
        "modalities": list(MODALITIES),
        "labels": {str(k): v for k, v in LABEL_NAMES.items()},
        "n_cases": len(entries),
        "cases": [entries[k] for k in sorted(entries)],
    }
    write_text_atomic(out / MANIFEST_NAME, json.dumps(manifest, indent=1) + "\n")


def _is_complete(out: Path, index: int, seed: int, entries: dict, timepoint: int = 0, randomise: bool = False,
                 variants: Sequence[str] | None = None, oedema_scale=None) -> bool:
    case_id = case_id_for(index, timepoint)
    entry = entries.get(case_id)
    return (entry is not None and entry.get("seed") == seed and entry.get("index") == index
            and entry.get("timepoint", 0) == timepoint
            and entry.get("generator_version") == GENERATOR_VERSION
            and entry.get("domain_randomised", False) == bool(randomise)
            and entry.get("variant") == variant_for(seed, index, variants)
            and entry.get("oedema_scale") == (None if oedema_scale is None
                                              else round(oedema_scale_for(seed, index, oedema_scale), 6))
            and all(p.is_file() for p in _case_paths(out, case_id)))


def generate_dataset(out: str | Path, n_cases: int, seed: int = 0, workers: int | None = None, start: int = 0,
                     overwrite: bool = False, progress: bool = True, followups: bool = False,
                     randomise: bool = False, variants: Sequence[str] | None = None,
                     oedema_scale=None) -> list[Path]:
    """Write ``n_cases`` synthetic cases ``BraTS-GLI-<start+i>-000`` under ``out``, plus ``dataset.json``;
    with ``followups``, also the follow-up timepoints ``BraTS-GLI-<start+i>-001…`` of the patients that have
    them (:func:`~brats_lib.synthetic.followup.followup_changes`: every sixth patient, index 3, 9, 15, …).

    Every file is written atomically, and the manifest is updated after each finished case, so an interrupted
    run leaves only complete cases behind. A case already listed in the manifest with the same seed and
    generator version and with all five files present is skipped unless ``overwrite``; the same (seed, index)
    always gives the same bytes.

    Args:
        out: dataset folder (created).
        n_cases: number of cases.
        seed: dataset seed.
        workers: parallel processes (default ``os.cpu_count()``); 1 runs in this process.
        start: first case number.
        overwrite: regenerate complete cases too.
        progress: show a tqdm progress bar.
        followups: also write the follow-up timepoints (``n_cases`` counts baselines, i.e. patients).
        randomise: domain-randomised contrasts and nuisances (:func:`synthesise_case`); a case written
            with the other setting is regenerated.
        variants: only these lesion variants (:func:`synthesise_case`).
        oedema_scale: a factor or ``(low, high)`` range on the oedema radii (:func:`synthesise_case`); a case
            written with another setting is regenerated.
    Returns:
        The case folders, in case-id order.
    """
    from ..progress import tqdm

    for name, value, least in (("n_cases", n_cases, 1), ("seed", seed, 0), ("start", start, 0)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < least:
            raise BratsConfigError(f"{name} must be an integer >= {least}, got {value!r}")
    if workers is not None and (not isinstance(workers, (int, np.integer)) or workers < 1):
        raise BratsConfigError(f"workers must be a positive integer, got {workers!r}")
    if variants is not None:
        try:
            variants = check_variants(variants)
        except ValueError as exc:
            raise BratsConfigError(f"variants: {exc}") from None
    if oedema_scale is not None:
        try:
            oedema_scale = check_oedema_scale(oedema_scale)
        except ValueError as exc:
            raise BratsConfigError(f"oedema_scale: {exc}") from None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(i, t) for i in range(int(start), int(start) + int(n_cases))
            for t in range(1 + (len(followup_changes(seed, i)) if followups else 0))]
    entries = _read_manifest(out)
    todo = [(i, t) for i, t in jobs if overwrite or not _is_complete(out, i, seed, entries, t, randomise, variants,
                                                                 oedema_scale)]
    if todo:
        workers = (os.cpu_count() or 1) if workers is None else int(workers)
        workers = max(1, min(workers, len(todo)))
        load_anatomy()  # build or read the cached template once, before any worker starts

        def record(entry: dict) -> None:
            entries[entry["case_id"]] = entry
            _write_manifest(out, seed, entries)

        if workers == 1:
            with tqdm(total=len(todo), desc="synthesising", unit="case", disable=not progress) as bar:
                for index, timepoint in todo:
                    record(write_case(out, seed, index, timepoint, randomise, variants, oedema_scale))
                    bar.update()
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = [pool.submit(write_case, out, seed, index, timepoint, randomise, variants, oedema_scale)
                           for index, timepoint in todo]
                with tqdm(total=len(todo), desc="synthesising", unit="case", disable=not progress) as bar:
                    for future in as_completed(futures):
                        record(future.result())
                        bar.update()
    elif not (out / MANIFEST_NAME).is_file():
        _write_manifest(out, seed, entries)
    return [out / case_id_for(i, t) for i, t in jobs]
