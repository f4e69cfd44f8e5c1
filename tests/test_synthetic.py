"""The synthetic BraTS-like generator: layout, grid, determinism, labels, volumes and contrasts.

Four cases (seed 0: variants resected_residual, untreated, resected_non_enhancing, multifocal) are written
once with two workers; everything else reads them, plus one case in memory with its tissue map for the
contrast checks. About 30–45 s on two idle cores.
"""

import hashlib
import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage as ndi

from brats_lib import io
from brats_lib.cli import main as cli_main
from brats_lib.labels import ET, NETC, RC, SNFH
from brats_lib.synthetic import (
    GENERATOR_VERSION,
    GRID_AFFINE,
    GRID_SHAPE,
    MANIFEST_NAME,
    VARIANT_LABELS,
    VARIANTS,
    case_id_for,
    generate_dataset,
    load_anatomy,
    synthesise_case,
    variant_for,
)
from brats_lib.errors import BratsConfigError
from brats_lib.synthetic.anatomy import resample_to_grid
from brats_lib.synthetic.lesions import check_oedema_scale, oedema_scale_for

SEED = 0
N_CASES = 4
MNI_AFFINE = np.array([[-1.0, 0, 0, 90], [0, 1, 0, -126], [0, 0, 1, -72], [0, 0, 0, 1]])
#: label → (min, max) volume in mL when present (BraTS-like ranges)
VOLUME_RANGES = {NETC: (0.1, 40.0), SNFH: (10.0, 200.0), ET: (1.0, 50.0), RC: (2.0, 60.0)}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def case_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.endswith(".nii.gz"))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synthetic")
    folders = generate_dataset(out, n_cases=N_CASES, seed=SEED, workers=2, progress=False)
    assert folders == [out / case_id_for(i) for i in range(N_CASES)]
    return out


@pytest.fixture(scope="module")
def loaded(dataset) -> list:
    return [io.load_case(case) for case in io.discover_cases(dataset)]


@pytest.fixture(scope="module")
def manifest(dataset) -> dict:
    return json.loads((dataset / MANIFEST_NAME).read_text())


def _first_index_of(variant: str) -> int:
    return next(i for i in range(N_CASES) if variant_for(SEED, i) == variant)


@pytest.fixture(scope="module")
def memory_case():
    """A written case with all four labels, synthesised again in memory with its tissue map."""
    index = next(i for i in range(N_CASES) if len(VARIANT_LABELS[variant_for(SEED, i)]) == 4)
    image, seg, meta = synthesise_case(SEED, index, with_tissue=True)
    return index, image, seg, meta


# ------------------------------------------------------------------------------------------ layout and grid


def test_official_layout_and_grid(dataset, loaded):
    ids = [case_id_for(i) for i in range(N_CASES)]
    assert [c.case.case_id for c in loaded] == ids
    for item in loaded:
        case = item.case
        assert case.layout == "2024" and case.timepoint == "000" and case.has_label
        names = sorted(p.name for p in case_files(case.folder))
        assert names == sorted(f"{case.case_id}-{t}.nii.gz" for t in ("t1n", "t1c", "t2w", "t2f", "seg"))
        assert item.image.shape == (4,) + GRID_SHAPE and item.image.dtype == np.float32
        assert item.label.shape == GRID_SHAPE and item.label.dtype == np.uint8
        np.testing.assert_array_equal(item.geometry.affine, MNI_AFFINE)
        assert item.geometry.orientation == "LAS" and item.geometry.spacing == (1.0, 1.0, 1.0)
        for path in case.image_paths.values():
            assert nib.load(path).get_data_dtype() == np.float32
        assert nib.load(case.seg_path).get_data_dtype() == np.uint8
    assert GRID_SHAPE == (182, 218, 182)
    np.testing.assert_array_equal(GRID_AFFINE, MNI_AFFINE)


