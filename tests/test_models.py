import itertools

import pytest
import torch

from torch import nn

from brats_lib.models import (FCNN, MODELS, ResidualUNet3D, StudentEncoderDecoder, StudentFCNN, UNet3D, build_model,
                              count_parameters, decode_logits, decode_probabilities, describe, region_targets)

torch.set_num_threads(2)

SHAPE_CASES = [
    # name, features, n_conv, kernel, norm, nonlin, mode, deep_supervision
    (name, feats, n_conv, kernel, norm, nonlin, mode, ds)
    for name, (feats, n_conv, kernel, norm, nonlin, mode, ds) in itertools.product(
        [m for m in MODELS if m != "student_fcnn"],  # one fixed stage: tested below
        [
            ((4, 8, 8, 16), 2, 3, "instance", "leaky_relu", "softmax", False),
            ((4, 8, 8, 16, 16), 3, 3, "batch", "relu", "regions", True),
            ((4, 4, 8, 8, 8, 16), 2, 3, "group", "gelu", "softmax", True),
            ((4, 8, 8, 16), 4, 5, "instance", "leaky_relu", "regions", False),
        ],
    )
]


@pytest.mark.parametrize("name, feats, n_conv, kernel, norm, nonlin, mode, ds", SHAPE_CASES)
def test_output_shapes(name, feats, n_conv, kernel, norm, nonlin, mode, ds):
    model = build_model(dict(name=name, features_per_stage=feats, n_conv_per_stage=n_conv, kernel_size=kernel,
                             norm=norm, nonlin=nonlin, output_mode=mode, deep_supervision=ds))
    size = 2 ** (len(feats) - 1) * 2
    x = torch.randn(2, 4, size, size, size)
    channels = 5 if mode == "softmax" else 4
    model.train()
    out = model(x)
    if ds:
        assert isinstance(out, list) and len(out) == len(feats) - 1
        for level, o in enumerate(out):
            assert o.shape == (2, channels) + (size // 2 ** level,) * 3
    else:
        assert out.shape == (2, channels, size, size, size)
    model.eval()
    with torch.no_grad():
        assert model(x).shape == (2, channels, size, size, size)


def test_unet_has_skip_connections_and_fcnn_has_none():
    unet = UNet3D(features_per_stage=(4, 8, 16))
    fcnn = FCNN(features_per_stage=(4, 8, 16))
    # decoder input channels: U-Net concatenates the skip (2 × f), FCNN does not
    assert unet.decoder[-1][0][0].in_channels == 8
    assert fcnn.decoder[-1][0][0].in_channels == 4
    assert unet.skip_connections and not fcnn.skip_connections


def test_residual_unet_uses_residual_blocks():
    model = ResidualUNet3D(features_per_stage=(4, 8, 16))
    names = {type(m).__name__ for m in model.modules()}
    assert "ResidualBlock" in names and "StackedConvs" not in names


def test_input_size_must_fit_the_stages():
    model = UNet3D(features_per_stage=(4, 8, 16))
    with pytest.raises(ValueError, match="divisible by 4"):
        model(torch.randn(1, 4, 10, 12, 12))
    with pytest.raises(ValueError, match=r"\(B, C, X, Y, Z\)"):
        model(torch.randn(4, 8, 8, 8))


@pytest.mark.parametrize("bad, message", [
    (dict(name="vnet"), "unknown model"),
    (dict(name="unet3d", kernel_size=4), "kernel_size must be 3 or 5"),
    (dict(name="unet3d", norm="layer"), "unknown norm"),
    (dict(name="unet3d", nonlin="tanh"), "unknown nonlinearity"),
    (dict(name="unet3d", features_per_stage=[4, 8], n_conv_per_stage=[2, 2, 2]), "3 entries for 2 stages"),
    (dict(name="unet3d", output_mode="sigmoid"), "unknown output mode"),
])
def test_bad_configs_are_named(bad, message):
    with pytest.raises(ValueError, match=message):
        build_model(bad)


def test_parameter_and_flop_report():
    model = UNet3D(features_per_stage=(4, 8), n_conv_per_stage=1, norm="instance")
    # encoder: 4→4 (3³ conv, no bias) + norm(2·4); 4→8 + norm(2·8); decoder: up 8→4 (2³), conv 8→4 + norm, head 4→5
    expected = (4 * 4 * 27 + 8) + (4 * 8 * 27 + 16) + (8 * 4 * 8) + (8 * 4 * 27 + 8) + (4 * 5 + 5)
    assert count_parameters(model) == expected
    report = describe(model, (8, 8, 8))
    conv_macs = (8 ** 3 * 4 * 4 * 27) + (4 ** 3 * 4 * 8 * 27) + (4 ** 3 * 8 * 4 * 8) + (8 ** 3 * 8 * 4 * 27) + (8 ** 3 * 4 * 5)
    assert report["parameters"] == expected
    assert report["forward_GFLOPs"] == pytest.approx(2 * conv_macs / 1e9, rel=0.02)


def test_region_targets_and_decoding_round_trip():
    label = torch.tensor([[0, 1, 2, 3, 4]]).reshape(1, 5, 1, 1)
    targets = region_targets(label)
    assert targets.shape == (1, 4, 5, 1, 1)
    #                     bg  NETC SNFH ET  RC
    expected = torch.tensor([[0, 1, 1, 1, 0],   # WT
                             [0, 1, 0, 1, 0],   # TC
                             [0, 0, 0, 1, 0],   # ET
                             [0, 0, 0, 0, 1]])  # RC
    assert torch.equal(targets[0, :, :, 0, 0], expected.float())
    assert torch.equal(decode_probabilities(targets, "regions"), label.to(torch.uint8))
    logits = torch.where(targets > 0, 5.0, -5.0)
    assert torch.equal(decode_logits(logits, "regions"), label.to(torch.uint8))
    onehot = torch.nn.functional.one_hot(label, 5).movedim(-1, 1).float()
    assert torch.equal(decode_logits(onehot * 3, "softmax"), label.to(torch.uint8))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_softmax_decoding_is_argmax_with_the_first_channel_on_ties(dtype):
    """Ties (integer-valued scores) go to the lowest label, exactly as torch.argmax over the channels."""
    scores = torch.randint(0, 3, (2, 5, 9, 10, 11), generator=torch.Generator().manual_seed(0)).to(dtype)
    expected = scores.argmax(dim=1).to(torch.uint8)
    assert torch.equal(decode_logits(scores, "softmax"), expected)
    assert torch.equal(decode_probabilities(scores, "softmax"), expected)
    assert decode_logits(scores, "softmax").dtype == torch.uint8


def test_tiny_model_overfits_one_patch():
    torch.manual_seed(0)
    from brats_lib.losses import CrossEntropyLoss

    model = UNet3D(features_per_stage=(8, 16, 32), n_conv_per_stage=2)
    label = torch.zeros(1, 16, 16, 16, dtype=torch.long)
    label[:, 2:14, 2:14, 2:14] = 2
    label[:, 4:12, 4:12, 4:12] = 3
    label[:, 6:10, 6:10, 6:10] = 1
    label[:, 12:16, 0:4, 0:4] = 4
    # the task is learnable from the input: noisy one-hot channels of the labels
    x = 0.1 * torch.randn(1, 4, 16, 16, 16) + torch.nn.functional.one_hot(label, 5)[..., 1:].movedim(-1, 1).float()
    loss_fn = CrossEntropyLoss()
    opt = torch.optim.Adam(model.parameters(), lr=3e-2)
    losses = []
    for _ in range(40):
        opt.zero_grad()
        loss = loss_fn(model(x), label)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]
    model.eval()
    with torch.no_grad():
        assert (model(x).argmax(1) == label).float().mean().item() > 0.95  # background alone is 56 %


