#!/usr/bin/env bash
# The paper's tasks on one real benchmark: every source domain -> the other domain(s), seeds 1-3, then
# mean +- std per task. Tables 1 (ucf_hmdb), 3 (ssv2_dg), 4 (pku_mmd) and 5 (ntu_rgbd).
#   bash scripts/paper_tasks.sh DATA_ROOT BENCHMARK [TRAINER=APN] [CONFIG=r50_paper] [SEEDS="1 2 3"] [KEY VALUE ...]
# KEY VALUE pairs go to every run but not into the output path: give other settings their own CONFIG file.
# e.g. bash scripts/paper_tasks.sh data pku_mmd APN r50_paper
# The benchmark must be prepared (DATASETS.md); CONFIG names configs/trainers/TRAINER/CONFIG.yaml. Output:
# output/BENCHMARK/SOURCE/TRAINER/CONFIG/seedN. Run from the repository root. A finished run (results.json
# present) is skipped; an unfinished one resumes.
set -euo pipefail
if [ $# -lt 2 ]; then
    sed -n '2,9p' "$0"
    exit 2
fi
ROOT=$1 BENCHMARK=$2
TRAINER=${3:-APN}
CONFIG=${4:-r50_paper}
SEEDS=${5:-"1 2 3"}
shift $(( $# < 5 ? $# : 5 ))

case $BENCHMARK in  # SOURCE:TARGETS, as in the paper's tables
    ucf_hmdb) TASKS=("ucf:hmdb" "hmdb:ucf") ;;
    ssv2_dg) TASKS=("doing:pretending" "pretending:doing") ;;
    pku_mmd) TASKS=("left:middle right" "middle:left right" "right:left middle") ;;
    ntu_rgbd) TASKS=("camera1:camera2 camera3" "camera2:camera1 camera3" "camera3:camera1 camera2") ;;
    *) echo "Unknown benchmark '$BENCHMARK': use ucf_hmdb, ssv2_dg, pku_mmd or ntu_rgbd" >&2; exit 2 ;;
esac

for task in "${TASKS[@]}"; do
    source=${task%%:*}
    targets=${task#*:}
    out=output/$BENCHMARK/$source/$TRAINER/$CONFIG
    for seed in $SEEDS; do
        dir=$out/seed$seed
        if [ -f "$dir/results.json" ]; then
            echo "Skip $dir: already finished"
            continue
        fi
        # shellcheck disable=SC2086  # targets is a space-separated list of domains
        python train.py --root "$ROOT" --seed "$seed" --trainer "$TRAINER" \
            --dataset-config-file "configs/datasets/$BENCHMARK.yaml" \
            --config-file "configs/trainers/$TRAINER/$CONFIG.yaml" \
            --source-domains "$source" --target-domains $targets --output-dir "$dir" "$@"
    done
    echo "== $BENCHMARK: $source -> $targets ($TRAINER, $CONFIG)"
    python parse_test_res.py "$out"
done
