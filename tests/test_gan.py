"""The tumour-inpainting GAN: crops and compositing, the networks, losses, exact resume, synthesis, the CLI."""

import csv
import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from brats_lib import cli
from brats_lib.errors import BratsConfigError
from brats_lib.gan import crops, losses, models, quality
from brats_lib.gan import synth as gs
from brats_lib.gan import train as gt
from brats_lib.io import MODALITIES, discover_cases, load_case
from conftest import TINY_AFFINE

SHAPE = (40, 40, 40)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: these tiny networks run several times faster so on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_spacious_case(root, index):
    """A 40³ case: a brain ball of radius 17 with a small tumour (SNFH ⊃ ET ⊃ NETC, radius 4) off-centre along
    x (+9 or −9 by index parity), so the other half of the brain has room for an inserted tumour."""
    rng = np.random.default_rng(index)
    case_id = f"BraTS-GLI-{index:05d}-000"
    folder = root / case_id
    folder.mkdir(parents=True)
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in SHAPE], indexing="ij")).astype(float)
    brain = np.sqrt(((grid - 20) ** 2).sum(0)) < 17
    centre = np.array([20 + (9 if index % 2 else -9), 20, 20])
    r = np.sqrt(((grid - centre[:, None, None, None]) ** 2).sum(0))
    label = np.zeros(SHAPE, np.uint8)
    label[r < 4] = 2
    label[r < 2.5] = 3
    label[r < 1.2] = 1
    for c, m in enumerate(MODALITIES):
        image = (100.0 + 10 * c + 5 * rng.standard_normal(SHAPE) + 40 * (label > 0) + 15 * label) * brain
        nib.save(nib.Nifti1Image(image.astype(np.float32), TINY_AFFINE), folder / f"{case_id}-{m}.nii.gz")
    nib.save(nib.Nifti1Image(label, TINY_AFFINE), folder / f"{case_id}-seg.nii.gz")
    return folder


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("gan_data")
    for i in range(4):
        write_spacious_case(root / "raw", i)
    return root


def _config(dataset, run_dir, **overrides):
    values = dict(data_dir=str(dataset / "raw"), cache_dir=str(dataset / "cache"), run_dir=str(run_dir),
                  preprocess={"downsample": 1, "margin": 2}, crop_size=16, crop_jitter=1, dilation=1,
                  generator={"features_per_stage": [4, 8]}, discriminator={"features": [4, 8]}, batch_size=2,
                  epochs=2, iterations_per_epoch=2, val_crops=2, workers=0, device="cpu")
    values.update(overrides)
    return gt.GanConfig(**values)


@pytest.fixture(scope="module")
def gan_run(dataset):
    run = dataset / "run"
    gt.train_gan(_config(dataset, run), progress=False)
    return run


# ------------------------------------------------------------------------------------------------ crops, models


def test_generator_input_and_output_shapes():
    label = torch.zeros(2, 16, 16, 16, dtype=torch.int64)
    label[:, 6:10, 6:10, 6:10] = 2
    label[:, 7:9, 7:9, 7:9] = 3
    image = torch.randn(2, 4, 16, 16, 16)
    mask = crops.inpaint_mask(label, 1)
    assert mask.shape == (2, 1, 16, 16, 16) and int(mask[0].sum()) == 6 ** 3  # the 4³ tumour dilated by 1
    x = crops.generator_input(image, label, mask, torch.zeros_like(image))
    assert x.shape == (2, 9, 16, 16, 16)
    assert torch.equal(x[:, :4][mask.expand(-1, 4, -1, -1, -1).bool()], torch.zeros(2 * 4 * 216))  # noise inside
    assert int(x[0, 5].sum()) == 4 ** 3 - 2 ** 3 and int(x[0, 6].sum()) == 2 ** 3  # SNFH and ET channels
    assert int(x[0, 4].sum()) == 0 and int(x[0, 7].sum()) == 0 and torch.equal(x[:, 8:], mask)
    generator = models.InpaintGenerator(features_per_stage=[4, 8, 16])
    assert generator(x).shape == (2, 4, 16, 16, 16)
    discriminator = models.PatchDiscriminator(features=[4, 8, 16])
    logits = discriminator(image, crops.label_channels(label))
    assert logits.shape == (2, 1, 2, 2, 2)  # 16 → 8 → 4 (stride 2) → 3 → 2 (4³ kernels, stride 1)


