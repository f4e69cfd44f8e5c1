"""Figures of a patient-level cross-validation (:mod:`brats_lib.crossval`): scores per fold against the
goal, and predicted against true volume with the fold as colour (what a fold's training patients taught it).

Figures are at most 7 in wide (the book's column); regions are named on the axis, folds take the colour-blind-safe
``colorblind`` palette (the all-patients bar is grey), every axis names its unit and every figure its n.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

_MARKERS = ("o", "s", "^", "D", "v", "P")
#: The all-patients bar: neutral, so that it is never mistaken for a fold (the folds take the palette's colours).
ALL_PATIENTS_COLOR = "0.45"


def _fold_colors(folds: Sequence[str]):
    import seaborn as sns

    return dict(zip(folds, sns.color_palette("colorblind", max(len(folds), 1))))


def plot_crossval_scores(summary: pd.DataFrame, variant: str = "rules", metric: str = "lesionwise_dice",
                         regions: Sequence[str] = ("WT", "TC", "ET"), goals: Mapping[str, float] | None = None,
                         title: str | None = None):
    """Per region: one bar per fold (its mean over its patients) and the mean over all patients with the
    fold-to-fold standard deviation as error bar; ``goals`` (region → value) drawn as short black lines.

    Args:
        summary: :func:`brats_lib.crossval.aggregate` table (``fold`` as strings, ``all`` for the overall rows).
        variant: post-processing variant shown (the ``variant`` column, if any).
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    table = summary[summary["variant"] == variant] if "variant" in summary else summary
    folds = [f for f in dict.fromkeys(table["fold"].astype(str)) if f != "all"]
    overall = table[table["fold"].astype(str) == "all"].set_index("region")
    per_fold = table[table["fold"].astype(str) != "all"]
    colors = _fold_colors(folds)
    width = 0.8 / (len(folds) + 1)
    fig, ax = plt.subplots(figsize=(7.0, 3.2), layout="constrained")
    for r_index, region in enumerate(regions):
        for f_index, fold in enumerate(folds):
            row = per_fold[(per_fold["fold"].astype(str) == fold) & (per_fold["region"] == region)]
            if len(row):
                ax.bar(r_index - 0.4 + width * (f_index + 0.5), float(row[metric].iloc[0]), width * 0.92,
                       color=colors[fold], edgecolor="black", linewidth=0.4)
        if region in overall.index:
            sd = overall.loc[region].get(f"{metric}_fold_sd", np.nan)
            ax.bar(r_index - 0.4 + width * (len(folds) + 0.5), float(overall.loc[region, metric]), width * 0.92,
                   color=ALL_PATIENTS_COLOR, edgecolor="black", linewidth=0.6,
                   yerr=None if not np.isfinite(sd) else sd, capsize=3)
        if goals and region in goals:
            ax.hlines(goals[region], r_index - 0.45, r_index + 0.45, color="black", linewidth=1.4)
    ax.set_xticks(range(len(regions)), list(regions))
    ax.set_xlabel("region")
    label = {"lesionwise_dice": "lesion-wise Dice", "legacy_dice": "whole-region Dice"}.get(metric, metric)
    ax.set_ylabel(f"{label} (unitless)")
    ax.set_ylim(0, 1.05)
    ax.grid(axis="y", alpha=0.3)
    n_patients = int(overall["n_patients"].max()) if len(overall) else 0
    n_cases = int(overall["n_cases"].max()) if len(overall) else 0
    ax.set_title(title or f"{label} per fold, variant '{variant}' (n = {n_patients} patients, {n_cases} cases)",
                 fontsize=10)
    handles = [Patch(facecolor=colors[f], edgecolor="black", linewidth=0.4, label=f"fold {f}") for f in folds]
    handles.append(Patch(facecolor=ALL_PATIENTS_COLOR, edgecolor="black", linewidth=0.6,
                         label="all patients (bar: fold-to-fold sd)"))
    if goals:
        handles.append(Line2D([], [], color="black", linewidth=1.4, label="goal"))
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 5), fontsize=7, frameon=False)
    return fig


def plot_crossval_volumes(agreement: pd.DataFrame, fold_of: Mapping[str, int],
                          regions: Sequence[str] = ("WT", "TC", "ET"), models: Sequence[str] | None = None,
                          names: Mapping[str, str] | None = None):
    """Predicted against true volume (mL) per case, one panel per region, colour = the case's fold, marker =
    model; the identity line marks a perfect volume.

    Args:
        agreement: :func:`brats_lib.analysis.volume_agreement` table (optional ``model`` column).
        fold_of: case id → fold index.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    names = dict(names or {})
    data = agreement if "model" in agreement else agreement.assign(model="model")
    models = list(models) if models is not None else list(dict.fromkeys(data["model"]))
    folds = sorted({int(fold_of[c]) for c in data["case"] if c in fold_of})
    colors = _fold_colors([str(f) for f in folds])
    fig, axes = plt.subplots(1, len(regions), figsize=(7.0, 2.9), squeeze=False, layout="constrained")
    for ax, region in zip(axes[0], regions):
        part = data[data["region"] == region]
        for m_index, model in enumerate(models):
            rows = part[part["model"] == model]
            ax.scatter(rows["gt_ml"], rows["pred_ml"], s=26, marker=_MARKERS[m_index % len(_MARKERS)],
                       c=[colors[str(int(fold_of[c]))] for c in rows["case"]], edgecolor="black", linewidth=0.4)
        top = float(np.nanmax(part[["gt_ml", "pred_ml"]].to_numpy(float))) if len(part) else 1.0
        top = max(top, 1e-3) * 1.08
        ax.plot([0, top], [0, top], color="black", linewidth=0.8, linestyle="--")
        ax.set_xlim(0, top)
        ax.set_ylim(0, top)
        ax.set_xlabel("true volume (mL)", fontsize=8)
        ax.set_title(f"{region} (n = {part['case'].nunique()} cases)", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("predicted volume (mL)", fontsize=8)
    handles = [Line2D([], [], linestyle="", marker="o", color=colors[str(f)], markeredgecolor="black",
                      label=f"fold {f}") for f in folds]
    if len(models) > 1:
        handles += [Line2D([], [], linestyle="", marker=_MARKERS[i % len(_MARKERS)], color="grey",
                           markeredgecolor="black", label=names.get(m, m)) for i, m in enumerate(models)]
    handles.append(Line2D([], [], color="black", linestyle="--", label="identity (pred = true)"))
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 6), fontsize=7, frameon=False)
    return fig


__all__ = ["plot_crossval_scores", "plot_crossval_volumes"]
