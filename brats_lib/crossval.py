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
    fold<i>/extra.json         with per-fold extra training cases: their folder and case ids
    scores.csv                 one row per case × region × post-processing variant
    summary.csv                per-fold and overall means (with n) per variant and region
    postprocess_crossfit.json  variant → fold → the post-processing applied to that fold (tuned on the others)
    oof/<variant>/<case>.nii.gz  the scored out-of-fold maps of one variant (:func:`write_out_of_fold`)

:func:`read_results` reads a finished directory back and :func:`compare_arms` compares cross-validations of
the same folds (a training change against the baseline, patient by patient).
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
from .io import (Case, discover_cases, geometry_of, load_case, load_case_label, load_label, read_nifti,
                 save_label_map)
from .labels import REGION_ORDER, to_2024

FOLDS_FILE = "folds.json"
#: Per fold, with extra training cases made for that fold: ``{"extra_train": folder, "extra_cases": ids}``.
EXTRA_FILE = "extra.json"
#: ``extra_train`` of ``folds.json`` when every fold has its own extra cases (``fold<i>/extra.json``).
PER_FOLD = "per fold"
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
              log: Callable[[str], None] = print,
              extra_train: str | Path | Callable[[int, Mapping[str, Any]], str | Path] | None = None
              ) -> list[dict[str, list[str]]]:
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
        extra_train: a dataset folder whose labelled cases (synthetic ones, for instance) join every fold's
            training set and never a validation set; they are not scored. The folds train from
            ``cv_dir/train_data/``, two symbolic links (``real`` → ``data_dir``, ``extra`` → this folder):
            nothing is copied. Or a function ``(fold index, fold) → folder`` for extra cases made per fold
            from that fold's training cases only (tumours inserted by a GAN trained on them, for instance):
            called only for a fold that still has to train, each fold trains from ``cv_dir/fold<i>/train_data/``
            and ``fold<i>/extra.json`` records the folder and its case ids.
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
    per_fold = callable(extra_train)
    extra_ids, train_dir = ([], Path(data_dir)) if per_fold else training_folder(data_dir, cases, extra_train,
                                                                                  cv_dir / "train_data")
    stored = json.loads(folds_path.read_text(encoding="utf-8")) if folds_path.exists() else None
    if stored is not None and (stored.get("extra_train") == PER_FOLD) != per_fold:
        raise ValueError(f"{folds_path}: its folds trained " + ("with" if per_fold else "without")
                         + " per-fold extra cases; use a new cross-validation directory")
    if stored is not None and stored.get("extra_cases", []) != extra_ids:
        raise ValueError(f"{folds_path}: its folds trained with {len(stored.get('extra_cases', []))} extra "
                         f"case(s), not these {len(extra_ids)}; use a new cross-validation directory")
    info = ({"extra_train": PER_FOLD} if per_fold else
            {"extra_train": str(extra_train), "extra_cases": extra_ids} if extra_ids else {})
    save_folds(folds, folds_path, seed=seed, data_dir=str(data_dir), config=dict(config), **info)
    for i, fold in enumerate(folds):
        if all(raw_prediction_path(cv_dir, i, c).exists() for c in fold["val"]):
            log(f"fold {i}: raw predictions exist, skipped")
            continue
        extra_dir = extra_train
        if per_fold:
            extra_dir = Path(extra_train(i, fold))
            extra_ids, train_dir = training_folder(data_dir, cases, extra_dir, cv_dir / f"fold{i}" / "train_data")
            write_text_atomic(cv_dir / f"fold{i}" / EXTRA_FILE,
                              json.dumps({"extra_train": str(extra_dir), "extra_cases": extra_ids}, indent=1))
        run_dir = run_dir_of(cv_dir, i)
        splits_file = cv_dir / f"fold{i}" / "splits.json"
        save_splits({**fold, "train": fold["train"] + extra_ids}, splits_file, fold=i, k=k, seed=seed)
        fold_config = TrainConfig.from_dict({**config, "data_dir": str(train_dir), "run_dir": str(run_dir),
                                             "splits_file": str(splits_file)})
        log(f"fold {i}: training on {len(fold['train'])} cases"
            + (f" + {len(extra_ids)} from {extra_dir}" if extra_ids else "")
            + f", validating on {', '.join(fold['val'])}")
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