def test_same_grid_as_real_2024_case(loaded, real_data_dir):
    real = real_data_dir / "brats-gli" / "BraTS-GLI-00000-000" / "BraTS-GLI-00000-000-t1n.nii.gz"
    if not real.is_file():
        pytest.skip(f"{real} not found")
    img = nib.load(real)
    assert img.shape == GRID_SHAPE
    np.testing.assert_allclose(loaded[0].geometry.affine, img.affine, atol=1e-6)


def test_resample_to_grid_maps_world_coordinates():
    """A source on the nilearn MNI152 grid lands where its world coordinates say."""
    rng = np.random.default_rng(1)
    src_affine = np.array([[1.0, 0, 0, -98], [0, 1, 0, -134], [0, 0, 1, -72], [0, 0, 0, 1]])
    data = rng.random((197, 233, 189)).astype(np.float32)
    out = resample_to_grid(nib.Nifti1Image(data, src_affine))
    assert out.shape == GRID_SHAPE and out.dtype == np.float32
    for ijk in [(0, 0, 0), (90, 126, 72), (181, 217, 181), (17, 200, 33)]:
        world = GRID_AFFINE @ np.array([*ijk, 1.0])
        src = np.round(np.linalg.inv(src_affine) @ world).astype(int)[:3]
        assert out[ijk] == data[tuple(src)]


def test_template_anatomy_is_plausible():
    anat = load_anatomy()
    ml = {name: float(getattr(anat, name).sum()) / 1000 for name in ("gm", "wm", "csf")}
    assert 1700 < anat.mask.sum() / 1000 < 2000
    assert 800 < ml["gm"] < 1200 and 550 < ml["wm"] < 800 and 120 < ml["csf"] < 350
    np.testing.assert_allclose((anat.gm + anat.wm + anat.csf)[anat.mask], 1.0, atol=1e-5)
    # lateral ventricles: CSF fills the deep midline region above the thalamus (MNI x=±5…20, y=-20…10, z=15…25)
    i = np.round(90 - np.arange(5, 20)).astype(int)
    centre = anat.csf[np.r_[i, 180 - i][:, None, None], np.arange(106, 136)[None, :, None],
                      np.arange(87, 97)[None, None, :]]
    assert (centre > 0.5).mean() > 0.3
    assert anat.seeds.shape[0] > 1000 and (anat.wm[tuple(anat.seeds.T.astype(int))] > 0.95).all()


# ------------------------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_bytes(dataset, tmp_path):
    # written again in this process through the CLI: same bytes as the two-worker run
    assert cli_main(["synth", "--out", str(tmp_path), "--n", "1", "--start", "1", "--seed", str(SEED),
                     "--workers", "1"]) == 0
    assert sorted(os.listdir(tmp_path)) == [case_id_for(1), MANIFEST_NAME]
    ours, theirs = case_files(tmp_path / case_id_for(1)), case_files(dataset / case_id_for(1))
    assert [p.name for p in ours] == [p.name for p in theirs]
    assert [sha256(p) for p in ours] == [sha256(p) for p in theirs]


def test_different_seed_differs(dataset, tmp_path):
    generate_dataset(tmp_path, n_cases=1, seed=SEED + 1, workers=1, progress=False)
    for a, b in zip(case_files(tmp_path / case_id_for(0)), case_files(dataset / case_id_for(0))):
        assert sha256(a) != sha256(b), a.name


def test_in_memory_case_equals_written_files(memory_case, loaded):
    index, image, seg, meta = memory_case
    np.testing.assert_array_equal(loaded[index].image, image)
    np.testing.assert_array_equal(loaded[index].label, seg)
    assert meta["case_id"] == case_id_for(index)


