"""BraTS case discovery, validated loading and atomic NIfTI writing.

Two folder layouts are recognised under a dataset root (at any depth):

* 2023/2024: ``BraTS-GLI-XXXXX-YYY/BraTS-GLI-XXXXX-YYY-{t1n,t1c,t2w,t2f,seg}.nii.gz``
  (labels in the 2024 convention; ``XXXXX`` is the patient, ``YYY`` the timepoint);
* 2018–2021: ``<case>/<case>_{t1,t1ce,t2,flair,seg}.nii.gz`` (labels 1/2/4, converted on load).

A case without a ``seg`` file is an inference-only case. Arrays keep the stored voxel order: nothing is
reoriented, so a prediction written with the input's :class:`Geometry` overlays the input exactly.
"""

from __future__ import annotations

import gzip
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import nibabel as nib
import numpy as np

from ._atomic import atomic_path
from .labels import to_2024

#: Modality order of every loaded image, channel 0..3.
MODALITIES: tuple[str, ...] = ("t1n", "t1c", "t2w", "t2f")

#: 2018–2021 file suffix of each modality.
LEGACY_MODALITY_NAMES: Mapping[str, str] = {"t1n": "t1", "t1c": "t1ce", "t2w": "t2", "t2f": "flair"}

NIFTI_SUFFIXES = (".nii.gz", ".nii")

#: Largest difference between two modalities' affines still taken as the same grid (mm).
AFFINE_TOLERANCE = 1e-3

_CASE_2024 = re.compile(r"^(?P<prefix>BraTS-[A-Za-z]+)-(?P<patient>\d+)-(?P<timepoint>\d+)$")
_CASE_LEGACY = re.compile(r"^(?P<prefix>BraTS\d*)_(?P<patient>\d+)$")


class BratsInputError(ValueError):
    """Input data that cannot be used; the message names the file or folder and the fault."""


@dataclass(frozen=True)
class Case:
    """One case (one patient at one timepoint) found on disk.

    Attributes:
        case_id: folder name, e.g. ``BraTS-GLI-00000-000`` or ``BraTS2021_00000``.
        patient_id: the patient part of the id (``00000``); splits keep a patient's timepoints together.
        timepoint: ``000``… for the 2023+ layout, ``None`` for the 2018–2021 layout.
        layout: ``"2024"`` or ``"legacy"``.
        image_paths: modality (``t1n``…) → file, for the four modalities.
        seg_path: the label file, or ``None`` for an inference-only case.
        extra_paths: other NIfTI files in the folder named ``<case>_<tag>``/``<case>-<tag>`` (e.g. ``pred``).
    """

    case_id: str
    patient_id: str
    timepoint: str | None
    layout: str
    image_paths: Mapping[str, Path]
    seg_path: Path | None
    extra_paths: Mapping[str, Path] = field(default_factory=dict)

    @property
    def has_label(self) -> bool:
        return self.seg_path is not None

    @property
    def label_convention(self) -> str:
        """``"2024"`` or ``"legacy"``: the label convention of this case's ``seg`` file."""
        return "2024" if self.layout == "2024" else "legacy"

    @property
    def has_images(self) -> bool:
        return bool(self.image_paths)

    @property
    def folder(self) -> Path:
        return next(iter(self.image_paths.values()), self.seg_path).parent


