"""Tuning of the post-processing on validation cases with the lesion-wise BraTS metric.

Data flow: ``metrics`` scores label maps; this module uses those scores to choose the per-region
small-component thresholds of :func:`brats_lib.inference.postprocess.remove_small_components`, and
stores them as ``postprocess.json`` in a run directory, which :mod:`brats_lib.inference.predict` applies.

The search is coordinate-wise: regions are tuned one after the other (in
:data:`~brats_lib.inference.postprocess.REGION_PROCESSING_ORDER`), each with the thresholds already chosen
in force, keeping the candidate with the highest mean lesion-wise Dice (over the cases and the scored
regions — all six by default, since removing a WT component also changes TC, ET…). Ties go to the
smallest threshold (the least intervention). A post-processed map identical to one already scored is not
scored again.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ._atomic import write_text_atomic
from .inference.postprocess import (POSTPROCESS_FILE, REGION_PROCESSING_ORDER, RULE_DEFAULTS, RULES_KEY,
                                    THRESHOLDS_KEY, check_rules, check_thresholds, postprocess_label,
                                    remove_small_components)
from .io import load_label
from .labels import REGION_ORDER

#: Default search grid (voxels on the original 1 mm grid).
DEFAULT_CANDIDATES: Mapping[str, Sequence[int]] = {
    "WT": (0, 25, 50, 100), "TC": (0, 25, 50, 100), "ET": (0, 25, 50, 100), "RC": (0, 25, 50, 100),
}

#: Default search grid of the rules of :func:`brats_lib.inference.postprocess.apply_rules`, each tried in
#: this order after the thresholds; the first value of each is its "off" value.
DEFAULT_RULE_CANDIDATES: Mapping[str, Sequence] = {
    "wt_min_fraction": (0.0, 0.05, 0.1, 0.25, 0.5, 1.0),
    "wt_max_gap_mm": (None, 40.0, 20.0, 10.0),
    "core_in_main_wt": (False, True),
    "et_min_total_voxels": (0, 100, 300),
}

#: The per-region column of :func:`brats_lib.metrics.lesion_wise_results` that is maximised.
SCORE_COLUMN = "LesionWise_Score_Dice"

ArrayOrPath = np.ndarray | str | Path


def _as_label(item: ArrayOrPath) -> np.ndarray:
    """A (X, Y, Z) uint8 label map from an array or a NIfTI file (2024 convention)."""
    if isinstance(item, (str, Path)):
        return load_label(item)
    return np.asarray(item, dtype=np.uint8)


def _spacings(spacing, n: int) -> list[tuple[float, float, float]]:
    """One (sx, sy, sz) mm triple per case from a single triple or a sequence of them."""
    arr = np.asarray(spacing, dtype=np.float64)
    if arr.shape == (3,):
        return [tuple(arr.tolist())] * n
    if arr.shape == (n, 3):
        return [tuple(row) for row in arr.tolist()]
    raise ValueError(f"spacing must be one (sx, sy, sz) triple or one per case ({n}), got shape {arr.shape}")


def _checked_candidates(predictions: Sequence, ground_truths: Sequence,
                        candidates: Mapping[str, Sequence[int]] | None) -> dict[str, Sequence[int]]:
    """The threshold candidates (default :data:`DEFAULT_CANDIDATES`), checked, after checking that there are
    as many ground truths as predictions (at least one)."""
    if len(predictions) != len(ground_truths) or not predictions:
        raise ValueError(f"need as many ground truths as predictions (≥ 1), got {len(predictions)} and "
                         f"{len(ground_truths)}")
    candidates = dict(DEFAULT_CANDIDATES if candidates is None else candidates)
    for region, values in candidates.items():
        check_thresholds({region: v for v in values})
    return candidates


def _paired_labels(predictions: Sequence[ArrayOrPath], ground_truths: Sequence[ArrayOrPath]
                   ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The label maps of each (prediction, ground truth) pair, which must have the same shape."""
    preds = [_as_label(p) for p in predictions]
    gts = [_as_label(g) for g in ground_truths]
    for i, (p, g) in enumerate(zip(preds, gts)):
        if p.shape != g.shape:
            raise ValueError(f"case {i}: prediction shape {p.shape} differs from ground truth {g.shape}")
    return preds, gts


def region_scores(pred: np.ndarray, gt: np.ndarray, spacing) -> dict[str, float]:
    """Region → lesion-wise Dice of one (X, Y, Z) prediction against its ground truth (BraTS 2024 GLI): the
    official ``LesionWise_Score_Dice``, computed without the distances the search does not use."""
    from .metrics import lesion_wise_dice

    return lesion_wise_dice(pred, gt, spacing)