def test_idempotent_skip_and_repair(dataset):
    files = [p for i in range(N_CASES) for p in case_files(dataset / case_id_for(i))]
    before = {p: (p.stat().st_mtime_ns, sha256(p)) for p in files}
    generate_dataset(dataset, n_cases=N_CASES, seed=SEED, workers=2, progress=False)
    assert {p: (p.stat().st_mtime_ns, sha256(p)) for p in files} == before  # nothing rewritten
    victim = dataset / case_id_for(1) / f"{case_id_for(1)}-t2f.nii.gz"
    victim.unlink()
    generate_dataset(dataset, n_cases=N_CASES, seed=SEED, workers=2, progress=False)
    assert sha256(victim) == before[victim][1]  # the broken case is rebuilt, bit for bit
    for p in files:
        if p.parent.name != case_id_for(1):
            assert p.stat().st_mtime_ns == before[p][0]
    assert not [p for p in dataset.rglob(".*")]  # no temporary files left behind


def test_manifest(dataset, manifest, loaded):
    assert manifest["seed"] == SEED and manifest["generator_version"] == GENERATOR_VERSION
    assert manifest["grid"]["shape"] == list(GRID_SHAPE)
    assert [c["case_id"] for c in manifest["cases"]] == [case_id_for(i) for i in range(N_CASES)]
    for entry, item in zip(manifest["cases"], loaded):
        assert entry["variant"] == variant_for(SEED, entry["index"])
        counts = np.bincount(item.label.ravel(), minlength=5)
        assert entry["volumes_ml"] == {"NETC": counts[1] / 1000, "SNFH": counts[2] / 1000,
                                       "ET": counts[3] / 1000, "RC": counts[4] / 1000}


def test_variant_cycle_covers_everything():
    for seed in (0, 1, 7):
        for start in (0, 3):
            assert {variant_for(seed, start + i) for i in range(8)} == set(VARIANTS)
            # any three consecutive cases hold all four labels between them; any two lack one
            for i in range(start, start + 8):
                window3 = [set(VARIANT_LABELS[variant_for(seed, j)]) for j in range(i, i + 3)]
                assert set.union(*window3) == {NETC, SNFH, ET, RC}
                assert any(len(VARIANT_LABELS[variant_for(seed, j)]) < 4 for j in (i, i + 1))


# ------------------------------------------------------------------------------------------------- labels


def test_labels_follow_the_variant(loaded, manifest):
    present_all = set()
    lacking = 0
    for item, entry in zip(loaded, manifest["cases"]):
        present = set(np.unique(item.label).tolist()) - {0}
        assert present == set(VARIANT_LABELS[entry["variant"]]), entry["case_id"]
        present_all |= present
        lacking += len(present) < 4
    assert present_all == {NETC, SNFH, ET, RC}
    assert lacking >= 1


@pytest.mark.parametrize("label", [NETC, SNFH, ET, RC], ids=["NETC", "SNFH", "ET", "RC"])
def test_label_volumes_in_brats_ranges(loaded, label):
    low, high = VOLUME_RANGES[label]
    volumes = [float((item.label == label).sum()) / 1000 for item in loaded]
    present = [v for v in volumes if v > 0]
    assert present, "label absent from every case"
    assert all(low <= v <= high for v in present), volumes


def test_whole_tumour_volume(loaded):
    for item in loaded:
        wt = float(np.isin(item.label, (NETC, SNFH, ET)).sum()) / 1000
        assert 10.0 <= wt <= 250.0


def test_netc_is_enclosed_by_enhancing_rim_or_cavity(loaded):
    checked = 0
    for item in loaded:
        seg = item.label
        if not ((seg == NETC).any() and (seg == ET).any()):
            continue
        netc = seg == NETC
        ring = ndi.binary_dilation(netc) & ~netc
        assert np.isin(seg[ring], (ET, RC)).mean() >= 0.95
        checked += 1
    assert checked >= 2


def test_snfh_surrounds_the_core(loaded):
    for item in loaded:
        seg = item.label
        hit = np.argwhere(seg)
        box = tuple(slice(int(a), int(b) + 1) for a, b in zip(hit.min(0), hit.max(0)))
        seg = seg[box]  # the lesion box holds every core voxel, so distances are unchanged
        core = np.isin(seg, (NETC, ET, RC))
        snfh = seg == SNFH
        distance = ndi.distance_transform_edt(~core)[snfh]
        assert np.median(distance) <= 20.0 and distance.max() <= 60.0
        components, _ = ndi.label(snfh)
        touching = np.unique(components[ndi.binary_dilation(core) & snfh])
        assert np.isin(components[snfh], touching[touching > 0]).mean() >= 0.9
        # the core is wrapped: most of its outer surface borders SNFH or other core labels, not healthy brain
        shell = ndi.binary_dilation(core) & ~core
        assert (seg[shell] != 0).mean() >= 0.4


