"""Sliding-window inference: ours against MONAI's ``sliding_window_inference``, and seconds per case.

1. Same network (3D U-Net), patch, overlap 0.5, batch of windows and Gaussian blending (σ = patch/8) for
   both; MONAI is given a predictor returning softmax probabilities, so both blend the same quantity.
   Peak memory: each method runs once in its own subprocess, measured alone: on CUDA
   ``torch.cuda.max_memory_allocated`` above what the model and input hold; on CPU the growth of
   ``ru_maxrss`` from after building model and input to after the run. Time: both methods alternate in
   one process after a warm-up (min and median of ``--repeats`` runs). Reports seconds, peak memory,
   the ours/MONAI ratios and the max |difference| of the two probability volumes (they differ only where
   the windows disagree: MONAI places windows at fixed steps with the last one pushed back, we spread
   them evenly; with placements that coincide the difference is float rounding).
2. Seconds per case of each model (fcnn, unet3d, resunet3d) with and without mirroring TTA (8 flips).

On CUDA the forward runs under bf16 autocast (both methods), with cudnn.benchmark; per-model timings use
``channels_last_3d``. On CPU it runs in float32.

    python benchmarks/bench_inference.py --device cpu                      # 4×96×112×96, small U-Net
    python benchmarks/bench_inference.py --device cuda                     # 4×160×192×160, features 32..320
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from brats_lib.inference import predict_probabilities, sliding_window, window_starts
from brats_lib.models import build_model, count_parameters, probabilities


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _make(args, name: str = "unet3d"):
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = build_model({"name": name, "features_per_stage": _ints(args.features)}).to(device).eval()
    torch.manual_seed(1)
    image = torch.randn(4, *_ints(args.shape), device=device)
    return model, image, device


def _run_method(method: str, model, image, device, args) -> torch.Tensor:
    patch = _ints(args.patch) * (3 if len(_ints(args.patch)) == 1 else 1)
    cuda = device.type == "cuda"
    if method == "ours":
        return sliding_window(model, image, patch, overlap=args.overlap, batch_size=args.batch_size,
                              mode="softmax", device=device, amp=cuda)
    from monai.inferers import sliding_window_inference

    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
        out = sliding_window_inference(image[None], patch, args.batch_size,
                                       lambda w: probabilities(model(w), "softmax"), overlap=args.overlap,
                                       mode="gaussian", sigma_scale=0.125)
    return out[0].float()


def worker(args) -> None:
    """Run one method once in this process; print a JSON line with its peak memory (bytes)."""
    torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = True
    model, image, device = _make(args)
    if device.type == "cuda":  # warm-up (cudnn autotuning, lazy CUDA init) outside the measurement
        _run_method(args.worker, model, image, device, args)
        _sync(device)
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        out = _run_method(args.worker, model, image, device, args)
        _sync(device)
        peak = torch.cuda.max_memory_allocated() - base
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        out = _run_method(args.worker, model, image, device, args)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    np.save(args.save, out.cpu().numpy())
    print(json.dumps({"peak_bytes": int(peak)}))


def time_methods(args) -> dict[str, list[float]]:
    """Seconds of each method, runs alternating (ours, MONAI, ours, …) in this process, so that a noisy
    shared machine slows both alike; one untimed warm-up run each first."""
    torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = True
    model, image, device = _make(args)
    times: dict[str, list[float]] = {"ours": [], "monai": []}
    for run in range(args.repeats + 1):
        for method in times:
            _sync(device)
            start = time.perf_counter()
            out = _run_method(method, model, image, device, args)
            _sync(device)
            if run:
                times[method].append(time.perf_counter() - start)
            del out
    return times


def _same_placement(args) -> bool:
    """Whether our windows and MONAI's start at the same voxels (MONAI's rule: step int(p·(1 − overlap)),
    the last window moved back to end at the border)."""
    shape, patch = _ints(args.shape), _ints(args.patch) * (3 if len(_ints(args.patch)) == 1 else 1)
    for size, p in zip(shape, patch):
        step = p if size == p else max(int(p * (1 - args.overlap)), 1)
        n = next(i for i in range(size) if i * step + p >= size) + 1
        theirs = [min(i * step, size - p) for i in range(n)]
        if theirs != window_starts(size, p, args.overlap):
            return False
    return True


def compare_with_monai(args) -> None:
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for method in ("ours", "monai"):
            save = str(Path(tmp) / f"{method}.npy")
            cmd = [sys.executable, __file__, "--worker", method, "--save", save] + _passthrough(args)
            proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
            if proc.returncode:
                sys.stderr.write(proc.stderr)
                raise SystemExit(f"{method} worker failed")
            results[method] = json.loads(proc.stdout.strip().splitlines()[-1])
            results[method]["probs"] = np.load(save)
    times = time_methods(args)
    for method in results:
        results[method]["seconds"] = min(times[method])
        results[method]["median"] = statistics.median(times[method])
    ours, monai = results["ours"], results["monai"]
    diff = np.abs(ours["probs"] - monai["probs"])
    cuda = args.device.startswith("cuda")
    unit, scale = ("GiB", 2**30) if cuda else ("MiB", 2**20)
    print(f"{'method':<8} {'s/case min':>10} {'median':>8} {'peak ' + unit:>10}   ({args.repeats} alternating timed "
          f"runs; peak {'above model+input' if cuda else '= ru_maxrss growth'}, one subprocess each)")
    for name, r in (("ours", ours), ("monai", monai)):
        print(f"{name:<8} {r['seconds']:10.3f} {r['median']:8.3f} {r['peak_bytes'] / scale:10.2f}")
    print(f"ratio ours/MONAI: time {ours['seconds'] / monai['seconds']:.3f} (min), "
          f"{ours['median'] / monai['median']:.3f} (median); "
          f"peak memory {ours['peak_bytes'] / max(monai['peak_bytes'], 1):.3f}")
    same = _same_placement(args)
    print(f"window placement {'identical' if same else 'different'} (ours: evenly spread; MONAI: fixed step, "
          f"last window pushed back){'' if same else ' - differences come from windows that disagree'}")
    agree_labels = float((ours["probs"].argmax(0) == monai["probs"].argmax(0)).mean())
    print(f"agreement: max |Δp| {diff.max():.3g}, mean |Δp| {diff.mean():.3g}, same argmax label in "
          f"{100 * agree_labels:.3f}% of voxels")


def per_model_timings(args) -> None:
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = True
    patch = _ints(args.patch) * (3 if len(_ints(args.patch)) == 1 else 1)
    print(f"\nseconds per case ({args.shape.replace(',', '×')} voxels, patch {patch}, overlap {args.overlap}, "
          f"batch {args.batch_size}{', bf16 + channels_last_3d' if cuda else ', float32'})")
    print(f"{'model':<10} {'params(M)':>9} {'no TTA':>8} {'TTA ×8':>8}")
    for name in args.models.split(","):
        model, image, _ = _make(args, name)
        row = []
        for axes in (None, (0, 1, 2)):
            if cuda:  # warm-up
                predict_probabilities(model, image, patch, tta_axes=None, overlap=args.overlap,
                                      batch_size=args.batch_size, device=device, channels_last=True)
            _sync(device)
            start = time.perf_counter()
            predict_probabilities(model, image, patch, tta_axes=axes, overlap=args.overlap,
                                  batch_size=args.batch_size, device=device, channels_last=cuda)
            _sync(device)
            row.append(time.perf_counter() - start)
        print(f"{name:<10} {count_parameters(model) / 1e6:9.2f} {row[0]:8.2f} {row[1]:8.2f}")
        del model, image
        if cuda:
            torch.cuda.empty_cache()


def _passthrough(args) -> list[str]:
    return ["--device", args.device, "--shape", args.shape, "--patch", args.patch, "--features", args.features,
            "--batch-size", str(args.batch_size), "--overlap", str(args.overlap), "--repeats", str(args.repeats),
            "--threads", str(args.threads)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--shape", default=None, help="X,Y,Z of the preprocessed volume "
                                                       "(default 96,112,96 on CPU, 160,192,160 on CUDA)")
    parser.add_argument("--patch", default=None, help="window edge(s) (default 64 on CPU, 128 on CUDA)")
    parser.add_argument("--features", default=None, help="features per stage (default 8,16,32,64 on CPU, "
                                                         "32,64,128,256,320 on CUDA)")
    parser.add_argument("--batch-size", type=int, default=2, help="windows per forward pass")
    parser.add_argument("--overlap", type=float, default=0.5)
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per method (default 3 CPU, 5 CUDA)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    parser.add_argument("--models", default="fcnn,unet3d,resunet3d", help="models timed per case ('' for none)")
    parser.add_argument("--no-monai", action="store_true", help="skip the comparison with MONAI")
    parser.add_argument("--worker", choices=("ours", "monai"), help=argparse.SUPPRESS)
    parser.add_argument("--save", help=argparse.SUPPRESS)
    args = parser.parse_args()
    cuda = args.device.startswith("cuda")
    args.shape = args.shape or ("160,192,160" if cuda else "96,112,96")
    args.patch = args.patch or ("128" if cuda else "64")
    args.features = args.features or ("32,64,128,256,320" if cuda else "8,16,32,64")
    args.repeats = args.repeats or (5 if cuda else 3)
    if args.worker:
        worker(args)
        return
    if cuda and not torch.cuda.is_available():
        raise SystemExit("--device cuda but CUDA is not available")
    name = torch.cuda.get_device_name() if cuda else f"CPU, {args.threads} threads"
    print(f"device {args.device} ({name}), torch {torch.__version__}; volume 4×{args.shape.replace(',', '×')}, "
          f"patch {args.patch}, overlap {args.overlap}, batch {args.batch_size}, unet3d features {args.features}")
    if not args.no_monai:
        compare_with_monai(args)
    if args.models:
        per_model_timings(args)


if __name__ == "__main__":
    main()
