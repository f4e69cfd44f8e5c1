"""Patient-level splits and the patch dataset / loader over the preprocessing cache."""

import json
import pickle
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from brats_lib import data
from brats_lib import preprocess as pp
from brats_lib.io import MODALITIES, BratsInputError, Case, Geometry, LoadedCase, discover_cases, load_case

# ------------------------------------------------------------------------------------------------- splits


def _ids(patients, timepoints=1):
    return [f"BraTS-GLI-{p:05d}-{t:03d}" for p in range(patients) for t in range(timepoints)]


def test_splits_keep_patients_together_and_are_reproducible():
    ids = _ids(20, timepoints=3) + ["BraTS2021_00999"]
    splits = data.make_splits(ids, seed=1)
    assert sorted(sum(splits.values(), [])) == sorted(ids)
    owner = {}
    for name, cases in splits.items():
        for cid in cases:
            owner.setdefault(data.patient_of(cid), set()).add(name)
    assert all(len(names) == 1 for names in owner.values())
    assert splits == data.make_splits(list(reversed(ids)), seed=1)  # input order does not matter
    assert splits != data.make_splits(ids, seed=2)
    assert len({data.patient_of(c) for c in splits["train"]}) == 15  # 70 % of 21 patients, rounded


@pytest.mark.parametrize("n,expected", [(1, (1, 0, 0)), (2, (1, 1, 0)), (3, (1, 1, 1)), (8, (6, 1, 1)),
                                        (10, (7, 2, 1)), (100, (70, 15, 15))])
def test_split_sizes_for_tiny_and_larger_datasets(n, expected):
    splits = data.make_splits(_ids(n), seed=0)
    assert tuple(len(splits[k]) for k in data.SPLIT_NAMES) == expected


def test_splits_accept_case_objects():
    cases = [Case(cid, cid.split("-")[2], "000", "2024", {}, None) for cid in _ids(5)]
    assert data.make_splits(cases) == data.make_splits(_ids(5))


def test_split_file_round_trip_and_errors(tmp_path):
    splits = data.make_splits(_ids(8), seed=3)
    path = data.save_splits(splits, tmp_path / "splits.json", seed=3)
    assert data.load_splits(path) == splits
    assert json.loads(path.read_text())["info"] == {"seed": 3}
    path.write_text(json.dumps({"train": ["a"], "val": ["a"], "test": []}))
    with pytest.raises(BratsInputError, match="both"):
        data.load_splits(path)
    with pytest.raises(BratsInputError, match="does not exist"):
        data.load_splits(tmp_path / "missing.json")


# ------------------------------------------------------------------------------------------------ patches


