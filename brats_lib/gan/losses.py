"""GAN losses: hinge adversarial loss, masked L1, and GliGAN's ramped weight.

Adversarial loss: **hinge** (Lim & Ye 2017; Miyato et al. 2018), the loss spectral normalisation was
introduced with: the discriminator minimises ``E[relu(1 − D(real))] + E[relu(1 + D(fake))]``, the generator
``−E[D(fake)]``. Its discriminator gradients vanish once a patch is classified with margin, which keeps
the small demo discriminator from overpowering the generator.

Generator loss, as GliGAN: ``w · L1_mask + adversarial / w`` with ``w`` ramped linearly from 1 to 100 over
the run (:func:`l1_weight`): early on the adversary shapes texture, later the reconstruction dominates.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def hinge_discriminator(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """``mean(relu(1 − D(real))) + mean(relu(1 + D(fake)))``."""
    return F.relu(1 - real_logits.float()).mean() + F.relu(1 + fake_logits.float()).mean()


def hinge_generator(fake_logits: torch.Tensor) -> torch.Tensor:
    """``−mean(D(fake))``."""
    return -fake_logits.float().mean()


def masked_l1(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over the voxels (all channels) where the (B, 1, …) 0/1 ``mask`` is set; 0 when the
    mask is empty."""
    diff = (prediction.float() - target.float()).abs() * mask.float()
    count = mask.float().sum() * prediction.shape[1]
    return diff.sum() / count.clamp_min(1.0)


def l1_weight(step: int, total_steps: int, start: float = 1.0, end: float = 100.0) -> float:
    """The L1 weight at optimiser step ``step`` (0-based) of ``total_steps``: ``start`` at the first step,
    ``end`` at the last, linear in between (``end`` for a one-step run)."""
    if total_steps <= 1:
        return float(end)
    t = min(max(step, 0), total_steps - 1) / (total_steps - 1)
    return float(start + (end - start) * t)


__all__ = ["hinge_discriminator", "hinge_generator", "l1_weight", "masked_l1"]
