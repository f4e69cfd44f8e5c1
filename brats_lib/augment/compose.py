"""Pipelines of transforms and the default (nnU-Net-like) training augmentation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import Tensor

from .intensity import (RandomBrightness, RandomContrast, RandomGamma, RandomGaussianBlur, RandomGaussianNoise,
                        RandomLowResolution)
from .params import Params, Transform, run_steps
from .spatial import RandomFlip, RandomSpatial


@dataclass
class ComposeParams(Params):
    """items: the parameters of each transform of a :class:`Compose`, in order."""

    items: list = field(default_factory=list)

    def to(self, device) -> "ComposeParams":
        return ComposeParams([p.to(device) for p in self.items])

    @property
    def batch_size(self) -> int:
        return self.items[0].batch_size

    def describe(self, index: int = 0) -> str:
        return "; ".join(p.describe(index) for p in self.items)


class Compose(Transform):
    """Apply transforms in order; one :meth:`sample` draws every transform's parameters.

    ``pipeline(image, label, generator)`` — image (B, C, X, Y, Z) float, label (B, X, Y, Z) or (B, 1, X, Y, Z)
    integer (or None) on any device — returns the augmented pair on the same device, in the input dtypes.
    """

    def __init__(self, transforms: Sequence[Transform]):
        self.transforms = list(transforms)

    def sample(self, batch_size: int, generator: torch.Generator | None = None, num_channels: int = 4) -> ComposeParams:
        return ComposeParams([t.sample(batch_size, generator, num_channels) for t in self.transforms])

    def _apply(self, image: Tensor, label: Tensor | None, params: ComposeParams, inplace: bool):
        for transform, p in zip(self.transforms, params.items, strict=True):
            new_image, label = transform._apply(image, label, p, inplace)
            inplace = inplace or new_image is not image
            image = new_image
        return image, label

    def apply(self, image: Tensor, label: Tensor | None = None, params: ComposeParams | None = None):
        if params is None:
            raise ValueError("apply needs params; call the pipeline to sample them")
        if len(params.items) != len(self.transforms):
            raise ValueError(f"{len(params.items)} parameter sets for {len(self.transforms)} transforms")
        return run_steps(list(zip(self.transforms, params.items)), image, label)

    def __len__(self) -> int:
        return len(self.transforms)

    def __getitem__(self, i: int) -> Transform:
        return self.transforms[i]

    def __repr__(self) -> str:
        inner = ",\n  ".join(repr(t) for t in self.transforms)
        return f"Compose([\n  {inner}\n])"


def default_pipeline(patch_size: Sequence[int] | None = (128, 128, 128), *, always: bool = False,
                     p_elastic: float = 0.2) -> Compose:
    """nnU-Net v2's default training augmentation, in its order, plus elastic deformation.

    Args:
        patch_size: output (X, Y, Z) voxels; the random crop is part of the single spatial resampling.
        always: every transform on every sample and channel (p = 1; flips stay 0.5 per axis), for demos
            and benchmarks.
        p_elastic: probability of elastic deformation (nnU-Net v2 leaves it off; the course project used it).

    Probabilities (per sample, then per channel): rotation ±30° 0.2, zoom 0.7–1.4 0.2, noise 0.1, blur
    0.2/0.5, brightness 0.15, contrast 0.15, low resolution 0.25/0.5, inverted gamma 0.1, gamma 0.3,
    mirroring 0.5 per axis.
    """
    one = (lambda p: 1.0) if always else (lambda p: p)
    return Compose([
        RandomSpatial(patch_size=None if patch_size is None else tuple(int(n) for n in patch_size),
                      rotation=(-30.0, 30.0), p_rotation=one(0.2), scale=(0.7, 1.4), p_scale=one(0.2),
                      elastic_magnitude=(0.0, 8.0), p_elastic=one(p_elastic)),
        RandomGaussianNoise(variance=(0.0, 0.1), p=one(0.1)),
        RandomGaussianBlur(sigma=(0.5, 1.0), p=one(0.2), p_per_channel=one(0.5)),
        RandomBrightness(factor=(0.75, 1.25), p=one(0.15)),
        RandomContrast(factor=(0.75, 1.25), p=one(0.15)),
        RandomLowResolution(zoom=(0.5, 1.0), p=one(0.25), p_per_channel=one(0.5)),
        RandomGamma(gamma=(0.7, 1.5), p=one(0.1), p_invert=1.0),
        RandomGamma(gamma=(0.7, 1.5), p=one(0.3), p_invert=0.0),
        RandomFlip(axes=(0, 1, 2), p=0.5),
    ])


def strong_intensity_pipeline(patch_size: Sequence[int] | None = (128, 128, 128), *, p_elastic: float = 0.2
                              ) -> Compose:
    """:func:`default_pipeline` with stronger, more often applied, per-channel intensity transforms, for models
    that must hold on scans from other scanners and protocols.

    Same spatial transforms and order. Intensity (per sample, then per channel): noise variance 0–0.2 p 0.3,
    blur σ 0.5–1.5 p 0.3/0.5, brightness 0.6–1.5 p 0.5/0.5, contrast 0.6–1.5 p 0.5/0.5, low resolution
    0.4–1 p 0.4/0.5, inverted gamma 0.5–2 p 0.15/0.5, gamma 0.5–2 p 0.5/0.5, mirroring 0.5 per axis.
    """
    return Compose([
        RandomSpatial(patch_size=None if patch_size is None else tuple(int(n) for n in patch_size),
                      rotation=(-30.0, 30.0), p_rotation=0.2, scale=(0.7, 1.4), p_scale=0.2,
                      elastic_magnitude=(0.0, 8.0), p_elastic=p_elastic),
        RandomGaussianNoise(variance=(0.0, 0.2), p=0.3),
        RandomGaussianBlur(sigma=(0.5, 1.5), p=0.3, p_per_channel=0.5),
        RandomBrightness(factor=(0.6, 1.5), p=0.5, p_per_channel=0.5),
        RandomContrast(factor=(0.6, 1.5), p=0.5, p_per_channel=0.5),
        RandomLowResolution(zoom=(0.4, 1.0), p=0.4, p_per_channel=0.5),
        RandomGamma(gamma=(0.5, 2.0), p=0.15, p_per_channel=0.5, p_invert=1.0),
        RandomGamma(gamma=(0.5, 2.0), p=0.5, p_per_channel=0.5, p_invert=0.0),
        RandomFlip(axes=(0, 1, 2), p=0.5),
    ])


#: Training augmentation by name (``TrainConfig.augment``: ``True`` is ``"default"``, ``False`` none).
PIPELINES = {"default": default_pipeline, "strong": strong_intensity_pipeline}
