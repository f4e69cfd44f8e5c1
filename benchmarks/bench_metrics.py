"""Where `brats evaluate`'s time goes per case: loading (gzip, checks, casts) and scoring, one thread.

Usage: ``python benchmarks/bench_metrics.py [--reference DIR] [--repeat N] [--profile NAME]``

For each reference pair of ``../shared/reference/brats2024-metrics/pairs`` it prints the best-of-N CPU
seconds of the two stages of :func:`brats_lib.metrics.evaluate.score_case` — :func:`load_pair` (read both
NIfTI files, validate labels, check the grid) and :func:`lesion_wise_results` (the scorer) — and their sum.
No peer here: the ratio against the official code, end to end and in the same run, is
``bench_metrics_official.py``. ``--profile NAME`` prints the cProfile of one case's ``score_case`` instead.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from brats_lib.io import nifti_stem  # noqa: E402
from brats_lib.metrics.evaluate import CaseJob, load_pair, score_case  # noqa: E402
from brats_lib.metrics.lesionwise import lesion_wise_results  # noqa: E402

DEFAULT_REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "brats2024-metrics"


def job_of(reference: Path, name: str) -> CaseJob:
    return CaseJob(name, reference / "pairs" / "pred" / f"{name}.nii.gz",
                   reference / "pairs" / "gt" / f"{name}.nii.gz", "2024")


def best_cpu(function, repeat: int):
    """(best CPU seconds over ``repeat`` calls, last result)."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.process_time()
        result = function()
        best = min(best, time.process_time() - start)
    return best, result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", metavar="NAME", help="cProfile one case (CPU time) instead")
    args = parser.parse_args(argv)
    names = sorted(s for p in (args.reference / "pairs" / "pred").glob("*") if (s := nifti_stem(p.name)))
    if not names:
        print(f"no reference pairs under {args.reference}", file=sys.stderr)
        return 1
    if args.profile:
        import cProfile
        import pstats

        job = job_of(args.reference, args.profile)
        score_case(job)
        profiler = cProfile.Profile(time.process_time)
        profiler.runcall(score_case, job)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        return 0
    print(f"{'case':<16}{'shape':>14}{'load cpu s':>12}{'score cpu s':>13}{'total':>8}")
    totals = []
    for name in names:
        job = job_of(args.reference, name)
        load, (pred, gt, spacing, _) = best_cpu(lambda: load_pair(job), args.repeat)
        score, _ = best_cpu(lambda: lesion_wise_results(pred, gt, spacing), args.repeat)
        totals.append(load + score)
        shape = "×".join(str(s) for s in pred.shape)
        print(f"{name:<16}{shape:>14}{load:12.3f}{score:13.3f}{totals[-1]:8.3f}")
    print(f"total CPU s per case: min {min(totals):.3f}, median {np.median(totals):.3f}, "
          f"max {max(totals):.3f} over {len(totals)} cases")
    return 0


if __name__ == "__main__":
    sys.exit(main())
