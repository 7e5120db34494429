#!/usr/bin/env bash
# The DG baselines of docs/results.md on the synthetic benchmark at the CPU setting, seeds 1-3, every method with
# the TSN head and with the APN head:
#   single  single source, studio -> street, sketch, glimpse (the methods that need one source domain), 20 epochs
#   lodo    leave-one-domain-out, 3 sources -> the held-out domain, 20 clips per class and domain, 20 epochs
#   equal   the APN-head rows of both protocols at 60 epochs (as many theta updates as APN + ADA* makes in 20:
#           Algorithm 1 takes 1 + number of levels steps per minibatch), into OUT/equal_updates
#   bash scripts/dg_baselines_table.sh [DATA_ROOT=data] [SEEDS="1 2 3"] [OUT=output]
#   PARTS="single lodo" bash scripts/dg_baselines_table.sh      # a part only (default: all three)
# Time on a 2-core CPU, one run at a time as here (summed from the runs' logs): single about 20 min, lodo about
# 4 h, equal about 7 h. One call per seed (SEEDS=1, 2, 3) runs side by side once the data exist.
# A finished run with the same config is not run again (scripts/paper_tasks.sh, a sweep.py call), so a stopped
# grid continues where it was.
# Tables: the last lines print the leave-one-domain-out tables (parse_test_res.py --table variants) and draw
# them as dot plots (table_variants.png next to table_variants.md).
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # busy 2-core machines: one thread per process
ROOT=${1:-data} SEEDS=${2:-1 2 3} OUT=${3:-output}
PARTS=${PARTS:-single lodo equal}
for part in $PARTS; do  # before any run starts
    case $part in
        single|lodo|equal) ;;
        *) echo "Unknown part '$part' in PARTS: use single, lodo or equal" >&2; exit 2 ;;
    esac
done
grid() { bash "$(dirname "$0")/paper_tasks.sh" --root "${ROOT}" --seeds "${SEEDS}" "$@"; }
APN=MODEL.HEAD.NAME=apn_pyramid
LODO_CLIPS=(DATASET.SYNTHETIC.VIDEOS_PER_CLASS 20)  # three sources hold as many clips as one source at 60

# Rows: <method> (TSN head) and <method>_APN (APN head, one override). ROWS is `all` for the 20-epoch grids,
# `apn` for the 60-epoch one (APN-head baselines only); KEY VALUE pairs go to every run.
single_source() {  # OUT_DIR ROWS [KEY VALUE ...]
    local out=$1 rows=$2; shift 2
    local tsn=() tsn_mix=()
    if [ "$rows" = all ]; then
        tsn=(TSN=VideoVanilla RSC=VideoRSC DomainMix_random=VideoDomainMix,TRAINER.VIDEODOMAINMIX.TYPE=random
             APN_ADAstar=APN)
        tsn_mix=(MixStyle=VideoVanilla)
    fi
    grid --out "$out" synthetic_dg "${tsn[@]}" "APN_ERM=VideoVanilla,$APN" "RSC_APN=VideoRSC,$APN" \
        "DomainMix_random_APN=VideoDomainMix,TRAINER.VIDEODOMAINMIX.TYPE=random,$APN" -- "$@"
    grid --out "$out" --setting mixstyle_smallcnn_cpu synthetic_dg "${tsn_mix[@]}" \
        "MixStyle_APN=VideoVanilla,$APN" -- "$@"
}

leave_one_out() {  # OUT_DIR ROWS [KEY VALUE ...]
    local out=$1 rows=$2; shift 2
    local tsn=() tsn_mix=()
    if [ "$rows" = all ]; then
        tsn=(TSN=VideoVanilla CrossGrad=VideoCrossGrad DDAIG=VideoDDAIG DAELDG=VideoDAELDG DomainMix=VideoDomainMix
             RSC=VideoRSC APN_ADAstar=APN)
        tsn_mix=(MixStyle=VideoVanilla)
    fi
    grid --out "$out" synthetic_dg:lodo "${tsn[@]}" "APN_ERM=VideoVanilla,$APN" \
        "CrossGrad_APN=VideoCrossGrad,$APN" "DDAIG_APN=VideoDDAIG,$APN" "DAELDG_APN=VideoDAELDG,$APN" \
        "DomainMix_APN=VideoDomainMix,$APN" "RSC_APN=VideoRSC,$APN" -- "${LODO_CLIPS[@]}" "$@"
    grid --out "$out" --setting mixstyle_smallcnn_cpu synthetic_dg:lodo "${tsn_mix[@]}" \
        "MixStyle_APN=VideoVanilla,$APN" -- "${LODO_CLIPS[@]}" "$@"
}

for part in $PARTS; do
    case $part in
        single) single_source "${OUT}" all ;;
        lodo) leave_one_out "${OUT}" all ;;
        equal) single_source "${OUT}/equal_updates" apn OPTIM.MAX_EPOCH 60
               leave_one_out "${OUT}/equal_updates" apn OPTIM.MAX_EPOCH 60 ;;
    esac
done
# Single-source rows: python parse_test_res.py OUT/synthetic_dg/studio/<NAME>/<setting> (printed above).
python parse_test_res.py --table variants "${OUT}/synthetic_dg" --exclude studio/ \
    --figure "${OUT}/synthetic_dg/table_variants.png" --chance 12.5
[ ! -d "${OUT}/equal_updates/synthetic_dg" ] ||
    python parse_test_res.py --table variants "${OUT}/equal_updates/synthetic_dg" --exclude studio/ \
        --figure "${OUT}/equal_updates/synthetic_dg/table_variants.png" --chance 12.5
