#!/usr/bin/env bash
# Profiles acaload on bench case (a) (bench/chain.yaml, 50 users, no think time) against the
# nginx stub, as in bench/PROFILE.md:
#   perf (cpu-clock sampling; this machine has no hardware counters): where the CPU time goes,
#     by library and by function, kernel included;
#   callgrind: user-space instructions, inclusive per function, exact call counts.
#   bench/profile.sh [OUT_DIR]     # ~1 minute; needs perf (linux-perf) and valgrind
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
OUT=${1:-$ROOT/target/bench/profile}
CONF=${BENCH_CONF:-$HERE/nginx.conf}
missing=()
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
command -v perf >/dev/null || missing+=(linux-perf)
command -v valgrind >/dev/null || missing+=(valgrind)
if ((${#missing[@]})); then
    apt-get update -qq
    apt-get install -y -qq -o DPkg::Lock::Timeout=300 "${missing[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
(cd "$ROOT" && cargo build --release -q)
mkdir -p "$OUT"
PREFIX=$(mktemp -d /tmp/acaload-profile.XXXXXX)
chmod 755 "$PREFIX"
mkdir -p "$PREFIX/logs" "$PREFIX/temp"
cp "$CONF" "$PREFIX/nginx.conf"
cp "$ROOT/target/release/acaload" "$PREFIX/acaload"
stop() {
    "$NGINX" -p "$PREFIX/" -c "$PREFIX/nginx.conf" -e "$PREFIX/logs/error.log" -s stop 2>/dev/null || true
    sleep 0.3
    rm -rf "$PREFIX"
}
trap stop EXIT
taskset -c 0 "$NGINX" -p "$PREFIX/" -c "$PREFIX/nginx.conf" -e "$PREFIX/logs/error.log"
sleep 0.3

# perf: flat profile by shared object and by symbol (user and kernel).
perf record -q -e cpu-clock -F 999 -o "$OUT/perf.data" -- \
    taskset -c 1 "$PREFIX/acaload" run "$HERE/chain.yaml" -q --set DURATION=8s --out "$OUT/perf-run.json" >/dev/null 2>&1
perf report -i "$OUT/perf.data" --no-children --sort dso 2>/dev/null | grep -v '^#' | grep -v '^$' >"$OUT/perf-dso.txt"
perf report -i "$OUT/perf.data" --no-children --sort dso,sym 2>/dev/null | grep -v '^#' | grep -v '^$' >"$OUT/perf-sym.txt"

# callgrind: inclusive user-space instructions (valgrind runs ~50x slower: ~10k requests).
taskset -c 1 valgrind -q --tool=callgrind --callgrind-out-file="$OUT/callgrind.out" \
    "$PREFIX/acaload" run "$HERE/chain.yaml" -q --set DURATION=8s --out "$OUT/callgrind-run.json" >/dev/null 2>&1
callgrind_annotate --inclusive=yes "$OUT/callgrind.out" 2>/dev/null >"$OUT/callgrind-inclusive.txt"
callgrind_annotate --inclusive=yes --tree=both "$OUT/callgrind.out" 2>/dev/null >"$OUT/callgrind-tree.txt"
if [[ -s $PREFIX/logs/errors.log ]]; then echo "warning: the stub logged non-2xx responses" >&2; fi

requests=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['total']['requests'])" "$OUT/callgrind-run.json")
echo "== CPU time by shared object (perf)"
head -6 "$OUT/perf-dso.txt"
echo "== top symbols (perf, self time)"
head -25 "$OUT/perf-sym.txt"
echo "== user-space instructions, inclusive (callgrind, $requests requests)"
grep -E '\[.*acaload\]' "$OUT/callgrind-inclusive.txt" |
    grep -E 'acaload::(user|http|template|capture|metrics)|url::ParseOptions::parse|TowerRedirectPolicy|PendingRequest as|serde_json::de::from_trait|BTreeMap<K,V> as core::iter::traits::collect::FromIterator|__rust_(alloc|dealloc|realloc)|jsonpath_rust::query::js_path_process|hyper::proto::h1::role::Client as' |
    sed -E 's|/root/.cargo/registry/src/[^/]+/||; s| \[[^]]*\]$||' | head -30 || true
echo "raw files in $OUT"
