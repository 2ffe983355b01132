#!/usr/bin/env bash
# Benchmark of issue 13 item 1 ("lean at real-agent rates"): what acaload costs when the load
# is light, as a real agent's is.
#
#   bench/lean.sh                       # 3 interleaved repetitions; medians; ~9 minutes
#   REPS=1 bench/lean.sh                # one repetition
#   ACALOAD_BIN=path bench/lean.sh      # measure that binary instead of building this tree
#                                       # (default: cargo build --profile dist, as shipped)
#   bench/lean.sh --real-stack          # also the seed's shape on real ACA-Py (see below)
#
# Placement, as in bench/run.sh: the stubs on CPU 0 (nginx by its conf, slow_stub.py by
# taskset) and acaload on CPU 1, so the figure is acaload's own cost and not that of sharing a
# core with the stub it loads (a load generator and its target do not share cores in a real
# test; on one shared core every request preempts the other process and each runs with the
# other's caches: the instant case costs about half as much again). LEAN_PIN=0 leaves acaload
# and slow_stub.py unpinned (nginx stays on CPU 0), as the figures before 2026-11-29's third
# pass in bench/LEAN.md were taken. On one CPU nothing is pinned.
# Cases (the stubs are separate processes whose CPU is not counted):
#   instant  bench/think.yaml, 40 users, 1 s think, against the nginx stub of
#            bench/nginx.conf (answers at once). Target <= 50 us CPU/request.
#   slow     the same against bench/slow_stub.py answering every request after 40 ms.
#            Target <= 50 us CPU/request.
#   idle     bench/idle.yaml: one user that only sleeps. Target <= 1 ms CPU per second.
#   rss      bench/think.yaml with 1 user against the nginx stub. Target: peak RSS <= 15 MB.
# CPU per request is measured over a steady window (WARM s after the start to 2 s before the
# end): acaload's CPU time (the sum of its threads' run time, /proc/PID/task/*/schedstat, in
# ns) divided by the requests the stub counted in the same window. Peak RSS is the kernel's
# high-water mark (VmHWM) at the end of the run, file-backed pages of the binary included.
#
# --real-stack: scripts/acapy-stack.sh up on ports 5000+ (its own ACAPY_STACK_DIR), under
# flock /tmp/acaload-realstack.lock, runs plans/mediator.yaml with the seed's shape (10 users
# every 10 s up to 40, 90 s) and prints acaload's CPU as a share of the two agents' CPU
# (utime + stime from /proc/PID/stat over the run). Target <= 1 %.
#
# Settings (environment): LEAN_CASES (default "instant slow idle rss": which cases, in order),
# REPS (3), SECS (50: length of the instant/slow runs), IDLE_SECS (30),
# WARM (5), LEAN_PIN (1), BENCH_NICE (-10, as bench/run.sh), LEAN_PORT (18180), SLOW_PORT (18181),
# BENCH_CONF, BENCH_OUT (default target/bench/lean-DATE).
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
REAL=0
[[ ${1:-} == --real-stack ]] && REAL=1
REPS=${REPS:-3}
CASES=${LEAN_CASES:-instant slow idle rss}
SECS=${SECS:-50}
IDLE_SECS=${IDLE_SECS:-30}
WARM=${WARM:-5}
PORT=${LEAN_PORT:-18180}
SLOW_PORT=${SLOW_PORT:-18181}

CONF=${BENCH_CONF:-$HERE/nginx.conf}
[[ -f $CONF ]] || { echo "error: $CONF not found" >&2; exit 2; }