@dataclass
class Geometry:
    """What is needed to write an array that overlays the input exactly.

    Attributes:
        affine: (4, 4) float64 voxel → world (mm) matrix of the input.
        header: the input's NIfTI header (a copy).
        shape: the original 3D shape (X, Y, Z) in voxels.
    """

    affine: np.ndarray
    header: nib.Nifti1Header
    shape: tuple[int, int, int]

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along each array axis (column norms of the affine)."""
        return tuple(float(s) for s in np.linalg.norm(self.affine[:3, :3], axis=0))

    @property
    def orientation(self) -> str:
        """Axis codes such as ``"LAS"`` or ``"LPS"``."""
        return "".join(nib.aff2axcodes(self.affine))


@dataclass
class LoadedCase:
    """A case in memory.

    Attributes:
        case: where it came from.
        image: (4, X, Y, Z) float32, channels in :data:`MODALITIES` order, raw intensities.
        label: (X, Y, Z) uint8 in the 2024 convention, or ``None`` for an inference-only case.
        geometry: the input grid.
    """

    case: Case
    image: np.ndarray
    label: np.ndarray | None
    geometry: Geometry


# ----------------------------------------------------------------------------------------------- discovery


def nifti_stem(name: str | Path) -> str | None:
    """The name of a NIfTI file without its ``.nii.gz`` / ``.nii`` suffix; ``None`` for other files.

    The one helper for NIfTI file stems (``"a.b.nii.gz"`` → ``"a.b"``; ``"x.txt"`` → ``None``).
    """
    name = name.name if isinstance(name, Path) else str(name)
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return None


def _case_files(folder: Path, case_id: str, separator: str) -> dict[str, list[Path]]:
    """Tag (``t1n``, ``seg``, ``pred``…) → files named ``<case_id><separator><tag>.nii[.gz]``."""
    files: dict[str, list[Path]] = {}
    prefix = case_id + separator
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        stem = nifti_stem(path.name)
        if stem is None or not stem.startswith(prefix):
            continue
        files.setdefault(stem[len(prefix):], []).append(path)
    return files


def _parse_case_folder(folder: Path, require_images: bool = True) -> Case | None:
    match_2024 = _CASE_2024.match(folder.name)
    match_legacy = _CASE_LEGACY.match(folder.name)
    if match_2024:
        layout, separator, names = "2024", "-", {m: m for m in MODALITIES}
        patient, timepoint = match_2024["patient"], match_2024["timepoint"]
    elif match_legacy:
        layout, separator, names = "legacy", "_", dict(LEGACY_MODALITY_NAMES)
        patient, timepoint = match_legacy["patient"], None
    else:
        return None
    files = _case_files(folder, folder.name, separator)
    if not files:
        return None
    for tag, paths in files.items():
        if len(paths) > 1:
            raise BratsInputError(
                f"{folder}: duplicated {tag!r} file: " + ", ".join(p.name for p in paths)
            )
    missing = [f"{folder.name}{separator}{names[m]}.nii.gz" for m in MODALITIES if names[m] not in files]
    label_only = len(missing) == len(MODALITIES) and "seg" in files
    if missing and not (label_only and not require_images):
        raise BratsInputError(f"{folder}: missing modality file(s): {', '.join(missing)}")
    image_paths = {m: files[names[m]][0] for m in MODALITIES if names[m] in files}
    seg = files.get("seg", [None])[0]
    used = set(names.values()) | {"seg"}
    extra = {tag: paths[0] for tag, paths in files.items() if tag not in used}
    return Case(folder.name, patient, timepoint, layout, image_paths, seg, extra)


def discover_cases(root: str | Path, require_images: bool = True) -> list[Case]:
    """Find every BraTS case folder under ``root`` (either layout, any depth), sorted by case id.

    Args:
        root: dataset folder.
        require_images: if False, folders holding only a ``seg`` file are returned as label-only cases
            (empty ``image_paths``), e.g. a ground-truth folder for evaluation.

    Raises:
        BratsInputError: ``root`` is missing, holds no case, or a case folder has a missing or duplicated
            modality.
    """
    root = Path(root)
    if not root.is_dir():
        raise BratsInputError(f"{root}: dataset folder does not exist")
    candidates = [root] + sorted(p for p in root.rglob("*") if p.is_dir() and not p.name.startswith("."))
    cases = [case for folder in candidates if (case := _parse_case_folder(folder, require_images)) is not None]
    if not cases:
        raise BratsInputError(
            f"{root}: no BraTS case folders found (expected BraTS-GLI-XXXXX-YYY/…-t1n.nii.gz or "
            f"BraTS2021_XXXXX/…_t1.nii.gz)"
        )
    ids = [c.case_id for c in cases]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise BratsInputError(f"{root}: case id(s) found in more than one folder: {duplicates}")
    return sorted(cases, key=lambda c: c.case_id)


# ------------------------------------------------------------------------------------------------- reading


def read_nifti(path: str | Path) -> tuple[np.ndarray, nib.Nifti1Image]:
    """Read a 3D NIfTI volume, checking everything that commonly goes wrong.

    Returns:
        (array, image): the voxel array in stored (i, j, k) order with scaling applied (dtype as stored,
        float for scaled data) and the nibabel image (header and affine).
    Raises:
        BratsInputError: missing file, not NIfTI, corrupt or truncated gzip, not 3D, NaN or inf voxels.
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
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise BratsInputError(f"{path}: expected a 3D volume, got {data.ndim}D with shape {data.shape}")
    if np.issubdtype(data.dtype, np.floating) and not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise BratsInputError(f"{path}: {bad} voxel(s) are NaN or infinite")
    return data, img


def _geometry(img: nib.Nifti1Image, shape) -> Geometry:
    return Geometry(np.asarray(img.affine, dtype=np.float64), img.header.copy(), tuple(int(s) for s in shape))


def load_image(case: Case) -> tuple[np.ndarray, Geometry]:
    """Load the four modalities of ``case``.

    Returns:
        image: (4, X, Y, Z) float32 in :data:`MODALITIES` order, raw intensities.
        geometry: the grid of the first modality, which every other modality must share.
    Raises:
        BratsInputError: any read fault, or a modality whose shape or affine differs from ``t1n``'s.
    """
    reference: tuple[Path, np.ndarray, nib.Nifti1Image] | None = None
    image = None
    for channel, modality in enumerate(MODALITIES):
        path = case.image_paths[modality]
        data, img = read_nifti(path)
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
    assert reference is not None
    return image, _geometry(reference[2], reference[1].shape)


def load_label(path: str | Path, convention: str = "2024") -> np.ndarray:
    """Load a label map and return it as (X, Y, Z) uint8 in the 2024 convention.

    Args:
        path: ``…-seg.nii.gz``, ``…_seg.nii.gz`` or a prediction file.
        convention: ``"2024"`` or ``"legacy"`` (2018–2021 labels 1/2/4, converted to 1/2/3).
    Raises:
        BratsInputError: read faults or unknown / non-integer label values.
    """
    data, _ = read_nifti(path)
    try:
        return to_2024(data, convention, source=str(path))
    except ValueError as exc:
        raise BratsInputError(str(exc)) from exc


def load_case(case: Case) -> LoadedCase:
    """Load image, label (if any) and geometry of ``case``, checking that the label shares the grid."""
    image, geometry = load_image(case)
    label = None
    if case.seg_path is not None:
        label = load_label(case.seg_path, case.label_convention)
        if label.shape != geometry.shape:
            raise BratsInputError(
                f"{case.seg_path}: label shape {label.shape} differs from the images' {geometry.shape}"
            )
        seg_affine = nib.load(case.seg_path).affine
        if not np.allclose(seg_affine, geometry.affine, atol=AFFINE_TOLERANCE):
            raise BratsInputError(f"{case.seg_path}: affine differs from the images'")
    return LoadedCase(case, image, label, geometry)


# ------------------------------------------------------------------------------------------------- writing


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
    if nifti_stem(path.name) is None:
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
