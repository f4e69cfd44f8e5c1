"""The ``brats`` command line: thin wrappers over the library, no logic of its own.

Subcommands::

    brats synth      --out DIR --n N --seed S [--workers W]
    brats preprocess --data DIR --out CACHE_DIR [--workers N]
    brats train      --config FILE [--set KEY=JSON ...]
    brats evaluate   --pred DIR --gt DIR --out FILE.csv [--workers N]

Each subcommand registers itself with a ``_add_<name>`` function below; its handler imports the library
module lazily so that ``brats --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from .io import BratsInputError

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

    def run(args: argparse.Namespace) -> int:
        from .synthetic import generate_dataset

        paths = generate_dataset(args.out, n_cases=args.n, seed=args.seed, workers=args.workers,
                                 start=args.start)
        print(f"wrote {len(paths)} case(s) to {args.out}")
        return 0

    p.set_defaults(func=run)


@_subcommand
def _add_preprocess(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("preprocess", help="mask, crop, normalise (and optionally downsample) cases into a "
                                          "per-case .npy cache; current cases are skipped")
    p.add_argument("--data", required=True, help="dataset folder (cases in the 2024 or 2021 layout)")
    p.add_argument("--out", required=True, help="cache folder (one sub-folder per case)")
    p.add_argument("--workers", type=int, default=None, help="parallel processes (default: all cores)")
    p.add_argument("--downsample", type=float, default=1, help="isotropic factor, e.g. 2 (default 1: full resolution)")
    p.add_argument("--dtype", choices=("float16", "float32"), default="float16", help="stored image dtype")
    p.add_argument("--margin", type=int, default=4, help="voxels around the brain bounding box (default 4)")
    p.add_argument("--force", action="store_true", help="rebuild every case, even current ones")

    def run(args: argparse.Namespace) -> int:
        from .preprocess import PreprocessConfig, preprocess_dataset

        try:
            config = PreprocessConfig(downsample=args.downsample, dtype=args.dtype, margin=args.margin)
        except ValueError as exc:
            raise BratsInputError(str(exc)) from exc
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
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=JSON", help="override fields, e.g. epochs=2")

    def run(args: argparse.Namespace) -> int:
        from .train import main as train_main

        return train_main(["--config", args.config, "--set", *args.set])

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
    except BratsInputError as exc:
        print(f"brats {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
