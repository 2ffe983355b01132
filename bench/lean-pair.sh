#!/usr/bin/env bash
# Paired, alternating comparison of two acaload binaries on the real stack: for each round,
# one run of A then one of B (the order swaps every round, so neither always goes first), in
# tenant mode (bench/lean-real.sh) and/or edge mode (bench/lean-edge.sh), then a table of
# acaload's CPU and its share of the system under test, with the load average before each run.
#
#   bench/lean-pair.sh BINARY_A BINARY_B [OUT_DIR]
#
# Settings (environment): PAIR_ROUNDS (2), PAIR_MODES ("tenant edge"; which modes, in order, each
# round), and those of the two scripts (LEAN_PLAN applies to tenant mode only here; the edge
# plan is plans/edge-agents.yaml unless LEAN_EDGE_PLAN is set). A tenant run takes ~110 s, an
# edge run ~200 s: two rounds of both modes take about 21 minutes.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
A=$(realpath "$1")
B=$(realpath "$2")
OUT=${3:-$ROOT/target/bench/lean-pair-$(date +%Y%m%d-%H%M%S)}
ROUNDS=${PAIR_ROUNDS:-2}
MODES=${PAIR_MODES:-tenant edge}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
: >"$OUT/runs.tsv"
for ((round = 1; round <= ROUNDS; round++)); do
    order=(A B)
    ((round % 2 == 0)) && order=(B A)
    for mode in $MODES; do
        for which in "${order[@]}"; do
            bin=$A
            [[ $which == B ]] && bin=$B
            dir=$OUT/$mode-$round-$which
            load=$(cut -d' ' -f1 /proc/loadavg)
            echo "round $round $mode $which ($bin), load $load" >&2
            case $mode in
                tenant) "$HERE/lean-real.sh" "$bin" "$dir" ;;
                edge) LEAN_PLAN=${LEAN_EDGE_PLAN:-$ROOT/plans/edge-agents.yaml} "$HERE/lean-edge.sh" "$bin" "$dir" ;;
                *) echo "error: PAIR_MODES: unknown mode $mode" >&2; exit 2 ;;
            esac
            printf '%s\t%s\t%s\t%s\t%s\n' "$round" "$mode" "$which" "$load" "$dir" >>"$OUT/runs.tsv"
        done
    done
done
python3 - "$OUT/runs.tsv" "$A" "$B" <<'EOF'
import json, sys
runs = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
print(f"A = {sys.argv[2]}\nB = {sys.argv[3]}\n")
print("| round | mode | binary | acaload CPU-s | SUT CPU-s | ratio | hold ratio | load |")
print("|---|---|---|---:|---:|---:|---:|---:|")
for rnd, mode, which, load, d in runs:
    if mode == "tenant":
        m = json.load(open(f"{d}/real.meta"))
        a, s = m["acaload_ticks"] / m["clk_tck"], m["agents_ticks"] / m["clk_tck"]
        hold = ""
    else:
        m = json.load(open(f"{d}/edge.meta"))
        a, s, hold = m["acaload_s"], m["mediator_s"], f"{m['hold_ratio_pct']:.2f} %"
    print(f"| {rnd} | {mode} | {which} | {a:.2f} | {s:.1f} | {100 * a / s:.2f} % | {hold} | {load} |")
EOF
