"""Inference: sliding-window prediction, mirroring TTA and ensembles, small-component post-processing,
and whole-case / whole-folder prediction back on the original grid.

* :mod:`.sliding_window` — Gaussian-weighted sliding window (one accumulator on the device);
* :mod:`.tta` — mirroring TTA and ensembles, averaged in probability space per window;
* :mod:`.postprocess` — per-region removal of small connected components and component rules
  (``postprocess.json``);
* :mod:`.predict` — run directories → ensemble → ``<case-id>.nii.gz`` files (``brats predict``).
"""

from .postprocess import (DEFAULT_THRESHOLDS, POSTPROCESS_FILE, RULE_DEFAULTS, RULES_KEY, THRESHOLDS_KEY,
                          apply_rules, check_rules, check_thresholds, load_postprocess_rules, load_postprocessing,
                          postprocess_label, remove_small_components)
from .predict import Ensemble, as_ensemble, load_ensemble, predict_case, predict_folder, prediction_path
from .sliding_window import gaussian_importance_map, sliding_window, window_slices, window_starts
from .tta import ALL_AXES, ensemble_predictor, flip_combinations, predict_probabilities

__all__ = [
    "ALL_AXES", "DEFAULT_THRESHOLDS", "POSTPROCESS_FILE", "RULES_KEY", "RULE_DEFAULTS", "THRESHOLDS_KEY",
    "Ensemble", "apply_rules", "as_ensemble", "check_rules", "check_thresholds", "ensemble_predictor", "flip_combinations", "gaussian_importance_map", "load_ensemble",
    "load_postprocess_rules", "load_postprocessing", "postprocess_label", "predict_case", "predict_folder", "predict_probabilities", "prediction_path",
    "remove_small_components", "sliding_window", "window_slices", "window_starts",
]
