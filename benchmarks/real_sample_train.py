"""The real-data recipe: train the Residual 3D U-Net on the real sample cases, and measure it honestly.

Uses every case with images under ``../shared/data/real`` (the BraTS 2021 layout, labels 1/2/4 converted to
the 2024 convention, and the 2023+ GLI layout together). By default it trains the recipe on **every** real case
(plus ``--synthetic`` cases) within the time budget and leaves a run directory that ``brats predict --run DIR``
applies to any real folder (:func:`brats_lib.crossval.train_final`: ``best.pt`` is the last epoch, the
checkpoint the cross-validation scores; ``--postprocess-from CV_DIR`` saves the post-processing tuned on that
cross-validation's out-of-fold predictions with the run):

    python benchmarks/real_sample_train.py --minutes 30 --run-dir runs/real-sample/resunet3d \
        --postprocess-from runs/real-cv/m15-dr6-regions

The defaults are the best recipe the cross-validation found (``benchmarks/RESULTS.md``): the Residual U-Net
16…128 at 2 mm, 64³ patches, 275 steps (``--epochs 11`` × 25) with the poly schedule, default augmentation,
sigmoid region outputs (``--output-mode regions``), plus 6 domain-randomised synthetic ``untreated`` cases
(``--synthetic 6``).

``--hold-out ID,ID`` instead holds those cases out, trains on the rest and prints their Dice per region
(whole-region and official lesion-wise); two patients flatter a recipe, so the figure to quote is ``--cv``'s.

``--cv K`` instead measures the recipe by patient-level K-fold cross-validation over every real case
(:mod:`brats_lib.crossval`: the two releases' copies of a patient are one patient; each fold trains for
``--minutes``, predicts its validation cases raw on their original grids, and the official lesion-wise scorer
scores them) with each post-processing variant, the tuned ones cross-fitted (tuned on the other folds'
predictions), and prints per-fold and mean figures with n:

    python benchmarks/real_sample_train.py --cv 3 --minutes 60 --cv-dir runs/real-cv/m15-dr6-regions

``--synthetic N`` adds N domain-randomised synthetic cases (``brats synth --randomise``, untreated
variant by default, as most real sample cases) to the training set of every fold; they are never scored
(``--synthetic 0``: real cases only):

    python benchmarks/real_sample_train.py --cv 3 --minutes 60 --synthetic 0 --output-mode softmax --cv-dir runs/real-cv/m15
    python benchmarks/real_sample_train.py --cv 3 --minutes 60 --output-mode softmax --cv-dir runs/real-cv/m15-dr6

``--synthetic-method copy_paste`` or ``gan`` makes the N extra cases instead by inserting a tumour taken from
one training case into another (issue 12's generative augmentation, :mod:`brats_lib.gan.synth`): copy-paste of
the donor's voxels, or inpainted by a GAN trained on the training cases only. With ``--cv`` every fold makes its
own from its own training cases (``fold<i>/inserted/``: the GAN run and the cases), so no validation patient is
seen by the GAN or donates a tumour (issue 12's real-data arm, ``benchmarks/RESULTS.md``):

    python benchmarks/real_sample_train.py --cv 3 --output-mode softmax --synthetic-method gan --cv-dir runs/real-cv/m15-gan6

A cross-validation directory whose folds are done is only re-scored (so the scoring can be re-run alone).
The real cases are read in place and never copied; the cache goes to ``--cache-dir``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import NoReturn

import numpy as np
import pandas as pd
import torch

from brats_lib import crossval
from brats_lib.data import save_splits
from brats_lib.errors import BratsConfigError
from brats_lib.inference import predict_case
from brats_lib.io import discover_cases, load_case, save_label_map
from brats_lib.labels import REGION_ORDER, region_mask
from brats_lib.metrics import lesion_wise_results
from brats_lib.train import TrainConfig, train

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "data" / "real"
SYNTHETIC_METHODS = ("generator", "copy_paste", "gan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="training time budget")
    parser.add_argument("--run-dir", default="runs/real-sample/resunet3d")
    parser.add_argument("--cache-dir", default="data/cache/real-sample")
    parser.add_argument("--data-dir", default=str(REAL))
    parser.add_argument("--downsample", type=float, default=2.0, help="1 for full resolution (GPU)")
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--features", default="16,32,64,128")
    parser.add_argument("--iterations", type=int, default=25, help="iterations per epoch")
    parser.add_argument("--epochs", type=int, default=11,
                        help="epochs of --iterations steps; the poly learning rate decays to 0 over them (default 11: "
                             "the 275 steps the cross-validation measured, about 14 min on 2 idle CPU cores; raise it "
                             "on a GPU). --minutes stops the run earlier if it is spent first")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-tta", action="store_true")
    parser.add_argument("--cv", type=int, default=0, metavar="K", help="K-fold patient-level cross-validation")
    parser.add_argument("--cv-dir", default=None, help="cross-validation directory (default runs/real-cv/k<K>)")
    parser.add_argument("--seed", type=int, default=0, help="fold assignment seed (--cv)")
    parser.add_argument("--val-patches", type=int, default=8, help="validation patches per epoch")
    parser.add_argument("--variants", default="none,size,rules",
                        help="post-processing variants scored with --cv (none, size, rules)")
    parser.add_argument("--augment", default="default", help="training augmentation: default, strong or none")
    parser.add_argument("--output-mode", choices=("softmax", "regions"), default="regions",
                        help="sigmoid region outputs WT, TC, ET, RC (default: region-based training, as the BraTS "
                             "winners; the better of the two in the cross-validation) or softmax over the 5 labels")
    parser.add_argument("--postprocess-from", default=None, metavar="CV_DIR",
                        help="tune postprocess.json (thresholds + rules) on the out-of-fold predictions of a "
                             "finished --cv directory and save it with the run")
    parser.add_argument("--hold-out", default="", metavar="ID,ID",
                        help="hold these case ids out and score them (the old fixed hold-out was "
                             "BraTS2021_00006,BraTS2021_00031); default: none, every real case trains (the "
                             "deliverable; --cv K measures the recipe)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--synthetic", type=int, default=6, metavar="N",
                        help="add N domain-randomised synthetic cases (brats synth --randomise) to the training "
                             "set (every fold's, with --cv); they are never validated or scored (default 6, the "
                             "measured recipe; 0 for real cases only)")
    parser.add_argument("--synthetic-dir", default="data/synthetic-randomised",
                        help="where the synthetic cases are written (reused when current)")
    parser.add_argument("--synthetic-variants", default="untreated",
                        help="lesion variants of the synthetic cases, comma-separated (default: untreated, an "
                             "enhancing rim around a necrotic core in oedema, as most real sample cases; 'all' for "
                             "every variant, resection cavities included)")
    parser.add_argument("--synthetic-seed", type=int, default=1)
    parser.add_argument("--synthetic-oedema-scale", default=None, metavar="LOW,HIGH",
                        help="multiply each synthetic case's oedema radii by a factor drawn from [LOW, HIGH] "
                             "(brats synth --oedema-scale), to cover larger oedema extents than the default cases")
    parser.add_argument("--synthetic-start", type=int, default=90000,
                        help="first synthetic case number (ids BraTS-GLI-<start+i>-000, clear of real ids)")
    parser.add_argument("--synthetic-method", choices=SYNTHETIC_METHODS, default="generator",
                        help="how the --synthetic cases are made: 'generator' (brats synth --randomise, the "
                             "default), or tumours inserted into the training cases themselves (issue 12): "
                             "'copy_paste' (a donor case's own tumour voxels, intensity-matched) or 'gan' (inpainted "
                             "by a GAN trained on the training cases); with --cv, each fold makes its own from its "
                             "training cases only")
    parser.add_argument("--synthetic-max-tries", type=int, default=2000,
                        help="placement tries per inserted case before synthesis gives up (20 random centres and "
                             "one exact search per source/donor pair; default 2000 = 100 pairs: a real brain "
                             "with one large tumour often has no room for another, so most pairs have none)")
    parser.add_argument("--gan-epochs", type=int, default=8, help="GAN epochs for --synthetic-method gan")
    parser.add_argument("--gan-iterations", type=int, default=20, help="GAN iterations per epoch")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    data_dir = Path(args.data_dir)
    if not data_dir.is_dir():
        fail(f"{data_dir}: real sample cases not found (../shared is absent)")
    inserted = args.synthetic > 0 and args.synthetic_method != "generator"
    extra = None if inserted else synthetic_cases(args)
    cases = [c for c in discover_cases(data_dir, require_images=False) if c.has_images and c.has_label]
    if args.cv:
        if inserted:  # made per fold from the fold's training cases only
            def extra(i, fold):
                return inserted_cases(args, data_dir, fold["train"], Path(cv_dir_of(args)) / f"fold{i}" / "inserted")
        return cross_validate(args, data_dir, extra)
    if not args.hold_out:
        if inserted:
            extra = inserted_cases(args, data_dir, [c.case_id for c in cases],
                                   Path(args.run_dir).parent / f"{Path(args.run_dir).name}_inserted")
        return train_on_everything(args, data_dir, extra)
    held_out = [h.strip() for h in args.hold_out.split(",") if h.strip()]
    held = [c for c in cases if c.case_id in held_out]
    if len(held) != len(held_out):
        fail(f"--hold-out: {sorted(set(held_out) - {c.case_id for c in held})} not among the "
                         f"labelled cases of {data_dir}")
    train_ids = [c.case_id for c in cases if c.case_id not in held_out]
    if inserted:
        extra = inserted_cases(args, data_dir, train_ids,
                               Path(args.run_dir).parent / f"{Path(args.run_dir).name}_inserted")
    # the synthetic cases join the training set; the folder links both, nothing is copied
    extra_ids, train_dir = crossval.training_folder(
        data_dir, [c.case_id for c in cases], extra,
        Path(args.run_dir).parent / f"{Path(args.run_dir).name}_train_data")
    train_ids += extra_ids
    splits = {"train": train_ids, "val": [c.case_id for c in held], "test": []}
    splits_file = Path(args.cache_dir) / "splits.json"
    save_splits(splits, splits_file, held_out=held_out, note="real sample cases, fixed hold-out")
    print(f"{len(train_ids)} training cases ({', '.join(train_ids)}); held out: {', '.join(held_out)}")

    config = TrainConfig(data_dir=str(train_dir), run_dir=args.run_dir, splits_file=str(splits_file),
                         **train_config(args))
    start = time.perf_counter()
    history = train(config)
    minutes = (time.perf_counter() - start) / 60
    print(f"trained {len(history)} epochs ({len(history) * args.iterations} iterations) in {minutes:.1f} min")

    rows = []
    pred_dir = Path(args.run_dir) / "held_out_predictions"
    for case in held:
        loaded = load_case(case)
        # last.pt, not best.pt: the held-out patches served as validation, so choosing by them would flatter
        pred = predict_case(args.run_dir, loaded, device=args.device, tta=not args.no_tta, checkpoint="last.pt")
        save_label_map(pred, loaded.geometry, pred_dir / f"{case.case_id}.nii.gz")
        official, _ = lesion_wise_results(pred, loaded.label, loaded.geometry.spacing)
        official = official.set_index("Labels")
        for region in REGION_ORDER:
            p, g = region_mask(pred, region), region_mask(loaded.label, region)
            denom = p.sum() + g.sum()
            rows.append({"case": case.case_id, "region": region,
                         "dice": 2 * np.logical_and(p, g).sum() / denom if denom else np.nan,
                         "lesionwise_dice": official.loc[region, "LesionWise_Score_Dice"],
                         "lesionwise_hd95_mm": official.loc[region, "LesionWise_Score_HD95"]})
    table = pd.DataFrame(rows)
    print(table.pivot(index="case", columns="region", values="dice").round(3).to_string())
    print("mean whole-region Dice per region:")
    print(table.groupby("region", sort=False)["dice"].mean().round(3).to_string())
    summary = {"minutes": minutes, "epochs": len(history), "held_out": held_out,
               "dice": table.groupby("region", sort=False)["dice"].mean().to_dict(),
               "lesionwise_dice": table.groupby("region", sort=False)["lesionwise_dice"].mean().to_dict()}
    (Path(args.run_dir) / "held_out_dice.json").write_text(json.dumps(summary, indent=1))
    if args.postprocess_from:
        # after the held-out scoring (which stays without post-processing): the CV's out-of-fold predictions
        # include the held-out patients
        crossval.tune_from_crossval(Path(args.postprocess_from), data_dir, Path(args.run_dir))


def train_on_everything(args, data_dir: Path, extra: Path | None) -> None:
    """The deliverable: the recipe on every real case (plus ``extra``), post-processing from a cross-validation."""
    if not args.postprocess_from:
        print("note: no --postprocess-from CV_DIR: the run gets no tuned post-processing (brats predict applies "
              "none)")
    try:
        record = crossval.train_final(data_dir, args.run_dir, train_config(args), extra_train=extra,
                                      postprocess_from=args.postprocess_from)
    except ValueError as exc:
        fail(str(exc))
    print(f"{args.run_dir}: trained on {len(record['cases'])} real + {len(record['extra_cases'])} synthetic cases; "
          f"brats predict --run {args.run_dir} --in DIR --out DIR applies it"
          + (" with the tuned post-processing" if args.postprocess_from else ""))


def fail(message: str) -> NoReturn:
    """A user error: one line on stderr, exit status 2."""
    print(f"real_sample_train.py: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def synthetic_cases(args) -> Path | None:
    """Write (or reuse) the ``--synthetic`` domain-randomised cases; their folder, or None."""
    if args.synthetic <= 0:
        return None
    from brats_lib.synthetic import generate_dataset

    variants = None if args.synthetic_variants == "all" else args.synthetic_variants.split(",")
    out = Path(args.synthetic_dir)
    start = time.perf_counter()
    try:
        scale = (None if args.synthetic_oedema_scale is None
                 else [float(v) for v in args.synthetic_oedema_scale.split(",")])
        generate_dataset(out, n_cases=args.synthetic, seed=args.synthetic_seed, workers=max(1, args.workers),
                         start=args.synthetic_start, randomise=True, variants=variants, oedema_scale=scale)
    except (ValueError, BratsConfigError) as exc:
        fail(f"--synthetic options: {exc}")
    print(f"{args.synthetic} domain-randomised synthetic case(s) in {out} "
          f"({time.perf_counter() - start:.0f} s; variants {args.synthetic_variants}"
          f"{'' if scale is None else f'; oedema scale {args.synthetic_oedema_scale}'})")
    return out


def inserted_cases(args, data_dir: Path, train_ids: list[str], out: Path) -> Path:
    """``--synthetic`` cases made by inserting tumours into ``train_ids`` (``--synthetic-method copy_paste`` or
    ``gan``), written to ``out/cases``; their folder. ``gan`` first trains the GAN on ``train_ids`` only into
    ``out/gan`` (its best checkpoint chosen on training crops, so no validation patient steers it); ``copy_paste``
    needs only the GAN config's geometry, and the same seed gives the two methods the same placements. Reused
    when complete (an interrupted GAN run resumes)."""
    from brats_lib.errors import BratsInputError
    from brats_lib.gan.synth import synthesise
    from brats_lib.gan.train import GanConfig, train_gan

    cases = out / "cases"
    done = cases / "provenance.csv"
    if done.is_file() and len(done.read_text(encoding="utf-8").splitlines()) == args.synthetic + 1:
        return cases
    config = GanConfig(data_dir=str(data_dir), cache_dir=args.cache_dir, run_dir=str(out / "gan"),
                       splits_file=str(out / "gan_splits.json"), preprocess={"downsample": args.downsample},
                       epochs=args.gan_epochs, iterations_per_epoch=args.gan_iterations, device=args.device,
                       workers=args.workers, seed=args.seed)
    start = time.perf_counter()
    try:
        run = config
        if args.synthetic_method == "gan":
            save_splits({"train": list(train_ids), "val": [], "test": []}, config.splits_file,
                            note="the GAN's training cases: the fold's (or run's) training cases only")
            train_gan(config, progress=False)
            run = config.run_dir
        synthesise(run, data_dir, cases, args.synthetic, seed=args.synthetic_seed, case_ids=train_ids,
                   start=args.synthetic_start, device=args.device, method=args.synthetic_method, replace=True,
                   max_tries=args.synthetic_max_tries)
    except (BratsConfigError, BratsInputError) as exc:
        fail(f"--synthetic-method {args.synthetic_method}: {exc}")
    print(f"{args.synthetic} {args.synthetic_method} case(s) from {len(train_ids)} training cases in {cases} "
          f"({time.perf_counter() - start:.0f} s)", flush=True)
    return cases


def cv_dir_of(args) -> str:
    return args.cv_dir or f"runs/real-cv/k{args.cv}"


def train_config(args) -> dict:
    """The recipe's TrainConfig fields (data_dir, run_dir and splits_file are set per run)."""
    return dict(
        cache_dir=args.cache_dir,
        model={"name": "resunet3d", "features_per_stage": [int(f) for f in args.features.split(",")]},
        patch_size=args.patch, batch_size=args.batch, epochs=args.epochs, iterations_per_epoch=args.iterations,
        val_patches=args.val_patches, device=args.device, workers=args.workers, time_limit_minutes=args.minutes,
        preprocess={"downsample": args.downsample},
        augment=False if args.augment == "none" else args.augment, output_mode=args.output_mode,
    )