def _layers(module, *types):
    return [m for m in module.modules() if isinstance(m, types)]


def test_student_fcnn_is_one_convolution_max_pool_and_transposed_convolution():
    model = build_model({"name": "student_fcnn"})
    assert isinstance(model, StudentFCNN)
    convs = _layers(model, nn.Conv3d, nn.ConvTranspose3d, nn.MaxPool3d, nn.BatchNorm3d, nn.ReLU)
    assert [type(m).__name__ for m in convs] == ["Conv3d", "BatchNorm3d", "ReLU", "MaxPool3d", "ConvTranspose3d"]
    conv, _, _, pool, up = convs
    assert (conv.in_channels, conv.out_channels, conv.kernel_size) == (4, 32, (3, 3, 3))
    assert pool.kernel_size == 2
    assert (up.in_channels, up.out_channels, up.kernel_size, up.stride) == (32, 5, (2, 2, 2), (2, 2, 2))
    x = torch.randn(2, 4, 8, 8, 8)
    out = model(x)  # the student's forward returned nothing: this one returns logits, not probabilities
    assert out.shape == (2, 5, 8, 8, 8)
    assert not torch.allclose(out.softmax(1).sum(1), out.sum(1))
    with pytest.raises(ValueError, match="one stage of one convolution"):
        StudentFCNN(features_per_stage=(32, 64))


