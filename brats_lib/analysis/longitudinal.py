"""Change over time: a patient's tumour volume across timepoints, predicted against true.

BraTS 2023+ case ids carry the patient and the timepoint: ``BraTS-GLI-PPPPP-TTT``. For every patient with at
least two timepoints, :func:`timepoint_table` lists the volume per region and timepoint (true and predicted),
and :func:`change_table` the change between consecutive timepoints and whether the model gets its
**direction** right: a change is ``"grow"`` or ``"shrink"`` when its magnitude exceeds ``tolerance_ml``,
``"stable"`` otherwise, and the direction is right when the predicted and the true change fall in the same
class.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..io import parse_case_id
from ..labels import REGION_ORDER
#: Default change (mL) below which a region counts as stable.
STABLE_TOLERANCE_ML = 0.5
DIRECTIONS = ("shrink", "stable", "grow")


def patient_timepoint(case_id: str) -> tuple[str, int] | None:
    """``("BraTS-GLI-00001", 1)`` for ``BraTS-GLI-00001-001`` (parsed by :func:`brats_lib.io.parse_case_id`);
    ``None`` for an id without a timepoint."""
    name = parse_case_id(case_id)
    if name.timepoint is None or not str(name.timepoint).isdigit():
        return None
    patient = f"BraTS-{name.cohort}-{name.patient}" if name.cohort else name.patient
    return patient, int(name.timepoint)


def timepoint_table(volumes: pd.DataFrame) -> pd.DataFrame:
    """Volumes of the patients with ≥ 2 timepoints, from a table with ``case``, ``region``, ``gt_ml``,
    ``pred_ml`` (and ``model``) such as :func:`~brats_lib.analysis.volumes.volume_agreement`.

    Returns:
        the rows of those patients with ``patient`` and ``timepoint`` (int) columns added, sorted by (model,)
        patient, region, timepoint; empty when no patient has two timepoints.
    """
    parsed = volumes["case"].map(patient_timepoint)
    table = volumes[parsed.notna()].copy()
    table["patient"] = [p[0] for p in parsed[parsed.notna()]]
    table["timepoint"] = [p[1] for p in parsed[parsed.notna()]]
    counts = table.groupby("patient")["timepoint"].nunique()
    table = table[table["patient"].isin(counts[counts >= 2].index)]
    table["_region_order"] = table["region"].map({r: i for i, r in enumerate(REGION_ORDER)})
    keys = [k for k in ("model", "patient", "_region_order", "timepoint") if k in table]
    return table.sort_values(keys, kind="stable").drop(columns="_region_order").reset_index(drop=True)


def direction(change_ml: float, tolerance_ml: float = STABLE_TOLERANCE_ML) -> str:
    """``"grow"`` / ``"shrink"`` when ``|change_ml| > tolerance_ml``, else ``"stable"``."""
    if not np.isfinite(change_ml) or abs(change_ml) <= tolerance_ml:
        return "stable"
    return "grow" if change_ml > 0 else "shrink"


def change_table(volumes: pd.DataFrame, tolerance_ml: float = STABLE_TOLERANCE_ML) -> pd.DataFrame:
    """Change between consecutive timepoints per (model,) patient and region.

    Returns:
        columns (``model``,) ``patient``, ``region``, ``from_case``, ``to_case``, ``gt_change_ml``,
        ``pred_change_ml``, ``gt_direction``, ``pred_direction``, ``direction_correct``.
    """
    table = timepoint_table(volumes)
    keys = ["model", "patient", "region"] if "model" in table else ["patient", "region"]
    rows = []
    for key, part in table.groupby(keys, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        part = part.sort_values("timepoint")
        for before, after in zip(part.iloc[:-1].itertuples(), part.iloc[1:].itertuples()):
            gt_change, pred_change = after.gt_ml - before.gt_ml, after.pred_ml - before.pred_ml
            gt_dir, pred_dir = direction(gt_change, tolerance_ml), direction(pred_change, tolerance_ml)
            rows.append({**dict(zip(keys, key)), "from_case": before.case, "to_case": after.case,
                         "gt_change_ml": gt_change, "pred_change_ml": pred_change, "gt_direction": gt_dir,
                         "pred_direction": pred_dir, "direction_correct": gt_dir == pred_dir})
    return pd.DataFrame(rows, columns=[*keys, "from_case", "to_case", "gt_change_ml", "pred_change_ml",
                                       "gt_direction", "pred_direction", "direction_correct"])


def change_summary(changes: pd.DataFrame, names: dict[str, str] | None = None, decimals: int = 1) -> pd.DataFrame:
    """The :func:`change_table` of several models side by side, one row per patient, region and step.

    Args:
        changes: :func:`change_table` with a ``model`` column.
        names: display name per model key (default: the keys).
    Returns:
        index (patient, region, step ``"TTT→TTT"``); columns ``true change (mL)`` and one per model, each cell the
        predicted change in mL with ✓ (direction right) or ✗ (wrong), e.g. ``"−46.4 ✓"``; models in the order
        of ``names``, then any others in the order they appear. Empty when ``changes`` is.
    """
    if changes.empty:
        return pd.DataFrame(columns=["true change (mL)"])
    names = names or {}
    table = changes.copy()
    step = [f"{patient_timepoint(a)[1]:03d}→{patient_timepoint(b)[1]:03d}"
            for a, b in zip(table["from_case"], table["to_case"])]
    table["step"] = step
    keys = ["patient", "region", "step"]

    def signed(value: float) -> str:  # "+1.5", "−2.0"; a change that rounds to zero is "+0.0", never "−0.0"
        return f"{round(float(value), decimals) + 0.0:+.{decimals}f}".replace("-", "−")

    def cell(row) -> str:
        return f"{signed(row.pred_change_ml)} {'✓' if row.direction_correct else '✗'}"

    table["cell"] = [cell(row) for row in table.itertuples()]
    wide = table.pivot(index=keys, columns="model", values="cell")
    present = list(dict.fromkeys(table["model"]))
    models = [m for m in names if m in present] + [m for m in present if m not in names]
    wide = wide[models].rename(columns=lambda m: names.get(m, m))
    truth = table.drop_duplicates(keys).set_index(keys)["gt_change_ml"]
    wide.insert(0, "true change (mL)", [signed(v) for v in truth.reindex(wide.index)])
    order = {r: i for i, r in enumerate(REGION_ORDER)}
    wide = wide.sort_index(key=lambda level: level.map(order) if level.name == "region" else level)
    wide.columns.name = None
    return wide


__all__ = ["DIRECTIONS", "STABLE_TOLERANCE_ML", "change_summary", "change_table", "direction",
           "patient_timepoint", "timepoint_table"]
