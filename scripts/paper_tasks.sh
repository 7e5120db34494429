#!/usr/bin/env bash
# A grid: every task of a benchmark x every method given x seeds, then mean +- std per method and task.
#   bash scripts/paper_tasks.sh [--root DATA] [--setting SETTING] [--seeds "1 2 3"] [--out DIR] [--dry-run] BENCHMARK METHOD... [-- KEY VALUE ...]
# BENCHMARK: synthetic_dg (studio -> the other three), ucf_hmdb (Table 1), ssv2_dg (Table 3), pku_mmd (Table 4),
#   ntu_rgbd (Table 5), epic_kitchens_dg and jester_dg (STDN's: each kitchen -> the other two; source -> target),
#   pacs, digits_dg, office_home_dg (image DG as one-frame clips: leave-one-domain-out, as Dassl reports them),
#   or BENCHMARK:lodo for leave-one-domain-out (each domain once the target, the rest sources).
# METHOD: TRAINER, or NAME=TRAINER,KEY=VALUE,... (the keys go to that method only), e.g.
#   APN   APN_noADA=APN,TRAINER.APN.LEVELS=none   TSN=VideoVanilla   TSN_ADA=VideoADA,MODEL.HEAD.NAME=tsn
# SETTING names configs/trainers/TRAINER/SETTING.yaml (default smallcnn_cpu for synthetic_dg, else r50_paper).
# KEY VALUE pairs after `--` go to every run. Output: DIR/BENCHMARK/SOURCE/NAME/SETTING/seedN (DIR=output).
# A finished run (results.json present) is skipped; an unfinished one resumes. --dry-run prints the train.py
# commands instead of running them. Run from the repository root.
# e.g. bash scripts/paper_tasks.sh --root data ucf_hmdb TSN=VideoVanilla APN
#      bash scripts/paper_tasks.sh synthetic_dg TSN=VideoVanilla TSN_ADA=VideoADA APN
set -euo pipefail
usage() { sed -n '2,17p' "$0"; exit 2; }
ROOT=data SETTING="" SEEDS="1 2 3" OUT=output DRY_RUN=0
while [ $# -gt 0 ]; do
    case $1 in
        --root) ROOT=$2; shift 2 ;;
        --setting) SETTING=$2; shift 2 ;;
        --seeds) SEEDS=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --dry-run) DRY_RUN=1; shift ;;
        -h|--help) usage ;;
        -*) echo "Unknown option $1" >&2; usage ;;
        *) break ;;
    esac
done
[ $# -ge 2 ] || usage
BENCHMARK=${1%%:*}
PROTOCOL=$( [[ $1 == *:lodo ]] && echo lodo || echo paper )
shift
METHODS=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do METHODS+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
[ -n "$SETTING" ] || SETTING=$( [ "$BENCHMARK" = synthetic_dg ] && echo smallcnn_cpu || echo r50_paper )

case $BENCHMARK in  # the paper's SOURCE:TARGETS tasks, and every domain of the benchmark
    synthetic_dg) TASKS=("studio:street sketch glimpse"); DOMAINS="studio street sketch glimpse" ;;
    ucf_hmdb) TASKS=("ucf:hmdb" "hmdb:ucf"); DOMAINS="ucf hmdb" ;;
    ssv2_dg) TASKS=("doing:pretending" "pretending:doing"); DOMAINS="doing pretending" ;;
    pku_mmd) TASKS=("left:middle right" "middle:left right" "right:left middle"); DOMAINS="left middle right" ;;
    ntu_rgbd) TASKS=("camera1:camera2 camera3" "camera2:camera1 camera3" "camera3:camera1 camera2")
              DOMAINS="camera1 camera2 camera3" ;;
    epic_kitchens_dg) TASKS=("D1:D2 D3" "D2:D1 D3" "D3:D1 D2"); DOMAINS="D1 D2 D3" ;;
    jester_dg) TASKS=("source:target"); DOMAINS="source target" ;;
    pacs) DOMAINS="art_painting cartoon photo sketch"; PROTOCOL=lodo ;;
    digits_dg) DOMAINS="mnist mnist_m svhn syn"; PROTOCOL=lodo ;;
    office_home_dg) DOMAINS="art clipart product real_world"; PROTOCOL=lodo ;;
    *) echo "Unknown benchmark '$BENCHMARK': use synthetic_dg, ucf_hmdb, ssv2_dg, pku_mmd, ntu_rgbd, epic_kitchens_dg," \
            "jester_dg, pacs, digits_dg or office_home_dg" >&2; exit 2 ;;
esac
if [ "$PROTOCOL" = lodo ]; then  # SOURCES:TARGET, sources joined by '+' in the output path
    TASKS=()
    for target in $DOMAINS; do
        TASKS+=("$(echo "$DOMAINS" | tr ' ' '\n' | grep -vx "$target" | paste -sd' '):$target")
    done
fi

for task in "${TASKS[@]}"; do
    sources=${task%%:*}
    targets=${task#*:}
    for method in "${METHODS[@]}"; do
        IFS=, read -r -a parts <<< "$method"
        head=${parts[0]}
        name=${head%%=*}
        trainer=${head#*=}
        overrides=()
        for kv in "${parts[@]:1}"; do overrides+=("${kv%%=*}" "${kv#*=}"); done
        config=configs/trainers/$trainer/$SETTING.yaml
        [ -f "$config" ] || { echo "No $config: write it (a _BASE_ line and what differs) or pick --setting" >&2; exit 2; }
        out=$OUT/$BENCHMARK/${sources// /+}/$name/$SETTING
        for seed in $SEEDS; do
            dir=$out/seed$seed
            if [ -f "$dir/results.json" ]; then
                echo "Skip $dir: already finished"
                continue
            fi
            # shellcheck disable=SC2086  # sources and targets are space-separated lists of domains
            command=(python train.py --root "$ROOT" --seed "$seed" --trainer "$trainer"
                --dataset-config-file "configs/datasets/$BENCHMARK.yaml" --config-file "$config"
                --source-domains $sources --target-domains $targets --output-dir "$dir"
                ${overrides[@]+"${overrides[@]}"} "$@")
            if [ "$DRY_RUN" = 1 ]; then echo "${command[*]}"; else "${command[@]}"; fi
        done
        echo "== $BENCHMARK: $sources -> $targets ($name: $trainer, $SETTING)"
        [ "$DRY_RUN" = 1 ] || python parse_test_res.py "$out"
    done
done
