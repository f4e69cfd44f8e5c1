"""Time the scoring inside the post-processing search: the Dice-only lesion-wise scorer against the full official
table, on the same candidate maps, one core, same run.

Usage: ``OMP_NUM_THREADS=1 taskset -c 0 python benchmarks/bench_postprocess_search.py [--pred DIR] [--data DIR]
[--splits FILE] [--split NAME] [--repeat N]``; the defaults are what notebook 08 tunes in the demo profile
(the 3D U-Net's raw predictions of the validation split, ``runs/demo/predictions/unet3d-val``, written by
``make demo``).

For every case the candidate maps are those the search of :func:`brats_lib.postprocess_tuning.tune_postprocessing`
scores first: the raw prediction and each region of :data:`~brats_lib.postprocess_tuning.DEFAULT_CANDIDATES`
at each of its thresholds (:func:`brats_lib.inference.remove_small_components`), duplicates dropped.

* **ours**: :func:`brats_lib.metrics.lesion_wise_dice` (what the search calls);
* **peer**: :func:`brats_lib.metrics.lesion_wise_results`, the official table from which the search used to read
  the ``LesionWise_Score_Dice`` column (same lesion maps and matching, plus every HD95, sensitivity and
  specificity).

Both run on the same maps in the same process; the values are checked equal (``==``) before any time is
reported. It prints, per case, the median CPU seconds (``time.process_time``) of one map's scoring over all the
case's candidate maps and ``--repeat`` rounds, and the ratio peer / ours; then the minimum and the median of the
per-case ratios.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from brats_lib.analysis.runs import split_cases  # noqa: E402
from brats_lib.data import load_splits  # noqa: E402
from brats_lib.inference import remove_small_components  # noqa: E402
from brats_lib.io import load_label  # noqa: E402
from brats_lib.metrics import lesion_wise_dice, lesion_wise_results  # noqa: E402
from brats_lib.metrics.evaluate import load_prediction  # noqa: E402
from brats_lib.postprocess_tuning import DEFAULT_CANDIDATES  # noqa: E402


def candidate_maps(pred):
    """The raw map and each single-region threshold of the default grid, without duplicates."""
    maps, seen = [], set()
    for region, values in [("", [0])] + list(DEFAULT_CANDIDATES.items()):
        for value in values:
            label = remove_small_components(pred, {region: value}) if region and value else pred
            digest = hashlib.blake2b(label.tobytes(), digest_size=16).digest()
            if digest not in seen:
                seen.add(digest)
                maps.append(label)
    return maps


def cpu_seconds(function, *args):
    start = time.process_time()
    value = function(*args)
    return time.process_time() - start, value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pred", default="runs/demo/predictions/unet3d-val")
    parser.add_argument("--data", default="data/synthetic")
    parser.add_argument("--splits", default="data/cache/demo/splits.json")
    parser.add_argument("--split", default="val")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args(argv)
    case_ids = load_splits(Path(args.splits))[args.split]
    print(f"{len(case_ids)} {args.split} case(s) of {args.splits}; predictions {args.pred}; "
          f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}, {args.repeat} round(s)")
    print(f"{'case':<22} {'maps':>4} {'peer s':>8} {'ours s':>8} {'ratio':>6}")
    ratios = []
    for case in split_cases(Path(args.data), case_ids):
        pred, spacing = load_prediction(Path(args.pred) / f"{case.case_id}.nii.gz")
        gt = load_label(case.seg_path, case.label_convention)
        peer, ours = [], []
        for label in candidate_maps(pred):
            for _ in range(args.repeat):
                t_peer, (table, _) = cpu_seconds(lesion_wise_results, label, gt, spacing)
                t_ours, dice = cpu_seconds(lesion_wise_dice, label, gt, spacing)
                expected = dict(zip(table["Labels"], table["LesionWise_Score_Dice"].astype(float)))
                if dice != expected:
                    print(f"{case.case_id}: the two scorers disagree: {dice} != {expected}", file=sys.stderr)
                    return 1
                peer.append(t_peer)
                ours.append(t_ours)
        ratio = statistics.median(peer) / statistics.median(ours)
        ratios.append(ratio)
        print(f"{case.case_id:<22} {len(peer) // args.repeat:>4} {statistics.median(peer):>8.3f} "
              f"{statistics.median(ours):>8.3f} {ratio:>5.2f}x")
    print(f"ratio peer / ours over {len(ratios)} case(s): min {min(ratios):.2f}x, median "
          f"{statistics.median(ratios):.2f}x (values identical on every map)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
