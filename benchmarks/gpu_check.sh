#!/usr/bin/env bash
# One prepared GPU check: every CUDA path of the toolkit, with the figures recorded.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]
#   ONLY="synth train_run predict evaluate" bash benchmarks/gpu_check.sh   # a subset of the steps
#
# Exercises augmentation on the GPU (correctness vs CPU and throughput vs MONAI), the training step of each
# model (bf16 autocast + channels_last_3d, optionally torch.compile) vs MONAI's DynUNet, a short real
# training run through brats_lib.train on synthetic data at full resolution, `brats predict` on the GPU, the
# lesion-wise evaluation of those predictions, and sliding-window inference vs MONAI. Each step has its own
# time limit so one failure does not hide the others. Python packages missing on the GPU machine travel as
# wheels in .whl/ (nibabel, nilearn, monai): see the device notes in the README.
set -uo pipefail
export PYTHONUNBUFFERED=1
OUT_DIR=${1:-${OUT:-/tmp/gpu_check}}
mkdir -p "$OUT_DIR"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
WORK=/tmp/brats_gpu
mkdir -p "$WORK"

step() {  # step NAME SECONDS CMD...   (ONLY="name name" runs just those steps)
  local name=$1 limit=$2; shift 2
  if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]]; then return 0; fi
  echo "=== $name"
  local t0=$(date +%s)
  timeout "$limit" "$@" 2>&1 | grep -v -E '[0-9]+(it|case|cell)/s\]|s/(it|case|cell)\]' | tee "$OUT_DIR/$name.log"
  local rc=${PIPESTATUS[0]}
  echo "=== $name: rc=$rc in $(( $(date +%s) - t0 )) s"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, numpy; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(), 'numpy', numpy.__version__)"

# the most important figures first; the whole script no longer fits one 10-minute call: run it in two,
#   ONLY="augment_check train_step synth train_run predict evaluate inference_bench" and
#   ONLY="augment_bench augment_elastic train_compile"
step augment_check 60 python3 benchmarks/bench_augment.py --check --device cuda
step train_step 150 python3 benchmarks/bench_train_step.py --device cuda --patch 128 --batch 2

step synth 60 python3 -m brats_lib.cli synth --out "$WORK/synthetic" --n 6 --seed 0 --workers 6
cat > "$WORK/train.json" <<JSON
{"data_dir": "$WORK/synthetic", "cache_dir": "$WORK/cache", "run_dir": "$WORK/runs/unet3d",
 "model": {"name": "unet3d", "features_per_stage": [32, 64, 128, 256, 320]},
 "patch_size": 128, "batch_size": 2, "epochs": 3, "iterations_per_epoch": 30, "val_patches": 8,
 "device": "cuda", "workers": 8, "preprocess": {"downsample": 1}}
JSON
step train_run 120 python3 -m brats_lib.train --config "$WORK/train.json"
cp "$WORK/runs/unet3d/metrics.csv" "$OUT_DIR/train_metrics.csv" 2>/dev/null
[ -f "$WORK/cache/splits.json" ] && python3 - "$WORK" <<'PY'
import json, shutil, sys
from pathlib import Path
work = Path(sys.argv[1])
splits = json.loads((work / "cache" / "splits.json").read_text())
test = (work / "test_cases")
test.mkdir(exist_ok=True)
ids = [i for name in ("test", "val") for i in splits.get(name, [])]
for cid in ids:
    if not (test / cid).exists():
        shutil.copytree(work / "synthetic" / cid, test / cid)
print("prediction cases:", ids)
PY
step predict 60 python3 -m brats_lib.cli predict --run "$WORK/runs/unet3d" --in "$WORK/test_cases" \
  --out "$WORK/predictions" --device cuda
step evaluate 30 python3 -m brats_lib.cli evaluate --pred "$WORK/predictions" --gt "$WORK/test_cases" \
  --out "$OUT_DIR/evaluation.csv" --workers 4
step inference_bench 90 python3 benchmarks/bench_inference.py --device cuda --repeats 3
# the commands exactly as benchmarks/RESULTS.md writes them beside their figures
step augment_bench 120 python3 benchmarks/bench_augment.py --device cuda --batch 8 --n 256
step augment_elastic 120 python3 benchmarks/bench_augment.py --elastic --device cuda --batch 8 --n 256
step train_compile 300 python3 benchmarks/bench_train_step.py --device cuda --patch 128 --batch 2 --compile
echo "=== done"
