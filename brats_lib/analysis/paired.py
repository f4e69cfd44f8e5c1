"""Paired comparisons of arms scored on the same units (cases or patients): the mean difference from a
baseline arm and its percentile bootstrap interval over the units.

The experiments of issue 12 fix their endpoint before running (the mean lesion-wise Dice over the six regions
per unit) and report each arm against the baseline with this table; :mod:`brats_lib.crossval` and
``benchmarks/gan_experiment.py`` use it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def bootstrap_interval(diff, n_boot: int = 10_000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``diff`` (one paired difference per unit): ``n_boot``
    resamples of the units with replacement from ``default_rng(seed)``. ValueError for no units."""
    diff = np.asarray(diff, dtype=float)
    if diff.ndim != 1 or not len(diff) or not np.isfinite(diff).all():
        raise ValueError(f"need a 1-D array of finite paired differences, got {diff!r}")
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), (n_boot, len(diff)))].mean(axis=1)
    tail = 100 * (1 - level) / 2
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def paired_summary(per_unit: pd.DataFrame, baseline: str | None = None, n_boot: int = 10_000,
                   seed: int = 0) -> pd.DataFrame:
    """One row per arm: ``arm``, ``n`` (units), ``mean``, ``paired_diff`` (mean of arm − baseline over the
    units), ``ci95_low`` / ``ci95_high`` (:func:`bootstrap_interval`; 0 for the baseline) and ``better``
    (units where the arm beats the baseline, as "k/n").

    Args:
        per_unit: index the units, one column per arm (the endpoint of each unit); every arm must score every
            unit (ValueError naming the arm otherwise).
        baseline: the arm the others are compared with (default: the first column).
    """
    if per_unit.empty or not len(per_unit.columns):
        raise ValueError("no arms or no units to compare")
    baseline = per_unit.columns[0] if baseline is None else baseline
    if baseline not in per_unit.columns:
        raise KeyError(f"baseline {baseline!r} is not one of the arms {list(per_unit.columns)}")
    missing = per_unit.columns[per_unit.isna().any()].tolist()
    if missing:
        raise ValueError(f"arm {missing[0]!r} has no score for "
                         f"{per_unit.index[per_unit[missing[0]].isna()].tolist()}; compare the same units")
    rows = []
    for arm in per_unit.columns:
        diff = (per_unit[arm] - per_unit[baseline]).to_numpy(dtype=float)
        low, high = (0.0, 0.0) if arm == baseline else bootstrap_interval(diff, n_boot, seed)
        rows.append({"arm": arm, "n": len(diff), "mean": float(per_unit[arm].mean()), "paired_diff": float(diff.mean()),
                     "ci95_low": low, "ci95_high": high, "better": f"{int((diff > 0).sum())}/{len(diff)}"})
    return pd.DataFrame(rows)


__all__ = ["bootstrap_interval", "paired_summary"]
