#!/usr/bin/env bash
# A grid: every task of a benchmark x every method given x seeds, then each method's mean +- SE over the seeds:
# one `python sweep.py launch` and one `python sweep.py collect` (docs/sweeps.md).
#   bash scripts/paper_tasks.sh [--root DATA] [--setting SETTING] [--seeds "1 2 3"] [--out DIR] [--dry-run]
#        [--n-hparams N] [--budget epochs|updates|passes] [--launcher L] [--slots N] BENCHMARK METHOD... [-- KEY VALUE ...]
# BENCHMARK: synthetic_dg (studio -> the other three), ucf_hmdb (Table 1), ssv2_dg (Table 3), pku_mmd (Table 4),
#   ntu_rgbd (Table 5), epic_kitchens_dg and jester_dg (STDN's: each kitchen -> the other two; source -> target),
#   pacs, digits_dg, office_home_dg (image DG as one-frame clips: leave-one-domain-out, as Dassl reports them),
#   or BENCHMARK:lodo for leave-one-domain-out (each domain once the target, the rest sources); the tasks come
#   from the dataset class (python scripts/benchmark_tasks.py BENCHMARK [lodo] lists them).
# METHOD: TRAINER, or NAME=TRAINER,KEY=VALUE,... (the keys go to that method only), e.g.
#   APN   APN_noADA=APN,TRAINER.APN.LEVELS=none   TSN=VideoVanilla   TSN_ADA=VideoADA,MODEL.HEAD.NAME=tsn
# SETTING names configs/trainers/TRAINER/SETTING.yaml (default smallcnn_cpu for synthetic_dg, else r50_paper).
# KEY VALUE pairs after `--` go to every run. Each method runs its config's values (--n-hparams 1, the default;
# more: a random search, reported at the source-val-selected draw). Output: DIR/BENCHMARK/SOURCES/NAME/SETTING/
# hp0_seedN_<hash of the run's config> (DIR=output): a changed override is a new run; a finished run with the
# same config is not run again, an unfinished one resumes. --dry-run prints the train.py commands instead.
# Run from the repository root.
# e.g. bash scripts/paper_tasks.sh --root data ucf_hmdb TSN=VideoVanilla APN
#      bash scripts/paper_tasks.sh synthetic_dg TSN=VideoVanilla TSN_ADA=VideoADA APN
set -euo pipefail
usage() { sed -n '2,20p' "$0"; exit 2; }
PLAN=() LAUNCH=() SEEDS="1 2 3" DRY_RUN=0
while [ $# -gt 0 ]; do
    case $1 in
        --root|--setting|--out|--n-hparams|--budget) [ $# -ge 2 ] || usage; PLAN+=("$1" "$2"); shift 2 ;;
        --launcher|--slots) [ $# -ge 2 ] || usage; LAUNCH+=("$1" "$2"); shift 2 ;;
        --seeds) [ $# -ge 2 ] || usage; SEEDS=$2; shift 2 ;;
        --dry-run) DRY_RUN=1; shift ;;
        -h|--help) usage ;;
        -*) echo "Unknown option $1" >&2; usage ;;
        *) break ;;
    esac
done
[ $# -ge 2 ] || usage
BENCHMARK=$1
shift
METHODS=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do METHODS+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
# shellcheck disable=SC2086  # SEEDS is a space-separated list
OPTIONS=(--benchmark "$BENCHMARK" --methods "${METHODS[@]}" ${PLAN[@]+"${PLAN[@]}"} --seeds $SEEDS)
sweep() { python "$(dirname "$0")/../sweep.py" "$@"; }
if [ "$DRY_RUN" = 1 ]; then
    sweep launch "${OPTIONS[@]}" --launcher print -- "$@"
    exit
fi
sweep launch "${OPTIONS[@]}" ${LAUNCH[@]+"${LAUNCH[@]}"} -- "$@"
sweep collect "${OPTIONS[@]}" -- "$@"
