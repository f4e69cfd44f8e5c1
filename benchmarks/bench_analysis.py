"""Time every analysis of one full 182×218×182 case (all six regions) on one core, against a peer doing the same
work with standard packages on the whole volume.

Usage: ``OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/bench_analysis.py [--data DIR] [--repeat N]
[--peer-repeat M]`` (the peer takes about 15 CPU s per case, so it runs ``M`` = 2 times by default).

Cases: the real BraTS-GLI sample cases (``../shared/data/real/brats-gli``, 182×218×182, 1 mm) with a
deterministic stand-in prediction per case (the ground truth shifted by 2 voxels, a slab of ET called NETC, a
spurious 6³ ET blob), so that every kind of error occurs. Arrays are in memory (loading is not timed).

* **ours**: :func:`brats_lib.analysis.analyse_pair` with projections (error table and 5×5 confusion, signed
  boundary distances with percentiles, bias and surface Dice at 1 and 2 mm, histograms, lesion table with the
  official lesion definition, FN/FP projections in three planes) plus :meth:`ErrorFrequency.add` (3 regions).
* **peer** (the same outputs, written the direct way): full-volume numpy masks for TP/FP/FN, volumes and the
  confusion matrix; DeepMind's ``surface-distance`` (``compute_surface_distances`` and
  ``compute_surface_dice_at_tolerance`` at 1 and 2 mm) per region, with the sign looked up in the true mask;
  ``scipy.ndimage.label`` components per region and an overlap test for detection; full-volume projections and
  frequency counts.

It prints min and median **CPU** seconds (``time.process_time`` of this single-threaded process: the work
done on one core, which a shared machine's load inflates far less than wall time) over ``--repeat`` runs per
case, the median wall seconds, the ratio peer / ours of the median CPU seconds (> 1: ours faster), and whether
ours meets the 2 s budget.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import surface_distance  # noqa: E402
from scipy import ndimage  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from brats_lib import analysis  # noqa: E402
from brats_lib.io import discover_cases  # noqa: E402
from brats_lib.labels import REGION_ORDER, REGIONS  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "brats-gli"
BUDGET_S = 2.0


def stand_in_prediction(gt: np.ndarray) -> np.ndarray:
    """The GT shifted by 2 voxels along x, ET in one slab called NETC, and a spurious ET blob."""
    pred = np.roll(gt, 2, axis=0)
    z = np.flatnonzero(np.any(pred == 3, axis=(0, 1)))
    if z.size:
        slab = pred[:, :, z[len(z) // 2]: z[len(z) // 2] + 4]
        slab[slab == 3] = 1
    pred[30:36, 100:106, 80:86] = 3
    return pred


def ours(pair: analysis.Pair, frequency: analysis.ErrorFrequency) -> None:
    analysis.analyse_pair(pair, projections=True)
    frequency.add_pair(pair)


def peer(pair: analysis.Pair, counts: dict) -> None:
    pred, gt, spacing = pair.pred, pair.gt, pair.spacing
    np.bincount(gt.astype(np.intp).ravel() * 5 + pred.ravel(), minlength=25)  # 5×5 confusion, full volume
    for region in REGION_ORDER:
        p, g = np.isin(pred, REGIONS[region]), np.isin(gt, REGIONS[region])
        tp, fp, fn = p & g, p & ~g, ~p & g
        [int(np.count_nonzero(m)) for m in (tp, fp, fn, p, g)]
        sd = surface_distance.compute_surface_distances(g, p, spacing)
        if sd["distances_pred_to_gt"].size:
            surface_distance.compute_surface_dice_at_tolerance(sd, 1.0)
            surface_distance.compute_surface_dice_at_tolerance(sd, 2.0)
            ndimage.distance_transform_edt(~g, sampling=spacing)  # the sign: inside or outside the truth
        gt_lesions, n_gt = ndimage.label(g, np.ones((3, 3, 3)))
        pred_lesions, n_pred = ndimage.label(p, np.ones((3, 3, 3)))
        hit = np.unique(gt_lesions[p & (gt_lesions > 0)])
        ndimage.center_of_mass(g, gt_lesions, range(1, n_gt + 1))
        ndimage.center_of_mass(p, pred_lesions, range(1, n_pred + 1))
        del hit
        for axis in range(3):
            fn.any(axis=axis), fp.any(axis=axis)
        if region in counts:
            counts[region][0] += fn
            counts[region][1] += fp


def timed(fn, repeat: int) -> tuple[list[float], list[float]]:
    """(CPU seconds, wall seconds) of each of ``repeat`` calls."""
    cpu, wall = [], []
    for _ in range(repeat):
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        fn()
        cpu.append(time.process_time() - start_cpu)
        wall.append(time.perf_counter() - start_wall)
    return cpu, wall


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--peer-repeat", type=int, default=2)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    cases = [c for c in discover_cases(args.data, require_images=False) if c.seg_path is not None]
    if not cases:
        print(f"no labelled case under {args.data}", file=sys.stderr)
        return 1
    print(f"threads: OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}, CPUs allowed: {len(os.sched_getaffinity(0))}")
    print(f"{'case':<22} {'shape':<14} {'ours CPU min/med s':>19} {'wall med':>8} {'peer CPU min/med s':>19} "
          f"{'wall med':>8} {'peer/ours':>9}  budget (CPU)")
    all_ours, ratios = [], []
    for case in cases:
        gt, affine = analysis.read_label_map(case.seg_path, case.label_convention)
        pair = analysis.Pair(case.case_id, stand_in_prediction(gt), gt, affine)
        frequency = analysis.ErrorFrequency(("WT", "TC", "ET"), gt.shape, affine)
        counts = {r: [np.zeros(gt.shape, np.uint16), np.zeros(gt.shape, np.uint16)] for r in ("WT", "TC", "ET")}
        ours(pair, frequency)  # warm-up (lookup tables, imports)
        t_ours, w_ours = timed(lambda: ours(pair, frequency), args.repeat)
        t_peer, w_peer = timed(lambda: peer(pair, counts), args.peer_repeat)
        med_ours, med_peer = statistics.median(t_ours), statistics.median(t_peer)
        ratio = med_peer / med_ours
        all_ours.append(med_ours)
        ratios.append(ratio)
        ok = "ok" if med_ours <= BUDGET_S else "OVER"
        print(f"{case.case_id:<22} {'×'.join(map(str, gt.shape)):<14} {min(t_ours):>9.2f} / {med_ours:<7.2f} "
              f"{statistics.median(w_ours):>8.2f} {min(t_peer):>9.2f} / {med_peer:<7.2f} "
              f"{statistics.median(w_peer):>8.2f} {ratio:>8.1f}×  {ok} (≤ {BUDGET_S:g} s)")
    print(f"median over cases: ours {statistics.median(all_ours):.2f} CPU s per case, peer/ours "
          f"{statistics.median(ratios):.1f}×; load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