def test_compositing_keeps_every_voxel_outside_the_mask_bit_for_bit():
    torch.manual_seed(0)
    image = torch.randn(1, 4, 8, 8, 8) * 1e3
    mask = torch.zeros(1, 1, 8, 8, 8)
    mask[..., 2:5, 3:6, 1:4] = 1
    generated = torch.full_like(image, float("nan"))
    generated[mask.expand_as(image).bool()] = 7.0
    out = crops.composite(image, generated, mask)
    outside = ~mask.bool().expand_as(image)
    assert torch.equal(out[outside], image[outside])
    assert torch.all(out[~outside] == 7.0)
    generated = torch.randn_like(image)  # the finite case equals the formula x·(1−m) + g·m
    assert torch.equal(crops.composite(image, generated, mask)[outside], (image * (1 - mask) + generated * mask)[outside])


def test_generator_is_a_composited_inpainter_with_checkpointing_giving_the_same_result():
    torch.manual_seed(0)
    plain = models.InpaintGenerator(features_per_stage=[4, 8], checkpointing=False)
    checked = models.InpaintGenerator(features_per_stage=[4, 8], checkpointing=True)
    checked.load_state_dict(plain.state_dict())
    x = torch.randn(1, 9, 8, 8, 8)
    a, b = plain(x), checked(x)
    a.square().sum().backward()
    b.square().sum().backward()
    assert torch.allclose(a, b)
    for p, q in zip(plain.parameters(), checked.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-6)


def test_discriminator_is_spectral_normalised():
    discriminator = models.PatchDiscriminator(features=[4, 8])
    convs = [m for m in discriminator.modules() if isinstance(m, torch.nn.Conv3d)]
    assert len(convs) == 3
    for conv in convs:
        assert torch.nn.utils.parametrize.is_parametrized(conv, "weight")
        assert type(conv.parametrizations.weight[0]).__name__ == "_SpectralNorm"
    conv = convs[0]  # whatever the raw weight's scale, after power iterations the largest singular value is 1
    with torch.no_grad():
        conv.parametrizations.weight.original.mul_(50)
        raw = torch.linalg.matrix_norm(conv.parametrizations.weight.original.flatten(1), ord=2)
        discriminator.train()
        for _ in range(30):
            discriminator(torch.randn(1, 4, 16, 16, 16), torch.zeros(1, 4, 16, 16, 16))
        discriminator.eval()
        sigma = torch.linalg.matrix_norm(conv.weight.flatten(1), ord=2)
    assert float(raw) > 5 and abs(float(sigma) - 1.0) < 0.05


# ------------------------------------------------------------------------------------------------ losses


def test_l1_weight_ramps_from_1_to_100():
    assert losses.l1_weight(0, 11) == 1.0
    assert losses.l1_weight(5, 11) == 50.5
    assert losses.l1_weight(10, 11) == 100.0
    assert losses.l1_weight(99, 11) == 100.0
    assert losses.l1_weight(0, 1) == 100.0


def test_masked_l1_and_hinge_losses_known_values():
    prediction = torch.zeros(1, 2, 2, 2, 2)
    target = torch.ones(1, 2, 2, 2, 2)
    target[0, :, 0] = 5.0  # outside the mask: must not count
    mask = torch.zeros(1, 1, 2, 2, 2)
    mask[0, 0, 1] = 1
    assert float(losses.masked_l1(prediction, target, mask)) == 1.0
    assert float(losses.masked_l1(prediction, target, torch.zeros_like(mask))) == 0.0
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-3.0, 0.0])
    assert float(losses.hinge_discriminator(real, fake)) == pytest.approx((0 + 0.5) / 2 + (0 + 1) / 2)
    assert float(losses.hinge_generator(fake)) == pytest.approx(1.5)


# ------------------------------------------------------------------------------------------------ training


