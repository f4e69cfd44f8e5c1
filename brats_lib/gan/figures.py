"""Figures and the 'What this shows' text of a GAN run (notebook 07): losses per epoch, real vs inpainted crops,
inpainting quality against the baselines. Every figure is at most 7 in wide, with the house label palette."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from ..io import MODALITIES
from ..viz import legend_handles, overlay_rgba
from .crops import TumourCrops, composite, generator_input, inpaint_mask
from .train import mean_fill

METHOD_NAMES = {"gan": "GAN", "mean_fill": "mean fill", "copy_paste": "copy-paste"}


def plot_losses(history: pd.DataFrame, title: str = "GAN training"):
    """Left: discriminator and generator adversarial losses per epoch; right: masked L1 (training crops, and the
    validation crops against the mean-fill baseline) per epoch."""
    fig, (ax_adv, ax_l1) = plt.subplots(1, 2, figsize=(7.0, 3.0), constrained_layout=True)
    ax_adv.plot(history["epoch"], history["d_loss"], "o-", color="0.15", label="discriminator (hinge)")
    ax_adv.plot(history["epoch"], history["g_adv"], "s--", color="0.55", label="generator (−D(fake))")
    ax_adv.set_xlabel("epoch")
    ax_adv.set_ylabel("adversarial loss")
    ax_adv.set_title("adversarial losses", fontsize=10)
    ax_adv.legend(fontsize="x-small")
    ax_l1.plot(history["epoch"], history["l1"], "o-", color="0.15", label="train crops")
    ax_l1.plot(history["epoch"], history["val_l1"], "s-", color="#0072B2", label="validation crops")
    ax_l1.plot(history["epoch"], history["val_mean_fill_l1"], ":", color="#D55E00", label="validation, mean fill")
    ax_l1.set_xlabel("epoch")
    ax_l1.set_ylabel("masked L1 (z-score units)")
    ax_l1.set_title("reconstruction inside the mask", fontsize=10)
    ax_l1.legend(fontsize="x-small")
    for ax in (ax_adv, ax_l1):
        ax.tick_params(labelsize=8)
        if len(history) <= 12:
            ax.set_xticks(list(history["epoch"]))
    fig.suptitle(title, fontsize=11)
    return fig


@torch.no_grad()
def inpainting_examples(generator: torch.nn.Module, crops: TumourCrops, n: int, dilation: int, seed: int = 0
                        ) -> dict[str, np.ndarray]:
    """Arrays for :func:`plot_inpainting`: ``real``, ``masked`` (the generator's noise-filled input), ``gan``,
    ``mean_fill`` (each (n, 4, s, s, s)), ``label`` (n, s, s, s) and ``mask`` (n, s, s, s)."""
    image, label = crops.fixed(n)
    noise = torch.randn(image.shape, generator=torch.Generator().manual_seed(seed))
    mask = inpaint_mask(label, dilation)
    x = generator_input(image, label, mask, noise)
    device = next(generator.parameters()).device
    gan = composite(image, generator.eval()(x.to(device)).float().cpu(), mask)
    return {"real": image.numpy(), "masked": x[:, :4].numpy(), "gan": gan.numpy(),
            "mean_fill": mean_fill(image, mask).numpy(), "label": label.numpy(), "mask": mask[:, 0].numpy()}


def plot_inpainting(examples: Mapping[str, np.ndarray], index: int = 0, title: str = ""):
    """One crop, one column per contrast (t1n, t1c, t2w, t2f), at the axial slice with most tumour; rows: the
    real crop with its label, the generator's input (mask filled with noise), the GAN's inpainting, and the
    mean-fill baseline. Each column shares the real crop's grey window."""
    rows = [("real + label", "real"), ("input: noise in mask", "masked"), ("GAN inpainted", "gan"),
            ("mean fill", "mean_fill")]
    label = examples["label"][index]
    z = int(np.argmax((label > 0).sum(axis=(0, 1)))) if label.any() else label.shape[2] // 2
    fig, axes = plt.subplots(len(rows), 4, figsize=(6.8, 7.4), squeeze=False, constrained_layout=True)
    for c, modality in enumerate(MODALITIES):
        real = examples["real"][index, c, :, :, z].T
        window = (float(np.percentile(real, 1)), float(np.percentile(real, 99.5)))
        for r, (name, key) in enumerate(rows):
            ax = axes[r, c]
            slice_ = examples[key][index, c, :, :, z].T
            ax.imshow(overlay_rgba(slice_, label[:, :, z].T if key == "real" else None, alpha=0.45, window=window),
                      origin="lower")
            if key != "real":
                ax.contour(examples["mask"][index, :, :, z].T, levels=[0.5], colors=["#F0E442"], linewidths=0.6)
            if r == 0:
                ax.set_title(modality, fontsize=9)
            if c == 0:
                ax.set_ylabel(f"{name}\ny (voxels)", fontsize=8)
            if r == len(rows) - 1:
                ax.set_xlabel("x (voxels)", fontsize=8)
            ax.tick_params(labelsize=6)
    present = [int(k) for k in (1, 2, 3, 4) if (label == k).any()]
    handles = legend_handles(present or (1, 2, 3, 4))
    from matplotlib.lines import Line2D

    handles.append(Line2D([], [], color="#F0E442", linewidth=1.0, label="inpainting mask (tumour dilated)"))
    fig.legend(handles=handles, loc="outside lower center", ncol=2, fontsize=7, frameon=False)
    fig.suptitle(title or "Real vs inpainted crop (z-scored intensities)", fontsize=11)
    return fig


def plot_quality(table: pd.DataFrame, title: str = "Inpainting quality inside the mask (held-out crops)"):
    """MSE, PSNR and SSIM per method: one dot per crop, the mean as a bar."""
    metrics = [("mse", "MSE (↓)"), ("psnr", "PSNR, dB (↑)"), ("ssim", "SSIM (↑)")]
    methods = [m for m in METHOD_NAMES if m in set(table["method"])]
    colors = {"gan": "#0072B2", "mean_fill": "#D55E00", "copy_paste": "#009E73"}
    fig, axes = plt.subplots(1, 3, figsize=(7.0, 2.8), constrained_layout=True)
    for ax, (metric, name) in zip(axes, metrics):
        for i, method in enumerate(methods):
            values = table.loc[table["method"] == method, metric].to_numpy(float)
            values = values[np.isfinite(values)]
            ax.bar(i, values.mean() if len(values) else np.nan, color=colors[method], alpha=0.5,
                   label=METHOD_NAMES[method])
            ax.plot(np.full(len(values), i), values, "o", color=colors[method], markersize=3,
                    markeredgecolor="black", markeredgewidth=0.4)
        ax.set_xticks(range(len(methods)), [METHOD_NAMES[m] for m in methods], fontsize=7)
        ax.set_xlabel("method", fontsize=8)
        ax.set_ylabel(name, fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize="x-small")
    fig.suptitle(title, fontsize=11)
    return fig


def quality_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean MSE, PSNR and SSIM per method (rows in the order GAN, mean fill, copy-paste)."""
    out = table.groupby("method")[["mse", "psnr", "ssim"]].mean()
    out = out.reindex([m for m in METHOD_NAMES if m in out.index])
    out.index = [METHOD_NAMES[m] for m in out.index]
    out.index.name = "method"
    return out


def visibility_sentence(summary: pd.DataFrame) -> str:
    """One sentence from :func:`brats_lib.gan.quality.conspicuity_summary`: the inserted tumours' median FLAIR
    oedema and T1c enhancement contrast against the donors' own (a label neither group has is left out), with n."""
    median = summary["median"]
    inserted = next(i for i in median.index if i.startswith("inserted"))
    parts = []
    for key, what in (("t2f_SNFH", "the oedema on FLAIR"), ("t1c_ET", "the enhancing tumour on T1c")):
        if key in median.columns and DONORS in median.index and np.isfinite(median.loc[[inserted, DONORS], key]).all():
            parts.append(f"{what} {median.loc[inserted, key]:.1f} brain SDs above the tissue around it "
                         f"({median.loc[DONORS, key]:.1f} for the same donors' tumours in their own cases)")
    n = summary[("", "n")]
    counts = f"medians over n = {int(n.get(inserted, 0))} inserted and {int(n.get(DONORS, 0))} donors' tumours"
    return (" and ".join(parts) if parts else "no label to compare") + f", {counts}"


#: The comparison group of :func:`brats_lib.gan.quality.insertion_conspicuity`.
DONORS = "the donors' own"


def findings(history: pd.DataFrame, summary: pd.DataFrame, train_minutes: float, n_synth: int,
             synth_seconds: float, visibility: pd.DataFrame | None = None) -> str:
    """The 'What this shows' bullets (Markdown) from this run's numbers (``visibility``: the
    :func:`~brats_lib.gan.quality.conspicuity_summary` of the synthesised cases)."""
    last = history.iloc[-1]
    gan, fill = summary.loc["GAN"], summary.loc["mean fill"]
    better = [m for m, lower in (("mse", True), ("psnr", False), ("ssim", False))
              if (gan[m] < fill[m] if lower else gan[m] > fill[m])]
    verdict = ("beats mean fill on " + ", ".join(m.upper() for m in better) if better
               else "does not beat mean fill on any of MSE, PSNR, SSIM")
    peak_gpu = last.get("peak_gpu_mib", np.nan)
    memory = (f"{last['peak_rss_mib']:.0f} MiB peak resident memory (CPU)" if not np.isfinite(peak_gpu)
              else f"{peak_gpu:.0f} MiB peak GPU memory per step")
    lines = [
        f"* **In this run** the GAN trained {len(history)} epoch(s) in {train_minutes:.1f} min "
        f"({last['seconds_per_step']:.2f} s per step, {memory}). On the held-out crops it {verdict} "
        f"(GAN SSIM {gan['ssim']:.3f}, PSNR {gan['psnr']:.1f} dB; mean fill {fill['ssim']:.3f}, {fill['psnr']:.1f} dB).",
        f"* **Synthesis** wrote {n_synth} new case(s) in {synth_seconds:.0f} s; each keeps its source case's voxels "
        "outside the inserted region bit for bit, and its label is the source's with the donor's tumour added."
        + ("" if visibility is None else f" How visible the inserted tumours are: {visibility_sentence(visibility)}. A "
           "tumour much fainter than real ones teaches a segmentation network to call faint tissue tumour: the "
           "study at 50 % of the training cases points there (`benchmarks/RESULTS.md`)."),
        "* **Whether the new cases help segmentation is a different question from the inpainting scores**, which say "
        "how plausible the tumours look, not whether a segmentation model learns more from them. That is the "
        "three-arm experiment of the section above (a study outside the demo: `benchmarks/gan_experiment.py`, "
        "`benchmarks/compare_cv.py`; every measured result in `benchmarks/RESULTS.md`).",
        "* **Demo profile:** 32³ crops at 2 mm of synthetic cases and a few minutes on a CPU: the pipeline runs end to "
        "end, but the generator is far from converged. The `full` profile trains on 96³ crops at 1 mm with bf16 on a GPU.",
    ]
    return "\n".join(lines)




ARM_NAMES = {"real": "real only", "copy_paste": "+ copy-paste cases", "gan": "+ GAN cases",
             "generator": "+ generator cases"}


def experiment_summary(folders, labels=None) -> tuple[pd.DataFrame, list[str]]:
    """The pre-fixed endpoint of finished three-arm experiments: (one row per folder, training fraction and arm
    from each ``summary.csv`` of ``benchmarks/gan_experiment.py`` or ``benchmarks/compare_cv.py``; the folders
    that have none, as strings). Columns: ``data`` (synthetic test split, or real cross-validation), ``fraction``,
    ``arm``, ``n`` (cases or patients), ``endpoint`` (mean lesion-wise Dice over the six regions), ``Δ vs real
    only`` and its 95 % interval (``CI low``, ``CI high``). ``labels``: how to name each folder in the list of
    folders not run (default: the path)."""
    rows, missing = [], []
    folders = [Path(f) for f in folders]
    for folder, label in zip(folders, labels or [str(f) for f in folders]):
        path = folder / "summary.csv"
        if not path.is_file():
            missing.append(str(label))
            continue
        table = pd.read_csv(path)
        if "mean_lesionwise_dice" in table.columns:  # gan_experiment.py: test cases of the synthetic split
            for _, r in table.iterrows():
                rows.append({"data": "synthetic data, held-out test cases", "fraction": r["fraction"], "arm": r["arm"],
                             "n": int(r["cases"]), "endpoint": r["mean_lesionwise_dice"],
                             "Δ vs real only": r["paired_diff_vs_real"], "CI low": r["ci95_low"],
                             "CI high": r["ci95_high"]})
        else:  # compare_cv.py: patients of a cross-validation
            variant = json.loads((folder / "command.json").read_text(encoding="utf-8")).get("variant", "none")
            variant = {"none": "raw predictions", "rules": "with the cross-fitted post-processing"}.get(variant, variant)
            for _, r in table.iterrows():
                rows.append({"data": f"real sample cases, cross-validated patients, {variant}", "fraction": 1.0, "arm": r["arm"],
                             "n": int(r["n"]), "endpoint": r["mean"], "Δ vs real only": r["paired_diff"],
                             "CI low": r["ci95_low"], "CI high": r["ci95_high"]})
    out = pd.DataFrame(rows, columns=["data", "fraction", "arm", "n", "endpoint", "Δ vs real only", "CI low",
                                      "CI high"])
    out["arm"] = out["arm"].map(lambda a: ARM_NAMES.get(a, a))
    return out, missing


def experiment_findings(table: pd.DataFrame, missing) -> str:
    """Markdown bullets stating each finished comparison's result against real-only training, with n."""
    lines = []
    for (data, fraction), block in table.groupby(["data", "fraction"], sort=False):
        others = block[block["arm"] != ARM_NAMES["real"]]
        parts = []
        for _, r in others.iterrows():
            verdict = ("lower" if r["CI high"] < 0 else "higher" if r["CI low"] > 0 else "no detectable difference")
            parts.append(f"{r['arm']} {r['Δ vs real only']:+.3f} (95 % interval {r['CI low']:+.3f} to "
                         f"{r['CI high']:+.3f}: {verdict})")
        unit = "patients" if "patients" in data else "test cases"
        lines.append(f"* **{data}, {fraction:.0%} of the training cases** (n = {int(block['n'].iloc[0])} {unit}): "
                     + "; ".join(parts) + ".")
    if missing:
        lines.append("* Not run in this build: " + ", ".join(f"`{m}`" for m in missing)
                     + " (the study's commands are in `benchmarks/RESULTS.md`).")
    return "\n".join(lines) if lines else (
        "Not run in this build: this profile runs no study (`make study` and `make real` do; every measured "
        "result is in `benchmarks/RESULTS.md`).")


def plot_synthesised(source: np.ndarray, new: np.ndarray, label: np.ndarray, source_label: np.ndarray,
                     centre, case_id: str = "", modality: str = "t2f"):
    """A new case beside its source at the axial slice through the inserted tumour's centre: the source, the new
    case, and the new case with its label (the inserted tumour beside the old one). Arrays (4, X, Y, Z) and
    (X, Y, Z) on the case's grid; ``centre`` is a voxel (x, y, z)."""
    c = MODALITIES.index(modality)
    z = int(centre[2])
    window = (float(np.percentile(source[c][source[c] > 0], 0.5)), float(np.percentile(source[c][source[c] > 0], 99.5)))
    fig, axes = plt.subplots(1, 3, figsize=(7.0, 3.1), constrained_layout=True)
    panels = [(f"source ({modality})", source[c], None), (f"synthesised ({modality})", new[c], None),
              ("synthesised + label", new[c], label)]
    for ax, (name, volume, overlay) in zip(axes, panels):
        ax.imshow(overlay_rgba(volume[:, :, z].T, None if overlay is None else overlay[:, :, z].T, alpha=0.45,
                               window=window), origin="lower")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("x (voxels, 1 mm)", fontsize=8)
        ax.tick_params(labelsize=6)
    axes[0].set_ylabel("y (voxels, 1 mm)", fontsize=8)
    axes[1].plot([centre[0]], [centre[1]], "+", color="#F0E442", markersize=10, markeredgewidth=1.5)
    present = [int(k) for k in (1, 2, 3, 4) if (label[:, :, z] == k).any()]
    fig.legend(handles=legend_handles(present or (1, 2, 3, 4)), loc="outside lower center", ncol=2, fontsize=7,
               frameon=False)
    fig.suptitle(f"A synthesised case{': ' + case_id if case_id else ''} (+: the inserted tumour's centre)",
                 fontsize=11)
    return fig


__all__ = ["ARM_NAMES", "DONORS", "METHOD_NAMES", "experiment_findings", "experiment_summary", "findings", "inpainting_examples", "plot_inpainting", "plot_losses", "plot_quality",
           "plot_synthesised", "quality_summary", "visibility_sentence"]
