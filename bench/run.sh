#!/usr/bin/env bash
# Benchmark of issue 6 item 5: acaload against the nginx stub the peer tools were measured
# against (Goose 54k req/s, drill 46k, Locust FastHttpUser 9.1k), with wrk as the raw reference.
#
#   bench/run.sh                  # 3 interleaved repetitions of a, b, c; medians; ~4-6 minutes
#   REPS=1 bench/run.sh           # one repetition
#   ACALOAD_BIN=path bench/run.sh # measure that binary instead of building this tree
#
# Cases (acaload and wrk pinned to CPU 1, the stub's one nginx worker to CPU 0):
#   a  bench/chain.yaml: 50 users, no think time, 15 s; POST wallet -> GET /connections with the
#      captured bearer (mediator id captured by filter) -> POST send-ping. Target: >= 50 % of c.
#   b  bench/think.yaml: 10,000 users, 1 s think, 30 s (spawned at 5,000/s); the steady-state
#      rate after spawning against 30,000 req/s. Target: >= 99 % of it in under 200 MB RSS.
#   c  wrk -t1 -c50 on GET /connections (with a bearer) as the raw reference.
# Referees: the stub's /__bench_status request counter (sampled every second) must match the
# tool's count, and its errors.log (non-2xx only) must stay empty.
#
# Settings (environment): REPS (3), CASES ("a b c": which cases to run), A_SECS (15), B_SECS (30), C_SECS (15), B_USERS (10000),
# B_SPAWN_RATE (5000), BENCH_NICE (-10, see below; 0 to turn off), QUIET_WAIT (10: seconds to
# wait before each case for the other processes on the machine to go quiet), BENCH_CONF (the
# stub's conf), BENCH_OUT (where the raw files go; default target/bench/DATE).
#
# On a shared machine other sessions' builds compete for the two CPUs. With the kernel's
# autogroup scheduling, `nice` only ranks processes within one session, so the bench runs in a
# session of its own whose autogroup gets BENCH_NICE (weight ~9x a normal session at -10), and
# so does the stub (nginx starts its own session). The CPU time of everything else on CPU 0
# and CPU 1 is reported per run (other%), so a disturbed run shows as such.
set -euo pipefail
NICE=${BENCH_NICE:--10}
if [[ -z ${ACALOAD_BENCH_SESSION:-} && $NICE != 0 && -e /proc/self/autogroup ]]; then
    ACALOAD_BENCH_SESSION=1 setsid --wait "$0" "$@" &
    child=$!
    trap 'kill -TERM -- -"$child" 2>/dev/null || true' INT TERM
    rc=0
    while kill -0 "$child" 2>/dev/null; do
        wait "$child" && rc=0 || rc=$?
    done
    exit "$rc"
fi
if [[ $NICE != 0 && -w /proc/self/autogroup ]]; then
    echo "$NICE" >/proc/self/autogroup 2>/dev/null || echo "warning: cannot set the autogroup nice" >&2
fi
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
REPS=${REPS:-3}
CASES=${CASES:-a b c}
A_SECS=${A_SECS:-15}
B_SECS=${B_SECS:-30}
C_SECS=${C_SECS:-15}
B_USERS=${B_USERS:-10000}
B_SPAWN_RATE=${B_SPAWN_RATE:-5000}
QUIET_WAIT=${QUIET_WAIT:-10}
PORT=18080
BEARER='Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.x'

CONF=${BENCH_CONF:-$HERE/nginx.conf}
[[ -f $CONF ]] || { echo "error: $CONF not found" >&2; exit 2; }

