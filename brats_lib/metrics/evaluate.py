"""Folders of predictions and ground truths → one tidy table of BraTS 2024 GLI lesion-wise metrics.

``brats evaluate --pred DIR --gt DIR --out FILE.csv [--workers N]`` calls :func:`evaluate_folders`.

* ``--pred`` holds one ``<case-id>.nii.gz`` (or ``.nii``) label map per case, 2024 convention.
* ``--gt`` is either a dataset in any layout :func:`brats_lib.io.discover_cases` reads (BraTS case folders
  of any release with their ``-seg``/``_seg`` files, a Decathlon or nnU-Net dataset or its ``labelsTr``;
  labels are converted to the 2024 convention) or a flat folder of
  ``<case-id>.nii.gz`` / ``<case-id>-seg.nii.gz`` / ``<case-id>_seg.nii.gz`` label maps in the 2024
  convention (a flat folder cannot tell the conventions apart: 4 is RC in 2024 but ET before).

Every GT case needs a prediction and every prediction a GT case; shapes must match. Spacing is taken from
the prediction's affine (column norms, float32), as the official scorer does.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import (NIFTI_SUFFIXES, BratsInputError, brats_case_folder, dataset_json_of, discover_cases, load_label,
                  read_nifti)
from ..labels import REGION_ORDER, to_2024
from .lesionwise import CLEAN_COLUMNS, RESULT_COLUMNS, lesion_wise_results

#: Columns of the evaluation table: case, region, the official metrics, then the clean extras.
TABLE_COLUMNS = ("case", "region") + RESULT_COLUMNS[1:] + CLEAN_COLUMNS
#: Metrics summarised across cases, and the statistics reported by the challenge.
SUMMARY_METRICS = ("LesionWise_Score_Dice", "LesionWise_Score_HD95", "Legacy_Dice", "Legacy_HD95")
SUMMARY_STATISTICS = ("mean", "std", "median", "25quantile", "75quantile")
_SEG_TAGS = ("-seg", "_seg")


@dataclass(frozen=True)
class CaseJob:
    """One case to score: its id, the prediction file, the GT file and the GT's label convention."""

    case_id: str
    pred_path: Path
    gt_path: Path
    gt_convention: str | dict  # "2024", "legacy" or a dataset.json mapping {stored value: 2024 label}


def _nifti_stem(path: Path) -> str | None:
    for suffix in NIFTI_SUFFIXES:
        if path.name.endswith(suffix):
            return path.name[: -len(suffix)]
    return None


def nifti_files(folder: Path) -> dict[str, Path]:
    """``{stem: path}`` of the NIfTI files directly inside ``folder`` (hidden files skipped)."""
    files = {}
    for path in sorted(folder.iterdir()):
        stem = _nifti_stem(path)
        if stem is None or path.name.startswith(".") or not path.is_file():
            continue
        if stem in files:
            raise BratsInputError(f"{path}: case {stem!r} appears twice in {folder} ({files[stem].name})")
        files[stem] = path
    return files


def _flat_case_id(stem: str) -> str:
    for tag in _SEG_TAGS:
        if stem.endswith(tag):
            return stem[: -len(tag)]
    return stem


def find_ground_truths(gt_dir: str | Path) -> dict[str, tuple[Path, str]]:
    """``{case_id: (seg file, label convention)}`` of a dataset root or a flat folder of label maps.

    Raises:
        BratsInputError: missing folder, no label found, or a case found twice.
    """
    gt_dir = Path(gt_dir)
    if not gt_dir.is_dir():
        raise BratsInputError(f"{gt_dir}: ground-truth folder does not exist")
    flat = nifti_files(gt_dir)
    # a folder of label maps, unless discovery reads it (a case folder, or a Decathlon/nnU-Net labelsTr whose
    # dataset.json says what the values mean)
    if flat and dataset_json_of(gt_dir) is None and brats_case_folder(gt_dir, require_images=False) is None:
        found: dict[str, tuple[Path, str]] = {}
        for stem, path in flat.items():
            case_id = _flat_case_id(stem)
            if case_id in found:
                raise BratsInputError(
                    f"{path}: case {case_id!r} has two label maps ({found[case_id][0].name})"
                )
            found[case_id] = (path, "2024")
        return found
    cases = discover_cases(gt_dir, require_images=False)
    found = {c.case_id: (c.seg_path, c.label_convention) for c in cases if c.seg_path is not None}
    if not found:
        raise BratsInputError(f"{gt_dir}: no ground-truth label maps (…-seg.nii.gz) found")
    return found


