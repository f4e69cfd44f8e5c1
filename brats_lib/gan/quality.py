"""How good is the inpainting? Re-inpaint real tumours of held-out crops and score the region against the truth.

As the BraTS inpainting challenge scores: each contrast of a crop is scaled to [0, 1] by the 0.5 and 99.5
percentiles of the true crop's brain voxels (clipped), then MSE, PSNR (peak 1) and SSIM (a 7³ Gaussian window,
σ 1.5 voxels, constants (0.01)² and (0.03)²; the SSIM map averaged) are taken **inside the mask** and averaged
over the contrasts. Three methods on the same crops and masks:

* ``gan`` — the generator, composited;
* ``mean_fill`` — each contrast's mean over the crop's brain voxels outside the mask (no training);
* ``copy_paste`` — the voxels of the next held-out crop (another case's tumour crop) at the same positions
  (no training; real tumour intensities, the wrong anatomy).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..io import MODALITIES
from .crops import TumourCrops, composite, generator_input, inpaint_mask
from .train import mean_fill

METHODS = ("gan", "mean_fill", "copy_paste")


def scale_to_unit(image: torch.Tensor, reference: torch.Tensor, low: float = 0.5, high: float = 99.5
                  ) -> torch.Tensor:
    """(C, X, Y, Z) ``image`` scaled per channel by the ``low``/``high`` percentiles of ``reference``'s brain
    voxels (non-zero in some channel) to [0, 1], clipped."""
    brain = (reference != 0).any(dim=0)
    out = torch.empty_like(image, dtype=torch.float32)
    for c in range(image.shape[0]):
        values = reference[c][brain].float() if brain.any() else reference[c].flatten().float()
        lo, hi = torch.quantile(values, torch.tensor([low / 100, high / 100]))
        out[c] = ((image[c].float() - lo) / (hi - lo).clamp_min(1e-6)).clamp(0, 1)
    return out


def _gaussian_window(size: int = 7, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-x**2 / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None, None] * g[None, :, None] * g[None, None, :])[None, None]


def ssim_map(a: torch.Tensor, b: torch.Tensor, peak: float = 1.0) -> torch.Tensor:
    """(X, Y, Z) SSIM map of two (X, Y, Z) volumes (Gaussian window, replicate padding)."""
    w = _gaussian_window()
    pad = w.shape[-1] // 2

    def blur(v: torch.Tensor) -> torch.Tensor:
        return F.conv3d(F.pad(v[None, None], (pad,) * 6, mode="replicate"), w)[0, 0]

    a, b = a.float(), b.float()
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))


def masked_scores(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """MSE, PSNR (dB, peak 1) and SSIM inside ``mask`` (X, Y, Z) of (C, X, Y, Z) volumes scaled to [0, 1]
    (:func:`scale_to_unit`), averaged over the channels; an empty mask gives NaN."""
    m = mask.bool()
    if not m.any():
        return {"mse": math.nan, "psnr": math.nan, "ssim": math.nan}
    mse, psnr, ssim = [], [], []
    for c in range(target.shape[0]):
        err = float(((prediction[c] - target[c])[m].double() ** 2).mean())
        mse.append(err)
        psnr.append(math.inf if err == 0 else 10 * math.log10(1.0 / err))
        ssim.append(float(ssim_map(prediction[c], target[c])[m].double().mean()))
    return {"mse": float(np.mean(mse)), "psnr": float(np.mean(psnr)), "ssim": float(np.mean(ssim))}


@torch.no_grad()
def inpainting_quality(generator: torch.nn.Module, crops: TumourCrops, n: int, dilation: int, seed: int = 0,
                       device: str | torch.device = "cpu") -> pd.DataFrame:
    """One row per crop and method (``crop``, ``case``, ``method``, ``mse``, ``psnr``, ``ssim``) on ``n`` fixed
    crops (:meth:`TumourCrops.fixed`; give held-out cases), each method scored inside the same mask."""
    generator = generator.eval()
    image, label = crops.fixed(n)
    noise = torch.randn(image.shape, generator=torch.Generator().manual_seed(seed))
    mask = inpaint_mask(label, dilation)
    x = generator_input(image, label, mask, noise).to(device)
    gan = composite(image, generator(x).float().cpu(), mask)
    filled = mean_fill(image, mask)
    pasted = composite(image, torch.roll(image, 1, dims=0), mask)
    rows = []
    for i in range(n):
        truth = scale_to_unit(image[i], image[i])
        for method, output in (("gan", gan), ("mean_fill", filled), ("copy_paste", pasted)):
            scores = masked_scores(scale_to_unit(output[i], image[i]), truth, mask[i, 0])
            rows.append({"crop": i, "case": crops.case_ids[i % len(crops.case_ids)], "method": method, **scores})
    return pd.DataFrame(rows)


__all__ = ["METHODS", "MODALITIES", "inpainting_quality", "masked_scores", "scale_to_unit", "ssim_map"]
