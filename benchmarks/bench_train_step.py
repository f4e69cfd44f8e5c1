"""Training-step throughput (voxels/s) and peak memory of each model, against MONAI's DynUNet.

One step = forward + Dice/CE loss + backward + AdamW step on a (B, 4, P, P, P) random patch. On CUDA the
step runs under bf16 autocast with ``channels_last_3d`` (optionally ``torch.compile``); on CPU in float32.
MONAI's ``DynUNet`` is built at the same size as our 3D U-Net (same features, kernels, strides, instance
norm, leaky ReLU) and timed in the same process with the same step; the ratio is ours / MONAI's.

    python benchmarks/bench_train_step.py --device cpu --patch 64 --batch 1 --steps 3
    python benchmarks/bench_train_step.py --device cuda --patch 128 --batch 2 --steps 20 --compile
"""

from __future__ import annotations

import argparse
import resource
import time

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

    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        loss = step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / steps
    if not torch.isfinite(loss):
        raise RuntimeError("non-finite loss in the benchmark step")
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**30
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return seconds, batch * patch**3 / seconds, peak


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
    args = parser.parse_args()

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    patch = args.patch or (128 if cuda else 64)
    batch = args.batch or (2 if cuda else 1)
    steps = args.steps or (20 if cuda else 3)
    torch.set_num_threads(args.threads)
    features = [int(f) for f in args.features.split(",")]
    torch.backends.cudnn.benchmark = True
    variants = [("bf16+channels_last_3d", True, True, False)] if cuda else [("fp32", False, False, False)]
    if cuda and args.compile:
        variants.append(("bf16+channels_last_3d+compile", True, True, True))
    print(f"device {device} ({torch.cuda.get_device_name() if cuda else f'{args.threads} threads'}), "
          f"patch {patch}³, batch {batch}, features {features}, {steps} timed steps")
    print(f"{'model':<12} {'variant':<32} {'params(M)':>9} {'s/step':>8} {'Mvox/s':>8} {'peak GiB':>9}")
    results = {}
    for name in args.models.split(","):
        for label, amp, cl, comp in variants:
            torch.manual_seed(0)
            model = build_model({"name": name, "features_per_stage": features})
            s, vps, peak = time_steps(model, device, patch, batch, steps, args.warmup, amp, cl, comp)
            results[(name, label)] = vps
            print(f"{name:<12} {label:<32} {count_parameters(model) / 1e6:9.2f} {s:8.3f} {vps / 1e6:8.2f} {peak:9.2f}")
    if not args.no_monai:
        try:
            for label, amp, cl, comp in variants:
                torch.manual_seed(0)
                model = monai_dynunet(features, 2)
                s, vps, peak = time_steps(model, device, patch, batch, steps, args.warmup, amp, cl, comp)
                print(f"{'monai-DynUNet':<12} {label:<32} {count_parameters(model) / 1e6:9.2f} {s:8.3f} "
                      f"{vps / 1e6:8.2f} {peak:9.2f}")
                ours = results.get(("unet3d", label))
                if ours:
                    print(f"ratio unet3d / MONAI DynUNet ({label}): {ours / vps:.2f}x")
        except ImportError:
            print("MONAI not installed (pip install -r requirements-bench.txt): no peer comparison")


if __name__ == "__main__":
    main()
