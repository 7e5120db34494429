#!/usr/bin/env bash
# The prepared GPU check: bash scripts/gpu_check.sh [OUTPUT_DIR]   (default output/gpu_check)
# On a CUDA machine: the CUDA tests, the paper-preset benchmark (fp32, bf16 + channels_last, TRAIN.COMPILE) and a
# 1-epoch torchrun run of the main job on every visible GPU, in at most 8 minutes on one H200; it writes
# OUTPUT_DIR/gpu_check.json. Without CUDA it stops with exit code 2. scripts/gpu_check.py has the parts.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python scripts/gpu_check.py "$@"
