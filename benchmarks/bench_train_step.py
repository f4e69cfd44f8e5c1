"""Training-step throughput (voxels/s) and peak memory of each model, against MONAI's DynUNet.

One step = forward + Dice/CE loss + backward + AdamW step on a (B, 4, P, P, P) random patch. On CUDA the
step runs under bf16 autocast with ``channels_last_3d`` (optionally ``torch.compile``); on CPU in float32.
MONAI's ``DynUNet`` is built at the same size as our 3D U-Net (same features, kernels, strides, instance
norm, leaky ReLU) and timed with the same step. Each (model, variant) runs in its own subprocess, so its
peak memory is its own (CUDA: ``max_memory_allocated``; CPU: the process's peak RSS). Each step is timed
separately; the table gives the min and median s/step, and the ratios MONAI / ours of both.

    python benchmarks/bench_train_step.py --device cpu --patch 64 --batch 1 --steps 3
    python benchmarks/bench_train_step.py --device cuda --patch 128 --batch 2 --steps 20 --compile
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from brats_lib.losses import DiceCELoss
from brats_lib.models import build_model, count_parameters


def monai_dynunet(features, n_conv):
    from monai.networks.nets import DynUNet

    n = len(features)
    return DynUNet(spatial_dims=3, in_channels=4, out_channels=5, kernel_size=[3] * n,
                   strides=[1] + [2] * (n - 1), upsample_kernel_size=[2] * (n - 1), filters=list(features),
                   norm_name=("instance", {"affine": True}), act_name=("leakyrelu", {"negative_slope": 0.01}),
                   deep_supervision=False, res_block=False)


def time_steps(model, device, patch, batch, steps, warmup, amp, channels_last, compile_model):
    model = model.to(device)
    x = torch.randn(batch, 4, patch, patch, patch, device=device)
    y = torch.randint(0, 5, (batch, patch, patch, patch), device=device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
        x = x.contiguous(memory_format=torch.channels_last_3d)
    step_model = torch.compile(model) if compile_model else model
    loss_fn = DiceCELoss("softmax")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    dtype = torch.bfloat16 if amp else torch.float32

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype, enabled=amp):
            out = step_model(x)
        loss = loss_fn(out.float(), y)
        loss.backward()
        opt.step()
        return loss

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(warmup):
        step()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seconds = []
    for _ in range(steps):
        start = time.perf_counter()
        loss = step()
        sync()
        seconds.append(time.perf_counter() - start)
    if not torch.isfinite(loss):
        raise RuntimeError("non-finite loss in the benchmark step")
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**30
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return seconds, peak


def worker(args, name: str, variant: str) -> dict:
    """One (model, variant) in this process: per-step seconds and peak memory (GiB)."""
    amp, cl, comp = VARIANTS[variant]
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = True
    features = [int(f) for f in args.features.split(",")]
    torch.manual_seed(0)
    model = monai_dynunet(features, 2) if name == "monai-DynUNet" else build_model(
        {"name": name, "features_per_stage": features})
    params = count_parameters(model)
    seconds, peak = time_steps(model, device, args.patch, args.batch, args.steps, args.warmup, amp, cl, comp)
    return {"model": name, "variant": variant, "params": params, "seconds": seconds, "peak_gib": peak}


#: variant → (bf16 autocast, channels_last_3d, torch.compile)
VARIANTS = {"fp32": (False, False, False), "bf16+channels_last_3d": (True, True, False),
            "bf16+channels_last_3d+compile": (True, True, True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--patch", type=int, default=None, help="cubic patch edge (voxels)")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--features", default="32,64,128,256,320")
    parser.add_argument("--models", default="fcnn,unet3d,resunet3d")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (CUDA)")
    parser.add_argument("--no-monai", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--worker", nargs=2, metavar=("MODEL", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    args.patch = args.patch or (128 if cuda else 64)
    args.batch = args.batch or (2 if cuda else 1)
    args.steps = args.steps or (20 if cuda else 3)
    if args.worker:
        print(json.dumps(worker(args, *args.worker)))
        return
    variants = ["bf16+channels_last_3d"] if cuda else ["fp32"]
    if cuda and args.compile:
        variants.append("bf16+channels_last_3d+compile")
    features = [int(f) for f in args.features.split(",")]
    print(f"device {device} ({torch.cuda.get_device_name() if cuda else f'{args.threads} threads'}), "
          f"patch {args.patch}³, batch {args.batch}, features {features}, {args.steps} timed steps, "
          "each model in its own process")
    print(f"{'model':<14} {'variant':<30} {'params(M)':>9} {'s/step min':>10} {'median':>8} {'Mvox/s':>7} "
          f"{'peak GiB':>9}")
    models = args.models.split(",") + ([] if args.no_monai else ["monai-DynUNet"])
    results = {}
    for name in models:
        for variant in variants:
            cmd = [sys.executable, __file__, "--device", args.device, "--patch", str(args.patch), "--batch",
                   str(args.batch), "--steps", str(args.steps), "--warmup", str(args.warmup), "--features",
                   args.features, "--threads", str(args.threads), "--worker", name, variant]
            done = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
            if done.returncode != 0:
                reason = "MONAI not installed (pip install -r requirements-bench.txt)" if "monai" in done.stderr \
                    and "ModuleNotFoundError" in done.stderr else done.stderr.strip().splitlines()[-1:]
                print(f"{name:<14} {variant:<30} failed: {reason}")
                continue
            r = json.loads(done.stdout.strip().splitlines()[-1])
            results[(name, variant)] = r
            low, mid = min(r["seconds"]), statistics.median(r["seconds"])
            print(f"{name:<14} {variant:<30} {r['params'] / 1e6:9.2f} {low:10.3f} {mid:8.3f} "
                  f"{args.batch * args.patch**3 / mid / 1e6:7.2f} {r['peak_gib']:9.2f}")
    for variant in variants:
        ours, peer = results.get(("unet3d", variant)), results.get(("monai-DynUNet", variant))
        if ours and peer:
            print(f"ratio MONAI DynUNet / unet3d s/step ({variant}): min {min(peer['seconds']) / min(ours['seconds']):.2f}×, "
                  f"median {statistics.median(peer['seconds']) / statistics.median(ours['seconds']):.2f}×; "
                  f"peak memory ours / MONAI {ours['peak_gib'] / peer['peak_gib']:.2f}")


if __name__ == "__main__":
    main()
