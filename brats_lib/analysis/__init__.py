"""Post-hoc analysis of predictions: the tables that say how well, and where and why, each model fails.

Analysis reads label maps and metric tables and returns tables and arrays; the figures are in
:mod:`brats_lib.viz`. One module per kind of analysis:

* :mod:`.runs` — run directories → predictions of one split → the lesion-wise table (:mod:`brats_lib.metrics`);
* :mod:`.tables` — per-region summaries across cases and models, the student project's reported numbers,
  best/worst cases, effects of TTA and post-processing;
* :mod:`.pairs` — prediction / ground-truth pairs on one grid (paired as ``brats evaluate`` pairs them);
* :mod:`.errors` — TP / FP / FN per region, the 5×5 label confusion (voxels, mL), error percentages;
* :mod:`.heatmaps` — per-patient FN/FP projections in three planes; streaming error frequency on the
  common MNI152 grid;
* :mod:`.boundaries` — signed, area-weighted boundary distances (bias, percentiles, normalised surface Dice);
* :mod:`.volumes` — volumes in mL per case and region (``brats volumes``), agreement and Bland–Altman;
* :mod:`.lesions` — detection rate against lesion volume, missed lesions and false-positive components;
* :mod:`.longitudinal` — volume per region across a patient's timepoints, direction of change;
* :mod:`.paired` — paired comparisons of arms on the same units (mean difference, bootstrap interval);
* :mod:`.cases` — every analysis of a case in one pass, and of prediction folders per model, streamed.

``from brats_lib import analysis; analysis.X`` reaches every public name.
"""

from .boundaries import *  # noqa: F401,F403
from .boundaries import __all__ as _boundaries
from .cases import *  # noqa: F401,F403
from .cases import __all__ as _cases
from .errors import *  # noqa: F401,F403
from .errors import __all__ as _errors
from .heatmaps import *  # noqa: F401,F403
from .heatmaps import __all__ as _heatmaps
from .lesions import *  # noqa: F401,F403
from .lesions import __all__ as _lesions
from .longitudinal import *  # noqa: F401,F403
from .longitudinal import __all__ as _longitudinal
from .paired import *  # noqa: F401,F403
from .paired import __all__ as _paired
from .pairs import *  # noqa: F401,F403
from .pairs import __all__ as _pairs
from .runs import *  # noqa: F401,F403
from .runs import __all__ as _runs
from .tables import *  # noqa: F401,F403
from .tables import __all__ as _tables
from .volumes import *  # noqa: F401,F403
from .volumes import __all__ as _volumes

__all__ = [*_runs, *_tables, *_paired, *_pairs, *_errors, *_heatmaps, *_boundaries, *_volumes, *_lesions, *_longitudinal,
           *_cases]
