#!/usr/bin/env bash
# Builds the binary acaload ships (Dockerfile, bench/lean.sh): the `dist` profile (fat LTO,
# one codegen unit) optimised with the profile in pgo/acaload.profdata, which bench/pgo.sh
# records from real runs. At real-agent rates acaload's CPU goes mostly into code that is
# cold in the caches at each wake-up; with the profile the hot paths are laid out together
# and inlined as measured, and a real-stack run costs about a fifth less CPU (bench/LEAN.md).
#
#   scripts/build-dist.sh [cargo build options]     # -> target/dist/acaload
#   scripts/build-dist.sh --check-profile           # only: can this rustc read the profile?
#
# A profile older than the code still applies to every function that did not change (rustc
# skips the rest without a word); bench/pgo.sh records a new one. ACALOAD_PGO=0 builds
# without it.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PROFILE=$ROOT/pgo/acaload.profdata
# rustc only warns about a profile it cannot read (a newer LLVM's format, a damaged file) and
# builds without it; here that is an error.
check_profile() {
    [[ -f $PROFILE ]] || { echo "error: $PROFILE is missing (bench/pgo.sh records it; ACALOAD_PGO=0 builds without)" >&2; exit 2; }
    local dir said
    dir=$(mktemp -d)
    said=$(echo 'fn main() {}' | rustc -O -Cprofile-use="$PROFILE" -o "$dir/main" - 2>&1) || true
    rm -rf "$dir"
    if [[ -n $said ]]; then
        echo "error: $(rustc --version) cannot use $PROFILE (record it again with bench/pgo.sh):" >&2
        echo "$said" >&2
        exit 2
    fi
}
if [[ ${1:-} == --check-profile ]]; then
    check_profile
    exit 0
fi
flags=${RUSTFLAGS:-}
if [[ ${ACALOAD_PGO:-1} != 0 ]]; then
    check_profile
    # Cargo tracks RUSTFLAGS, not the file a flag names: the profile is used from a copy
    # named by its content, so a newly recorded profile rebuilds every crate with it.
    sum=$(sha256sum "$PROFILE" | cut -c1-16)
    used=$ROOT/target/pgo-use/acaload-$sum.profdata
    mkdir -p "$(dirname "$used")"
    [[ -f $used ]] || cp "$PROFILE" "$used"
    # With the profile, functions go to .text.hot / .text.unlikely; keep them grouped so the
    # hot code shares pages and cache lines (lld interleaves them otherwise).
    flags="$flags -Cprofile-use=$used -Clink-arg=-Wl,-z,keep-text-section-prefix"
fi
cd "$ROOT"
RUSTFLAGS=$flags exec cargo build --profile dist "$@"
