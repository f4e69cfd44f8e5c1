"""Validated loading: NIfTI volumes, the four modalities of a case (3D files or one 4D file), label maps in any
convention → the 2024 convention. Arrays keep the stored voxel order: nothing is reoriented."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

from ..labels import to_2024
from .cases import AFFINE_TOLERANCE, MODALITIES, BratsInputError, Case, Geometry, LoadedCase, nifti_stem


def read_nifti(path: str | Path, ndim: int = 3) -> tuple[np.ndarray, nib.Nifti1Image]:
    """Read a NIfTI volume, checking everything that commonly goes wrong.

    Args:
        path: ``.nii`` or ``.nii.gz`` file.
        ndim: 3 for a volume (a trailing axis of length 1 is dropped), 4 for a multi-channel image whose
            channels lie along the last axis (the Decathlon layout).
    Returns:
        (array, image): the voxel array in stored (i, j, k) order with scaling applied (dtype as stored,
        float for scaled data) and the nibabel image (header and affine).
    Raises:
        BratsInputError: missing file, not NIfTI, corrupt or truncated gzip, wrong dimensionality, NaN or inf.
    """
    path = Path(path)
    if not path.is_file():
        raise BratsInputError(f"{path}: file does not exist")
    if nifti_stem(path.name) is None:
        raise BratsInputError(f"{path}: not a NIfTI file name (expected .nii or .nii.gz)")
    try:
        img = nib.load(path)
        if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
            raise BratsInputError(f"{path}: not a NIfTI-1/2 image ({type(img).__name__})")
        data = np.asanyarray(img.dataobj)
    except BratsInputError:
        raise
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise BratsInputError(f"{path}: corrupt or truncated gzip data ({exc})") from exc
    except Exception as exc:  # nibabel raises many types for a bad header or short data
        raise BratsInputError(f"{path}: cannot be read as NIfTI ({type(exc).__name__}: {exc})") from exc
    if ndim == 3 and data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != ndim:
        what = "a 3D volume" if ndim == 3 else "a 4D image (channels along the last axis)"
        raise BratsInputError(f"{path}: expected {what}, got {data.ndim}D with shape {data.shape}")
    if np.issubdtype(data.dtype, np.floating) and not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise BratsInputError(f"{path}: {bad} voxel(s) are NaN or infinite")
    return data, img


def geometry_of(img: nib.Nifti1Image, shape) -> Geometry:
    """The :class:`Geometry` that writes an array of ``shape`` on ``img``'s grid (a 4D file's header made 3D)."""
    header = img.header.copy()
    shape = tuple(int(s) for s in shape)
    if len(header.get_data_shape()) != len(shape):  # a channel of a 4D file: the written map is 3D
        header.set_data_shape(shape)
    return Geometry(np.asarray(img.affine, dtype=np.float64), header, shape)


def _modality_arrays(case: Case):
    """Yield ``(modality, path, array, image)`` for the four modalities, reading each file once."""
    cache: dict[Path, tuple[np.ndarray, nib.Nifti1Image]] = {}
    for modality in MODALITIES:
        path = Path(case.image_paths[modality])
        channel = case.image_channels.get(modality)
        if channel is None:
            data, img = read_nifti(path)
        else:
            if path not in cache:
                cache[path] = read_nifti(path, ndim=4)
            data4, img = cache[path]
            if channel >= data4.shape[3]:
                raise BratsInputError(
                    f"{path}: has {data4.shape[3]} channel(s) but dataset.json puts {modality} in channel {channel}"
                )
            data = data4[..., channel]
        yield modality, path, data, img


def load_image(case: Case) -> tuple[np.ndarray, Geometry]:
    """Load the four modalities of ``case``.

    Returns:
        image: (4, X, Y, Z) float32 in :data:`MODALITIES` order, raw intensities.
        geometry: the grid of the first modality, which every other modality must share.
    Raises:
        BratsInputError: any read fault, or a modality whose shape or affine differs from ``t1n``'s.
    """
    reference = None
    image = None
    for channel, (modality, path, data, img) in enumerate(_modality_arrays(case)):
        if reference is None:
            reference = (path, data, img)
            image = np.empty((len(MODALITIES),) + data.shape, dtype=np.float32)
        else:
            ref_path, ref_data, ref_img = reference
            if data.shape != ref_data.shape:
                raise BratsInputError(
                    f"{path}: shape {data.shape} differs from {ref_path.name} {ref_data.shape}"
                )
            if not np.allclose(img.affine, ref_img.affine, atol=AFFINE_TOLERANCE):
                raise BratsInputError(
                    f"{path}: affine differs from {ref_path.name} (max difference "
                    f"{np.abs(img.affine - ref_img.affine).max():.4g} mm)"
                )
        image[channel] = data
    if reference is None:  # MODALITIES is never empty: an internal invariant, not a data check
        raise RuntimeError("no modality was loaded")
    return image, geometry_of(reference[2], reference[1].shape)


def load_label(path: str | Path, convention="2024") -> np.ndarray:
    """Load a label map and return it as (X, Y, Z) uint8 in the 2024 convention.

    Args:
        path: ``…-seg.nii.gz``, ``…_seg.nii.gz``, a ``labelsTr`` file or a prediction file.
        convention: ``"2024"``, ``"legacy"`` (2018–2021 labels 1/2/4, converted to 1/2/3), or a mapping
            {stored value: 2024 label} (:attr:`Case.label_convention` gives the right one for a case).
    Raises:
        BratsInputError: read faults or unknown / non-integer label values.
    """
    data, _ = read_nifti(path)
    try:
        return to_2024(data, convention, source=str(path))
    except ValueError as exc:
        raise BratsInputError(str(exc)) from exc


def load_case_label(case: Case) -> np.ndarray:
    """The label map of ``case`` (any layout, label-only cases too) as (X, Y, Z) uint8 in the 2024 convention.

    Raises:
        BratsInputError: the case has no label file, or the file cannot be read.
    """
    if case.seg_path is None:
        raise BratsInputError(f"{case.folder}: case {case.case_id} has no label file")
    return load_label(case.seg_path, case.label_convention)


def load_case(case: Case) -> LoadedCase:
    """Load image, label (if any) and geometry of ``case``, checking that the label shares the grid."""
    image, geometry = load_image(case)
    label = None
    if case.seg_path is not None:
        label = load_case_label(case)
        if label.shape != geometry.shape:
            raise BratsInputError(
                f"{case.seg_path}: label shape {label.shape} differs from the images' {geometry.shape}"
            )
        seg_affine = nib.load(case.seg_path).affine
        if not np.allclose(seg_affine, geometry.affine, atol=AFFINE_TOLERANCE):
            raise BratsInputError(f"{case.seg_path}: affine differs from the images'")
    return LoadedCase(case, image, label, geometry)
