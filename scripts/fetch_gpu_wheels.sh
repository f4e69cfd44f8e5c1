#!/usr/bin/env bash
# The wheels the GPU machine's python3 (3.12, no network) lacks for scripts/gpu_profile.sh and
# benchmarks/gpu_check.sh: nibabel and nilearn (brats_lib's I/O and the synthetic anatomy) and monai (the
# peer), at the versions requirements*.txt pins; all pure Python. Their other needs (numpy, scipy, pandas,
# scikit-learn, joblib, lxml, requests, packaging, torch) are on that machine already.
#
#   bash scripts/fetch_gpu_wheels.sh      # in the repository root: writes .whl/ (git-ignored, about 15 MB)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PIP:-}" ]; then
  if [ -x .venv/bin/python ]; then PIP=".venv/bin/python -m pip"; else PIP="python3 -m pip"; fi
fi
mkdir -p .whl
$PIP download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform any \
  -d .whl nibabel==5.4.2 nilearn==0.14.1 monai==1.6.1
ls -l .whl
du -sh .whl
