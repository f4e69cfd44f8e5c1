"""Time the lesion-wise metrics on the reference pairs against the official scorer's recorded times.

Usage: ``python benchmarks/bench_metrics.py [--reference DIR] [--repeat N]``

For each pair in ``<reference>/pairs`` it prints the best-of-N wall and CPU seconds of
:func:`brats_lib.metrics.lesion_wise_results` (arrays already in memory; one thread), the official code's
seconds (``official/NAME.seconds``) and the speed-up, then the mean speed-up. CPU time is the fairer
number on a shared machine; the speed-up uses it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from brats_lib.metrics.lesionwise import lesion_wise_results  # noqa: E402

DEFAULT_REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "brats2024-metrics"


def load_pair(reference: Path, name: str):
    """(pred uint8, gt uint8, spacing float32 column norms of the prediction's affine)."""
    pred_img = nib.load(reference / "pairs" / "pred" / f"{name}.nii.gz")
    gt_img = nib.load(reference / "pairs" / "gt" / f"{name}.nii.gz")
    pred = np.asanyarray(pred_img.dataobj).astype(np.uint8)
    gt = np.asanyarray(gt_img.dataobj).astype(np.uint8)
    spacing = np.linalg.norm(pred_img.affine[:3, :3], axis=0).astype(np.float32)
    return pred, gt, tuple(float(s) for s in spacing)


def time_case(pred, gt, spacing, repeat: int) -> tuple[float, float]:
    """Best-of-``repeat`` (wall, CPU) seconds of one case."""
    best_wall = best_cpu = float("inf")
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        lesion_wise_results(pred, gt, spacing)
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return best_wall, best_cpu


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    names = sorted(p.name[: -len(".nii.gz")] for p in (args.reference / "pairs" / "pred").glob("*.nii.gz"))
    if not names:
        print(f"no reference pairs under {args.reference}", file=sys.stderr)
        return 1
    print(f"{'case':<16}{'shape':>16}{'wall s':>9}{'cpu s':>8}{'official s':>12}{'speed-up':>10}")
    ratios = []
    for name in names:
        pred, gt, spacing = load_pair(args.reference, name)
        wall, cpu = time_case(pred, gt, spacing, args.repeat)
        official = float((args.reference / "official" / f"{name}.seconds").read_text())
        ratios.append(official / cpu)
        shape = "×".join(str(s) for s in pred.shape)
        print(f"{name:<16}{shape:>16}{wall:9.3f}{cpu:8.3f}{official:12.2f}{ratios[-1]:9.0f}×")
    low, high = np.min(ratios), np.max(ratios)
    print(f"mean speed-up {np.mean(ratios):.0f}× (min {low:.0f}×, max {high:.0f}×) over {len(ratios)} cases")
    return 0


if __name__ == "__main__":
    sys.exit(main())
