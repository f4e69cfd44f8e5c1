"""Folders of predictions and ground truths → tidy tables of BraTS 2024 GLI lesion-wise metrics.

``brats evaluate --pred DIR --gt DIR --out FILE.csv [--lesions FILE.csv] [--pred-labels 2024|legacy]
[--workers N]`` calls :func:`evaluate_folders`.

* ``--pred`` holds one ``<case-id>.nii.gz`` (or ``.nii``) label map per case, in the 2024 convention
  (``pred_labels="legacy"``: the 2018–2021 one, 4 = ET, converted on load).
* ``--gt`` is either a dataset in any layout :func:`brats_lib.io.discover_cases` reads (BraTS case folders
  of any release with their ``-seg``/``_seg`` files, a Decathlon or nnU-Net dataset or its ``labelsTr``;
  labels are converted to the 2024 convention; NIfTI files lying at the top level of a dataset root beside its
  case folders are ignored) or a flat folder of ``<case-id>.nii.gz`` / ``<case-id>-seg.nii.gz`` /
  ``<case-id>_seg.nii.gz`` label maps in the 2024 convention (a flat folder cannot tell the conventions
  apart: 4 is RC in 2024 but ET before).

Every GT case needs a prediction and every prediction a GT case; a prediction and its ground truth must lie on
the same grid (shape and affine). Spacing is taken from the prediction's affine (column norms, float32), as
the official scorer does. Each case's table rows carry its own wall time (``seconds``: loading, checks and
scoring).
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import (AFFINE_TOLERANCE, BratsInputError, brats_case_folder, dataset_json_of, discover_cases,
                  nifti_stem, read_nifti)
from ..labels import ET, REGION_ORDER, RC, to_2024
from .lesionwise import CLEAN_COLUMNS, LESION_COLUMNS, RESULT_COLUMNS, lesion_wise_results

#: Columns of the evaluation table: case, region, the official metrics, the clean extras, the case's time.
TABLE_COLUMNS = ("case", "region") + RESULT_COLUMNS[1:] + CLEAN_COLUMNS + ("seconds",)
#: Columns of the lesion table: case, then the official per-lesion columns.
LESION_TABLE_COLUMNS = ("case",) + LESION_COLUMNS
#: Metrics summarised across cases, and the statistics reported by the challenge.
SUMMARY_METRICS = ("LesionWise_Score_Dice", "LesionWise_Score_HD95", "Legacy_Dice", "Legacy_HD95")
SUMMARY_STATISTICS = ("mean", "std", "median", "25quantile", "75quantile")
#: Label conventions a prediction folder may use.
PRED_CONVENTIONS = ("2024", "legacy")
_SEG_TAGS = ("-seg", "_seg")


class LabelConventionWarning(UserWarning):
    """A prediction's labels look like the other label convention than the one it is read in."""


@dataclass(frozen=True)
class CaseJob:
    """One case to score: its id, the prediction file, the GT file and the two files' label conventions."""

    case_id: str
    pred_path: Path
    gt_path: Path
    gt_convention: str | dict  # "2024", "legacy" or a dataset.json mapping {stored value: 2024 label}
    pred_convention: str = "2024"


@dataclass
class CaseResult:
    """One scored case: region rows (:data:`TABLE_COLUMNS`), lesion rows (:data:`LESION_TABLE_COLUMNS`),
    warnings to show the user."""

    table: pd.DataFrame
    lesions: pd.DataFrame
    warnings: list[str] = field(default_factory=list)


def nifti_files(folder: Path) -> dict[str, Path]:
    """``{stem: path}`` of the NIfTI files directly inside ``folder`` (hidden files skipped)."""
    files = {}
    for path in sorted(folder.iterdir()):
        stem = nifti_stem(path.name)
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


def _dataset_root_truths(gt_dir: Path) -> dict[str, tuple[Path, str | dict]]:
    cases = discover_cases(gt_dir, require_images=False)
    return {c.case_id: (c.seg_path, c.label_convention) for c in cases if c.seg_path is not None}


