#!/usr/bin/env bash
# The paper's final APN (Section 5.1): four APN + ADA* models, gamma = 0.001, 0.01, 0.1, 1, then the ensemble
# of the four on the target domains (most-confident member and softmax average).
#   bash scripts/apn/gamma_ensemble.sh DATA_ROOT DATASET_CFG TRAINER_CFG SOURCE "TARGETS" [SEED=1] [KEY VALUE ...]
# e.g. bash scripts/apn/gamma_ensemble.sh data configs/datasets/ucf_hmdb.yaml configs/trainers/APN/r50_paper.yaml ucf hmdb
# Run from the repository root. A finished run (results.json present) is skipped; an unfinished one resumes.
set -euo pipefail
if [ $# -lt 5 ]; then
    sed -n '2,6p' "$0"
    exit 2
fi
ROOT=$1 DATASET_CFG=$2 TRAINER_CFG=$3 SOURCE=$4 TARGETS=$5
SEED=${6:-1}
shift $(( $# < 6 ? $# : 6 ))
NAME=$(basename "$DATASET_CFG" .yaml)
CFG=$(basename "$TRAINER_CFG" .yaml)
OUT=output/$NAME/$SOURCE/APN/$CFG/seed$SEED

DIRS=()
for gamma in 0.001 0.01 0.1 1.0; do
    dir=$OUT/gamma$gamma
    DIRS+=("$dir")
    if [ -f "$dir/results.json" ]; then
        echo "Skip $dir: already finished"
        continue
    fi
    # shellcheck disable=SC2086  # TARGETS is a space-separated list of domains
    python train.py --root "$ROOT" --seed "$SEED" --trainer APN --dataset-config-file "$DATASET_CFG" \
        --config-file "$TRAINER_CFG" --source-domains "$SOURCE" --target-domains $TARGETS --output-dir "$dir" \
        TRAINER.APN.GAMMA "$gamma" "$@"
done
python ensemble.py --model-dirs "${DIRS[@]}" --output-dir "$OUT/ensemble"
