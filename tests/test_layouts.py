"""Every public BraTS layout as it sits on disk: tiny cases written in each naming from one 2024-layout case
load to the same arrays and the same 2024 labels; mixed folders are read case by case or refused; every
error names what is missing; the CLI commands that take a data folder read them all."""

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from brats_lib import cli, io
from brats_lib.data import patient_of
from brats_lib.io import BratsInputError

SHAPE = (10, 12, 8)
AFFINE = np.array([[-1.0, 0, 0, 90], [0, -1, 0, 120], [0, 0, 1, -72], [0, 0, 0, 1]])  # LPS, like 2018–2021
LEGACY_TAGS = {"t1n": "t1", "t1c": "t1ce", "t2w": "t2", "t2f": "flair"}
# The Decathlon's Task01_BrainTumour dataset.json, as shipped
MSD_MODALITY = {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"}
MSD_LABELS = {"0": "background", "1": "edema", "2": "non-enhancing tumor", "3": "enhancing tumour"}
MSD_ORDER = ("t2f", "t1n", "t1c", "t2w")
MSD_FROM_2024 = {0: 0, 1: 2, 2: 1, 3: 3}  # 2024 label → Decathlon value (NETC→2, SNFH→1, ET→3)


def source_arrays(seed=0, rc=False):
    """Four distinguishable modalities (channel k is offset by 100·k) and a 2024 label map with 1, 2, 3 (and 4)."""
    rng = np.random.default_rng(seed)
    image = np.stack([rng.random(SHAPE).astype(np.float32) + 100 * k for k in range(4)])
    label = np.zeros(SHAPE, np.uint8)
    label[2:6, 3:7, 2:5] = 2
    label[3:5, 4:6, 3] = 3
    label[4, 5, 3] = 1
    if rc:
        label[7:9, 8:10, 5:7] = 4
    return image, label


def _save(path: Path, data, affine=AFFINE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def write_2024(root: Path, case_id: str, image, label, suffix=".nii.gz", seg=True) -> Path:
    folder = root / case_id
    for k, m in enumerate(io.MODALITIES):
        _save(folder / f"{case_id}-{m}{suffix}", image[k])
    if seg:
        _save(folder / f"{case_id}-seg{suffix}", label)
    return folder


def write_legacy(root: Path, case_id: str, image, label, suffix=".nii.gz", seg_name="seg") -> Path:
    """2018–2021 naming: <case>_{t1,t1ce,t2,flair,seg}, labels 1 NCR, 2 ED, 4 ET; ``seg_name=None``: no label,
    another string: the label file is named exactly that (the 2020 case 355 oddity)."""
    folder = root / case_id
    for k, m in enumerate(io.MODALITIES):
        _save(folder / f"{case_id}_{LEGACY_TAGS[m]}{suffix}", image[k])
    legacy = np.where(label == 3, 4, label).astype(np.int16)
    if seg_name == "seg":
        _save(folder / f"{case_id}_seg{suffix}", legacy)
    elif seg_name is not None:
        _save(folder / seg_name, legacy)
    return folder


def write_msd(root: Path, cases: dict, modality=MSD_MODALITY, labels=MSD_LABELS, order=MSD_ORDER) -> Path:
    """Task01_BrainTumour: dataset.json, imagesTr/<case>.nii.gz 4D (channels last, in ``order``), labelsTr."""
    (root / "imagesTr").mkdir(parents=True, exist_ok=True)
    (root / "labelsTr").mkdir(parents=True, exist_ok=True)
    (root / "dataset.json").write_text(json.dumps({
        "name": "BRATS", "tensorImageSize": "4D", "modality": modality, "labels": labels,
        "training": [{"image": f"./imagesTr/{c}.nii.gz", "label": f"./labelsTr/{c}.nii.gz"} for c in cases]}))
    for case_id, (image, label) in cases.items():
        stacked = np.stack([image[io.MODALITIES.index(m)] for m in order], axis=-1)
        _save(root / "imagesTr" / f"{case_id}.nii.gz", stacked)
        lut = np.array([MSD_FROM_2024[v] for v in range(4)], np.uint8)
        _save(root / "labelsTr" / f"{case_id}.nii.gz", lut[label])
        (root / "imagesTr" / f"._{case_id}.nii.gz").write_bytes(b"\x00\x05\x16\x07 AppleDouble")  # as shipped
    return root


# nnU-Net's BraTS conversion: channels T1, T1ce, T2, Flair; labels 1 edema, 2 NETC, 3 ET; region-based labels
NNUNET_CHANNELS = {"0": "T1", "1": "T1ce", "2": "T2", "3": "Flair"}
NNUNET_REGION_LABELS = {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": [3]}


def write_nnunet(root: Path, cases: dict, channels=NNUNET_CHANNELS, labels=NNUNET_REGION_LABELS,
                 value_of=MSD_FROM_2024, split="Tr", label_cases=None) -> Path:
    (root / f"images{split}").mkdir(parents=True, exist_ok=True)
    (root / f"labels{split}").mkdir(parents=True, exist_ok=True)
    (root / "dataset.json").write_text(json.dumps({
        "channel_names": channels, "labels": labels, "numTraining": len(cases), "file_ending": ".nii.gz"}))
    by_name = {k: io.naming.modality_of_channel(v) for k, v in channels.items()}
    for case_id, (image, label) in cases.items():
        for key, modality in by_name.items():
            _save(root / f"images{split}" / f"{case_id}_{int(key):04d}.nii.gz", image[io.MODALITIES.index(modality)])
        if label is not None and (label_cases is None or case_id in label_cases):
            lut = np.array([value_of[v] for v in range(5) if v in value_of], np.uint8)
            _save(root / f"labels{split}" / f"{case_id}.nii.gz", lut[label])
    return root


def assert_same_case(case, image, label):
    loaded = io.load_case(case)
    np.testing.assert_array_equal(loaded.image, image)
    assert loaded.image.dtype == np.float32
    if label is None:
        assert loaded.label is None
    else:
        assert loaded.label.dtype == np.uint8
        np.testing.assert_array_equal(loaded.label, label)
    assert loaded.geometry.shape == SHAPE
    np.testing.assert_array_equal(loaded.geometry.affine, AFFINE)
    return loaded


# ---------------------------------------------------------------------------------- every BraTS release


BRATS_NAMINGS = [
    # case id, writer, suffix, patient, timepoint
    ("Brats18_CBICA_ABM_1", "legacy", ".nii.gz", "CBICA_ABM", None),
    ("Brats18_2013_0_1", "legacy", ".nii.gz", "2013_0", None),
    ("Brats18_TCIA01_131_1", "legacy", ".nii", "TCIA01_131", None),
    ("BraTS19_CBICA_AAB_1", "legacy", ".nii.gz", "CBICA_AAB", None),
    ("BraTS19_TMC_06290_1", "legacy", ".nii.gz", "TMC_06290", None),
    ("BraTS20_Training_001", "legacy", ".nii", "Training_001", None),
    ("BraTS20_Validation_001", "legacy", ".nii.gz", "Validation_001", None),
    ("BraTS2021_00000", "legacy", ".nii.gz", "00000", None),
    ("BraTS2021_01666", "legacy", ".nii", "01666", None),
    ("BraTS-GLI-00000-000", "2024", ".nii.gz", "00000", "000"),
    ("BraTS-GLI-02105-102", "2024", ".nii", "02105", "102"),
    ("BraTS-MEN-00004-000", "2024", ".nii.gz", "00004", "000"),
    ("BraTS-PED-00012-000", "2024", ".nii", "00012", "000"),
    ("BraTS-SSA-00002-000", "2024", ".nii.gz", "00002", "000"),
    ("BraTS-MET-00001-000", "2024", ".nii.gz", "00001", "000"),
]


@pytest.mark.parametrize("case_id, naming, suffix, patient, timepoint", BRATS_NAMINGS)
def test_every_brats_naming_loads_like_its_2024_source(tmp_path, case_id, naming, suffix, patient, timepoint):
    image, label = source_arrays(rc=naming == "2024")
    (source,) = io.discover_cases(write_2024(tmp_path / "source", "BraTS-GLI-00099-000", image, label).parent)
    reference = assert_same_case(source, image, label)
    if naming == "legacy":
        write_legacy(tmp_path / "copy" / "HGG", case_id, image, label, suffix)
    else:
        write_2024(tmp_path / "copy", case_id, image, label, suffix)
    (case,) = io.discover_cases(tmp_path / "copy")
    assert (case.case_id, case.patient_id, case.timepoint, case.layout) == (case_id, patient, timepoint, naming)
    assert all(p.name.endswith(suffix) and p.name.startswith(case_id) for p in case.image_paths.values())
    loaded = assert_same_case(case, reference.image, reference.label)
    assert loaded.geometry.orientation == "LPS"
    assert patient_of(case_id) == patient  # splits group by the same patient from a bare id


def test_inference_only_case_of_any_naming(tmp_path):
    image, label = source_arrays()
    write_legacy(tmp_path, "BraTS20_Validation_125", image, label, ".nii", seg_name=None)
    write_2024(tmp_path, "BraTS-SSA-00126-000", image, label, seg=False)
    cases = io.discover_cases(tmp_path)
    assert [c.case_id for c in cases] == ["BraTS-SSA-00126-000", "BraTS20_Validation_125"]
    for case in cases:
        assert not case.has_label
        assert_same_case(case, image, None)


def test_unknown_naming_is_its_own_patient(tmp_path):
    image, label = source_arrays()
    write_legacy(tmp_path, "patient7_scanA", image, label)
    (case,) = io.discover_cases(tmp_path)
    assert (case.case_id, case.patient_id, case.timepoint, case.layout) == ("patient7_scanA", "patient7_scanA",
                                                                            None, "legacy")
    assert_same_case(case, image, label)


# -------------------------------------------------------------------------------- BraTS 2020's odd label


def test_brats2020_case_355_odd_label_file_is_found(tmp_path):
    image, label = source_arrays()
    write_legacy(tmp_path, "BraTS20_Training_355", image, label, ".nii", seg_name="W39_1998.09.19_Segm.nii")
    write_legacy(tmp_path, "BraTS20_Training_354", image, label, ".nii")
    cases = io.discover_cases(tmp_path)
    assert [c.seg_path.name for c in cases] == ["BraTS20_Training_354_seg.nii", "W39_1998.09.19_Segm.nii"]
    for case in cases:
        assert_same_case(case, image, label)


def test_two_possible_label_files_are_named(tmp_path):
    image, label = source_arrays()
    folder = write_legacy(tmp_path, "BraTS20_Training_355", image, label, ".nii", seg_name="W39_Segm.nii")
    _save(folder / "old_seg.nii", np.zeros(SHAPE, np.int16))
    with pytest.raises(BratsInputError) as info:
        io.discover_cases(tmp_path)
    assert str(info.value) == (f"{folder}: no BraTS20_Training_355_seg.nii, and 2 files could be the label "
                               f"(W39_Segm.nii, old_seg.nii): rename the label file to BraTS20_Training_355_seg.nii")


def test_missing_label_with_a_stray_file_says_which_file_is_missing(tmp_path):
    image, label = source_arrays()
    folder = write_legacy(tmp_path, "BraTS20_Training_355", image, label, ".nii", seg_name="W39_1998.09.19.nii")
    with pytest.raises(BratsInputError) as info:
        io.discover_cases(tmp_path)
    message = str(info.value)
    assert message.startswith(f"{folder}: no label file BraTS20_Training_355_seg.nii ")
    assert "W39_1998.09.19.nii is not named after the case" in message
    assert "rename the label file to BraTS20_Training_355_seg.nii" in message


# -------------------------------------------------------------------------------------------- Decathlon


def test_decathlon_task01_reads_channel_order_and_labels_from_dataset_json(tmp_path):
    image, label = source_arrays()
    root = write_msd(tmp_path / "Task01_BrainTumour", {"BRATS_001": (image, label)})
    raw = np.asanyarray(nib.load(root / "labelsTr" / "BRATS_001.nii.gz").dataobj)
    assert raw[label == 2].max() == 1 and raw[label == 1].max() == 2  # the file really is in MSD numbering
    (case,) = io.discover_cases(tmp_path)
    assert (case.case_id, case.patient_id, case.timepoint, case.layout) == ("BRATS_001", "001", None, "msd")
    assert dict(case.image_channels) == {"t2f": 0, "t1n": 1, "t1c": 2, "t2w": 3}
    assert case.label_convention == {0: 0, 1: 2, 2: 1, 3: 3}
    loaded = assert_same_case(case, image, label)
    np.testing.assert_array_equal(io.load_case_label(case), label)
    written = nib.load(io.save_label_map(label, loaded.geometry, tmp_path / "pred" / "BRATS_001.nii.gz"))
    assert written.shape == SHAPE and written.header["dim"][0] == 3  # a 3D map on the 4D input's grid
    np.testing.assert_array_equal(written.affine, nib.load(case.image_paths["t1n"]).affine)
    np.testing.assert_array_equal(np.asarray(written.dataobj), label)


def test_decathlon_order_is_read_not_assumed(tmp_path):
    image, label = source_arrays()
    modality = {"0": "T2w", "1": "FLAIR", "2": "T1w", "3": "T1-Gd"}
    write_msd(tmp_path, {"BRATS_002": (image, label)}, modality=modality, order=("t2w", "t2f", "t1n", "t1c"))
    (case,) = io.discover_cases(tmp_path)
    assert_same_case(case, image, label)


def test_pointing_at_imagesTr_or_labelsTr_reads_that_part(tmp_path):
    image, label = source_arrays()
    root = write_msd(tmp_path, {"BRATS_001": (image, label), "BRATS_002": (image, label)})
    assert [c.case_id for c in io.discover_cases(root / "imagesTr")] == ["BRATS_001", "BRATS_002"]
    labels_only = io.discover_cases(root / "labelsTr", require_images=False)
    assert [c.has_images for c in labels_only] == [True, True]
    (root / "imagesTr" / "BRATS_002.nii.gz").unlink()
    cases = io.discover_cases(root / "labelsTr", require_images=False)
    assert [(c.case_id, c.has_images) for c in cases] == [("BRATS_001", True), ("BRATS_002", False)]
    np.testing.assert_array_equal(io.load_case_label(cases[1]), label)
    with pytest.raises(BratsInputError) as info:
        io.discover_cases(root)
    assert str(info.value) == (f"{root / 'labelsTr' / 'BRATS_002.nii.gz'}: no image for case BRATS_002 in "
                               f"{root / 'imagesTr'} (expected BRATS_002.nii.gz or BRATS_002_0000.nii.gz …)")


def test_decathlon_image_with_too_few_channels_or_3d(tmp_path):
    image, label = source_arrays()
    root = write_msd(tmp_path, {"BRATS_001": (image, label)})
    path = root / "imagesTr" / "BRATS_001.nii.gz"
    _save(path, np.stack([image[0], image[1], image[2]], axis=-1))
    (case,) = io.discover_cases(root)
    with pytest.raises(BratsInputError) as info:
        io.load_case(case)
    assert str(info.value) == f"{path}: has 3 channel(s) but dataset.json puts t2w in channel 3"
    _save(path, image[0])
    with pytest.raises(BratsInputError) as info:
        io.load_case(case)
    assert str(info.value) == (f"{path}: expected a 4D image (channels along the last axis), got 3D with "
                               f"shape {SHAPE}")


def test_decathlon_label_value_outside_dataset_json(tmp_path):
    image, label = source_arrays()
    root = write_msd(tmp_path, {"BRATS_001": (image, label)})
    path = root / "labelsTr" / "BRATS_001.nii.gz"
    bad = np.asanyarray(nib.load(path).dataobj).copy()
    bad[0, 0, 0] = 4
    _save(path, bad)
    with pytest.raises(BratsInputError) as info:
        io.load_case(io.discover_cases(root)[0])
    assert str(info.value) == (f"{path}: unknown label values [4] for the dataset.json mapping "
                               f"{{0: 0, 1: 2, 2: 1, 3: 3}} convention (allowed: [0, 1, 2, 3])")


# --------------------------------------------------------------------------------------------- nnU-Net


def test_nnunet_raw_region_based_labels(tmp_path):
    image, label = source_arrays()
    root = write_nnunet(tmp_path / "Dataset137_BraTS2021",
                        {"BraTS2021_00000": (image, label), "BraTS2021_00002": (image, label)})
    cases = io.discover_cases(tmp_path)
    assert [(c.case_id, c.patient_id, c.layout) for c in cases] == [("BraTS2021_00000", "00000", "nnunet"),
                                                                     ("BraTS2021_00002", "00002", "nnunet")]
    assert cases[0].image_paths["t2f"] == root / "imagesTr" / "BraTS2021_00000_0003.nii.gz"
    assert cases[0].label_convention == {0: 0, 1: 2, 2: 1, 3: 3}
    for case in cases:
        assert_same_case(case, image, label)


def test_nnunet_plain_labels_with_rc_and_own_channel_order(tmp_path):
    image, label = source_arrays(rc=True)
    channels = {"0": "FLAIR", "1": "T1c", "2": "T2w", "3": "T1n"}
    labels = {"background": 0, "NETC": 1, "SNFH": 2, "ET": 3, "resection cavity": 4}
    write_nnunet(tmp_path, {"BraTS-GLI-00001-001": (image, label)}, channels, labels,
                 value_of={0: 0, 1: 1, 2: 2, 3: 3, 4: 4})
    (case,) = io.discover_cases(tmp_path)
    assert (case.patient_id, case.timepoint) == ("00001", "001")
    assert_same_case(case, image, label)


def test_nnunet_test_images_without_labels(tmp_path):
    image, label = source_arrays()
    write_nnunet(tmp_path, {"case_a": (image, None)}, split="Ts")
    (case,) = io.discover_cases(tmp_path)
    assert (case.case_id, case.patient_id, case.has_label) == ("case_a", "case_a", False)
    assert_same_case(case, image, None)


def _nnunet_json_error(tmp_path, **spec):
    image, label = source_arrays()
    root = write_nnunet(tmp_path, {"c1": (image, label)})
    data = json.loads((root / "dataset.json").read_text())
    data.update(spec)
    for key, value in spec.items():
        if value is None:
            del data[key]
    (root / "dataset.json").write_text(json.dumps(data))
    with pytest.raises(BratsInputError) as info:
        io.discover_cases(root)
    return str(info.value), root / "dataset.json"


def test_unmappable_channel_name(tmp_path):
    message, path = _nnunet_json_error(tmp_path, channel_names={"0": "T1", "1": "T1ce", "2": "T2", "3": "DWI"})
    assert message.startswith(f"{path}: channel 3 'DWI' is not one of the four BraTS modalities (names understood")
    assert "t2f: flair, t2flair" in message


def test_missing_and_doubled_channels(tmp_path):
    message, path = _nnunet_json_error(tmp_path / "a", channel_names={"0": "T1", "1": "T1ce", "2": "Flair"})
    assert message == f"{path}: no channel for t2w (channels: 0 'T1', 1 'T1ce', 2 'Flair')"
    message, path = _nnunet_json_error(tmp_path / "b", channel_names={"0": "T1", "1": "T1w", "2": "T2", "3": "FLAIR"})
    assert message == f"{path}: channels 0 'T1' and 1 'T1w' both name t1n"
    message, path = _nnunet_json_error(tmp_path / "c", channel_names=None)
    assert message == f"{path}: no 'channel_names' (nnU-Net) or 'modality' (Decathlon) object naming the image channels"


def test_unmappable_label_names(tmp_path):
    pediatric = {"background": 0, "ET": 1, "NonEnh": 2, "Cystic": 3, "Edema": 4}
    message, path = _nnunet_json_error(tmp_path / "a", labels=pediatric)
    assert message.startswith(f"{path}: label 'NonEnh' (value 2) cannot be mapped to a BraTS 2024 label "
                              f"(names understood — background: background")
    message, path = _nnunet_json_error(tmp_path / "b", labels={"background": 0, "vessels": [1, 2]})
    assert message.startswith(f"{path}: label region 'vessels' [1, 2] is not a BraTS region or label")
    message, path = _nnunet_json_error(tmp_path / "c", labels={"background": 0, "whole tumor": [1, 2, 3],
                                                               "tumor core": [2, 3]})
    assert message == f"{path}: value 2 lies in regions ['TC', 'WT'], which do not tell NETC from ET apart"
    message, path = _nnunet_json_error(tmp_path / "f", labels={"background": 0, "whole tumor": [1], "RC": [1]})
    assert message == f"{path}: value 1 lies in regions ['RC', 'WT'], which no BraTS 2024 label lies in exactly"
    message, path = _nnunet_json_error(tmp_path / "d", labels={"background": 0, "edema": "one"})
    assert message == f"{path}: label 'edema' has value 'one', not an integer 0–255"
    message, path = _nnunet_json_error(tmp_path / "e", labels=None)
    assert message == f"{path}: no 'labels' object naming the label values"


def test_bad_dataset_json(tmp_path):
    message, path = _nnunet_json_error(tmp_path / "a", file_ending=".mha")
    assert message == f"{path}: file_ending '.mha': only NIfTI images (.nii, .nii.gz) are read"
    root = write_nnunet(tmp_path / "b", {"c1": source_arrays()})
    (root / "dataset.json").write_text("{not json")
    with pytest.raises(BratsInputError, match=r"dataset\.json: cannot be read as JSON \(Expecting property name"):
        io.discover_cases(root)


def test_missing_or_extra_channel_file(tmp_path):
    image, label = source_arrays()
    root = write_nnunet(tmp_path, {"c1": (image, label)})
    (root / "imagesTr" / "c1_0003.nii.gz").unlink()
    with pytest.raises(BratsInputError) as info:
        io.discover_cases(root)
    assert str(info.value) == (f"{root / 'imagesTr'}: case c1 lacks channel file(s) c1_0003.nii.gz "
                               f"(dataset.json names 4 channels)")
    _save(root / "imagesTr" / "c1_0003.nii.gz", image[3])
    _save(root / "imagesTr" / "c1_0004.nii.gz", image[3])
    with pytest.raises(BratsInputError) as info:
        io.discover_cases(root)
    assert str(info.value) == (f"{root / 'imagesTr' / 'c1_0004.nii.gz'}: channel 4 is not among dataset.json's "
                               f"channels [0, 1, 2, 3]")


# ------------------------------------------------------------------------------------------ mixed layouts


def test_a_folder_mixing_layouts_is_read_case_by_case(tmp_path):
    image, label = source_arrays()
    write_legacy(tmp_path / "brats2018" / "HGG", "Brats18_CBICA_ABM_1", image, label)
    write_legacy(tmp_path / "brats2020", "BraTS20_Training_355", image, label, ".nii", seg_name="W39_Segm.nii")
    write_2024(tmp_path / "brats2024", "BraTS-GLI-00000-000", image, label, ".nii")
    write_msd(tmp_path / "Task01_BrainTumour", {"BRATS_001": (image, label)})
    write_nnunet(tmp_path / "nnUNet_raw" / "Dataset137_BraTS2021", {"BraTS2021_00000": (image, label)})
    cases = io.discover_cases(tmp_path)
    assert [(c.case_id, c.layout) for c in cases] == [
        ("BRATS_001", "msd"), ("BraTS-GLI-00000-000", "2024"), ("BraTS2021_00000", "nnunet"),
        ("BraTS20_Training_355", "legacy"), ("Brats18_CBICA_ABM_1", "legacy")]
    for case in cases:
        assert_same_case(case, image, label)


def test_one_case_in_two_layouts_is_refused(tmp_path):
    image, label = source_arrays()
    write_legacy(tmp_path / "brats2021", "BraTS2021_00000", image, label)
    write_nnunet(tmp_path / "nnunet", {"BraTS2021_00000": (image, label)})
    with pytest.raises(BratsInputError) as info:
        io.discover_cases(tmp_path)
    assert str(info.value) == (
        f"{tmp_path}: case BraTS2021_00000 found twice, in {tmp_path / 'brats2021' / 'BraTS2021_00000'} (BraTS "
        f"2018-2021 names) and in {tmp_path / 'nnunet' / 'imagesTr'} (nnU-Net raw); keep one copy, or point at "
        f"one of the folders")
    assert [c.layout for c in io.discover_cases(tmp_path / "nnunet")] == ["nnunet"]


def test_a_case_folder_mixing_namings_is_refused(tmp_path):
    image, label = source_arrays()
    folder = write_legacy(tmp_path, "BraTS2021_00000", image, label)
    (folder / "BraTS2021_00000_t1ce.nii.gz").rename(folder / "BraTS2021_00000_t1c.nii.gz")
    with pytest.raises(BratsInputError) as info:
        io.discover_cases(tmp_path)
    assert str(info.value) == (
        f"{folder}: mixes 2023+ file names (BraTS2021_00000_t1c.nii.gz) with 2018-2021 names "
        f"(BraTS2021_00000_t1.nii.gz, BraTS2021_00000_t2.nii.gz, BraTS2021_00000_flair.nii.gz); a case folder "
        f"uses one naming")


def test_a_case_stored_as_4d_and_as_channels_is_refused(tmp_path):
    image, label = source_arrays()
    root = write_msd(tmp_path, {"BRATS_001": (image, label)})
    _save(root / "imagesTr" / "BRATS_001_0000.nii.gz", image[0])
    with pytest.raises(BratsInputError) as info:
        io.discover_cases(root)
    assert str(info.value) == (f"{root / 'imagesTr'}: case BRATS_001 is stored both as one 4D file "
                               f"(BRATS_001.nii.gz) and as channel files (BRATS_001_0000.nii.gz); keep one")


# ------------------------------------------------------------------------------- unreadable folders


LAYOUT_LIST = ("layouts tried: BraTS 2023+ case folders <case>/<case>-t1n|-t1c|-t2w|-t2f[-seg].nii[.gz] (GLI, "
               "MEN, PED, SSA, MET); BraTS 2018-2021 case folders <case>/<case>_t1|_t1ce|_t2|_flair[_seg].nii[.gz]; "
               "Decathlon Task01_BrainTumour: dataset.json + imagesTr/<case>.nii.gz (4D) + labelsTr/<case>.nii.gz; "
               "nnU-Net raw: dataset.json + imagesTr/<case>_0000.nii.gz … _0003 + labelsTr/<case>.nii.gz")


def test_unreadable_folder_lists_what_was_found_and_the_layouts_tried(tmp_path):
    image, label = source_arrays()
    write_legacy(tmp_path, "BraTS2021_00000", image, label)
    (tmp_path / "BraTS2021_00000").rename(tmp_path / "case1")
    with pytest.raises(BratsInputError) as info:
        io.discover_cases(tmp_path)
    assert str(info.value) == (
        f"{tmp_path}: no BraTS cases found; {LAYOUT_LIST}; found: 2 folder(s), 5 NIfTI file(s), 0 dataset.json; "
        f"case1/BraTS2021_00000_flair.nii.gz is named after 'BraTS2021_00000', not after its folder 'case1' "
        f"(each case needs its own folder, named like its files)")


def test_unreadable_folder_of_other_files(tmp_path):
    _save(tmp_path / "scans" / "brain.nii.gz", np.zeros(SHAPE, np.float32))
    (tmp_path / "dataset.json").write_text("{}")
    with pytest.raises(BratsInputError) as info:
        io.discover_cases(tmp_path)
    assert str(info.value) == (
        f"{tmp_path}: no BraTS cases found; {LAYOUT_LIST}; found: 2 folder(s), 1 NIfTI file(s), 1 dataset.json; "
        f"dataset.json has no imagesTr, imagesTs or labelsTr folder beside it")
    (tmp_path / "dataset.json").unlink()
    with pytest.raises(BratsInputError) as info:
        io.discover_cases(tmp_path)
    assert str(info.value).endswith("found: 2 folder(s), 1 NIfTI file(s), 0 dataset.json (e.g. scans/brain.nii.gz), "
                                    "none in a layout above")


def test_missing_modality_names_the_file_with_its_suffix(tmp_path):
    image, label = source_arrays()
    folder = write_legacy(tmp_path, "Brats18_TCIA01_131_1", image, label, ".nii")
    (folder / "Brats18_TCIA01_131_1_t2.nii").unlink()
    with pytest.raises(BratsInputError) as info:
        io.discover_cases(tmp_path)
    assert str(info.value) == f"{folder}: missing modality file(s): Brats18_TCIA01_131_1_t2.nii"


# -------------------------------------------------------------------- commands that take a data folder


def test_cli_errors_list_layouts_and_write_nothing(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "pred").mkdir()
    for argv in (["preprocess", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "out")],
                 ["evaluate", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "empty"), "--out",
                  str(tmp_path / "out" / "scores.csv")]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert "no BraTS cases found; layouts tried:" in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_cli_evaluate_reads_decathlon_labels_through_dataset_json(tmp_path, capsys):
    image, _ = source_arrays()
    label = np.zeros(SHAPE, np.uint8)  # regions above the scorer's lesion-size thresholds
    label[1:9, 1:6, 1:7] = 2
    label[1:9, 6:11, 1:4] = 1
    label[1:9, 6:11, 4:7] = 3
    other = label.copy()
    other[label == 3] = 1  # a prediction whose ET is wrong
    root = write_msd(tmp_path / "Task01", {"BRATS_001": (image, label), "BRATS_002": (image, label)})
    from brats_lib.io import Geometry, save_label_map

    geometry = Geometry(AFFINE, nib.Nifti1Header(), SHAPE)
    save_label_map(label, geometry, tmp_path / "pred" / "BRATS_001.nii.gz")
    save_label_map(other, geometry, tmp_path / "pred" / "BRATS_002.nii.gz")
    import pandas as pd

    for gt in (root, root / "labelsTr"):
        assert cli.main(["evaluate", "--pred", str(tmp_path / "pred"), "--gt", str(gt), "--out",
                         str(tmp_path / "scores.csv")]) == 0
        table = pd.read_csv(tmp_path / "scores.csv").set_index(["case", "region"])
        dice = table["Legacy_Dice"]  # plain Dice: no lesion-size threshold on these tiny maps
        assert [dice[("BRATS_001", r)] for r in ("SNFH", "NETC", "ET", "WT")] == [1.0, 1.0, 1.0, 1.0]
        assert dice[("BRATS_002", "ET")] == 0.0 and dice[("BRATS_002", "WT")] == 1.0
    capsys.readouterr()


def _tiny_2018_copy(source: Path, target: Path) -> dict[str, str]:
    """Each 2024-layout case of ``source`` rewritten with 2018 names (``Brats18_CBICA_AA<k>_1``), RC dropped (the
    2018 labels have none); returns {2018 id: 2024 id}."""
    ids = {}
    for k, case in enumerate(io.discover_cases(source)):
        loaded = io.load_case(case)
        label = np.where(loaded.label == 4, 0, loaded.label)
        new_id = f"Brats18_CBICA_AA{chr(ord('A') + k)}_1"
        folder = target / "HGG" / new_id
        folder.mkdir(parents=True)
        for c, m in enumerate(io.MODALITIES):
            nib.save(nib.Nifti1Image(loaded.image[c], loaded.geometry.affine),
                     folder / f"{new_id}_{LEGACY_TAGS[m]}.nii.gz")
        nib.save(nib.Nifti1Image(np.where(label == 3, 4, label).astype(np.uint8), loaded.geometry.affine),
                 folder / f"{new_id}_seg.nii.gz")
        ids[new_id] = case.case_id
    return ids


def test_train_and_predict_on_a_2018_folder(tmp_path, capsys):
    from conftest import write_tiny_case

    for i in range(3):
        write_tiny_case(tmp_path / "gli", i, shape=(20, 20, 20))
    ids = _tiny_2018_copy(tmp_path / "gli", tmp_path / "brats18")
    config = {"data_dir": str(tmp_path / "brats18"), "cache_dir": str(tmp_path / "cache"),
              "run_dir": str(tmp_path / "run"), "model": {"name": "unet3d", "features_per_stage": [4, 8]},
              "patch_size": 16, "batch_size": 2, "epochs": 1, "iterations_per_epoch": 2, "val_patches": 1,
              "workers": 0, "preprocess": {"downsample": 1, "margin": 2}, "device": "cpu"}
    (tmp_path / "run.json").write_text(json.dumps(config))
    assert cli.main(["train", "--config", str(tmp_path / "run.json")]) == 0
    assert sorted(p.name for p in (tmp_path / "cache").iterdir() if p.is_dir()) == sorted(ids)
    splits = json.loads((tmp_path / "cache" / "splits.json").read_text())
    assert sorted(splits["train"] + splits["val"] + splits["test"]) == sorted(ids)

    out18, out24 = tmp_path / "pred18", tmp_path / "pred24"
    for data, out in ((tmp_path / "brats18", out18), (tmp_path / "gli", out24)):
        assert cli.main(["predict", "--run", str(tmp_path / "run"), "--in", str(data), "--out", str(out),
                         "--device", "cpu", "--no-tta"]) == 0
    assert "wrote 3 prediction(s)" in capsys.readouterr().out
    (tmp_path / "empty").mkdir()
    assert cli.main(["predict", "--run", str(tmp_path / "run"), "--in", str(tmp_path / "empty"), "--out",
                     str(tmp_path / "pred_empty"), "--device", "cpu"]) == 2
    assert capsys.readouterr().err.startswith(f"brats predict: error: {tmp_path / 'empty'}: no BraTS cases found; "
                                              f"layouts tried: BraTS 2023+ case folders")
    assert not (tmp_path / "pred_empty").exists()
    assert sorted(p.name for p in out18.iterdir()) == sorted(f"{i}.nii.gz" for i in ids)
    for new_id, old_id in ids.items():
        written = nib.load(out18 / f"{new_id}.nii.gz")
        source = nib.load(tmp_path / "brats18" / "HGG" / new_id / f"{new_id}_t1.nii.gz")
        assert written.shape == source.shape and written.get_data_dtype() == np.uint8
        np.testing.assert_array_equal(written.affine, source.affine)
        # the same voxels as the 2024-layout case it was made from: the same prediction
        np.testing.assert_array_equal(np.asarray(written.dataobj),
                                      np.asarray(nib.load(out24 / f"{old_id}.nii.gz").dataobj))


def test_case_files_lying_flat_in_the_root_get_a_hint(tmp_path):
    image, label = source_arrays()
    write_legacy(tmp_path, "BraTS2021_00000", image, label)
    flat = tmp_path / "flat"
    (tmp_path / "BraTS2021_00000").rename(flat)
    with pytest.raises(BratsInputError) as info:
        io.discover_cases(flat)
    assert str(info.value).endswith(
        "found: 1 folder(s), 5 NIfTI file(s), 0 dataset.json; BraTS2021_00000_flair.nii.gz is named after "
        "'BraTS2021_00000', not after its folder 'flat' (each case needs its own folder, named like its files)")


def test_symlinked_case_folders_are_read(tmp_path):
    image, label = source_arrays()
    folder = write_2024(tmp_path / "store", "BraTS-MET-00001-000", image, label)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "BraTS-MET-00001-000").symlink_to(folder, target_is_directory=True)
    (tmp_path / "data" / "loop").symlink_to(tmp_path / "data", target_is_directory=True)
    (case,) = io.discover_cases(tmp_path / "data")
    assert case.case_id == "BraTS-MET-00001-000"
    assert_same_case(case, image, label)


@pytest.mark.parametrize("name, modality", [
    ("FLAIR", "t2f"), ("T2-FLAIR", "t2f"), ("T1w", "t1n"), ("T1", "t1n"), ("native T1", "t1n"), ("t1gd", "t1c"),
    ("T1ce", "t1c"), ("T1 contrast-enhanced", "t1c"), ("T1-Gd", "t1c"), ("T2w", "t2w"), ("T2", "t2w"),
    ("DWI", None), ("ADC", None), ("T1 map", None),
])
def test_channel_name_spellings(name, modality):
    assert io.naming.modality_of_channel(name) == modality


def test_label_name_spellings_of_known_datasets():
    read = io.naming.label_values_from_names
    # Decathlon Task01 (value → name) and its nnU-Net v2 conversion (name → value): 1 edema, 2 NETC, 3 ET
    assert read(MSD_LABELS, "x") == {0: 0, 1: 2, 2: 1, 3: 3}
    assert read({"background": 0, "edema": 1, "non-enhancing tumor": 2, "enhancing tumour": 3}, "x") == \
        {0: 0, 1: 2, 2: 1, 3: 3}
    # BraTS 2021 in its own numbering, described by name
    assert read({"background": 0, "NCR/NET": 1, "peritumoral oedema": 2, "GD-enhancing tumor": 4}, "x") == \
        {0: 0, 1: 1, 2: 2, 4: 3}
    # region-based with the tumour core listed before the whole tumour, values renumbered
    assert read({"background": 0, "TC": [5, 7], "WT": [5, 6, 7], "ET": [7]}, "x") == {0: 0, 5: 1, 6: 2, 7: 3}
