#!/usr/bin/env bash
# All tests: formatting, lints, unit, property, CLI and end-to-end tests (the e2e test
# starts a real ACA-Py mediator and multitenant agent on loopback and stops them).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --release --all-targets -q -- -D warnings
CI=true cargo test --release --all-targets