def cross_validate(args, data_dir: Path, extra=None) -> None:
    for name in args.variants.split(","):
        if name not in crossval.VARIANTS:
            fail(f"--variants: unknown variant {name!r}; expected some of {list(crossval.VARIANTS)}")
    cv_dir = Path(cv_dir_of(args))
    start = time.perf_counter()
    folds = crossval.run_folds(data_dir, cv_dir, args.cv, train_config(args), seed=args.seed,
                               tta=not args.no_tta, device=args.device, extra_train=extra)
    print(f"folds done in {(time.perf_counter() - start) / 60:.1f} min; "
          f"{sum(len(f['patients']) for f in folds)} patients, {sum(len(f['val']) for f in folds)} cases")
    summary = crossval.score_folds(cv_dir, data_dir, args.variants.split(","))
    train_meta = [json.loads((cv_dir / f"fold{i}" / "train_summary.json").read_text())
                  for i in range(len(folds)) if (cv_dir / f"fold{i}" / "train_summary.json").exists()]
    print("training per fold:", ", ".join(f"{m['iterations']} it / {m['train_minutes']:.1f} min"
                                          for m in train_meta))
    for metric in ("lesionwise_dice", "legacy_dice", "num_fp"):
        table = summary.pivot_table(index=["variant", "fold"], columns="region", values=metric, sort=False)
        print(f"\n{metric} (fold 'all': mean over patients, a patient once):")
        print(table[list(REGION_ORDER)].round(3).to_string())
    n = summary[summary.fold == "all"].iloc[0]
    print(f"\nn = {int(n.n_patients)} patients, {int(n.n_cases)} cases")


if __name__ == "__main__":
    torch.set_num_threads(max(1, torch.get_num_threads()))
    main()
