"""Peak memory of a training-style patch loop over 10 vs 100 cached cases (the goal: flat).

Writes tiny synthetic cached cases (64³ by default) into a temporary folder, then runs the same loop
(``PatchDataset`` + ``make_loader``, a fixed number of batches) once per case count, each in a fresh
subprocess, and prints the peak resident set size (``ru_maxrss``) of the main process and of its loader
workers, and the 100/10 ratio.

Usage::

    .venv/bin/python benchmarks/bench_data_memory.py [--size 64] [--patch 32] [--batches 100] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def write_cases(cache: Path, n: int, size: int) -> list[str]:
    """Write ``n`` cached cases of ``size``³ voxels (random brain ellipsoid + tumour sphere); return their ids."""
    import nibabel as nib

    from brats_lib import preprocess as pp
    from brats_lib.io import MODALITIES, Case, Geometry, LoadedCase

    shape = (size,) * 3
    grid = np.stack(np.meshgrid(*(np.arange(size),) * 3, indexing="ij")).astype(np.float32)
    r = np.sqrt(((grid - size / 2) ** 2).sum(0))
    brain = r <= size * 0.45
    config = pp.PreprocessConfig(margin=2)
    ids = []
    for i in range(n):
        rng = np.random.default_rng(i)
        image = np.zeros((4,) + shape, np.float32)
        image[:, brain] = rng.random((4, int(brain.sum())), dtype=np.float32) * 100 + 1
        label = np.zeros(shape, np.uint8)
        t = np.sqrt(((grid - (size / 2 + rng.integers(-size // 6, size // 6, 3))[:, None, None, None]) ** 2).sum(0))
        label[t <= size * 0.15] = 2
        label[t <= size * 0.08] = 3
        label[t <= size * 0.04] = 1
        cid = f"BraTS-GLI-{i:05d}-000"
        case = Case(cid, f"{i:05d}", "000", "2024", {m: Path(f"/synthetic/{cid}-{m}.nii.gz") for m in MODALITIES}, None)
        loaded = LoadedCase(case, image, label, Geometry(np.eye(4), nib.Nifti1Header(), shape))
        pp.write_cached_case(cache, pp.preprocess_case(loaded, config), config)
        ids.append(cid)
    return ids


def run_loop(cache: Path, n: int, patch: int, batches: int, workers: int) -> dict:
    """The measured loop (in this process): ``batches`` batches of 2 patches from the first ``n`` cases."""
    import torch

    from brats_lib.data import PatchDataset, make_loader

    torch.set_num_threads(1)
    ids = [f"BraTS-GLI-{i:05d}-000" for i in range(n)]
    ds = PatchDataset(cache, ids, patch, samples_per_epoch=2 * batches, seed=0)
    start = time.perf_counter()
    total = 0.0
    for image, label in make_loader(ds, batch_size=2, workers=workers):
        total += float(image.mean()) + float(label.float().mean())  # touch every batch
    seconds = time.perf_counter() - start
    kib = 1  # ru_maxrss is in KiB on Linux
    return {
        "cases": n,
        "peak_rss_main_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * kib / 1024,
        "peak_rss_worker_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * kib / 1024,
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=64, help="cached volume side (voxels)")
    parser.add_argument("--patch", type=int, default=32, help="patch side (voxels)")
    parser.add_argument("--batches", type=int, default=100, help="batches of 2 patches per run")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    parser.add_argument("--counts", type=int, nargs="+", default=[10, 100], help="case counts to compare")
    parser.add_argument("--_child", nargs=2, metavar=("CACHE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child:
        print(json.dumps(run_loop(Path(args._child[0]), int(args._child[1]), args.patch, args.batches,
                                  args.workers)))
        return
    with tempfile.TemporaryDirectory(prefix="bench_data_memory_") as tmp:
        t0 = time.perf_counter()
        write_cases(Path(tmp), max(args.counts), args.size)
        size_mib = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file()) / 2**20
        print(f"wrote {max(args.counts)} cached cases of {args.size}³ ({size_mib:.1f} MiB on disk) "
              f"in {time.perf_counter() - t0:.1f} s; patch {args.patch}³, {args.batches} batches of 2, "
              f"{args.workers} worker(s)")
        results = []
        for n in args.counts:
            cmd = [sys.executable, __file__, "--patch", str(args.patch), "--batches", str(args.batches),
                   "--workers", str(args.workers), "--_child", tmp, str(n)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            results.append(json.loads(out.strip().splitlines()[-1]))
            r = results[-1]
            print(f"{r['cases']:>5} cases: peak RSS main {r['peak_rss_main_mib']:7.1f} MiB, "
                  f"largest worker {r['peak_rss_worker_mib']:7.1f} MiB, loop {r['seconds']:.1f} s")
        first, last = results[0], results[-1]
        print(f"ratio {last['cases']}/{first['cases']} cases: main "
              f"{last['peak_rss_main_mib'] / first['peak_rss_main_mib']:.2f}, worker "
              f"{last['peak_rss_worker_mib'] / max(first['peak_rss_worker_mib'], 1e-9):.2f} (1.00 = flat)")


if __name__ == "__main__":
    main()
