"""Peak memory and time of one GAN training step (one discriminator + one generator update), against the same
step in float32 without gradient checkpointing (the peer: what the student project would have run).

Usage::

    python benchmarks/bench_gan_memory.py --device cuda --crop 96 --batch 2      # the full profile's step, GPU
    python benchmarks/bench_gan_memory.py --device cpu --crop 32 --batch 2       # the demo profile's step, CPU

Networks: the notebook-07 profile's generator and discriminator (``--profile full``: 32…320 features and
64/128/256; ``demo``: 16…128 and 32/64/128), on random z-scored crops with a cubic tumour label in the middle.
Variants, each in a fresh set of networks: ``fp32`` (the peer), ``bf16`` (autocast; CUDA only),
``bf16+ckpt`` (autocast and gradient checkpointing; CUDA only), ``fp32+ckpt``. For each it prints the peak
memory of a step (CUDA: ``max_memory_allocated`` after a reset; CPU: the process's peak resident set size,
which only grows, so run ``--variants`` one at a time for clean CPU figures), min and median seconds per step
over ``--repeat`` steps after one warm-up, and the ratio of its peak memory and median time to the peer's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from brats_lib.gan.crops import generator_input, inpaint_mask, label_channels  # noqa: E402
from brats_lib.gan.losses import hinge_discriminator, hinge_generator, masked_l1  # noqa: E402
from brats_lib.gan.models import InpaintGenerator, PatchDiscriminator  # noqa: E402
from brats_lib.gan.crops import composite  # noqa: E402
from brats_lib.gan.train import peak_rss_mib  # noqa: E402

PROFILES = {"full": ([32, 64, 128, 256, 320], [64, 128, 256]), "demo": ([16, 32, 64, 128], [32, 64, 128])}


def run(variant: str, args) -> dict:
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.cuda.empty_cache()  # the previous variant's networks are gone with its call
    amp = variant.startswith("bf16")
    g_features, d_features = PROFILES[args.profile]
    torch.manual_seed(0)
    generator = InpaintGenerator(g_features, checkpointing=variant.endswith("ckpt")).to(device)
    discriminator = PatchDiscriminator(d_features).to(device)
    opt_g = torch.optim.AdamW(generator.parameters(), lr=1e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.AdamW(discriminator.parameters(), lr=1e-4, betas=(0.5, 0.999))
    s = args.crop
    image = torch.randn(args.batch, 4, s, s, s, device=device)
    label = torch.zeros(args.batch, s, s, s, dtype=torch.int64, device=device)
    label[:, s // 4: 3 * s // 4, s // 4: 3 * s // 4, s // 4: 3 * s // 4] = 2
    label[:, 3 * s // 8: 5 * s // 8, 3 * s // 8: 5 * s // 8, 3 * s // 8: 5 * s // 8] = 3
    noise = torch.randn_like(image)
    mask, labels = inpaint_mask(label, 2), label_channels(label)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            fake = composite(image, generator(generator_input(image, label, mask, noise)).float(), mask)
            d_loss = hinge_discriminator(discriminator(image, labels), discriminator(fake.detach(), labels))
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            adv = hinge_generator(discriminator(fake, labels))
        loss = 10 * masked_l1(fake, image, mask) + adv / 10
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()

    step()  # warm-up (cuDNN autotuning, allocator)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else peak_rss_mib()
    return {"variant": variant, "peak_mib": peak, "min_s": min(times), "median_s": statistics.median(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--crop", type=int, default=96)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="full")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--variants", nargs="*", default=None)
    args = parser.parse_args()
    cuda = args.device.startswith("cuda")
    variants = args.variants or (["fp32", "bf16", "bf16+ckpt", "fp32+ckpt"] if cuda else ["fp32"])
    rows = [run(v, args) for v in variants]
    peer = next((r for r in rows if r["variant"] == "fp32"), rows[0])
    kind = "peak GPU MiB (allocated)" if cuda else "peak RSS MiB (process)"
    print(f"GAN step, {args.profile} networks, crop {args.crop}³, batch {args.batch}, {args.device}; "
          f"peer = {peer['variant']}")
    print(f"{'variant':<10} {kind:>26} {'min s':>8} {'median s':>9} {'memory/peer':>12} {'time/peer':>10}")
    for r in rows:
        print(f"{r['variant']:<10} {r['peak_mib']:>26.0f} {r['min_s']:>8.3f} {r['median_s']:>9.3f} "
              f"{r['peak_mib'] / peer['peak_mib']:>12.2f} {r['median_s'] / peer['median_s']:>10.2f}")


if __name__ == "__main__":
    main()
