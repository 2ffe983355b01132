#!/usr/bin/env bash
# All tests: formatting, lints, docs, then unit, property, CLI and end-to-end tests. The tests
# marked #[ignore] start real ACA-Py agents on loopback (and stop them); `--include-ignored`
# runs them here, so a plain `cargo test` stays quick and shows them as ignored.
# First installs what the tests need beyond Rust (curl, Chromium, kubernetes-validate, ACA-Py),
# so this passes on a fresh machine too; when all of it is there, that step only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
cargo fmt --all -- --check
cargo clippy --release --all-targets -q -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --release --no-deps -q
CI=true cargo test --release --all-targets -- --include-ignored