def test_run_directory_and_metrics(gan_run):
    assert {p.name for p in gan_run.iterdir()} >= {"config.json", "metrics.csv", "metrics.json", "last.pt", "best.pt"}
    rows = list(csv.DictReader(open(gan_run / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    for column in ("d_loss", "g_loss", "l1", "val_l1", "val_mean_fill_l1", "l1_weight", "peak_rss_mib"):
        assert np.isfinite(float(rows[0][column])), column
    assert float(rows[-1]["l1_weight"]) == 100.0 and float(rows[0]["peak_rss_mib"]) > 50
    state = gt.load_checkpoint(gan_run / "last.pt")
    assert state["kind"] == gt.RUN_KIND and state["epoch"] == 1
    assert state["opt_g"]["param_groups"][0]["betas"] == (0.5, 0.999)
    generator, config = gt.load_gan_run(gan_run)
    assert not generator.training and config.crop_size == 16


def test_resume_two_half_runs_equal_one_full_run_bit_for_bit(dataset, tmp_path):
    full = tmp_path / "full"
    gt.train_gan(_config(dataset, full, epochs=2), progress=False)
    halves = tmp_path / "halves"
    gt.train_gan(_config(dataset, halves, epochs=2, time_limit_minutes=0.0), progress=False)  # stops after epoch 1
    assert gt.load_checkpoint(halves / "last.pt")["epoch"] == 0
    gt.train_gan(_config(dataset, halves, epochs=2), progress=False)
    a, b = gt.load_checkpoint(full / "last.pt"), gt.load_checkpoint(halves / "last.pt")
    for part in ("generator", "discriminator"):
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part]), part
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("seconds", "seconds_per_step", "peak_rss_mib")}
                          for r in rows]
    assert strip(csv.DictReader(open(full / "metrics.csv"))) == strip(csv.DictReader(open(halves / "metrics.csv")))


def test_a_tiny_gan_overfits_one_crop(dataset, gan_run):
    """Masked L1 of one repeated 8³ crop falls by more than 80 % in 60 steps (the reconstruction can be learnt);
    ``gan_run`` only makes sure the cache exists."""
    torch.manual_seed(0)
    trainer = gt.GanTrainer(_config(dataset, dataset / "unused", lr=1e-2, weight_decay=0.0, crop_size=8,
                                    generator={"features_per_stage": [8, 16]}))
    trainer._build({"train": ["BraTS-GLI-00000-000"], "val": []})
    image, label = trainer.crops.fixed(1)
    assert (label > 0).any() and (label == 0).any()
    noise = torch.randn(image.shape, generator=torch.Generator().manual_seed(0))
    first = float(trainer.step(image, label, noise, 100.0)["l1"])
    for _ in range(60):
        last = float(trainer.step(image, label, noise, 100.0)["l1"])
    assert last < 0.2 * first, (first, last)


# ------------------------------------------------------------------------------------------------ synthesis


def test_synthesis_writes_valid_cases_with_the_inserted_label_and_the_source_elsewhere(dataset, gan_run, tmp_path):
    out = tmp_path / "synth"
    records = gs.synthesise(gan_run, dataset / "raw", out, 2, seed=3)
    cases = {c.case_id: c for c in discover_cases(out)}
    assert sorted(cases) == ["BraTS-GLI-90000-000", "BraTS-GLI-90001-000"]
    raw = {c.case_id: c for c in discover_cases(dataset / "raw")}
    provenance = list(csv.DictReader(open(out / "provenance.csv")))
    assert [r["case_id"] for r in provenance] == sorted(cases)
    for record in records:
        new = load_case(cases[record.case_id])
        source = load_case(raw[record.source])
        donor = load_case(raw[record.donor])
        assert new.image.shape == source.image.shape and np.allclose(new.geometry.affine, source.geometry.affine)
        assert record.donor != record.source
        inserted = new.label != source.label
        # the old label is kept; the new voxels are the donor's tumour, flipped, turned and elastically deformed
        # (the same labels, each within a third of its volume; exact counts without deformation: test below)
        assert np.array_equal(new.label[~inserted], source.label[~inserted]) and not (source.label[inserted] > 0).any()
        assert record.elastic_sigma == gs.ELASTIC_SIGMA
        for k in (1, 2, 3, 4):
            n_new, n_donor = int((new.label[inserted] == k).sum()), int((donor.label == k).sum())
            assert (n_new == 0) == (n_donor == 0) and abs(n_new - n_donor) <= n_donor / 3 + 8, (k, n_new, n_donor)
        # inside the brain, off the existing tumour
        brain = source.image.any(0)
        assert brain[inserted].all()
        assert not (crops.dilate(torch.from_numpy(inserted)[None], 1)[0].numpy() & (source.label > 0)).any()
        # the image changed only within the inpainting region around the inserted tumour, and did change there
        changed = (new.image != source.image).any(0)
        region = crops.dilate(torch.from_numpy(inserted)[None], 1)[0].numpy()  # dilation 1 × factor 1
        assert changed.any() and not (changed & ~region).any()
        assert (changed & inserted).sum() > 0.9 * inserted.sum()
    again = gs.synthesise(gan_run, dataset / "raw", tmp_path / "again", 2, seed=3)
    assert again == records
    for cid in cases:
        for name in (f"{cid}-t2f.nii.gz", f"{cid}-seg.nii.gz"):
            a = nib.load(out / cid / name).get_fdata()
            b = nib.load(tmp_path / "again" / cid / name).get_fdata()
            assert np.array_equal(a, b)
    assert not list(out.glob(".*"))


