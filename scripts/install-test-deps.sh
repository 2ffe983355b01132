#!/usr/bin/env bash
# Installs what scripts/test.sh needs beyond a Rust toolchain (any stable rustc at or above
# Cargo.toml's rust-version), on a fresh Debian/Ubuntu machine:
#   rustfmt, clippy       the toolchain's components, with rustup when they are missing
#   curl                  the stack script and the e2e test ask the agents with it
#   chromium              renders the HTML report in the report test (scripts/screenshot.sh)
#   .tools/venv           kubernetes-validate, the schema-aware check of deploy/kubernetes (no cluster)
#   .acapy/venv           acapy-agent 1.7.0 on Python 3.13 (scripts/acapy-stack.sh install)
#   postgresql, nginx     the production-shaped stack of the TLS and failover tests (scripts/prod-stack.sh install)
#   .credo/node           Credo-TS 0.5.19 from npm, for the Credo mediator test (scripts/credo-stack.sh install)
# Idempotent: when everything is there it only checks (well under a second) and prints nothing.
# apt-get runs (update, then install) only when a package is missing; that needs root. Without
# root it prints one line saying what to install and exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."

K8S_VALIDATE_VERSION=1.37.0
K8S_VENV=.tools/venv

log() { printf 'install-test-deps: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

k8s_validate_ok() {
    [[ -x "$K8S_VENV/bin/kubernetes-validate" && -x "$K8S_VENV/bin/python" ]] &&
        [[ "$("$K8S_VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("kubernetes-validate"))' 2>/dev/null)" == "$K8S_VALIDATE_VERSION" ]]
}

# ---------------------------------------------------------------- rustfmt and clippy
components=()
cargo fmt --version >/dev/null 2>&1 || components+=(rustfmt)
cargo clippy --version >/dev/null 2>&1 || components+=(clippy)
if ((${#components[@]})); then
    command -v rustup >/dev/null 2>&1 ||
        die "cargo has no ${components[*]}; install them with the toolchain's installer"
    log "installing ${components[*]} with rustup ..."
    rustup component add "${components[@]}" >&2
fi

# ---------------------------------------------------------------- system packages
missing=()
command -v curl >/dev/null 2>&1 || missing+=(curl)
# The same names scripts/screenshot.sh looks for.
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 ||
    command -v google-chrome >/dev/null 2>&1 || missing+=(chromium)
if ! k8s_validate_ok && ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    missing+=(python3-venv) # Debian splits venv/ensurepip out of python3
fi

if ((${#missing[@]})); then
    if [[ "$(id -u)" != 0 ]]; then
        die "missing ${missing[*]}; install as root first: apt-get update && apt-get install -y ${missing[*]}"
    fi
    command -v apt-get >/dev/null 2>&1 ||
        die "missing ${missing[*]} and no apt-get here; install them with the system's package manager"
    log "installing ${missing[*]} with apt-get ..."
    export DEBIAN_FRONTEND=noninteractive
    # Output only on failure (apt's debconf chatter otherwise).
    out=$({ apt-get update -qq && apt-get install -y -qq "${missing[@]}"; } 2>&1) || {
        printf '%s\n' "$out" | tail -n 20 >&2
        die "apt-get install ${missing[*]} failed"
    }
fi

# ---------------------------------------------------------------- kubernetes-validate (own venv, apart from ACA-Py's)
if ! k8s_validate_ok; then
    log "installing kubernetes-validate==$K8S_VALIDATE_VERSION into $K8S_VENV ..."
    [[ -x "$K8S_VENV/bin/python" ]] || python3 -m venv "$K8S_VENV"
    "$K8S_VENV/bin/pip" install -q --disable-pip-version-check "kubernetes-validate==$K8S_VALIDATE_VERSION" </dev/null
    k8s_validate_ok || die "kubernetes-validate $K8S_VALIDATE_VERSION not usable in $K8S_VENV after pip install"
fi

# ---------------------------------------------------------------- ACA-Py, PostgreSQL, nginx (created once, reused when present; quiet then)
# The production-shaped stack's install: postgresql, nginx and openssl from apt when missing,
# then the ACA-Py venv (scripts/acapy-stack.sh install).
scripts/prod-stack.sh install
# ---------------------------------------------------------------- Credo (npm registry and PyPI; quiet when installed)
scripts/credo-stack.sh install
