#!/usr/bin/env bash
# The main job: install, then run every method on every task of the default suite (zoos are
# generated offline when absent) and render the leaderboard into results/<suite>/ (results/default/
# for the default suite): each suite's results live in their own folder, so SUITE=ci never
# touches the default suite's files.
#
# The methods run in parallel lanes, one CPU thread each, so every core of a small machine
# works: by default the two SNE methods in one lane, the other baselines in the other (each
# about half of the default suite's fit time); LANES=all runs everything in one process.
# Every cell is stored as it finishes, so rerunning after Ctrl-C or a crash finishes the rest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/env.sh
SUITE=${SUITE:-default}
RESULTS=${RESULTS:-results/$SUITE}
LANES=${LANES:-"sne,sne_stats statnn,deepsets,mlp,nfn_np,nfn_hnp,nft"}
# SEEDS (e.g. "0" or "0-2"): only those seeds, so a long suite can be run seed by seed and a
# partial run is still a complete comparison of every method on the seeds done.
seeds=()
[ -n "${SEEDS:-}" ] && seeds=(--seeds "$SEEDS")
ZB=.venv/bin/zoo-bench

pids=()
quiet=()  # the first lane draws the progress bars; the others print their summary at the end
trap 'kill "${pids[@]}" 2>/dev/null' INT TERM
for methods in $LANES; do
    OMP_NUM_THREADS=1 "$ZB" run --suite "$SUITE" --method "$methods" --task all \
        --results "$RESULTS" "${seeds[@]}" "${quiet[@]}" &
    pids+=($!)
    quiet=(--quiet)
done
status=0
for pid in "${pids[@]}"; do
    wait "$pid" || status=$?
done
[ "$status" -eq 0 ] || { echo "a lane failed (exit $status); rerun to finish the missing cells" >&2; exit "$status"; }
"$ZB" leaderboard --suite "$SUITE" --results "$RESULTS" --out "$RESULTS"