#: What :func:`train_final` writes into its run directory beside the training run's files.
FINAL_FILE = "final.json"
#: Recipe fields that may differ between a cross-validation and the final run it tunes post-processing for.
_RUN_FIELDS = ("data_dir", "run_dir", "splits_file", "cache_dir", "device", "workers", "time_limit_minutes")


def train_final(data_dir: str | Path, run_dir: str | Path, config: Mapping[str, Any],
                extra_train: str | Path | None = None, postprocess_from: str | Path | None = None,
                log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train the recipe a cross-validation measured on **every** labelled case of ``data_dir`` (the deliverable
    run), so that ``brats predict --run run_dir`` applies it to any real folder.

    There is no validation patient left, so the run's ``best.pt`` is made its ``last.pt`` after training (the
    checkpoint :func:`run_folds` predicts and scores with): ``brats predict``, which reads ``best.pt``, then uses
    the weights the cross-validation measured. The trainer's validation patches come from a training case and only
    monitor the run.

    Args:
        data_dir: the real dataset folder.
        run_dir: the run directory (created; an unfinished run resumes from its ``last.pt``).
        config: :class:`brats_lib.train.TrainConfig` fields (the recipe), as in :func:`run_folds`.
        extra_train: a dataset folder whose labelled cases join the training set (linked from
            ``run_dir/train_data/``, never copied), as in :func:`run_folds`.
        postprocess_from: a finished cross-validation directory of the same recipe: post-processing (size
            thresholds and component rules) is tuned on all of its out-of-fold raw predictions and saved as
            ``run_dir/postprocess.json``. A cross-validation whose recipe differs is used, with a logged note
            naming the fields that differ.
        log: where progress lines go.
    Returns:
        the record also written to ``run_dir/final.json``: the training cases, the extra cases, epochs,
        iterations, minutes and the post-processing source.
    """
    from ._atomic import atomic_path
    from .train import TrainConfig, train

    run_dir = Path(run_dir)
    cases = [c.case_id for c in labelled_cases(data_dir)]
    if not cases:
        raise ValueError(f"{data_dir}: no labelled case with images to train on")
    if postprocess_from is not None:  # checked before anything is written or trained
        if not (Path(postprocess_from) / FOLDS_FILE).is_file():
            raise ValueError(f"{postprocess_from}: not a cross-validation directory (no {FOLDS_FILE})")
        missing = [raw_prediction_path(postprocess_from, i, c)
                   for i, fold in enumerate(load_folds(Path(postprocess_from) / FOLDS_FILE)) for c in fold["val"]
                   if not raw_prediction_path(postprocess_from, i, c).exists()]
        if missing:
            raise ValueError(f"{postprocess_from}: unfinished cross-validation ({missing[0]} missing)")
    extra_ids, train_dir = training_folder(data_dir, cases, extra_train, run_dir / "train_data")
    splits_file = run_dir / "splits.json"
    save_splits({"train": cases + extra_ids, "val": [], "test": []}, splits_file,
                note="final run: every labelled case trains; no validation patient")
    run_config = TrainConfig.from_dict({**config, "data_dir": str(train_dir), "run_dir": str(run_dir),
                                        "splits_file": str(splits_file)})
    log(f"final run: training on {len(cases)} cases" + (f" + {len(extra_ids)} from {extra_train}" if extra_ids
                                                          else "") + f" into {run_dir}")
    start = time.perf_counter()
    history = train(run_config)
    minutes = (time.perf_counter() - start) / 60
    with atomic_path(run_dir / "best.pt") as tmp:  # no validation patient: the final weights are the run's
        tmp.write_bytes((run_dir / "last.pt").read_bytes())
    record: dict[str, Any] = {"cases": cases, "extra_train": None if extra_train is None else str(extra_train),
                              "extra_cases": extra_ids, "epochs": len(history),
                              "iterations": len(history) * run_config.iterations_per_epoch,
                              "train_minutes": minutes, "best_pt": "a copy of last.pt (no validation patient)",
                              "postprocess_from": None}
    log(f"final run: {record['epochs']} epochs ({record['iterations']} iterations) in {minutes:.1f} min")
    if postprocess_from is not None:
        record["postprocess_from"] = str(postprocess_from)
        record["postprocessing"] = tune_from_crossval(postprocess_from, data_dir, run_dir, log=log)
        measured = json.loads((Path(postprocess_from) / FOLDS_FILE).read_text(encoding="utf-8"))
        differ = sorted(key for key in set(measured.get("config", {})) | set(config) if key not in _RUN_FIELDS
                        and measured.get("config", {}).get(key) != dict(config).get(key))
        if len(measured.get("extra_cases", [])) != len(extra_ids):
            differ.append("extra training cases")
        record["recipe_differs_from_crossval"] = differ
        if differ:
            log(f"note: {postprocess_from} measured another recipe ({', '.join(differ)} differ); its tuned "
                "post-processing is applied all the same")
    write_text_atomic(run_dir / FINAL_FILE, json.dumps(record, indent=1))
    return record


def tune_from_crossval(cv_dir: str | Path, data_dir: str | Path, run_dir: str | Path,
                       log: Callable[[str], None] = print) -> dict[str, Any]:
    """Tune the post-processing (size thresholds + component rules) on every out-of-fold raw prediction of the
    finished cross-validation ``cv_dir`` and save it as ``run_dir/postprocess.json``, which
    ``brats predict --run run_dir`` applies; returns the tuned record."""
    from .postprocess_tuning import save_postprocessing, tune_postprocess

    preds, truths, spacings, _, _ = load_fold_predictions(cv_dir, data_dir)
    ids = sorted(preds)
    record, table = tune_postprocess([preds[c] for c in ids], [truths[c] for c in ids],
                                     [spacings[c] for c in ids], return_table=True)
    path = save_postprocessing(run_dir, record["min_component_voxels"], table, rules=record["rules"])
    log(f"{path}: tuned on the {len(ids)} out-of-fold predictions of {cv_dir}: {record}")
    return record


def training_folder(data_dir: str | Path, case_ids: Iterable[str], extra_train: str | Path | None,
                    link_folder: str | Path) -> tuple[list[str], Path]:
    """(the extra case ids, the folder to train from): ``data_dir`` itself without ``extra_train``; with it,
    ``link_folder`` linking both (:func:`linked_dataset`). ValueError when ``extra_train`` has no labelled case
    or a case id of ``data_dir``."""
    if extra_train is None:
        return [], Path(data_dir)
    extra_ids = [c.case_id for c in labelled_cases(extra_train)]
    clash = sorted(set(extra_ids) & set(case_ids))
    if not extra_ids or clash:
        raise ValueError(f"{extra_train}: " + (f"case ids also in {data_dir}: {', '.join(clash[:3])}" if clash
                                               else "no labelled cases to add to the training sets"))
    return extra_ids, linked_dataset(link_folder, {"real": data_dir, "extra": extra_train})


def linked_dataset(folder: str | Path, sources: Mapping[str, str | Path]) -> Path:
    """A dataset folder of datasets: ``folder`` holding one symbolic link per source dataset (name → folder), which
    :func:`brats_lib.io.discover_cases` follows; an existing link must point where it is asked to."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, target in sources.items():
        link, target = folder / name, Path(target).resolve()
        if link.is_symlink() and link.resolve() != target:
            raise ValueError(f"{link}: links to {link.resolve()}, not {target}; use a new folder")
        if not link.is_symlink():
            link.symlink_to(target, target_is_directory=True)
    return folder


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


