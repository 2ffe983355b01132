#!/usr/bin/env bash
# Edge mode at a phone's pace: plans/edge-agents.yaml with a few hundred edge agents (default
# 300: 30 added every 10 s, think 30-60 s, 3 min) against a local ACA-Py mediator alone, and
# acaload's CPU as a share of the mediator's. Target (issue 23) <= 10 %.
#
#   bench/lean-edge.sh [ACALOAD [OUT_DIR]]     # default: target/release/acaload, target/bench/lean-edge-DATE
#
# Prints two ratios: over the whole run (acaload's process from start to exit, the mediator's
# CPU between just before and just after it; onboarding and teardown included), and over the
# hold (from LEAN_EDGE_HOLD_FROM seconds after the start to the time limit: every agent
# connected, only thinks, tasks and the mediator's heartbeats). CPU is utime + stime from
# /proc/PID/stat, sampled once a second into OUT/cpu.tsv.
#
# Settings (environment): LEAN_EDGE_USERS (300), LEAN_EDGE_PER_STEP (30), LEAN_EDGE_STEP_SECS
# (10), LEAN_EDGE_MINS (3), LEAN_EDGE_THINK (30s..60s), LEAN_EDGE_HOLD_FROM (default: the
# ramp's end + 30 s), LEAN_PLAN (the plan; default plans/edge-agents.yaml of this tree),
# LEAN_STACK_PORT (5000: mediator 5000/5001/5002). The stack runs on its own ports and state
# dir, under flock /tmp/acaload-realstack.lock (taken here unless LEAN_REAL_LOCKED is set), so
# it never runs beside another real-stack job. Loopback only.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
ACALOAD=${1:-$ROOT/target/release/acaload}
OUT=${2:-$ROOT/target/bench/lean-edge-$(date +%Y%m%d-%H%M%S)}
BASE=${LEAN_STACK_PORT:-5000}
USERS=${LEAN_EDGE_USERS:-300}
PER_STEP=${LEAN_EDGE_PER_STEP:-30}
STEP_SECS=${LEAN_EDGE_STEP_SECS:-10}
MINS=${LEAN_EDGE_MINS:-3}
THINK=${LEAN_EDGE_THINK:-30s..60s}
PLAN=${LEAN_PLAN:-$ROOT/plans/edge-agents.yaml}
RUN_SECS=$(python3 -c "print(round($MINS * 60))")
HOLD_FROM=${LEAN_EDGE_HOLD_FROM:-$(((USERS + PER_STEP - 1) / PER_STEP * STEP_SECS + 30))}
((HOLD_FROM + 20 <= RUN_SECS)) || { echo "error: hold from ${HOLD_FROM} s leaves under 20 s of a ${RUN_SECS} s run" >&2; exit 2; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
if [[ -z ${LEAN_REAL_LOCKED:-} ]]; then
    LEAN_REAL_LOCKED=1 exec flock /tmp/acaload-realstack.lock "$0" "$ACALOAD" "$OUT"
fi
export ACAPY_STACK_DIR=${ACAPY_STACK_DIR:-/tmp/acaload-lean-stack}
export MEDIATOR_PORT=$BASE MEDIATOR_ADMIN_PORT=$((BASE + 1)) MEDIATOR_WS_PORT=$((BASE + 2))
ENV_FILE=$OUT/stack.env
STACK="$ROOT/scripts/acapy-stack.sh"
"$STACK" down >/dev/null 2>&1 || true
sampler=
cleanup() {
    [[ -n $sampler ]] && kill "$sampler" 2>/dev/null
    "$STACK" down >/dev/null 2>&1 || true
}
trap cleanup EXIT
"$STACK" up --mediator-only "$ENV_FILE" >"$OUT/stack-up.log" 2>&1 || { cat "$OUT/stack-up.log" >&2; exit 1; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null; }
MED=$(cat "$ACAPY_STACK_DIR/mediator.pid")
m0=$(ticks "$MED")
rc=0
t0=$(date +%s.%N)
# Bounded: the run's time limit, its teardown (300 agents remove their keys) and a margin.
timeout --kill-after=10 $((RUN_SECS + 120)) /usr/bin/time -f '%U %S %M' -o "$OUT/edge.time" \
    "$ACALOAD" run "$PLAN" --env-file "$ENV_FILE" -q --out "$OUT/edge.json" \
    --set USER_LIMIT="$USERS" --set USERS_ADDED_PER_STEP="$PER_STEP" \
    --set STEP_TIME_SECS="$STEP_SECS" --set TIME_LIMIT_MINS="$MINS" --set THINK="$THINK" \
    --set ABORT_DELIVERY_P95=1h >"$OUT/edge.stdout" 2>"$OUT/edge.stderr" &
timer=$!
# The acaload process is /usr/bin/time's child; sample it and the mediator once a second.
acaload_pid=
for _ in $(seq 50); do
    tp=$(pgrep -P "$timer" -x time || true)
    [[ -n $tp ]] && acaload_pid=$(pgrep -P "$tp" || true)
    [[ -n $acaload_pid ]] && break
    sleep 0.1
done
[[ -n $acaload_pid ]] || { echo "error: acaload did not start" >&2; exit 1; }
(
    while [[ -e /proc/$acaload_pid ]]; do
        a=$(ticks "$acaload_pid") && m=$(ticks "$MED") && [[ -n $a && -n $m ]] &&
            printf '%s\t%s\t%s\n' "$(date +%s.%N)" "$a" "$m"
        sleep 1
    done
) >"$OUT/cpu.tsv" &
sampler=$!
wait "$timer" || rc=$?
m1=$(ticks "$MED")
wait "$sampler" 2>/dev/null || true
sampler=
tck=$(getconf CLK_TCK)
# The last line: /usr/bin/time puts "Command exited with non-zero status N" before it.
read -r user sys maxkb < <(tail -n1 "$OUT/edge.time")
python3 - "$OUT" "$rc" "$t0" "$HOLD_FROM" "$RUN_SECS" "$user" "$sys" "$maxkb" "$((m1 - m0))" "$tck" <<'EOF'
import json, sys
out, rc, t0, hold_from, run_secs, user, sys_s, maxkb, med_ticks, tck = sys.argv[1:]
t0, hold_from, run_secs, tck = float(t0), float(hold_from), float(run_secs), int(tck)
acaload = float(user) + float(sys_s)
mediator = int(med_ticks) / tck
rows = [tuple(map(float, l.split("\t"))) for l in open(f"{out}/cpu.tsv") if l.strip()]
hold = [r for r in rows if hold_from <= r[0] - t0 <= run_secs]
h_secs = hold[-1][0] - hold[0][0] if len(hold) > 1 else 0
h_aca = (hold[-1][1] - hold[0][1]) / tck if len(hold) > 1 else 0
h_med = (hold[-1][2] - hold[0][2]) / tck if len(hold) > 1 else 0
res = json.load(open(f"{out}/edge.json"))
meta = {
    "case": "edge", "rc": int(rc), "requests": res["total"]["requests"],
    "acaload_s": round(acaload, 2), "mediator_s": round(mediator, 2),
    "ratio_pct": round(100 * acaload / max(mediator, 1e-9), 2),
    "hold_secs": round(h_secs, 1), "hold_acaload_s": round(h_aca, 2), "hold_mediator_s": round(h_med, 2),
    "hold_ratio_pct": round(100 * h_aca / max(h_med, 1e-9), 2), "hwm_kb": int(maxkb),
}
json.dump(meta, open(f"{out}/edge.meta", "w"))
print(f"edge: exit {rc}, {meta['requests']} requests; acaload {meta['acaload_s']} s CPU, "
      f"mediator {meta['mediator_s']} s: {meta['ratio_pct']} %; hold ({meta['hold_secs']} s): "
      f"acaload {meta['hold_acaload_s']} s, mediator {meta['hold_mediator_s']} s: "
      f"{meta['hold_ratio_pct']} %", file=sys.stderr)
EOF
