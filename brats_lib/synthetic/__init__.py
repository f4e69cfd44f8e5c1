"""Synthetic BraTS-like post-treatment glioma cases: the default dataset of every notebook, test and demo.

Cases are written in the official BraTS 2024 GLI layout on the MNI152 1 mm grid (182×218×182, LAS, origin
(90, -126, -72)), deterministically from a seed::

    from brats_lib.synthetic import generate_dataset, synthesise_case
    image, seg, meta = synthesise_case(seed=0, index=3)          # in memory
    folders = generate_dataset("data/synthetic", n_cases=8)       # on disk, + dataset.json
    generate_dataset("data/synthetic", n_cases=8, followups=True)  # + follow-up timepoints (-001)

Modules: :mod:`.anatomy` (template, tissue maps, deformation), :mod:`.lesions` (variants, label painting),
:mod:`.contrasts` (t1n/t1c/t2w/t2f physics and nuisances), :mod:`.dataset` (cases, files, manifest),
:mod:`.fields` (smooth random fields), :mod:`.followup` (follow-up timepoints: the lesion grows, shrinks or is
resected on the same anatomy).
"""

from .anatomy import GRID_AFFINE, GRID_SHAPE, grid_geometry, load_anatomy
from .contrasts import TISSUE_MEANS
from .dataset import (
    GENERATOR_VERSION,
    MANIFEST_NAME,
    case_id_for,
    generate_dataset,
    label_volumes_ml,
    synthesise_case,
    write_case,
)
from .followup import CHANGES, followup_changes
from .lesions import VARIANT_LABELS, VARIANTS, variant_for

__all__ = [
    "CHANGES",
    "GENERATOR_VERSION",
    "GRID_AFFINE",
    "GRID_SHAPE",
    "MANIFEST_NAME",
    "TISSUE_MEANS",
    "VARIANTS",
    "VARIANT_LABELS",
    "case_id_for",
    "followup_changes",
    "generate_dataset",
    "grid_geometry",
    "label_volumes_ml",
    "load_anatomy",
    "synthesise_case",
    "variant_for",
    "write_case",
]
