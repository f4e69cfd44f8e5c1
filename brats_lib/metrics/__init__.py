"""Evaluation metrics: the BraTS 2024 GLI lesion-wise scorer and surface distances.

* :mod:`.surface` — surfels, surface distances and HD95 as DeepMind's ``surface-distance``;
* :mod:`.lesionwise` — one case → the official per-region and per-lesion tables (bit-identical);
* :mod:`.confusion` — label confusion matrices (which true label each predicted label came from);
* :mod:`.evaluate` — prediction and ground-truth folders → one tidy table, and its summary.
"""

from .confusion import label_confusion
from .evaluate import LabelConventionWarning, evaluate_folders, score_case, summarise
from .lesionwise import CLEAN_COLUMNS, LESION_COLUMNS, RESULT_COLUMNS, lesion_wise_results
from .surface import hd95, surface_distances

__all__ = [
    "CLEAN_COLUMNS",
    "LESION_COLUMNS",
    "LabelConventionWarning",
    "RESULT_COLUMNS",
    "evaluate_folders",
    "hd95",
    "label_confusion",
    "lesion_wise_results",
    "score_case",
    "summarise",
    "surface_distances",
]
