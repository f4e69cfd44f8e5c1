"""The full profile on one GPU, measured end to end (synthetic 1 mm data made on the spot).

    bash scripts/gpu_profile.sh "$OUT"                        # on the GPU machine: wheels, then this driver
    python benchmarks/gpu_profile.py --out DIR [--budget 360]  # the driver itself
    python benchmarks/gpu_profile.py --out DIR --dry-run       # every part tiny, on the CPU (proves the script)

Parts, most important first, each in its own process (own peak memory, own time limit, killed with its
loader and compiler workers when the limit is reached):

* ``env``: torch sees CUDA (else one clear line and exit status 2), the card, its bf16 peak, the packages;
* ``synth``: ``brats synth`` writes 24 synthetic 1 mm cases (182×218×182, the BraTS grid);
* ``preprocess``: ``brats preprocess`` at full resolution: cases per second per worker core, MiB per case;
* ``step:<model>:eager``: the training step alone (random data, forward, Dice + CE, backward, AdamW) of each
  model: s/step min and median, samples/s, achieved TFLOP/s against the bf16 peak, peak GPU memory;
* ``train:unet3d:ours``: ``brats_lib.train`` (the full profile's settings: 128³, batch 2, bf16,
  channels_last_3d, ``torch.compile`` by default, the nnU-Net augmentation on the GPU, 8 loader workers),
  2 epochs; the busy share, data wait, samples/s and TFLOP/s that it logs to ``metrics.csv``, of the last
  epoch (the first one includes compilation), and the peak GPU memory;
* ``train:unet3d:monai``: the same run with the patches augmented by MONAI on the CPU in the 8 loader
  workers (the usual set-up: MONAI's dictionary transforms with nnU-Net's probabilities), no GPU augmentation;
* ``train:unet3d:eager``: the training run without compilation (end-to-end throughput without compile);
* ``step:<model>:compile``: the step alone again, compiled;
* ``memory``: host memory (PSS and RSS of the loader and its 8 workers) over 100 vs 1,350 tiny cached cases
  (``benchmarks/bench_data_memory.py``'s loop);
* ``train:fcnn:ours``, ``train:resunet3d:ours``: the busy share of the other two models.

Each part has a time limit and a minimum; a part whose minimum no longer fits the budget (``--budget``
seconds for the whole script) is skipped with a message. Every figure is appended to
``DIR/gpu_profile.jsonl`` as it is measured, the log to ``DIR/gpu_profile.log``, and ``DIR/gpu_profile.md``
(the rows for ``benchmarks/RESULTS.md``) is rewritten after each part, so a run stopped early still returns
what it did. Data and runs go to ``--work`` (default ``/tmp/brats_gpu_profile``; kept, so a second run on
the same machine skips the synthesis).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULT = "@@ "  # a child's result line: RESULT + one JSON object
PROGRESS = re.compile(r"\|\s*\d+/\d+ \[")  # a tqdm progress line


@dataclass
class Settings:
    """What each part does; :func:`settings` gives the GPU profile or the tiny CPU dry run."""

    device: str = "cuda"
    n_cases: int = 24
    synth_workers: int = 16
    prep_workers: int = 16
    downsample: float = 1
    patch: int = 128
    batch: int = 2
    features: list = field(default_factory=lambda: [32, 64, 128, 256, 320])
    models: tuple = ("unet3d", "fcnn", "resunet3d")
    step_steps: int = 10
    step_warmup: int = 3
    compile_backend: str = "inductor"
    train_epochs: int = 2
    train_iterations: int = 150
    monai_iterations: int = 60  # MONAI's CPU augmentation is slower: fewer iterations measure its steady state
    loader_workers: int = 8
    memory_counts: tuple = (100, 1350)
    memory_size: int = 24
    memory_patch: int = 16
    memory_batches: int = 700  # 1,400 patches: most of the 1,350 cases are opened at least once
    memory_workers: int = 8


def settings(dry_run: bool) -> Settings:
    cores = os.cpu_count() or 1
    if not dry_run:
        return Settings(synth_workers=min(16, cores), prep_workers=min(16, cores))
    return Settings(device="cpu", n_cases=3, synth_workers=2, prep_workers=2, downsample=2, patch=32,
                    features=[4, 8, 16], step_steps=2, step_warmup=1, compile_backend="eager", train_iterations=3,
                    monai_iterations=3,
                    loader_workers=2, memory_counts=(10, 30), memory_size=16, memory_patch=8, memory_batches=20,
                    memory_workers=2)


#: (part, minimum seconds it needs, time limit in seconds) on the GPU, most important first.
PARTS = [
    ("env", 5, 60),
    ("synth", 20, 120),
    ("preprocess", 10, 90),
    ("step:unet3d:eager", 12, 60),
    ("step:fcnn:eager", 12, 60),
    ("step:resunet3d:eager", 12, 60),
    ("train:unet3d:ours", 50, 180),
    ("train:unet3d:monai", 30, 120),
    ("train:unet3d:eager", 25, 90),
    ("step:unet3d:compile", 25, 120),
    ("step:fcnn:compile", 35, 120),
    ("step:resunet3d:compile", 35, 120),
    ("memory", 30, 120),
    ("train:fcnn:ours", 30, 120),
    ("train:resunet3d:ours", 30, 120),
]


def emit(**record) -> None:
    """Hand one result to the parent (a child's stdout line)."""
    print(RESULT + json.dumps(record, default=float), flush=True)


# ------------------------------------------------------------------------------------------------ parts


def part_env(s: Settings, work: Path) -> int:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    import torch

    from brats_lib.profiling import bf16_peak_tflops

    packages = {}
    for name in ("numpy", "nibabel", "nilearn", "monai", "scipy", "pandas"):
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            packages[name] = None
    cuda = torch.cuda.is_available()
    name = torch.cuda.get_device_name() if cuda else None
    smi = None
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    emit(part="env", python=platform.python_version(), torch=torch.__version__, torch_cuda=torch.version.cuda,
         cuda_available=cuda, device=name, nvidia_smi=smi, bf16_peak_tflops=bf16_peak_tflops(name),
         cpu_count=os.cpu_count(), packages=packages, settings=asdict(s))
    if s.device == "cuda" and not cuda:
        print(f"gpu_profile: torch {torch.__version__} sees no CUDA device (torch.cuda.is_available() is False; "
              f"nvidia-smi: {smi or 'not found'}): nothing measured", file=sys.stderr)
        return 2
    missing = [n for n in ("nibabel", "nilearn") if packages[n] is None]
    if missing:
        print(f"gpu_profile: {', '.join(missing)} not installed for {sys.executable}: carry them as wheels in "
              ".whl/ (bash scripts/fetch_gpu_wheels.sh, then name .whl in the run's carry)", file=sys.stderr)
        return 2
    if name and bf16_peak_tflops(name) is None:
        print(f"gpu_profile: bf16 peak of {name!r} unknown: TFLOP/s are reported without their share of peak")
    if packages["monai"] is None:
        print("gpu_profile: MONAI not installed: the MONAI CPU-augmentation row will be dropped")
    return 0


def _command(args: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in args)


def part_synth(s: Settings, work: Path) -> int:
    args = [sys.executable, "-m", "brats_lib.cli", "synth", "--out", str(work / "synthetic"), "--n",
            str(s.n_cases), "--seed", "0", "--workers", str(s.synth_workers)]
    start = time.perf_counter()
    done = subprocess.run(args, cwd=REPO, env=_quiet_env(), capture_output=True, text=True)
    seconds = time.perf_counter() - start
    print(done.stdout.strip()[-500:], done.stderr.strip()[-1000:], sep="\n")
    if done.returncode:
        return done.returncode
    emit(part="synth", command=_command(args[1:]), cases=s.n_cases, workers=s.synth_workers, seconds=seconds)
    return 0


def part_preprocess(s: Settings, work: Path) -> int:
    import shutil

    cache = work / "cache"
    shutil.rmtree(cache, ignore_errors=True)  # measure building every case
    args = [sys.executable, "-m", "brats_lib.cli", "preprocess", "--data", str(work / "synthetic"), "--out",
            str(cache), "--workers", str(s.prep_workers), "--downsample", str(s.downsample)]
    start = time.perf_counter()
    done = subprocess.run(args, cwd=REPO, env=_quiet_env(), capture_output=True, text=True)
    seconds = time.perf_counter() - start
    print(done.stdout.strip()[-500:], done.stderr.strip()[-1000:], sep="\n")
    if done.returncode:
        return done.returncode
    cases = [p for p in cache.iterdir() if (p / "meta.json").exists()]
    size = sum(f.stat().st_size for p in cases for f in p.iterdir() if f.is_file())
    emit(part="preprocess", command=_command(args[1:]), cases=len(cases), workers=s.prep_workers, seconds=seconds,
         cases_per_s=len(cases) / seconds, cases_per_s_per_core=len(cases) / seconds / s.prep_workers,
         mib_per_case=size / max(len(cases), 1) / 2**20)
    return 0


def part_step(s: Settings, work: Path, model_name: str, variant: str) -> int:
    import torch

    from brats_lib.losses import DiceCELoss
    from brats_lib.models import build_model, count_parameters
    from brats_lib.profiling import bf16_peak_tflops, train_step_flops

    device = torch.device(s.device)
    cuda = device.type == "cuda"
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    model = build_model({"name": model_name, "features_per_stage": list(s.features)})
    flops = train_step_flops(model, (s.patch,) * 3)
    model = model.to(device)
    x = torch.randn(s.batch, 4, s.patch, s.patch, s.patch, device=device)
    y = torch.randint(0, 5, (s.batch, s.patch, s.patch, s.patch), device=device)
    if cuda:
        model = model.to(memory_format=torch.channels_last_3d)
        x = x.contiguous(memory_format=torch.channels_last_3d)
    step_model = torch.compile(model, backend=s.compile_backend) if variant == "compile" else model
    loss_fn = DiceCELoss("softmax")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            out = step_model(x)
        loss = loss_fn(out.float(), y)
        loss.backward()
        optimizer.step()
        return loss

    start = time.perf_counter()
    for _ in range(s.step_warmup):
        step()
    sync()
    warmup_s = time.perf_counter() - start
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    seconds = []
    for _ in range(s.step_steps):
        t0 = time.perf_counter()
        loss = step()
        sync()
        seconds.append(time.perf_counter() - t0)
    if not torch.isfinite(loss):
        raise RuntimeError("non-finite loss in the timed step")
    median = statistics.median(seconds)
    peak = bf16_peak_tflops(torch.cuda.get_device_name()) if cuda else None
    tflops = flops * s.batch / median / 1e12
    emit(part=f"step:{model_name}:{variant}", model=model_name, variant=variant,
         params_M=count_parameters(model) / 1e6, s_step_min=min(seconds), s_step_median=median,
         samples_per_s=s.batch / median, train_step_gflop_per_sample=flops / 1e9, tflops=tflops,
         tflops_peak_share=(tflops / peak) if peak else None, warmup_s=warmup_s,
         peak_gib=(torch.cuda.max_memory_allocated() / 2**30) if cuda else None)
    return 0


def monai_pipeline(patch: int):
    """MONAI's dictionary transforms with nnU-Net's probabilities where MONAI has the transform (rotation
    and scaling in one affine, p = 1 - 0.8²; dense elastic p 0.2), on the CPU, one sample at a time."""
    import monai.transforms as mt

    keys, modes = ("image", "label"), ("bilinear", "nearest")
    return mt.Compose([
        mt.RandAffined(keys, prob=0.36, rotate_range=(math.pi / 6,) * 3, scale_range=((-0.3, 0.4),) * 3,
                       spatial_size=(patch,) * 3, mode=modes, padding_mode="zeros"),
        mt.Rand3DElasticd(keys, sigma_range=(5, 7), magnitude_range=(50, 150), prob=0.2, mode=modes,
                          padding_mode="zeros"),
        mt.RandGaussianNoised("image", prob=0.1, std=math.sqrt(0.1)),
        mt.RandGaussianSmoothd("image", sigma_x=(0.5, 1.0), sigma_y=(0.5, 1.0), sigma_z=(0.5, 1.0), prob=0.2),
        mt.RandScaleIntensityd("image", factors=0.25, prob=0.15),
        mt.RandScaleIntensityFixedMeand("image", factors=0.25, preserve_range=True, prob=0.15),
        mt.RandSimulateLowResolutiond("image", prob=0.25, zoom_range=(0.5, 1.0)),
        mt.RandAdjustContrastd("image", prob=0.1, gamma=(0.7, 1.5), invert_image=True, retain_stats=True),
        mt.RandAdjustContrastd("image", prob=0.3, gamma=(0.7, 1.5), retain_stats=True),
        mt.RandFlipd(keys, prob=0.5, spatial_axis=0),
        mt.RandFlipd(keys, prob=0.5, spatial_axis=1),
        mt.RandFlipd(keys, prob=0.5, spatial_axis=2),
    ])


def _monai_trainer_class():
    import torch

    from brats_lib import train as tr

    class MonaiAugmented(torch.utils.data.Dataset):
        """The project's patches, augmented by MONAI on the CPU (in the loader's workers)."""

        def __init__(self, base, patch: int):
            self.base, self.transform = base, monai_pipeline(patch)

        def __len__(self):
            return len(self.base)

        def set_epoch(self, epoch: int) -> None:
            self.base.set_epoch(epoch)

        def __getitem__(self, index):
            image, label = self.base[index]
            epoch, i = index if isinstance(index, tuple) else (self.base.epoch, index)  # EpochSampler's (epoch, i)
            self.transform.set_random_state(seed=(epoch * 1_000_003 + int(i)) % 2**32)
            out = self.transform({"image": image, "label": label[None]})
            image, label = out["image"], out["label"]
            image = image.as_tensor() if hasattr(image, "as_tensor") else torch.as_tensor(image)
            label = label.as_tensor() if hasattr(label, "as_tensor") else torch.as_tensor(label)
            return image.float().contiguous(), label[0].long().contiguous()

    class MonaiTrainer(tr.Trainer):
        """The project's training loop and accounting, with MONAI's CPU augmentation instead of ours."""

        def _build(self, splits):
            super()._build(splits)
            self.train_set = MonaiAugmented(self.train_set, self.config.patch_size)
            self.augment = None

    return MonaiTrainer


def part_train(s: Settings, work: Path, model_name: str, pipeline: str) -> int:
    import shutil

    import torch

    from brats_lib import train as tr

    run_dir = work / "runs" / f"{model_name}_{pipeline}"
    shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run, not a resume
    values = dict(data_dir=str(work / "synthetic"), cache_dir=str(work / "cache"), run_dir=str(run_dir),
                  model={"name": model_name, "features_per_stage": list(s.features)}, patch_size=s.patch,
                  batch_size=s.batch, epochs=s.train_epochs,
                  iterations_per_epoch=s.monai_iterations if pipeline == "monai" else s.train_iterations,
                  val_patches=2, device=s.device, workers=s.loader_workers,
                  compile=False if pipeline == "eager" else "auto", preprocess={"downsample": s.downsample})
    (work / "runs").mkdir(parents=True, exist_ok=True)
    config_file = work / "runs" / f"{model_name}_{pipeline}.json"
    config_file.write_text(json.dumps(values, indent=1))
    print(f"brats train --config {config_file}" + ("  (with MONAI's CPU augmentation: benchmarks/gpu_profile.py)"
                                                    if pipeline == "monai" else ""))
    trainer_class = _monai_trainer_class() if pipeline == "monai" else tr.Trainer
    start = time.perf_counter()
    history = trainer_class(tr.TrainConfig.from_dict(values), progress=False).run()
    wall = time.perf_counter() - start
    keys = ("seconds", *tr.TIMING_COLUMNS[1:], "train_loss")
    for row in history:
        emit(part=f"train:{model_name}:{pipeline}", kind="epoch", epoch=row["epoch"],
             **{k: row.get(k) for k in keys})
    cuda = torch.device(s.device).type == "cuda"
    emit(part=f"train:{model_name}:{pipeline}", kind="run", model=model_name, pipeline=pipeline,
         compiled=values["compile"] == "auto" and cuda, epochs=len(history),
         iterations=values["iterations_per_epoch"], workers=s.loader_workers, patch=s.patch, batch=s.batch,
         wall_s=wall, peak_gib=(torch.cuda.max_memory_allocated() / 2**30) if cuda else None,
         last={k: history[-1].get(k) for k in keys})
    return 0


def part_memory(s: Settings, work: Path) -> int:
    import shutil

    import bench_data_memory as bdm

    cache = work / "memory_cache"
    shutil.rmtree(cache, ignore_errors=True)
    start = time.perf_counter()
    bdm.write_cases(cache, max(s.memory_counts), s.memory_size)
    print(f"wrote {max(s.memory_counts)} cached cases of {s.memory_size}³ in {time.perf_counter() - start:.1f} s")
    for n in s.memory_counts:  # each count in a fresh process, as bench_data_memory.py does
        cmd = [sys.executable, str(REPO / "benchmarks" / "bench_data_memory.py"), "--patch", str(s.memory_patch),
               "--batches", str(s.memory_batches), "--workers", str(s.memory_workers), "--_child", str(cache), str(n)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=_quiet_env()).stdout
        result = json.loads(out.strip().splitlines()[-1])
        emit(part="memory", size=s.memory_size, patch=s.memory_patch, batches=s.memory_batches,
             workers=s.memory_workers, **result)
    return 0


def run_part(name: str, s: Settings, work: Path) -> int:
    kind, _, rest = name.partition(":")
    if kind == "env":
        return part_env(s, work)
    if kind == "synth":
        return part_synth(s, work)
    if kind == "preprocess":
        return part_preprocess(s, work)
    if kind == "step":
        return part_step(s, work, *rest.split(":"))
    if kind == "train":
        return part_train(s, work, *rest.split(":"))
    if kind == "memory":
        return part_memory(s, work)
    raise SystemExit(f"unknown part {name!r}")


# ------------------------------------------------------------------------------------------------ driver


def _quiet_env() -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1", TQDM_DISABLE="1")
    path = [str(REPO), str(REPO / "benchmarks")]
    env["PYTHONPATH"] = os.pathsep.join(path + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


class Recorder:
    """Appends results (JSON lines) and log lines to the output folder as they come, and keeps the summary."""

    def __init__(self, out: Path):
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self.records: list[dict] = []
        self._jsonl = open(out / "gpu_profile.jsonl", "a", buffering=1)
        self._log = open(out / "gpu_profile.log", "a", buffering=1)

    def log(self, line: str) -> None:
        print(line, flush=True)
        self._log.write(line + "\n")
        self._log.flush()

    def record(self, record: dict) -> None:
        record = {"t": round(time.time(), 1), **record}
        self.records.append(record)
        self._jsonl.write(json.dumps(record, default=float) + "\n")
        self._jsonl.flush()
        os.fsync(self._jsonl.fileno())
        self.log("RESULT " + json.dumps(record, default=float))

    def write_summary(self, header: str) -> None:
        text = header + "\n\n" + summary_markdown(self.records) + "\n"
        tmp = self.out / ".gpu_profile.md.tmp"
        tmp.write_text(text)
        os.replace(tmp, self.out / "gpu_profile.md")


def run_child(recorder: Recorder, args: list[str], limit: float) -> tuple[int | None, float]:
    """Run a part's process, recording its result lines as they arrive; kill its process group at ``limit``
    seconds. Returns (exit status or None when killed, seconds)."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, cwd=REPO, env=_quiet_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, bufsize=1, start_new_session=True)
    killed = threading.Event()

    def kill():
        killed.set()
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    timer = threading.Timer(limit, kill)
    timer.start()
    try:
        for line in proc.stdout:
            line = line.rstrip("\n")
            if line.startswith(RESULT):
                try:
                    recorder.record(json.loads(line[len(RESULT):]))
                    continue
                except json.JSONDecodeError:
                    pass
            if line.strip() and not PROGRESS.search(line):
                recorder.log("  " + line[-2000:])
        proc.wait()
    finally:
        timer.cancel()
    return (None if killed.is_set() else proc.returncode), time.perf_counter() - start


def record_partial_training(recorder: Recorder, work: Path, name: str) -> None:
    """The epochs a stopped training part finished (its run directory's metrics.json), marked partial."""
    _, model, pipeline = name.split(":")
    path = work / "runs" / f"{model}_{pipeline}" / "metrics.json"
    try:
        history = json.loads(path.read_text())
    except (OSError, ValueError):
        recorder.log(f"  {name}: no finished epoch ({path} absent)")
        return
    for row in history:
        recorder.record({"part": name, "kind": "epoch", "partial": True, **row})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.environ.get("OUT") or "/tmp/gpu_profile_out", help="results folder")
    parser.add_argument("--work", default=None, help="data and runs (default /tmp/brats_gpu_profile[_dry])")
    parser.add_argument("--budget", type=float, default=360.0, help="seconds for the whole script")
    parser.add_argument("--dry-run", action="store_true", help="every part tiny, on the CPU")
    parser.add_argument("--only", nargs="*", default=None, help="run just these parts (names as listed)")
    parser.add_argument("--part", help=argparse.SUPPRESS)
    args = parser.parse_args()
    s = settings(args.dry_run)
    work = Path(args.work or ("/tmp/brats_gpu_profile_dry" if args.dry_run else "/tmp/brats_gpu_profile"))
    work.mkdir(parents=True, exist_ok=True)
    if args.part:
        return run_part(args.part, s, work)

    started = time.perf_counter()
    deadline = started + args.budget
    recorder = Recorder(Path(args.out))
    command = "python benchmarks/gpu_profile.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    recorder.log(f"== gpu_profile {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}: {command}")
    recorder.record({"part": "start", "command": command, "budget_s": args.budget, "dry_run": args.dry_run})
    header = (f"Full profile on one GPU — `{command}` (dry run on the CPU: tiny settings, not figures)"
              if args.dry_run else f"Full profile on one GPU — `{command}`")
    scale = 1.0 if not args.dry_run else 4.0  # the 2-core dry run is slower per part than the GPU machine
    status = 0
    for name, minimum, limit in PARTS:
        if args.only is not None and name not in args.only:
            continue
        left = deadline - time.perf_counter()
        if left < minimum * scale:
            recorder.record({"part": name, "status": "skipped",
                             "why": f"{left:.0f} s of the {args.budget:.0f} s budget left, the part needs "
                                    f"{minimum * scale:.0f} s"})
            if name in ("env", "synth", "preprocess"):  # the other parts need what these make
                recorder.log(f"gpu_profile: {name} did not fit the budget; nothing after it can run")
                status = 1
                break
            continue
        child_limit = min(limit * scale, left)
        recorder.log(f"== {name} (limit {child_limit:.0f} s; {left:.0f} s of the budget left)")
        cmd = [sys.executable, __file__, "--part", name, "--work", str(work)] + (["--dry-run"] if args.dry_run else [])
        rc, seconds = run_child(recorder, cmd, child_limit)
        state = "ok" if rc == 0 else ("timeout" if rc is None else f"failed (exit {rc})")
        recorder.record({"part": name, "status": state, "seconds": round(seconds, 1)})
        if rc != 0 and name.startswith("train:"):
            record_partial_training(recorder, work, name)
        recorder.write_summary(header)
        if name == "env" and rc != 0:
            recorder.log("gpu_profile: the environment check failed (see above); nothing else is run")
            return 2
        if name in ("synth", "preprocess") and rc != 0:
            recorder.log(f"gpu_profile: {name} failed; the parts that need the data cannot run")
            status = 1
            break
        if rc != 0:
            status = 1
    recorder.record({"part": "end", "seconds": round(time.perf_counter() - started, 1)})
    recorder.write_summary(header)
    recorder.log(f"== done in {time.perf_counter() - started:.0f} s; results in {args.out}")
    return status


# ------------------------------------------------------------------------------------------------ summary


def _pct(v) -> str:
    return "—" if v is None else f"{100 * v:.1f} %"


def _num(v, fmt: str = ".2f") -> str:
    return "—" if v is None else format(v, fmt)


def summary_markdown(records: list[dict]) -> str:
    """The RESULTS.md rows from the records so far (parts not run yet are listed as not measured)."""
    by_part: dict[str, list[dict]] = {}
    for r in records:
        by_part.setdefault(r.get("part", "?"), []).append(r)

    def one(part: str, **match) -> dict | None:
        for r in by_part.get(part, []):  # results only, not the part's status line
            if "status" not in r and all(r.get(k) == v for k, v in match.items()):
                return r
        return None

    env = one("env") or {}
    settings_ = env.get("settings") or {}

    def run_of(part: str) -> dict | None:
        """A training part's run record, or one made of the epochs it finished before it was stopped."""
        run = one(part, kind="run")
        epochs = [r for r in by_part.get(part, []) if r.get("kind") == "epoch"]
        if run is not None or not epochs:
            return run
        return {"last": epochs[-1], "epochs": f"{len(epochs)} finished (stopped)", "iterations": "?",
                "compiled": settings_.get("device") == "cuda" and not part.endswith(":eager"),
                "wall_s": float("nan"), "peak_gib": None}
    lines = [f"Card: {env.get('device') or env.get('nvidia_smi') or 'not measured'}; torch {env.get('torch', '?')} "
             f"(CUDA {env.get('torch_cuda', '?')}); bf16 dense peak {env.get('bf16_peak_tflops') or 'unknown'} TFLOP/s; "
             f"{env.get('cpu_count', '?')} CPU cores; packages {env.get('packages', {})}", "",
             "| what | figure | peer / comparison |", "| --- | --- | --- |"]
    synth, prep = one("synth"), one("preprocess")
    lines.append(f"| `brats synth`, {synth['cases'] if synth else '?'} synthetic 1 mm cases, "
                 f"{synth['workers'] if synth else '?'} workers | "
                 + (f"{synth['seconds']:.1f} s" if synth else "not measured") + " | — |")
    grid = "1 mm" if settings_.get("downsample", 1) == 1 else f"×{settings_.get('downsample')} downsampled"
    lines.append(f"| `brats preprocess` at {grid} (mask, clip, z-score, crop; float16 cache) | "
                 + (f"{prep['cases']} cases in {prep['seconds']:.1f} s on {prep['workers']} workers: "
                    f"{prep['cases_per_s_per_core']:.3f} cases/s per core; {prep['mib_per_case']:.1f} MiB per case "
                    "on disk" if prep else "not measured") + " | — |")
    for model in ("unet3d", "fcnn", "resunet3d"):
        ours = run_of(f"train:{model}:ours")
        if ours is None and model != "unet3d":
            continue
        peer = run_of(f"train:{model}:monai") if model == "unet3d" else None
        last = (ours or {}).get("last", {})
        figure = (f"busy {_pct(last.get('busy_share'))}, data wait {_num(last.get('data_wait_seconds'), '.2f')} s "
                  f"(loader start {_num(last.get('loader_start_seconds'), '.2f')} s) of "
                  f"{_num(last.get('train_loop_seconds'), '.1f')} s, {_num(last.get('samples_per_s'), '.1f')} samples/s, "
                  f"{_num(last.get('tflops'), '.1f')} TFLOP/s ({_pct(last.get('tflops_peak_share'))} of peak); "
                  f"peak GPU memory {_num(ours.get('peak_gib'), '.2f')} GiB; run {ours['wall_s']:.0f} s"
                  if ours else "not measured")
        plast = (peer or {}).get("last", {})
        comparison = "—"
        if model == "unet3d":
            comparison = (f"MONAI CPU augmentation in the loader workers ({(peer or {}).get('iterations')} iterations "
                          f"per epoch): busy {_pct(plast.get('busy_share'))}, data wait "
                          f"{_num(plast.get('data_wait_seconds'), '.2f')} s (loader start "
                          f"{_num(plast.get('loader_start_seconds'), '.2f')} s) of "
                          f"{_num(plast.get('train_loop_seconds'), '.1f')} s, {_num(plast.get('samples_per_s'), '.1f')} "
                          f"samples/s" + (f" (ours {last['samples_per_s'] / plast['samples_per_s']:.2f}× the samples/s)"
                                          if last.get("samples_per_s") and plast.get("samples_per_s") else "")
                          if peer else ("MONAI not installed: row dropped"
                                        if (env.get("packages") or {}).get("monai") is None and env else "not measured"))
        if ours:
            how = (f"{ours.get('patch', settings_.get('patch'))}³ batch {ours.get('batch', settings_.get('batch'))}, "
                   + ("bf16, channels_last_3d, compiled" if ours["compiled"] else "float32 on the CPU, not compiled")
                   + f", our augmentation on the training device, "
                   f"{ours.get('workers', settings_.get('loader_workers'))} loader workers (last epoch of "
                   f"{ours['epochs']} × {ours['iterations']} iterations)")
        else:
            how = "not measured"
        lines.append(f"| `brats_lib.train` {model}, {how} | {figure} | {comparison} |")
    eager_run = run_of("train:unet3d:eager")
    ours_run = run_of("train:unet3d:ours")
    if eager_run:
        e, c = eager_run["last"], (ours_run or {}).get("last", {})
        lines.append(f"| same, unet3d without `torch.compile` | {_num(e.get('samples_per_s'), '.1f')} samples/s, busy "
                     f"{_pct(e.get('busy_share'))} | compiled / eager samples/s: "
                     + (f"{c['samples_per_s'] / e['samples_per_s']:.2f}×" if c.get("samples_per_s") else "—") + " |")
    for model in ("fcnn", "unet3d", "resunet3d"):
        eager, comp = one(f"step:{model}:eager"), one(f"step:{model}:compile")
        if not eager and not comp:
            continue

        def fig(r):
            return (f"{r['s_step_min']:.4f} / {r['s_step_median']:.4f} s/step (min / median), "
                    f"{r['samples_per_s']:.1f} samples/s, {r['tflops']:.1f} TFLOP/s ({_pct(r['tflops_peak_share'])} of "
                    f"peak), peak {_num(r['peak_gib'], '.2f')} GiB" if r else "not measured")
        ratio = (f"compile speed-up (median) {eager['s_step_median'] / comp['s_step_median']:.2f}×, (min) "
                 f"{eager['s_step_min'] / comp['s_step_min']:.2f}×" if eager and comp else "—")
        params = (eager or comp)["params_M"]
        lines.append(f"| training step alone, {model} ({params:.2f} M params), eager | {fig(eager)} | — |")
        backend = settings_.get("compile_backend", "inductor")
        lines.append(f"| same, `torch.compile` (backend {backend}) | {fig(comp)} (first {_num((comp or {}).get('warmup_s'), '.0f')} s: "
                     f"compilation) | {ratio} |")
    mem = [r for r in by_part.get("memory", []) if "cases" in r]
    if mem:
        first, last = mem[0], mem[-1]
        lines.append(f"| loader host memory, main + {first['workers']} workers, {first['size']}³ cached cases, patch "
                     f"{first['patch']}³, {first['batches']} batches of 2 | " + "; ".join(
                         f"{r['cases']} cases: PSS {r['peak_pss_total_mib']:.0f} MiB, RSS {r['peak_rss_total_mib']:.0f}"
                         f" MiB" for r in mem) + f" | ratio {last['cases']}/{first['cases']} cases: PSS "
                     f"{last['peak_pss_total_mib'] / first['peak_pss_total_mib']:.2f}, RSS "
                     f"{last['peak_rss_total_mib'] / first['peak_rss_total_mib']:.2f} (1.00 = flat) |")
    stages = [r for r in records if r.get("status")]
    lines += ["", "Wall time per part: " + "; ".join(
        f"{r['part']} {r['status']}" + (f" {r['seconds']:.0f} s" if r.get("seconds") is not None else "")
        + (f" ({r['why']})" if r.get("why") else "") for r in stages)]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
