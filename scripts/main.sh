#!/usr/bin/env bash
# The main job: install, then run every method on every task of the default suite (zoos are
# generated offline when absent) and render the leaderboard into results/<suite>/ (results/default/
# for the default suite): each suite's results live in their own folder, so SUITE=ci never
# touches the default suite's files.
#
# The work is one job per (lane, seed), where a lane is a group of methods (by default each
# method alone, the costliest first), and `WORKERS` one-thread processes (default: one per core)
# take the jobs in order, seed by seed, from a shared queue, so every core works until the last
# job whatever the methods cost. LANES=all runs every method in each job. Every cell is stored
# as it finishes, so rerunning after Ctrl-C or a crash finishes the rest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/env.sh
SUITE=${SUITE:-default}
RESULTS=${RESULTS:-results/$SUITE}
# one method per job, ordered by their cost per seed (one thread, idle 2-core VM, the arch suite
# with the CNN-only pairs it once held: deepsets 517 s, sne_stats 495, sne 426, nfn_np 359, nft
# 250, mlp 215, nfn_hnp 129, statnn 22)
LANES=${LANES:-"deepsets sne_stats sne nfn_np nft mlp nfn_hnp statnn"}
read -ra lanes <<< "$LANES"
WORKERS=${WORKERS:-$(nproc 2>/dev/null || echo 2)}
ZB=.venv/bin/zoo-bench

# SEEDS (e.g. "0", "0-2" or "0-2,7"): only those seeds, so a long suite can be run seed by seed
# and a partial run is still a complete comparison of every method on the seeds done.
seed_args=()
[ -n "${SEEDS:-}" ] && seed_args=(--seeds "$SEEDS")
seed_list=$("$ZB" tasks --suite "$SUITE" --list-seeds "${seed_args[@]}")  # exits on a bad SEEDS
read -ra seeds <<< "$seed_list"

jobs=()  # "methods seed", seed by seed, so the first seeds complete first
for seed in "${seeds[@]}"; do
    for methods in "${lanes[@]}"; do jobs+=("$methods $seed"); done
done
queue=$(mktemp -d)
run_job() {  # methods seed [--quiet]
    OMP_NUM_THREADS=1 "$ZB" run --suite "$SUITE" --method "$1" --task all --results "$RESULTS" \
        --seeds "$2" "${@:3}"
}
worker() {  # claim jobs in order (mkdir is atomic) until none is left
    local i methods seed t0 ok where
    for i in "${!jobs[@]}"; do
        mkdir "$queue/$i" 2>/dev/null || continue
        read -r methods seed <<< "${jobs[$i]}"
        t0=$SECONDS
        ok=1  # the first job draws its progress (zoo generation, fits); the others log to a file
        if [ "$i" -eq 0 ]; then
            run_job "$methods" "$seed" || ok=0
        else
            run_job "$methods" "$seed" --quiet > "$queue/$i.log" 2>&1 || ok=0
        fi
        if [ "$ok" -eq 1 ]; then
            echo "[$((i + 1))/${#jobs[@]}] seed $seed: $methods done ($((SECONDS - t0)) s)"
        else
            where="log: $queue/$i.log"
            [ "$i" -eq 0 ] && where="output above"
            echo "[$((i + 1))/${#jobs[@]}] seed $seed: $methods FAILED ($where)" >&2
            touch "$queue/failed"
        fi
    done
}

echo "$SUITE: ${#jobs[@]} jobs (lanes x seeds ${seeds[*]}) on $WORKERS one-thread workers"
pids=()
stop() {  # workers and their running jobs together, so no worker starts another job
    local kids
    kids=$(for pid in "${pids[@]}"; do pgrep -P "$pid" || true; done)
    kill "${pids[@]}" $kids 2>/dev/null || true
    exit 130
}
trap stop INT TERM
for _ in $(seq "$WORKERS"); do
    worker &
    pids+=($!)
done
wait "${pids[@]}"
if [ -e "$queue/failed" ]; then
    echo "a job failed (logs in $queue); rerun to finish the missing cells" >&2
    exit 1
fi
rm -rf "$queue"
"$ZB" leaderboard --suite "$SUITE" --results "$RESULTS" --out "$RESULTS"