def test_labels_inside_brain_and_background_zero(memory_case, loaded):
    _, image, seg, meta = memory_case
    brain = meta["tissue"] > 0
    assert not seg[~brain].any()
    assert (image[:, ~brain] == 0).all()
    assert (image >= 0).all() and np.isfinite(image).all()
    assert (image[:, brain] > 0).mean() > 0.99
    for item in loaded:
        assert (item.image >= 0).all()
        assert (item.image[:, item.label > 0].max(axis=0) > 0).all()  # labelled voxels are brain voxels
        assert (item.image[:, :3, :, :] == 0).all() and (item.image[:, :, :3, :] == 0).all()  # border


# ---------------------------------------------------------------------------------------------- contrasts

TISSUE = {"CSF": 1, "GM": 2, "WM": 3}
LABEL = {"NETC": NETC, "SNFH": SNFH, "ET": ET, "RC": RC}


def _mean(image, seg, tissue, modality: str, region: str) -> float:
    channel = image[io.MODALITIES.index(modality)]
    if region in TISSUE:
        # healthy tissue well away from lesions and from the brain's edge
        mask = (tissue == TISSUE[region]) & ~ndi.binary_dilation(seg > 0, iterations=3)
        mask &= ndi.binary_erosion(tissue > 0, iterations=3)
    else:
        mask = seg == LABEL[region]
    assert mask.sum() > 200, (modality, region)
    return float(channel[mask].mean())


@pytest.mark.parametrize(
    "modality, brighter, darker",
    [
        ("t1n", "WM", "GM"), ("t1n", "GM", "CSF"), ("t1n", "WM", "RC"), ("t1n", "ET", "NETC"),
        ("t1c", "ET", "NETC"), ("t1c", "ET", "WM"), ("t1c", "GM", "RC"),
        ("t2w", "CSF", "WM"), ("t2w", "CSF", "GM"), ("t2w", "GM", "WM"), ("t2w", "SNFH", "WM"),
        ("t2w", "RC", "WM"), ("t2w", "NETC", "WM"),
        ("t2f", "SNFH", "CSF"), ("t2f", "SNFH", "WM"), ("t2f", "SNFH", "GM"), ("t2f", "WM", "RC"),
        ("t2f", "GM", "CSF"),
        # necrosis is tissue, a cavity is fluid: NETC not suppressed on FLAIR, less dark on T1, less bright on T2
        ("t2f", "NETC", "RC"), ("t2f", "NETC", "WM"), ("t1n", "NETC", "RC"),
        ("t1c", "NETC", "RC"), ("t1c", "ET", "NETC"), ("t2w", "RC", "NETC"), ("t2w", "NETC", "SNFH"),
    ],
)
def test_contrast_order(memory_case, modality, brighter, darker):
    _, image, seg, meta = memory_case
    hi = _mean(image, seg, meta["tissue"], modality, brighter)
    lo = _mean(image, seg, meta["tissue"], modality, darker)
    assert hi > 1.1 * lo, f"{modality}: {brighter} {hi:.1f} vs {darker} {lo:.1f}"


def test_per_case_intensity_scaling_differs(loaded):
    """Raw WM-dominated intensities vary between cases, so normalisation matters."""
    medians = np.array([[np.median(item.image[m][item.image[m] > 0]) for m in range(4)] for item in loaded])
    assert (medians.max(axis=0) / medians.min(axis=0) > 1.5).all()
    assert np.allclose(loaded[0].image, np.rint(loaded[0].image))  # integer-valued, like scanner data


