#!/usr/bin/env bash
# The main job end to end on a fresh machine: build acaload, start a local mediator and
# multitenant ACA-Py on loopback, run plans/mediator.yaml with a short step shape, print
# the report, stop the agents (also on failure or Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
scripts/acapy-stack.sh up .acapy/demo.env
trap 'scripts/acapy-stack.sh down' EXIT
# Warm the fresh mediator (its routing DID is created on the first grant).
target/release/acaload run plans/onboarding.yaml --env-file .acapy/demo.env -q --set USERS=1 --set DURATION=1s >/dev/null
target/release/acaload run plans/mediator.yaml --env-file .acapy/demo.env --out .acapy/demo-results.json \
    --set STEP_TIME_SECS="${STEP_TIME_SECS:-5}" --set USERS_ADDED_PER_STEP="${USERS_ADDED_PER_STEP:-2}" \
    --set USER_LIMIT="${USER_LIMIT:-6}" --set TIME_LIMIT_MINS="${TIME_LIMIT_MINS:-0.5}" "$@"
