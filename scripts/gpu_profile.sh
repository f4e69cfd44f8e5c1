#!/usr/bin/env bash
# The full profile on one GPU, measured end to end: one prepared device check (issue 13).
#
#   bash scripts/gpu_profile.sh [OUT_DIR]                       # on the GPU machine (OUT_DIR default: $OUT)
#   BUDGET=300 bash scripts/gpu_profile.sh "$OUT"               # a shorter budget (seconds, whole script)
#   BUDGET=200 bash scripts/gpu_profile.sh "$OUT" --only env synth preprocess train:unet3d:ours   # some parts
#   DRY_RUN=1 PYTHON=.venv/bin/python bash scripts/gpu_profile.sh /tmp/gpu_profile_dry   # tiny, on the CPU
#
# Runs benchmarks/gpu_profile.py (its docstring lists the parts): synthetic 1 mm data made on the spot,
# preprocessing, the training runs and steps of the three models at 128³ batch 2 bf16 channels_last_3d with
# and without torch.compile, the GPU busy share against MONAI's CPU-augmented pipeline, peak memory, the
# loader's host memory over 100 vs 1,350 cached cases. Results are written as they come to
# OUT_DIR/gpu_profile.jsonl, .log and .md, so a run stopped by a time limit still returns what it did.
#
# The GPU machine has no network and its python3 lacks nibabel, nilearn and monai: they travel as wheels
# in .whl/ (git-ignored), made here by `bash scripts/fetch_gpu_wheels.sh`; name .whl in the run's carry.
# Without them the environment check stops at once with one line saying so, not half-way.
set -uo pipefail
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1
OUT_DIR=${1:-${OUT:-/tmp/gpu_profile_out}}
PY=${PYTHON:-python3}
mkdir -p "$OUT_DIR"
echo "command: bash scripts/gpu_profile.sh $*  (BUDGET=${BUDGET:-360} DRY_RUN=${DRY_RUN:-})" | tee -a "$OUT_DIR/gpu_profile.log"
if compgen -G ".whl/*.whl" >/dev/null; then
  if ! $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/brats_site .whl/*.whl \
      2>&1 | tee -a "$OUT_DIR/gpu_profile.log"; then
    echo "gpu_profile: installing the carried wheels (.whl/) failed: see above" | tee -a "$OUT_DIR/gpu_profile.log"
    exit 2
  fi
  export PYTHONPATH=/tmp/brats_site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader \
  | tee -a "$OUT_DIR/gpu_profile.log"
exec $PY benchmarks/gpu_profile.py --out "$OUT_DIR" --budget "${BUDGET:-360}" ${DRY_RUN:+--dry-run} "${@:2}"  # e.g. --only env synth preprocess train:unet3d:ours
