#!/usr/bin/env bash
# The synthetic benchmark comparison: TSN, TSN + ADA, APN, APN + ADA, APN + ADA* (CPU scale), studio -> the
# three other domains, one run per seed, then mean +- std per method (about 1 hour on two CPU cores).
#   bash scripts/synthetic_table.sh [DATA_ROOT=data] [SEEDS="1 2 3"]
# Run from the repository root. A finished run (results.json present) is skipped; an unfinished one resumes.
set -euo pipefail
ROOT=${1:-data}
SEEDS=${2:-"1 2 3"}
DATASET=configs/datasets/synthetic_dg.yaml
OUT=output/synthetic_dg/studio

run() {  # NAME TRAINER CONFIG [KEY VALUE ...]
    local name=$1 trainer=$2 config=$3
    shift 3
    for seed in $SEEDS; do
        local dir=$OUT/$name/seed$seed
        if [ -f "$dir/results.json" ]; then
            echo "Skip $dir: already finished"
            continue
        fi
        python train.py --root "$ROOT" --seed "$seed" --trainer "$trainer" --dataset-config-file $DATASET \
            --config-file "$config" --source-domains studio --target-domains street sketch glimpse \
            --output-dir "$dir" "$@"
    done
}

run TSN VideoVanilla configs/trainers/VideoVanilla/smallcnn_cpu.yaml
run TSN_ADA VideoADA configs/trainers/VideoADA/smallcnn_cpu.yaml
run APN APN configs/trainers/APN/smallcnn_cpu.yaml TRAINER.APN.LEVELS none
run APN_ADA APN configs/trainers/APN/smallcnn_cpu.yaml TRAINER.APN.LEVELS III
run APN_ADAstar APN configs/trainers/APN/smallcnn_cpu.yaml TRAINER.APN.LEVELS II+III
# Control: Algorithm 1 takes 1 + (number of levels) theta steps per minibatch, so in 20 epochs APN + ADA*
# updates 3 times as often as APN. APN_60ep gives APN (no ADA) the same number of updates.
run APN_60ep APN configs/trainers/APN/smallcnn_cpu.yaml TRAINER.APN.LEVELS none OPTIM.MAX_EPOCH 60

for name in TSN TSN_ADA APN APN_ADA APN_ADAstar APN_60ep; do
    echo "== $name"
    python parse_test_res.py "$OUT/$name"
done