def test_without_deformation_the_inserted_tumour_is_the_donors_voxel_for_voxel(dataset, gan_run, tmp_path):
    """σ = 0: flips and turns only, so every label keeps its exact count; the default σ changes the shape."""
    flat = gs.synthesise(gan_run, dataset / "raw", tmp_path / "flat", 1, seed=3, elastic_sigma=0)
    bent = gs.synthesise(gan_run, dataset / "raw", tmp_path / "bent", 1, seed=3)
    assert flat[0].elastic_sigma == 0 and bent[0].elastic_sigma == gs.ELASTIC_SIGMA
    raw = {c.case_id: c for c in discover_cases(dataset / "raw")}
    new = load_case(discover_cases(tmp_path / "flat")[0])
    source, donor = load_case(raw[flat[0].source]), load_case(raw[flat[0].donor])
    inserted = new.label != source.label
    for k in (1, 2, 3, 4):
        assert int((new.label[inserted] == k).sum()) == int((donor.label == k).sum()), k
    # the same source, donor and turns draw the same piece; deformed, it is no longer a flipped copy
    piece, flips, k, _ = gs.transformed_piece(donor.label, np.random.default_rng(0))
    field = gs.elastic_field(np.array(piece.shape) + 2 * gs.elastic_margin(2.0), np.random.default_rng(1), 2.0)
    bent_piece = gs.deform(np.pad(piece, gs.elastic_margin(2.0)), field, order=0)
    assert set(np.unique(bent_piece)) <= set(np.unique(piece))
    assert not np.array_equal(bent_piece, np.pad(piece, gs.elastic_margin(2.0)))
    assert (bent_piece[[0, -1]] == 0).all() and (bent_piece[:, [0, -1]] == 0).all() and (bent_piece[..., [0, -1]] == 0).all()


def test_elastic_field_is_seeded_smooth_and_bounded():
    a = gs.elastic_field((30, 24, 20), np.random.default_rng(4), 2.0)
    assert a.shape == (3, 30, 24, 20) and a.dtype == np.float32
    assert np.array_equal(a, gs.elastic_field((30, 24, 20), np.random.default_rng(4), 2.0))
    assert np.abs(a).max() <= 3 * 2.0 and a.std() > 0.5
    assert max(np.abs(np.diff(a, axis=ax)).max() for ax in (1, 2, 3)) <= 0.5 + 1e-6  # smooth, no folding
    assert not gs.elastic_field((5, 6, 7), np.random.default_rng(4), 0).any() and gs.elastic_margin(0) == 0
    assert gs.elastic_margin(2.0) == 6


def test_deform_resamples_at_the_displaced_voxel():
    rng = np.random.default_rng(0)
    label = rng.integers(0, 5, (6, 7, 8)).astype(np.uint8)
    field = np.zeros((3, 6, 7, 8), np.float32)
    field[0] = 1.0  # every voxel takes the value one voxel further along x, 0 beyond the edge
    out = gs.deform(label, field, order=0)
    assert out.dtype == np.uint8 and np.array_equal(out[:-1], label[1:]) and not out[-1].any()
    image = rng.random((4, 6, 7, 8)).astype(np.float32)
    moved = gs.deform(image, field, order=1)
    assert moved.shape == image.shape and np.allclose(moved[:, :-1], image[:, 1:])
    assert np.array_equal(gs.deform(label, np.zeros_like(field), order=0), label)


def _valid_starts_brute_force(brain, occupied, piece, region, radius):
    shape, size = np.array(brain.shape), np.array(piece.shape)
    starts = []
    for start in np.ndindex(*(shape - size + 1)):
        box = tuple(slice(a, a + n) for a, n in zip(start, size))
        if not brain[box][piece].all():
            continue
        vol, win = gs._window(np.array(start) - radius, region.shape, brain.shape)
        if not (occupied[vol] & region[win]).any():
            starts.append(start)
    return np.array(starts, dtype=np.int64).reshape(-1, 3)


