#!/usr/bin/env bash
# A local Credo-TS 0.5.19 mediator (scripts/credo/mediator.mjs) beside the ACA-Py stacks, on
# 127.0.0.1 with an in-memory askar wallet, installed from the npm registry the first time.
#
#   scripts/credo-stack.sh install        npm install Credo 0.5.19 into .credo/node (scripts off), build
#                                         the ffi addons against the system's node headers, take askar's
#                                         native library from the aries-askar wheel on PyPI; quiet when done
#   scripts/credo-stack.sh up [ENV_FILE]  install, start the mediator, wait until its invitation is written,
#                                         write ENV_FILE (default .credo/stack.env) for plans/edge-agents.yaml
#   scripts/credo-stack.sh down           stop it and remove its state
#   scripts/credo-stack.sh status         say whether it runs; exit 0 only if it does
#   scripts/credo-stack.sh phones         run real Credo wallets against a mediator (scripts/credo/phones.mjs;
#                                         settings in its header, MEDIATOR_INVITATION_URL from the environment)
#
# Environment: CREDO_HTTP_PORT (3200), CREDO_WS_PORT (3201), CREDO_FORWARDING (DirectDelivery, Credo's default,
# QueueOnly or QueueAndLiveModeDelivery; the last two need Message Pickup 2.0: the edge plan's PICKUP=v2,
# v2_live), CREDO_MESSAGE_LOG (a file the mediator appends each inbound message to), CREDO_DIR (.credo), CREDO_NODE_DIR (the install, $CREDO_DIR/node), CREDO_READY_TIMEOUT (60).
# Why each install step: Credo's askar package downloads its native library from GitHub in an
# install script (unreachable here), so scripts are off; the ffi addons it needs ship no prebuilt
# binaries and are built from their source; aries-askar-nodejs 0.2.3 wants askar 0.3.2, which the
# Python wrapper's wheel on PyPI carries.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
CREDO_VERSION=0.5.19
ASKAR_NODEJS_VERSION=0.2.3
ASKAR_NATIVE_VERSION=0.3.2
DIR=${CREDO_DIR:-$REPO/.credo}
NODE_DIR=${CREDO_NODE_DIR:-$DIR/node}
STATE=$DIR/stack
HOST=127.0.0.1
HTTP_PORT=${CREDO_HTTP_PORT:-3200}
WS_PORT=${CREDO_WS_PORT:-3201}
FORWARDING=${CREDO_FORWARDING:-DirectDelivery}
READY_TIMEOUT=${CREDO_READY_TIMEOUT:-60}
NATIVE=$NODE_DIR/node_modules/@hyperledger/aries-askar-nodejs/native/libaries_askar.so

