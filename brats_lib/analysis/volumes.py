"""Tumour burden: volume per case and region in mL, predicted against true, and its agreement.

* :func:`region_volumes` / :func:`volume_table`: voxel count × voxel volume (|det| of the affine) per region
  (WT, TC, NETC, SNFH, ET, RC) of one label map or of every label map of a folder — the table that
  ``brats volumes --seg DIR --out FILE.csv`` writes. ``DIR`` is read as ``brats evaluate --gt`` reads it
  (:func:`brats_lib.metrics.evaluate.find_ground_truths`: a dataset root in either layout, 2018–2021 labels
  converted, or a flat folder of 2024-convention label maps).
* :func:`volume_agreement` / :func:`bland_altman`: predicted vs true volume per case and region (from the
  error table of :mod:`.errors`) and the Bland–Altman bias and 95 % limits of agreement.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..labels import LABELS_2024, REGION_ORDER, REGIONS
from ..metrics.surface import bounding_box
from .pairs import read_label_map, voxel_volume_ml

#: Columns of :func:`volume_table` (and of the CSV of ``brats volumes``).
VOLUME_COLUMNS = ("case", "region", "voxels", "volume_ml")


def label_counts(label: np.ndarray) -> np.ndarray:
    """(5,) int64 voxel count of each label 0–4 (counted inside the bounding box of the non-zero voxels)."""
    counts = np.zeros(len(LABELS_2024), dtype=np.int64)
    box = bounding_box(label)
    if box is not None:
        counts += np.bincount(label[box].ravel(), minlength=len(LABELS_2024))[: len(LABELS_2024)]
    counts[0] += label.size - counts.sum()
    return counts


def region_volumes(label: np.ndarray, voxel_ml: float = 0.001,
                   regions: Sequence[str] = REGION_ORDER) -> dict[str, tuple[int, float]]:
    """``{region: (voxels, mL)}`` of one 2024-convention label map."""
    counts = label_counts(label)
    out = {}
    for region in regions:
        n = int(counts[list(REGIONS[region])].sum())
        out[region] = (n, n * float(voxel_ml))
    return out


def volume_table(seg_dir, regions: Sequence[str] = REGION_ORDER, progress: bool = False) -> pd.DataFrame:
    """Volume of every region of every label map of ``seg_dir`` (dataset root or flat folder).

    Returns:
        one row per case and region (cases sorted, regions in ``regions`` order), columns
        :data:`VOLUME_COLUMNS`; ``volume_ml`` = voxels × |det(affine[:3, :3])| / 1000.
    Raises:
        BratsInputError: missing folder, no label map, unreadable file or unknown label values (named).
    """
    from ..metrics.evaluate import find_ground_truths

    truths = find_ground_truths(seg_dir)
    items = sorted(truths.items())
    if progress:
        from ..progress import tqdm

        items = tqdm(items, desc="volumes", unit="case")
    rows = []
    for case_id, (path, convention) in items:
        label, affine = read_label_map(path, convention)
        for region, (n, ml) in region_volumes(label, voxel_volume_ml(affine), regions).items():
            rows.append({"case": case_id, "region": region, "voxels": n, "volume_ml": ml})
    return pd.DataFrame(rows, columns=list(VOLUME_COLUMNS))


def write_volume_table(seg_dir, out_csv, progress: bool = False) -> pd.DataFrame:
    """:func:`volume_table` written atomically to ``out_csv`` (floats in their shortest exact form; nothing is
    written when an input is bad)."""
    from .._atomic import atomic_path

    table = volume_table(seg_dir, progress=progress)
    with atomic_path(Path(out_csv)) as tmp:
        table.to_csv(tmp, index=False)
    return table


def volume_agreement(errors: pd.DataFrame) -> pd.DataFrame:
    """Predicted against true volume per (model,) case and region, from an :func:`~.errors.error_table`.

    Returns:
        columns (``model``,) ``case``, ``region``, ``gt_ml``, ``pred_ml``, ``diff_ml`` (= pred − truth),
        ``mean_ml`` (= (pred + truth) / 2, the Bland–Altman abscissa).
    """
    keys = [k for k in ("model", "case", "region") if k in errors]
    out = errors[keys + ["gt_ml", "pred_ml"]].copy()
    out["diff_ml"] = out["pred_ml"] - out["gt_ml"]
    out["mean_ml"] = (out["pred_ml"] + out["gt_ml"]) / 2.0
    return out.reset_index(drop=True)


def bland_altman(agreement: pd.DataFrame) -> pd.DataFrame:
    """Bland–Altman statistics per (model and) region of a :func:`volume_agreement` table.

    Returns:
        columns (``model``,) ``region``, ``n``, ``bias_ml`` (mean of pred − truth), ``sd_ml`` (sample SD,
        ddof 1; NaN for one case), ``loa_low_ml`` and ``loa_high_ml`` (bias ∓ 1.96 SD).
    """
    keys = ["model", "region"] if "model" in agreement else ["region"]
    rows = []
    for key, part in agreement.groupby(keys, sort=False):
        diffs = part["diff_ml"].astype(float)
        bias, sd = float(diffs.mean()), float(diffs.std(ddof=1)) if len(diffs) > 1 else float("nan")
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(keys, key)), "n": len(diffs), "bias_ml": bias, "sd_ml": sd,
                     "loa_low_ml": bias - 1.96 * sd, "loa_high_ml": bias + 1.96 * sd})
    return pd.DataFrame(rows, columns=[*keys, "n", "bias_ml", "sd_ml", "loa_low_ml", "loa_high_ml"])


__all__ = ["VOLUME_COLUMNS", "bland_altman", "label_counts", "region_volumes", "volume_agreement",
           "volume_table", "write_volume_table"]