def find_ground_truths(gt_dir: str | Path) -> dict[str, tuple[Path, str | dict]]:
    """``{case_id: (seg file, label convention)}`` of a dataset or a flat folder of label maps.

    A folder is read by discovery when it is a case folder, has a ``dataset.json`` (Decathlon / nnU-Net), or
    has sub-folders whose cases hold label maps — NIfTI files at its top level (a stray prediction or
    template) are then ignored; otherwise its NIfTI files are the label maps of a flat folder.

    Raises:
        BratsInputError: missing folder, no label found, or a case found twice.
    """
    gt_dir = Path(gt_dir)
    if not gt_dir.is_dir():
        raise BratsInputError(f"{gt_dir}: ground-truth folder does not exist")
    flat = nifti_files(gt_dir)
    if flat and dataset_json_of(gt_dir) is None and brats_case_folder(gt_dir, require_images=False) is None:
        if any(p.is_dir() and not p.name.startswith(".") for p in gt_dir.iterdir()):
            try:
                found = _dataset_root_truths(gt_dir)
            except BratsInputError:
                found = {}
            if found:
                return found
        found = {}
        for stem, path in flat.items():
            case_id = _flat_case_id(stem)
            if case_id in found:
                raise BratsInputError(
                    f"{path}: case {case_id!r} has two label maps ({found[case_id][0].name})"
                )
            found[case_id] = (path, "2024")
        return found
    found = _dataset_root_truths(gt_dir)
    if not found:
        raise BratsInputError(f"{gt_dir}: no ground-truth label maps (…-seg.nii.gz) found")
    return found


def plan_jobs(pred_dir: str | Path, gt_dir: str | Path, pred_labels: str = "2024") -> list[CaseJob]:
    """Pair every GT case with its prediction ``<pred_dir>/<case-id>.nii[.gz]``, sorted by case id.

    Raises:
        BratsInputError: a GT case without prediction, or a prediction without GT case (named).
    """
    if pred_labels not in PRED_CONVENTIONS:
        raise BratsInputError(f"prediction label convention {pred_labels!r}: expected one of {PRED_CONVENTIONS}")
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
    return [CaseJob(c, predictions[c], truths[c][0], truths[c][1], pred_labels) for c in sorted(truths)]


def _spacing(affine: np.ndarray) -> tuple[float, float, float]:
    spacing = np.linalg.norm(np.asarray(affine, dtype=np.float64)[:3, :3], axis=0).astype(np.float32)
    return tuple(float(s) for s in spacing)


def read_label_map(path: str | Path, convention: str = "2024") -> tuple[np.ndarray, np.ndarray]:
    """A label map (uint8, 2024 convention; legacy labels converted) and its affine.

    Raises:
        BratsInputError: unreadable file or unknown label values (naming the file).
    """
    data, img = read_nifti(path)
    try:
        labels = to_2024(data, convention, source=str(path))
    except ValueError as exc:
        raise BratsInputError(str(exc)) from exc
    return labels, np.asarray(img.affine, dtype=np.float64)


def load_prediction(path: str | Path, convention: str = "2024") -> tuple[np.ndarray, tuple[float, float, float]]:
    """A prediction label map (uint8, converted to the 2024 convention) and its spacing.

    Returns:
        (labels (X, Y, Z) uint8, spacing (mm) = column norms of the affine rounded to float32, as the
        official scorer's).
    """
    labels, affine = read_label_map(Path(path), convention)
    return labels, _spacing(affine)


def _check_grid(job: CaseJob, pred_shape, pred_affine, gt_shape, gt_affine) -> None:
    if tuple(pred_shape) != tuple(gt_shape):
        raise BratsInputError(
            f"{job.pred_path}: shape {tuple(pred_shape)} differs from the ground truth {job.gt_path} "
            f"{tuple(gt_shape)}"
        )
    if not np.allclose(pred_affine, gt_affine, rtol=0.0, atol=AFFINE_TOLERANCE):
        worst = float(np.abs(np.asarray(pred_affine) - np.asarray(gt_affine)).max())
        raise BratsInputError(
            f"{job.pred_path}: affine differs from the ground truth {job.gt_path} by up to {worst:.4g} mm "
            "(not the same grid; resample the prediction onto the ground truth's grid)"
        )


def check_grids(jobs: list[CaseJob]) -> None:
    """Check from the headers alone that each prediction lies on its ground truth's grid (before scoring).

    Files whose header cannot be read are left to :func:`load_pair`, which names the fault.

    Raises:
        BratsInputError: the first pair on different grids (shape or affine), naming both files.
    """
    import nibabel as nib

    for job in jobs:
        try:
            pred, gt = nib.load(job.pred_path), nib.load(job.gt_path)
            pred_shape, gt_shape = pred.shape[:3], gt.shape[:3]
            pred_affine, gt_affine = np.asarray(pred.affine, float), np.asarray(gt.affine, float)
        except Exception:  # noqa: BLE001 - reported with its cause when the case is loaded
            continue
        _check_grid(job, pred_shape, pred_affine, gt_shape, gt_affine)


