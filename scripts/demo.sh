#!/usr/bin/env bash
# The main job end to end on a fresh machine: build acaload, start local ACA-Py agents on
# loopback, run a plan with a short step shape, print the report, stop the agents (also on
# failure or Ctrl-C).
#
#   scripts/demo.sh [PLAN] [ACALOAD RUN ARGS...]
#
#   PLAN plans/mediator.yaml (default)   a mediator + a multitenant ACA-Py whose tenants are the users
#   PLAN plans/edge-*.yaml               e.g. plans/edge-agents.yaml: the mediator alone (HTTP + WebSocket
#                                        inbound); acaload itself plays the edge agents
# Extra args go to `acaload run` after the demo's own, so `--set USER_LIMIT=20` wins.
set -euo pipefail
cd "$(dirname "$0")/.."
plan=plans/mediator.yaml
if (($#)) && [[ "$1" != -* ]]; then plan=$1; shift; fi
[[ -f "$plan" ]] || { echo "demo.sh: plan $plan not found" >&2; exit 1; }
case "$(basename "$plan")" in
    edge-*.yaml | edge-*.yml) stack=(--mediator-only) ;;
    *) stack=() ;;
esac
cargo build --release -q
scripts/acapy-stack.sh up "${stack[@]}" .acapy/demo.env
trap 'scripts/acapy-stack.sh down' EXIT
if ((${#stack[@]} == 0)); then
    # Warm the fresh mediator (its routing DID is created on the first grant).
    target/release/acaload run plans/onboarding.yaml --env-file .acapy/demo.env -q --set USERS=1 --set DURATION=1s >/dev/null
fi
# Edge plans: no warm-up here, because plans/onboarding.yaml needs the multitenant agent. The fresh
# mediator still creates its routing DID on the first grant, and concurrent first grants race (all but
# one stay in `request`); acaload's edge agents send their mediation requests one at a time until the
# run's first grant, so they need none.
# Plans without these step-shape variables ignore them.
target/release/acaload run "$plan" --env-file .acapy/demo.env --out .acapy/demo-results.json \
    --set STEP_TIME_SECS="${STEP_TIME_SECS:-5}" --set USERS_ADDED_PER_STEP="${USERS_ADDED_PER_STEP:-2}" \
    --set USER_LIMIT="${USER_LIMIT:-6}" --set TIME_LIMIT_MINS="${TIME_LIMIT_MINS:-0.5}" "$@"