def test_synthesise_case_api(memory_case):
    _, image, seg, meta = memory_case
    assert image.shape == (4,) + GRID_SHAPE and image.dtype == np.float32
    assert seg.shape == GRID_SHAPE and seg.dtype == np.uint8
    assert meta["tissue"].dtype == np.uint8 and set(np.unique(meta["tissue"])) == {0, 1, 2, 3}
    json.dumps({k: v for k, v in meta.items() if k != "tissue"})
    with pytest.raises(ValueError):
        synthesise_case(-1, 0)


# ------------------------------------------------------------------ necrosis against cavity, against real scans


def _zscored_medians(image: np.ndarray, seg: np.ndarray, regions: dict) -> dict:
    """{region: {modality: median z}}, z-scored inside the brain after the 0.5–99.5 % clip (as preprocessing)."""
    from brats_lib import preprocess as pp

    image = image.astype(np.float32, copy=True)
    mask = pp.brain_mask(image)
    pp.clip_percentiles(image, mask, (0.5, 99.5))
    pp.zscore_in_mask(image, mask)
    return {name: {m: float(np.median(image[c][region])) for c, m in enumerate(io.MODALITIES)}
            for name, region in regions.items() if region.sum() >= 200}


@pytest.fixture(scope="module")
def synthetic_z(loaded) -> list:
    return [_zscored_medians(item.image, item.label, {k: item.label == v for k, v in LABEL.items()})
            for item in loaded]


def test_necrosis_and_cavity_differ_like_tissue_and_fluid(synthetic_z):
    """On seed 0 cases 0–3 (z-scored as in preprocessing): NETC is FLAIR-bright and a cavity FLAIR-dark,
    NETC far less dark than the cavity on T1, the cavity brighter on T2 (generator 1.0 failed the FLAIR
    order against SNFH: NETC 1.5 z against SNFH 4.3 z)."""
    both = [z for z in synthetic_z if "NETC" in z and "RC" in z]
    assert len(both) >= 2
    for z in both:
        assert z["NETC"]["t2f"] > z["RC"]["t2f"] + 3.0, z
        assert z["NETC"]["t2f"] > z["SNFH"]["t2f"], z
        assert z["RC"]["t2f"] < 0 < z["NETC"]["t2f"], z
        assert z["NETC"]["t1n"] > z["RC"]["t1n"] + 1.0, z
        assert z["RC"]["t2w"] > z["NETC"]["t2w"], z


#: (modality, brighter label, darker label) orders that hold in the median over the real sample patients.
REAL_ORDERS = [("t2f", "NETC", "SNFH"), ("t2w", "NETC", "SNFH"), ("t2w", "NETC", "ET"),
               ("t1c", "ET", "NETC"), ("t1c", "SNFH", "NETC")]


def test_real_scans_and_generator_agree_on_necrosis(real_data_dir, synthetic_z):
    """The label orders above hold on real BraTS patients (z-scored the same way) and on the generator's."""
    root = real_data_dir / "brats2021"
    cases = [c for c in io.discover_cases(root)] if root.is_dir() else []
    real = []
    for case in cases:
        item = io.load_case(case)
        real.append(_zscored_medians(item.image, item.label, {k: item.label == v for k, v in LABEL.items()}))
    real = [z for z in real if "NETC" in z]
    if len(real) < 3:
        pytest.skip(f"fewer than 3 real cases with necrosis under {root}")
    for modality, hi, lo in REAL_ORDERS:
        real_gap = np.median([z[hi][modality] - z[lo][modality] for z in real if hi in z and lo in z])
        synth_gap = np.median([z[hi][modality] - z[lo][modality] for z in synthetic_z if hi in z and lo in z])
        assert real_gap > 0, (modality, hi, lo, real_gap)
        assert synth_gap > 0, (modality, hi, lo, synth_gap)


# ------------------------------------------------------------------------------------ domain randomisation


