"""Evaluation metrics: the BraTS 2024 GLI lesion-wise scorer and surface distances.

* :mod:`.surface` — surfels, surface distances and HD95 as DeepMind's ``surface-distance``, and the same
  HD95 without whole-box distance transforms (:func:`fast_hd95`);
* :mod:`.lesionwise` — one case → the official per-region and per-lesion tables (bit-identical);
* :mod:`.confusion` — label confusion matrices (which true label each predicted label came from);
* :mod:`.evaluate` — prediction and ground-truth folders → tidy region and lesion tables, and a summary.
"""

from .confusion import label_confusion
from .evaluate import LabelConventionWarning, evaluate_folders, score_case, summarise
from .lesionwise import CLEAN_COLUMNS, LESION_COLUMNS, RESULT_COLUMNS, lesion_wise_dice, lesion_wise_results
from .surface import fast_hd95, hd95, surface_distances

__all__ = [
    "CLEAN_COLUMNS",
    "LESION_COLUMNS",
    "LabelConventionWarning",
    "RESULT_COLUMNS",
    "evaluate_folders",
    "fast_hd95",
    "hd95",
    "label_confusion",
    "lesion_wise_dice",
    "lesion_wise_results",
    "score_case",
    "summarise",
    "surface_distances",
]
