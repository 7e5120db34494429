#!/usr/bin/env bash
# The synthetic benchmark comparison of docs/results.md: TSN, TSN + ADA, APN, APN + ADA, APN + ADA* (CPU scale),
# studio -> the three other domains, seeds 1-3, and an equal-updates control (about an hour on two CPU cores).
#   bash scripts/synthetic_table.sh [DATA_ROOT=data] [SEEDS="1 2 3"]
# Output: output/synthetic_dg/studio/<method>/smallcnn_cpu/hp0_seedN_<hash> (see scripts/paper_tasks.sh).
set -euo pipefail
# Control APN_60ep: Algorithm 1 takes 1 + (number of levels) theta steps per minibatch, so in 20 epochs
# APN + ADA* updates 3 times as often as APN; APN_60ep gives APN (no ADA) the same number of updates.
exec bash "$(dirname "$0")/paper_tasks.sh" --root "${1:-data}" --seeds "${2:-1 2 3}" synthetic_dg \
    TSN=VideoVanilla TSN_ADA=VideoADA APN=APN,TRAINER.APN.LEVELS=none APN_ADA=APN,TRAINER.APN.LEVELS=III \
    APN_ADAstar=APN APN_60ep=APN,TRAINER.APN.LEVELS=none,OPTIM.MAX_EPOCH=60
