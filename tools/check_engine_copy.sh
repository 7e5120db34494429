#!/usr/bin/env bash
# The copy check against a Dassl source tree, under the name earlier docs use; tools/check_copies.py does the
# work (functions by shared token runs, shared messages, and shared line runs when `duplicates` is on PATH).
#
#   bash tools/check_engine_copy.sh DASSL_TREE [MIN_LINES]
set -euo pipefail
if [ $# -lt 1 ] || [ ! -d "$1" ]; then
    echo "usage: bash tools/check_engine_copy.sh DASSL_TREE [MIN_LINES]  (DASSL_TREE: a Dassl.pytorch checkout or export)" >&2
    exit 2
fi
here="$(cd "$(dirname "$0")/.." && pwd)"
exec "${PYTHON:-python3}" "$here/tools/check_copies.py" "$1" --min-lines "${2:-6}"
