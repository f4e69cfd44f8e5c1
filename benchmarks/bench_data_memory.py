"""Peak memory of a training-style patch loop over 10 vs 100 cached cases (the goal: flat).

Writes tiny synthetic cached cases (64³ by default) into a temporary folder, then runs the same loop
(``PatchDataset`` + ``make_loader``, a fixed number of batches) once per case count, each in a fresh
subprocess, and prints the peak memory of the whole loader: the main process plus all its worker
processes, sampled every 20 ms with psutil as the sum of their proportional set sizes (PSS: pages shared
between the forked workers are counted once) and of their resident set sizes (RSS: shared pages counted in
every process, an upper bound); also the main process's own peak RSS, and the ratio between case counts.

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
import threading
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


class TreeMemory:
    """Peak total PSS and RSS of this process and all its descendants, sampled in a thread."""

    def __init__(self, interval: float = 0.02):
        import psutil

        self.root, self.interval = psutil.Process(), interval
        self.peak_pss = self.peak_rss = 0
        self.max_workers = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        import psutil

        pss = rss = 0
        children = self.root.children(recursive=True)
        for proc in [self.root, *children]:
            try:
                info = proc.memory_full_info()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            pss, rss = pss + info.pss, rss + info.rss
        self.peak_pss, self.peak_rss = max(self.peak_pss, pss), max(self.peak_rss, rss)
        self.max_workers = max(self.max_workers, len(children))

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.sample()


def run_loop(cache: Path, n: int, patch: int, batches: int, workers: int) -> dict:
    """The measured loop (in this process): ``batches`` batches of 2 patches from the first ``n`` cases."""
    import torch

    from brats_lib.data import PatchDataset, make_loader

    torch.set_num_threads(1)
    ids = [f"BraTS-GLI-{i:05d}-000" for i in range(n)]
    ds = PatchDataset(cache, ids, patch, samples_per_epoch=2 * batches, seed=0)
    start = time.perf_counter()
    total = 0.0
    with TreeMemory() as tree:
        for image, label in make_loader(ds, batch_size=2, workers=workers):
            total += float(image.mean()) + float(label.float().mean())  # touch every batch
    seconds = time.perf_counter() - start
    kib = 1  # ru_maxrss is in KiB on Linux
    return {
        "cases": n,
        "peak_pss_total_mib": tree.peak_pss / 2**20,
        "peak_rss_total_mib": tree.peak_rss / 2**20,
        "workers_seen": tree.max_workers,
        "peak_rss_main_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * kib / 1024,
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
            print(f"{r['cases']:>5} cases: peak total (main + {r['workers_seen']} worker(s)) PSS "
                  f"{r['peak_pss_total_mib']:7.1f} MiB, RSS {r['peak_rss_total_mib']:7.1f} MiB; main alone RSS "
                  f"{r['peak_rss_main_mib']:7.1f} MiB; loop {r['seconds']:.1f} s")
        first, last = results[0], results[-1]
        print(f"ratio {last['cases']}/{first['cases']} cases: total PSS "
              f"{last['peak_pss_total_mib'] / first['peak_pss_total_mib']:.2f}, total RSS "
              f"{last['peak_rss_total_mib'] / first['peak_rss_total_mib']:.2f}, main RSS "
              f"{last['peak_rss_main_mib'] / first['peak_rss_main_mib']:.2f} (1.00 = flat)")


if __name__ == "__main__":
    main()
