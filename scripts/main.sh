#!/usr/bin/env bash
# The main job: install, then run every method on every task of the default suite (zoos are
# generated offline when absent) and render the leaderboard into results/<suite>/ (results/default/
# for the default suite): each suite's results live in their own folder, so SUITE=ci never
# touches the default suite's files.
#
# The methods run in parallel lanes, one CPU thread each, so every core of a small machine
# works: by default the two SNE methods and NFT in one lane, the other baselines in the other
# (LANES="sne,sne_stats,nft statnn,deepsets,mlp,nfn_np,nfn_hnp"); LANES=all runs everything in
# one process.
# Every cell is stored as it finishes, so rerunning after Ctrl-C or a crash finishes the rest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/env.sh
SUITE=${SUITE:-default}
RESULTS=${RESULTS:-results/$SUITE}
LANES=${LANES:-"sne,sne_stats,nft statnn,deepsets,mlp,nfn_np,nfn_hnp"}
ZB=.venv/bin/zoo-bench

pids=()
quiet=()  # the first lane draws the progress bars; the others print their summary at the end
trap 'kill "${pids[@]}" 2>/dev/null' INT TERM
for methods in $LANES; do
    OMP_NUM_THREADS=1 "$ZB" run --suite "$SUITE" --method "$methods" --task all \
        --results "$RESULTS" "${quiet[@]}" &
    pids+=($!)
    quiet=(--quiet)
done
status=0
for pid in "${pids[@]}"; do
    wait "$pid" || status=$?
done
[ "$status" -eq 0 ] || { echo "a lane failed (exit $status); rerun to finish the missing cells" >&2; exit "$status"; }
"$ZB" leaderboard --suite "$SUITE" --results "$RESULTS" --out "$RESULTS"
