"""The inpainting generator (a 3D U-Net from the project's blocks) and the spectral-normalised 3D PatchGAN.

Generator: **one** network for all four contrasts (input 9 channels: the noise-masked t1n, t1c, t2w, t2f, the
NETC/SNFH/ET/RC channels and the mask; output 4 channels). GliGAN trains one generator per contrast; one
shared generator costs a quarter of the parameters and optimiser state (the memory that sank the student
project), and sees the four contrasts together, so the tumour it draws is the same tumour in every
contrast. It is :class:`~brats_lib.models.EncoderDecoder3D` (the U-Net of segmentation training: strided
convolutions down, transposed convolutions up, concatenated skips), run stage by stage so that each stage
can be recomputed in the backward pass instead of stored (``checkpointing``, for 96³ crops on a GPU).
The output is linear (z-scored intensities are unbounded); :func:`~brats_lib.gan.crops.composite` keeps
the input outside the mask.

Discriminator: a 3D PatchGAN (Isola et al. 2017) on image ⊕ label channels (8), every convolution
spectral-normalised (Miyato et al. 2018) and no normalisation layers; it returns one logit per patch.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm
from torch.utils.checkpoint import checkpoint

from ..models import EncoderDecoder3D
from .crops import GENERATOR_IN_CHANNELS, LABEL_CHANNELS


class InpaintGenerator(nn.Module):
    """3D U-Net generator: (B, 9, X, Y, Z) → (B, 4, X, Y, Z); X, Y, Z multiples of :attr:`divisor`.

    Args:
        features_per_stage, n_conv_per_stage, norm, nonlin, block: as :class:`EncoderDecoder3D`.
        checkpointing: recompute every encoder and decoder stage in the backward pass (less memory, about a
            third more compute); the result is the same.
    """

    def __init__(self, features_per_stage: Sequence[int] = (16, 32, 64, 128), n_conv_per_stage: int = 2,
                 norm: str = "instance", nonlin: str = "leaky_relu", block: str = "conv",
                 checkpointing: bool = False):
        super().__init__()
        self.net = EncoderDecoder3D(GENERATOR_IN_CHANNELS, 4, features_per_stage, n_conv_per_stage, norm=norm,
                                    nonlin=nonlin, block=block, skip_connections=True)
        self.checkpointing = bool(checkpointing)

    @property
    def divisor(self) -> int:
        return self.net.divisor

    def _run(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(module, x, use_reentrant=False)
        return module(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or x.shape[1] != GENERATOR_IN_CHANNELS:
            raise ValueError(f"expected a (B, {GENERATOR_IN_CHANNELS}, X, Y, Z) tensor, got {tuple(x.shape)}")
        if any(s % self.divisor for s in x.shape[2:]):
            raise ValueError(f"spatial size {tuple(x.shape[2:])} must be divisible by {self.divisor}")
        net = self.net
        skips = []
        for stage in net.encoder:
            x = self._run(stage, x)
            skips.append(x)
        for j, (up, stage) in enumerate(zip(net.upsample, net.decoder)):
            x = self._run(stage, torch.cat((up(x), skips[-(j + 2)]), dim=1))
        return net.heads[0](x)


class PatchDiscriminator(nn.Module):
    """Spectral-normalised 3D PatchGAN: (B, 4 + 4, X, Y, Z) → (B, 1, x, y, z) patch logits.

    ``features`` gives the channels of the stride-2 convolutions (4³ kernels, LeakyReLU 0.2) followed by one
    stride-1 convolution and the 1-channel output convolution; with (32, 64, 128) each logit sees a
    (receptive field) 46³-voxel patch.
    """

    def __init__(self, features: Sequence[int] = (32, 64, 128), in_channels: int = 4 + len(LABEL_CHANNELS)):
        super().__init__()
        if len(features) < 1 or any(int(f) < 1 for f in features):
            raise ValueError(f"features must be positive channel counts, got {list(features)}")
        layers: list[nn.Module] = []
        cin = in_channels
        for i, f in enumerate(features):
            stride = 2 if i < len(features) - 1 else 1
            layers += [spectral_norm(nn.Conv3d(cin, int(f), 4, stride=stride, padding=1)), nn.LeakyReLU(0.2)]
            cin = int(f)
        layers.append(spectral_norm(nn.Conv3d(cin, 1, 4, stride=1, padding=1)))
        self.net = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor, label_channels: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([image, label_channels.to(image.dtype)], dim=1))


def build_generator(config: dict) -> InpaintGenerator:
    """An :class:`InpaintGenerator` from a JSON-friendly dict of its arguments."""
    return InpaintGenerator(**dict(config))


def build_discriminator(config: dict) -> PatchDiscriminator:
    """A :class:`PatchDiscriminator` from a JSON-friendly dict of its arguments."""
    return PatchDiscriminator(**dict(config))


__all__ = ["InpaintGenerator", "PatchDiscriminator", "build_discriminator", "build_generator"]
