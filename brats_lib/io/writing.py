"""Atomic NIfTI writing on an input's grid, and the 2024 file names of a case."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from .._atomic import atomic_path
from ..labels import to_2024
from .cases import LEGACY_MODALITY_NAMES, BratsInputError, Geometry, strip_nifti_suffix


def save_nifti(array: np.ndarray, geometry: Geometry, path: str | Path, dtype=None) -> Path:
    """Write ``array`` on the grid of ``geometry`` to ``path`` atomically.

    Args:
        array: (X, Y, Z) volume with ``geometry.shape``.
        geometry: affine and header of the input it overlays.
        path: ``.nii.gz`` or ``.nii`` target; its folder is created.
        dtype: stored data type (default: the array's).
    """
    path = Path(path)
    if tuple(array.shape) != tuple(geometry.shape):
        raise BratsInputError(f"{path}: array shape {array.shape} differs from the geometry {geometry.shape}")
    if strip_nifti_suffix(path.name) is None:
        raise BratsInputError(f"{path}: output must end in .nii.gz or .nii")
    dtype = np.dtype(dtype or array.dtype)
    header = geometry.header.copy()
    header.set_data_dtype(dtype)
    img = nib.Nifti1Image(np.asarray(array, dtype=dtype), geometry.affine, header)
    img.header.set_slope_inter(1.0, 0.0)
    with atomic_path(path) as tmp:
        nib.save(img, tmp)
    return path


def save_label_map(label: np.ndarray, geometry: Geometry, path: str | Path) -> Path:
    """Write a 2024-convention label map as uint8 on the input's grid, atomically."""
    to_2024(label, "2024", source=str(path))
    return save_nifti(np.asarray(label, dtype=np.uint8), geometry, path, dtype=np.uint8)


def case_file_name(case_id: str, tag: str, layout: str = "2024") -> str:
    """File name of a case's ``tag`` (modality or ``seg``) in ``layout``, e.g. ``BraTS-GLI-00001-000-t1n.nii.gz``."""
    if layout == "2024":
        return f"{case_id}-{tag}.nii.gz"
    legacy = dict(LEGACY_MODALITY_NAMES).get(tag, tag)
    return f"{case_id}_{legacy}.nii.gz"