def tune_postprocessing(predictions: Sequence[ArrayOrPath], ground_truths: Sequence[ArrayOrPath],
                        spacing=(1.0, 1.0, 1.0), candidates: Mapping[str, Sequence[int]] | None = None,
                        score_regions: Sequence[str] = REGION_ORDER, progress: bool = False,
                        return_table: bool = False, workers: int = 1):
    """Choose per-region minimum component sizes that maximise the mean lesion-wise Dice.

    Args:
        predictions: raw (not post-processed) predictions of the validation cases, each a (X, Y, Z) uint8
            map in the 2024 convention on the original grid, or the path of one.
        ground_truths: the matching ground truths (same shapes), arrays or paths.
        spacing: voxel size in mm, one (sx, sy, sz) for all cases or one per case.
        candidates: region (``WT``, ``RC``, ``TC``, ``NETC``, ``ET``, ``SNFH``) → thresholds to try, in
            voxels; 0 means no removal and is always tried. Default :data:`DEFAULT_CANDIDATES`.
        score_regions: regions whose lesion-wise Dice is averaged into the objective.
        progress: show a tqdm bar over the scoring calls.
        return_table: also return the table of every tried candidate.
        workers: processes that score the (case, candidate) maps of one region at once; the result does
            not depend on it.
    Returns:
        ``{region: threshold}`` for every tuned region; with ``return_table`` a tuple of it and a DataFrame
        with columns ``region``, ``threshold``, ``score`` (mean lesion-wise Dice) and ``chosen``.
    """
    from .progress import tqdm

    candidates = _checked_candidates(predictions, ground_truths, candidates)
    preds, gts = _paired_labels(predictions, ground_truths)
    spacings = _spacings(spacing, len(preds))
    cache: dict[tuple[int, bytes], float] = {}
    order = [r for r in REGION_PROCESSING_ORDER if r in candidates]
    total = sum(len(set(candidates[r]) | {0}) for r in order) * len(preds)
    bar = tqdm(total=total, desc="tune post-processing", unit="case", disable=not progress)
    pool = _scoring_pool(workers, gts, spacings, tuple(score_regions))

    def mean_scores(settings: Sequence[dict[str, int]]) -> list[float]:
        """The mean score of each threshold setting; the maps not scored yet are scored together."""
        keys, todo = [], {}
        for thresholds in settings:
            row = []
            for i, pred in enumerate(preds):
                processed = remove_small_components(pred, thresholds) if thresholds else pred
                key = (i, hashlib.blake2b(processed.tobytes(), digest_size=16).digest())
                if key not in cache and key not in todo:
                    todo[key] = processed
                row.append(key)
            keys.append(row)
        jobs = [(i, processed) for (i, _), processed in todo.items()]
        scored = pool.map(_score_job, jobs) if pool is not None else map(_score_job, jobs)
        for key, value in zip(todo, scored):
            cache[key] = value
        bar.update(len(settings) * len(preds))
        return [float(np.mean([cache[key] for key in row])) for row in keys]

    chosen: dict[str, int] = {}
    rows = []
    try:
        for region in order:
            values = sorted(set(int(t) for t in candidates[region]) | {0})
            tried = list(zip(values, mean_scores([{**chosen, region: t} for t in values])))
            best = max(tried, key=lambda ts: (ts[1], -ts[0]))[0]
            chosen[region] = best
            rows += [{"region": region, "threshold": t, "score": s, "chosen": t == best} for t, s in tried]
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown()
    if return_table:
        return chosen, pd.DataFrame(rows, columns=["region", "threshold", "score", "chosen"])
    return chosen


# the ground truths, spacings and scored regions of the tuning in progress, per scoring process
_SCORING: dict = {}


def _set_scoring(gts, spacings, regions) -> None:
    _SCORING.update(gts=gts, spacings=spacings, regions=regions)


def _score_job(job: tuple[int, np.ndarray]) -> float:
    """Mean lesion-wise Dice over the scored regions of one post-processed map of case ``i``."""
    i, processed = job
    scores = region_scores(processed, _SCORING["gts"][i], _SCORING["spacings"][i])
    return float(np.mean([scores[r] for r in _SCORING["regions"]]))


def _scoring_pool(workers: int, gts, spacings, regions):
    """A process pool holding the ground truths (``None`` for one worker: score in this process)."""
    _set_scoring(gts, spacings, regions)
    if int(workers) <= 1:
        return None
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(max_workers=int(workers), initializer=_set_scoring, initargs=(gts, spacings, regions))


def _digest(array: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(array).tobytes(), digest_size=16).digest()