missing=()
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
[[ -x /usr/bin/time ]] || missing+=(time)
command -v curl >/dev/null || missing+=(curl)
command -v python3 >/dev/null || missing+=(python3)
command -v flock >/dev/null || missing+=(util-linux)
if ((${#missing[@]})); then
    echo "installing ${missing[*]}" >&2
    apt-get update -qq
    apt-get install -y -qq -o DPkg::Lock::Timeout=300 "${missing[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
for p in "$PORT" "$SLOW_PORT"; do
    if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$p/"; then
        echo "error: something already listens on 127.0.0.1:$p" >&2
        exit 2
    fi
done

PREFIX=$(mktemp -d /tmp/acaload-lean.XXXXXX)
chmod 755 "$PREFIX"
mkdir -p "$PREFIX/logs" "$PREFIX/temp"
if [[ -n ${ACALOAD_BIN:-} ]]; then
    cp "$ACALOAD_BIN" "$PREFIX/acaload"
else
    # The dist profile (fat LTO, one codegen unit) is what the Dockerfile ships.
    echo "building acaload (cargo build --profile dist)" >&2
    (cd "$ROOT" && cargo build --profile dist -q)
    cp "$ROOT/target/dist/acaload" "$PREFIX/acaload"
fi
ACALOAD=$PREFIX/acaload
OUT=${BENCH_OUT:-$ROOT/target/bench/lean-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"

sed "s/127.0.0.1:18080/127.0.0.1:$PORT/" "$CONF" >"$PREFIX/nginx.conf"
SLOW_PID=
cleanup() {
    [[ -n $SLOW_PID ]] && kill "$SLOW_PID" 2>/dev/null || true
    local pid
    pid=$(cat "$PREFIX/logs/nginx.pid" 2>/dev/null || true)
    if [[ -n $pid ]]; then
        "$NGINX" -p "$PREFIX/" -c "$PREFIX/nginx.conf" -e "$PREFIX/logs/error.log" -s stop 2>/dev/null || true
    fi
    rm -rf "$PREFIX"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
nice -n "$NICE" "$NGINX" -p "$PREFIX/" -c "$PREFIX/nginx.conf" -e "$PREFIX/logs/error.log"
PIN=${LEAN_PIN:-1}
(($(nproc) >= 2)) || PIN=0
ON_ACALOAD=() ON_STUB=()
if ((PIN)); then
    ON_ACALOAD=(taskset -c 1) ON_STUB=(taskset -c 0)
fi
"${ON_STUB[@]}" python3 "$HERE/slow_stub.py" "$SLOW_PORT" 40 2>"$PREFIX/logs/slow-errors.log" &
SLOW_PID=$!
for p in "$PORT" "$SLOW_PORT"; do
    for _ in $(seq 50); do
        curl -sf -o /dev/null "http://127.0.0.1:$p/__bench_status" && break
        sleep 0.1
    done
done
echo "stubs: nginx on :$PORT, slow_stub.py (40 ms) on :$SLOW_PORT; $( ((PIN)) && echo "stubs on CPU 0, acaload on CPU 1" || echo "unpinned"); raw files in $OUT" >&2

stub_requests() { curl -s "http://127.0.0.1:$1/__bench_status" | awk 'NR==3 {print $3}'; }
# ns of CPU of all the process's threads.
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%d", s}'; }

# measure NAME REP PORT WINDOW_START WINDOW_END ACALOAD-ARGS...: one run; writes NAME-REP.meta.
measure() {
    local name=$1 rep=$2 port=$3 w0=$4 w1=$5
    shift 5
    local base=$OUT/$name-$rep tpid pid c0 c1 r0 r1 rc=0
    /usr/bin/time -v -o "$base.time" "${ON_ACALOAD[@]}" "$ACALOAD" run "$@" -q --out "$base.json" >"$base.stdout" 2>"$base.stderr" &
    tpid=$!
    for _ in $(seq 100); do
        pid=$(pgrep -P "$tpid" | head -1 || true)
        [[ -n $pid ]] && break
        sleep 0.05
    done
    sleep "$w0"
    c0=$(cpu_ns "$pid"); r0=$(stub_requests "$port")
    sleep "$((w1 - w0))"
    c1=$(cpu_ns "$pid"); r1=$(stub_requests "$port")
    grep -E 'Rss|Anonymous|Pss_File' /proc/"$pid"/smaps_rollup >"$base.smaps" 2>/dev/null || true
    local hwm
    hwm=$(awk '/VmHWM/ {print $2}' /proc/"$pid"/status 2>/dev/null || echo 0)
    wait "$tpid" || rc=$?
    cat >"$base.meta" <<EOF
{"case": "$name", "rep": $rep, "rc": $rc, "window_secs": $((w1 - w0)),
 "cpu_ns": $((c1 - c0)), "requests": $((r1 - r0 - 1)), "hwm_kb": $hwm}
EOF
    printf '  %s rep %s: exit %s, %s requests, %s ms CPU in the window, VmHWM %s kB\n' \
        "$name" "$rep" "$rc" "$((r1 - r0 - 1))" "$(((c1 - c0) / 1000000))" "$hwm" >&2
}

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
"$ACALOAD" run "$HERE/think.yaml" -q --set BASE_URL="http://127.0.0.1:$PORT" --set USERS=1 \
    --set DURATION=2s >/dev/null 2>&1 || true   # warm-up: page cache

for rep in $(seq "$REPS"); do
    echo "repetition $rep of $REPS" >&2
    for case in $CASES; do
        case $case in
        instant) measure instant "$rep" "$PORT" "$WARM" "$((SECS - 2))" "$HERE/think.yaml" \
            --set BASE_URL="http://127.0.0.1:$PORT" --set USERS=40 --set DURATION="${SECS}s" ;;
        slow) measure slow "$rep" "$SLOW_PORT" "$WARM" "$((SECS - 2))" "$HERE/think.yaml" \
            --set BASE_URL="http://127.0.0.1:$SLOW_PORT" --set USERS=40 --set DURATION="${SECS}s" ;;
        idle) measure idle "$rep" "$PORT" "$WARM" "$((IDLE_SECS - 2))" "$HERE/idle.yaml" \
            --set BASE_URL="http://127.0.0.1:$PORT" --set DURATION="${IDLE_SECS}s" ;;
        rss) measure rss "$rep" "$PORT" 2 18 "$HERE/think.yaml" \
            --set BASE_URL="http://127.0.0.1:$PORT" --set USERS=1 --set DURATION=20s ;;
        *) echo "error: unknown case \`$case\` in LEAN_CASES (instant slow idle rss)" >&2; exit 2 ;;
        esac
    done
