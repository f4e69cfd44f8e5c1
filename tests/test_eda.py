"""Dataset summary tables (brats_lib.eda) on small hand-made cases with known answers."""

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from brats_lib import eda
from brats_lib.io import MODALITIES, discover_cases
from brats_lib.labels import REGION_ORDER

SPACING = (0.5, 1.0, 2.0)  # anisotropic: one voxel is 1 mm³ = 0.001 mL
SHAPE = (8, 6, 4)


def _label() -> np.ndarray:
    label = np.zeros(SHAPE, dtype=np.uint8)
    label[0:2, 0:2, 0] = 1          # 4 NETC voxels
    label[2:5, 0:2, 0:2] = 2        # 12 SNFH voxels
    label[5, 0:5, 0] = 3            # 5 ET voxels
    label[7, 5, 3] = 4              # 1 RC voxel
    return label


def _write_case(root: Path, case_id: str, label: np.ndarray | None, spacing=SPACING, fill: float = 100.0) -> None:
    folder = root / case_id
    folder.mkdir(parents=True)
    affine = np.diag([-spacing[0], spacing[1], spacing[2], 1.0])  # LAS, as BraTS
    for channel, modality in enumerate(MODALITIES):
        data = np.full(SHAPE, fill + 10 * channel, dtype=np.float32)
        data[:, :, -1] = 0  # background slice
        nib.save(nib.Nifti1Image(data, affine), folder / f"{case_id}-{modality}.nii.gz")
    if label is not None:
        nib.save(nib.Nifti1Image(label, affine), folder / f"{case_id}-seg.nii.gz")


@pytest.fixture()
def dataset(tmp_path: Path) -> Path:
    _write_case(tmp_path, "BraTS-GLI-00001-000", _label())
    _write_case(tmp_path, "BraTS-GLI-00001-001", np.zeros(SHAPE, np.uint8), spacing=(1.0, 1.0, 1.0))
    _write_case(tmp_path, "BraTS-GLI-00002-000", None)  # inference-only
    return tmp_path


def test_label_volumes_ml_with_anisotropic_spacing():
    volumes = eda.label_volumes(_label(), SPACING)
    assert list(volumes) == list(REGION_ORDER)
    voxel_ml = 0.5 * 1.0 * 2.0 / 1000.0
    expected = {"NETC": 4, "SNFH": 12, "ET": 5, "RC": 1, "TC": 4 + 5, "WT": 4 + 12 + 5}
    for region, voxels in expected.items():
        assert volumes[region] == pytest.approx(voxels * voxel_ml)
    assert eda.label_volumes(_label(), (2.0, 2.0, 2.0))["WT"] == pytest.approx(21 * 8 / 1000.0)


def test_cases_table_reads_headers(dataset: Path):
    table = eda.cases_table(dataset)
    assert list(table.columns) == list(eda.CASE_COLUMNS)
    assert table["case_id"].tolist() == ["BraTS-GLI-00001-000", "BraTS-GLI-00001-001", "BraTS-GLI-00002-000"]
    assert table["patient"].tolist() == ["00001", "00001", "00002"]
    assert table["timepoint"].tolist() == ["000", "001", "000"]
    assert table["has_label"].tolist() == [True, True, False]
    assert table.loc[0, "shape"] == SHAPE
    assert table.loc[0, "spacing_mm"] == SPACING
    assert table.loc[0, "orientation"] == "LAS"
    assert table.loc[0, "voxel_ml"] == pytest.approx(0.001)
    assert len(eda.cases_table(dataset, max_cases=1)) == 1


