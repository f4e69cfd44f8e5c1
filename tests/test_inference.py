"""Inference: sliding window, mirroring TTA, ensembles, small-component post-processing and its tuning,
whole-case prediction on a real case, and ``brats predict`` on a trained run directory."""

import json

import nibabel as nib
import numpy as np
from scipy import ndimage
import pandas as pd
import pytest
import torch
from torch import nn

from brats_lib import cli
from brats_lib import train as tr
from brats_lib.inference import (Ensemble, ensemble_predictor, flip_combinations, gaussian_importance_map,
                                 load_postprocessing, predict_case, predict_folder, predict_probabilities,
                                 remove_small_components, sliding_window, window_slices, window_starts)
from brats_lib.io import discover_cases, load_case
from brats_lib.models import build_model
from brats_lib.postprocess_tuning import save_postprocessing, tune_postprocessing
from brats_lib.preprocess import PreprocessConfig, invert_label, preprocess_case
from conftest import write_tiny_case

AFFINE = np.diag([-1.0, 1.0, 1.0, 1.0])


class ConstantLogits(nn.Module):
    """(B, C_in, …) → (B, len(logits), …) with the same logits at every voxel."""

    def __init__(self, logits):
        super().__init__()
        self.register_buffer("logits", torch.tensor(logits, dtype=torch.float32))

    def forward(self, x):
        shape = (x.shape[0], len(self.logits)) + tuple(x.shape[2:])
        return self.logits.view(1, -1, 1, 1, 1).expand(shape).clone()


class BrightT2fIsSNFH(nn.Module):
    """Stand-in network: label 2 (SNFH) wherever the z-scored t2f (channel 3) exceeds ``threshold``."""

    def __init__(self, threshold=1.5):
        super().__init__()
        self.threshold = threshold

    def forward(self, x):
        logits = torch.full((x.shape[0], 5) + tuple(x.shape[2:]), -20.0, device=x.device)
        logits[:, 0] = 0.0
        logits[:, 2] = 40.0 * (x[:, 3] - self.threshold)
        return logits


def _pointwise_model(seed=0, out_channels=5):
    torch.manual_seed(seed)
    return nn.Conv3d(4, out_channels, kernel_size=1).eval()


# ------------------------------------------------------------------------------------------ sliding window


def test_gaussian_map_peaks_at_the_centre_and_is_symmetric():
    g = gaussian_importance_map((16, 12, 9))
    assert g.shape == (16, 12, 9) and g.dtype == torch.float32
    assert float(g.max()) == pytest.approx(1.0) and float(g.min()) >= 1e-3
    centre = g[7:9, 5:7, 4]
    assert torch.allclose(centre, centre.max().expand_as(centre))
    for dim in range(3):
        assert torch.equal(g, g.flip(dim))
    profile = g[:8, 5, 4]
    assert torch.all(profile[1:] > profile[:-1])  # rises towards the centre


def test_window_placement_covers_the_volume_evenly():
    assert window_starts(64, 64, 0.5) == [0]
    assert window_starts(112, 64, 0.5) == [0, 24, 48]
    assert window_starts(100, 32, 0.0) == [0, 23, 45, 68]
    slices = window_slices((40, 32, 20), 16, 0.5)
    covered = np.zeros((40, 32, 20), bool)
    for sl in slices:
        covered[sl] = True
    assert covered.all() and len(slices) == 4 * 3 * 2


@torch.no_grad()
def test_one_window_covering_the_volume_equals_a_full_forward_pass():
    torch.manual_seed(0)
    model = build_model({"name": "unet3d", "features_per_stage": [4, 8, 16]}).eval()
    image = torch.randn(4, 24, 32, 16)
    expected = torch.softmax(model(image[None]), 1)[0]
    result = sliding_window(model, image, (24, 32, 16), overlap=0.5)
    assert result.shape == (5, 24, 32, 16) and result.dtype == torch.float32
    torch.testing.assert_close(result, expected, rtol=0, atol=1e-6)