@pytest.mark.parametrize("seed, radius", [(0, 0), (1, 1), (2, 2)])
def test_valid_starts_are_every_placement_that_fits(seed, radius):
    rng = np.random.default_rng(seed)
    brain = np.zeros((14, 12, 11), bool)
    brain[2:13, 1:11, 1:10] = True
    brain &= rng.random(brain.shape) > 0.03  # holes: starts over them must be refused
    occupied = np.zeros_like(brain)
    occupied[8:11, 6:9, 4:7] = True
    piece = rng.random((4, 3, 3)) > 0.4
    piece[0, 0, 0] = piece[-1, -1, -1] = True
    piece = np.pad(piece, 1)  # an empty border, as the elastic margin leaves
    region = gs._dilate_np(np.pad(piece, radius), radius)
    expected = _valid_starts_brute_force(brain, occupied, piece, region, radius)
    got = gs.valid_starts(brain, occupied, piece, region, radius)
    assert len(expected) > 0 and np.array_equal(got, expected)
    tiny = np.zeros_like(brain)
    tiny[5:7, 5:7, 5:7] = True  # smaller than the piece: no start at all
    assert gs.valid_starts(tiny, occupied, piece, region, radius).shape == (0, 3)


def test_placement_falls_back_to_every_valid_start_when_random_centres_miss(dataset, gan_run):
    synthesiser = gs.Synthesiser(gan_run, dataset / "raw", max_tries=3, tries_per_pair=3)
    source, donor, piece, region, start, details = synthesiser.place(_NeverFits(np.random.default_rng(0)))
    box = tuple(slice(a, a + n) for a, n in zip(start, piece.shape))
    assert (start >= 0).all() and source.brain[box][piece > 0].all()
    vol, win = gs._window(start - synthesiser.dilation_full, region.shape, source.brain.shape)
    assert not ((source.label > 0)[vol] & region[win]).any()
    assert details["tries"] == 4  # the 3 random centres of the first pair failed, the exact search did not


def test_synthesis_gives_up_after_bounded_tries(dataset, gan_run, monkeypatch):
    synthesiser = gs.Synthesiser(gan_run, dataset / "raw", max_tries=6, tries_per_pair=3)
    calls = []
    monkeypatch.setattr(gs, "valid_starts", lambda *a: calls.append(1) or np.zeros((0, 3), np.int64))
    with pytest.raises(gs.BratsInputError, match="no place for an inserted tumour .*: none of 2 source/donor pair"):
        synthesiser.place(_NeverFits(np.random.default_rng(0)))
    assert len(calls) == 2  # one exact search per pair, two pairs


class _NeverFits:
    """A generator whose placements all fall on the volume's corner (outside the brain)."""

    def __init__(self, rng):
        self.rng = rng

    def integers(self, n, *args, **kwargs):  # index 0 of the brain voxels: the brain's first voxel in x
        return self.rng.integers(n, *args, **kwargs) if n < 100 or args else 0

    def random(self):
        return self.rng.random()

    def normal(self, *args, **kwargs):
        return self.rng.normal(*args, **kwargs)


# ------------------------------------------------------------------------------------------------ CLI


def _fails(capsys, argv, fragment, nothing_at=None):
    assert cli.main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and fragment in err, err
    if nothing_at is not None:
        assert not nothing_at.exists()
    return err


def test_cli_gan_synth_errors_write_nothing(capsys, dataset, gan_run, tmp_path):
    out = tmp_path / "out"
    base = ["gan-synth", "--data", dataset / "raw", "--out", out, "--seed", "0"]
    _fails(capsys, base + ["--run", gan_run, "--n", "0"], "positive number of cases", out)
    _fails(capsys, base + ["--run", gan_run, "--n", "1", "--elastic-sigma", "-1"], "elastic deformation sigma", out)
    _fails(capsys, base + ["--run", tmp_path / "absent", "--n", "1"], "run directory does not exist", out)
    seg_run = tmp_path / "seg_run"
    seg_run.mkdir()
    torch.save({"model": {}, "config": {}}, seg_run / "last.pt")
    _fails(capsys, base + ["--run", seg_run, "--n", "1"], "not a GAN run", out)
    unlabelled = tmp_path / "unlabelled"
    case = unlabelled / "BraTS-GLI-00000-000"
    case.mkdir(parents=True)
    for m in MODALITIES:
        (case / f"BraTS-GLI-00000-000-{m}.nii.gz").write_bytes((dataset / "raw" / "BraTS-GLI-00000-000" /
                                                                f"BraTS-GLI-00000-000-{m}.nii.gz").read_bytes())
    err = _fails(capsys, ["gan-synth", "--run", gan_run, "--data", unlabelled, "--out", out, "--n", "1"],
                 "label", out)
    assert str(unlabelled) in err
    _fails(capsys, base + ["--run", gan_run, "--n", "1", "--split", "nosuch"], "no split 'nosuch'", out)


