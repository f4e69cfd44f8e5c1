"""Tests of brats_lib.augment on small CPU volumes (16³–32³)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from brats_lib.augment import (BlurParams, Compose, FactorParams, FlipParams, GammaParams, NoiseParams, RandomFlip,
                               RandomGamma, RandomSpatial, SpatialParams, ZoomParams, add_noise, brightness,
                               contrast, default_pipeline, gamma_transform, gaussian_blur, low_resolution, resample)
from brats_lib.augment.spatial import crop_offsets, sampling_grid, upsample_z


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_batch(batch=2, channels=4, size=(24, 24, 24), seed=0, label_dtype=torch.uint8):
    g = gen(seed)
    image = torch.randn(batch, channels, *size, generator=g)
    label = torch.randint(0, 5, (batch, *size), generator=g).to(label_dtype)
    return image, label


def block_pattern(size=32, batch=2, channels=2):
    """Label blocks 1..4 (8³ each) on background; image channel 0 equals the label as float."""
    label = torch.zeros(batch, size, size, size, dtype=torch.uint8)
    for value, (x, y, z) in zip((1, 2, 3, 4), ((6, 6, 6), (6, 16, 14), (16, 8, 16), (15, 17, 6))):
        label[:, x:x + 8, y:y + 8, z:z + 8] = value
    image = torch.zeros(batch, channels, size, size, size)
    image[:, 0] = label.float()
    return image, label


def spatial(batch, rotation=(0.0, 0.0, 0.0), scale=1.0, magnitude=0.0, crop=0.5, field=None, g=7):
    p = SpatialParams.identity(batch, control_points=g, crop=crop)
    p.rotation[:] = torch.tensor(rotation, dtype=torch.float32)
    p.scale[:] = scale
    p.elastic_magnitude[:] = magnitude
    if field is not None:
        p.elastic_field = field
    return p


# ----------------------------------------------------------------------------------------------- spatial


def test_flip_twice_is_identity_and_flip_matches_torch_flip():
    image, label = random_batch()
    params = FlipParams(torch.tensor([[True, False, True], [False, True, False]]))
    flip = RandomFlip()
    once = flip.apply(image, label, params)
    assert torch.equal(once[0][0], image[0].flip((1, 3)))
    assert torch.equal(once[1][1], label[1].flip(1))
    twice = flip.apply(*once, params)
    assert torch.equal(twice[0], image) and torch.equal(twice[1], label)


def test_identity_spatial_is_exact():
    image, label = random_batch()
    out_image, out_label = resample(image, label.unsqueeze(1), spatial(2), None)
    assert torch.equal(out_image, image) and torch.equal(out_label[:, 0], label)


def test_identity_through_the_interpolating_path():
    """360° rotations take the grid_sample path but move nothing: images equal to float error, labels exact."""
    image, label = random_batch(size=(20, 24, 16))
    params = spatial(2, rotation=(360.0, 360.0, 360.0))
    assert bool(params.resampled().all())
    out_image, out_label = RandomSpatial().apply(image, label, params)
    assert (out_image - image).abs().max().item() < 1e-4
    assert torch.equal(out_label, label)


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("angle,k", [(90.0, 1), (-90.0, -1), (180.0, 2)])
def test_right_angle_rotation_matches_rot90(axis, angle, k):
    image, label = random_batch(size=(24, 24, 24), seed=axis)
    rotation = [0.0, 0.0, 0.0]
    rotation[axis] = angle
    out_image, out_label = RandomSpatial().apply(image, label, spatial(2, rotation=rotation))
    plane = ((axis + 1) % 3, (axis + 2) % 3)
    expected_image = torch.rot90(image, k, dims=(plane[0] + 2, plane[1] + 2))
    expected_label = torch.rot90(label, k, dims=(plane[0] + 1, plane[1] + 1))
    assert (out_image - expected_image).abs().max().item() < 1e-4
    assert torch.equal(out_label, expected_label)


def test_crop_positions_and_padding():
    image, label = random_batch(size=(24, 20, 16))
    t = RandomSpatial(patch_size=(16, 16, 16))
    first = t.apply(image, label, spatial(2, crop=0.0))
    assert torch.equal(first[0], image[:, :, :16, :16, :16]) and torch.equal(first[1], label[:, :16, :16, :16])
    last = t.apply(image, label, spatial(2, crop=1.0))
    assert torch.equal(last[0], image[:, :, -16:, -16:, -16:])
    padded = RandomSpatial(patch_size=(28, 20, 20)).apply(image, label, spatial(2))
    assert padded[0].shape == (2, 4, 28, 20, 20)
    assert torch.equal(padded[0][:, :, 2:26, :, 2:18], image)
    assert padded[0][:, :, :2].abs().sum() == 0 and padded[1][:, :2].sum() == 0
    assert crop_offsets(torch.tensor([[0.5, 0.5, 0.5]]), (24, 20, 16), (28, 20, 20)).tolist() == [[-2, 0, -2]]


def test_interpolated_crop_agrees_with_sliced_crop():
    image, label = random_batch(size=(28, 28, 28))
    t = RandomSpatial(patch_size=(16, 20, 12))
    sliced = t.apply(image, label, spatial(2, crop=0.3))
    warped = t.apply(image, label, spatial(2, crop=0.3, rotation=(360.0, 0.0, 0.0)))
    assert (sliced[0] - warped[0]).abs().max().item() < 1e-4
    assert torch.equal(sliced[1], warped[1])


def test_zoom_enlarges_content():
    label = torch.zeros(1, 32, 32, 32, dtype=torch.uint8)
    label[:, 12:20, 12:20, 12:20] = 1  # an 8³ cube at the centre
    image = label[:, None].float()
    _, zoomed = RandomSpatial().apply(image, label, spatial(1, scale=2.0))
    _, shrunk = RandomSpatial().apply(image, label, spatial(1, scale=0.5))
    assert int(zoomed.sum()) == pytest.approx(16**3, rel=0.05)
    assert int(shrunk.sum()) == pytest.approx(4**3, rel=0.05)


def test_elastic_displacement_is_bounded_and_nonzero():
    p = RandomSpatial(p_rotation=0.0, p_scale=0.0, p_elastic=1.0, elastic_magnitude=(5.0, 5.0)).sample(2, gen(3))
    assert p.elastic_field.abs().max() <= 1 and p.elastic_field.abs().max() > 0.2
    offsets = crop_offsets(p.crop, (24, 24, 24), (24, 24, 24))
    deformed = sampling_grid(p, offsets, (24,) * 3, (24,) * 3, torch.device("cpu"), torch.float64)
    p.elastic_magnitude.zero_()
    straight = sampling_grid(p, offsets, (24,) * 3, (24,) * 3, torch.device("cpu"), torch.float64)
    shift_voxels = (deformed - straight).abs() * (24 - 1) / 2
    assert 1.0 < shift_voxels.max().item() <= 5.0 + 1e-6
    # With no deformation the grid is the identity: voxel centres in [-1, 1].
    assert torch.allclose(straight[0, :, 0, 0, 2], torch.linspace(-1, 1, 24, dtype=torch.float64), atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_grid_upsampling_paths_agree(dtype):
    """The CPU (matmul) and the CUDA (lerp) paths of the grid interpolation give the same grid."""
    coarse = torch.randn(2, 5, 6, 7, 3, generator=gen(0), dtype=dtype)
    by_matmul, by_lerp = upsample_z(coarse, 29, use_matmul=True), upsample_z(coarse, 29, use_matmul=False)
    assert by_matmul.shape == (2, 5, 6, 29, 3)
    assert (by_matmul - by_lerp).abs().max().item() < 1e-6
    assert torch.equal(by_lerp[:, :, :, 0], coarse[:, :, :, 0]) and torch.allclose(by_lerp[:, :, :, -1], coarse[:, :, :, -1])


def test_image_and_label_stay_aligned_under_the_full_spatial_transform():
    image, label = block_pattern()
    t = Compose([RandomSpatial(patch_size=(28, 28, 28), p_rotation=1.0, p_scale=1.0, p_elastic=1.0,
                               elastic_magnitude=(2.0, 4.0)), RandomFlip()])
    out_image, out_label = t(image, label, generator=gen(5))
    rounded = out_image[:, 0].round().clamp(0, 4).to(torch.uint8)
    # Compare away from label edges: voxels whose 3³ neighbourhood holds a single label.
    lab = out_label.float()[:, None]
    uniform = (torch.nn.functional.max_pool3d(lab, 3, 1, 1) == -torch.nn.functional.max_pool3d(-lab, 3, 1, 1))[:, 0]
    foreground = uniform & (out_label > 0)
    assert foreground.sum() > 500
    agreement = (rounded[uniform] == out_label[uniform]).float().mean().item()
    assert agreement > 0.98
    assert (rounded[foreground] == out_label[foreground]).float().mean().item() > 0.98
    # A misalignment of four voxels breaks it: the check can fail.
    shifted = (rounded.roll(4, dims=1)[foreground] == out_label[foreground]).float().mean().item()
    assert shifted < 0.9


# ----------------------------------------------------------------------------------------------- pipeline


@pytest.mark.parametrize("label_dtype", [torch.uint8, torch.int64])
@pytest.mark.parametrize("five_d", [False, True])
def test_full_pipeline_keeps_label_set_dtype_and_layout(label_dtype, five_d):
    image, label = random_batch(size=(24, 24, 24), label_dtype=label_dtype)
    if five_d:
        label = label[:, None]
    out_image, out_label = default_pipeline((16, 16, 16), always=True)(image, label, generator=gen(1))
    assert out_label.dtype == label_dtype and out_label.dim() == label.dim()
    assert set(out_label.unique().tolist()) <= {0, 1, 2, 3, 4}
    assert out_image.dtype == torch.float32 and bool(torch.isfinite(out_image).all())


@pytest.mark.parametrize("patch", [(16, 16, 16), (24, 20, 12), (32, 32, 32)])
@pytest.mark.parametrize("batch,channels", [(1, 1), (3, 4)])
def test_output_shapes(patch, batch, channels):
    image, label = random_batch(batch=batch, channels=channels, size=(24, 24, 24))
    out_image, out_label = default_pipeline(patch, always=True)(image, label, generator=gen(2))
    assert out_image.shape == (batch, channels, *patch) and out_label.shape == (batch, *patch)


def test_image_only_and_input_untouched():
    image, label = random_batch()
    before = image.clone(), label.clone()
    out_image, out_label = default_pipeline(None, always=True)(image, None, generator=gen(0))
    assert out_label is None and out_image.shape == image.shape
    default_pipeline((16, 16, 16), always=True)(image, label, generator=gen(0))
    assert torch.equal(image, before[0]) and torch.equal(label, before[1])


def test_non_contiguous_input():
    image, label = random_batch(batch=1)
    wide, wide_label = image.expand(3, -1, -1, -1, -1), label.expand(3, -1, -1, -1)
    params = default_pipeline(None, always=True).sample(3, gen(1))
    out = default_pipeline(None, always=True).apply(wide, wide_label, params)
    again = default_pipeline(None, always=True).apply(wide.contiguous(), wide_label.contiguous(), params)
    assert torch.equal(out[0], again[0]) and torch.equal(out[1], again[1])
    transposed = image.permute(0, 1, 4, 3, 2)
    gamma = RandomGamma(p=1.0).apply(transposed, None, RandomGamma(p=1.0).sample(1, gen(2)))[0]
    assert gamma.shape == (1, 4, 24, 24, 24) and bool(torch.isfinite(gamma).all())


def test_seed_determinism_and_replay():
    image, label = random_batch()
    pipeline = default_pipeline((16, 16, 16), always=True)
    a = pipeline(image, label, generator=gen(7))
    b = pipeline(image, label, generator=gen(7))
    c = pipeline(image, label, generator=gen(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.allclose(a[0], c[0])
    params = pipeline.sample(2, gen(9))
    first, second = pipeline.apply(image, label, params), pipeline.apply(image, label, params)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    torch.manual_seed(3)
    d = pipeline(image, label)
    torch.manual_seed(3)
    assert torch.equal(d[0], pipeline(image, label)[0])


def test_samples_get_their_own_parameters():
    params = default_pipeline().sample(4, gen(0))
    spatial_params = params.items[0]
    assert len(set(spatial_params.crop[:, 0].tolist())) == 4
    assert "rot=" in params.describe(1)


def test_default_probabilities_roughly_match_nnunet():
    params = default_pipeline((16, 16, 16)).sample(4000, gen(0))
    sp, noise, blur, bright, contr, low, gamma_inv, gamma, flip = params.items
    assert (sp.rotation != 0).any(1).float().mean().item() == pytest.approx(0.2, abs=0.03)
    assert (sp.scale != 1).any(1).float().mean().item() == pytest.approx(0.2, abs=0.03)
    assert (noise.std > 0).float().mean().item() == pytest.approx(0.1, abs=0.02)
    assert (blur.sigma > 0).any(-1).any(-1).float().mean().item() == pytest.approx(0.2 * (1 - 0.5**4), abs=0.03)
    assert (low.zoom < 1).any(-1).float().mean().item() == pytest.approx(0.25 * (1 - 0.5**4), abs=0.03)
    assert (gamma_inv.invert.any(-1)).float().mean().item() == pytest.approx(0.1, abs=0.02)
    assert (gamma.gamma != 1).any(-1).float().mean().item() == pytest.approx(0.3, abs=0.03)
    assert flip.flip.float().mean().item() == pytest.approx(0.5, abs=0.03)
    assert sp.rotation.abs().max() <= 30 and 0.7 <= sp.scale.min() and sp.scale.max() <= 1.4


def test_float32_and_float64_agree():
    image, label = random_batch()
    pipeline = default_pipeline((16, 16, 16), always=True)
    params = pipeline.sample(2, gen(4))
    params.items[1].std.zero_()  # the noise field depends on the dtype of the draw
    single = pipeline.apply(image, label, params)
    double = pipeline.apply(image.double(), label, params)
    assert double[0].dtype == torch.float64
    assert (single[0].double() - double[0]).abs().max().item() < 1e-3
    assert (single[1] != double[1]).float().mean().item() < 1e-3


def test_half_precision_input_returns_half_output():
    image, label = random_batch()
    pipeline = default_pipeline((16, 16, 16), always=True)
    params = pipeline.sample(2, gen(4))
    reference = pipeline.apply(image, label, params)[0]
    out = pipeline.apply(image.bfloat16(), label, params)[0]
    assert out.dtype == torch.bfloat16
    assert (out.float() - reference).abs().max().item() < 0.1 * reference.abs().max().item()


# ----------------------------------------------------------------------------------------------- intensity


def test_noise_statistics_and_seed():
    image = torch.zeros(2, 4, 32, 32, 32)
    params = NoiseParams(std=torch.tensor([0.2, 0.0]), seed=torch.tensor([11, 12]))
    out = add_noise(image, params)
    assert out[0].std().item() == pytest.approx(0.2, rel=0.02) and abs(out[0].mean().item()) < 0.005
    assert torch.equal(out[1], image[1]) and torch.equal(image, torch.zeros_like(image))
    assert torch.equal(out, add_noise(image, params))


def test_blur_matches_scipy():
    image, _ = random_batch(batch=1, channels=2, size=(20, 22, 24))
    sigma = torch.tensor([[[1.0, 0.5, 0.8], [0.0, 0.0, 0.0]]])
    out = gaussian_blur(image, BlurParams(sigma))
    expected = ndimage.gaussian_filter(image[0, 0].double().numpy(), sigma=(1.0, 0.5, 0.8), mode="constant",
                                       radius=3)
    np.testing.assert_allclose(out[0, 0].numpy(), expected, atol=1e-5)
    assert torch.equal(out[0, 1], image[0, 1])


def test_brightness_contrast_factors():
    image, _ = random_batch(batch=2, channels=2)
    factor = torch.tensor([[1.2, 1.0], [0.8, 0.9]])
    bright = brightness(image, FactorParams(factor))
    assert torch.allclose(bright, image * factor[:, :, None, None, None])
    low = contrast(image, FactorParams(factor.clamp(max=1.0)))
    ratio = low.std(dim=(2, 3, 4)) / image.std(dim=(2, 3, 4))
    assert torch.allclose(ratio, factor.clamp(max=1.0), atol=1e-4)
    assert torch.allclose(low.mean(dim=(2, 3, 4)), image.mean(dim=(2, 3, 4)), atol=1e-5)
    high = contrast(image, FactorParams(torch.full((2, 2), 1.25)))
    assert torch.all(high.amax(dim=(2, 3, 4)) <= image.amax(dim=(2, 3, 4)))
    assert torch.all(high.amin(dim=(2, 3, 4)) >= image.amin(dim=(2, 3, 4)))
    assert high.std() > image.std()


@pytest.mark.parametrize("invert", [False, True])
def test_gamma_keeps_range_or_stats(invert):
    image, _ = random_batch(batch=2, channels=2)
    params = GammaParams(gamma=torch.tensor([[0.7, 1.0], [1.5, 1.3]]), invert=torch.full((2, 2), invert))
    kept = gamma_transform(image, params, retain_stats=False)
    dims = (2, 3, 4)
    assert torch.allclose(kept.amin(dims), image.amin(dims), atol=1e-5)
    assert torch.allclose(kept.amax(dims), image.amax(dims), atol=1e-5)
    t = (image[0, 0] - image[0, 0].min()) / (image[0, 0].max() - image[0, 0].min())
    if not invert:
        expected = t**0.7 * (image[0, 0].max() - image[0, 0].min()) + image[0, 0].min()
        assert torch.allclose(kept[0, 0], expected, atol=1e-5)
        assert torch.equal(kept[0, 1], image[0, 1])
    stats = gamma_transform(image, params, retain_stats=True)
    assert torch.allclose(stats.mean(dims), image.mean(dims), atol=1e-4)
    assert torch.allclose(stats.std(dims), image.std(dims), rtol=1e-3)
    assert not torch.allclose(stats[1, 0], image[1, 0], atol=1e-2)


def test_gamma_sampling_is_balanced():
    params = RandomGamma(p=1.0).sample(2000, gen(0))
    below = (params.gamma < 1).float().mean().item()
    assert below == pytest.approx(0.5, abs=0.04)
    assert params.gamma.min() >= 0.7 and params.gamma.max() <= 1.5


def test_low_resolution():
    image, _ = random_batch(batch=1, channels=2, size=(32, 32, 32))
    out = low_resolution(image, ZoomParams(torch.tensor([[0.5, 1.0]])))
    assert torch.equal(out[0, 1], image[0, 1])
    # White noise loses its fine detail: neighbours become correlated.
    corr = torch.corrcoef(torch.stack([out[0, 0, 1:].flatten(), out[0, 0, :-1].flatten()]))[0, 1].item()
    assert corr > 0.4
    assert out[0, 0].min() >= image[0, 0].min() and out[0, 0].max() <= image[0, 0].max()
    ramp = torch.linspace(0, 1, 32)[:, None, None].expand(32, 32, 32)[None, None].contiguous()
    smooth = low_resolution(ramp, ZoomParams(torch.tensor([[0.75]])))
    assert (smooth - ramp).abs().max().item() < 0.05


def test_gamma_keeps_mean_and_std_of_a_large_low_contrast_volume():
    """Regression: E[x²] − E[x]² in float32 lost half the variance of such a volume on CPU."""
    from brats_lib.augment.intensity import GammaParams, gamma_transform

    g = torch.Generator().manual_seed(0)
    x = (torch.rand(1, 1, 128, 128, 128, generator=g) * 0.2 + 5.0)  # mean ≈ 5.1, std ≈ 0.06
    params = GammaParams(gamma=torch.tensor([[0.7]]), invert=torch.tensor([[False]]))
    out = gamma_transform(x, params)
    ref = gamma_transform(x.double(), params)
    assert (out.double() - ref).abs().max().item() < 1e-4
    assert out.double().mean().item() == pytest.approx(x.double().mean().item(), abs=1e-5)
    assert out.double().std().item() == pytest.approx(x.double().std().item(), rel=1e-4)


def test_strong_intensity_pipeline_applies_intensity_transforms_more_often_per_channel():
    from brats_lib.augment import PIPELINES, strong_intensity_pipeline

    g = torch.Generator().manual_seed(0)
    n = 4000
    strong = strong_intensity_pipeline(None).sample(n, g)
    default = default_pipeline(None).sample(n, g)
    # brightness (index 3): sample chosen with p, then each of 4 channels with p_per_channel
    strong_any = (strong.items[3].factor != 1).any(1).float().mean().item()
    default_any = (default.items[3].factor != 1).any(1).float().mean().item()
    assert abs(strong_any - 0.5 * (1 - 0.5 ** 4)) < 0.03 and abs(default_any - 0.15) < 0.03
    chosen = strong.items[3].factor[(strong.items[3].factor != 1).any(1)]
    assert 0.4 < (chosen != 1).float().mean().item() < 0.65  # per channel, not all four together
    assert PIPELINES["strong"] is strong_intensity_pipeline and PIPELINES["default"] is default_pipeline
    image = torch.randn(2, 4, 16, 16, 16)
    label = torch.randint(0, 4, (2, 16, 16, 16), dtype=torch.uint8)
    out, out_label = strong_intensity_pipeline((12, 12, 12))(image, label, generator=g)
    assert out.shape == (2, 4, 12, 12, 12) and set(out_label.unique().tolist()) <= {0, 1, 2, 3}
