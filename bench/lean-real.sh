#!/usr/bin/env bash
# The real-stack case of bench/lean.sh (issue 13 item 1): plans/mediator.yaml with the seed's
# shape (10 users every 10 s up to 40, 90 s) against a local mediator + multitenant ACA-Py,
# and acaload's CPU as a share of the two agents' CPU over the run. Target <= 1 %.
#
#   bench/lean-real.sh [ACALOAD [OUT_DIR]]     # default: target/release/acaload, target/bench/lean-real-DATE
#
# The stack runs on its own ports (LEAN_STACK_PORT, default 5000: mediator 5000/5001/5002,
# agent 5010/5011) and state dir, under flock /tmp/acaload-realstack.lock so it never runs
# beside another real-stack job. CPU is utime + stime from /proc/PID/stat: acaload's over its
# whole run (by /usr/bin/time), the agents' between just before and just after it.
# LEAN_PLAN runs another plan file (default plans/mediator.yaml of this tree), so two binaries
# can be measured on the same plan.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
ACALOAD=${1:-$ROOT/target/release/acaload}
OUT=${2:-$ROOT/target/bench/lean-real-$(date +%Y%m%d-%H%M%S)}
BASE=${LEAN_STACK_PORT:-5000}
PLAN=${LEAN_PLAN:-$ROOT/plans/mediator.yaml}
mkdir -p "$OUT"
if [[ -z ${LEAN_REAL_LOCKED:-} ]]; then
    LEAN_REAL_LOCKED=1 exec flock /tmp/acaload-realstack.lock "$0" "$ACALOAD" "$OUT"
fi
export ACAPY_STACK_DIR=${ACAPY_STACK_DIR:-/tmp/acaload-lean-stack}
export MEDIATOR_PORT=$BASE MEDIATOR_ADMIN_PORT=$((BASE + 1)) MEDIATOR_WS_PORT=$((BASE + 2))
export AGENT_PORT=$((BASE + 10)) AGENT_ADMIN_PORT=$((BASE + 11))
ENV_FILE=$OUT/stack.env
STACK="$ROOT/scripts/acapy-stack.sh"
"$STACK" down >/dev/null 2>&1 || true
trap '"$STACK" down >/dev/null 2>&1 || true' EXIT
"$STACK" up "$ENV_FILE" >"$OUT/stack-up.log" 2>&1 || { cat "$OUT/stack-up.log" >&2; exit 1; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
MED=$(cat "$ACAPY_STACK_DIR/mediator.pid")
MULTI=$(cat "$ACAPY_STACK_DIR/multi.pid")
m0=$(ticks "$MED"); a0=$(ticks "$MULTI")
rc=0
/usr/bin/time -f '%U %S %M' -o "$OUT/real.time" "$ACALOAD" run "$PLAN" \
    --env-file "$ENV_FILE" --set STEP_TIME_SECS=10 --set USERS_ADDED_PER_STEP=10 \
    --set USER_LIMIT=40 --set TIME_LIMIT_MINS=1.5 -q --out "$OUT/real.json" \
    >"$OUT/real.stdout" 2>"$OUT/real.stderr" || rc=$?
m1=$(ticks "$MED"); a1=$(ticks "$MULTI")
tck=$(getconf CLK_TCK)
# The last line: /usr/bin/time puts "Command exited with non-zero status N" before it.
read -r user sys maxkb < <(tail -n1 "$OUT/real.time")
requests=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['total']['requests'])" "$OUT/real.json")
acaload_ticks=$(python3 -c "print(round(($user + $sys) * $tck))")
cat >"$OUT/real.meta" <<EOF
{"case": "real", "rc": $rc, "requests": $requests, "acaload_ticks": $acaload_ticks,
 "mediator_ticks": $((m1 - m0)), "multi_ticks": $((a1 - a0)), "agents_ticks": $((m1 - m0 + a1 - a0)),
 "hwm_kb": $maxkb, "clk_tck": $tck}
EOF
printf 'real stack: exit %s, %s requests; acaload %s s CPU, mediator %s s, multitenant agent %s s: %s %%\n' \
    "$rc" "$requests" "$(python3 -c "print(round($user + $sys, 2))")" \
    "$(((m1 - m0) / tck))" "$(((a1 - a0) / tck))" \
    "$(python3 -c "print(round(100 * $acaload_ticks / max($((m1 - m0 + a1 - a0)), 1), 2))")" >&2
# For bench/pgo.sh (LEAN_REAL_EDGE=1): 20 edge agents for 30 s on the same stack afterwards,
# so the profile also covers the edge-agent paths (not measured).
if [[ -n ${LEAN_REAL_EDGE:-} ]]; then
    (cd "$ROOT" && "$ACALOAD" run plans/edge-agents.yaml --env-file "$ENV_FILE" -q \
        --out "$OUT/edge.json" --set STEP_TIME_SECS=10 --set USERS_ADDED_PER_STEP=10 \
        --set USER_LIMIT=20 --set TIME_LIMIT_MINS=0.5 --set DRAIN_PINGS=true) \
        >"$OUT/edge.stdout" 2>"$OUT/edge.stderr"
fi