def test_cli_gan_train_errors(capsys, dataset, tmp_path):
    config = tmp_path / "gan.json"
    _fails(capsys, ["gan-train", "--config", config], "config file does not exist")
    config.write_text(json.dumps({**_config(dataset, tmp_path / "run").to_dict(), "epochz": 2}))
    _fails(capsys, ["gan-train", "--config", config], "unknown GAN config keys ['epochz']", tmp_path / "run")
    config.write_text(json.dumps(_config(dataset, tmp_path / "run", crop_size=15).to_dict()))
    _fails(capsys, ["gan-train", "--config", config], "crop_size 15 must be a multiple of 2", tmp_path / "run")
    config.write_text(json.dumps(_config(dataset, tmp_path / "run", betas=[0.5]).to_dict()))
    _fails(capsys, ["gan-train", "--config", config], "betas", tmp_path / "run")


def test_cli_gan_train_then_synth(capsys, dataset, tmp_path):
    config = tmp_path / "gan.json"
    config.write_text(json.dumps(_config(dataset, tmp_path / "run", epochs=1, iterations_per_epoch=1).to_dict()))
    assert cli.main(["gan-train", "--config", str(config)]) == 0
    assert (tmp_path / "run" / "last.pt").exists()
    out = tmp_path / "out"
    assert cli.main(["gan-synth", "--run", str(tmp_path / "run"), "--data", str(dataset / "raw"), "--out", str(out),
                     "--n", "1", "--seed", "1", "--split", "train"]) == 0
    assert "wrote 1 case(s)" in capsys.readouterr().out
    train_ids = json.loads((dataset / "cache" / "splits.json").read_text())["train"]
    row = next(csv.DictReader(open(out / "provenance.csv")))
    assert row["source"] in train_ids and row["donor"] in train_ids
    _fails(capsys, ["gan-synth", "--run", tmp_path / "run", "--data", dataset / "raw", "--out", out, "--n", "1"],
           "already exists")


# ------------------------------------------------------------------------------------------------ quality


def test_masked_scores_known_answers():
    from brats_lib.gan import quality

    torch.manual_seed(0)
    target = torch.rand(2, 12, 12, 12)
    mask = torch.zeros(12, 12, 12, dtype=torch.bool)
    mask[3:9, 3:9, 3:9] = True
    same = quality.masked_scores(target, target, mask)
    assert same["mse"] == 0 and same["psnr"] == float("inf") and same["ssim"] == pytest.approx(1.0, abs=1e-5)
    shifted = target.clone()
    shifted[:, mask] += 0.1  # MSE 0.01 inside the mask → PSNR 20 dB; outside unchanged
    scores = quality.masked_scores(shifted, target, mask)
    assert scores["mse"] == pytest.approx(0.01, rel=1e-4) and scores["psnr"] == pytest.approx(20.0, abs=1e-3)
    assert scores["ssim"] < 1
    flat = torch.full_like(target, 0.5)
    assert quality.masked_scores(flat, target, mask)["ssim"] < 0.1  # no structure left
    scaled = quality.scale_to_unit(torch.tensor([[[[0.0, 1.0, 2.0, 3.0]]]]), torch.tensor([[[[0.0, 1.0, 2.0, 3.0]]]]))
    assert float(scaled.min()) == 0.0 and float(scaled.max()) == 1.0  # brain = non-zero voxels 1..3


def test_inpainting_quality_table(dataset, gan_run):
    from brats_lib.gan import quality

    generator, config = gt.load_gan_run(gan_run)
    crops_ = crops.TumourCrops(dataset / "cache", ["BraTS-GLI-00000-000", "BraTS-GLI-00001-000"], 16)
    table = quality.inpainting_quality(generator, crops_, 2, dilation=1)
    assert len(table) == 6 and set(table["method"]) == set(quality.METHODS)
    assert table[["mse", "psnr", "ssim"]].notna().all().all()


