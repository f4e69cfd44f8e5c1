"""Augmentation throughput (samples/s) of brats_lib.augment against TorchIO and MONAI, and a device self-check.

Two comparisons, each reported as min and median over interleaved rounds (ratio = ours / peer per round):

``--elastic`` (like for like): elastic deformation only, image (4 channels) + label, S³ in and out, one
resampling, G = 7 control points per axis, largest displacement about 8 voxels:

* ours: ``RandomSpatial`` (rotation and zoom off): a G³ random grid, smoothed, upsampled linearly, batched;
* MONAI batched: the same G³ displacement upsampled linearly (``F.interpolate``) and applied with MONAI's
  batched ``networks.blocks.Warp`` — the same algorithm; the closest MONAI allows to batched augmentation;
* MONAI per sample: MONAI's own ``Rand2DElastic`` recipe lifted to 3D (``RandDeformGrid`` control grid at
  our control-point spacing, upsampled — trilinearly: bicubic is 2D-only in torch — then ``Resample``);
  caveat: MONAI's grid has extra control points outside the volume and normal-distributed offsets;
* TorchIO: ``RandomElasticDeformation(num_control_points=7)`` per sample; caveat: a cubic B-spline field
  (SimpleITK) with the same control-point count, not a linear one, on the CPU only;
* MONAI ``Rand3DElasticd`` (a dense Gaussian-smoothed field: a different, heavier algorithm; listed with
  that caveat, not as the like-for-like figure).

Default (the full pipeline):

Every tool turns a 4×S³ float32 image plus its S³ label into an S³ output with the full transform set at
p = 1 (flips 0.5 per axis): rotation ±30° + zoom 0.7–1.4, elastic deformation, flips, Gaussian blur σ 0.5–1,
Gaussian noise, brightness, contrast, low resolution, gamma. TorchIO has no brightness/contrast transforms
(it runs the rest); MONAI is run twice: as listed in its docs (RandAffined then Rand3DElasticd) and fused
(Rand3DElasticd with rotate/scale: one resampling, its fastest configuration). Peers are optional extras::

    pip install torchio==1.2.1 monai==1.6.1

Usage::

    python benchmarks/bench_augment.py --n 8                    # CPU, 2 threads, vs TorchIO and MONAI (~3 min)
    python benchmarks/bench_augment.py --elastic --n 8 --rounds 3   # like for like: elastic only
    python benchmarks/bench_augment.py --device cuda --n 256 --batch 8
    python benchmarks/bench_augment.py --device cuda --check    # correctness + timing self-check
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from brats_lib.augment import (Compose, NoiseParams, RandomBrightness, RandomContrast, RandomFlip,  # noqa: E402
                               RandomGamma, RandomGaussianBlur, RandomGaussianNoise, RandomLowResolution,
                               RandomSpatial, default_pipeline)


def brain_batch(batch: int, size: int, device: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A z-scored-looking (B, 4, S, S, S) float32 ellipsoid 'brain' and a (B, S, S, S) uint8 label 0..4."""
    g = torch.Generator().manual_seed(seed)
    axis = torch.linspace(-1, 1, size)
    x, y, z = torch.meshgrid(axis, axis, axis, indexing="ij")
    brain = (x / 0.85) ** 2 + (y / 0.75) ** 2 + (z / 0.7) ** 2 < 1
    image = torch.randn(batch, 4, size, size, size, generator=g) * brain
    tumour = ((x - 0.2) ** 2 + (y + 0.1) ** 2 + z**2).sqrt()
    label = torch.zeros(size, size, size, dtype=torch.uint8)
    for value, radius in ((2, 0.35), (3, 0.25), (1, 0.15), (4, 0.08)):
        label[tumour < radius] = value
    image[:, 0] += label.float()
    return image.to(device), label.expand(batch, -1, -1, -1).contiguous().to(device)