def plan_jobs(pred_dir: str | Path, gt_dir: str | Path) -> list[CaseJob]:
    """Pair every GT case with its prediction ``<pred_dir>/<case-id>.nii[.gz]``, sorted by case id.

    Raises:
        BratsInputError: a GT case without prediction, or a prediction without GT case (named).
    """
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise BratsInputError(f"{pred_dir}: prediction folder does not exist")
    predictions = nifti_files(pred_dir)
    truths = find_ground_truths(gt_dir)
    missing = sorted(set(truths) - set(predictions))
    if missing:
        raise BratsInputError(
            f"{pred_dir / (missing[0] + '.nii.gz')}: prediction missing for case {missing[0]}"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
        )
    extra = sorted(set(predictions) - set(truths))
    if extra:
        raise BratsInputError(
            f"{predictions[extra[0]]}: prediction has no ground truth in {gt_dir}"
            + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else "")
        )
    return [CaseJob(c, predictions[c], truths[c][0], truths[c][1]) for c in sorted(truths)]


def load_prediction(path: str | Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    """A prediction label map (uint8, 2024 convention) and its spacing.

    Returns:
        (labels (X, Y, Z) uint8, spacing (mm) = column norms of the affine rounded to float32, as the
        official scorer's).
    """
    data, img = read_nifti(path)
    try:
        labels = to_2024(data, "2024", source=str(path))
    except ValueError as exc:
        raise BratsInputError(str(exc)) from exc
    spacing = np.linalg.norm(np.asarray(img.affine, dtype=np.float64)[:3, :3], axis=0).astype(np.float32)
    return labels, tuple(float(s) for s in spacing)


def evaluate_case(job: CaseJob) -> pd.DataFrame:
    """Metrics of one case: one row per region, columns :data:`TABLE_COLUMNS`."""
    pred, spacing = load_prediction(job.pred_path)
    gt = load_label(job.gt_path, job.gt_convention)
    if pred.shape != gt.shape:
        raise BratsInputError(f"{job.pred_path}: shape {pred.shape} differs from {job.gt_path} {gt.shape}")
    results, _ = lesion_wise_results(pred, gt, spacing)
    table = results.rename(columns={"Labels": "region"})
    table.insert(0, "case", job.case_id)
    return table[list(TABLE_COLUMNS)]


def _progress(iterable, total: int, enabled: bool):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc="evaluate", unit="case")


def write_table(table: pd.DataFrame, out_csv: str | Path) -> Path:
    """Write ``table`` to ``out_csv`` atomically, floats with 17 significant digits (exact round trip)."""
    from .._atomic import atomic_path

    out_csv = Path(out_csv)
    with atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.17g")
    return out_csv


def evaluate_folders(pred_dir, gt_dir, out_csv=None, workers: int = 1, progress: bool = True) -> pd.DataFrame:
    """Score every case of ``gt_dir`` against ``pred_dir`` and write the tidy table to ``out_csv``.

    Args:
        pred_dir: folder of ``<case-id>.nii.gz`` predictions.
        gt_dir: dataset root or flat folder of label maps (see the module docstring).
        out_csv: output CSV path, written atomically (``None``: not written).
        workers: processes; cases are scored in parallel when > 1.
        progress: show a tqdm progress bar.
    Returns:
        One row per case and region (cases sorted, regions in :data:`REGION_ORDER`), columns
        :data:`TABLE_COLUMNS`.
    Raises:
        BratsInputError: missing/extra predictions, unreadable files, shape mismatches (naming the file).
    """
    jobs = plan_jobs(pred_dir, gt_dir)
    workers = max(1, min(int(workers), len(jobs)))
    if workers == 1:
        tables = [evaluate_case(job) for job in _progress(jobs, len(jobs), progress)]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            tables = list(_progress(pool.map(evaluate_case, jobs), len(jobs), progress))
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=list(TABLE_COLUMNS))
    if out_csv is not None:
        write_table(table, out_csv)
    return table


def summarise(table: pd.DataFrame, metrics=SUMMARY_METRICS) -> pd.DataFrame:
    """Across-case summary per region, as the challenge reports it.

    Args:
        table: output of :func:`evaluate_folders` (columns ``case``, ``region`` and the metrics).
        metrics: metric columns to summarise.
    Returns:
        One row per region (in :data:`REGION_ORDER`) and statistic (:data:`SUMMARY_STATISTICS`: mean,
        sample standard deviation, median, 25 % and 75 % quantiles with linear interpolation); columns
        ``region``, ``statistic`` and the metrics.
    """
    rows = []
    for region in [r for r in REGION_ORDER if r in set(table["region"])]:
        values = table.loc[table["region"] == region, list(metrics)].astype(float)
        stats = {
            "mean": values.mean(),
            "std": values.std(ddof=1),
            "median": values.median(),
            "25quantile": values.quantile(0.25),
            "75quantile": values.quantile(0.75),
        }
        for name in SUMMARY_STATISTICS:
            rows.append({"region": region, "statistic": name, **stats[name].to_dict()})
    return pd.DataFrame(rows, columns=["region", "statistic", *metrics])


def default_workers() -> int:
    """A sensible ``--workers`` default: the CPUs this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
