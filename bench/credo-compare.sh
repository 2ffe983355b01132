#!/usr/bin/env bash
# The edge plan on ACA-Py 1.7.0 and on Credo 0.5.19, one mediator after the other, and a table
# (bench/prod_table.py). Cases:
#   acapy          scripts/acapy-stack.sh --mediator-only, implicit pickup (its only way)
#   acapy-peer4    the same, agents connecting with did:peer:4 (MEDIATOR_DID=peer4)
#   credo          scripts/credo-stack.sh, DirectDelivery (Credo's default), implicit pickup
#   credo-v2       QueueOnly, Pickup 2.0 polled every second (POLL_INTERVAL=1s)
#   credo-v2_live  QueueAndLiveModeDelivery, Pickup 2.0 live mode (what Credo wallets use)
# All with the same shape: 20 agents more every 20 s up to 60, 2 minutes, think 0.5-1.5 s.
#   give-out-acapy, give-out-credo   10 agents more every 15 s up to 300, think 0.5-1.5 s,
#                  stopping at the first level whose delivery p95 passes 1 s (ACA-Py: peer4)
#   phone-acapy, phone-credo         a phone's pace (think 30-60 s), 100 agents more every
#                  30 s up to 1,500, stopping where delivery p95 passes 5 s (ACA-Py: peer4)
# Usage: bench/credo-compare.sh OUT_DIR [CASE...] (default: the five same-shape cases).
# Needs target/release/acaload; results OUT_DIR/CASE.json and the table on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: $0 OUT_DIR [CASE...]}
shift
cases=("$@")
((${#cases[@]})) || cases=(acapy acapy-peer4 credo credo-v2 credo-v2_live)
mkdir -p "$out"
bin=target/release/acaload
[[ -x "$bin" ]] || { echo "build first: cargo build --release" >&2; exit 1; }
exec 9>/tmp/acaload-realstack.lock
flock 9

same=(--set STEP_TIME_SECS=20 --set USERS_ADDED_PER_STEP=20 --set USER_LIMIT=60
    --set TIME_LIMIT_MINS=2 --set ABORT_DELIVERY_P95=1h)
give_out=(--set STEP_TIME_SECS=15 --set USERS_ADDED_PER_STEP=10 --set USER_LIMIT=300
    --set TIME_LIMIT_MINS=4 --set ABORT_DELIVERY_P95=1s)
phone=(--set STEP_TIME_SECS=30 --set USERS_ADDED_PER_STEP=100 --set USER_LIMIT=1500
    --set TIME_LIMIT_MINS=4 --set THINK=30s..60s --set ABORT_DELIVERY_P95=5s)
export ACAPY_STACK_DIR=$PWD/.acapy-bench CREDO_DIR=$PWD/.credo-bench CREDO_NODE_DIR=$PWD/.credo/node

run() {
    local name=$1 env=$2
    shift 2
    "$bin" run plans/edge-agents.yaml -q --seed 11 --env-file "$env" "$@" \
        --out "$out/$name.json" >"$out/$name.txt" 2>&1 || true
}
acapy() {
    local name=$1
    shift
    scripts/acapy-stack.sh up --mediator-only "$out/acapy.env" >/dev/null
    run "$name" "$out/acapy.env" "$@"
    scripts/acapy-stack.sh down >/dev/null
}
credo() {
    local name=$1 forwarding=$2
    shift 2
    CREDO_FORWARDING=$forwarding scripts/credo-stack.sh up "$out/credo.env" 2>/dev/null
    run "$name" "$out/credo.env" "$@"
    scripts/credo-stack.sh down 2>/dev/null
}

for c in "${cases[@]}"; do
    case $c in
        acapy) acapy acapy "${same[@]}" ;;
        acapy-peer4) acapy acapy-peer4 "${same[@]}" --set MEDIATOR_DID=peer4 ;;
        credo) credo credo DirectDelivery "${same[@]}" ;;
        credo-v2) credo credo-v2 QueueOnly "${same[@]}" --set PICKUP=v2 --set POLL_INTERVAL=1s ;;
        credo-v2_live) credo credo-v2_live QueueAndLiveModeDelivery "${same[@]}" --set PICKUP=v2_live ;;
        give-out-acapy) acapy give-out-acapy "${give_out[@]}" --set MEDIATOR_DID=peer4 ;;
        give-out-credo) credo give-out-credo QueueAndLiveModeDelivery "${give_out[@]}" --set PICKUP=v2_live ;;
        phone-acapy) acapy phone-acapy "${phone[@]}" --set MEDIATOR_DID=peer4 ;;
        phone-credo) credo phone-credo QueueAndLiveModeDelivery "${phone[@]}" --set PICKUP=v2_live ;;
        *) echo "unknown case $c" >&2; exit 2 ;;
    esac
done
python3 bench/prod_table.py "$out" "${cases[@]}"
