#!/usr/bin/env bash
# Builds a profile-guided acaload for a release that wants one. The plain shipped build is
# `cargo build --profile dist` (the Dockerfile's); this script is optional, its profile is
# never committed, and no test uses it. From a clone it:
#   1. builds an instrumented `dist` binary;
#   2. runs what acaload spends its time on:
#      plans/mediator.yaml with the seed's shape (10 users every 10 s up to 40, 90 s) against a
#      local mediator + multitenant ACA-Py (bench/lean-real.sh), then plans/edge-agents.yaml with
#      20 edge agents for 30 s against the same mediator, then the stub cases of bench/lean.sh
#      (40 users with 1 s think against bench/nginx.conf and bench/slow_stub.py);
#   3. merges the counts (sparse: a function the runs never reached is optimised as without a
#      profile, not as cold code) and builds `dist` with them.
#
#   bench/pgo.sh      # ~20 min; needs rustup's llvm-tools, nginx (installed by bench/lean.sh)
#                     # and ACA-Py (scripts/acapy-stack.sh install)
#   -> target/pgo/acaload.profdata and the binary target/pgo/build/dist/acaload
#
# The profile is recorded and used by the same rustc and the same code in one run, so it is
# never stale. bench/LEAN.md has what it measured.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
PGO=$ROOT/target/pgo
RAW=$PGO/raw
OUT=$PGO/runs
PROFILE=$PGO/acaload.profdata

profdata() {
    find "$(rustc --print sysroot)/lib/rustlib" -name llvm-profdata -type f 2>/dev/null | head -1
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
echo "1/3 building the instrumented binary" >&2
(cd "$ROOT" && CARGO_TARGET_DIR=$PGO/gen RUSTFLAGS="-Cprofile-generate=$RAW" \
    cargo build --profile dist --locked -q)
BIN=$PGO/gen/dist/acaload
# Build scripts and proc macros were instrumented too and wrote counts while building.
rm -rf "$RAW" && mkdir -p "$RAW"

echo "2/3 runs: the seed's shape and 20 edge agents on the real stack, then the stub cases" >&2
LEAN_REAL_EDGE=1 "$HERE/lean-real.sh" "$BIN" "$OUT/real" 2>&1 | tail -1 >&2
LEAN_CASES="instant slow" SECS=15 REPS=1 ACALOAD_BIN=$BIN BENCH_OUT=$OUT/lean \
    "$HERE/lean.sh" >"$OUT/lean.txt" 2>&1

"$LLVM_PROFDATA" merge --sparse -o "$PROFILE" "$RAW"/*.profraw
echo "3/3 building dist with $PROFILE ($(du -h "$PROFILE" | cut -f1))" >&2
# Every crate is built again with the new profile: a fresh target dir costs nothing more.
# With a profile rustc puts functions in .text.hot / .text.unlikely; the link flag keeps each
# group together so the hot code shares pages and cache lines.
rm -rf "$PGO/build"
(cd "$ROOT" && CARGO_TARGET_DIR=$PGO/build \
    RUSTFLAGS="-Cprofile-use=$PROFILE -Clink-arg=-Wl,-z,keep-text-section-prefix" \
    cargo build --profile dist --locked -q)
echo "built $PGO/build/dist/acaload" >&2