# ---------------------------------------------------------------------------------------------- scoring

CROSSFIT_FILE = "postprocess_crossfit.json"
OUT_OF_FOLD_DIR = "oof"
#: Post-processing variants :func:`score_folds` knows: name → whether the rules beyond the size thresholds are
#: tuned (``none``: the raw predictions).
VARIANTS: Mapping[str, bool | None] = {"none": None, "size": False, "rules": True}


def score_folds(cv_dir: str | Path, data_dir: str | Path, variants: Sequence[str] = tuple(VARIANTS),
                log: Callable[[str], None] = print) -> pd.DataFrame:
    """Score the raw out-of-fold predictions of ``cv_dir`` with each post-processing variant, the tuned ones
    cross-fitted (:func:`crossfit_postprocessing` with :func:`brats_lib.postprocess_tuning.tune_postprocess`);
    write ``scores.csv``, ``summary.csv`` and ``postprocess_crossfit.json``, and save each fold's ``rules``
    settings as its run's ``postprocess.json`` (what its predictions were scored with). Returns the summary.

    Raises:
        ValueError: an unknown variant (before any work).
    """
    from .inference import postprocess_label
    from .postprocess_tuning import save_postprocessing, tune_postprocess

    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown post-processing variant(s) {unknown}; expected some of {list(VARIANTS)}")
    cv_dir = Path(cv_dir)
    preds, truths, spacings, fold_of, patient = load_fold_predictions(cv_dir, data_dir)
    maps, settings = {}, {}
    cache: dict = {}  # lesion-wise scores of (truth, post-processed map) pairs, shared by folds and variants
    for name in variants:
        if VARIANTS[name] is None:
            maps[name] = preds
            continue
        start = time.perf_counter()
        maps[name], chosen = crossfit_postprocessing(
            preds, truths, spacings, fold_of,
            tune=lambda p, g, s, rules=VARIANTS[name]: tune_postprocess(p, g, s, rules=rules, cache=cache),
            apply=postprocess_label)
        settings[name] = {str(f): v for f, v in chosen.items()}
        log(f"{name}: tuned cross-fitted in {(time.perf_counter() - start) / 60:.1f} min: {settings[name]}")
    scores = score_variants(maps, truths, spacings, fold_of, patient)
    summary = aggregate(scores)
    write_table(scores, cv_dir / SCORES_FILE)
    write_table(summary, cv_dir / SUMMARY_FILE)
    write_text_atomic(cv_dir / CROSSFIT_FILE, json.dumps(settings, indent=1))
    for fold, spec in settings.get("rules", {}).items():
        save_postprocessing(run_dir_of(cv_dir, int(fold)), spec["min_component_voxels"], rules=spec["rules"])
    return summary


