#!/usr/bin/env bash
# The baseline models (TRN, TSM, I3D, Non-local, TRN-ATTN) without and with ADA on the synthetic benchmark, at a
# shortened CPU setting (10 epochs, 20 clips per class and domain), studio -> the three other domains, seeds 1-3.
#   bash scripts/baseline_models_table.sh [DATA_ROOT=data] [SEEDS="1 2 3"] [OUT=output/baseline_models]
# One paper_tasks.sh call per model (each model has its own setting, configs/trainers/*/<model>_cpu.yaml).
# Output: OUT/synthetic_dg/studio/<NAME>/<model>_cpu/seedN; `python parse_test_res.py` on each folder.
set -euo pipefail
# Busy 2-core machines: one thread per process avoids OpenMP spin-waits (6-60x faster steps measured here).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
for model in trn:TRN tsm:TSM i3d:I3D nonlocal:NL trn_attn:TRN_ATTN; do
    name=${model#*:}
    bash "$(dirname "$0")/paper_tasks.sh" --root "${1:-data}" --seeds "${2:-1 2 3}" --out "${3:-output/baseline_models}" \
        --setting "${model%%:*}_cpu" synthetic_dg "$name=VideoVanilla" "${name}_ADA=VideoADA" \
        -- OPTIM.MAX_EPOCH 10 DATASET.SYNTHETIC.VIDEOS_PER_CLASS 20
done