# --- tools -------------------------------------------------------------------------------
missing=()
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
command -v wrk >/dev/null || missing+=(wrk)
[[ -x /usr/bin/time ]] || missing+=(time)
command -v taskset >/dev/null || missing+=(util-linux)
command -v curl >/dev/null || missing+=(curl)
command -v python3 >/dev/null || missing+=(python3)
if ((${#missing[@]})); then
    echo "installing ${missing[*]}" >&2
    apt-get update -qq
    apt-get install -y -qq -o DPkg::Lock::Timeout=300 "${missing[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/"; then
    echo "error: something already listens on 127.0.0.1:$PORT" >&2
    exit 2
fi

if [[ -z ${ACALOAD_BIN:-} ]]; then
    echo "building acaload (release)" >&2
    (cd "$ROOT" && cargo build --release -q)
fi

# --- the stub ----------------------------------------------------------------------------
PREFIX=$(mktemp -d /tmp/acaload-bench.XXXXXX)
chmod 755 "$PREFIX"
mkdir -p "$PREFIX/logs" "$PREFIX/temp"
cp "$CONF" "$PREFIX/nginx.conf"
# A private copy, so a rebuild by someone else during the bench does not swap the binary.
cp "${ACALOAD_BIN:-$ROOT/target/release/acaload}" "$PREFIX/acaload"
ACALOAD=$PREFIX/acaload
OUT=${BENCH_OUT:-$ROOT/target/bench/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"

stop_stub() {
    local pid
    pid=$(cat "$PREFIX/logs/nginx.pid" 2>/dev/null || true)
    [[ -n $pid ]] || return 0
    "$NGINX" -p "$PREFIX/" -c "$PREFIX/nginx.conf" -e "$PREFIX/logs/error.log" -s stop 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
}
cleanup() {
    [[ -n ${SAMPLER:-} ]] && kill "$SAMPLER" 2>/dev/null || true
    stop_stub
    rm -rf "$PREFIX"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

nice -n "$NICE" taskset -c 0 "$NGINX" -p "$PREFIX/" -c "$PREFIX/nginx.conf" -e "$PREFIX/logs/error.log"
for _ in $(seq 50); do
    curl -sf -o /dev/null "http://127.0.0.1:$PORT/__bench_status" && break
    sleep 0.1
done
MASTER=$(cat "$PREFIX/logs/nginx.pid")
if [[ $NICE != 0 && -w /proc/$MASTER/autogroup ]]; then
    echo "$NICE" >"/proc/$MASTER/autogroup" 2>/dev/null || true
fi
WORKER=$(ps --ppid "$MASTER" -o pid= | tr -d ' ' | head -1)
echo "stub: nginx master $MASTER, worker $WORKER on CPU 0; raw files in $OUT" >&2

stub_requests() { curl -s "http://127.0.0.1:$PORT/__bench_status" | awk 'NR==3 {print $3}'; }
proc_cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }   # utime + stime, clock ticks
# Per CPU: ticks in processes (user + nice + system) and in interrupts (irq + softirq: on
# loopback, much of the TCP work of both ends runs there).
cpu_proc() { awk -v c="cpu$1" '$1 == c {print $2 + $3 + $4}' /proc/stat; }
cpu_irq() { awk -v c="cpu$1" '$1 == c {print $7 + $8}' /proc/stat; }
err_lines() { wc -l <"$PREFIX/logs/errors.log" 2>/dev/null || echo 0; }

# Samples the stub's counter every second (server-side time series of one case).
sampler() {
    while true; do
        printf '%s %s\n' "$(date +%s.%N)" "$(stub_requests)"
        sleep 1
    done
}

# Waits (at most QUIET_WAIT s) until other processes use under 15 % of CPU 0 and of CPU 1.
wait_quiet() {
    local waited=0 a0 a1 b0 b1 tick
    tick=$(getconf CLK_TCK)
    while ((waited < QUIET_WAIT)); do
        a0=$(cpu_proc 0); a1=$(cpu_proc 1)
        sleep 1
        b0=$(cpu_proc 0); b1=$(cpu_proc 1)
        if (((b0 - a0) * 100 < 15 * tick && (b1 - a1) * 100 < 15 * tick)); then
            break
        fi
        waited=$((waited + 1))
    done
    ((waited == 0)) || echo "  waited ${waited}s for other processes to go quiet" >&2
}

# run_case CASE REP COMMAND...: runs under /usr/bin/time on CPU 1 and records the referees.
run_case() {
    local case=$1 rep=$2
    shift 2
    local base=$OUT/$case-$rep
    wait_quiet
    local req0 err0 p0a p1a i0a i1a ngx0 t0 req1 err1 p0b p1b i0b i1b ngx1 t1 rc=0
    req0=$(stub_requests); err0=$(err_lines)
    p0a=$(cpu_proc 0); p1a=$(cpu_proc 1); i0a=$(cpu_irq 0); i1a=$(cpu_irq 1); ngx0=$(proc_cpu "$WORKER")
    sampler >"$base.server" &
    SAMPLER=$!
    t0=$(date +%s.%N)
    /usr/bin/time -v -o "$base.time" nice -n "$NICE" taskset -c 1 "$@" >"$base.stdout" 2>"$base.stderr" || rc=$?
    t1=$(date +%s.%N)
    kill "$SAMPLER" 2>/dev/null || true
    wait "$SAMPLER" 2>/dev/null || true
    SAMPLER=
    req1=$(stub_requests); err1=$(err_lines)
    local reads
    reads=$(wc -l <"$base.server")   # the sampler's own /__bench_status requests
    p0b=$(cpu_proc 0); p1b=$(cpu_proc 1); i0b=$(cpu_irq 0); i1b=$(cpu_irq 1); ngx1=$(proc_cpu "$WORKER")
    tail -n +$((err0 + 1)) "$PREFIX/logs/errors.log" | head -n "$((err1 - err0))" >"$base.errors"
    cat >"$base.meta" <<EOF
{"case": "$case", "rep": $rep, "rc": $rc, "t0": $t0, "t1": $t1,
 "stub_requests": $((req1 - req0 - 1 - reads)), "sampler_reads": $reads, "stub_errors": $((err1 - err0)),
 "cpu0_proc_ticks": $((p0b - p0a)), "cpu1_proc_ticks": $((p1b - p1a)),
 "cpu0_irq_ticks": $((i0b - i0a)), "cpu1_irq_ticks": $((i1b - i1a)),
 "nginx_ticks": $((ngx1 - ngx0)), "clk_tck": $(getconf CLK_TCK)}
EOF
    printf '  %s rep %s: exit %s, stub counted %s requests, %s non-2xx\n' \
        "$case" "$rep" "$rc" "$((req1 - req0 - 1 - reads))" "$((err1 - err0))" >&2
}

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if (($(ulimit -n) < B_USERS + 100)); then
    echo "warning: open-file limit $(ulimit -n) is below $B_USERS users + slack" >&2
fi

# Warm-up (not counted): page cache, the stub's first connections.
taskset -c 1 wrk -t1 -c50 -d2s -H "$BEARER" "http://127.0.0.1:$PORT/connections" >/dev/null
taskset -c 1 "$ACALOAD" run "$HERE/chain.yaml" -q --set DURATION=2s >/dev/null 2>&1 || true

for rep in $(seq "$REPS"); do
    echo "repetition $rep of $REPS" >&2
    if [[ " $CASES " == *" a "* ]]; then
        run_case a "$rep" "$ACALOAD" run "$HERE/chain.yaml" --set DURATION="${A_SECS}s" --out "$OUT/a-$rep.json"
    fi
    if [[ " $CASES " == *" b "* ]]; then
        run_case b "$rep" "$ACALOAD" run "$HERE/think.yaml" --set DURATION="${B_SECS}s" \
            --set USERS="$B_USERS" --set SPAWN_RATE="$B_SPAWN_RATE" --out "$OUT/b-$rep.json"
    fi
    if [[ " $CASES " == *" c "* ]]; then
        run_case c "$rep" wrk -t1 -c50 -d"${C_SECS}s" -H "$BEARER" "http://127.0.0.1:$PORT/connections"
    fi
done

python3 "$HERE/summarize.py" "$OUT" "$B_USERS" | tee "$OUT/summary.txt"