def load_pair(job: CaseJob) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float], list[str]]:
    """Prediction and ground truth of ``job`` on one checked grid, as ``brats evaluate`` reads them.

    Returns:
        (prediction uint8, ground truth uint8, spacing from the prediction's affine, warnings).
    Raises:
        BratsInputError: unreadable files, labels outside their convention, or the two files on different
            grids (shape or affine; both files named).
    """
    pred, pred_affine = read_label_map(Path(job.pred_path), job.pred_convention)
    gt, gt_affine = read_label_map(Path(job.gt_path), job.gt_convention)
    _check_grid(job, pred.shape, pred_affine, gt.shape, gt_affine)
    notes = []
    if job.pred_convention == "2024" and (gt == ET).any() and (pred == RC).any() and not (pred == ET).any():
        notes.append(
            f"{job.pred_path}: label 4 present and no 3 while the ground truth has 3: this looks like the "
            "2018–2021 convention (4 = ET), scored here as 2024 (4 = resection cavity); "
            "use --pred-labels legacy if it is"
        )
    return pred, gt, _spacing(pred_affine), notes


def score_case(job: CaseJob) -> CaseResult:
    """Metrics of one case: region rows, lesion rows and warnings (see :class:`CaseResult`)."""
    start = time.perf_counter()
    pred, gt, spacing, notes = load_pair(job)
    results, lesions = lesion_wise_results(pred, gt, spacing)
    table = results.rename(columns={"Labels": "region"})
    table.insert(0, "case", job.case_id)
    lesions.insert(0, "case", job.case_id)
    table["seconds"] = time.perf_counter() - start
    return CaseResult(table[list(TABLE_COLUMNS)], lesions[list(LESION_TABLE_COLUMNS)], notes)


def evaluate_case(job: CaseJob) -> pd.DataFrame:
    """Region rows of one case (:data:`TABLE_COLUMNS`); see :func:`score_case` for the lesion rows."""
    return score_case(job).table


def _progress(iterable, total: int, enabled: bool):
    """A tqdm bar over ``iterable`` (closed, with its newline, also when a case fails), or a plain wrapper."""
    if not enabled:
        return contextlib.nullcontext(iterable)
    from ..progress import tqdm

    return tqdm(iterable, total=total, desc="evaluate", unit="case")


def write_table(table: pd.DataFrame, out_csv: str | Path) -> Path:
    """Write ``table`` to ``out_csv`` atomically, floats with 17 significant digits (exact round trip).

    List cells (the matched prediction lesions of the lesion table) are written as JSON lists.
    """
    from .._atomic import atomic_path

    out_csv = Path(out_csv)
    table = table.copy()
    for column in table.columns:
        if table[column].dtype == object and table[column].map(lambda v: isinstance(v, list)).any():
            table[column] = table[column].map(lambda v: "[" + ", ".join(str(int(x)) for x in v) + "]")
    with atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.17g")
    return out_csv


def evaluate_folders(pred_dir, gt_dir, out_csv=None, workers: int = 1, progress: bool = True,
                     lesions_csv=None, pred_labels: str = "2024", return_lesions: bool = False):
    """Score every case of ``gt_dir`` against ``pred_dir`` and write the tidy tables.

    Args:
        pred_dir: folder of ``<case-id>.nii.gz`` predictions.
        gt_dir: dataset root or flat folder of label maps (see the module docstring).
        out_csv: output CSV of the region table, written atomically (``None``: not written).
        workers: processes; cases are scored in parallel when > 1.
        progress: show a tqdm progress bar.
        lesions_csv: output CSV of the lesion table (one row per GT lesion, the official per-lesion columns
            after ``case``; ``None``: not written).
        pred_labels: label convention of the predictions, ``"2024"`` or ``"legacy"`` (4 = ET, converted).
        return_lesions: also return the lesion table.
    Returns:
        The region table: one row per case and region (cases sorted, regions in :data:`REGION_ORDER`),
        columns :data:`TABLE_COLUMNS`; with ``return_lesions``, ``(table, lesion table)``.
    Warns:
        LabelConventionWarning: a prediction read as 2024 whose labels look like the 2018–2021 convention.
    Raises:
        BratsInputError: missing/extra predictions, unreadable files, different grids (naming the files).
    """
    jobs = plan_jobs(pred_dir, gt_dir, pred_labels)
    check_grids(jobs)
    workers = max(1, min(int(workers), len(jobs)))
    if workers == 1:
        with _progress(jobs, len(jobs), progress) as bar:
            results = [score_case(job) for job in bar]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool, \
                _progress(pool.map(score_case, jobs), len(jobs), progress) as bar:
            results = list(bar)
    for result in results:
        for note in result.warnings:
            warnings.warn(note, LabelConventionWarning, stacklevel=2)
    table = (pd.concat([r.table for r in results], ignore_index=True) if results
             else pd.DataFrame(columns=list(TABLE_COLUMNS)))
    lesions = pd.concat([r.lesions for r in results], ignore_index=True) if results else None
    if lesions is None or lesions.empty:
        lesions = pd.DataFrame(columns=list(LESION_TABLE_COLUMNS))
    if out_csv is not None:
        write_table(table, out_csv)
    if lesions_csv is not None:
        write_table(lesions, lesions_csv)
    return (table, lesions) if return_lesions else table


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