def test_copy_paste_baseline_makes_the_same_insertions_filled_from_the_donor(dataset, gan_run, tmp_path):
    gan = gs.synthesise(gan_run, dataset / "raw", tmp_path / "gan", 1, seed=5)
    pasted = gs.synthesise(gan_run, dataset / "raw", tmp_path / "paste", 1, seed=5, method="copy_paste")
    assert gan == pasted  # same source, donor, placement, flips, turns
    a = load_case(discover_cases(tmp_path / "gan")[0])
    b = load_case(discover_cases(tmp_path / "paste")[0])
    source = load_case(next(c for c in discover_cases(dataset / "raw") if c.case_id == gan[0].source))
    assert np.array_equal(a.label, b.label)
    inserted = a.label != source.label
    changed = (b.image != source.image).any(0)
    assert changed.any() and not (changed & ~crops.dilate(torch.from_numpy(inserted)[None], 1)[0].numpy()).any()
    assert not np.array_equal(a.image[:, inserted], b.image[:, inserted])
    # the donor's tumour is brighter than its brain (write_spacious_case: +40 + 15·label): so is the pasted one
    brain = source.image.any(0) & (source.label == 0) & ~crops.dilate(torch.from_numpy(inserted)[None], 1)[0].numpy()
    assert b.image[3][inserted].mean() > b.image[3][brain].mean() + 20


def test_copy_paste_from_a_config_alone_equals_copy_paste_with_the_trained_run(dataset, gan_run, tmp_path):
    """Copy-paste needs the run's geometry only: a GanConfig gives the same bytes as the trained run."""
    config = gt.load_gan_run(gan_run)[1]
    with_run = gs.synthesise(gan_run, dataset / "raw", tmp_path / "run", 2, seed=3, method="copy_paste")
    with_config = gs.synthesise(config, dataset / "raw", tmp_path / "config", 2, seed=3, method="copy_paste")
    assert with_run == with_config
    for case in with_run:
        for a, b in zip(sorted((tmp_path / "run" / case.case_id).iterdir()),
                        sorted((tmp_path / "config" / case.case_id).iterdir())):
            assert a.name == b.name and a.read_bytes() == b.read_bytes()
    with pytest.raises(BratsConfigError, match="needs a trained GAN run"):
        gs.synthesise(config, dataset / "raw", tmp_path / "gan", 1, method="gan")
    assert not (tmp_path / "gan").exists()


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_the_donor_block_turns_with_its_label(k):
    """What copy-paste relies on: cutting the untransformed box and transforming it equals transforming first."""
    rng = np.random.default_rng(0)
    volume = rng.integers(0, 5, (2, 7, 5, 3))
    turned = gs.transform(volume, [0, 2], k)
    assert turned.shape[1:] == ((5, 7, 3) if k % 2 else (7, 5, 3))
    assert np.array_equal(turned[1], gs.transform(volume[1], [0, 2], k))
    assert np.array_equal(gs.transform(volume[0], [], 1), np.rot90(volume[0], 1, axes=(0, 1)))


def test_conspicuity_is_the_contrast_to_the_surrounding_brain_in_brain_standard_deviations():
    image = np.zeros((4, 30, 30, 30), np.float32)
    image[:, 2:28, 2:28, 2:28] = 100.0
    image[:, 2:5] = 50.0  # brain far from the tumours: a spread in every contrast
    label = np.zeros((30, 30, 30), np.uint8)
    label[10:16, 10:16, 10:16] = 2
    label[12:14, 12:14, 12:14] = 3  # 8 voxels: below min_voxels
    label[20:24, 20:24, 20:24] = 4  # a second tumour: off the shell
    image[3][label == 2] = 130.0
    image[3][label == 4] = 60.0
    brain = image.any(0)
    spread = image[3][brain].std()
    got = quality.conspicuity(image, label, tumour=np.where(label == 4, 0, label), min_voxels=20)
    assert set(got) == {f"{m}_SNFH" for m in MODALITIES}
    assert got["t2f_SNFH"] == pytest.approx(30.0 / spread, rel=1e-5) and got["t1n_SNFH"] == 0.0
    everything = quality.conspicuity(image, label, min_voxels=20)
    assert everything["t2f_RC"] == pytest.approx(-40.0 / spread, rel=1e-5)
    with pytest.raises(ValueError, match="empty"):
        quality.conspicuity(image, label, tumour=np.zeros_like(label))
    with pytest.raises(ValueError, match="share a grid"):
        quality.conspicuity(image[:3], label)


