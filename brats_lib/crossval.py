"""Patient-level cross-validation of a training recipe, scored by the official lesion-wise metric.

Every labelled case with images is put in exactly one of ``k`` folds; all cases of a patient go to the same
fold (the patient id of :func:`brats_lib.data.patient_of`: the BraTS 2023+ GLI release kept the BraTS 2021
numbers, so ``BraTS-GLI-00002-000`` and ``BraTS2021_00002`` are one patient, ``00002``). Fold ``i`` trains on
the other folds within the same time budget, predicts its validation cases on their original grids (raw,
without post-processing: ``fold<i>/raw/<case>.nii.gz``) and scores them with
:func:`brats_lib.metrics.lesion_wise_results` (bit-identical to the official BraTS 2024 scorer): lesion-wise
Dice beside the whole-region ("legacy") Dice, per region.

Aggregation (:func:`aggregate`): a patient's cases are averaged first (a patient in both releases counts
once), then patients are averaged per fold and over all folds; every mean states its ``n_patients`` and
``n_cases``.

Post-processing is measured without peeking (:func:`crossfit_postprocessing`): each fold's predictions are
post-processed with settings tuned on the *other* folds' validation predictions (models that never saw
those patients either), so the tuned rules are scored on patients they were not tuned on.

Layout of a cross-validation directory::

    folds.json                 the folds (case ids, patients), k, seed
    fold<i>/run/               the fold's run directory (config.json, last.pt, …, postprocess.json)
    fold<i>/raw/<case>.nii.gz  raw predictions of the fold's validation cases
    scores.csv                 one row per case × region × post-processing variant
    summary.csv                per-fold and overall means (with n) per variant and region
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import nibabel as nib
import numpy as np
import pandas as pd

from ._atomic import write_text_atomic
from .data import patient_of, save_splits
from .io import Case, discover_cases, load_case, load_case_label, load_label, save_label_map
from .labels import REGION_ORDER

FOLDS_FILE = "folds.json"
SCORES_FILE = "scores.csv"
SUMMARY_FILE = "summary.csv"

#: Per-region columns of :func:`brats_lib.metrics.lesion_wise_results` kept in the score table.
SCORE_COLUMNS: Mapping[str, str] = {
    "LesionWise_Score_Dice": "lesionwise_dice",
    "Legacy_Dice": "legacy_dice",
    "LesionWise_Score_HD95": "lesionwise_hd95",
    "Num_FP": "num_fp",
    "Num_FN": "num_fn",
}

#: Metrics averaged by :func:`aggregate`.
MEAN_METRICS: tuple[str, ...] = tuple(SCORE_COLUMNS.values())


# ---------------------------------------------------------------------------------------------- folds


def patient_groups(cases: Iterable[Case | str]) -> dict[str, list[str]]:
    """Patient id → its sorted case ids (cases given as :class:`~brats_lib.io.Case` or case ids)."""
    groups: dict[str, list[str]] = {}
    for case in cases:
        case_id = case.case_id if isinstance(case, Case) else str(case)
        groups.setdefault(patient_of(case), []).append(case_id)
    return {p: sorted(ids) for p, ids in sorted(groups.items())}


def make_folds(cases: Iterable[Case | str], k: int, seed: int = 0) -> list[dict[str, list[str]]]:
    """Split cases into ``k`` patient-disjoint folds.

    Patients are sorted, shuffled with ``seed`` and dealt round-robin (patient ``j`` of the shuffled order
    goes to fold ``j mod k``), so fold sizes differ by at most one patient and the result does not depend
    on the input order.

    Args:
        cases: :class:`~brats_lib.io.Case` objects or case ids.
        k: number of folds, 2 ≤ k ≤ number of patients.
        seed: shuffle seed.
    Returns:
        one dict per fold: ``{"train": [case ids], "val": [case ids], "test": [], "patients": [ids]}``,
        sorted; ``val`` of the folds partition the cases, ``train`` is every other case.
    """
    groups = patient_groups(cases)
    patients = list(groups)
    if not 2 <= k <= len(patients):
        raise ValueError(f"k must be between 2 and the number of patients ({len(patients)}), got {k}")
    rng = np.random.default_rng(seed)
    order = [patients[i] for i in rng.permutation(len(patients))]
    held = [sorted(order[i::k]) for i in range(k)]
    all_ids = sorted(cid for ids in groups.values() for cid in ids)
    folds = []
    for pats in held:
        val = sorted(cid for p in pats for cid in groups[p])
        folds.append({"train": [c for c in all_ids if c not in set(val)], "val": val, "test": [],
                      "patients": pats})
    return folds


def save_folds(folds: Sequence[Mapping[str, Sequence[str]]], path: str | Path, **info: Any) -> Path:
    """Write the folds (and JSON-ready ``info``) to ``path`` atomically."""
    payload = {"k": len(folds), "folds": [{key: list(v) for key, v in f.items()} for f in folds], **info}
    write_text_atomic(path, json.dumps(payload, indent=1) + "\n")
    return Path(path)


def load_folds(path: str | Path) -> list[dict[str, list[str]]]:
    """The folds written by :func:`save_folds`."""
    return json.loads(Path(path).read_text(encoding="utf-8"))["folds"]


# ---------------------------------------------------------------------------------------------- scores


def score_prediction(pred: np.ndarray, gt: np.ndarray, spacing) -> dict[str, dict[str, float]]:
    """Region → {lesionwise_dice, legacy_dice, lesionwise_hd95, num_fp, num_fn} of one case (official
    lesion-wise scorer, 2024 convention, the case's original grid)."""
    from .metrics import lesion_wise_results

    results, _ = lesion_wise_results(pred, gt, spacing)
    results = results.set_index("Labels")
    return {region: {name: float(results.loc[region, column]) for column, name in SCORE_COLUMNS.items()}
            for region in REGION_ORDER}


def score_rows(pred: np.ndarray, gt: np.ndarray, spacing, **keys: Any) -> list[dict[str, Any]]:
    """:func:`score_prediction` as tidy rows (one per region), each carrying ``keys`` (fold, case, …)."""
    return [{**keys, "region": region, **values} for region, values in score_prediction(pred, gt, spacing).items()]


def aggregate(scores: pd.DataFrame, metrics: Sequence[str] = MEAN_METRICS) -> pd.DataFrame:
    """Per-fold and overall means of a score table, a patient counting once.

    Args:
        scores: one row per case × region (× ``variant``), with columns ``fold``, ``patient``, ``case``,
            ``region`` and the ``metrics``; an optional ``variant`` column (post-processing) is kept apart.
    Returns:
        one row per (variant,) fold × region plus ``fold == "all"`` rows (every patient once), with the
        metric means, ``n_patients`` and ``n_cases``; the ``all`` rows also carry ``<metric>_fold_sd``,
        the standard deviation of the per-fold means (ddof 1; NaN with one fold).
    """
    keys = ["variant"] if "variant" in scores.columns else []
    metrics = [m for m in metrics if m in scores.columns]
    per_patient = (scores.groupby(keys + ["fold", "patient", "region"], sort=False)
                   .agg(**{m: (m, "mean") for m in metrics}, n_cases=("case", "nunique")).reset_index())
    per_fold = (per_patient.groupby(keys + ["fold", "region"], sort=False)
                .agg(**{m: (m, "mean") for m in metrics}, n_patients=("patient", "nunique"),
                     n_cases=("n_cases", "sum")).reset_index())
    overall = (per_patient.groupby(keys + ["region"], sort=False)
               .agg(**{m: (m, "mean") for m in metrics}, n_patients=("patient", "nunique"),
                    n_cases=("n_cases", "sum")).reset_index())
    spread = per_fold.groupby(keys + ["region"], sort=False)[metrics].std(ddof=1)
    spread.columns = [f"{m}_fold_sd" for m in metrics]
    overall = overall.merge(spread.reset_index(), on=keys + ["region"], how="left")
    overall.insert(len(keys), "fold", "all")
    per_fold["fold"] = per_fold["fold"].astype(str)
    table = pd.concat([per_fold, overall], ignore_index=True)
    region_rank = {r: i for i, r in enumerate(REGION_ORDER)}
    table["_fold_rank"] = table["fold"].map(lambda f: 10**6 if f == "all" else int(f))
    table["_region_rank"] = table["region"].map(region_rank)
    table = table.sort_values(keys + ["_fold_rank", "_region_rank"], kind="stable")
    return table.drop(columns=["_fold_rank", "_region_rank"]).reset_index(drop=True)


# ---------------------------------------------------------------------------------------------- post-processing


def crossfit_postprocessing(predictions: Mapping[str, np.ndarray], truths: Mapping[str, np.ndarray],
                            spacings: Mapping[str, Sequence[float]], fold_of: Mapping[str, int],
                            tune: Callable[[list, list, list], Any], apply: Callable[[np.ndarray, Any, Any], np.ndarray]
                            ) -> tuple[dict[str, np.ndarray], dict[int, Any]]:
    """Post-process each fold's predictions with settings tuned on the other folds' predictions.

    Args:
        predictions, truths, spacings: case id → raw prediction, ground truth, voxel size (mm).
        fold_of: case id → fold index.
        tune: ``tune(predictions, truths, spacings)`` (lists) → settings.
        apply: ``apply(prediction, settings, spacing)`` → post-processed prediction.
    Returns:
        (case id → post-processed prediction, fold → the settings applied to it).
    """
    folds = sorted(set(fold_of[c] for c in predictions))
    if len(folds) < 2:
        raise ValueError("cross-fitting needs predictions from at least two folds")
    out, settings = {}, {}
    for fold in folds:
        others = [c for c in predictions if fold_of[c] != fold]
        settings[fold] = tune([predictions[c] for c in others], [truths[c] for c in others],
                              [tuple(spacings[c]) for c in others])
        for case in (c for c in predictions if fold_of[c] == fold):
            out[case] = apply(predictions[case], settings[fold], tuple(spacings[case]))
    return out, settings


# ---------------------------------------------------------------------------------------------- running


def labelled_cases(data_dir: str | Path) -> list[Case]:
    """Cases with images and a label under ``data_dir`` (label-only cases cannot be trained or predicted)."""
    return [c for c in discover_cases(data_dir, require_images=False) if c.has_images and c.has_label]


def raw_prediction_path(cv_dir: str | Path, fold: int, case_id: str) -> Path:
    return Path(cv_dir) / f"fold{fold}" / "raw" / f"{case_id}.nii.gz"


def run_dir_of(cv_dir: str | Path, fold: int) -> Path:
    return Path(cv_dir) / f"fold{fold}" / "run"


def run_folds(data_dir: str | Path, cv_dir: str | Path, k: int, config: Mapping[str, Any], seed: int = 0,
              tta: bool = False, checkpoint: str = "last.pt", device: str = "cpu",
              log: Callable[[str], None] = print) -> list[dict[str, list[str]]]:
    """Train one run per fold and write the raw predictions of its validation cases.

    Args:
        data_dir: dataset folder (any layout :func:`brats_lib.io.discover_cases` reads).
        cv_dir: the cross-validation directory (module docstring); a fold whose raw predictions all exist
            is skipped, so an interrupted cross-validation continues where it stopped.
        k: number of folds.
        config: :class:`brats_lib.train.TrainConfig` fields shared by the folds (``time_limit_minutes`` is
            the per-fold budget); ``data_dir``, ``run_dir`` and ``splits_file`` are set per fold.
        seed: fold assignment seed.
        tta, checkpoint, device: prediction settings (:func:`brats_lib.inference.predict_case`).
        log: where progress lines go.
    Returns:
        the folds (:func:`make_folds`), also written to ``cv_dir/folds.json``.
    """
    from .inference import predict_case
    from .train import TrainConfig, train

    cv_dir = Path(cv_dir)
    cases = {c.case_id: c for c in labelled_cases(data_dir)}
    folds = make_folds(list(cases.values()), k, seed)
    folds_path = cv_dir / FOLDS_FILE
    if folds_path.exists() and load_folds(folds_path) != folds:
        raise ValueError(f"{folds_path}: holds other folds than k={k}, seed={seed} over {data_dir} make; "
                         "use a new cross-validation directory")
    save_folds(folds, folds_path, seed=seed, data_dir=str(data_dir), config=dict(config))
    for i, fold in enumerate(folds):
        if all(raw_prediction_path(cv_dir, i, c).exists() for c in fold["val"]):
            log(f"fold {i}: raw predictions exist, skipped")
            continue
        run_dir = run_dir_of(cv_dir, i)
        splits_file = cv_dir / f"fold{i}" / "splits.json"
        save_splits(fold, splits_file, fold=i, k=k, seed=seed)
        fold_config = TrainConfig.from_dict({**config, "data_dir": str(data_dir), "run_dir": str(run_dir),
                                             "splits_file": str(splits_file)})
        log(f"fold {i}: training on {len(fold['train'])} cases, validating on {', '.join(fold['val'])}")
        start = time.perf_counter()
        history = train(fold_config)
        iterations = len(history) * fold_config.iterations_per_epoch
        log(f"fold {i}: {len(history)} epochs ({iterations} iterations) in "
            f"{(time.perf_counter() - start) / 60:.1f} min")
        meta = {"epochs": len(history), "iterations": iterations,
                "train_minutes": (time.perf_counter() - start) / 60}
        write_text_atomic(cv_dir / f"fold{i}" / "train_summary.json", json.dumps(meta, indent=1))
        for case_id in fold["val"]:
            loaded = load_case(dataclasses.replace(cases[case_id], seg_path=None))
            pred = predict_case(run_dir, loaded, device=device, tta=tta, postprocess=False,
                                checkpoint=checkpoint)
            save_label_map(pred, loaded.geometry, raw_prediction_path(cv_dir, i, case_id))
    return folds


def load_fold_predictions(cv_dir: str | Path, data_dir: str | Path) -> tuple[dict, dict, dict, dict, dict]:
    """Raw predictions, ground truths, spacings, fold and patient of every validation case of a
    cross-validation directory, each a case id → value dict."""
    cv_dir = Path(cv_dir)
    folds = load_folds(cv_dir / FOLDS_FILE)
    cases = {c.case_id: c for c in labelled_cases(data_dir)}
    preds, truths, spacings, fold_of, patient = {}, {}, {}, {}, {}
    for i, fold in enumerate(folds):
        for case_id in fold["val"]:
            path = raw_prediction_path(cv_dir, i, case_id)
            if not path.exists():
                raise FileNotFoundError(f"{path}: raw prediction missing (run the folds first)")
            preds[case_id] = load_label(path)
            truths[case_id] = load_case_label(cases[case_id])
            spacings[case_id] = tuple(float(s) for s in nib.load(path).header.get_zooms()[:3])
            fold_of[case_id] = i
            patient[case_id] = patient_of(cases[case_id])
    return preds, truths, spacings, fold_of, patient


def score_variants(variants: Mapping[str, Mapping[str, np.ndarray]], truths: Mapping[str, np.ndarray],
                   spacings: Mapping[str, Sequence[float]], fold_of: Mapping[str, int],
                   patient: Mapping[str, str]) -> pd.DataFrame:
    """Score every variant's predictions (variant → case id → label map) → tidy table with columns
    ``variant, fold, patient, case, region`` and :data:`MEAN_METRICS`."""
    rows = []
    for name, preds in variants.items():
        for case_id, pred in preds.items():
            rows += score_rows(pred, truths[case_id], spacings[case_id], variant=name, fold=fold_of[case_id],
                               patient=patient[case_id], case=case_id)
    return pd.DataFrame(rows)


def write_table(table: pd.DataFrame, path: str | Path) -> Path:
    """Write a table as CSV atomically."""
    write_text_atomic(path, table.to_csv(index=False))
    return Path(path)
