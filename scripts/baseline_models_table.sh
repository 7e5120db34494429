#!/usr/bin/env bash
# The paper's video models (Tables 1-2) without and with ADA on the synthetic benchmark at the CPU setting
# (20 epochs), studio -> the three other domains, seeds 1-3: TSN, TRN, TRN-ATTN, TSM, I3D, Non-local, each by
# VideoVanilla (ERM) and VideoADA (ADA: transport cost on the last hidden layer), and TRN / TRN-ATTN + ADA*
# (every scale feature, Table 2). CPU time: about an hour on two cores.
#   bash scripts/baseline_models_table.sh [DATA_ROOT=data] [SEEDS="1 2 3"] [OUT=output]
# One paper_tasks.sh call per model (each model has its own setting, configs/trainers/*/<model>_cpu.yaml).
# Output: OUT/synthetic_dg/studio/<NAME>/<setting>/hp0_seedN_<hash>; then
#   python parse_test_res.py --table paper OUT/synthetic_dg
set -euo pipefail
# Busy 2-core machines: one thread per process avoids OpenMP spin-waits.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
grid() { bash "$(dirname "$0")/paper_tasks.sh" --root "${ROOT}" --seeds "${SEEDS}" --out "${OUT}" "$@"; }
ROOT=${1:-data} SEEDS=${2:-1 2 3} OUT=${3:-output}
grid synthetic_dg TSN=VideoVanilla TSN_ADA=VideoADA  # setting smallcnn_cpu (TSN head)
for model in trn:TRN trn_attn:TRN_ATTN tsm:TSM i3d:I3D nonlocal:NL; do
    grid --setting "${model%%:*}_cpu" synthetic_dg "${model#*:}=VideoVanilla" "${model#*:}_ADA=VideoADA"
done
for model in trn:TRN trn_attn:TRN_ATTN; do
    grid --setting "${model%%:*}_adastar_cpu" synthetic_dg "${model#*:}_ADAstar=VideoADA"
done
