"""Shared fixtures. Real sample data lives in ``../shared`` beside the repository and is never copied in."""

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
REAL_DATA = SHARED / "data" / "real"


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """``../shared/data/real`` (read-only); tests using it skip when it is absent."""
    if not (REAL_DATA / "README.md").is_file():
        pytest.skip(f"real BraTS sample cases not found at {REAL_DATA} (../shared is absent)")
    return REAL_DATA


TINY_AFFINE = np.diag([-1.0, 1.0, 1.0, 1.0])


def write_tiny_case(root: Path, index: int, shape=(28, 28, 28)) -> Path:
    """A small BraTS-2024-layout case: a spherical tumour (SNFH ⊃ ET ⊃ NETC) brighter in every modality,
    plus an RC slab in odd-numbered cases; for training and prediction tests that need real files."""
    from brats_lib.io import MODALITIES

    rng = np.random.default_rng(index)
    case_id = f"BraTS-GLI-{index:05d}-000"
    folder = root / case_id
    folder.mkdir(parents=True)
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"))
    centre = np.array(shape) // 2 + rng.integers(-3, 4, 3)
    r = np.sqrt(((grid - centre[:, None, None, None]) ** 2).sum(0))
    brain = r < 13
    label = np.zeros(shape, np.uint8)
    label[r < 7] = 2
    label[r < 4] = 3
    label[r < 2] = 1
    label[(grid[0] < 8) & brain & (label == 0)] = 4 if index % 2 else 0
    for m in MODALITIES:
        image = (1.0 + 0.5 * rng.standard_normal(shape) + (label > 0) * (1 + label)) * brain
        nib.save(nib.Nifti1Image(image.astype(np.float32), TINY_AFFINE), folder / f"{case_id}-{m}.nii.gz")
    nib.save(nib.Nifti1Image(label, TINY_AFFINE), folder / f"{case_id}-seg.nii.gz")
    return folder


def tiny_train_config(root: Path, iterations: int = 1) -> dict:
    """TrainConfig fields that train a 2-stage U-Net on :func:`write_tiny_case` cases for ``iterations`` steps
    (one epoch) in a second or two: the cross-validation and chapter tests' folds."""
    return {"cache_dir": str(Path(root) / "cache"), "model": {"name": "unet3d", "features_per_stage": [4, 8]},
            "patch_size": 16, "batch_size": 1, "epochs": 1, "iterations_per_epoch": int(iterations),
            "val_patches": 1, "device": "cpu", "workers": 0, "preprocess": {"downsample": 1}}


@pytest.fixture(scope="session")
def executed_notebooks(tmp_path_factory) -> Path:
    """The book's notebooks executed once per session (see ``tests/executed.py``): the book test builds and reads
    them, the notebook test checks that every cell ran."""
    from executed import execute_book_notebooks

    return execute_book_notebooks(tmp_path_factory.mktemp("executed"))