# ---------------------------------------------------------------------------------------------- reading results


@dataclasses.dataclass
class CrossValResults:
    """A finished cross-validation directory, read back (:func:`read_results`)."""

    cv_dir: Path
    folds: list[dict[str, list[str]]]
    scores: pd.DataFrame  # one row per variant × case × region (:func:`score_variants`)
    summary: pd.DataFrame  # :func:`aggregate` of ``scores``
    training: pd.DataFrame  # one row per fold: fold, epochs, iterations, train_minutes, n_train, n_extra, n_val
    crossfit: dict[str, dict[str, Any]]  # variant → fold (str) → post-processing applied to that fold
    extra_cases: list[str]  # cases added to every fold's training set (e.g. synthetic), never scored; per-fold
    # extra cases (made from each fold's own training cases) are counted in training.n_extra instead

    @property
    def variants(self) -> list[str]:
        return list(dict.fromkeys(self.scores["variant"]))


def read_results(cv_dir: str | Path) -> CrossValResults:
    """Read a cross-validation directory whose folds are trained and scored (``benchmarks/real_sample_train.py
    --cv``): folds, the score and summary tables, training per fold, the cross-fitted post-processing.

    Raises:
        FileNotFoundError: naming the first missing file (folds not run, or not scored yet).
    """
    cv_dir = Path(cv_dir)
    for name in (FOLDS_FILE, SCORES_FILE, SUMMARY_FILE):
        if not (cv_dir / name).is_file():
            raise FileNotFoundError(f"{cv_dir / name}: missing (run and score the cross-validation first: "
                                    "benchmarks/real_sample_train.py --cv K --cv-dir DIR)")
    payload = json.loads((cv_dir / FOLDS_FILE).read_text(encoding="utf-8"))
    folds, extra = payload["folds"], list(payload.get("extra_cases", []))
    rows = []
    for i, fold in enumerate(folds):
        meta_file, extra_file = cv_dir / f"fold{i}" / "train_summary.json", cv_dir / f"fold{i}" / EXTRA_FILE
        meta = json.loads(meta_file.read_text(encoding="utf-8")) if meta_file.is_file() else {}
        fold_extra = (json.loads(extra_file.read_text(encoding="utf-8"))["extra_cases"]
                      if payload.get("extra_train") == PER_FOLD and extra_file.is_file() else extra)
        rows.append({"fold": i, "epochs": meta.get("epochs"), "iterations": meta.get("iterations"),
                     "train_minutes": meta.get("train_minutes"), "n_train": len(fold["train"]),
                     "n_extra": len(fold_extra), "n_val": len(fold["val"]), "val_patients": len(fold["patients"])})
    crossfit_file = cv_dir / CROSSFIT_FILE
    crossfit = json.loads(crossfit_file.read_text(encoding="utf-8")) if crossfit_file.is_file() else {}
    return CrossValResults(cv_dir, folds, pd.read_csv(cv_dir / SCORES_FILE, dtype={"patient": str}),
                           pd.read_csv(cv_dir / SUMMARY_FILE, dtype={"fold": str}), pd.DataFrame(rows), crossfit,
                           extra)