def test_label_volumes_table_skips_unlabelled_cases(dataset: Path):
    volumes = eda.label_volumes_table(dataset)
    assert list(volumes.columns) == list(eda.VOLUME_COLUMNS)
    assert set(volumes["case_id"]) == {"BraTS-GLI-00001-000", "BraTS-GLI-00001-001"}
    first = volumes[volumes["case_id"] == "BraTS-GLI-00001-000"].set_index("region")
    assert first.loc["WT", "voxels"] == 21
    assert first.loc["SNFH", "volume_ml"] == pytest.approx(12 * 0.001)
    second = volumes[volumes["case_id"] == "BraTS-GLI-00001-001"]
    assert (second["volume_ml"] == 0).all()
    summary = eda.volume_summary(volumes)
    assert summary.index.tolist() == list(REGION_ORDER)
    assert summary.loc["ET", "cases"] == 2 and summary.loc["ET", "present"] == 1
    assert summary.loc["ET", "max_ml"] == pytest.approx(0.005)


def test_intensity_samples_per_modality_and_region():
    rng = np.random.default_rng(1)
    image = rng.normal(100.0, 10.0, size=(4,) + SHAPE).astype(np.float32)
    image[:, :, :, -1] = 0.0
    label = _label()
    df = eda.intensity_samples(image, label, n_per_region=3, seed=0, case_id="c")
    assert list(df.columns) == list(eda.INTENSITY_COLUMNS)
    counts = df.groupby(["region", "modality"]).size()
    # at most 3 voxels per region, fewer for the 1-voxel RC; every modality sampled at the same voxels
    assert counts[("RC", "t1n")] == 1 and counts[("SNFH", "t2f")] == 3 and counts[("WT", "t1c")] == 3
    assert set(df["modality"]) == set(MODALITIES)
    assert set(df["region"]) == {eda.BRAIN_REGION, *REGION_ORDER}
    rc = df[df["region"] == "RC"].set_index("modality")["intensity"]
    assert rc["t1n"] == pytest.approx(float(image[0, 7, 5, 3]))
    assert rc["t2f"] == pytest.approx(float(image[3, 7, 5, 3]))
    # z-score against the brain mask (non-zero voxels) of the same modality
    brain = image[1][image[1] != 0]
    row = df[(df["region"] == "RC") & (df["modality"] == "t1c")].iloc[0]
    assert row["zscore"] == pytest.approx((row["intensity"] - brain.mean()) / brain.std(), rel=1e-5)
    # deterministic for a seed
    pd.testing.assert_frame_equal(df, eda.intensity_samples(image, label, n_per_region=3, seed=0, case_id="c"))


def test_intensity_samples_without_label_uses_brain_only():
    image = np.ones((4,) + SHAPE, dtype=np.float32)
    df = eda.intensity_samples(image, None, n_per_region=5)
    assert set(df["region"]) == {eda.BRAIN_REGION} and len(df) == 5 * 4
    assert (df["zscore"] == 0).all()  # constant image: std 0 is replaced by 1


def test_dataset_tables_loads_once_and_matches(dataset: Path):
    tables = eda.dataset_tables(dataset, n_per_region=2, seed=0)
    pd.testing.assert_frame_equal(tables["volumes"], eda.label_volumes_table(dataset))
    intensities = tables["intensities"]
    assert set(intensities["case_id"]) == {"BraTS-GLI-00001-000", "BraTS-GLI-00001-001", "BraTS-GLI-00002-000"}
    assert set(intensities.loc[intensities["case_id"] == "BraTS-GLI-00002-000", "region"]) == {eda.BRAIN_REGION}


def test_resolve_path_is_relative_to_the_repository(tmp_path, monkeypatch):
    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(tmp_path)  # e.g. nbval runs a notebook copy from a temporary folder
    assert eda.resolve_path("data/synthetic") == root / "data" / "synthetic"
    assert eda.resolve_path(tmp_path) == tmp_path
    monkeypatch.chdir(root / "notebooks")  # JupyterLab runs a notebook from its folder
    assert eda.resolve_path("data/synthetic") == root / "data" / "synthetic"


def test_as_cases_accepts_cases_and_folders(dataset: Path):
    cases = discover_cases(dataset)
    assert eda.as_cases(cases, 2) == cases[:2]
    assert [c.case_id for c in eda.as_cases(str(dataset))] == [c.case_id for c in cases]
