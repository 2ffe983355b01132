#!/usr/bin/env bash
# The same edge plan and shape on three mediators, one after the other, and a table:
#   lab     scripts/acapy-stack.sh up --mediator-only (ws://, SQLite, one process)
#   tls-1   scripts/prod-stack.sh, one instance (wss:// through nginx, askar-postgres)
#   tls-2   scripts/prod-stack.sh, two instances behind nginx without stickiness
#   pool-2  scripts/prod-stack.sh, one instance, askar pool of 2 (PROD_POOL_MAX=2), a steeper shape
# Usage: bench/prod-compare.sh OUT_DIR [CASE...]   (default: all four). Needs target/release/acaload.
# Each case starts its mediator, runs, stops it; results OUT_DIR/CASE.json and a table on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: $0 OUT_DIR [lab|tls-1|tls-2|pool-2 ...]}
shift
cases=("$@")
((${#cases[@]})) || cases=(lab tls-1 tls-2 pool-2)
mkdir -p "$out"
bin=target/release/acaload
[[ -x "$bin" ]] || { echo "build first: cargo build --release" >&2; exit 1; }
exec 9>/tmp/acaload-realstack.lock
flock 9

# 20 agents more every 20 s up to 60, 2 minutes, think 0.5-1.5 s (the plan's default).
shape=(--set STEP_TIME_SECS=20 --set USERS_ADDED_PER_STEP=20 --set USER_LIMIT=60
    --set TIME_LIMIT_MINS=2 --set ABORT_DELIVERY_P95=1h)
export PROD_DIR=$PWD/.prod-bench PROD_PORT=3700

run() {
    local name=$1 env=$2
    shift 2
    "$bin" run plans/edge-agents.yaml -q --seed 11 --env-file "$env" "${shape[@]}" "$@" \
        --out "$out/$name.json" >"$out/$name.txt" 2>&1 || true
}

for c in "${cases[@]}"; do
    case $c in
        lab)
            ACAPY_STACK_DIR=$PWD/.acapy-bench scripts/acapy-stack.sh up --mediator-only "$out/lab.env" >/dev/null
            run lab "$out/lab.env"
            ACAPY_STACK_DIR=$PWD/.acapy-bench scripts/acapy-stack.sh down >/dev/null
            ;;
        tls-1 | tls-2)
            PROD_INSTANCES=${c#tls-} scripts/prod-stack.sh start >/dev/null
            run "$c" "$PROD_DIR/stack.env"
            scripts/prod-stack.sh stop --purge >/dev/null
            ;;
        pool-2)
            PROD_INSTANCES=1 PROD_POOL_MAX=2 scripts/prod-stack.sh start >/dev/null
            run pool-2 "$PROD_DIR/stack.env" --set STEP_TIME_SECS=15 --set USERS_ADDED_PER_STEP=15 \
                --set USER_LIMIT=90 --set THINK=200ms..600ms
            scripts/prod-stack.sh stop --purge >/dev/null
            ;;
        *) echo "unknown case $c" >&2; exit 2 ;;
    esac
done
python3 bench/prod_table.py "$out" "${cases[@]}"