def full_pipeline(size: int) -> Compose:
    """Every transform once, always on (one gamma, unlike nnU-Net's two), output S³."""
    return Compose([
        RandomSpatial(patch_size=(size,) * 3, p_rotation=1.0, p_scale=1.0, p_elastic=1.0, elastic_magnitude=(0.0, 8.0)),
        RandomGaussianNoise(variance=(0.0, 0.1), p=1.0),
        RandomGaussianBlur(sigma=(0.5, 1.0), p=1.0, p_per_channel=1.0),
        RandomBrightness(p=1.0),
        RandomContrast(p=1.0),
        RandomLowResolution(p=1.0, p_per_channel=1.0),
        RandomGamma(p=1.0, p_invert=0.1),
        RandomFlip(p=0.5),
    ])


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class Timer:
    """Wall-clock samples/s and CPU seconds per sample (all threads of this process) of a timed block."""

    def __init__(self, device: str, samples: int):
        self.device, self.samples = device, samples

    def __enter__(self):
        _sync(self.device)
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        _sync(self.device)
        self.rate = self.samples / (time.perf_counter() - self.wall)
        self.cpu_per_sample = (time.process_time() - self.cpu) / self.samples


def time_ours(device: str, n: int, batch: int, size: int, dtype=torch.float32, autocast: bool = False,
              pipeline: Compose | None = None) -> Timer:
    """Time ``pipeline`` (default: :func:`full_pipeline`) on (batch, 4, S, S, S) batches, S³ out."""
    image, label = brain_batch(batch, size, device)
    image = image.to(dtype)
    pipeline = pipeline or full_pipeline(size)
    g = torch.Generator().manual_seed(1)

    def step():
        if autocast:
            with torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16):
                return pipeline(image, label, generator=g)
        return pipeline(image, label, generator=g)

    step()
    batches = max(1, math.ceil(n / batch))
    with Timer(device, batches * batch) as timer:
        for _ in range(batches):
            step()
    return timer


ELASTIC_POINTS = 7  # control points per axis, every tool of --elastic
ELASTIC_VOXELS = 8.0  # largest displacement (voxels)


def time_ours_elastic(device: str, n: int, batch: int, size: int) -> Timer:
    """Ours, elastic only: one RandomSpatial with rotation and zoom off."""
    spatial = RandomSpatial(patch_size=(size,) * 3, p_rotation=0.0, p_scale=0.0, p_elastic=1.0,
                            elastic_magnitude=(ELASTIC_VOXELS, ELASTIC_VOXELS), control_points=ELASTIC_POINTS)
    return time_ours(device, n, batch, size, pipeline=Compose([spatial]))


def time_monai_warp_batched(device: str, n: int, batch: int, size: int) -> Timer:
    """MONAI's batched ``Warp`` with a G³ random displacement upsampled linearly (the same algorithm as ours)."""
    import torch.nn.functional as F
    from monai.networks.blocks import Warp

    image, label = brain_batch(batch, size, device)
    label = label[:, None].float()
    warp_image, warp_label = Warp(mode="bilinear", padding_mode="zeros"), Warp(mode="nearest", padding_mode="zeros")
    g = torch.Generator(device=device).manual_seed(1)

    def step():
        coarse = (torch.rand(batch, 3, *(ELASTIC_POINTS,) * 3, generator=g, device=device) * 2 - 1) * ELASTIC_VOXELS
        ddf = F.interpolate(coarse, size=(size,) * 3, mode="trilinear", align_corners=True)
        return warp_image(image, ddf), warp_label(label, ddf)

    step()
    batches = max(1, math.ceil(n / batch))
    with Timer(device, batches * batch) as timer:
        for _ in range(batches):
            step()
    return timer


def time_monai_elastic_per_sample(device: str, n: int, size: int) -> Timer:
    """MONAI's Rand2DElastic recipe in 3D: RandDeformGrid (our control-point spacing) → trilinear → Resample."""
    import torch.nn.functional as F
    from monai.transforms import CenterSpatialCrop, RandDeformGrid, Resample

    image, label = brain_batch(1, size, device)
    image, label = image[0], label[:1].float()
    spacing = (size - 1) / (ELASTIC_POINTS - 1)
    deform = RandDeformGrid(spacing=(spacing,) * 3, magnitude_range=(0.0, ELASTIC_VOXELS / 3),
                            device=torch.device(device))
    deform.set_random_state(0)
    resample, crop = Resample(device=torch.device(device)), CenterSpatialCrop(roi_size=(size,) * 3)

    def step():
        grid = deform(spatial_size=(size,) * 3)
        grid = F.interpolate(grid[None].float(), scale_factor=(spacing,) * 3, mode="trilinear", align_corners=False,
                             recompute_scale_factor=True)
        grid = crop(grid[0])
        return (resample(image, grid, mode="bilinear", padding_mode="zeros"),
                resample(label, grid, mode="nearest", padding_mode="zeros"))

    step()
    with Timer(device, n) as timer:
        for _ in range(n):
            step()
    return timer


