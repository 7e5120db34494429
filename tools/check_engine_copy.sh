#!/usr/bin/env bash
# Copy check of the built-in engine against a Dassl source tree (issue 7).
#
#   bash tools/check_engine_copy.sh DASSL_TREE [MIN_LINES]
#
# Puts this checkout's framework/ and the given Dassl tree side by side in a temporary folder, runs
# `duplicates` over it and prints every pair that crosses the two (one side ours, the other Dassl's).
# Pairs inside one project are left out: they are not the question here. Exit status 0 always (a row is a
# place to look, not a verdict); the last line says how many crossing pairs were found.
set -euo pipefail
if [ $# -lt 1 ] || [ ! -d "$1" ]; then
    echo "usage: bash tools/check_engine_copy.sh DASSL_TREE [MIN_LINES]  (DASSL_TREE: a Dassl.pytorch checkout or export)" >&2
    exit 2
fi
command -v duplicates >/dev/null || { echo "the 'duplicates' tool is not on PATH" >&2; exit 2; }
here="$(cd "$(dirname "$0")/.." && pwd)"
dassl="$(cd "$1" && pwd)"
min_lines="${2:-6}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/ours" "$work/dassl"
cp -r "$here/framework" "$work/ours/framework"
# Only Dassl's Python package matters (configs and docs are data and prose, which duplicates skips anyway).
if [ -d "$dassl/dassl" ]; then cp -r "$dassl/dassl" "$work/dassl/dassl"; else cp -r "$dassl/." "$work/dassl/"; fi
[ -d "$dassl/tools" ] && cp -r "$dassl/tools" "$work/dassl/tools"
find "$work" -name '__pycache__' -prune -exec rm -rf {} +
report="$(cd "$work" && duplicates --repo "$work" --min-lines "$min_lines" --most 200 --seconds 300)"
crossing="$(printf '%s\n' "$report" | grep -E '^ *D[0-9]+ ' | grep -E 'ours/' | grep -E 'dassl/' || true)"
printf '%s\n' "$report" | grep -E '^(left out|incomplete):' || true
if [ -n "$crossing" ]; then
    # The config-key table must match Dassl's keys and defaults by design: mark it rather than hide it.
    printf '%s\n' "$crossing" | sed -E '/ours\/framework\/builtin\/config\.py/s/$/   [allowed: config-key table]/'
    echo "crossing pairs (>= $min_lines lines): $(printf '%s\n' "$crossing" | wc -l)"
else
    echo "crossing pairs (>= $min_lines lines): 0"
fi
