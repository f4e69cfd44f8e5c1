"""Tumour-centred crops from the preprocessing cache, the inpainting mask, noise masking and compositing.

Everything the generator sees is built here, batched and device-agnostic:

* :func:`label_channels` — one 0/1 channel per label NETC, SNFH, ET, RC (2024 numbering 1–4);
* :func:`inpaint_mask` — the region to inpaint: the tumour (label > 0) dilated by ``dilation`` voxels (a cube
  structuring element), so the generator also draws the tumour's border with the healthy tissue;
* :func:`noise_masked` — the image with every voxel of the mask replaced by standard normal noise (the
  images are z-scored, so N(0, 1) is on their scale);
* :func:`generator_input` — masked image (4) ⊕ label channels (4) ⊕ mask (1): 9 channels;
* :func:`composite` — ``x·(1−m) + g·m``, computed as a selection so that every voxel outside the mask is
  the input's, bit for bit (also where ``g`` is not finite);
* :class:`TumourCrops` — fixed-size crops around the tumours of cached cases, reproducible from
  ``(seed, epoch, iteration)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..data import read_window
from ..errors import BratsInputError
from ..labels import ET, NETC, RC, SNFH
from ..preprocess import COORDS_NAME, FOREGROUND_LABELS, read_meta

#: The label of each conditioning channel, in order.
LABEL_CHANNELS: tuple[int, ...] = (NETC, SNFH, ET, RC)

#: The epoch number of the validation crops' random stream (no training epoch reaches it).
VALIDATION_STREAM = 2**31 - 1

#: Input channels of the generator: 4 contrasts + 4 label channels + the mask.
GENERATOR_IN_CHANNELS = 4 + len(LABEL_CHANNELS) + 1


def label_channels(label: torch.Tensor) -> torch.Tensor:
    """(B, X, Y, Z) integer label map → (B, 4, X, Y, Z) float 0/1 channels of NETC, SNFH, ET, RC."""
    return torch.stack([label == k for k in LABEL_CHANNELS], dim=1).float()


def dilate(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Binary dilation of a (B, X, Y, Z) mask by a (2r+1)³ cube (max-pooling); bool out, same device."""
    if radius <= 0:
        return mask.bool()
    pooled = F.max_pool3d(mask[:, None].float(), kernel_size=2 * radius + 1, stride=1, padding=radius)
    return pooled[:, 0] > 0


def erode(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Binary erosion of a (B, X, Y, Z) mask by a (2r+1)³ cube (voxels outside the volume count as set)."""
    return ~dilate(~mask.bool(), radius)


def inpaint_mask(label: torch.Tensor, dilation: int) -> torch.Tensor:
    """(B, X, Y, Z) labels → (B, 1, X, Y, Z) float 0/1 mask: the tumour dilated by ``dilation`` voxels."""
    return dilate(label > 0, dilation)[:, None].float()


def noise_masked(image: torch.Tensor, mask: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """``image`` with the voxels where ``mask`` (B, 1, …) is set replaced by ``noise`` (image's shape)."""
    return torch.where(mask.bool(), noise, image)


def generator_input(image: torch.Tensor, label: torch.Tensor, mask: torch.Tensor, noise: torch.Tensor
                    ) -> torch.Tensor:
    """(B, 9, X, Y, Z): noise-masked image ⊕ label channels ⊕ mask."""
    return torch.cat([noise_masked(image, mask, noise), label_channels(label).to(image.dtype),
                      mask.to(image.dtype)], dim=1)


def composite(image: torch.Tensor, generated: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``image·(1−m) + generated·m`` for a 0/1 ``mask`` (B, 1, …): outside the mask exactly ``image``."""
    return torch.where(mask.bool(), generated.to(image.dtype), image)


class TumourCrops:
    """Cubic crops of ``size`` voxels around the tumours of cached cases (image z-scored, label 2024).

    A crop is centred on the mean of the case's tumour voxels (``fg_coords.npz``) shifted by a uniform jitter
    of up to ``jitter`` voxels per axis; windows leaving the volume are zero-padded (0 = background after
    z-scoring). Crop ``b`` of iteration ``i`` of epoch ``e`` comes from ``default_rng((seed, e, i, b))``,
    so a resumed run sees the same crops. Cases without tumour are refused (nothing to inpaint).
    Images and labels are memory-mapped: only the crops are read.
    """

    def __init__(self, cache_dir: str | Path, case_ids: Sequence[str], size: int, jitter: int = 0, seed: int = 0):
        self.cache_dir = Path(cache_dir)
        self.case_ids = list(case_ids)
        if not self.case_ids:
            raise BratsInputError(f"{self.cache_dir}: no case to take tumour crops from")
        self.size, self.jitter, self.seed = int(size), int(jitter), int(seed)
        self.centres: list[np.ndarray] = []
        self._maps: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for cid in self.case_ids:
            meta = read_meta(self.cache_dir, cid)
            if meta is None or not meta.get("has_label"):
                raise BratsInputError(f"{self.cache_dir / cid}: no complete labelled cached case")
            with np.load(self.cache_dir / cid / COORDS_NAME) as npz:
                coords = np.concatenate([npz[f"label_{k}"] for k in FOREGROUND_LABELS]).astype(np.float64)
            if not len(coords):
                raise BratsInputError(f"{self.cache_dir / cid}: the case has no tumour voxel to inpaint")
            self.centres.append(coords.mean(axis=0))

    def _arrays(self, case: int) -> tuple[np.ndarray, np.ndarray]:
        if case not in self._maps:
            folder = self.cache_dir / self.case_ids[case]
            self._maps[case] = (np.load(folder / "image.npy", mmap_mode="r"),
                                np.load(folder / "label.npy", mmap_mode="r"))
        return self._maps[case]

    def crop(self, case: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(image (4, s, s, s) float32, label (s, s, s) int64) of one crop of ``case``."""
        shift = rng.integers(-self.jitter, self.jitter + 1, 3) if self.jitter else np.zeros(3, np.int64)
        start = np.round(self.centres[case]).astype(np.int64) + shift - self.size // 2
        image, label = self._arrays(case)
        size = (self.size,) * 3
        return (read_window(image, start, size).astype(np.float32),
                read_window(label, start, size).astype(np.int64))

    def batch(self, epoch: int, iteration: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(image (B, 4, s, s, s) float32, label (B, s, s, s) int64) on the CPU."""
        images, labels = [], []
        for b in range(batch_size):
            rng = np.random.default_rng((self.seed, epoch, iteration, b))
            image, label = self.crop(int(rng.integers(len(self.case_ids))), rng)
            images.append(image)
            labels.append(label)
        return torch.from_numpy(np.stack(images)), torch.from_numpy(np.stack(labels))

    def fixed(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` crops cycling through the cases (validation): the same crops in every call."""
        images, labels = [], []
        for i in range(n):
            image, label = self.crop(i % len(self.case_ids), np.random.default_rng((self.seed, VALIDATION_STREAM, i)))
            images.append(image)
            labels.append(label)
        return torch.from_numpy(np.stack(images)), torch.from_numpy(np.stack(labels))


__all__ = ["GENERATOR_IN_CHANNELS", "LABEL_CHANNELS", "TumourCrops", "composite", "dilate", "erode",
           "generator_input", "inpaint_mask", "label_channels", "noise_masked"]