def test_insertion_conspicuity_measures_each_inserted_tumour_and_each_donors_own(dataset, gan_run, tmp_path):
    records = gs.synthesise(gan_run, dataset / "raw", tmp_path / "paste", 2, seed=4, method="copy_paste")
    table = quality.insertion_conspicuity(tmp_path / "paste", dataset / "raw", "copy_paste")
    inserted = table[table["tumours"] == "inserted, copy_paste"]
    assert inserted["case"].tolist() == [r.case_id for r in records]
    assert table[table["tumours"] == "the donors' own"]["case"].tolist() == list(dict.fromkeys(r.donor for r in records))
    # the first inserted tumour, by hand
    new = load_case(discover_cases(tmp_path / "paste" / records[0].case_id)[0])
    source = load_case(next(c for c in discover_cases(dataset / "raw") if c.case_id == records[0].source))
    expected = quality.conspicuity(new.image, new.label, np.where(source.label == 0, new.label, 0))
    assert {k: v for k, v in inserted.iloc[0].items() if k in expected} == pytest.approx(expected)
    summary = quality.conspicuity_summary(table)
    assert summary[("", "n")].tolist() == [2, len(set(r.donor for r in records))]
    skipped = quality.insertion_conspicuity(tmp_path / "paste", dataset / "raw", skip_donors={records[0].donor})
    assert records[0].donor not in set(skipped.loc[skipped["tumours"] == "the donors' own", "case"])
    assert (skipped["tumours"] == "inserted").sum() == 2
    assert ("median", "t2f_SNFH") in summary.columns


def test_visibility_sentence_states_both_groups_with_n_and_leaves_out_a_label_neither_has():
    from brats_lib.gan import figures

    table = pd.DataFrame({"tumours": ["inserted, gan"] * 3 + [figures.DONORS] * 2, "case": list("abcde"),
                          "t2f_SNFH": [0.5, 0.7, 0.6, 4.0, 3.0], "t1c_ET": [np.nan] * 5})
    sentence = figures.visibility_sentence(quality.conspicuity_summary(table))
    assert sentence.startswith("the oedema on FLAIR 0.6 brain SDs above the tissue around it (3.5 for the same")
    assert "T1c" not in sentence and sentence.endswith(", medians over n = 3 inserted and 2 donors' tumours")
    history = pd.DataFrame([{"seconds_per_step": 0.5, "peak_rss_mib": 500.0}])
    summary = pd.DataFrame({"mse": [0.05, 0.08], "psnr": [13.0, 12.0], "ssim": [0.4, 0.2]},
                           index=["GAN", "mean fill"])
    text = figures.findings(history, summary, 1.0, 3, 10.0, quality.conspicuity_summary(table))
    assert "How visible the inserted tumours are: the oedema on FLAIR 0.6" in text
    assert "How visible" not in figures.findings(history, summary, 1.0, 3, 10.0)


def test_experiment_summary_reads_both_kinds_of_summary_and_names_what_was_not_run(tmp_path):
    from brats_lib.gan import figures

    synthetic, real = tmp_path / "synthetic", tmp_path / "real"
    synthetic.mkdir()
    real.mkdir()
    pd.DataFrame([{"arm": "real", "fraction": 0.5, "cases": 6, "mean_lesionwise_dice": 0.4, "paired_diff_vs_real": 0.0,
                   "ci95_low": 0.0, "ci95_high": 0.0},
                  {"arm": "gan", "fraction": 0.5, "cases": 6, "mean_lesionwise_dice": 0.2, "paired_diff_vs_real": -0.2,
                   "ci95_low": -0.3, "ci95_high": -0.1}]).to_csv(synthetic / "summary.csv", index=False)
    pd.DataFrame([{"arm": "real", "n": 7, "mean": 0.5, "paired_diff": 0.0, "ci95_low": 0.0, "ci95_high": 0.0},
                  {"arm": "copy_paste", "n": 7, "mean": 0.52, "paired_diff": 0.02, "ci95_low": -0.04,
                   "ci95_high": 0.07}]).to_csv(real / "summary.csv", index=False)
    (real / "command.json").write_text(json.dumps({"variant": "rules"}))
    table, missing = figures.experiment_summary([synthetic, real, tmp_path / "absent"])
    assert missing == [str(tmp_path / "absent")] and len(table) == 4
    assert table["arm"].tolist() == ["real only", "+ GAN cases", "real only", "+ copy-paste cases"]
    text = figures.experiment_findings(table, missing)
    assert "50% of the training cases** (n = 6 test cases): + GAN cases -0.200 (95 % interval -0.300 to -0.100: lower)" in text
    assert "with the cross-fitted post-processing, 100% of the training cases** (n = 7 patients)" in text
    assert "no detectable difference" in text and f"Not run in this build: `{tmp_path / 'absent'}`" in text
    assert figures.experiment_findings(*figures.experiment_summary([])).startswith("Not run in this build: this profile")
