import gzip
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from brats_lib import io
from brats_lib.io import BratsInputError

SHAPE = (12, 14, 10)
MNI_AFFINE = np.array([[-1.0, 0, 0, 90], [0, 1, 0, -126], [0, 0, 1, -72], [0, 0, 0, 1]])


def _write(path: Path, data: np.ndarray, affine=MNI_AFFINE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def make_case_2024(root: Path, case_id="BraTS-GLI-00007-001", seg=True, rng_seed=0) -> Path:
    rng = np.random.default_rng(rng_seed)
    folder = root / case_id
    for k, modality in enumerate(io.MODALITIES):
        _write(folder / f"{case_id}-{modality}.nii.gz", (rng.random(SHAPE) * 100 + k).astype(np.float32))
    if seg:
        label = np.zeros(SHAPE, np.uint8)
        label[2:5, 3:6, 2:4] = 2
        label[3, 4, 3] = 1
        label[4, 4, 3] = 3
        label[8:10, 8:10, 5:7] = 4
        _write(folder / f"{case_id}-seg.nii.gz", label)
    return folder


def make_case_legacy(root: Path, case_id="BraTS2021_00042") -> Path:
    folder = root / case_id
    lps = np.diag([-1.0, -1.0, 1.0, 1.0])
    for name in ("t1", "t1ce", "t2", "flair"):
        data = np.full(SHAPE, {"t1": 10, "t1ce": 20, "t2": 30, "flair": 40}[name], np.int16)
        _write(folder / f"{case_id}_{name}.nii.gz", data, lps)
    label = np.zeros(SHAPE, np.int16)
    label[1, 1, 1], label[2, 2, 2], label[3, 3, 3] = 1, 2, 4
    _write(folder / f"{case_id}_seg.nii.gz", label, lps)
    _write(folder / f"{case_id}_pred.nii.gz", label.astype(np.float32), np.eye(4))
    return folder


# ---------------------------------------------------------------------------------------------- discovery


def test_discovers_both_layouts_with_patient_ids(tmp_path):
    make_case_2024(tmp_path / "gli")
    make_case_2024(tmp_path / "gli", "BraTS-GLI-00007-002", seg=False)
    make_case_legacy(tmp_path / "old")
    cases = io.discover_cases(tmp_path)
    assert [c.case_id for c in cases] == ["BraTS-GLI-00007-001", "BraTS-GLI-00007-002", "BraTS2021_00042"]
    first, second, legacy = cases
    assert (first.patient_id, first.timepoint, first.layout) == ("00007", "001", "2024")
    assert second.patient_id == "00007" and not second.has_label
    assert (legacy.patient_id, legacy.timepoint, legacy.layout) == ("00042", None, "legacy")
    assert legacy.label_convention == "legacy"
    assert legacy.image_paths["t1c"].name == "BraTS2021_00042_t1ce.nii.gz"
    assert legacy.image_paths["t2f"].name == "BraTS2021_00042_flair.nii.gz"
    assert set(legacy.extra_paths) == {"pred"}


def test_ignores_hidden_temporary_files(tmp_path):
    folder = make_case_2024(tmp_path)
    (folder / ".BraTS-GLI-00007-001-seg.nii.gz.x.tmp.nii.gz").write_bytes(b"partial")
    (case,) = io.discover_cases(tmp_path)
    assert case.seg_path.name == "BraTS-GLI-00007-001-seg.nii.gz"


def test_missing_modality_is_named(tmp_path):
    folder = make_case_2024(tmp_path)
    (folder / "BraTS-GLI-00007-001-t2f.nii.gz").unlink()
    with pytest.raises(BratsInputError, match=r"missing modality.*BraTS-GLI-00007-001-t2f\.nii\.gz"):
        io.discover_cases(tmp_path)


def test_duplicated_modality_is_named(tmp_path):
    folder = make_case_2024(tmp_path)
    data = np.zeros(SHAPE, np.float32)
    _write(folder / "BraTS-GLI-00007-001-t1c.nii", data)
    with pytest.raises(BratsInputError, match=r"duplicated 't1c'"):
        io.discover_cases(tmp_path)


def test_empty_or_missing_root(tmp_path):
    with pytest.raises(BratsInputError, match="does not exist"):
        io.discover_cases(tmp_path / "nope")
    with pytest.raises(BratsInputError, match="no BraTS cases found; layouts tried"):
        io.discover_cases(tmp_path)


def test_label_only_folders_need_opt_in(tmp_path):
    folder = tmp_path / "BraTS2021_00001"
    _write(folder / "BraTS2021_00001_seg.nii.gz", np.zeros(SHAPE, np.uint8))
    with pytest.raises(BratsInputError, match="missing modality"):
        io.discover_cases(tmp_path)
    (case,) = io.discover_cases(tmp_path, require_images=False)
    assert case.has_label and not case.has_images


# ------------------------------------------------------------------------------------------------ loading


def test_load_case_2024(tmp_path):
    case = io.discover_cases(make_case_2024(tmp_path).parent)[0]
    loaded = io.load_case(case)
    assert loaded.image.shape == (4,) + SHAPE and loaded.image.dtype == np.float32
    # channel k was written with offset k: modality order is t1n, t1c, t2w, t2f
    expected = [nib.load(case.image_paths[m]).get_fdata().mean() for m in io.MODALITIES]
    np.testing.assert_allclose(loaded.image.mean(axis=(1, 2, 3)), expected, rtol=1e-6)
    assert loaded.label.dtype == np.uint8 and set(np.unique(loaded.label)) == {0, 1, 2, 3, 4}
    assert loaded.geometry.shape == SHAPE
    np.testing.assert_array_equal(loaded.geometry.affine, MNI_AFFINE)
    assert loaded.geometry.orientation == "LAS"
    assert loaded.geometry.spacing == (1.0, 1.0, 1.0)


def test_load_case_legacy_converts_labels_and_keeps_orientation(tmp_path):
    (case,) = io.discover_cases(make_case_legacy(tmp_path).parent)
    loaded = io.load_case(case)
    np.testing.assert_array_equal(loaded.image[:, 0, 0, 0], [10, 20, 30, 40])
    assert loaded.label[1, 1, 1] == 1 and loaded.label[2, 2, 2] == 2 and loaded.label[3, 3, 3] == 3
    assert loaded.geometry.orientation == "LPS"


def _bad_case(tmp_path, modality, data=None, affine=MNI_AFFINE, raw_bytes=None):
    folder = make_case_2024(tmp_path)
    path = folder / f"BraTS-GLI-00007-001-{modality}.nii.gz"
    if raw_bytes is not None:
        path.write_bytes(raw_bytes)
    else:
        _write(path, data, affine)
    return io.discover_cases(tmp_path)[0], path


@pytest.mark.parametrize(
    "fault, message",
    [
        ("shape", "shape"),
        ("affine", "affine differs"),
        ("4d", "expected a 3D volume"),
        ("nan", "NaN or infinite"),
        ("inf", "NaN or infinite"),
        ("truncated", "corrupt|truncated|cannot be read"),
        ("corrupt_gzip", "corrupt|cannot be read"),
        ("not_nifti", "cannot be read"),
    ],
)
def test_bad_image_names_file_and_fault(tmp_path, fault, message):
    good = np.ones(SHAPE, np.float32)
    if fault == "shape":
        case, path = _bad_case(tmp_path, "t2w", np.ones((12, 14, 11), np.float32))
    elif fault == "affine":
        shifted = MNI_AFFINE.copy()
        shifted[0, 3] += 2.0
        case, path = _bad_case(tmp_path, "t2w", good, shifted)
    elif fault == "4d":
        case, path = _bad_case(tmp_path, "t1c", np.ones(SHAPE + (3,), np.float32))
    elif fault in ("nan", "inf"):
        bad = good.copy()
        bad[3, 3, 3] = np.nan if fault == "nan" else np.inf
        case, path = _bad_case(tmp_path, "t1c", bad)
    elif fault == "truncated":
        folder = make_case_2024(tmp_path)
        path = folder / "BraTS-GLI-00007-001-t1c.nii.gz"
        content = path.read_bytes()
        path.write_bytes(content[: len(content) // 2])
        case = io.discover_cases(tmp_path)[0]
    elif fault == "corrupt_gzip":
        folder = make_case_2024(tmp_path)
        path = folder / "BraTS-GLI-00007-001-t1c.nii.gz"
        content = bytearray(path.read_bytes())
        content[40:60] = b"\xff" * 20
        path.write_bytes(bytes(content))
        case = io.discover_cases(tmp_path)[0]
    else:
        case, path = _bad_case(tmp_path, "t1c", raw_bytes=gzip.compress(b"this is not a NIfTI header" * 20))
    with pytest.raises(BratsInputError, match=message) as info:
        io.load_case(case)
    assert path.name in str(info.value)


def test_unknown_labels_name_the_file(tmp_path):
    folder = make_case_2024(tmp_path)
    seg_path = folder / "BraTS-GLI-00007-001-seg.nii.gz"
    label = np.zeros(SHAPE, np.uint8)
    label[0, 0, 0] = 7
    _write(seg_path, label)
    with pytest.raises(BratsInputError, match=r"unknown label values \[7\]") as info:
        io.load_case(io.discover_cases(tmp_path)[0])
    assert seg_path.name in str(info.value)


def test_legacy_label_3_is_unknown(tmp_path):
    folder = make_case_legacy(tmp_path)
    label = np.zeros(SHAPE, np.int16)
    label[0, 0, 0] = 3
    _write(folder / "BraTS2021_00042_seg.nii.gz", label, np.diag([-1.0, -1.0, 1.0, 1.0]))
    with pytest.raises(BratsInputError, match=r"unknown label values \[3\] for the legacy"):
        io.load_case(io.discover_cases(tmp_path)[0])


def test_missing_file_and_wrong_extension(tmp_path):
    with pytest.raises(BratsInputError, match="does not exist"):
        io.read_nifti(tmp_path / "x.nii.gz")
    other = tmp_path / "x.mha"
    other.write_bytes(b"123")
    with pytest.raises(BratsInputError, match="not a NIfTI file name"):
        io.read_nifti(other)


# ------------------------------------------------------------------------------------------------ writing


def test_save_label_map_round_trip_keeps_geometry(tmp_path):
    case = io.discover_cases(make_case_2024(tmp_path / "data").parent)[0]
    loaded = io.load_case(case)
    out = io.save_label_map(loaded.label, loaded.geometry, tmp_path / "pred" / f"{case.case_id}.nii.gz")
    img = nib.load(out)
    assert img.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(np.asanyarray(img.dataobj), loaded.label)
    np.testing.assert_array_equal(img.affine, MNI_AFFINE)  # the affine the case was written with
    assert img.header.get_sform(coded=True)[1] == nib.load(case.image_paths["t1n"]).header.get_sform(coded=True)[1]
    assert [p.name for p in out.parent.iterdir()] == [out.name]


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    case = io.discover_cases(make_case_2024(tmp_path / "data").parent)[0]
    loaded = io.load_case(case)
    target = tmp_path / "pred" / "x.nii.gz"

    def explode(img, filename):
        Path(filename).write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(io.nib, "save", explode)
    with pytest.raises(OSError, match="disk full"):
        io.save_label_map(loaded.label, loaded.geometry, target)
    assert list(target.parent.iterdir()) == []


def test_save_rejects_unknown_labels_and_wrong_shape(tmp_path):
    case = io.discover_cases(make_case_2024(tmp_path / "data").parent)[0]
    geometry = io.load_case(case).geometry
    with pytest.raises(ValueError, match="unknown label values"):
        io.save_label_map(np.full(SHAPE, 9, np.uint8), geometry, tmp_path / "bad.nii.gz")
    with pytest.raises(BratsInputError, match="differs from the geometry"):
        io.save_label_map(np.zeros((3, 3, 3), np.uint8), geometry, tmp_path / "bad.nii.gz")
    assert not any(tmp_path.glob("bad*"))


def test_raw_inputs_are_not_modified(tmp_path):
    folder = make_case_2024(tmp_path)
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.iterdir()}
    loaded = io.load_case(io.discover_cases(tmp_path)[0])
    loaded.image[:] = 0
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.iterdir()} == before


def test_case_file_name():
    assert io.case_file_name("BraTS-GLI-00001-000", "t1n") == "BraTS-GLI-00001-000-t1n.nii.gz"
    assert io.case_file_name("BraTS2021_00001", "t1c", "legacy") == "BraTS2021_00001_t1ce.nii.gz"


# -------------------------------------------------------------------------------------------- real samples


def test_real_cases_discovered(real_data_dir):
    cases = {c.case_id: c for c in io.discover_cases(real_data_dir, require_images=False)}
    assert {"BraTS-GLI-00000-000", "BraTS-GLI-00002-000", "BraTS2021_00000", "BraTS2021_01543"} <= set(cases)
    assert cases["BraTS-GLI-00002-000"].layout == "2024"
    assert cases["BraTS2021_00014"].layout == "legacy" and "pred" in cases["BraTS2021_00014"].extra_paths
    assert not cases["BraTS2021_01543"].has_images


def test_real_gli_case_loads_on_the_mni_grid(real_data_dir):
    (case,) = [c for c in io.discover_cases(real_data_dir / "brats-gli") if c.case_id == "BraTS-GLI-00002-000"]
    loaded = io.load_case(case)
    assert loaded.image.shape == (4, 182, 218, 182)
    assert loaded.geometry.orientation == "LAS"
    np.testing.assert_allclose(loaded.geometry.affine, MNI_AFFINE)
    assert set(np.unique(loaded.label)) <= {0, 1, 2, 3}
    assert 3 in loaded.label and 4 not in loaded.label
    # modality order: t1c is channel 1 — it is the file named -t1c
    t1c = np.asanyarray(nib.load(case.image_paths["t1c"]).dataobj)
    np.testing.assert_array_equal(loaded.image[1], t1c)


@pytest.mark.parametrize("case_id", ["BraTS2021_00002", "BraTS2021_00014"])
def test_real_2021_case_converts_labels_and_keeps_lps(real_data_dir, case_id):
    case = io.discover_cases(real_data_dir / "brats2021" / case_id)[0]
    loaded = io.load_case(case)
    raw = np.asanyarray(nib.load(case.seg_path).dataobj)
    assert loaded.image.shape == (4, 240, 240, 155)
    assert loaded.geometry.orientation == "LPS"
    assert set(np.unique(raw)) <= {0, 1, 2, 4}
    np.testing.assert_array_equal(loaded.label == 3, raw == 4)
    np.testing.assert_array_equal(loaded.label == 1, raw == 1)
    flair = np.asanyarray(nib.load(case.image_paths["t2f"]).dataobj)
    np.testing.assert_array_equal(loaded.image[3], flair.astype(np.float32))


def test_real_2021_prediction_with_blank_affine_loads_in_voxel_order(real_data_dir):
    case = io.discover_cases(real_data_dir / "brats2021" / "BraTS2021_00014")[0]
    pred = io.load_label(case.extra_paths["pred"], "legacy")
    gt = io.load_label(case.seg_path, "legacy")
    assert pred.shape == gt.shape and pred.dtype == np.uint8
    np.testing.assert_array_equal(nib.load(case.extra_paths["pred"]).affine, np.eye(4))
    # the arrays line up voxel for voxel: whole-tumour overlap is high despite the blank header
    dice = 2 * np.logical_and(pred > 0, gt > 0).sum() / ((pred > 0).sum() + (gt > 0).sum())
    flipped = pred[::-1, ::-1] > 0  # what world-coordinate alignment (identity vs LPS) would do
    dice_flipped = 2 * np.logical_and(flipped, gt > 0).sum() / (flipped.sum() + (gt > 0).sum())
    assert dice > 0.5 and dice > 5 * dice_flipped
    assert (gt == 1).sum() == 2  # the README's edge case: only 2 voxels of NCR


def test_prediction_written_for_real_case_overlays_input(real_data_dir, tmp_path):
    case = io.discover_cases(real_data_dir / "brats2021" / "BraTS2021_00002")[0]
    loaded = io.load_case(case)
    out = io.save_label_map(loaded.label, loaded.geometry, tmp_path / f"{case.case_id}.nii.gz")
    img, ref = nib.load(out), nib.load(case.image_paths["t1n"])
    assert img.shape == ref.shape
    np.testing.assert_array_equal(img.affine, ref.affine)
    assert nib.aff2axcodes(img.affine) == ("L", "P", "S")
    np.testing.assert_array_equal(np.asanyarray(img.dataobj), loaded.label)
    assert os.listdir(tmp_path) == [out.name]


@pytest.mark.parametrize(
    "name, stem",
    [("a.nii.gz", "a"), ("BraTS-GLI-00001-000-seg.nii", "BraTS-GLI-00001-000-seg"), ("a.b.nii.gz", "a.b"),
     ("notes.txt", None), ("a.nii.gz.bak", None), ("a.gz", None)],
)
def test_nifti_stem_is_the_one_stem_helper(name, stem):
    assert io.nifti_stem(name) == stem
    assert io.nifti_stem(Path("/some/folder") / name) == stem