def write_out_of_fold(cv_dir: str | Path, variant: str = "none") -> Path:
    """The out-of-fold predictions of one post-processing variant as one folder of ``<case>.nii.gz``
    (``cv_dir/oof/<variant>/``, for :func:`brats_lib.analysis.analyse_predictions`): ``none`` links the raw
    predictions, a tuned variant applies to each fold's raw predictions the settings cross-fitted for that fold
    (``postprocess_crossfit.json``), so every map is what was scored. Existing files are kept.

    Raises:
        ValueError: a variant without cross-fitted settings.
    """
    from .inference import postprocess_label

    cv_dir = Path(cv_dir)
    folds = load_folds(cv_dir / FOLDS_FILE)
    settings: Mapping[str, Any] = {}
    if variant != "none":
        crossfit_file = cv_dir / CROSSFIT_FILE
        settings = (json.loads(crossfit_file.read_text(encoding="utf-8")).get(variant, {})
                    if crossfit_file.is_file() else {})
        if not settings:
            raise ValueError(f"{crossfit_file}: no cross-fitted settings for variant {variant!r}")
    out = cv_dir / OUT_OF_FOLD_DIR / variant
    out.mkdir(parents=True, exist_ok=True)
    for i, fold in enumerate(folds):
        for case_id in fold["val"]:
            raw, target = raw_prediction_path(cv_dir, i, case_id), out / f"{case_id}.nii.gz"
            if target.exists() or target.is_symlink():
                continue
            if variant == "none":
                target.symlink_to(raw.resolve())
                continue
            data, image = read_nifti(raw)
            spacing = tuple(float(s) for s in image.header.get_zooms()[:3])
            processed = postprocess_label(to_2024(data, "2024", source=str(raw)), settings[str(i)], spacing)
            save_label_map(processed, geometry_of(image, data.shape), target)
    return out


def compare_arms(arms: Mapping[str, pd.DataFrame], variant: str = "rules", metric: str = "lesionwise_dice",
                 baseline: str | None = None) -> pd.DataFrame:
    """Per-region comparison of cross-validations of the same folds (arm name → ``scores`` table).

    Each patient's cases are averaged first (a patient once); per region the table gives each arm's mean over
    patients and, against ``baseline`` (default: the first arm), the mean per-patient difference, how many
    patients improved and ``n_patients`` (patients scored by both).
    """
    names = list(arms)
    baseline = baseline or names[0]
    per_patient = {name: (table[table["variant"] == variant].groupby(["patient", "region"])[metric].mean())
                   for name, table in arms.items()}
    rows = []
    for region in REGION_ORDER:
        base = per_patient[baseline].xs(region, level="region")
        row: dict[str, Any] = {"region": region}
        for name in names:
            values = per_patient[name].xs(region, level="region")
            row[name] = float(values.mean())
            if name != baseline:
                common = base.index.intersection(values.index)
                diff = values.loc[common] - base.loc[common]
                row[f"{name} − {baseline}"] = float(diff.mean())
                row[f"{name}: patients better"] = f"{int((diff > 0).sum())}/{len(common)}"
        row["n_patients"] = int(len(base))
        rows.append(row)
    return pd.DataFrame(rows)


#: The real-data recipe's goal on unseen real cases (issue 16): lesion-wise Dice per region.
GOALS: Mapping[str, float] = {"WT": 0.80, "TC": 0.60, "ET": 0.55}


def volume_prior_table(agreement: pd.DataFrame, fold_of: Mapping[str, int], region: str = "WT",
                       model: str | None = None) -> pd.DataFrame:
    """Does a fold's model call the volumes its training patients had? Per fold: the mean true ``region``
    volume of its training cases (the cases of every other fold), of its validation cases, and its mean
    predicted volume on the validation cases, in mL, with n.

    Args:
        agreement: :func:`brats_lib.analysis.volume_agreement` of the out-of-fold predictions (every case is
            validated in exactly one fold, so its true volume is known for every fold's training set).
        fold_of: case id → fold.
        model: the ``model`` rows to use when the table has that column.
    """
    part = agreement[agreement["region"] == region]
    if model is not None and "model" in part:
        part = part[part["model"] == model]
    part = part.assign(fold=part["case"].map(lambda c: int(fold_of[c])))
    rows = []
    for fold in sorted(part["fold"].unique()):
        train, val = part[part["fold"] != fold], part[part["fold"] == fold]
        rows.append({"fold": int(fold), "n_train_cases": len(train), "train_true_ml": float(train["gt_ml"].mean()),
                     "n_val_cases": len(val), "val_true_ml": float(val["gt_ml"].mean()),
                     "val_predicted_ml": float(val["pred_ml"].mean()),
                     "val_error_ml": float((val["pred_ml"] - val["gt_ml"]).mean())})
    return pd.DataFrame(rows)


