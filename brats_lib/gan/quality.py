"""How good is the inpainting? Re-inpaint real tumours of held-out crops and score the region against the truth.

As the BraTS inpainting challenge scores: each contrast of a crop is scaled to [0, 1] by the 0.5 and 99.5
percentiles of the true crop's brain voxels (clipped), then MSE, PSNR (peak 1) and SSIM (a 7³ Gaussian window,
σ 1.5 voxels, constants (0.01)² and (0.03)²; the SSIM map averaged) are taken **inside the mask** and averaged
over the contrasts. Three methods on the same crops and masks:

* ``gan`` — the generator, composited;
* ``mean_fill`` — each contrast's mean over the crop's brain voxels outside the mask (no training);
* ``copy_paste`` — the voxels of the next held-out crop (another case's tumour crop) at the same positions
  (no training; real tumour intensities, the wrong anatomy).

:func:`conspicuity` asks the question that matters for training on synthesised cases: how visible is a tumour
against the brain around it? Per contrast and tumour label, the label's mean intensity minus the mean of a shell
of brain around the tumour, in units of the brain's standard deviation; an inserted tumour that is much fainter
than the donor's own teaches a segmentation network to call faint tissue tumour.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from scipy import ndimage
import torch.nn.functional as F

from ..io import MODALITIES
from ..labels import LABEL_NAMES
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


def conspicuity(image: np.ndarray, label: np.ndarray, tumour: np.ndarray | None = None, shell: int = 4,
                min_voxels: int = 50) -> dict[str, float]:
    """How visible a tumour is: ``{"<modality>_<LABEL>": contrast}`` (e.g. ``t2f_SNFH``), where contrast is the
    mean of the modality inside that label of ``tumour`` minus its mean over the brain shell around ``tumour``,
    divided by the standard deviation of the modality over the brain (non-zero in some contrast).

    Args:
        image: (4, X, Y, Z) contrasts in :data:`~brats_lib.io.MODALITIES` order.
        label: (X, Y, Z) label map of every tumour in the case (the shell keeps one voxel off all of them).
        tumour: the label map of the tumour to measure (default ``label``): for an inserted tumour, the new
            label where the source had none.
        shell: width in voxels of the shell around ``tumour`` (inside the brain, off every tumour).
        min_voxels: labels with fewer voxels are left out (no key).
    Raises:
        ValueError: shapes differ, or ``tumour`` is empty or has no brain shell around it.
    """
    tumour = label if tumour is None else tumour
    if image.shape[1:] != label.shape or label.shape != tumour.shape or image.shape[0] != len(MODALITIES):
        raise ValueError(f"image {image.shape}, label {label.shape} and tumour {tumour.shape} must share a grid "
                         f"with {len(MODALITIES)} contrasts")
    where = np.nonzero(tumour)
    if not len(where[0]):
        raise ValueError("the tumour to measure is empty")
    brain = image.any(axis=0)
    lo = [max(int(w.min()) - shell - 1, 0) for w in where]
    box = tuple(slice(a, int(w.max()) + shell + 2) for a, w in zip(lo, where))
    grown = ndimage.binary_dilation(tumour[box] > 0, iterations=shell)
    ring = grown & ~ndimage.binary_dilation(label[box] > 0) & brain[box]
    if not ring.any():
        raise ValueError("no brain voxels around the tumour to compare it with")
    out = {}
    for c, modality in enumerate(MODALITIES):
        spread = float(image[c][brain].std())
        crop = image[c][box]
        around = float(crop[ring].mean())
        for value in np.unique(tumour[box]):
            inside = tumour[box] == value
            if value and inside.sum() >= min_voxels and spread > 0:
                out[f"{modality}_{LABEL_NAMES[int(value)]}"] = (float(crop[inside].mean()) - around) / spread
    return out


#: The contrast where each label shows (oedema on FLAIR and T2, enhancement on T1c, a cavity dark on T1 and
#: FLAIR): the columns :func:`conspicuity_summary` keeps.
CONSPICUITY_KEYS = ("t2f_SNFH", "t2w_SNFH", "t1c_ET", "t1n_RC", "t2f_RC")
#: Column titles for a report.
CONSPICUITY_NAMES = {"t2f_SNFH": "FLAIR oedema", "t2w_SNFH": "T2 oedema", "t1c_ET": "T1c enhancing",
                     "t1n_RC": "T1 cavity", "t2f_RC": "FLAIR cavity"}


def insertion_conspicuity(synth_dir, data_dir, method: str = "", skip_donors=()) -> pd.DataFrame:
    """:func:`conspicuity` of every inserted tumour of a synthesis folder (``brats gan-synth``'s output with its
    ``provenance.csv``), and of each donor's tumour in its own case for comparison: one row per tumour,
    ``tumours`` ("inserted" or "inserted, <method>", and "the donors' own"), ``case``, then the contrasts.

    ``data_dir`` holds the sources and donors the folder names. The inserted tumour is the new label where the
    source had none. Donors in ``skip_donors`` (case ids measured already, e.g. by another folder with the same
    donors) get no row.
    """
    import csv
    from pathlib import Path

    from ..io import discover_cases, load_case, load_case_label

    synth_dir = Path(synth_dir)
    by_id = {c.case_id: c for c in discover_cases(data_dir, require_images=False)}
    new_cases = {c.case_id: c for c in discover_cases(synth_dir)}
    rows, donors = [], []
    with open(synth_dir / "provenance.csv", newline="", encoding="utf-8") as handle:
        for record in csv.DictReader(handle):
            new = load_case(new_cases[record["case_id"]])
            inserted = np.where(load_case_label(by_id[record["source"]]) == 0, new.label, 0)
            rows.append({"tumours": "inserted" + (f", {method}" if method else ""), "case": record["case_id"],
                         **conspicuity(new.image, new.label, inserted)})
            if record["donor"] not in donors and record["donor"] not in skip_donors:
                donors.append(record["donor"])
    for donor_id in donors:
        donor = load_case(by_id[donor_id])
        rows.append({"tumours": "the donors' own", "case": donor_id, **conspicuity(donor.image, donor.label)})
    return pd.DataFrame(rows)


def conspicuity_summary(table: pd.DataFrame, keys=CONSPICUITY_KEYS) -> pd.DataFrame:
    """Per group of tumours (``tumours``, in order of appearance): ``n`` and the median and minimum of each
    contrast in ``keys`` that the table has (columns ``("median", key)``, ``("min", key)``)."""
    keys = [k for k in keys if k in table.columns]
    groups = table.groupby("tumours", sort=False)
    out = pd.concat({"median": groups[keys].median(), "min": groups[keys].min()}, axis=1)
    out.insert(0, ("", "n"), groups.size())
    return out


__all__ = ["CONSPICUITY_KEYS", "CONSPICUITY_NAMES", "METHODS", "MODALITIES", "conspicuity", "conspicuity_summary", "inpainting_quality",
           "insertion_conspicuity", "masked_scores", "scale_to_unit", "ssim_map"]
