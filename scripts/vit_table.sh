#!/usr/bin/env bash
# APN + ADA*, APN (no ADA) and TSN on the tiny ViT frame encoder beside the same three on frame_smallcnn, on the
# synthetic benchmark at the CPU setting (20 epochs), studio -> the three other domains, seeds 1-3.
#   bash scripts/vit_table.sh [DATA_ROOT=data] [SEEDS="1 2 3"] [OUT=output/vit_table] [KEY VALUE ...]
# KEY VALUE pairs go to every run (e.g. OPTIM.MAX_EPOCH 1 for a quick check of the script).
# Output: OUT/synthetic_dg/studio/<NAME>/{vit_cpu,smallcnn_cpu}/hp0_seedN_<hash>, then the table (rows "TSN", "APN",
# "TSN (ViT-tiny)", "APN (ViT-tiny)"; columns base and ADA*) in OUT/synthetic_dg/table_variants.{md,csv}.
# Its own OUT by default: a grid folder that also holds other settings of these methods (e.g. APN_60ep) would
# put two settings in one cell, which parse_test_res.py refuses.
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # busy 2-core machines: one thread per process
ROOT=${1:-data} SEEDS=${2:-1 2 3} OUT=${3:-output/vit_table}
shift $(( $# < 3 ? $# : 3 ))
for setting in vit_cpu smallcnn_cpu; do
    bash "$(dirname "$0")/paper_tasks.sh" --root "$ROOT" --seeds "$SEEDS" --out "$OUT" --setting "$setting" \
        synthetic_dg TSN=VideoVanilla APN=APN,TRAINER.APN.LEVELS=none APN_ADAstar=APN ${1+-- "$@"}
done
python parse_test_res.py --table variants "$OUT/synthetic_dg"
