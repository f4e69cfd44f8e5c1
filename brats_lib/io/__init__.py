"""BraTS data on disk: case discovery in every public layout, validated loading, atomic NIfTI writing.

A package by kind, every name importable from ``brats_lib.io``:

* :mod:`~brats_lib.io.cases` — :class:`Case`, :class:`Geometry`, :class:`LoadedCase`, :class:`BratsInputError`,
  :data:`MODALITIES`;
* :mod:`~brats_lib.io.naming` — case ids → patient/timepoint, modality file tags, ``dataset.json`` channel and
  label names;
* :mod:`~brats_lib.io.layouts` — :func:`discover_cases`, the one discovery every command uses (BraTS
  2018–2024 and the 2023+ cohorts, ``.nii``/``.nii.gz``, the Decathlon's Task01_BrainTumour, nnU-Net raw);
* :mod:`~brats_lib.io.loading` — :func:`read_nifti`, :func:`load_image`, :func:`load_label`,
  :func:`load_case_label`, :func:`load_case`;
* :mod:`~brats_lib.io.writing` — :func:`save_nifti`, :func:`save_label_map`, :func:`case_file_name`.

Arrays keep the stored voxel order: nothing is reoriented, so a prediction written with the input's
:class:`Geometry` overlays the input exactly. Every loaded label map is in the 2024 convention.
"""

import nibabel as nib  # noqa: F401  (tests patch brats_lib.io.nib.save)

from .cases import (AFFINE_TOLERANCE, LAYOUTS, LEGACY_MODALITY_NAMES, MODALITIES, NIFTI_SUFFIXES, BratsInputError,
                    Case, Geometry, LoadedCase, nifti_stem)
from .layouts import (LAYOUTS_TRIED, brats_case_folder, dataset_json_cases, dataset_json_of, discover_cases,
                      nifti_paths)
from .loading import geometry_of, load_case, load_case_label, load_image, load_label, read_nifti
from .naming import CaseName, parse_case_id
from .writing import case_file_name, save_label_map, save_nifti

__all__ = [
    "AFFINE_TOLERANCE", "LAYOUTS", "LAYOUTS_TRIED", "LEGACY_MODALITY_NAMES", "MODALITIES", "NIFTI_SUFFIXES",
    "BratsInputError", "Case", "CaseName", "Geometry", "LoadedCase", "brats_case_folder", "case_file_name",
    "dataset_json_cases", "dataset_json_of", "discover_cases", "geometry_of", "load_case", "load_case_label",
    "load_image", "load_label", "nifti_paths", "nifti_stem", "parse_case_id", "read_nifti", "save_label_map", "save_nifti",
]