def test_domain_randomisation_changes_the_look_not_the_label(memory_case):
    index, image, seg, _ = memory_case
    r_image, r_seg, r_meta = synthesise_case(SEED, index, randomise=True)
    np.testing.assert_array_equal(r_seg, seg)  # the same label map, drawn before any contrast
    assert r_meta["domain_randomised"] is True
    assert set(r_meta["domain_randomisation"]) == {"gamma", "slice_thickness_mm", "thick_slice_axis"}
    assert not np.array_equal(r_image, image)
    again, _, meta_again = synthesise_case(SEED, index, randomise=True)
    np.testing.assert_array_equal(again, r_image)  # deterministic for (seed, index)
    assert meta_again == r_meta
    # outside the brain stays exactly 0; each modality's tumour/brain contrast is not the physics one
    assert not r_image[:, seg == 0][:, image[0][seg == 0] == 0].any()
    ratio = [r_image[m][seg == SNFH].mean() / r_image[m][(seg == 0) & (image[m] > 0)].mean() for m in range(4)]
    physics = [image[m][seg == SNFH].mean() / image[m][(seg == 0) & (image[m] > 0)].mean() for m in range(4)]
    assert not np.allclose(ratio, physics, rtol=0.02)


def test_randomised_contrasts_span_flipped_orderings():
    from brats_lib.synthetic.contrasts import RANDOMISATION, TISSUE_MEANS, _randomised_means

    rng = np.random.default_rng(0)
    draws = [_randomised_means(rng) for _ in range(400)]
    log_factor = np.log([d["SNFH"] / np.asarray(TISSUE_MEANS["SNFH"]) for d in draws])
    assert abs(log_factor.mean()) < 0.03 and abs(log_factor.std() - RANDOMISATION["contrast_log_sd"]) < 0.03
    # FLAIR: NETC is brighter than SNFH in the physics means; randomised, some cases flip it, most keep it
    flipped = np.mean([d["NETC"][3] < d["SNFH"][3] for d in draws])
    assert 0.1 < flipped < 0.5


def test_variant_subsets_cycle_within_the_subset():
    subset = ("non_enhancing", "untreated")
    drawn = [variant_for(SEED, i, subset) for i in range(6)]
    assert set(drawn) == set(subset) and all(a != b for a, b in zip(drawn, drawn[1:]))
    assert [variant_for(SEED, i, VARIANTS) for i in range(8)] == [variant_for(SEED, i) for i in range(8)]
    with pytest.raises(ValueError, match="bogus"):
        variant_for(SEED, 0, ["bogus"])


def test_generate_randomised_pre_operative_cases_and_regenerate_on_a_change(tmp_path):
    argv = ["synth", "--out", str(tmp_path), "--n", "1", "--seed", "3", "--workers", "1", "--randomise",
            "--variants", "untreated,non_enhancing"]
    assert cli_main(argv) == 0
    entry = json.loads((tmp_path / MANIFEST_NAME).read_text())["cases"][0]
    assert entry["domain_randomised"] is True and entry["variant"] in ("untreated", "non_enhancing")
    seg_file = tmp_path / case_id_for(0) / f"{case_id_for(0)}-seg.nii.gz"
    assert RC not in np.unique(np.asarray(nib.load(seg_file).dataobj))
    t1c = tmp_path / case_id_for(0) / f"{case_id_for(0)}-t1c.nii.gz"
    before = sha256(t1c)
    generate_dataset(tmp_path, n_cases=1, seed=3, workers=1, progress=False, variants=["untreated", "non_enhancing"])
    assert sha256(t1c) != before  # asked without randomisation: the randomised case is replaced
    assert json.loads((tmp_path / MANIFEST_NAME).read_text())["cases"][0]["domain_randomised"] is False