def _blob_case(case_id, shape, seed, rc=True):
    """LoadedCase with an ellipsoid brain and a small tumour: labels 2 (large), 1 and 3 (small), 4 (tiny)."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")).astype(np.float32)
    centre = (np.array(shape) / 2)[:, None, None, None]
    brain = ((((grid - centre) / (np.array(shape) * 0.4)[:, None, None, None]) ** 2).sum(0)) <= 1
    image = np.zeros((4,) + shape, np.float32)
    image[:, brain] = rng.random((4, int(brain.sum())), dtype=np.float32) * 100 + 1
    r = np.sqrt(((grid - centre - 3) ** 2).sum(0))
    label = np.zeros(shape, np.uint8)
    label[r <= 6] = 2
    label[r <= 2] = 3
    label[r <= 1] = 1
    if rc:
        label[2, 2, 2] = 4  # one voxel far from the rest
    folder = Path("/nonexistent") / case_id
    case = Case(case_id, case_id.split("-")[2], "000", "2024",
                {m: folder / f"{case_id}-{m}.nii.gz" for m in MODALITIES}, None)
    return LoadedCase(case, image, label, Geometry(np.eye(4), nib.Nifti1Header(), shape))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """Three cached cases of different sizes (the last smaller than the patches used below)."""
    root = tmp_path_factory.mktemp("cache")
    config = pp.PreprocessConfig(margin=1)
    for i, shape in enumerate([(40, 48, 40), (36, 40, 44), (20, 18, 16)]):
        loaded = _blob_case(f"BraTS-GLI-{i:05d}-000", shape, seed=i, rc=i != 1)
        pp.write_cached_case(root, pp.preprocess_case(loaded, config), config)
    return root


CASE_IDS = [f"BraTS-GLI-{i:05d}-000" for i in range(3)]


@pytest.mark.parametrize("patch_size,expected", [(16, (16, 16, 16)), ((24, 16, 32), (24, 16, 32)),
                                                 (64, (64, 64, 64))])
def test_patch_shapes_and_dtypes(cache, patch_size, expected):
    ds = data.PatchDataset(cache, CASE_IDS, patch_size, samples_per_epoch=6, seed=0)
    for i in range(len(ds)):
        image, label = ds[i]
        assert image.shape == (4,) + expected and image.dtype == torch.float32
        assert label.shape == expected and label.dtype == torch.int64
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_small_volume_is_zero_padded(cache):
    ds = data.PatchDataset(cache, CASE_IDS[2:], 32, samples_per_epoch=4, seed=0)
    image, label = ds[0]
    _, stored, meta = pp.load_cached(cache, CASE_IDS[2])
    x, y, z = meta["shape"]
    assert x < 32 and y < 32 and z < 32
    # the whole volume is inside the patch: every label voxel is there, the rest is padding
    assert int((label > 0).sum()) == int((np.asarray(stored) > 0).sum())
    assert image.abs().sum() > 0
    window = data.read_window(np.arange(27).reshape(3, 3, 3), (-1, 0, 2), (5, 3, 3))
    assert window.shape == (5, 3, 3) and window[0].sum() == 0 and window[4].sum() == 0
    assert np.array_equal(window[1:4, :, 0], np.arange(27).reshape(3, 3, 3)[:, :, 2])


def test_foreground_oversampling_and_rare_labels(cache):
    ds = data.PatchDataset(cache, CASE_IDS[:2], 16, oversample_foreground=0.33, samples_per_epoch=300, seed=5)
    forced = [ds.sample_window(i)[2] for i in range(len(ds))]
    assert sum(forced) == 99  # exactly floor(300 * 0.33), spread over the indices
    seen = {k: 0 for k in range(5)}
    with_tumour = 0
    for i in range(len(ds)):
        _, label = ds[i]
        with_tumour += bool((label > 0).any())
        for k in label.unique().tolist():
            seen[k] += 1
    assert with_tumour / len(ds) >= 1 / 3
    # the single-voxel RC of case 0 is found on purpose (a random 16³ patch would rarely hit it)
    assert seen[4] >= 10 and seen[1] >= 30 and seen[3] >= 30


def test_patches_are_deterministic_and_vary_by_epoch(cache):
    a = data.PatchDataset(cache, CASE_IDS, 16, samples_per_epoch=8, seed=7)
    b = pickle.loads(pickle.dumps(a))  # what a worker process receives
    for i in (0, 3, 7):
        assert all(torch.equal(x, y) for x, y in zip(a[i], b[i]))
    first = [a[i][1] for i in range(8)]
    a.set_epoch(1)
    assert any(not torch.equal(x, a[i][1]) for i, x in enumerate(first))
    c = data.PatchDataset(cache, CASE_IDS, 16, samples_per_epoch=8, seed=8)
    assert any(not torch.equal(a[i][0], c[i][0]) for i in range(8))


def test_loader_workers_give_the_same_batches_as_the_main_process(cache):
    ds = data.PatchDataset(cache, CASE_IDS, 16, samples_per_epoch=8, seed=3, max_open=1)
    serial = [lab for _, lab in data.make_loader(ds, batch_size=4, workers=0)]
    parallel = [lab for _, lab in data.make_loader(ds, batch_size=4, workers=2)]
    assert len(serial) == 2 and all(torch.equal(s, p) for s, p in zip(serial, parallel))
    assert len(ds._open) <= 1  # the LRU of open memory maps is bounded


def test_persistent_workers_draw_each_epochs_own_patches(cache):
    # workers started once (EpochSampler): the epoch travels with each index, so epoch e's batches equal those
    # the main process draws after set_epoch(e), and differ between epochs
    ds = data.PatchDataset(cache, CASE_IDS, 16, samples_per_epoch=8, seed=5)
    sampler = data.EpochSampler(range(len(ds)))
    loader = data.make_loader(ds, batch_size=4, workers=2, sampler=sampler)
    assert loader.persistent_workers
    seen = {}
    for epoch in (0, 1, 0):
        sampler.set_epoch(epoch)
        got = torch.cat([lab for _, lab in loader])
        ds.set_epoch(epoch)
        expected = torch.cat([lab for _, lab in data.make_loader(ds, batch_size=4, workers=0)])
        assert torch.equal(got, expected)
        seen.setdefault(epoch, got)
    assert not torch.equal(seen[0], seen[1])
    odd = data.EpochSampler(range(1, 8, 2))  # one DDP rank's share: its indices only
    odd.set_epoch(1)
    assert list(odd) == [(1, 1), (1, 3), (1, 5), (1, 7)] and len(odd) == 4
    del loader


def test_dataset_errors(cache, tmp_path):
    with pytest.raises(BratsInputError, match="meta.json"):
        data.PatchDataset(cache, ["BraTS-GLI-09999-000"], 16)
    loaded = _blob_case("BraTS-GLI-00042-000", (20, 20, 20), seed=0)
    loaded.label = None
    pp.write_cached_case(tmp_path, pp.preprocess_case(loaded), pp.PreprocessConfig())
    with pytest.raises(BratsInputError, match="no label"):
        data.PatchDataset(tmp_path, ["BraTS-GLI-00042-000"], 16)
    with pytest.raises(ValueError):
        data.PatchDataset(cache, CASE_IDS, 0)


def test_real_case_patches(real_data_dir, tmp_path):
    case = next(c for c in discover_cases(real_data_dir / "brats-gli"))
    config = pp.PreprocessConfig(downsample=2)
    pp.write_cached_case(tmp_path, pp.preprocess_case(load_case(case), config), config)
    ds = data.PatchDataset(tmp_path, [case.case_id], 64, samples_per_epoch=6, seed=0)
    labels = [ds[i][1] for i in range(len(ds))]
    assert all(lab.shape == (64, 64, 64) for lab in labels)
    forced = [i for i in range(len(ds)) if ds.sample_window(i)[2]]
    assert forced and all((labels[i] > 0).any() for i in forced)
    assert set(torch.cat([lab.unique() for lab in labels]).tolist()) <= {0, 1, 2, 3}
