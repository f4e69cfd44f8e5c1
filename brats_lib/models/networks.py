"""FCNN, 3D U-Net and Residual 3D U-Net: one encoder–decoder built from explicit constructor arguments.

In the manner of nnU-Net's ``dynamic_network_architectures``: the caller states the input channels, classes,
features per stage (its length is the number of stages), convolutions per stage, kernel size, normalisation,
nonlinearity and deep supervision; nothing is inferred from a dataset.

* :class:`FCNN` — the student project's encoder/decoder: strided-conv encoder, transposed-conv decoder,
  **no** skip connections; outputs logits.
* :class:`UNet3D` — Çiçek et al. 2016 (arXiv 1606.06650) with skip connections (concatenation), strided
  convolutions for downsampling and transposed convolutions for upsampling, as in nnU-Net.
* :class:`ResidualUNet3D` — the same with a residual block in every encoder and decoder stage.

Input (B, in_channels, X, Y, Z) with X, Y, Z divisible by 2**(n_stages - 1); output (B, num_classes, X, Y, Z)
logits — or, with deep supervision in training mode, a list of logits at full, 1/2, 1/4 … resolution.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .blocks import ResidualBlock, StackedConvs


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
    """

    def __init__(self, in_channels: int, num_classes: int, features_per_stage: Sequence[int],
                 n_conv_per_stage: int | Sequence[int] = 2, n_conv_per_stage_decoder: int | Sequence[int] | None = None,
                 kernel_size: int = 3, norm: str = "instance", nonlin: str = "leaky_relu",
                 deep_supervision: bool = False, block: str = "conv", skip_connections: bool = True):
        super().__init__()
        n_stages = len(features_per_stage)
        if n_stages < 2:
            raise ValueError("an encoder–decoder needs at least 2 stages")
        if block not in ("conv", "residual"):
            raise ValueError(f"unknown block {block!r}; expected 'conv' or 'residual'")
        enc_convs = _per_stage(n_conv_per_stage, n_stages, "n_conv_per_stage")
        dec_convs = _per_stage(n_conv_per_stage_decoder if n_conv_per_stage_decoder is not None
                               else enc_convs[:-1], n_stages - 1, "n_conv_per_stage_decoder")
        self.features_per_stage = tuple(features_per_stage)
        self.deep_supervision = deep_supervision
        self.skip_connections = skip_connections
        self.num_classes = num_classes

        def stage(cin: int, cout: int, n: int, stride: int) -> nn.Module:
            if block == "residual":
                return ResidualBlock(cin, cout, n, kernel_size, stride, norm, nonlin)
            return StackedConvs(cin, cout, n, kernel_size, stride, norm, nonlin)

        self.encoder = nn.ModuleList()
        cin = in_channels
        for i, (cout, n) in enumerate(zip(features_per_stage, enc_convs)):
            self.encoder.append(stage(cin, cout, n, 1 if i == 0 else 2))
            cin = cout

        self.upsample = nn.ModuleList()
        self.decoder = nn.ModuleList()
        self.heads = nn.ModuleList()
        for i in range(n_stages - 2, -1, -1):
            f_low, f = features_per_stage[i + 1], features_per_stage[i]
            self.upsample.append(nn.ConvTranspose3d(f_low, f, kernel_size=2, stride=2, bias=False))
            self.decoder.append(stage(2 * f if skip_connections else f, f, dec_convs[i], 1))
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