def time_torchio_elastic(n: int, size: int) -> Timer:
    """TorchIO's B-spline elastic deformation alone, same control-point count, per sample (CPU)."""
    import SimpleITK as sitk
    import torchio as tio

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(torch.get_num_threads())
    image, label = brain_batch(1, size, "cpu")
    subject = tio.Subject(image=tio.ScalarImage(tensor=image[0]), label=tio.LabelMap(tensor=label[:1]))
    transform = tio.RandomElasticDeformation(num_control_points=ELASTIC_POINTS, max_displacement=ELASTIC_VOXELS,
                                             locked_borders=2, p=1)
    transform(subject)
    with Timer("cpu", n) as timer:
        for _ in range(n):
            transform(subject)
    return timer


def time_monai_dense_elastic(device: str, n: int, size: int) -> Timer:
    """MONAI Rand3DElasticd alone (dense Gaussian-smoothed field: a different algorithm)."""
    import monai.transforms as mt

    image, label = brain_batch(1, size, device)
    data = {"image": image[0], "label": label[:1]}
    transform = mt.Rand3DElasticd(("image", "label"), sigma_range=(5, 7), magnitude_range=(50, 150), prob=1.0,
                                  mode=("bilinear", "nearest"), padding_mode="zeros", device=torch.device(device))
    transform.set_random_state(0)
    transform(dict(data))
    with Timer(device, n) as timer:
        for _ in range(n):
            transform(dict(data))
    return timer


def time_torchio(n: int, size: int) -> Timer:
    import SimpleITK as sitk
    import torchio as tio

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(torch.get_num_threads())
    image, label = brain_batch(1, size, "cpu")
    subject = tio.Subject(image=tio.ScalarImage(tensor=image[0]), label=tio.LabelMap(tensor=label[:1]))
    transform = tio.Compose([
        tio.RandomAffine(scales=(0.7, 1.4), degrees=30, isotropic=True, default_pad_value=0, p=1),
        tio.RandomElasticDeformation(num_control_points=7, max_displacement=8, p=1),
        tio.RandomFlip(axes=(0, 1, 2), flip_probability=0.5),
        tio.RandomBlur(std=(0.5, 1.0), p=1),
        tio.RandomNoise(std=(0, math.sqrt(0.1)), p=1),
        tio.RandomAnisotropy(axes=(0, 1, 2), downsampling=(1, 2), p=1),
        tio.RandomGamma(log_gamma=(math.log(0.7), math.log(1.5)), p=1),
    ])
    transform(subject)
    with Timer("cpu", n) as timer:
        for _ in range(n):
            transform(subject)
    return timer


def time_monai(device: str, n: int, size: int, fused: bool) -> Timer:
    import monai.transforms as mt

    image, label = brain_batch(1, size, device)
    data = {"image": image[0], "label": label[:1]}
    keys, modes = ("image", "label"), ("bilinear", "nearest")
    rotate, scale = (math.pi / 6,) * 3, ((-0.3, 0.4),) * 3
    dev = torch.device(device)
    if fused:
        spatial = [mt.Rand3DElasticd(keys, sigma_range=(5, 7), magnitude_range=(50, 150), spatial_size=(size,) * 3,
                                     prob=1.0, rotate_range=rotate, scale_range=scale, mode=modes,
                                     padding_mode="zeros", device=dev)]
    else:
        spatial = [mt.RandAffined(keys, spatial_size=(size,) * 3, prob=1.0, rotate_range=rotate, scale_range=scale,
                                  mode=modes, padding_mode="zeros", device=dev),
                   mt.Rand3DElasticd(keys, sigma_range=(5, 7), magnitude_range=(50, 150), prob=1.0, mode=modes,
                                     padding_mode="zeros", device=dev)]
    transform = mt.Compose(spatial + [
        mt.RandFlipd(keys, prob=0.5, spatial_axis=0),
        mt.RandFlipd(keys, prob=0.5, spatial_axis=1),
        mt.RandFlipd(keys, prob=0.5, spatial_axis=2),
        mt.RandGaussianSmoothd("image", sigma_x=(0.5, 1.0), sigma_y=(0.5, 1.0), sigma_z=(0.5, 1.0), prob=1.0),
        mt.RandGaussianNoised("image", prob=1.0, std=math.sqrt(0.1)),
        mt.RandScaleIntensityd("image", factors=0.25, prob=1.0),
        mt.RandScaleIntensityFixedMeand("image", factors=0.25, preserve_range=True, prob=1.0),
        mt.RandSimulateLowResolutiond("image", prob=1.0, zoom_range=(0.5, 1.0)),
        mt.RandAdjustContrastd("image", prob=1.0, gamma=(0.7, 1.5), retain_stats=True),
    ])
    transform.set_random_state(0)
    transform(dict(data))
    with Timer(device, n) as timer:
        for _ in range(n):
            transform(dict(data))
    return timer


