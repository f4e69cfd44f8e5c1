"""Figures and viewers: every figure and widget of the project, drawn from analysis results.

* :mod:`.slices` — planes, slices in mm, intensity windows, label overlays, montages, legends;
* :mod:`.plots` — case overlays, montages, label volumes, intensities, per-region scores, best/worst cases;
* :mod:`.analysis_plots` — error maps, error heatmaps, boundary distances, volume agreement, lesion detection and
  change over time (the figures of :mod:`brats_lib.analysis`);
* :mod:`.crossval_plots` — a patient-level cross-validation: scores per fold against a goal, predicted against
  true volume coloured by fold;
* :mod:`.widgets` — the :class:`SliceBrowser` (layers, two models side by side, scores; a static panel in
  the book where a control needs a live kernel).

``from brats_lib import viz; viz.plot_case_overlay(...)`` keeps working: every public name is re-exported here.
Colours come from the one house palette of :mod:`brats_lib.labels` (Okabe–Ito, colour-blind safe).
"""

from ..labels import ERROR_COLORS, LABEL_COLORS, REGION_COLORS
from .slices import *  # noqa: F401,F403
from .slices import __all__ as _slices_all
from .plots import *  # noqa: F401,F403
from .plots import __all__ as _plots_all
from .analysis_plots import *  # noqa: F401,F403
from .analysis_plots import __all__ as _analysis_all
from .widgets import *  # noqa: F401,F403
from .widgets import __all__ as _widgets_all
from .crossval_plots import *  # noqa: F401,F403
from .crossval_plots import __all__ as _crossval_all

__all__ = ["ERROR_COLORS", "LABEL_COLORS", "REGION_COLORS", *_slices_all, *_plots_all, *_analysis_all,
           *_widgets_all, *_crossval_all]