def tune_postprocess(predictions: Sequence[ArrayOrPath], ground_truths: Sequence[ArrayOrPath],
                     spacing=(1.0, 1.0, 1.0), rules: bool = True,
                     candidates: Mapping[str, Sequence[int]] | None = None,
                     rule_candidates: Mapping[str, Sequence] | None = None,
                     score_regions: Sequence[str] = REGION_ORDER, cache: dict | None = None,
                     return_table: bool = False):
    """Tune the size thresholds and (with ``rules``) the component rules by the mean lesion-wise Dice.

    A coordinate-wise search like :func:`tune_postprocessing`: the thresholds region by region, then each rule
    in the order of ``rule_candidates`` with every earlier choice in force, keeping the candidate with the
    highest mean lesion-wise Dice over cases and ``score_regions``; ties go to the candidate listed first among
    the rules (their "off" value comes first) and to the smallest threshold.

    Args:
        predictions, ground_truths, spacing, candidates, score_regions: as :func:`tune_postprocessing`.
        rules: also tune the rules (``False``: thresholds only, the rules stay off).
        rule_candidates: rule → values to try (default :data:`DEFAULT_RULE_CANDIDATES`).
        cache: a dict shared between calls (e.g. across cross-validation folds) that memoises the score of a
            (ground truth, post-processed map) pair; scoring is the expensive part.
        return_table: also return the table of every tried candidate.
    Returns:
        the post-processing record ``{"min_component_voxels": {...}, "rules": {...}}`` (what
        :func:`brats_lib.inference.postprocess.postprocess_label` applies and :func:`save_postprocessing`
        stores); with ``return_table`` a tuple of it and a DataFrame with columns ``step`` (region or rule),
        ``value``, ``score`` and ``chosen``.
    """
    candidates = _checked_candidates(predictions, ground_truths, candidates)
    rule_candidates = dict(DEFAULT_RULE_CANDIDATES if rule_candidates is None else rule_candidates) if rules else {}
    for name, values in rule_candidates.items():
        for v in values:
            check_rules({name: v})
    preds, gts = _paired_labels(predictions, ground_truths)
    spacings = _spacings(spacing, len(preds))
    gt_keys = [_digest(g) + repr(sp).encode() for g, sp in zip(gts, spacings)]
    cache = {} if cache is None else cache
    regions = tuple(score_regions)

    def mean_score(spec: dict) -> float:
        values = []
        for pred, gt, sp, gt_key in zip(preds, gts, spacings, gt_keys):
            processed = postprocess_label(pred, spec, sp)
            key = (gt_key, _digest(processed), regions)
            if key not in cache:
                scores = region_scores(processed, gt, sp)
                cache[key] = float(np.mean([scores[r] for r in regions]))
            values.append(cache[key])
        return float(np.mean(values))

    thresholds: dict[str, int] = {}
    chosen_rules: dict = {}
    rows = []
    steps = [("threshold", r, sorted(set(int(t) for t in candidates[r]) | {0}))
             for r in REGION_PROCESSING_ORDER if r in candidates]
    steps += [("rule", name, list(dict.fromkeys([RULE_DEFAULTS[name], *values])))
              for name, values in rule_candidates.items()]
    for kind, name, values in steps:
        tried = []
        for value in values:
            if kind == "threshold":
                spec = {THRESHOLDS_KEY: {**thresholds, name: value}, RULES_KEY: chosen_rules}
            else:
                spec = {THRESHOLDS_KEY: thresholds, RULES_KEY: {**chosen_rules, name: value}}
            tried.append((value, mean_score(spec)))
        best_score = max(score for _, score in tried)
        best = next(v for v, score in tried if score == best_score)  # first listed: off / smallest
        if kind == "threshold":
            thresholds[name] = best
        else:
            chosen_rules[name] = best
        rows += [{"step": name, "value": v, "score": sc, "chosen": v == best} for v, sc in tried]
    record = {THRESHOLDS_KEY: thresholds, RULES_KEY: check_rules(chosen_rules)}
    if return_table:
        return record, pd.DataFrame(rows, columns=["step", "value", "score", "chosen"])
    return record


def save_postprocessing(run_dir: str | Path, thresholds: Mapping[str, int], table: pd.DataFrame | None = None,
                        rules: Mapping | None = None) -> Path:
    """Write ``run_dir/postprocess.json`` atomically; :func:`brats_lib.inference.predict_case` applies it.

    Args:
        run_dir: the run directory (created if missing).
        thresholds: region → minimum component voxels (e.g. from :func:`tune_postprocessing`).
        table: optional tuning table, stored alongside for the record.
        rules: optional component rules (:func:`brats_lib.inference.postprocess.apply_rules`, e.g. the
            ``"rules"`` of :func:`tune_postprocess`), applied after the thresholds.
    Returns:
        the written path.
    """
    record = {
        THRESHOLDS_KEY: check_thresholds(thresholds),
        "connectivity": 26,
        "rule": "components with fewer voxels are removed (WT, RC → 0) or relabelled to the enclosing "
                "tumour label (TC, NETC, ET, SNFH); see brats_lib.inference.postprocess",
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if rules is not None:
        record[RULES_KEY] = check_rules(rules)
        record["rule"] += "; then the component rules (brats_lib.inference.postprocess.apply_rules)"
    if table is not None:
        record["tuning"] = table.to_dict(orient="records")
    path = Path(run_dir) / POSTPROCESS_FILE
    write_text_atomic(path, json.dumps(record, indent=1))
    return path
