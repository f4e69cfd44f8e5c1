import itertools

import pytest
import torch

from brats_lib.models import (FCNN, MODELS, ResidualUNet3D, UNet3D, build_model, count_parameters,
                              decode_logits, decode_probabilities, describe, region_targets)

torch.set_num_threads(2)

SHAPE_CASES = [
    # name, features, n_conv, kernel, norm, nonlin, mode, deep_supervision
    (name, feats, n_conv, kernel, norm, nonlin, mode, ds)
    for name, (feats, n_conv, kernel, norm, nonlin, mode, ds) in itertools.product(
        MODELS,
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
