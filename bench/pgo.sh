#!/usr/bin/env bash
# Records pgo/acaload.profdata, the profile scripts/build-dist.sh optimises the shipped binary
# with. An instrumented `dist` build runs what acaload spends its time on:
#   1. plans/mediator.yaml with the seed's shape (10 users every 10 s up to 40, 90 s) against a
#      local mediator + multitenant ACA-Py: HTTP client, webhook listener, templates, waits;
#   2. plans/edge-agents.yaml, 20 edge agents for 30 s against the same mediator: DIDComm
#      packing, WebSockets, forwards;
#   3. the stub cases of bench/lean.sh (40 users with 1 s think, against nginx and a 40 ms stub).
# The raw counts are merged sparse (functions never run carry no profile, so a path the runs
# missed is optimised as without PGO, not as cold code).
#
#   bench/pgo.sh      # ~20 min: two builds and ~4 min of runs; needs rustup's llvm-tools
#
# Run it after changes to the request, webhook or edge-agent paths, then commit the profile.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
GEN=$ROOT/target/pgo-gen
RAW=$GEN/raw
OUT=$GEN/runs

profdata() {
    local sysroot
    sysroot=$(rustc --print sysroot)
    find "$sysroot/lib/rustlib" -name llvm-profdata -type f 2>/dev/null | head -1
}
LLVM_PROFDATA=$(profdata)
if [[ -z $LLVM_PROFDATA ]]; then
    echo "installing rustup's llvm-tools (llvm-profdata matching rustc's LLVM)" >&2
    rustup component add llvm-tools >&2
    LLVM_PROFDATA=$(profdata)
fi
[[ -x $LLVM_PROFDATA ]] || { echo "error: no llvm-profdata for this rustc" >&2; exit 2; }

rm -rf "$RAW" "$OUT"
mkdir -p "$RAW" "$OUT"
echo "building the instrumented binary" >&2
(cd "$ROOT" && CARGO_TARGET_DIR=$GEN RUSTFLAGS="-Cprofile-generate=$RAW" \
    cargo build --profile dist --locked -q)
BIN=$GEN/dist/acaload
# Build scripts and proc macros were instrumented too and wrote counts while building.
rm -rf "$RAW" && mkdir -p "$RAW"

echo "1-2/3 plans/mediator.yaml (seed's shape), then plans/edge-agents.yaml (20 agents), on the real stack" >&2
LEAN_REAL_EDGE=1 "$HERE/lean-real.sh" "$BIN" "$OUT/real" 2>&1 | tail -1 >&2

echo "3/3 bench/lean.sh stub cases" >&2
LEAN_CASES="instant slow" SECS=15 REPS=1 ACALOAD_BIN=$BIN BENCH_OUT=$OUT/lean \
    "$HERE/lean.sh" >"$OUT/lean.txt" 2>&1

mkdir -p "$ROOT/pgo"
"$LLVM_PROFDATA" merge --sparse -o "$ROOT/pgo/acaload.profdata" "$RAW"/*.profraw
echo "wrote pgo/acaload.profdata ($(du -h "$ROOT/pgo/acaload.profdata" | cut -f1)) from the three runs; now scripts/build-dist.sh" >&2
