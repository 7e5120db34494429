#!/usr/bin/env bash
# A grid: every task of a benchmark x every method given x seeds, then mean +- std per method and task.
#   bash scripts/paper_tasks.sh [--root DATA] [--setting SETTING] [--seeds "1 2 3"] [--out DIR] [--dry-run] BENCHMARK METHOD... [-- KEY VALUE ...]
# BENCHMARK: synthetic_dg (studio -> the other three), ucf_hmdb (Table 1), ssv2_dg (Table 3), pku_mmd (Table 4),
#   ntu_rgbd (Table 5), epic_kitchens_dg and jester_dg (STDN's: each kitchen -> the other two; source -> target),
#   pacs, digits_dg, office_home_dg (image DG as one-frame clips: leave-one-domain-out, as Dassl reports them),
#   or BENCHMARK:lodo for leave-one-domain-out (each domain once the target, the rest sources); the tasks come
#   from the dataset class (python scripts/benchmark_tasks.py BENCHMARK [lodo] lists them).
# METHOD: TRAINER, or NAME=TRAINER,KEY=VALUE,... (the keys go to that method only), e.g.
#   APN   APN_noADA=APN,TRAINER.APN.LEVELS=none   TSN=VideoVanilla   TSN_ADA=VideoADA,MODEL.HEAD.NAME=tsn
# SETTING names configs/trainers/TRAINER/SETTING.yaml (default smallcnn_cpu for synthetic_dg, else r50_paper).
# KEY VALUE pairs after `--` go to every run. Output: DIR/BENCHMARK/SOURCE/NAME/SETTING/seedN (DIR=output).
# A finished run (results.json present) is skipped; an unfinished one resumes. --dry-run prints the train.py
# commands instead of running them. Run from the repository root.
# e.g. bash scripts/paper_tasks.sh --root data ucf_hmdb TSN=VideoVanilla APN
#      bash scripts/paper_tasks.sh synthetic_dg TSN=VideoVanilla TSN_ADA=VideoADA APN
set -euo pipefail
usage() { sed -n '2,16p' "$0"; exit 2; }
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
PROTOCOL=$( [[ $1 == *:lodo ]] && echo lodo || true )  # empty: the benchmark's own protocol
shift
METHODS=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do METHODS+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
[ -n "$SETTING" ] || SETTING=$( [ "$BENCHMARK" = synthetic_dg ] && echo smallcnn_cpu || echo r50_paper )

# The tasks, SOURCES:TARGETS, from the benchmark's dataset class (its `tasks`, datasets/base.py)
# shellcheck disable=SC2086  # an empty PROTOCOL is no argument
TASK_LINES=$(python "$(dirname "$0")/benchmark_tasks.py" "$BENCHMARK" $PROTOCOL) || exit 2
mapfile -t TASKS <<< "$TASK_LINES"

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