#: Caveat printed beside each peer's ratio: what still differs from our algorithm.
CAVEATS = {
    "monai Warp (batched, same 7³ linear field)": "same algorithm",
    "monai RandDeformGrid+Resample (per sample)": "MONAI's control grid also spans outside the volume; per sample",
    "torchio B-spline (7 control points, CPU)": "cubic B-spline field, not linear; per sample; CPU only",
    "monai Rand3DElasticd (dense field)": "DIFFERENT ALGORITHM: dense Gaussian-smoothed field (heavier)",
    "torchio (CPU)": "two resamplings (affine, then B-spline elastic); no brightness/contrast; per sample",
    "monai (RandAffined+Rand3DElasticd)": "DIFFERENT ALGORITHM: dense elastic field; two resamplings; per sample",
    "monai (fused Rand3DElasticd)": "DIFFERENT ALGORITHM: dense elastic field; per sample",
}


def benchmark(args) -> None:
    """Time every tool ``--rounds`` times, interleaved; report min and median samples/s per tool and the
    min and median over rounds of the ratio ours / peer (shared machines are noisy)."""
    peer_n = min(args.n, args.peer_n)
    mode = "elastic only" if args.elastic else "full pipeline"
    print(f"{mode}: device={args.device} size={args.size}³ batch={args.batch} n={args.n} (peers {peer_n}) "
          f"rounds={args.rounds} threads={torch.get_num_threads()} torch={torch.__version__}")
    if args.elastic:
        tools = {"brats_lib.augment": lambda: time_ours_elastic(args.device, args.n, args.batch, args.size)}
        if not args.no_peers:
            tools["monai Warp (batched, same 7³ linear field)"] = lambda: time_monai_warp_batched(
                args.device, args.n, args.batch, args.size)
            tools["monai RandDeformGrid+Resample (per sample)"] = lambda: time_monai_elastic_per_sample(
                args.device, peer_n, args.size)
            tools["torchio B-spline (7 control points, CPU)"] = lambda: time_torchio_elastic(peer_n, args.size)
            tools["monai Rand3DElasticd (dense field)"] = lambda: time_monai_dense_elastic(args.device, peer_n,
                                                                                           args.size)
    else:
        tools = {"brats_lib.augment": lambda: time_ours(args.device, args.n, args.batch, args.size)}
        if not args.no_peers:
            tools["torchio (CPU)"] = lambda: time_torchio(peer_n, args.size)
            tools["monai (RandAffined+Rand3DElasticd)"] = lambda: time_monai(args.device, peer_n, args.size,
                                                                             fused=False)
            tools["monai (fused Rand3DElasticd)"] = lambda: time_monai(args.device, peer_n, args.size, fused=True)
    rates: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    best: dict[str, Timer] = {}
    for round_ in range(args.rounds):
        for name, run in list(tools.items()):
            try:
                timer = run()
            except ImportError as err:
                print(f"  {name:38s} skipped ({err.name} not installed)")
                del tools[name]
                continue
            print(f"  round {round_ + 1} {name:38s} {timer.rate:8.2f} samples/s  {timer.cpu_per_sample:7.2f} CPU s/sample",
                  flush=True)
            rates.setdefault(name, []).append(timer.rate)
            cpu.setdefault(name, []).append(timer.cpu_per_sample)
            if name not in best or timer.rate > best[name].rate:
                best[name] = timer
    print(f"samples/s over {args.rounds} round(s): min / median")
    for name, values in rates.items():
        print(f"  {name:44s} {min(values):8.2f} / {statistics.median(values):8.2f}  "
              f"(best round {best[name].cpu_per_sample:.2f} CPU s/sample)")
    ours, ours_cpu = rates.pop("brats_lib.augment"), cpu.pop("brats_lib.augment")
    for name, values in rates.items():
        ratios = [a / b for a, b in zip(ours, values)]  # the same round: interleaved, comparable load
        less_cpu = [b / a for a, b in zip(ours_cpu, cpu[name])]
        print(f"  ratio ours / {name:44s} samples/s min {min(ratios):6.2f}× median {statistics.median(ratios):6.2f}×; "
              f"CPU s/sample min {min(less_cpu):6.2f}× median {statistics.median(less_cpu):6.2f}× less  "
              f"[{CAVEATS.get(name, '')}]")