def test_student_encoder_decoder_has_the_student_layer_structure():
    model = build_model({"name": "student_encdec", "output_mode": "softmax"})
    assert isinstance(model, StudentEncoderDecoder) and not model.skip_connections
    convs = [m for m in _layers(model, nn.Conv3d) if m.kernel_size == (3, 3, 3)]
    # encoder 4→32→32, 32→64→64, 64→128→128; decoder (no skips: input = upsampled only) 64→64→64, 32→32→32
    assert [(c.in_channels, c.out_channels) for c in convs] == [
        (4, 32), (32, 32), (32, 64), (64, 64), (64, 128), (128, 128), (64, 64), (64, 64), (32, 32), (32, 32)]
    assert all(c.stride == (1, 1, 1) for c in convs)  # downsampling by max-pooling, not strided convolutions
    assert len(_layers(model, nn.MaxPool3d)) == 2
    ups = _layers(model, nn.ConvTranspose3d)
    assert [(u.in_channels, u.out_channels) for u in ups] == [(128, 64), (64, 32)]
    assert len(_layers(model, nn.BatchNorm3d)) == 10 and not _layers(model, nn.InstanceNorm3d)
    assert len(_layers(model, nn.ReLU)) == 10 and not _layers(model, nn.LeakyReLU)
    head = model.heads[0]
    assert (head.in_channels, head.out_channels, head.kernel_size) == (32, 5, (1, 1, 1))
    assert model(torch.randn(1, 4, 8, 8, 8)).shape == (1, 5, 8, 8, 8)


def test_residual_placement_and_downsampling_are_arguments():
    enc_only = ResidualUNet3D(features_per_stage=(4, 8, 16), decoder_block="conv")
    dec_only = UNet3D(features_per_stage=(4, 8, 16), decoder_block="residual")
    assert all(type(s).__name__ == "ResidualBlock" for s in enc_only.encoder)
    assert all(type(s).__name__ == "StackedConvs" for s in enc_only.decoder)
    assert all(type(s).__name__ == "StackedConvs" for s in dec_only.encoder)
    assert all(type(s).__name__ == "ResidualBlock" for s in dec_only.decoder)
    pooled = UNet3D(features_per_stage=(4, 8, 16), downsample="maxpool")
    assert isinstance(pooled.encoder[1][0], nn.MaxPool3d) and pooled.encoder[1][1][0][0].stride == (1, 1, 1)
    assert UNet3D(features_per_stage=(4, 8, 16)).encoder[1][0][0].stride == (2, 2, 2)
    with pytest.raises(ValueError, match="unknown downsample"):
        UNet3D(features_per_stage=(4, 8), downsample="avg")
