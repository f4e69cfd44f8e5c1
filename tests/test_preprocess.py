"""Preprocessing maths, exact inversion, the per-case cache and the ``brats preprocess`` command."""

import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from brats_lib import preprocess as pp
from brats_lib.cli import main as cli_main
from brats_lib.io import MODALITIES, BratsInputError, Case, Geometry, LoadedCase, discover_cases, load_case
from brats_lib.io import load_label, save_label_map

MNI_AFFINE = np.array([[-1.0, 0, 0, 90], [0, 1, 0, -126], [0, 0, 1, -72], [0, 0, 0, 1]])
SHAPE = (40, 48, 40)


def synthetic_volumes(shape=SHAPE, seed=0, labels=True):
    """(4, X, Y, Z) float32 image (ellipsoid brain, 0 outside) and (X, Y, Z) uint8 label with labels 1–4."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*(np.arange(n, dtype=np.float32) for n in shape), indexing="ij"))
    centre = np.array(shape, np.float32)[:, None, None, None] / 2
    radius = np.array(shape, np.float32)[:, None, None, None] * 0.35
    brain = (((grid - centre) / radius) ** 2).sum(0) <= 1
    image = np.zeros((4,) + tuple(shape), np.float32)
    for c in range(4):
        image[c][brain] = rng.gamma(4.0, 50.0 * (c + 1), int(brain.sum())).astype(np.float32) + 1.0
    label = np.zeros(shape, np.uint8)
    if labels:
        r = np.sqrt((((grid - centre - np.array([3, 2, 0])[:, None, None, None]) ** 2).sum(0)))
        label[(r <= 7) & brain] = 2
        label[(r <= 4.5) & brain] = 3
        label[(r <= 2.5) & brain] = 1
        r4 = np.sqrt(((grid - centre + np.array([6, 6, 3])[:, None, None, None]) ** 2).sum(0))
        label[(r4 <= 2.5) & brain] = 4
    return image, label


def loaded_case(image, label, case_id="BraTS-GLI-00001-000", affine=MNI_AFFINE):
    """A LoadedCase around in-memory arrays (file paths are only used in messages)."""
    folder = Path("/nonexistent") / case_id
    case = Case(case_id, case_id.split("-")[2], "000", "2024",
                {m: folder / f"{case_id}-{m}.nii.gz" for m in MODALITIES}, folder / f"{case_id}-seg.nii.gz")
    header = nib.Nifti1Header()
    header.set_data_shape(image.shape[1:])
    return LoadedCase(case, image, label, Geometry(np.asarray(affine, float), header, tuple(image.shape[1:])))


def write_case(root: Path, case_id="BraTS-GLI-00001-000", shape=SHAPE, seed=0, seg=True) -> Path:
    """Write a synthetic case in the 2024 layout under ``root``; returns its folder."""
    image, label = synthetic_volumes(shape, seed)
    folder = root / case_id
    folder.mkdir(parents=True, exist_ok=True)
    for c, m in enumerate(MODALITIES):
        nib.save(nib.Nifti1Image(image[c], MNI_AFFINE), folder / f"{case_id}-{m}.nii.gz")
    if seg:
        nib.save(nib.Nifti1Image(label, MNI_AFFINE), folder / f"{case_id}-seg.nii.gz")
    return folder


def test_majority_vote_on_blocks():
    label = np.zeros((4, 2, 2), np.uint8)
    label[:2] = 2
    label[0, 0, 0] = 1  # a minority in the first block
    label[2:, 0, :] = 3  # a 4-4 tie with background in the second block: the higher label wins
    out = pp.resample_majority(label, (2, 1, 1))
    assert out.ravel().tolist() == [2, 3]
    assert pp.resample_nearest(label, (2, 1, 1)).ravel().tolist() == [label[1, 1, 1], label[3, 1, 1]]


def dice(a, b):
    a, b = a > 0, b > 0
    return 2.0 * (a & b).sum() / max(a.sum() + b.sum(), 1)


# ----------------------------------------------------------------------------------- shapes and inversion

# (volume shape, margin, downsample, expected crop box, expected cache shape), worked out by hand from
# synthetic_volumes: the brain is the ellipsoid |x - n/2| <= 0.35 n per axis (labels lie inside it), so for
# n = 40: voxels 6..34, n = 48: 8..40, n = 33: 5..28, n = 41: 7..34, n = 29: 5..24, n = 16: 3..13; the box
# is that ± margin, clipped to the volume, then grown about its centre to a multiple of an integer factor;
# the cache shape is round-half-up(box / factor).
SHAPE_CASES = [
    ((40, 48, 40), 0, 1, ((6, 35), (8, 41), (6, 35)), (29, 33, 29)),
    ((40, 48, 40), 3, 1, ((3, 38), (5, 44), (3, 38)), (35, 39, 35)),
    ((40, 48, 40), 100, 1, ((0, 40), (0, 48), (0, 40)), (40, 48, 40)),  # margin beyond the volume: clipped
    ((33, 41, 29), 2, 2, ((3, 31), (5, 37), (3, 27)), (14, 16, 12)),  # odd sizes
    ((40, 48, 40), 2, 1.5, ((4, 37), (6, 43), (4, 37)), (22, 25, 22)),  # non-integer factor: box as is
    ((16, 16, 16), 1, 4, ((0, 16), (0, 16), (0, 16)), (4, 4, 4)),  # 13 voxels grow to 16 = the volume
    # the whole volume grows to 16, 20, 16 about its centre (extra ⌊e/2⌋ before): beyond it, zero padding
    ((15, 17, 13), 100, 4, ((0, 16), (-1, 19), (-1, 15)), (4, 5, 4)),
]


@pytest.mark.parametrize("shape,margin,factor,box,out_shape", SHAPE_CASES)
def test_shapes_and_meta(shape, margin, factor, box, out_shape):
    image, label = synthetic_volumes(shape)
    pre = pp.preprocess_case(loaded_case(image, label), pp.PreprocessConfig(margin=margin, downsample=factor))
    assert tuple(tuple(b) for b in pre.meta["crop_box"]) == box
    crop_shape = tuple(hi - lo for lo, hi in box)
    assert pre.image.shape == (4,) + out_shape and pre.image.dtype == np.float32
    assert pre.label.shape == out_shape and pre.label.dtype == np.uint8
    assert tuple(pre.meta["shape"]) == out_shape and tuple(pre.meta["original_shape"]) == shape
    json.dumps(pre.meta)  # JSON-serialisable
    if float(factor).is_integer():  # the crop is a whole number of blocks
        assert all(n % int(factor) == 0 for n in crop_shape)
        np.testing.assert_allclose(pre.meta["factor"], factor)
    inverted = pp.invert_label(pre.label, pre.meta)
    assert inverted.shape == shape and inverted.dtype == np.uint8
    if factor == 1:
        assert np.array_equal(inverted, label)


@pytest.mark.parametrize("shape,margin", [((40, 48, 40), 0), ((40, 48, 40), 4), ((31, 37, 23), 1)])
def test_round_trip_is_exact_at_full_resolution(shape, margin):
    image, label = synthetic_volumes(shape, seed=3)
    pre = pp.preprocess_case(loaded_case(image, label), pp.PreprocessConfig(margin=margin))
    assert np.array_equal(pp.invert_label(pre.label, pre.meta), label)


@pytest.mark.parametrize("mode", ["majority", "nearest"])
def test_round_trip_at_factor_2_keeps_high_dice(mode):
    """Down then up by 2 keeps one label per 2×2×2 block: not exact; the whole tumour survives with
    Dice > 0.85, and even the 5-voxel-wide spheres of labels 1 and 4 with Dice > 0.6."""
    image, label = synthetic_volumes((48, 56, 48), seed=4)
    pre = pp.preprocess_case(loaded_case(image, label), pp.PreprocessConfig(downsample=2, label_resample=mode))
    back = pp.invert_label(pre.label, pre.meta)
    assert back.shape == label.shape
    assert dice(back, label) > 0.85
    for k in (1, 2, 3, 4):
        assert dice(back == k, label == k) > 0.6, k
    assert not (back[label == 0] > 0).mean() > 0.01


def test_cache_affine_maps_cache_voxels_onto_the_original_world():
    image, label = synthetic_volumes()
    pre = pp.preprocess_case(loaded_case(image, label), pp.PreprocessConfig(margin=2, downsample=2))
    box, factor = np.array(pre.meta["crop_box"]), np.array(pre.meta["factor"])
    assert np.all(np.abs(factor - 2) < 0.1)
    # the cache voxel (0, 0, 0) sits at the centre of the first block: original voxel start + (f - 1) / 2
    world = np.array(pre.meta["cache_affine"]) @ np.array([0, 0, 0, 1.0])
    expected = MNI_AFFINE @ np.append(box[:, 0] + (factor - 1) / 2, 1.0)
    np.testing.assert_allclose(world, expected, atol=1e-9)
    np.testing.assert_allclose(pre.meta["spacing"], [2.0, 2.0, 2.0], atol=0.1)


# ---------------------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize("factor", [1, 2])
def test_zscore_inside_mask_and_exact_zero_background(factor):
    image, label = synthetic_volumes(seed=1)
    pre = pp.preprocess_case(loaded_case(image, label), pp.PreprocessConfig(margin=3, downsample=factor))
    if factor == 1:
        crop = tuple(slice(lo, hi) for lo, hi in pre.meta["crop_box"])
        mask = pp.brain_mask(image)[crop]
    else:
        mask = pp.brain_mask(pre.image)
    assert mask.sum() == pre.meta["brain_voxels"]
    for c in range(4):
        inside = pre.image[c][mask].astype(np.float64)
        assert abs(inside.mean()) < 1e-4 and abs(inside.std() - 1) < 1e-4
        assert np.all(pre.image[c][~mask] == 0)
    assert np.isfinite(pre.image).all()


def test_percentile_clipping_bounds_match_the_in_mask_percentiles():
    image, label = synthetic_volumes(seed=2)
    image[1][20, 24, 20] = 1e6  # an outlier inside the brain
    config = pp.PreprocessConfig(clip_percentiles=(1.0, 99.0))
    pre = pp.preprocess_case(loaded_case(image, label), config)
    mask = pp.brain_mask(image)
    for c in range(4):
        np.testing.assert_allclose(pre.meta["clip_bounds"][c], np.percentile(image[c][mask], [1.0, 99.0]),
                                   rtol=1e-6)
    assert pre.image[1].max() < 10  # the outlier was clipped before the z-score


def test_crop_box_contains_every_label_even_outside_the_brain_mask():
    image, label = synthetic_volumes()
    label[1, 1, 1] = 2  # a labelled voxel where every modality is 0
    pre = pp.preprocess_case(loaded_case(image, label), pp.PreprocessConfig(margin=0))
    box = pre.meta["crop_box"]
    assert box[0][0] <= 1 and box[1][0] <= 1 and box[2][0] <= 1
    assert pp.label_voxel_counts(pre.label) == pp.label_voxel_counts(label)
    assert np.array_equal(pp.invert_label(pre.label, pre.meta), label)


def test_inference_only_case_has_no_label():
    image, _ = synthetic_volumes()
    pre = pp.preprocess_case(loaded_case(image, None), pp.PreprocessConfig())
    assert pre.label is None and pre.meta["label_voxels"] is None


# ------------------------------------------------------------------------------------------------ errors


def test_empty_brain_mask_is_a_clear_error():
    image, label = synthetic_volumes()
    with pytest.raises(BratsInputError, match="BraTS-GLI-00009-000.*empty brain mask"):
        pp.preprocess_case(loaded_case(np.zeros_like(image), label, "BraTS-GLI-00009-000"))


def test_constant_modality_is_a_clear_error():
    image, label = synthetic_volumes()
    image[2][pp.brain_mask(image)] = 7.0
    with pytest.raises(BratsInputError, match="BraTS-GLI-00001-000.*t2w is constant"):
        pp.preprocess_case(loaded_case(image, label))


def test_bad_config_values_are_rejected():
    for kwargs in ({"clip_percentiles": (99, 1)}, {"downsample": 0.5}, {"dtype": "int8"}, {"margin": -1},
                   {"label_resample": "cubic"}):
        with pytest.raises(ValueError):
            pp.PreprocessConfig(**kwargs)


def test_config_json_round_trip_and_hash():
    config = pp.PreprocessConfig(downsample=2, dtype="float32", margin=2)
    again = pp.PreprocessConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and again.hash() == config.hash()
    assert pp.PreprocessConfig(downsample=2.0).hash() == pp.PreprocessConfig(downsample=2).hash()
    assert pp.PreprocessConfig().hash() != config.hash()


# ------------------------------------------------------------------------------------------------- cache


@pytest.fixture()
def dataset(tmp_path):
    root = tmp_path / "data"
    write_case(root, "BraTS-GLI-00001-000", seed=0)
    write_case(root, "BraTS-GLI-00002-000", shape=(36, 40, 32), seed=1)
    return root


def test_cache_files_and_memory_mapped_read(dataset, tmp_path):
    cache = tmp_path / "cache"
    records = pp.preprocess_dataset(dataset, cache, pp.PreprocessConfig(), workers=1, progress=False)
    assert [r["status"] for r in records] == ["built", "built"]
    folder = cache / "BraTS-GLI-00001-000"
    assert sorted(p.name for p in folder.iterdir()) == ["fg_coords.npz", "image.npy", "label.npy", "meta.json"]
    image, label, meta = pp.load_cached(cache, "BraTS-GLI-00001-000")
    assert isinstance(image, np.memmap) and image.dtype == np.float16 and label.dtype == np.uint8
    assert image.shape == (4,) + tuple(meta["shape"]) and records[0]["bytes"] > image.nbytes
    assert set(meta["sources"]) == {"t1n", "t1c", "t2w", "t2f", "seg"}
    with np.load(folder / "fg_coords.npz") as npz:
        for k in (1, 2, 3, 4):
            coords = npz[f"label_{k}"]
            assert coords.dtype == np.int16 and len(coords) == meta["label_voxels"][str(k)]
            assert np.all(label[tuple(coords.T)] == k)
    # the cached label inverts to the source seg, and writes out with the original geometry
    raw = load_label(dataset / "BraTS-GLI-00001-000" / "BraTS-GLI-00001-000-seg.nii.gz")
    back = pp.invert_label(np.asarray(label), meta)
    assert np.array_equal(back, raw)
    out = save_label_map(back, pp.geometry_from_meta(meta), tmp_path / "pred.nii.gz")
    assert np.array_equal(load_label(out), raw)
    np.testing.assert_allclose(nib.load(out).affine, MNI_AFFINE)
    assert pp.cached_case_ids(cache) == ["BraTS-GLI-00001-000", "BraTS-GLI-00002-000"]


def test_fg_coords_are_subsampled_deterministically():
    label = np.zeros((30, 30, 30), np.uint8)
    label[5:25, 5:25, 5:25] = 2
    a = pp.foreground_coords(label, 100, seed=(0, 1))
    b = pp.foreground_coords(label, 100, seed=(0, 1))
    assert a["label_2"].shape == (100, 3) and np.array_equal(a["label_2"], b["label_2"])
    assert a["label_1"].shape == (0, 3)


def test_rerun_skips_current_and_rebuilds_stale(dataset, tmp_path):
    cache, config = tmp_path / "cache", pp.PreprocessConfig(downsample=2)
    pp.preprocess_dataset(dataset, cache, config, workers=1, progress=False)
    again = pp.preprocess_dataset(dataset, cache, config, workers=1, progress=False)
    assert [r["status"] for r in again] == ["skipped", "skipped"]
    seg = dataset / "BraTS-GLI-00002-000" / "BraTS-GLI-00002-000-seg.nii.gz"
    st = seg.stat()
    os.utime(seg, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))  # "touch"
    assert not pp.is_current(cache, discover_cases(dataset)[1], config)
    third = pp.preprocess_dataset(dataset, cache, config, workers=1, progress=False)
    assert [r["status"] for r in third] == ["skipped", "built"]
    other = pp.preprocess_dataset(dataset, cache, pp.PreprocessConfig(downsample=2, margin=1), workers=1,
                                  progress=False)
    assert [r["status"] for r in other] == ["built", "built"]  # a new config hash makes every case stale


def test_parallel_run_matches_serial_run(dataset, tmp_path):
    config = pp.PreprocessConfig(dtype="float32")
    pp.preprocess_dataset(dataset, tmp_path / "a", config, workers=1, progress=False)
    pp.preprocess_dataset(dataset, tmp_path / "b", config, workers=2, progress=False)
    for cid in ("BraTS-GLI-00001-000", "BraTS-GLI-00002-000"):
        for name in ("image.npy", "label.npy"):
            assert np.array_equal(np.load(tmp_path / "a" / cid / name), np.load(tmp_path / "b" / cid / name))


def test_failure_mid_case_leaves_no_meta_json(dataset, tmp_path, monkeypatch):
    cache, config = tmp_path / "cache", pp.PreprocessConfig()
    pp.preprocess_dataset(dataset, cache, config, workers=1, progress=False)

    def broken(path, arrays):
        raise OSError("disk full")

    monkeypatch.setattr(pp, "_save_npz", broken)
    with pytest.raises(OSError, match="disk full"):
        pp.preprocess_dataset(dataset, cache, config, workers=1, progress=False, force=True)
    folder = cache / "BraTS-GLI-00001-000"
    assert not (folder / "meta.json").exists()  # the old (now stale) meta is gone, no new one written
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temporary leftovers
    assert pp.read_meta(cache, "BraTS-GLI-00001-000") is None
    monkeypatch.undo()
    records = pp.preprocess_dataset(dataset, cache, config, workers=1, progress=False)
    assert records[0]["status"] == "built" and records[1]["status"] == "skipped"


def test_non_finite_image_never_reaches_the_cache(tmp_path):
    image, label = synthetic_volumes()
    pre = pp.preprocess_case(loaded_case(image, label), pp.PreprocessConfig())
    pre.image[0, 0, 0, 0] = np.nan
    with pytest.raises(RuntimeError, match="non-finite"):
        pp.write_cached_case(tmp_path, pre, pp.PreprocessConfig())
    assert pp.read_meta(tmp_path, pre.meta["case_id"]) is None


def test_float16_overflow_is_caught(tmp_path):
    image, label = synthetic_volumes()
    pre = pp.preprocess_case(loaded_case(image, label), pp.PreprocessConfig())
    pre.image[0, 1, 1, 1] = 1e6  # finite in float32, inf in float16
    with pytest.raises(BratsInputError, match="BraTS-GLI-00001-000: normalised intensities overflow float16"):
        pp.write_cached_case(tmp_path, pre, pp.PreprocessConfig(dtype="float16"))
    assert pp.read_meta(tmp_path, pre.meta["case_id"]) is None


def test_cli_preprocess(dataset, tmp_path, capsys):
    cache = tmp_path / "cache"
    argv = ["preprocess", "--data", str(dataset), "--out", str(cache), "--workers", "1", "--downsample", "2",
            "--dtype", "float32", "--margin", "2"]
    assert cli_main(argv) == 0
    assert "2 case(s) built" in capsys.readouterr().out
    image, _, meta = pp.load_cached(cache, "BraTS-GLI-00001-000")
    assert image.dtype == np.float32 and meta["config"]["downsample"] == 2 and meta["config"]["margin"] == 2
    assert cli_main(argv) == 0 and "0 case(s) built, 2 current" in capsys.readouterr().out
    assert cli_main(["preprocess", "--data", str(tmp_path / "missing"), "--out", str(cache)]) == 2
    assert "does not exist" in capsys.readouterr().err


# -------------------------------------------------------------------------------------------- real data


@pytest.mark.parametrize("case_id", ["BraTS-GLI-00000-000", "BraTS2021_00014"])
def test_real_cases_round_trip_and_normalise(real_data_dir, case_id):
    cases = {c.case_id: c for c in discover_cases(real_data_dir, require_images=False) if c.has_images}
    loaded = load_case(cases[case_id])
    pre = pp.preprocess_case(loaded, pp.PreprocessConfig())
    assert np.array_equal(pp.invert_label(pre.label, pre.meta), loaded.label)
    crop = tuple(slice(lo, hi) for lo, hi in pre.meta["crop_box"])
    mask = pp.brain_mask(loaded.image)[crop]
    for c in range(4):
        inside = pre.image[c][mask].astype(np.float64)
        assert abs(inside.mean()) < 1e-3 and abs(inside.std() - 1) < 1e-3
    assert np.all(pre.image[:, ~mask] == 0)
    assert np.isfinite(pre.image.astype(np.float16)).all()  # the default cache dtype holds it
    assert pre.meta["orientation"] == ("LAS" if case_id.startswith("BraTS-GLI") else "LPS")
    half = pp.preprocess_case(loaded, pp.PreprocessConfig(downsample=2))
    back = pp.invert_label(half.label, half.meta)
    assert dice(back, loaded.label) > 0.9