done
if [[ -s $PREFIX/logs/errors.log || -s $PREFIX/logs/slow-errors.log ]]; then
    echo "warning: the stubs answered non-2xx (see $OUT/stub-errors.log)" >&2
    cat "$PREFIX/logs/errors.log" "$PREFIX/logs/slow-errors.log" >"$OUT/stub-errors.log" 2>/dev/null || true
fi

if ((REAL)); then
    "$HERE/lean-real.sh" "$ACALOAD" "$OUT"
fi

python3 - "$OUT" <<'EOF' | tee "$OUT/summary.txt"
import glob, json, statistics, sys, os
out = sys.argv[1]
runs = {}
for f in sorted(glob.glob(os.path.join(out, "*.meta"))):
    m = json.load(open(f))
    runs.setdefault(m["case"], []).append(m)
print("| case | reps | requests | acaload CPU-s | us CPU/request | idle ms/s | peak RSS MB | target | pass |")
print("|---|---:|---:|---:|---:|---:|---:|---|---|")
for case, target in [("instant", "<= 50 us/request"), ("slow", "<= 50 us/request"),
                     ("idle", "<= 1 ms/s"), ("rss", "<= 15 MB RSS")]:
    ms = runs.get(case)
    if not ms:
        continue
    med = lambda xs: statistics.median(xs)
    req = med([m["requests"] for m in ms])
    cpu = med([m["cpu_ns"] / 1e9 for m in ms])
    per = med([m["cpu_ns"] / 1e3 / max(m["requests"], 1) for m in ms])
    idle = med([m["cpu_ns"] / 1e6 / m["window_secs"] for m in ms])
    rss = med([m["hwm_kb"] / 1024 for m in ms])
    fails = sum(m["rc"] != 0 for m in ms)
    if case in ("instant", "slow"):
        ok, shown = per <= 50, (f"{req:.0f}", f"{cpu:.3f}", f"{per:.1f}", "-", f"{rss:.1f}")
    elif case == "idle":
        ok, shown = idle <= 1.0, ("-", f"{cpu:.3f}", "-", f"{idle:.2f}", f"{rss:.1f}")
    else:
        ok, shown = rss <= 15, (f"{req:.0f}", f"{cpu:.3f}", f"{per:.1f}", "-", f"{rss:.1f}")
    verdict = ("pass" if ok else "FAIL") + (f" ({fails} runs exited non-zero)" if fails else "")
    print(f"| {case} | {len(ms)} | " + " | ".join(shown) + f" | {target} | {verdict} |")
real = os.path.join(out, "real.meta")
if os.path.exists(real):
    m = json.load(open(real))
    share = 100 * m["acaload_ticks"] / max(m["agents_ticks"], 1)
    print(f"| real stack (seed shape) | 1 | {m['requests']} | {m['acaload_ticks'] / m['clk_tck']:.2f} | "
          f"{1e6 * m['acaload_ticks'] / m['clk_tck'] / max(m['requests'], 1):.0f} | - | {m['hwm_kb'] / 1024:.1f} | "
          f"<= 1 % of the agents' CPU ({m['agents_ticks'] / m['clk_tck']:.1f} s): {share:.2f} % | "
          f"{'pass' if share <= 1 else 'FAIL'} |")
EOF