log() { printf 'credo-stack: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
usage() { echo "usage: $0 install | up [ENV_FILE] | down | status | phones" >&2; exit 2; }

installed() {
    [[ -f "$NATIVE" && -f "$NODE_DIR/.installed-$CREDO_VERSION" ]]
}

# Output only on failure.
quietly() {
    local out
    out=$("$@" 2>&1 </dev/null) || { printf '%s\n' "$out" | tail -n 20 >&2; return 1; }
}

cmd_install() {
    installed && return 0
    command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || die "node and npm are needed"
    [[ -f /usr/include/node/node_api.h ]] || die "node headers not at /usr/include/node (Debian: apt-get install nodejs-dev... or libnode-dev)"
    local t0=$SECONDS wheels
    mkdir -p "$NODE_DIR"
    log "installing Credo $CREDO_VERSION into $NODE_DIR (npm, scripts off) ..."
    [[ -f "$NODE_DIR/package.json" ]] || echo '{"name":"acaload-credo","private":true,"type":"module"}' >"$NODE_DIR/package.json"
    quietly npm install --prefix "$NODE_DIR" --ignore-scripts --no-audit --no-fund \
        "@credo-ts/core@$CREDO_VERSION" "@credo-ts/node@$CREDO_VERSION" \
        "@credo-ts/askar@$CREDO_VERSION" "@hyperledger/aries-askar-nodejs@$ASKAR_NODEJS_VERSION" ||
        die "npm install failed"
    quietly npm rebuild --prefix "$NODE_DIR" @2060.io/ref-napi @2060.io/ffi-napi --nodedir=/usr ||
        die "building the ffi addons failed"
    wheels=$(mktemp -d)
    quietly python3 -m pip download --disable-pip-version-check --no-deps --only-binary=:all: \
        "aries-askar==$ASKAR_NATIVE_VERSION" -d "$wheels" || die "pip download aries-askar==$ASKAR_NATIVE_VERSION failed"
    python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("aries_askar/libaries_askar.so", sys.argv[2])' \
        "$(ls "$wheels"/aries_askar-*.whl | head -n 1)" "$wheels" || die "no libaries_askar.so in the wheel"
    mkdir -p "$(dirname "$NATIVE")"
    cp "$wheels/aries_askar/libaries_askar.so" "$NATIVE"
    rm -rf "$wheels"
    touch "$NODE_DIR/.installed-$CREDO_VERSION"
    log "installed Credo $CREDO_VERSION in $((SECONDS - t0)) s"
}

pid_of() {
    local pid
    [[ -f "$STATE/mediator.pid" ]] || return 1
    read -r pid <"$STATE/mediator.pid"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && grep -q "mediator.mjs" "/proc/$pid/cmdline" 2>/dev/null || return 1
    echo "$pid"
}

cmd_up() {
    local env_file=${1:-$DIR/stack.env} pid t0 url
    pid_of >/dev/null && die "already running (pid $(pid_of)); run '$0 down' first"
    cmd_install
    rm -rf "$STATE"
    mkdir -p "$STATE"
    (umask 077; head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$STATE/wallet-key")
    # ES modules resolve packages from the importing file's folder: the program runs from there.
    cp "$SCRIPT_DIR/credo/mediator.mjs" "$NODE_DIR/mediator.mjs"
    t0=$SECONDS
    (
        cd "$NODE_DIR"
        CREDO_WALLET_KEY=$(cat "$STATE/wallet-key") CREDO_HOST=$HOST CREDO_HTTP_PORT=$HTTP_PORT \
            CREDO_WS_PORT=$WS_PORT CREDO_FORWARDING=$FORWARDING CREDO_STATE=$STATE/ready.json \
            exec setsid node "$NODE_DIR/mediator.mjs"
    ) >>"$STATE/mediator.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$STATE/mediator.pid"
    until [[ -s "$STATE/ready.json" ]]; do
        kill -0 "$pid" 2>/dev/null || { tail -n 20 "$STATE/mediator.log" >&2; die "the mediator exited during startup"; }
        ((SECONDS - t0 < READY_TIMEOUT)) || { cmd_down; die "not ready after $READY_TIMEOUT s"; }
        sleep 0.2
    done
    url=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["invitation_url"])' "$STATE/ready.json")
    mkdir -p "$(dirname "$env_file")"
    {
        echo "MEDIATOR_INVITATION_URL=$url"
        echo "MEDIATOR_HTTP_URL=http://$HOST:$HTTP_PORT"
        echo "# MEDIATOR_WS_URL is left out: edge agents take ws://$HOST:$WS_PORT from the invitation"
        echo "MEDIATOR_PID_FILE=$STATE/mediator.pid"
    } >"$env_file"
    log "Credo mediator up in $((SECONDS - t0)) s (pid $(pid_of)): http://$HOST:$HTTP_PORT ws://$HOST:$WS_PORT, forwarding $FORWARDING; env file $env_file"
}

cmd_down() {
    local pid i
    if pid=$(pid_of); then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -rf "$STATE" "$DIR/stack.env"
    log "stopped"
}

cmd_status() {
    local pid
    if pid=$(pid_of); then
        log "mediator: running (pid $pid) on http://$HOST:$HTTP_PORT ws://$HOST:$WS_PORT"
    else
        log "mediator: stopped"
        return 1
    fi
}

cmd_phones() {
    cmd_install
    cp "$SCRIPT_DIR/credo/phones.mjs" "$NODE_DIR/phones.mjs"
    cd "$NODE_DIR"
    exec node "$NODE_DIR/phones.mjs"
}

case "${1:-}" in
    phones) (($# == 1)) || usage; cmd_phones ;;
    install) (($# == 1)) || usage; cmd_install ;;
    up) (($# <= 2)) || usage; cmd_up "${2:-}" ;;
    down) (($# == 1)) || usage; cmd_down ;;
    status) (($# == 1)) || usage; cmd_status ;;
    *) usage ;;
esac
