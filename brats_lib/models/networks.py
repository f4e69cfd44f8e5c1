"""FCNN, 3D U-Net and Residual 3D U-Net: one encoder–decoder built from explicit constructor arguments.

In the manner of nnU-Net's ``dynamic_network_architectures``: the caller states the input channels, classes,
features per stage (its length is the number of stages), convolutions per stage, kernel size, normalisation,
nonlinearity and deep supervision; nothing is inferred from a dataset.

* :class:`FCNN` — the student project's encoder/decoder: strided-conv encoder, transposed-conv decoder,
  **no** skip connections; outputs logits.
* :class:`UNet3D` — Çiçek et al. 2016 (arXiv 1606.06650) with skip connections (concatenation), strided
  convolutions for downsampling and transposed convolutions for upsampling, as in nnU-Net.
* :class:`ResidualUNet3D` — the same with a residual block in every encoder and decoder stage.
* :class:`StudentFCNN`, :class:`StudentEncoderDecoder` — the student project's two networks as it built them
  (a shallow FCNN: one convolution, max-pool, transposed convolution; a skip-less encoder–decoder with 32/64/128
  channels, batch norm, ReLU and max-pooling), without its bugs: both return logits (its forward pass returned
  nothing, and it applied a softmax before the cross-entropy, which takes logits).

Input (B, in_channels, X, Y, Z) with X, Y, Z divisible by 2**(n_stages - 1); output (B, num_classes, X, Y, Z)
logits — or, with deep supervision in training mode, a list of logits at full, 1/2, 1/4 … resolution.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .blocks import ResidualBlock, StackedConvs, make_nonlin, make_norm


def _per_stage(value: int | Sequence[int], n: int, name: str) -> list[int]:
    values = [value] * n if isinstance(value, int) else list(value)
    if len(values) != n:
        raise ValueError(f"{name} has {len(values)} entries for {n} stages")
    if any(v < 1 for v in values):
        raise ValueError(f"{name} must be ≥ 1, got {values}")
    return values


class EncoderDecoder3D(nn.Module):
    """Configurable 3D encoder–decoder (see the module docstring for the named variants).

    Args:
        in_channels: input modalities (4 for BraTS).
        num_classes: output channels (5 for softmax labels 0–4, 4 for sigmoid regions WT, TC, ET, RC).
        features_per_stage: feature maps of each resolution stage, e.g. (32, 64, 128, 256, 320).
        n_conv_per_stage: convolutions per encoder stage (int or one per stage).
        n_conv_per_stage_decoder: convolutions per decoder stage (default: as the encoder).
        kernel_size: 3 or 5.
        norm: ``instance``, ``batch`` or ``group``.
        nonlin: ``leaky_relu``, ``relu`` or ``gelu``.
        deep_supervision: in training mode return logits of every decoder stage (full resolution first).
        block: ``conv`` (plain stacked convolutions) or ``residual``.
        skip_connections: concatenate encoder features into the decoder (False gives the FCNN).
        decoder_block: ``conv`` or ``residual`` for the decoder stages (default: ``block``), so residual
            connections can sit in the encoder only, the decoder only, or both.
        downsample: ``stride`` (the first convolution of a stage has stride 2, nnU-Net's) or ``maxpool``
            (2×2×2 max-pooling before the stage, the original U-Net's).
    """

    def __init__(self, in_channels: int, num_classes: int, features_per_stage: Sequence[int],
                 n_conv_per_stage: int | Sequence[int] = 2, n_conv_per_stage_decoder: int | Sequence[int] | None = None,
                 kernel_size: int = 3, norm: str = "instance", nonlin: str = "leaky_relu",
                 deep_supervision: bool = False, block: str = "conv", skip_connections: bool = True,
                 decoder_block: str | None = None, downsample: str = "stride"):
        super().__init__()
        n_stages = len(features_per_stage)
        if n_stages < 2:
            raise ValueError("an encoder–decoder needs at least 2 stages")
        decoder_block = block if decoder_block is None else decoder_block
        for value in (block, decoder_block):
            if value not in ("conv", "residual"):
                raise ValueError(f"unknown block {value!r}; expected 'conv' or 'residual'")
        if downsample not in ("stride", "maxpool"):
            raise ValueError(f"unknown downsample {downsample!r}; expected 'stride' or 'maxpool'")
        enc_convs = _per_stage(n_conv_per_stage, n_stages, "n_conv_per_stage")
        dec_convs = _per_stage(n_conv_per_stage_decoder if n_conv_per_stage_decoder is not None
                               else enc_convs[:-1], n_stages - 1, "n_conv_per_stage_decoder")
        self.features_per_stage = tuple(features_per_stage)
        self.deep_supervision = deep_supervision
        self.skip_connections = skip_connections
        self.num_classes = num_classes

        def stage(cin: int, cout: int, n: int, stride: int, kind: str) -> nn.Module:
            if kind == "residual":
                return ResidualBlock(cin, cout, n, kernel_size, stride, norm, nonlin)
            return StackedConvs(cin, cout, n, kernel_size, stride, norm, nonlin)

        self.encoder = nn.ModuleList()
        cin = in_channels
        for i, (cout, n) in enumerate(zip(features_per_stage, enc_convs)):
            if i > 0 and downsample == "maxpool":
                self.encoder.append(nn.Sequential(nn.MaxPool3d(2), stage(cin, cout, n, 1, block)))
            else:
                self.encoder.append(stage(cin, cout, n, 1 if i == 0 else 2, block))
            cin = cout

        self.upsample = nn.ModuleList()
        self.decoder = nn.ModuleList()
        self.heads = nn.ModuleList()
        for i in range(n_stages - 2, -1, -1):
            f_low, f = features_per_stage[i + 1], features_per_stage[i]
            self.upsample.append(nn.ConvTranspose3d(f_low, f, kernel_size=2, stride=2, bias=False))
            self.decoder.append(stage(2 * f if skip_connections else f, f, dec_convs[i], 1, decoder_block))
            if deep_supervision or i == 0:  # no unused parameters (DDP refuses them)
                self.heads.append(nn.Conv3d(f, num_classes, kernel_size=1, bias=True))

    @property
    def divisor(self) -> int:
        """Every spatial input size must be a multiple of this."""
        return 2 ** (len(self.features_per_stage) - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        if x.ndim != 5:
            raise ValueError(f"expected a (B, C, X, Y, Z) tensor, got shape {tuple(x.shape)}")
        if any(s % self.divisor for s in x.shape[2:]):
            raise ValueError(f"spatial size {tuple(x.shape[2:])} must be divisible by {self.divisor}")
        skips = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        outputs = []
        want_all = self.deep_supervision and self.training
        n_dec = len(self.decoder)
        for j, (up, stage) in enumerate(zip(self.upsample, self.decoder)):
            x = up(x)
            if self.skip_connections:
                x = torch.cat((x, skips[-(j + 2)]), dim=1)
            x = stage(x)
            if want_all or j == n_dec - 1:
                outputs.append(self.heads[j if self.deep_supervision else 0](x))
        if want_all:
            return outputs[::-1]
        return outputs[-1]


class FCNN(EncoderDecoder3D):
    """Fully convolutional encoder/decoder without skip connections (the student project's baseline)."""

    def __init__(self, in_channels: int = 4, num_classes: int = 5,
                 features_per_stage: Sequence[int] = (16, 32, 64, 128), **kwargs):
        kwargs.setdefault("block", "conv")
        super().__init__(in_channels, num_classes, features_per_stage, skip_connections=False, **kwargs)


class UNet3D(EncoderDecoder3D):
    """3D U-Net (Çiçek et al. 2016) with concatenation skip connections."""

    def __init__(self, in_channels: int = 4, num_classes: int = 5,
                 features_per_stage: Sequence[int] = (32, 64, 128, 256, 320), **kwargs):
        super().__init__(in_channels, num_classes, features_per_stage, block="conv", skip_connections=True, **kwargs)


class ResidualUNet3D(EncoderDecoder3D):
    """3D U-Net whose encoder and decoder stages are residual blocks."""

    def __init__(self, in_channels: int = 4, num_classes: int = 5,
                 features_per_stage: Sequence[int] = (32, 64, 128, 256, 320), **kwargs):
        super().__init__(in_channels, num_classes, features_per_stage, block="residual", skip_connections=True,
                         **kwargs)


class StudentEncoderDecoder(EncoderDecoder3D):
    """The student project's "3D U-Net": an encoder–decoder **without** skip connections.

    Defaults reproduce it: stages of 32, 64 and 128 channels, two 3³ convolutions per stage each followed by
    batch norm and ReLU, 2×2×2 max-pooling between encoder stages, transposed-convolution upsampling and a
    1×1×1 head returning logits (train it with plain cross-entropy, ``loss="ce"``). Every default is an
    argument, so an ablation can change one thing at a time (``skip_connections=True``, ``norm="instance"``,
    ``nonlin="leaky_relu"``, ``downsample="stride"``, a fourth stage, ``block="residual"``).
    """

    def __init__(self, in_channels: int = 4, num_classes: int = 5,
                 features_per_stage: Sequence[int] = (32, 64, 128), n_conv_per_stage: int | Sequence[int] = 2,
                 norm: str = "batch", nonlin: str = "relu", downsample: str = "maxpool",
                 skip_connections: bool = False, **kwargs):
        super().__init__(in_channels, num_classes, features_per_stage, n_conv_per_stage, norm=norm, nonlin=nonlin,
                         downsample=downsample, skip_connections=skip_connections, **kwargs)


class StudentFCNN(nn.Module):
    """The student project's shallow FCNN: one convolution, max-pooling, one transposed convolution.

    (B, in, X, Y, Z) → Conv3d(in → F, k, padding k//2) → norm → ReLU → MaxPool3d(2) →
    ConvTranspose3d(F → num_classes, 2, stride 2) → (B, num_classes, X, Y, Z) logits; X, Y, Z must be even.
    ``features_per_stage`` is the one stage's width (a one-element sequence, for the registry's uniform
    arguments); ``norm`` is ``batch`` (the student's), ``instance``, ``group`` or ``none``.
    """

    def __init__(self, in_channels: int = 4, num_classes: int = 5, features_per_stage: Sequence[int] = (32,),
                 n_conv_per_stage: int = 1, kernel_size: int = 3, norm: str = "batch", nonlin: str = "relu",
                 deep_supervision: bool = False):
        super().__init__()
        if len(features_per_stage) != 1 or n_conv_per_stage != 1:
            raise ValueError("the student FCNN has one stage of one convolution: features_per_stage=[F], "
                             f"n_conv_per_stage=1 (got {list(features_per_stage)}, {n_conv_per_stage})")
        if deep_supervision:
            raise ValueError("the student FCNN has one output: deep_supervision must be False")
        f = int(features_per_stage[0])
        layers: list[nn.Module] = [nn.Conv3d(in_channels, f, kernel_size, padding=kernel_size // 2,
                                             bias=norm == "none")]
        if norm != "none":
            layers.append(make_norm(norm, f))
        layers.append(make_nonlin(nonlin))
        self.features_per_stage = (f,)
        self.deep_supervision = False
        self.skip_connections = False
        self.num_classes = num_classes
        self.encoder = nn.ModuleList([nn.Sequential(*layers)])
        self.pool = nn.MaxPool3d(2)
        self.upsample = nn.ConvTranspose3d(f, num_classes, kernel_size=2, stride=2, bias=True)

    divisor = 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5:
            raise ValueError(f"expected a (B, C, X, Y, Z) tensor, got shape {tuple(x.shape)}")
        if any(s % 2 for s in x.shape[2:]):
            raise ValueError(f"spatial size {tuple(x.shape[2:])} must be divisible by 2")
        return self.upsample(self.pool(self.encoder[0](x)))