def findings(summary: pd.DataFrame, variant: str, prior: pd.DataFrame | None = None,
             comparison: pd.DataFrame | None = None, goals: Mapping[str, float] = GOALS) -> str:
    """A few sentences (Markdown) on a cross-validation, from its own numbers: the scores against ``goals``,
    the spread between folds, what the post-processing changed, whether the folds' volume errors follow their
    training patients' volumes (``prior``, :func:`volume_prior_table`), and what a compared arm changed
    (``comparison``, :func:`compare_arms`)."""
    overall = summary[summary["fold"].astype(str) == "all"]
    chosen = overall[overall["variant"] == variant].set_index("region")
    if chosen.empty:
        return f"No scores of variant '{variant}' in this cross-validation."
    n_patients, n_cases = int(chosen["n_patients"].max()), int(chosen["n_cases"].max())
    regions = [r for r in goals if r in chosen.index]
    reached = [r for r in regions if chosen.loc[r, "lesionwise_dice"] >= goals[r]]
    scores = ", ".join(f"{r} {chosen.loc[r, 'lesionwise_dice']:.3f} (goal {goals[r]:.2f})" for r in regions)
    sentences = [f"Over {n_patients} patients ({n_cases} cases) never seen in training, the lesion-wise Dice with "
                 f"post-processing '{variant}' is {scores}: "
                 + (f"the goal is reached for {', '.join(reached)}." if reached else "no region reaches its goal.")]
    sd_col = "lesionwise_dice_fold_sd"
    if sd_col in chosen and regions:
        spread = max(regions, key=lambda r: float(chosen.loc[r, sd_col]) if np.isfinite(chosen.loc[r, sd_col])
                     else -1.0)
        if np.isfinite(chosen.loc[spread, sd_col]):
            sentences.append(f"The folds disagree by up to {chosen.loc[spread, sd_col]:.2f} (sd of the fold means, "
                             f"{spread}): with this few patients a difference smaller than that is not evidence.")
    raw = overall[overall["variant"] == "none"].set_index("region")
    if variant != "none" and not raw.empty and regions:
        gains = ", ".join(f"{r} {chosen.loc[r, 'lesionwise_dice'] - raw.loc[r, 'lesionwise_dice']:+.3f}"
                          for r in regions)
        sentences.append(f"Against the raw predictions, the post-processing changed the lesion-wise Dice by {gains}.")
    if prior is not None and len(prior) >= 2:
        spread = prior[["train_true_ml", "val_error_ml"]].std()
        follows = (np.corrcoef(prior["train_true_ml"], prior["val_error_ml"])[0, 1] if (spread > 0).all()
                   else np.nan)
        under = prior.loc[prior["val_error_ml"].idxmin()]
        over = prior.loc[prior["val_error_ml"].idxmax()]
        text = (f"Whole-tumour volume: fold {int(under['fold'])} calls {under['val_error_ml']:+.0f} mL on average "
                f"(its training cases: {under['train_true_ml']:.0f} mL), fold {int(over['fold'])} "
                f"{over['val_error_ml']:+.0f} mL (its training cases: {over['train_true_ml']:.0f} mL)")
        if np.isfinite(follows) and follows > 0.5:
            text += (f"; the error follows the training patients' volumes, as if the models had learned a typical "
                     f"extent more than they read the border ({len(prior)} folds: a pattern, not a proof)")
        sentences.append(text + ".")
    if comparison is not None and len(comparison.columns) > 2:
        table = comparison.set_index("region")
        for col in (c for c in comparison.columns if " − " in c):  # one sentence per compared arm
            change = ", ".join(f"{r} {table.loc[r, col]:+.3f}" for r in regions if r in table.index)
            sentences.append(f"{col.split(' − ')[0]} against {col.split(' − ')[1]} (mean per-patient difference, "
                             f"n = {int(table['n_patients'].max())} patients): {change}.")
    return " ".join(sentences)