def test_physics_contrasts_are_unchanged_by_the_randomisation_option():
    """Golden figures of case (0, 5) from generator 1.1 before domain randomisation existed: the default path
    must give the same image (a changed default needs a GENERATOR_VERSION bump and new figures here)."""
    image, seg, meta = synthesise_case(0, 5)
    means = [float(image[m][image[m] > 0].mean()) for m in range(4)]
    stds = [float(image[m][image[m] > 0].std()) for m in range(4)]
    np.testing.assert_allclose(means, [1051.668, 693.958, 573.482, 582.073], rtol=1e-5)
    np.testing.assert_allclose(stds, [305.58, 201.228, 204.093, 164.064], rtol=1e-4)
    assert np.bincount(seg.ravel(), minlength=5).tolist() == [7139019, 471, 62348, 6037, 13157]
    assert meta["variant"] == "satellites" and meta["domain_randomised"] is False


def test_oedema_scale_grows_only_the_oedema():
    """Same case at scale 1 and 1.5: the foci, cavities and contrast draws are kept, the SNFH volume grows
    (roughly with the cube of the radius factor, cut by the brain and CSF), and a range draws one factor per case
    from its own stream."""
    index = next(i for i in range(8) if variant_for(SEED, i, ["untreated"]) == "untreated")
    _, base, base_meta = synthesise_case(SEED, index, variants=["untreated"])
    _, one, one_meta = synthesise_case(SEED, index, variants=["untreated"], oedema_scale=1.0)
    _, big, big_meta = synthesise_case(SEED, index, variants=["untreated"], oedema_scale=1.5)
    assert "oedema_scale" not in base_meta and one_meta["oedema_scale"] == 1.0 and big_meta["oedema_scale"] == 1.5
    np.testing.assert_array_equal(one, base)  # a factor of 1 is the default case, byte for byte
    snfh, snfh_big = (base == SNFH).sum(), (big == SNFH).sum()
    assert 1.8 * snfh < snfh_big < 1.5 ** 3 * snfh * 1.3
    assert big_meta["n_foci"] == base_meta["n_foci"] and big_meta["variant"] == base_meta["variant"]
    factors = [oedema_scale_for(SEED, i, (1.0, 1.6)) for i in range(40)]
    assert all(1.0 <= f <= 1.6 for f in factors) and np.ptp(factors) > 0.4
    assert factors == [oedema_scale_for(SEED, i, [1.0, 1.6]) for i in range(40)]  # deterministic per case
    assert oedema_scale_for(SEED, 0, 1.2) == 1.2


@pytest.mark.parametrize("bad", [0, -1.0, (1.5, 1.0), (1.0, 9.0), (1.0, 1.2, 1.4), "x", float("nan")])
def test_oedema_scale_refuses_bad_values(bad, tmp_path):
    with pytest.raises(ValueError, match="expected"):
        check_oedema_scale(bad)
    with pytest.raises(BratsConfigError, match="oedema_scale"):
        generate_dataset(tmp_path / "out", n_cases=1, seed=0, workers=1, progress=False, oedema_scale=bad)
    assert not (tmp_path / "out").exists()


def test_synth_cli_oedema_scale_is_recorded_and_regenerates_on_a_change(tmp_path, capsys):
    argv = ["synth", "--out", str(tmp_path), "--n", "1", "--seed", "2", "--workers", "1", "--variants", "untreated",
            "--oedema-scale", "1.2,1.4"]
    assert cli_main(argv) == 0
    entry = json.loads((tmp_path / MANIFEST_NAME).read_text())["cases"][0]
    assert entry["oedema_scale"] == round(oedema_scale_for(2, 0, (1.2, 1.4)), 6)
    seg_file = tmp_path / case_id_for(0) / f"{case_id_for(0)}-seg.nii.gz"
    before = sha256(seg_file)
    assert cli_main(argv) == 0 and sha256(seg_file) == before  # the same setting: kept
    generate_dataset(tmp_path, n_cases=1, seed=2, workers=1, progress=False, variants=["untreated"])
    assert sha256(seg_file) != before  # asked without the scale: regenerated
    assert "oedema_scale" not in json.loads((tmp_path / MANIFEST_NAME).read_text())["cases"][0]
    capsys.readouterr()
    assert cli_main([*argv[:-1], "1.2,oops"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--oedema-scale" in err
