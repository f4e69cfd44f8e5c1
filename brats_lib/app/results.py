"""What the app shows and hands back: region volumes (mL), the volumes table and CSV, the official lesion-wise
scores against a ground truth, and downloadable files.

Volumes count voxels on the input grid: a region's volume is its voxel count × the voxel volume (the product
of the voxel sizes, mm³) / 1000.
"""

from __future__ import annotations

import base64
import html
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import Geometry, save_label_map
from ..labels import REGIONS, region_hex

#: Rows of the volumes table, sub-regions first, then the composite regions.
VOLUME_REGIONS: tuple[str, ...] = ("NETC", "SNFH", "ET", "RC", "TC", "WT")

#: Lesion-wise score columns shown in the page (official names).
SCORE_COLUMNS: tuple[str, ...] = ("LesionWise_Score_Dice", "LesionWise_Score_HD95", "Num_TP", "Num_FP", "Num_FN",
                                  "Legacy_Dice")


def voxel_volume_ml(spacing) -> float:
    """Volume of one voxel in mL (voxel sizes in mm)."""
    return float(np.prod([float(s) for s in spacing])) / 1000.0


def region_volumes(label: np.ndarray, spacing) -> pd.DataFrame:
    """One row per region of :data:`VOLUME_REGIONS`: ``region``, ``voxels``, ``ml``.

    Args:
        label: (X, Y, Z) 2024-convention label map.
        spacing: voxel size (mm) along the three axes.
    """
    counts = np.bincount(np.asarray(label, dtype=np.uint8).ravel(), minlength=5)
    unit = voxel_volume_ml(spacing)
    rows = []
    for region in VOLUME_REGIONS:
        voxels = int(sum(counts[v] for v in REGIONS[region]))
        rows.append({"region": region, "voxels": voxels, "ml": voxels * unit})
    return pd.DataFrame(rows, columns=["region", "voxels", "ml"])


def format_ml(ml: float) -> str:
    """mL with three decimals (one 1 mm voxel is 0.001 mL)."""
    return f"{ml:.3f}"


def volumes_html(table: pd.DataFrame, caption: str = "") -> str:
    """An HTML ``<table>``: header ``region | voxels | mL``, one row per region, the region's colour swatch."""
    rows = "".join(
        f'<tr><td><span style="display:inline-block;width:10px;height:10px;margin-right:6px;'
        f'background:{region_hex(r.region)};border:1px solid #333"></span>{html.escape(r.region)}</td>'
        f'<td style="text-align:right">{int(r.voxels)}</td><td style="text-align:right">{format_ml(r.ml)}</td></tr>'
        for r in table.itertuples())
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return (f'<table class="brats-volumes-table" style="border-collapse:collapse">{cap}'
            f"<thead><tr><th>region</th><th>voxels</th><th>mL</th></tr></thead><tbody>{rows}</tbody></table>")


def volumes_csv(table: pd.DataFrame, case_id: str) -> str:
    """CSV text: ``case_id,region,voxels,ml`` (mL to 6 decimals)."""
    out = table.assign(case_id=case_id)[["case_id", "region", "voxels", "ml"]]
    return out.to_csv(index=False, float_format="%.6f")


def lesion_scores(label: np.ndarray, gt: np.ndarray, spacing) -> pd.DataFrame:
    """The official BraTS 2024 lesion-wise results of the prediction against the ground truth (one row per
    region, :func:`brats_lib.metrics.lesion_wise_results`)."""
    from ..metrics import lesion_wise_results

    results, _ = lesion_wise_results(label, gt, spacing)
    return results


def scores_html(results: pd.DataFrame) -> str:
    """The lesion-wise Dice and HD95 (mm) per region as an HTML table."""
    head = "".join(f"<th>{html.escape(c.replace('LesionWise_Score_', 'lesion-wise ').replace('_', ' '))}"
                   f"{' (mm)' if 'HD95' in c else ''}</th>" for c in SCORE_COLUMNS)
    rows = []
    for r in results.to_dict("records"):
        cells = "".join(f'<td style="text-align:right">{r[c]:.4g}</td>' if isinstance(r[c], float)
                        else f'<td style="text-align:right">{r[c]}</td>' for c in SCORE_COLUMNS)
        rows.append(f"<tr><td>{html.escape(str(r['Labels']))}</td>{cells}</tr>")
    return (f'<table class="brats-scores-table" style="border-collapse:collapse"><thead><tr><th>region</th>{head}'
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table>")


def label_nifti_bytes(label: np.ndarray, geometry: Geometry, folder: str | Path | None = None) -> bytes:
    """The prediction as ``.nii.gz`` bytes on the input grid (its affine and header, uint8), written with
    :func:`brats_lib.io.save_label_map` into ``folder`` (a private temporary folder) and read back."""
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        path = save_label_map(label, geometry, Path(tmp) / "prediction.nii.gz")
        return path.read_bytes()


def download_link_html(filename: str, data: bytes, mime: str, text: str | None = None) -> str:
    """An ``<a download>`` link carrying ``data`` in a ``data:`` URL (works offline and in Voilà)."""
    payload = base64.b64encode(data).decode("ascii")
    name = html.escape(filename, quote=True)
    return (f'<a download="{name}" href="data:{mime};base64,{payload}" class="brats-download-link" '
            f'style="margin-right:16px">{html.escape(text or filename)}</a>')