def check(args) -> int:
    """Correctness and timing on ``args.device``; returns the exit status (0 = all checks passed)."""
    device, failures = args.device, []
    size, batch = args.size, args.batch
    print(f"self-check on {device} ({torch.cuda.get_device_name() if device.startswith('cuda') else 'CPU'}), "
          f"size {size}³, batch {batch}, torch {torch.__version__}")
    image, label = brain_batch(batch, size, device)
    pipeline = default_pipeline((size,) * 3, always=True)
    params = pipeline.sample(batch, torch.Generator().manual_seed(0), num_channels=4)
    out_image, out_label = pipeline.apply(image, label, params)
    ok = (out_image.shape == image.shape and out_image.dtype == image.dtype and out_image.device == image.device
          and out_label.shape == label.shape and out_label.dtype == label.dtype
          and set(out_label.unique().tolist()) <= {0, 1, 2, 3, 4} and bool(torch.isfinite(out_image).all()))
    print(f"  shapes/dtypes/labels/finite: {'ok' if ok else 'FAIL'} {tuple(out_image.shape)} {out_image.dtype} "
          f"labels {sorted(out_label.unique().tolist())}")
    if not ok:
        failures.append("shapes")
    replay = pipeline.apply(image, label, params)
    same = torch.equal(replay[0], out_image) and torch.equal(replay[1], out_label)
    print(f"  replay same params: {'identical' if same else 'DIFFERENT'}")
    if not same:
        failures.append("replay")
    # The noise field is drawn by the device's own generator, so compare CPU vs device without it.
    for item in params.items:
        if isinstance(item, NoiseParams):
            item.std.zero_()
    cpu = pipeline.apply(image.cpu(), label.cpu(), params)
    dev = pipeline.apply(image, label, params)
    diff = (dev[0].cpu() - cpu[0]).abs().max().item()
    mismatch = (dev[1].cpu() != cpu[1]).float().mean().item()
    ok = diff < 1e-3 and mismatch < 1e-4
    print(f"  CPU vs {device} (same params, no noise): max |Δimage| {diff:.2e}, label mismatch {mismatch:.2e} "
          f"{'ok' if ok else 'FAIL'}")
    if not ok:
        failures.append("cpu-vs-device")
    n = args.n
    for name, kwargs in (("float32, all at p=1", {}), ("bfloat16 input", {"dtype": torch.bfloat16}),
                         ("float32 under bf16 autocast", {"autocast": True}),
                         ("float32, nnU-Net probabilities", {"pipeline": default_pipeline((size,) * 3)})):
        rate = time_ours(device, n, batch, size, **kwargs).rate
        print(f"  throughput {name:28s} {rate:8.1f} samples/s")
    with torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16):
        auto = pipeline.apply(image, label, params)
    ok = auto[0].dtype == torch.float32 and torch.allclose(auto[0], dev[0], atol=1e-5)
    print(f"  autocast leaves results unchanged: {'ok' if ok else 'FAIL'}")
    if not ok:
        failures.append("autocast")
    print("SELF-CHECK " + ("PASSED" if not failures else "FAILED: " + ", ".join(failures)))
    return 1 if failures else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1…")
    parser.add_argument("--n", type=int, default=8, help="samples to time per tool")
    parser.add_argument("--peer-n", type=int, default=3, help="at most this many samples per peer (TorchIO is slow)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved timing rounds; the best is kept")
    parser.add_argument("--batch", type=int, default=2, help="batch size for brats_lib.augment")
    parser.add_argument("--size", type=int, default=128, help="cube edge in voxels")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (torch and SimpleITK)")
    parser.add_argument("--no-peers", action="store_true", help="time brats_lib.augment only")
    parser.add_argument("--check", action="store_true", help="correctness + timing self-check on --device")
    parser.add_argument("--elastic", action="store_true", help="like for like: elastic deformation only (see above)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("CUDA is not available")
    if args.check:
        return check(args)
    benchmark(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
