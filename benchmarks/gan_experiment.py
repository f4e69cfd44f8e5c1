"""Does adding GAN-made cases help segmentation? The three-arm experiment of issue 12, at demo scale.

Usage (from the repository root; about 45 min on 2 shared CPU cores at the defaults)::

    python benchmarks/gan_experiment.py --gan-run runs/demo/gan --out runs/study/gan_experiment

Fixed before running (not tuned afterwards):

* split: the patient split of ``<cache>/splits.json`` (the segmentation notebooks'); the GAN run saw its training
  cases only, and every inserted case is made from training cases (source and donor);
* arms, each the same U-Net (``unet3d``, 16/32/64/128 features), the same optimiser steps (``--epochs`` ×
  ``--iterations``, batch 2, 48³ patches at 2 mm), the same seed and validation cases:
  ``real`` (the training cases), ``copy_paste`` (+ ``--n-synth`` cases whose inserted tumour is the donor's own
  voxels, intensity-matched: ``brats gan-synth --method copy_paste``), ``gan`` (+ ``--n-synth`` GAN-inpainted cases
  with the *same* sources, donors and placements: the same seed);
* primary endpoint: the mean official lesion-wise Dice over the six regions (WT, TC, ET, NETC, SNFH, RC) per test
  case, compared per case with the ``real`` arm: the mean paired difference with a 95 % bootstrap interval
  (10,000 resamples of the cases, seed 0); also the training fraction ``--fractions`` (default 1.0 only).

Writes ``OUT/experiment.csv`` (arm, fraction, case, region, dice, hd95: the lesion-wise scores) and
``OUT/summary.csv`` (arm, fraction, cases, mean endpoint, paired difference and its interval), and prints both.
Everything it writes is under ``OUT``; the real data and cache are only read.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from brats_lib.analysis.paired import bootstrap_interval  # noqa: E402
from brats_lib.data import load_splits, save_splits  # noqa: E402
from brats_lib.gan.synth import synthesise  # noqa: E402
from brats_lib.inference import predict_folder  # noqa: E402
from brats_lib.io import discover_cases  # noqa: E402
from brats_lib.metrics import evaluate_folders  # noqa: E402
from brats_lib.train import TrainConfig, train  # noqa: E402

ARMS = ("real", "copy_paste", "gan")


def link_cases(folders, target: Path) -> Path:
    """A dataset folder of symbolic links to case folders."""
    target.mkdir(parents=True, exist_ok=True)
    for folder in folders:
        link = target / folder.name
        if not link.exists():
            link.symlink_to(folder.resolve(), target_is_directory=True)
    return target


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="data/synthetic")
    p.add_argument("--cache", default="data/cache/demo", help="holds splits.json (read only)")
    p.add_argument("--gan-run", default="runs/demo/gan")
    p.add_argument("--out", default="runs/study/gan_experiment")
    p.add_argument("--n-synth", type=int, default=10)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--iterations", type=int, default=30)
    p.add_argument("--fractions", type=float, nargs="+", default=[1.0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    out = Path(args.out)
    started = time.perf_counter()
    splits = load_splits(Path(args.cache) / "splits.json")
    cases = {c.case_id: c for c in discover_cases(args.data)}
    test_dir = link_cases([cases[c].folder for c in splits["test"]], out / "test_data")
    rows = []
    for fraction in args.fractions:
        patients = sorted({cases[c].patient_id for c in splits["train"]})
        keep = set(np.random.default_rng(args.seed).permutation(patients)[:max(2, round(fraction * len(patients)))])
        train_ids = [c for c in splits["train"] if cases[c].patient_id in keep]
        for arm in ARMS:
            tag = f"{arm}_{fraction:g}"
            extra: list[Path] = []
            if arm != "real":
                synth_dir = out / f"cases_{tag}"
                if not (synth_dir / "provenance.csv").exists():
                    synthesise(args.gan_run, args.data, synth_dir, args.n_synth, seed=args.seed, case_ids=train_ids,
                               method=arm, replace=True)
                extra = sorted(p for p in synth_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
            data_dir = link_cases([cases[c].folder for c in train_ids + splits["val"] + splits["test"]] + extra,
                                  out / f"data_{tag}")
            split_file = out / f"splits_{tag}.json"
            if not split_file.exists():
                save_splits({"train": train_ids + [p.name for p in extra], "val": splits["val"],
                             "test": splits["test"]}, split_file, arm=arm, fraction=fraction)
            real_cache, cache = out / f"cache_real_{fraction:g}", out / f"cache_{tag}"
            if arm != "real" and real_cache.is_dir():  # the real cases' cache entries are current here too
                for cid in train_ids + splits["val"] + splits["test"]:
                    if (real_cache / cid / "meta.json").exists() and not (cache / cid).exists():
                        shutil.copytree(real_cache / cid, cache / cid)
            run_dir = out / "runs" / tag
            config = TrainConfig(data_dir=str(data_dir), cache_dir=str(cache), run_dir=str(run_dir),
                                 splits_file=str(split_file),
                                 model={"name": "unet3d", "features_per_stage": [16, 32, 64, 128]}, patch_size=48,
                                 epochs=args.epochs, iterations_per_epoch=args.iterations, val_patches=8,
                                 seed=args.seed, device="cpu", workers=args.workers, preprocess={"downsample": 2})
            t0 = time.perf_counter()
            train(config, progress=False)
            pred_dir = out / "pred" / tag
            if not pred_dir.exists() or len(list(pred_dir.glob("*.nii.gz"))) < len(splits["test"]):
                predict_folder(run_dir, test_dir, pred_dir, device="cpu", tta=False, progress=False)
            table = evaluate_folders(pred_dir, test_dir, progress=False)
            print(f"{tag}: trained and scored in {time.perf_counter() - t0:.0f} s", flush=True)
            for _, r in table.iterrows():
                rows.append({"arm": arm, "fraction": fraction, "case": r["case"], "region": r["region"],
                             "dice": r["LesionWise_Score_Dice"], "hd95": r["LesionWise_Score_HD95"]})
    experiment = pd.DataFrame(rows)
    experiment.to_csv(out / "experiment.csv", index=False)
    per_case = experiment.groupby(["fraction", "arm", "case"])["dice"].mean().unstack("arm")
    summary = []
    for fraction, block in per_case.groupby(level="fraction"):
        for arm in ARMS:
            diff = (block[arm] - block["real"]).to_numpy()
            low, high = bootstrap_interval(diff) if arm != "real" else (0.0, 0.0)
            summary.append({"arm": arm, "fraction": fraction, "cases": len(block), "mean_lesionwise_dice":
                            block[arm].mean(), "paired_diff_vs_real": diff.mean(), "ci95_low": low, "ci95_high": high})
    summary = pd.DataFrame(summary)
    summary.to_csv(out / "summary.csv", index=False)
    print(per_case.round(4).to_string())
    print(summary.round(4).to_string(index=False))
    print(f"total {time.perf_counter() - started:.0f} s; wrote {out / 'experiment.csv'} and {out / 'summary.csv'}")
    (out / "command.json").write_text(json.dumps(vars(args), indent=1))


if __name__ == "__main__":
    main()
