"""Tables of evaluated predictions: per-region summaries across cases and models, the comparison with the
student project's reported numbers, best/worst cases, and the effect of a setting (TTA, post-processing).

Input: the tidy lesion-wise table (one row per case and region) of :func:`brats_lib.analysis.evaluate_cases`
or :func:`brats_lib.metrics.evaluate_folders`; several models' tables are stacked with a ``model`` column
(:func:`combine_tables`). The figures of these tables are in :mod:`brats_lib.viz` (``plot_region_scores``,
``plot_best_worst_overlays``).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..labels import REGION_ORDER

#: Lesion-wise metrics summarised by default (Dice is unitless, HD95 in mm).
DICE = "LesionWise_Score_Dice"
HD95 = "LesionWise_Score_HD95"
SUMMARY_METRICS: tuple[str, ...] = (DICE, HD95)

#: Model key (run directory name) → display name.
MODEL_NAMES: Mapping[str, str] = {"fcnn": "FCNN", "unet3d": "3D U-Net", "resunet3d": "Residual 3D U-Net"}

#: Column group of the published numbers in :func:`comparison_table`, and their label wherever they appear.
PUBLISHED_LABEL = "Dice as reported by the student project (voxel-wise, its validation set)"

#: Caveat printed beside the published numbers.
STUDENT_REGION_NOTE = (
    "The student project's numbers are voxel-wise Dice on its own validation set (not the lesion-wise BraTS "
    "2024 score computed here), and its single-subject discussion maps its classes to regions differently "
    "from its results table; the table's mapping is the one shown.")

#: Dice as reported by the student project (voxel-wise, its validation set) per region, as in its results
#: table (its own data split and preprocessing, so not comparable number for number with the lesion-wise
#: results here; its single-subject discussion maps classes to regions differently from that table). Keys are
#: model keys of :data:`MODEL_NAMES`.
STUDENT_PUBLISHED: Mapping[str, Mapping[str, float]] = {
    "unet3d": {"ET": 0.095, "NETC": 0.297, "SNFH": 0.693, "RC": 0.524},
    "resunet3d": {"ET": 0.325, "NETC": 0.422, "SNFH": 0.797, "RC": 0.61},
}

#: Column labels of :func:`summary_table` (per model), metric → (mean ± std label, median label).
_SUMMARY_COLUMNS: Mapping[str, tuple[str, str]] = {
    DICE: ("Dice mean ± std", "Dice median"),
    HD95: ("HD95 mean ± std (mm)", "HD95 median (mm)"),
}


def model_name(key: str) -> str:
    """Display name of a model key (``unet3d`` → ``3D U-Net``); unknown keys are returned as given."""
    return MODEL_NAMES.get(key, key)


# ------------------------------------------------------------------------------------------------ tables


def combine_tables(tables: Mapping[str, pd.DataFrame], key: str = "model") -> pd.DataFrame:
    """Stack per-model (or per-setting) tidy tables into one with a leading ``key`` column."""
    if not tables:
        raise ValueError("no tables to combine")
    return pd.concat([t.assign(**{key: name}) for name, t in tables.items()], ignore_index=True)[
        [key, *[c for c in next(iter(tables.values())).columns if c != key]]]


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
    """The Dice as reported by the student project (voxel-wise, its validation set) as numbers: index ``region`` (all of ``regions``), one column per
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
    "DICE", "HD95", "MODEL_NAMES", "PUBLISHED_LABEL", "STUDENT_PUBLISHED", "STUDENT_REGION_NOTE", "SUMMARY_METRICS",
    "best_worst_cases",
    "case_scores", "combine_tables", "comparison_table", "effect_table", "mean_std", "model_name",
    "published_table", "summarise_models", "summary_table",
]
