"""The records the io package hands out: a case on disk, a grid, a case in memory, and the input error."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import nibabel as nib
import numpy as np

from ..errors import BratsInputError  # noqa: F401  (re-exported by brats_lib.io)

#: Modality order of every loaded image, channel 0..3.
MODALITIES: tuple[str, ...] = ("t1n", "t1c", "t2w", "t2f")

#: 2018–2021 file suffix of each modality.
LEGACY_MODALITY_NAMES: Mapping[str, str] = {"t1n": "t1", "t1c": "t1ce", "t2w": "t2", "t2f": "flair"}

NIFTI_SUFFIXES = (".nii.gz", ".nii")

#: Largest difference between two modalities' affines still taken as the same grid (mm).
AFFINE_TOLERANCE = 1e-3

#: Case layouts (:attr:`Case.layout`) and what each means.
LAYOUTS: Mapping[str, str] = {
    "2024": "BraTS 2023+ file names (<case>-t1n/-t1c/-t2w/-t2f/-seg), labels in the 2024 numbering",
    "legacy": "BraTS 2018-2021 file names (<case>_t1/_t1ce/_t2/_flair/_seg), labels 1/2/4",
    "msd": "Medical Segmentation Decathlon: one 4D image per case, channels and labels from dataset.json",
    "nnunet": "nnU-Net raw: one file per channel (<case>_0000 ...), channels and labels from dataset.json",
}


def nifti_stem(name: str | Path) -> str | None:
    """The name of a NIfTI file without its ``.nii.gz`` / ``.nii`` suffix; ``None`` for other files.

    The one helper for NIfTI file stems (``"a.b.nii.gz"`` → ``"a.b"``; ``"x.txt"`` → ``None``).
    """
    name = name.name if isinstance(name, Path) else str(name)
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return None


strip_nifti_suffix = nifti_stem  # the name used inside this package


@dataclass(frozen=True)
class Case:
    """One case (one patient at one timepoint) found on disk.

    Attributes:
        case_id: the folder name for BraTS case folders (``BraTS-GLI-00000-000``, ``Brats18_CBICA_ABM_1``…),
            the file name without channel suffix for Decathlon / nnU-Net cases (``BRATS_001``).
        patient_id: the patient part of the id where the naming carries one (``00000``, ``CBICA_ABM``,
            ``Training_001``), else the case id itself; splits keep a patient's cases together.
        timepoint: ``000``… for the 2023+ naming, ``None`` where the naming has no timepoint.
        layout: a key of :data:`LAYOUTS`: ``"2024"``, ``"legacy"``, ``"msd"`` or ``"nnunet"``.
        image_paths: modality (``t1n``…) → file, for the four modalities (the same 4D file for all four in
            the Decathlon layout).
        seg_path: the label file, or ``None`` for an inference-only case.
        extra_paths: other NIfTI files in the folder named ``<case>_<tag>``/``<case>-<tag>`` (e.g. ``pred``).
        image_channels: modality → index along the 4th axis of its file, for 4D images (Decathlon); empty
            when every modality is its own 3D file.
        label_values: stored label value → 2024 label, read from a ``dataset.json``; ``None`` when the
            layout fixes the convention (``"2024"`` or ``"legacy"``).
    """

    case_id: str
    patient_id: str
    timepoint: str | None
    layout: str
    image_paths: Mapping[str, Path]
    seg_path: Path | None
    extra_paths: Mapping[str, Path] = field(default_factory=dict)
    image_channels: Mapping[str, int] = field(default_factory=dict)
    label_values: Mapping[int, int] | None = None

    @property
    def has_label(self) -> bool:
        return self.seg_path is not None

    @property
    def label_convention(self):
        """How this case's ``seg`` file is numbered, for :func:`brats_lib.io.load_label`: ``"2024"``,
        ``"legacy"`` (2018–2021: 1/2/4), or a mapping {stored value: 2024 label} from a ``dataset.json``."""
        if self.label_values is not None:
            return dict(self.label_values)
        return "legacy" if self.layout == "legacy" else "2024"

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