@torch.no_grad()
@pytest.mark.parametrize("mode", ["softmax", "regions"])
def test_overlapping_windows_of_a_translation_equivariant_model_equal_the_full_pass(mode):
    model = _pointwise_model(out_channels=5 if mode == "softmax" else 4)
    image = torch.randn(1, 4, 37, 29, 20)  # batched input, sizes not multiples of the patch
    logits = model(image)
    expected = torch.softmax(logits, 1) if mode == "softmax" else torch.sigmoid(logits)
    result = sliding_window(model, image, (16, 16, 8), overlap=0.5, batch_size=3, mode=mode)
    assert result.shape == expected.shape
    torch.testing.assert_close(result, expected, rtol=0, atol=1e-5)


@torch.no_grad()
def test_a_volume_smaller_than_the_patch_is_padded_and_cropped_back():
    model = _pointwise_model()
    image = torch.randn(4, 10, 20, 6)
    result = sliding_window(model, image, 16)
    assert result.shape == (5, 10, 20, 6)
    torch.testing.assert_close(result, torch.softmax(model(image[None]), 1)[0], rtol=0, atol=1e-6)


def test_numpy_input_and_output_device():
    result = sliding_window(_pointwise_model(), np.zeros((4, 8, 8, 8), np.float32), 8, device="cpu",
                            output_device="cpu")
    assert result.device.type == "cpu" and result.shape == (5, 8, 8, 8)


# ------------------------------------------------------------------------------------------ TTA, ensembles


def test_flip_combinations():
    assert flip_combinations(None) == [()]
    assert flip_combinations((0,)) == [(), (0,)]
    assert len(flip_combinations((0, 1, 2))) == 8 and flip_combinations((2, 0))[-1] == (0, 2)
    with pytest.raises(ValueError):
        flip_combinations((3,))


@torch.no_grad()
def test_tta_of_a_flip_equivariant_model_changes_nothing():
    model = _pointwise_model()
    image = torch.randn(4, 24, 20, 18)
    plain = sliding_window(model, image, 16)
    mirrored = predict_probabilities(model, image, 16, "softmax", tta_axes=(0, 1, 2))
    torch.testing.assert_close(mirrored, plain, rtol=0, atol=1e-6)


@torch.no_grad()
def test_tta_averages_mirrored_predictions_of_a_non_equivariant_model():
    model = nn.Conv3d(4, 5, kernel_size=(3, 1, 1), padding=(1, 0, 0)).eval()
    with torch.no_grad():
        model.weight.zero_()
        model.weight[:, :, 0] = torch.randn(5, 4, 1, 1)  # looks at the previous voxel along x only
    image = torch.randn(4, 12, 8, 8)
    single = predict_probabilities(model, image, (12, 8, 8), tta_axes=None)
    flipped = predict_probabilities(model, image.flip(1), (12, 8, 8), tta_axes=None).flip(1)
    tta = predict_probabilities(model, image, (12, 8, 8), tta_axes=(0,))
    torch.testing.assert_close(tta, (single + flipped) / 2, rtol=0, atol=1e-6)
    assert not torch.allclose(single, flipped, atol=1e-3)


