"""Analysis of evaluated predictions: per-region summaries across cases and models, the comparison with the
student project's published numbers, best/worst cases, and the effect of TTA and post-processing.

Data flow: run directories → :func:`predict_cases` (:func:`brats_lib.inference.predict_case` per case id of a
split) → ``<pred_dir>/<case-id>.nii.gz`` → :func:`evaluate_cases` (the official-identical lesion-wise scorer
of :mod:`brats_lib.metrics`, restricted to those case ids) → a tidy table (one row per case and region) →
the tables here. Several models' tables are stacked with a ``model`` column (:func:`combine_tables`).

The figures of these tables are in :mod:`brats_lib.viz` (``plot_region_scores``, ``plot_best_worst_overlays``).
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .labels import REGION_ORDER

#: Lesion-wise metrics summarised by default (Dice is unitless, HD95 in mm).
DICE = "LesionWise_Score_Dice"
HD95 = "LesionWise_Score_HD95"
SUMMARY_METRICS: tuple[str, ...] = (DICE, HD95)

#: Model key (run directory name) → display name.
MODEL_NAMES: Mapping[str, str] = {"fcnn": "FCNN", "unet3d": "3D U-Net", "resunet3d": "Residual 3D U-Net"}

#: Column group of the published numbers in :func:`comparison_table`.
PUBLISHED_LABEL = "student project (published, different data)"

#: The student project's published lesion-wise Dice per region (its own data split and preprocessing, so
#: not comparable number for number with results here). Keys are model keys of :data:`MODEL_NAMES`.
STUDENT_PUBLISHED: Mapping[str, Mapping[str, float]] = {
    "unet3d": {"ET": 0.095, "NETC": 0.297, "SNFH": 0.693, "RC": 0.524},
    "resunet3d": {"ET": 0.325, "NETC": 0.422, "SNFH": 0.797, "RC": 0.61},
}

#: Column labels of :func:`summary_table` (per model), metric → (mean ± std label, median label).
_SUMMARY_COLUMNS: Mapping[str, tuple[str, str]] = {
    DICE: ("Dice mean ± std", "Dice median"),
    HD95: ("HD95 mean ± std (mm)", "HD95 median (mm)"),
}

PathLike = str | Path


def model_name(key: str) -> str:
    """Display name of a model key (``unet3d`` → ``3D U-Net``); unknown keys are returned as given."""
    return MODEL_NAMES.get(key, key)


# ------------------------------------------------------------------------------------------ runs and data


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
    from .io import discover_cases

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
    from .progress import tqdm

    from .inference import as_ensemble, predict_case, prediction_path
    from .inference.sliding_window import resolve_device
    from .io import load_case, save_label_map

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
    from .io import BratsInputError
    from .metrics.evaluate import CaseJob, nifti_files, evaluate_case, find_ground_truths

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
                               candidates: Mapping[str, Sequence[int]] | None = None):
    """Tune the small-component thresholds on the raw predictions ``pred_dir/<case-id>.nii.gz`` of
    ``case_ids`` (a validation split) against their ground truths in ``data_dir``, with
    :func:`brats_lib.postprocess_tuning.tune_postprocessing` (spacing from each prediction's affine).

    Returns:
        ``(thresholds, tuning table)`` as :func:`~brats_lib.postprocess_tuning.tune_postprocessing` with
        ``return_table=True``.
    """
    from .postprocess_tuning import tune_postprocessing
    from .io import load_label
    from .metrics.evaluate import load_prediction

    preds, spacings, gts = [], [], []
    for case in split_cases(data_dir, case_ids):
        pred, spacing = load_prediction(Path(pred_dir) / f"{case.case_id}.nii.gz")
        preds.append(pred)
        spacings.append(spacing)
        gts.append(load_label(case.seg_path, case.label_convention))
    return tune_postprocessing(preds, gts, spacings, candidates=candidates, return_table=True)


def postprocess_predictions(pred_dir: PathLike, case_ids: Sequence[str], thresholds: Mapping[str, int],
                            out_dir: PathLike) -> list[Path]:
    """Apply :func:`brats_lib.inference.remove_small_components` with ``thresholds`` to the predictions
    ``pred_dir/<case-id>.nii.gz`` and write them to ``out_dir`` (same grid and header)."""
    import nibabel as nib

    from .inference import remove_small_components
    from .io import Geometry, save_label_map
    from .metrics.evaluate import load_prediction

    written = []
    for case_id in case_ids:
        source = Path(pred_dir) / f"{case_id}.nii.gz"
        label, _ = load_prediction(source)
        img = nib.load(source)
        geometry = Geometry(np.asarray(img.affine, dtype=np.float64), img.header.copy(), label.shape)
        processed = remove_small_components(label, dict(thresholds)) if thresholds else label
        written.append(save_label_map(processed, geometry, Path(out_dir) / f"{case_id}.nii.gz"))
    return written


def combine_tables(tables: Mapping[str, pd.DataFrame], key: str = "model") -> pd.DataFrame:
    """Stack per-model (or per-setting) tidy tables into one with a leading ``key`` column."""
    if not tables:
        raise ValueError("no tables to combine")
    return pd.concat([t.assign(**{key: name}) for name, t in tables.items()], ignore_index=True)[
        [key, *[c for c in next(iter(tables.values())).columns if c != key]]]


# ------------------------------------------------------------------------------------------------ tables


def _ordered_regions(table: pd.DataFrame, regions: Sequence[str] | None = None) -> list[str]:
    present = set(table["region"])
    return [r for r in (regions or REGION_ORDER) if r in present]


def _models_in(table: pd.DataFrame, models: Sequence[str] | None = None) -> list[str]:
    if "model" not in table:
        return [""]
    return list(models) if models is not None else list(dict.fromkeys(table["model"]))


def summarise_models(table: pd.DataFrame, metrics: Sequence[str] = SUMMARY_METRICS,
                     models: Sequence[str] | None = None, regions: Sequence[str] | None = None) -> pd.DataFrame:
    """Across-case statistics per model, region and metric.

    Args:
        table: tidy table with ``case``, ``region``, the ``metrics`` and (several models) ``model``.
        models: model order (default: order of appearance); regions: region order (default
            :data:`~brats_lib.labels.REGION_ORDER`, those present).
    Returns:
        long table with columns ``model``, ``region``, ``metric``, ``n`` (cases), ``mean``, ``std`` (sample,
        ddof = 1; NaN for one case), ``median``; NaN metric values are left out.
    """
    rows = []
    for model in _models_in(table, models):
        part = table if model == "" else table[table["model"] == model]
        for region in _ordered_regions(table, regions):
            in_region = part[part["region"] == region]
            for metric in metrics:
                values = in_region[metric].astype(float).dropna()
                rows.append({"model": model, "region": region, "metric": metric, "n": len(values),
                             "mean": values.mean(), "std": values.std(ddof=1), "median": values.median()})
    return pd.DataFrame(rows, columns=["model", "region", "metric", "n", "mean", "std", "median"])


def _fmt(value: float, decimals: int) -> str:
    return "—" if value is None or not np.isfinite(value) else f"{value:.{decimals}f}"


def mean_std(mean: float, std: float, decimals: int = 3) -> str:
    """``"0.512 ± 0.100"``; ``"0.512"`` when ``std`` is NaN (one case); ``"—"`` when ``mean`` is NaN."""
    if mean is None or not np.isfinite(mean):
        return "—"
    return _fmt(mean, decimals) if std is None or not np.isfinite(std) else \
        f"{_fmt(mean, decimals)} ± {_fmt(std, decimals)}"


def summary_table(summary: pd.DataFrame, decimals: int = 3, hd95_decimals: int = 1,
                  names: Mapping[str, str] = MODEL_NAMES) -> pd.DataFrame:
    """The side-by-side per-region table of :func:`summarise_models` output, formatted for display.

    Returns:
        index ``region``; columns a MultiIndex (model display name, statistic) with statistics
        ``Dice mean ± std``, ``Dice median``, ``HD95 mean ± std (mm)``, ``HD95 median (mm)`` (those of the
        summarised metrics), as strings.
    """
    regions = list(dict.fromkeys(summary["region"]))
    columns: dict[tuple[str, str], list[str]] = {}
    for model in dict.fromkeys(summary["model"]):
        label = names.get(model, model)
        part = summary[summary["model"] == model]
        for metric in dict.fromkeys(part["metric"]):
            places = hd95_decimals if metric == HD95 else decimals
            stats = part[part["metric"] == metric].set_index("region").reindex(regions)
            spread, median = _SUMMARY_COLUMNS.get(metric, (f"{metric} mean ± std", f"{metric} median"))
            columns[(label, spread)] = [mean_std(m, s, places) for m, s in zip(stats["mean"], stats["std"])]
            columns[(label, median)] = [_fmt(v, places) for v in stats["median"]]
    out = pd.DataFrame(columns, index=pd.Index(regions, name="region"))
    out.columns = pd.MultiIndex.from_tuples(out.columns, names=["model", "statistic"])
    return out


def published_table(published: Mapping[str, Mapping[str, float]] = STUDENT_PUBLISHED,
                    regions: Sequence[str] = REGION_ORDER, names: Mapping[str, str] = MODEL_NAMES
                    ) -> pd.DataFrame:
    """The published lesion-wise Dice as numbers: index ``region`` (all of ``regions``), one column per
    model display name; NaN where a region was not reported (WT, TC)."""
    return pd.DataFrame({names.get(m, m): [values.get(r, np.nan) for r in regions]
                         for m, values in published.items()}, index=pd.Index(list(regions), name="region"))


def comparison_table(summary: pd.DataFrame, published: Mapping[str, Mapping[str, float]] = STUDENT_PUBLISHED,
                     decimals: int = 3, hd95_decimals: int = 1, names: Mapping[str, str] = MODEL_NAMES,
                     published_label: str = PUBLISHED_LABEL) -> pd.DataFrame:
    """:func:`summary_table` with the published numbers appended as a separate, labelled column group.

    Returns:
        index ``region``; columns MultiIndex: (model, statistic) for each model of ``summary``, then
        (``published_label``, ``<model name> Dice``) for each published model; ``"—"`` where a region was not
        reported.
    """
    ours = summary_table(summary, decimals, hd95_decimals, names)
    theirs = published_table(published, list(ours.index), names)
    for model in theirs.columns:
        ours[(published_label, f"{model} Dice")] = [_fmt(v, decimals) for v in theirs[model]]
    return ours


def _higher_is_better(metric: str) -> bool:
    """Dice, sensitivity, specificity: higher is better; distances (``HD95``): lower is better."""
    return "HD" not in metric.upper()


def case_scores(table: pd.DataFrame, metric: str = DICE, regions: Sequence[str] | None = None) -> pd.DataFrame:
    """Per (model and) case: the mean of ``metric`` over ``regions`` (default all scored, NaN skipped).

    Returns:
        columns ``model`` (if the table has one), ``case``, ``score``; sorted best first (highest Dice,
        lowest HD95), ties by model and case id.
    """
    regions = _ordered_regions(table, regions)
    keys = ["model", "case"] if "model" in table else ["case"]
    part = table[table["region"].isin(regions)]
    scores = part.groupby(keys, sort=False)[metric].apply(lambda v: float(np.nanmean(v.astype(float))))
    out = scores.rename("score").reset_index()
    return out.sort_values(["score", *keys], ascending=[not _higher_is_better(metric)] + [True] * len(keys),
                           kind="stable", ignore_index=True)


def best_worst_cases(table: pd.DataFrame, model: str | None = None, metric: str = DICE,
                     regions: Sequence[str] | None = None) -> pd.DataFrame:
    """The best and the worst case by the mean lesion-wise ``metric`` over regions.

    Args:
        table: tidy table (with a ``model`` column for several models).
        model: the model whose cases are ranked; ``None`` ranks each model of the table separately.
    Returns:
        columns ``model``, ``rank`` (``"best"``, ``"worst"``), ``case``, ``score``: two rows per model (the same
        case twice when a model was scored on one case). Ties go to the lower case id.
    """
    if "model" not in table:
        table = table.assign(model="")
    if model is not None:
        table = table[table["model"] == model]
        if table.empty:
            raise ValueError(f"no rows for model {model!r}")
    rows = []
    for name in dict.fromkeys(table["model"]):
        scores = case_scores(table[table["model"] == name].drop(columns="model"), metric, regions)
        scores = scores.dropna(subset=["score"])
        if scores.empty:
            raise ValueError(f"model {name!r}: no case has a finite {metric}")
        best = scores.iloc[0]
        worst = scores[scores["score"] == scores["score"].iloc[-1]].iloc[0]  # lowest case id among ties
        rows.append({"model": name, "rank": "best", "case": best["case"], "score": float(best["score"])})
        rows.append({"model": name, "rank": "worst", "case": worst["case"], "score": float(worst["score"])})
    return pd.DataFrame(rows, columns=["model", "rank", "case", "score"])


def effect_table(tables: Mapping[str, pd.DataFrame], metric: str = DICE, regions: Sequence[str] | None = None,
                 baseline: str | None = None, decimals: int | None = None) -> pd.DataFrame:
    """Effect of a setting (TTA, post-processing…): the across-case mean of ``metric`` per region under each.

    Args:
        tables: setting name → tidy table of the same cases scored under that setting.
        baseline: the setting the differences are taken from (default: the first).
        decimals: round the result (``None``: no rounding).
    Returns:
        index ``setting`` (in the given order); columns the regions, ``mean`` (over regions) and
        ``Δ mean vs <baseline>`` (0 for the baseline).
    """
    if not tables:
        raise ValueError("no settings to compare")
    baseline = next(iter(tables)) if baseline is None else baseline
    if baseline not in tables:
        raise KeyError(f"baseline {baseline!r} is not one of {list(tables)}")
    case_sets = {name: set(t["case"]) for name, t in tables.items()}
    if len({frozenset(s) for s in case_sets.values()}) > 1:
        raise ValueError(f"settings were scored on different cases: {case_sets}")
    first = next(iter(tables.values()))
    regions = _ordered_regions(first, regions)
    rows = {}
    for name, t in tables.items():
        means = t.groupby("region")[metric].apply(lambda v: float(np.nanmean(v.astype(float))))
        row = {r: means.get(r, np.nan) for r in regions}
        row["mean"] = float(np.nanmean([row[r] for r in regions]))
        rows[name] = row
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "setting"
    out[f"Δ mean vs {baseline}"] = out["mean"] - out.loc[baseline, "mean"]
    return out.round(decimals) if decimals is not None else out


__all__ = [
    "DICE", "HD95", "MODEL_NAMES", "PUBLISHED_LABEL", "STUDENT_PUBLISHED", "SUMMARY_METRICS", "best_worst_cases",
    "case_scores", "combine_tables", "comparison_table", "effect_table", "evaluate_cases", "find_runs",
    "mean_std", "model_name", "postprocess_predictions", "predict_cases", "published_table", "split_cases",
    "summarise_models", "summary_table", "tune_split_postprocessing",
]
