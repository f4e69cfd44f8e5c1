"""The ``brats`` command line: thin wrappers over the library, no logic of its own.

Subcommands::

    brats synth      --out DIR --n N --seed S [--workers W] [--randomise] [--variants A,B] [--oedema-scale L,H]
    brats preprocess --data DIR --out CACHE_DIR [--workers N]
    brats train      --config FILE [--set KEY=JSON ...] [--override]
    brats predict    --run RUN --in DIR --out DIR [--device D] [--no-tta]
    brats evaluate   --pred DIR --gt DIR --out FILE.csv [--lesions FILE.csv] [--pred-labels 2024|legacy]
                     [--workers N]
    brats volumes    --seg DIR --out FILE.csv
    brats sweep      --notebook NB --grid FILE.yml --out DIR [--jobs N] [--only NAME ...] [--print-commands]
    brats gan-train  --config FILE [--set KEY=JSON ...] [--override]
    brats gan-synth  --run RUN --data DIR --out DIR --n N --seed S [--split NAME] [--start K] [--device D]
                     [--method gan|copy_paste] [--elastic-sigma VOXELS]

Each subcommand registers itself with a ``_add_<name>`` function below; its handler imports the library
module lazily so that ``brats --help`` stays fast. A user fault (:class:`~brats_lib.errors.BratsUserError`,
raised where the library validates its input) ends in one line and exit status 2; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from .errors import BratsUserError

_REGISTRY: list[Callable[[argparse._SubParsersAction], None]] = []


def _subcommand(add: Callable[[argparse._SubParsersAction], None]):
    _REGISTRY.append(add)
    return add


@_subcommand
def _add_synth(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="write a synthetic BraTS-like dataset in the official 2024 layout")
    p.add_argument("--out", required=True, help="output dataset folder")
    p.add_argument("--n", type=int, required=True, help="number of cases")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    p.add_argument("--workers", type=int, default=None, help="parallel processes (default: all cores)")
    p.add_argument("--start", type=int, default=0, help="first case number (ids BraTS-GLI-<start+i>-000)")
    p.add_argument("--followups", action="store_true",
                   help="also write follow-up timepoints (-001) of every sixth patient (3, 9, 15, ...)")
    p.add_argument("--randomise", action="store_true",
                   help="domain randomisation: every case draws its own contrast, gamma, bias field, noise and "
                        "slice thickness (SynthSeg-style training data for unseen scanners)")
    p.add_argument("--variants", default=None, metavar="A,B",
                   help="only these lesion variants, comma-separated (e.g. untreated,non_enhancing: "
                        "pre-operative cases without a cavity)")
    p.add_argument("--oedema-scale", default=None, metavar="LOW,HIGH",
                   help="multiply every oedema radius by a factor drawn per case from [LOW, HIGH] (one number: "
                        "that factor), e.g. 1.0,1.5 for training sets that must cover larger oedema extents")

    def run(args: argparse.Namespace) -> int:
        from .errors import BratsConfigError
        from .synthetic import generate_dataset

        variants = None if args.variants is None else [v.strip() for v in args.variants.split(",") if v.strip()]
        scale = None
        if args.oedema_scale is not None:
            try:
                scale = [float(v) for v in args.oedema_scale.split(",")]
            except ValueError:
                raise BratsConfigError(f"--oedema-scale: expected LOW,HIGH numbers, "
                                       f"got {args.oedema_scale!r}") from None
        paths = generate_dataset(args.out, n_cases=args.n, seed=args.seed, workers=args.workers,
                                 start=args.start, followups=args.followups, randomise=args.randomise,
                                 variants=variants, oedema_scale=scale)
        print(f"wrote {len(paths)} case(s) to {args.out}")
        return 0

    p.set_defaults(func=run)


@_subcommand
def _add_preprocess(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("preprocess", help="mask, crop, normalise (and optionally downsample) cases into a "
                                          "per-case .npy cache; current cases are skipped")
    p.add_argument("--data", required=True, help="dataset folder in any layout brats_lib.io reads (BraTS "
                                                 "2018-2024 and the 2023+ cohorts, Decathlon Task01, nnU-Net raw)")
    p.add_argument("--out", required=True, help="cache folder (one sub-folder per case)")
    p.add_argument("--workers", type=int, default=None, help="parallel processes (default: all cores)")
    p.add_argument("--downsample", type=float, default=1, help="isotropic factor, e.g. 2 (default 1: full resolution)")
    p.add_argument("--dtype", choices=("float16", "float32"), default="float16", help="stored image dtype")
    p.add_argument("--margin", type=int, default=4, help="voxels around the brain bounding box (default 4)")
    p.add_argument("--force", action="store_true", help="rebuild every case, even current ones")

    def run(args: argparse.Namespace) -> int:
        from .preprocess import PreprocessConfig, preprocess_dataset

        config = PreprocessConfig(downsample=args.downsample, dtype=args.dtype, margin=args.margin)
        records = preprocess_dataset(args.data, args.out, config, workers=args.workers, force=args.force)
        built = sum(r["status"] == "built" for r in records)
        size = sum(r["bytes"] for r in records) / 2**20
        print(f"{built} case(s) built, {len(records) - built} current, {size:.1f} MiB in {args.out} "
              f"(config {config.hash()})")
        return 0

    p.set_defaults(func=run)


@_subcommand
def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model from a JSON config (the code the notebooks call)")
    p.add_argument("--config", required=True, help="JSON file of brats_lib.train.TrainConfig fields")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=JSON",
                   help="override fields, e.g. epochs=2 device=cpu model='{\"name\": \"unet3d\"}'")
    p.add_argument("--override", action="store_true",
                   help="resume a run even though the config differs from its config.json (logged)")

    def run(args: argparse.Namespace) -> int:
        from .train import run_from_args

        return run_from_args(args)

    p.set_defaults(func=run)


@_subcommand
def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="predict every case of a folder with one run (or an ensemble of runs) "
                                       "and write <case-id>.nii.gz label maps on the input grid")
    p.add_argument("--run", required=True, action="append", metavar="RUN",
                   help="run directory (config.json + checkpoint); repeat for an ensemble")
    p.add_argument("--in", dest="in_dir", required=True, metavar="DIR",
                   help="dataset folder of cases to predict, in any layout brats_lib.io reads (BraTS 2018-2024, "
                        "Decathlon Task01, nnU-Net raw); outputs are named after its case ids")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder for <case-id>.nii.gz")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1 …")
    p.add_argument("--no-tta", action="store_true", help="no mirroring test-time augmentation (8× faster)")
    p.add_argument("--checkpoint", default="best.pt", help="checkpoint file in each run (default best.pt)")
    p.add_argument("--overlap", type=float, default=0.5, help="sliding-window overlap (default 0.5)")
    p.add_argument("--batch-size", type=int, default=2, help="windows per forward pass (default 2)")
    p.add_argument("--no-postprocess", action="store_true", help="ignore the runs' postprocess.json")

    def run(args: argparse.Namespace) -> int:
        from .inference import predict_folder

        paths = predict_folder(args.run, args.in_dir, args.out, device=args.device, tta=not args.no_tta,
                               checkpoint=args.checkpoint, overlap=args.overlap, batch_size=args.batch_size,
                               postprocess=not args.no_postprocess)
        print(f"wrote {len(paths)} prediction(s) to {args.out}")
        return 0

    p.set_defaults(func=run)


@_subcommand
def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="BraTS 2024 lesion-wise Dice/HD95 of a prediction folder (official-identical)")
    p.add_argument("--pred", required=True, help="folder of <case-id>.nii.gz label maps")
    p.add_argument("--gt", required=True,
                   help="dataset in any layout brats_lib.io reads (case folders with -seg/_seg files, a Decathlon "
                        "or nnU-Net dataset or its labelsTr) or a flat folder of 2024-convention label maps")
    p.add_argument("--out", required=True, help="CSV: one row per case and region, with each case's seconds")
    p.add_argument("--lesions", metavar="FILE.csv", default=None,
                   help="also write the lesion table (one row per ground-truth lesion, the official columns)")
    p.add_argument("--pred-labels", choices=("2024", "legacy"), default="2024",
                   help="label convention of the predictions: 2024 (4 = resection cavity, default) or legacy "
                        "(2018-2021, 4 = enhancing tumour, converted)")
    p.add_argument("--workers", type=int, default=1, help="parallel processes over cases")

    def run(args: argparse.Namespace) -> int:
        import warnings

        from .metrics import evaluate_folders, summarise
        from .metrics.evaluate import LabelConventionWarning

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", LabelConventionWarning)
            table = evaluate_folders(args.pred, args.gt, args.out, workers=args.workers,
                                     lesions_csv=args.lesions, pred_labels=args.pred_labels)
        for warning in caught:
            if issubclass(warning.category, LabelConventionWarning):
                print(f"brats evaluate: warning: {warning.message}", file=sys.stderr)
            else:
                warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
        print(summarise(table).to_string())
        print(f"wrote {len(table)} rows to {args.out}" + (f" and the lesion table to {args.lesions}"
                                                          if args.lesions else ""))
        return 0

    p.set_defaults(func=run)


@_subcommand
def _add_sweep(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="execute a notebook once per parameter set of a YAML grid with papermill, "
                                     "each into OUT/<name>/; finished runs are skipped, unfinished ones resumed; "
                                     "OUT/sweep.csv sums them up")
    p.add_argument("--notebook", required=True,
                   help="notebook with a 'parameters' cell, e.g. notebooks/05_train_unet3d.ipynb")
    p.add_argument("--grid", required=True, help="YAML: a list of parameter mappings, or a mapping with 'grid' "
                                                 "(product), 'runs', 'fixed', 'evaluate' (see brats_lib/sweep.py)")
    p.add_argument("--out", required=True, help="sweep folder (one sub-folder per run, sweep.json, sweep.csv)")
    p.add_argument("--jobs", type=int, default=1, help="runs executed at once (default 1)")
    p.add_argument("--only", action="append", metavar="NAME", help="execute only this run (repeatable)")
    p.add_argument("--print-commands", action="store_true",
                   help="print one command per run instead of running (line i = SLURM array task i)")
    p.add_argument("--timeout", type=int, default=None, help="seconds a single notebook cell may run")

    def run(args: argparse.Namespace) -> int:
        from .sweep import commands, load_sweep, prepare_folder, run_sweep

        sweep = load_sweep(args.notebook, args.grid)
        if args.print_commands:
            prepare_folder(sweep, args.out, write=False)
            print("\n".join(commands(sweep, args.out)))
            return 0
        table = run_sweep(sweep, args.out, jobs=args.jobs, only=args.only, timeout=args.timeout,
                          log=lambda message: print(message, flush=True))
        failed = table.loc[table["status"] == "failed", "name"].tolist()
        counts = ", ".join(f"{n} {s}" for s, n in table["status"].value_counts().items())
        print(f"wrote {args.out}/sweep.csv: {len(table)} run(s), {counts}")
        if failed:
            print(f"brats sweep: {len(failed)} run(s) failed: {', '.join(failed)} "
                  f"(their executed notebooks show the failing cell)", file=sys.stderr)
            return 1
        return 0

    p.set_defaults(func=run)


@_subcommand
def _add_volumes(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("volumes", help="tumour burden: volume (mL) of WT, TC, NETC, SNFH, ET and RC of every label "
                                       "map in a folder, one CSV row per case and region")
    p.add_argument("--seg", required=True, help="dataset root (either layout; 2018-2021 labels converted) or a "
                                                "flat folder of 2024-convention label maps, as evaluate --gt")
    p.add_argument("--out", required=True, help="CSV with columns case, region, voxels, volume_ml")

    def run(args: argparse.Namespace) -> int:
        from .analysis.volumes import write_volume_table

        table = write_volume_table(args.seg, args.out, progress=sys.stderr.isatty())
        print(f"wrote {len(table)} rows ({table['case'].nunique()} case(s)) to {args.out}")
        return 0

    p.set_defaults(func=run)


@_subcommand
def _add_gan_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gan-train", help="train the tumour-inpainting GAN from a JSON config (brats_lib.gan.train."
                                         "GanConfig fields); resumes from the run's last.pt")
    p.add_argument("--config", required=True, help="JSON file of brats_lib.gan.train.GanConfig fields")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=JSON", help="override fields, e.g. epochs=2")
    p.add_argument("--override", action="store_true",
                   help="resume a run even though the config differs from its config.json (logged)")

    def run(args: argparse.Namespace) -> int:
        from .gan.train import run_from_args

        return run_from_args(args)

    p.set_defaults(func=run)


@_subcommand
def _add_gan_synth(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gan-synth", help="write N new cases (official 2024 layout): a labelled case with another "
                                         "case's tumour label inserted and inpainted by a GAN run")
    p.add_argument("--run", required=True, help="GAN run directory (of brats gan-train)")
    p.add_argument("--data", required=True, help="dataset folder with labelled cases (any layout brats_lib.io reads)")
    p.add_argument("--out", required=True, help="output folder for BraTS-GLI-<K+i>-000/ cases and provenance.csv")
    p.add_argument("--n", type=int, required=True, help="number of new cases")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    p.add_argument("--split", default=None, metavar="NAME",
                   help="use only this split (e.g. train) of the run's splits.json as sources and donors")
    p.add_argument("--start", type=int, default=90000, help="case number of the first new case (default 90000)")
    p.add_argument("--device", default="cpu", help="cpu (default), auto, cuda, cuda:1 …")
    p.add_argument("--method", choices=("gan", "copy_paste"), default="gan",
                   help="fill the inserted region with the GAN (default) or the donor's own voxels (the baseline)")
    p.add_argument("--elastic-sigma", type=float, default=2.0, metavar="VOXELS",
                   help="scale of the inserted label's random elastic deformation (default 2 voxels; 0: none)")

    def run(args: argparse.Namespace) -> int:
        from .gan.synth import split_case_ids, synthesise

        ids = split_case_ids(args.run, args.split) if args.split else None
        records = synthesise(args.run, args.data, args.out, args.n, seed=args.seed, case_ids=ids, start=args.start,
                             device=args.device, progress=sys.stderr.isatty(), method=args.method,
                             elastic_sigma=args.elastic_sigma)
        print(f"wrote {len(records)} case(s) and provenance.csv to {args.out}")
        return 0

    p.set_defaults(func=run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="brats", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _REGISTRY:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BratsUserError as exc:
        print(f"brats {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