def test_ensembles_average_probabilities_not_logits():
    a, b = ConstantLogits([4.0, 0, 0, 0, 0]), ConstantLogits([0, 0, 6.0, 0, 0])
    image = torch.zeros(4, 12, 10, 8)
    result = predict_probabilities([a, b], image, 8, tta_axes=(0, 1, 2))
    expected = (torch.softmax(a.logits, 0) + torch.softmax(b.logits, 0)) / 2
    torch.testing.assert_close(result[:, 5, 5, 4], expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(result, expected.view(5, 1, 1, 1).expand_as(result), rtol=0, atol=1e-6)
    windows = ensemble_predictor([a, b], "softmax")(torch.zeros(2, 4, 8, 8, 8))
    assert windows.shape == (2, 5, 8, 8, 8)


# ------------------------------------------------------------------------------------------ post-processing


def _ball(shape, centre, radius):
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"))
    return ((grid - np.array(centre)[:, None, None, None]) ** 2).sum(0) <= radius ** 2


def _blob(n_voxels=30, at=(30, 30, 30)):
    mask = np.zeros((40, 40, 40), bool)
    x, y, z = at
    mask[x:x + 3, y:y + 5, z:z + 2] = True  # 3·5·2 = 30 voxels
    assert mask.sum() == n_voxels
    return mask


def test_a_small_wt_component_is_removed_at_50_and_kept_at_25():
    label = np.zeros((40, 40, 40), np.uint8)
    label[_ball(label.shape, (12, 12, 12), 6)] = 2
    label[_blob()] = 2
    removed = remove_small_components(label, {"WT": 50})
    assert removed[_blob()].max() == 0 and (removed[~_blob()] == label[~_blob()]).all()
    np.testing.assert_array_equal(remove_small_components(label, {"WT": 25}), label)
    assert remove_small_components(label, {"WT": 50}) is not label and label[_blob()].min() == 2  # input kept


def test_26_connectivity_joins_diagonal_neighbours():
    label = np.zeros((10, 10, 10), np.uint8)
    label[2, 2, 2] = label[3, 3, 3] = 2  # corner-touching: one component of 2 voxels
    np.testing.assert_array_equal(remove_small_components(label, {"WT": 2}), label)
    assert remove_small_components(label, {"WT": 3}).max() == 0


def test_an_et_speck_is_relabelled_to_its_enclosing_label():
    label = np.zeros((30, 30, 30), np.uint8)
    label[_ball(label.shape, (15, 15, 15), 9)] = 2  # oedema
    label[_ball(label.shape, (15, 15, 15), 4)] = 1  # necrosis inside
    label[8:10, 15, 15] = 3                           # 2-voxel ET speck inside the oedema
    label[15, 15, 14:16] = 3                          # 2-voxel ET speck inside the necrosis
    label[25:29, 2:4, 2:4] = 3                        # isolated 16-voxel ET "tumour"
    label[20:26, 20:26, 20:26] = 4                    # a resection cavity far away, untouched
    out = remove_small_components(label, {"ET": 20})
    assert (out[8:10, 15, 15] == 2).all()
    assert (out[15, 15, 14:16] == 1).all()  # TC keeps its voxels
    assert (out[25:29, 2:4, 2:4] == 0).all()
    assert (out[20:26, 20:26, 20:26] == 4).all()
    assert not (out == 3).any()
    kept = remove_small_components(label, {"ET": 2})
    np.testing.assert_array_equal(kept, label)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_removal_works_on_the_tumour_box_with_the_same_result_as_on_the_whole_volume(seed):
    """A random multi-label map whose labels touch every face (its box is the whole array) and the same
    map inside a larger empty volume (processed on its box only) come out the same, every region at once."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.random((26, 24, 22)), 1.2)
    label = np.digitize(field, np.quantile(field, [0.45, 0.6, 0.75, 0.9])).astype(np.uint8)
    label = np.where(label > 0, (label + seed) % 4 + 1, 0).astype(np.uint8)
    specks = rng.random(label.shape) > 0.995
    label[specks] = rng.integers(1, 5, int(specks.sum()))
    for axis in range(3):  # non-zero voxels on all six faces
        for end in (0, -1):
            face = [slice(None)] * 3
            face[axis] = end
            label[tuple(face)][0, 0] = 2
    padded = np.zeros((40, 41, 39), np.uint8)
    padded[7:33, 9:33, 5:27] = label
    thresholds = {"WT": 30, "RC": 12, "TC": 20, "ET": 8, "NETC": 5, "SNFH": 6}
    whole = remove_small_components(label, thresholds)
    assert not np.array_equal(whole, label)  # the thresholds do remove components here
    inside = remove_small_components(padded, thresholds)
    np.testing.assert_array_equal(inside[7:33, 9:33, 5:27], whole)
    assert not inside[:7].any() and not inside[33:].any()
    assert remove_small_components(np.zeros((5, 6, 7), np.uint8), thresholds).shape == (5, 6, 7)


def test_small_rc_components_and_threshold_validation():
    label = np.zeros((20, 20, 20), np.uint8)
    label[2:4, 2:4, 2:4] = 4
    label[10:16, 10:16, 10:16] = 4
    out = remove_small_components(label, {"RC": 50})
    assert out[2:4, 2:4, 2:4].max() == 0 and (out[10:16, 10:16, 10:16] == 4).all()
    with pytest.raises(ValueError, match="unknown post-processing region"):
        remove_small_components(label, {"XX": 3})
    with pytest.raises(ValueError, match="non-negative integer"):
        remove_small_components(label, {"WT": -1})


def test_tuning_removes_false_positive_specks_and_is_saved(tmp_path):
    gts, preds = [], []
    for i in range(2):
        gt = np.zeros((40, 40, 40), np.uint8)
        gt[_ball(gt.shape, (12 + i, 12, 12), 7)] = 2
        gt[_ball(gt.shape, (12 + i, 12, 12), 3)] = 3
        pred = gt.copy()
        pred[_blob()] = 2  # a 30-voxel false positive
        gts.append(gt)
        preds.append(pred)
    thresholds, table = tune_postprocessing(preds, gts, (1.0, 1.0, 1.0), {"WT": [0, 25, 50, 100]},
                                            return_table=True)
    assert thresholds == {"WT": 50}  # 50 and 100 tie: the smaller wins
    # scored in two worker processes: the same choice and the same table, value for value
    in_workers = tune_postprocessing(preds, gts, (1.0, 1.0, 1.0), {"WT": [0, 25, 50, 100]}, return_table=True,
                                     workers=2)
    assert in_workers[0] == thresholds
    pd.testing.assert_frame_equal(in_workers[1], table)
    scores = table.set_index("threshold")["score"]
    assert scores[50] == pytest.approx(1.0) and scores[0] < 1.0 and scores[25] == scores[0]
    path = save_postprocessing(tmp_path, thresholds, table)
    assert path.name == "postprocess.json" and json.loads(path.read_text())["connectivity"] == 26
    assert load_postprocessing(tmp_path) == {"WT": 50}
    assert load_postprocessing(tmp_path / "missing") is None


# ------------------------------------------------------------------------------------------ whole cases


def test_prediction_on_a_real_case_overlays_the_input(real_data_dir, tmp_path):
    case = discover_cases(real_data_dir / "brats-gli")[0]
    loaded = load_case(case)
    config = PreprocessConfig(downsample=1)
    ensemble = Ensemble([BrightT2fIsSNFH(1.5)], "softmax", (96, 96, 96), config)
    label = predict_case(ensemble, loaded, device="cpu", tta=True, tta_axes=(0,), postprocess=False)
    assert label.shape == loaded.geometry.shape and label.dtype == np.uint8
    assert set(np.unique(label)) == {0, 2}

    # where the stand-in should have put label 2, computed on the original grid from the raw t2f
    stats = preprocess_case(loaded, config).meta
    low, high = stats["clip_bounds"][3]
    mean, std = stats["norm_stats"][3]
    z = (np.clip(loaded.image[3], low, high) - mean) / std
    brain = np.any(loaded.image != 0, axis=0)
    expected = (z > 1.5) & brain
    borderline = np.abs(z - 1.5) < 1e-3
    assert expected.sum() > 1000
    assert np.array_equal((label == 2)[~borderline], expected[~borderline])

    one_case = tmp_path / "in"
    one_case.mkdir()
    (one_case / case.case_id).symlink_to(case.folder, target_is_directory=True)
    path = predict_folder(ensemble, one_case, tmp_path / "out", device="cpu", tta=False, progress=False,
                          postprocess={"WT": 50})
    assert [p.name for p in path] == [f"{case.case_id}.nii.gz"]
    written = nib.load(path[0])
    source = nib.load(case.image_paths["t1n"])
    assert written.shape == source.shape and written.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(written.affine, source.affine)
    saved = np.asarray(written.dataobj)
    np.testing.assert_array_equal(saved, remove_small_components(label, {"WT": 50}))


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict_run")
    for i in range(3):
        write_tiny_case(root / "raw", i)
    config = tr.TrainConfig(data_dir=str(root / "raw"), cache_dir=str(root / "cache"), run_dir=str(root / "run"),
                            model={"name": "unet3d", "features_per_stage": [4, 8, 16]}, patch_size=16,
                            batch_size=2, epochs=2, iterations_per_epoch=2, val_patches=2, workers=0,
                            preprocess={"downsample": 1, "margin": 2}, device="cpu")
    tr.train(config, progress=False)
    return root


def test_cli_predicts_a_folder_with_a_trained_run(trained_run, tmp_path, capsys):
    run, raw = trained_run / "run", trained_run / "raw"
    out = tmp_path / "pred"
    assert cli.main(["predict", "--run", str(run), "--in", str(raw), "--out", str(out), "--device", "cpu",
                     "--no-tta"]) == 0
    assert "wrote 3 prediction(s)" in capsys.readouterr().out
    for case in discover_cases(raw):
        img = nib.load(out / f"{case.case_id}.nii.gz")
        assert img.shape == (28, 28, 28) and img.get_data_dtype() == np.uint8
        np.testing.assert_array_equal(img.affine, AFFINE)
        assert set(np.unique(np.asarray(img.dataobj))) <= {0, 1, 2, 3, 4}
    assert not list(out.glob(".*"))  # no temporary files left


def test_ensemble_of_runs_and_postprocess_json_is_applied(trained_run, tmp_path):
    run, raw = trained_run / "run", trained_run / "raw"
    other = tmp_path / "other_run"  # a second, different run: the trained weights moved at random
    other.mkdir()
    (other / "config.json").write_bytes((run / "config.json").read_bytes())
    state = tr.load_checkpoint(run / "best.pt")
    generator = torch.Generator().manual_seed(7)
    state["model"] = {k: v + 0.2 * v.std().nan_to_num() * torch.randn(v.shape, generator=generator)
                      if v.is_floating_point() and v.numel() > 1 else v for k, v in state["model"].items()}
    tr.save_checkpoint(other / "best.pt", state)
    ensemble_out = tmp_path / "ens"
    assert cli.main(["predict", "--run", str(run), "--run", str(other), "--in", str(raw), "--out",
                     str(ensemble_out), "--device", "cpu", "--no-tta"]) == 0
    case = discover_cases(raw)[0]
    loaded = load_case(case)
    _, p_a, meta = predict_case(run, loaded, device="cpu", tta=False, postprocess=False, return_probabilities=True)
    _, p_b, _ = predict_case(other, loaded, device="cpu", tta=False, postprocess=False, return_probabilities=True)
    assert (p_a - p_b).abs().max() > 0.05  # two different runs
    average = (p_a + p_b) / 2
    _, p_ens, _ = predict_case([run, other], loaded, device="cpu", tta=False, postprocess=False,
                               return_probabilities=True)
    torch.testing.assert_close(p_ens, average, rtol=0, atol=1e-6)
    expected = invert_label(average.argmax(0).to(torch.uint8).numpy(), meta)
    top2 = average.topk(2, dim=0).values
    clear = invert_label((top2[0] - top2[1] > 1e-5).numpy().astype(np.uint8), meta).astype(bool)
    written = np.asarray(nib.load(ensemble_out / f"{case.case_id}.nii.gz").dataobj)
    np.testing.assert_array_equal(written[clear], expected[clear])
    # and the average is not simply one of the two runs
    label_a = invert_label(p_a.argmax(0).to(torch.uint8).numpy(), meta)
    label_b = invert_label(p_b.argmax(0).to(torch.uint8).numpy(), meta)
    assert (written != label_a).any() or (written != label_b).any()

    run_copy = tmp_path / "run_pp"
    run_copy.mkdir()
    for f in run.iterdir():
        (run_copy / f.name).write_bytes(f.read_bytes())
    save_postprocessing(run_copy, {"WT": 10**9, "RC": 10**9})  # removes everything
    paths = predict_folder(run_copy, raw, tmp_path / "pp", device="cpu", tta=False, progress=False)
    assert all(np.asarray(nib.load(p).dataobj).max() == 0 for p in paths)
    assert cli.main(["predict", "--run", str(tmp_path / "nope"), "--in", str(raw), "--out",
                     str(tmp_path / "x")]) == 2
