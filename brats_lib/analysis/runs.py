"""Run directories → predictions of one split → the lesion-wise table of those cases.

Data flow: run directories → :func:`predict_cases` (:func:`brats_lib.inference.predict_case` per case id of a
split) → ``<pred_dir>/<case-id>.nii.gz`` → :func:`evaluate_cases` (the official-identical lesion-wise scorer
of :mod:`brats_lib.metrics`, restricted to those case ids) → a tidy table (one row per case and region).
Post-processing thresholds are tuned on one split (:func:`tune_split_postprocessing`) and applied to another
(:func:`postprocess_predictions`).
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

PathLike = str | Path

def find_runs(runs_root: PathLike, models: Sequence[str], verbose: bool = True) -> dict[str, Path]:
    """``{model: run_dir}`` for the models with a trained run ``runs_root/<model>`` (a ``config.json`` and a
    ``best.pt`` or ``last.pt``), in the order given; the missing ones are skipped with a printed note."""
    found: dict[str, Path] = {}
    for model in models:
        run_dir = Path(runs_root) / model
        has_weights = (run_dir / "best.pt").is_file() or (run_dir / "last.pt").is_file()
        if (run_dir / "config.json").is_file() and has_weights:
            found[model] = run_dir
        elif verbose:
            print(f"note: no trained run for {model} in {run_dir} (no config.json with best.pt/last.pt); skipped")
    return found


def split_cases(data_dir: PathLike, case_ids: Sequence[str]) -> list:
    """The :class:`~brats_lib.io.Case` records of ``data_dir`` with these ids, in the order given.

    Raises:
        KeyError: an id that is not a case of ``data_dir`` (named).
    """
    from ..io import discover_cases

    cases = {c.case_id: c for c in discover_cases(data_dir)}
    missing = [c for c in case_ids if c not in cases]
    if missing:
        raise KeyError(f"{data_dir}: no case {missing[0]!r}" + (f" (and {len(missing) - 1} more)"
                                                                 if len(missing) > 1 else ""))
    return [cases[c] for c in case_ids]


def predict_cases(run_dirs, data_dir: PathLike, case_ids: Sequence[str], out_dir: PathLike,
                  device: str = "auto", tta: bool = True, tta_axes: Sequence[int] = (0, 1, 2),
                  postprocess=False, checkpoint: str = "best.pt", progress: bool = False,
                  overlap: float = 0.5) -> list[Path]:
    """Predict only the cases ``case_ids`` of ``data_dir`` and write ``out_dir/<case-id>.nii.gz``.

    :func:`brats_lib.inference.predict_folder` predicts a whole folder; this loops
    :func:`brats_lib.inference.predict_case` over the ids of one split instead.

    Args:
        run_dirs: run director(y/ies) or a loaded :class:`~brats_lib.inference.Ensemble`.
        postprocess: as :func:`~brats_lib.inference.predict_case`; default ``False`` (raw predictions, so
            post-processing can be tuned and compared separately).
        overlap: sliding-window overlap (0.5 as nnU-Net; the CPU demo uses 0.25: 12 windows per ×2 case
            instead of 27–36).
        other arguments: as :func:`~brats_lib.inference.predict_case`.
    Returns:
        the written files, in the order of ``case_ids``.
    """
    from ..progress import tqdm

    from ..inference import as_ensemble, predict_case, prediction_path
    from ..inference.sliding_window import resolve_device
    from ..io import load_case, save_label_map

    device = resolve_device(device)
    ensemble = as_ensemble(run_dirs, checkpoint, device)
    written = []
    for case in tqdm(split_cases(data_dir, case_ids), desc="predict", unit="case", disable=not progress):
        loaded = load_case(dataclasses.replace(case, seg_path=None))
        label = predict_case(ensemble, loaded, device=device, tta=tta, tta_axes=tuple(tta_axes),
                             postprocess=postprocess, overlap=overlap)
        written.append(save_label_map(label, loaded.geometry, prediction_path(out_dir, case.case_id)))
    return written


def evaluate_cases(pred_dir: PathLike | Mapping[str, PathLike], gt_dir: PathLike,
                   case_ids: Sequence[str] | None = None, workers: int = 1) -> pd.DataFrame:
    """Lesion-wise metrics of the predictions ``pred_dir/<case-id>.nii.gz`` of ``case_ids`` against the raw
    ground truths of ``gt_dir`` (a dataset root or flat folder, as :func:`brats_lib.metrics.evaluate_folders`,
    which needs a prediction for *every* ground truth; here only the listed cases are scored).

    Args:
        pred_dir: one prediction folder, or ``{model: folder}`` for several models (scored in one pool and
            returned with a leading ``model`` column).
        case_ids: the cases to score (default: every prediction in the (first) folder).
        workers: processes; cases are scored in parallel when > 1.
    Returns:
        the tidy table of :func:`~brats_lib.metrics.evaluate_folders` (one row per case and region), with a
        ``model`` column when ``pred_dir`` is a mapping.
    Raises:
        BratsInputError: a case without prediction or ground truth (named).
    """
    from ..io import BratsInputError
    from ..metrics.evaluate import CaseJob, nifti_files, evaluate_case, find_ground_truths

    folders = dict(pred_dir) if isinstance(pred_dir, Mapping) else {"": pred_dir}
    truths = find_ground_truths(gt_dir)
    jobs, owners = [], []
    for model, folder in folders.items():
        predictions = nifti_files(Path(folder)) if Path(folder).is_dir() else {}
        ids = sorted(predictions) if case_ids is None else list(case_ids)
        for case_id in ids:
            if case_id not in predictions:
                raise BratsInputError(f"{Path(folder) / (case_id + '.nii.gz')}: prediction missing for {case_id}")
            if case_id not in truths:
                raise BratsInputError(f"{gt_dir}: no ground truth for case {case_id}")
            jobs.append(CaseJob(case_id, predictions[case_id], truths[case_id][0], truths[case_id][1]))
            owners.append(model)
    if not jobs:
        raise BratsInputError(f"no prediction to evaluate in {', '.join(str(f) for f in folders.values())}")
    workers = max(1, min(int(workers), len(jobs)))
    if workers == 1:
        tables = [evaluate_case(job) for job in jobs]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            tables = list(pool.map(evaluate_case, jobs))
    if not isinstance(pred_dir, Mapping):
        return pd.concat(tables, ignore_index=True)
    table = pd.concat([t.assign(model=m) for t, m in zip(tables, owners)], ignore_index=True)
    return table[["model", *[c for c in table.columns if c != "model"]]]


def tune_split_postprocessing(pred_dir: PathLike, data_dir: PathLike, case_ids: Sequence[str],
                               candidates: Mapping[str, Sequence[int]] | None = None, workers: int = 1):
    """Tune the small-component thresholds on the raw predictions ``pred_dir/<case-id>.nii.gz`` of
    ``case_ids`` (a validation split) against their ground truths in ``data_dir``, with
    :func:`brats_lib.postprocess_tuning.tune_postprocessing` (spacing from each prediction's affine).

    Returns:
        ``(thresholds, tuning table)`` as :func:`~brats_lib.postprocess_tuning.tune_postprocessing` with
        ``return_table=True``; ``workers`` processes score the candidates.
    """
    from ..postprocess_tuning import tune_postprocessing
    from ..io import load_label
    from ..metrics.evaluate import load_prediction

    preds, spacings, gts = [], [], []
    for case in split_cases(data_dir, case_ids):
        pred, spacing = load_prediction(Path(pred_dir) / f"{case.case_id}.nii.gz")
        preds.append(pred)
        spacings.append(spacing)
        gts.append(load_label(case.seg_path, case.label_convention))
    return tune_postprocessing(preds, gts, spacings, candidates=candidates, return_table=True, workers=workers)


def postprocess_predictions(pred_dir: PathLike, case_ids: Sequence[str], thresholds: Mapping[str, int],
                            out_dir: PathLike) -> list[Path]:
    """Apply :func:`brats_lib.inference.remove_small_components` with ``thresholds`` to the predictions
    ``pred_dir/<case-id>.nii.gz`` and write them to ``out_dir`` (same grid and header)."""
    import nibabel as nib

    from ..inference import remove_small_components
    from ..io import Geometry, save_label_map
    from ..metrics.evaluate import load_prediction

    written = []
    for case_id in case_ids:
        source = Path(pred_dir) / f"{case_id}.nii.gz"
        label, _ = load_prediction(source)
        img = nib.load(source)
        geometry = Geometry(np.asarray(img.affine, dtype=np.float64), img.header.copy(), label.shape)
        processed = remove_small_components(label, dict(thresholds)) if thresholds else label
        written.append(save_label_map(processed, geometry, Path(out_dir) / f"{case_id}.nii.gz"))
    return written


__all__ = [
    "evaluate_cases", "find_runs", "postprocess_predictions", "predict_cases", "split_cases",
    "tune_split_postprocessing",
]
