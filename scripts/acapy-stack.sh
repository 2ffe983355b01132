#!/usr/bin/env bash
# Local ACA-Py 1.7.0 test stack for acaload: one mediator + one multitenant agent (or the
# mediator alone, for edge-agent runs), everything on 127.0.0.1, per-run state thrown away on `down`.
#
#   scripts/acapy-stack.sh install         create the Python 3.13 venv with acapy-agent 1.7.0 (once)
#   scripts/acapy-stack.sh up [--mediator-only] [ENV_FILE]
#                                          install (once), start the agents, wait for ready, create the
#                                          mediator's multi-use invitation, write ENV_FILE
#                                          (default: $REPO/.acapy/stack.env)
#   scripts/acapy-stack.sh down            stop exactly the processes `up`/`restart` started, remove
#                                          state dir (wallets, keys) + env file
#   scripts/acapy-stack.sh status          show pids/readiness; exit 0 only if every agent of the stack is ready
#   scripts/acapy-stack.sh kill AGENT      fault injection: SIGKILL AGENT's process group (AGENT: mediator
#                                          or multi); the other agent keeps running, state is kept
#   scripts/acapy-stack.sh restart AGENT   start AGENT again (stopping it first if it still runs) with the
#                                          same ports, arguments and wallet (name + key), wait until ready.
#                                          The mediator keeps its DIDs/keys, so the invitation stays valid;
#                                          its in-memory undelivered queue and open WebSockets are lost.
#
# `up` refuses (exit 1) when the stack is already running: run `down` first. Exit codes: 0 ok,
# 1 error (one line on stderr, starting with "acapy-stack: ERROR:"), 2 usage.
#
# The mediator listens for DIDComm on HTTP (MEDIATOR_PORT) and on WebSocket (MEDIATOR_WS_PORT, path /)
# and advertises both endpoints, HTTP first: ACA-Py puts only the first one in invitations and grants,
# so edge agents learn the WebSocket URL from the env file (MEDIATOR_WS_URL). It runs with
# --enable-undelivered-queue (messages for a client without an open socket wait in memory).
#
# Environment for `up` (all optional; `kill`/`restart`/`status` reuse what `up` saved in the state dir,
# so only ACAPY_STACK_DIR has to match):
#   ACAPY_VENV              venv location                      ($REPO/.acapy/venv)
#   ACAPY_STACK_DIR         pid files, logs, wallets, keys     ($REPO/.acapy/stack)  -- wiped on up/down
#   ACAPY_STACK_AGENTS      all | mediator                     (all; `up --mediator-only` = mediator)
#   MEDIATOR_PORT           mediator inbound http port         (3000)
#   MEDIATOR_WS_PORT        mediator inbound WebSocket port    (MEDIATOR_PORT + 2, i.e. 3002)
#   MEDIATOR_ADMIN_PORT     mediator admin port                (3001)
#   MEDIATOR_ADMIN_API_KEY  mediator admin API key             (mediator-admin-key)
#   AGENT_PORT              multitenant agent inbound port     (3010)
#   AGENT_ADMIN_PORT        multitenant agent admin port       (3011)
#   ACAPY_ADMIN_API_KEY     multitenant agent admin API key    (agent-admin-key)
#   ACAPY_EXTRA_ARGS        extra aca-py args for the multitenant agent, split on whitespace (no quoting,
#                           so JSON values must not contain spaces), e.g.
#                           '--multitenancy-config {"wallet_type":"single-wallet-askar","wallet_name":"tenants"}'
#                           or '--multitenancy-config {"cache_size":1000}'
#   MEDIATOR_EXTRA_ARGS     extra aca-py args for the mediator (same splitting)
#   ACAPY_READY_TIMEOUT     seconds to wait for /status/ready  (60)
#
# Wallet keys and the JWT secret are random per `up`, kept in the state dir (mode 600) for `restart`,
# and handed to aca-py through its environment (ACAPY_WALLET_KEY, ACAPY_MULTITENANT_JWT_SECRET), not
# its command line, so `ps` does not show them. They are never printed.
set -euo pipefail

ACAPY_VERSION=1.7.0
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)

VENV=${ACAPY_VENV:-$REPO/.acapy/venv}
STACK_DIR=${ACAPY_STACK_DIR:-$REPO/.acapy/stack}
DEFAULT_ENV_FILE=$REPO/.acapy/stack.env

MEDIATOR_PORT=${MEDIATOR_PORT:-3000}
# Follows MEDIATOR_PORT so callers that move only the HTTP port (the e2e test) don't share 3002.
MEDIATOR_WS_PORT=${MEDIATOR_WS_PORT:-$((MEDIATOR_PORT + 2))}
MEDIATOR_ADMIN_PORT=${MEDIATOR_ADMIN_PORT:-3001}
MEDIATOR_ADMIN_API_KEY=${MEDIATOR_ADMIN_API_KEY:-mediator-admin-key}
AGENT_PORT=${AGENT_PORT:-3010}
AGENT_ADMIN_PORT=${AGENT_ADMIN_PORT:-3011}
AGENT_ADMIN_API_KEY=${ACAPY_ADMIN_API_KEY:-agent-admin-key}
READY_TIMEOUT=${ACAPY_READY_TIMEOUT:-60}
STACK_AGENTS=${ACAPY_STACK_AGENTS:-all}
MED_EXTRA=()
AGENT_EXTRA=()
read -r -a MED_EXTRA <<<"${MEDIATOR_EXTRA_ARGS:-}"
read -r -a AGENT_EXTRA <<<"${ACAPY_EXTRA_ARGS:-}"

HOST=127.0.0.1
ALL_AGENTS=(mediator multi)
AGENTS=(mediator multi) # the agents of this stack: set by `up`, or read from the state dir

log() { printf 'acapy-stack: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
usage() {
    echo "usage: $0 install | up [--mediator-only] [ENV_FILE] | down | status | kill AGENT | restart AGENT   (AGENT: mediator|multi)" >&2
    exit 2
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# Refuse to rm -rf anything that looks dangerous.
check_stack_dir() {
    case "$STACK_DIR" in
        "" | / | "$HOME" | "$REPO" | /root | /tmp | /work) die "refusing to use ACAPY_STACK_DIR=$STACK_DIR" ;;
    esac
}

# ---------------------------------------------------------------- install
find_python313() {
    local root cand
    if command -v pyenv >/dev/null 2>&1 && root=$(pyenv root 2>/dev/null); then
        for cand in $(printf '%s\n' "$root"/versions/3.13*/bin/python3 | sort -V -r); do
            if "$cand" -c 'import sys, venv; sys.exit(sys.version_info[:2] != (3, 13))' >/dev/null 2>&1; then
                echo "$cand"; return 0
            fi
        done
    fi
    if cand=$(command -v python3.13 2>/dev/null) &&
        "$cand" -c 'import sys, venv; sys.exit(sys.version_info[:2] != (3, 13))' >/dev/null 2>&1; then
        echo "$cand"; return 0
    fi
    return 1
}

venv_version() {
    [[ -x "$VENV/bin/aca-py" && -x "$VENV/bin/python" ]] || return 1
    "$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("acapy-agent"))' 2>/dev/null
}

ensure_venv() {
    local have py t0
    if have=$(venv_version) && [[ "$have" == "$ACAPY_VERSION" ]]; then
        return 0
    fi
    py=$(find_python313) ||
        die "Python 3.13 not found (looked for \$(pyenv root)/versions/3.13*/bin/python3 and python3.13 on PATH)"
    t0=$(now)
    log "installing acapy-agent==$ACAPY_VERSION into $VENV (python: $py) ..."
    if [[ ! -x "$VENV/bin/python" ]]; then
        mkdir -p "$(dirname "$VENV")"
        "$py" -m venv "$VENV"
    fi
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "acapy-agent==$ACAPY_VERSION" </dev/null
    have=$(venv_version) || die "aca-py not found in $VENV after pip install"
    [[ "$have" == "$ACAPY_VERSION" ]] || die "venv has acapy-agent $have, expected $ACAPY_VERSION"
    log "installed acapy-agent $have in $(elapsed "$t0") s"
}

# ---------------------------------------------------------------- helpers
# Hex: a urlsafe token can start with '-', which argparse takes for an option (1 start in 32 failed).
rand_secret() { "$VENV/bin/python" -c 'import secrets; print(secrets.token_hex(32))'; }

port_in_use() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

pid_file() { echo "$STACK_DIR/$1.pid"; }
secret_file() { echo "$STACK_DIR/$1"; } # mediator.wallet-key, multi.wallet-key, multi.jwt-secret (mode 600)

# Alive and not a zombie: a killed agent is reparented to pid 1, which may be slow (or fail) to reap it.
pid_alive() {
    local stat
    # (not $(<file): in bash 5.2 a missing file there ends the script under set -e)
    read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
    stat=${stat##*) }
    [[ "${stat%% *}" != [ZX] ]]
}

# Print the pid of agent $1 if its pid file exists and the process is an aca-py we started.
live_pid() {
    local f pid
    f=$(pid_file "$1")
    [[ -f "$f" ]] || return 1
    pid=$(<"$f")
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    pid_alive "$pid" || return 1
    # Guard against pid reuse: the process must be our venv's aca-py.
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "aca-py start" || return 1
    echo "$pid"
}

any_running() {
    local a
    for a in "${ALL_AGENTS[@]}"; do live_pid "$a" >/dev/null && return 0; done
    return 1
}

in_stack() {
    local a
    for a in "${AGENTS[@]}"; do [[ "$a" == "$1" ]] && return 0; done
    return 1
}

admin_port() { case $1 in mediator) echo "$MEDIATOR_ADMIN_PORT" ;; multi) echo "$AGENT_ADMIN_PORT" ;; esac; }
agent_ports() {
    case $1 in
        mediator) echo "$MEDIATOR_PORT $MEDIATOR_WS_PORT $MEDIATOR_ADMIN_PORT" ;;
        multi) echo "$AGENT_PORT $AGENT_ADMIN_PORT" ;;
    esac
}

# What `up` decided, for kill/restart/status/down of the same stack (ports, API keys, extra args).
save_config() {
    (
        umask 077
        {
            local v
            printf 'AGENTS=('; for v in "${AGENTS[@]}"; do printf '%q ' "$v"; done; printf ')\n'
            for v in MEDIATOR_PORT MEDIATOR_WS_PORT MEDIATOR_ADMIN_PORT MEDIATOR_ADMIN_API_KEY \
                AGENT_PORT AGENT_ADMIN_PORT AGENT_ADMIN_API_KEY READY_TIMEOUT; do
                printf '%s=%q\n' "$v" "${!v}"
            done
            # (a loop, not printf '%q ' "${a[@]}", which writes '' for an empty array)
            printf 'MED_EXTRA=('; for v in "${MED_EXTRA[@]}"; do printf '%q ' "$v"; done; printf ')\n'
            printf 'AGENT_EXTRA=('; for v in "${AGENT_EXTRA[@]}"; do printf '%q ' "$v"; done; printf ')\n'
        } >"$STACK_DIR/config"
    )
}

load_config() {
    [[ -f "$STACK_DIR/config" ]] || return 1
    # shellcheck disable=SC1091
    source "$STACK_DIR/config"
}

new_secret() {
    (
        umask 077
        rand_secret >"$(secret_file "$1")"
    )
}

mediator_args() {
    MED_ARGS=(
        --label mediator
        --inbound-transport http "$HOST" "$MEDIATOR_PORT"
        --inbound-transport ws "$HOST" "$MEDIATOR_WS_PORT"
        --outbound-transport http
        --endpoint "http://$HOST:$MEDIATOR_PORT" "ws://$HOST:$MEDIATOR_WS_PORT"
        --admin "$HOST" "$MEDIATOR_ADMIN_PORT"
        --admin-api-key "$MEDIATOR_ADMIN_API_KEY"
        --wallet-type askar --wallet-name mediator --auto-provision
        --no-ledger
        --open-mediation --enable-undelivered-queue --monitor-forward
        --auto-accept-invites --auto-accept-requests --auto-ping-connection
        --log-level warning
        "${MED_EXTRA[@]}"
    )
}

multi_args() {
    MULTI_ARGS=(
        --label multi
        --inbound-transport http "$HOST" "$AGENT_PORT"
        --outbound-transport http
        --endpoint "http://$HOST:$AGENT_PORT"
        --admin "$HOST" "$AGENT_ADMIN_PORT"
        --admin-api-key "$AGENT_ADMIN_API_KEY"
        --multitenant --multitenant-admin
        --wallet-type askar --wallet-name multi --auto-provision
        --no-ledger
        --auto-accept-invites --auto-accept-requests --auto-ping-connection
        --log-level warning
        "${AGENT_EXTRA[@]}"
    )
}

# start_agent NAME : launched in its own session (pgid == pid), pid written by the child itself.
# No ACAPY_* variable of ours (or any stray one, which configargparse would take as an aca-py option)
# reaches aca-py, except the ones set here. The log is appended to, so a restart keeps the old run's log.
start_agent() {
    local name=$1 home="$STACK_DIR/$1-home" args=()
    case $name in
        mediator) mediator_args; args=("${MED_ARGS[@]}") ;;
        multi) multi_args; args=("${MULTI_ARGS[@]}") ;;
    esac
    mkdir -p "$home"
    rm -f "$(pid_file "$name")"
    printf '==== acapy-stack: starting %s at %s\n' "$name" "$(date -Is)" >>"$STACK_DIR/$name.log"
    (
        for v in $(compgen -e); do
            if [[ "$v" == ACAPY_* ]]; then unset "$v"; fi
        done
        export ACAPY_HOME="$home" PYTHONUNBUFFERED=1
        # A mediator holds a socket per connected edge agent: as many open files as allowed.
        ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
        ACAPY_WALLET_KEY=$(<"$(secret_file "$name.wallet-key")")
        export ACAPY_WALLET_KEY
        if [[ "$name" == multi ]]; then
            ACAPY_MULTITENANT_JWT_SECRET=$(<"$(secret_file multi.jwt-secret)")
            export ACAPY_MULTITENANT_JWT_SECRET
        fi
        # shellcheck disable=SC2016
        exec setsid bash -c 'echo $$ >"$0"; exec nohup "$@"' "$(pid_file "$name")" \
            "$VENV/bin/aca-py" start "${args[@]}"
    ) >>"$STACK_DIR/$name.log" 2>&1 </dev/null &
}

wait_pidfiles() {
    local a i
    for a in "$@"; do
        for ((i = 0; i < 50; i++)); do
            [[ -s "$(pid_file "$a")" ]] && break
            sleep 0.1
        done
        [[ -s "$(pid_file "$a")" ]] || die "$a did not write its pid file"
    done
}

is_ready() { curl -fsS --max-time 2 "http://$HOST:$1/status/ready" 2>/dev/null | grep -q '"ready": *true'; }

# wait_ready T0 ON_FAIL AGENT... : poll /status/ready of each agent; ON_FAIL (a function) gets the message.
wait_ready() {
    local t0=$1 on_fail=$2 a pid
    shift 2
    local pending=("$@") still deadline=$((SECONDS + READY_TIMEOUT))
    while ((${#pending[@]})); do
        still=()
        for a in "${pending[@]}"; do
            if is_ready "$(admin_port "$a")"; then
                log "$a ready after $(elapsed "$t0") s"
                continue
            fi
            pid=$(<"$(pid_file "$a")")
            pid_alive "$pid" || { "$on_fail" "$a exited during startup"; return 1; }
            still+=("$a")
        done
        ((${#still[@]})) || break
        pending=("${still[@]}")
        ((SECONDS < deadline)) || { "$on_fail" "not ready after ${READY_TIMEOUT} s: ${pending[*]}"; return 1; }
        sleep 0.2
    done
}

# stop_agents SIG AGENT... : signal the live ones' process groups (TERM: KILL after 10 s), wait until
# they are gone, remove their pid files.
stop_agents() {
    local sig=$1 a pid pids=() deadline i
    shift
    for a in "$@"; do
        if pid=$(live_pid "$a"); then
            pids+=("$pid")
            [[ "$sig" == KILL ]] || log "stopping $a (pid $pid)"
            kill "-$sig" -- "-$pid" 2>/dev/null || kill "-$sig" "$pid" 2>/dev/null || true
        fi
    done
    if ((${#pids[@]})); then
        deadline=$((SECONDS + 10))
        while ((SECONDS < deadline)); do
            local alive=0
            for pid in "${pids[@]}"; do pid_alive "$pid" && alive=1; done
            ((alive)) || break
            sleep 0.1
        done
        for pid in "${pids[@]}"; do
            # KILL the group too, in case aca-py left children behind.
            if pid_alive "$pid"; then log "pid $pid ignored $sig for 10 s, sending KILL"; fi
            kill -KILL -- "-$pid" 2>/dev/null || true
            kill -KILL "$pid" 2>/dev/null || true
        done
        for pid in "${pids[@]}"; do
            for ((i = 0; i < 50; i++)); do pid_alive "$pid" || break; sleep 0.1; done
        done
    fi
    for a in "$@"; do rm -f "$(pid_file "$a")"; done
}

show_logs() {
    local a cause
    for a in "$@"; do
        if [[ -f "$STACK_DIR/$a.log" ]]; then
            log "---- last 20 lines of $STACK_DIR/$a.log ----"
            tail -n 20 "$STACK_DIR/$a.log" >&2 || true
            # The real cause often sits above a long traceback.
            cause=$(grep -E '^(aca-py [a-z]+: error:|[A-Za-z_.]*(Error|Exception)[A-Za-z_]*:)' "$STACK_DIR/$a.log" | tail -n 1 || true)
            [[ -z "$cause" ]] || log "$a: likely cause: $cause"
        fi
    done
}

fail_up() {
    log "ERROR: $*"
    show_logs "${AGENTS[@]}"
    stop_agents TERM "${ALL_AGENTS[@]}"
    log "logs kept in $STACK_DIR (removed by the next up/down)"
    exit 1
}

fail_restart() {
    log "ERROR: restart: $*"
    show_logs "$RESTARTING"
    stop_agents TERM "$RESTARTING"
    log "$RESTARTING is stopped; its wallet and log are kept in $STACK_DIR"
    exit 1
}

# JSON helpers via the venv python (no jq).
json_get() { # json_get KEY  < json   -> prints top-level KEY
    "$VENV/bin/python" -c 'import json,sys; v=json.load(sys.stdin)[sys.argv[1]]; print(v if isinstance(v,str) else json.dumps(v))' "$1"
}

# ---------------------------------------------------------------- commands
cmd_up() {
    local env_file="" t0 a p
    while (($#)); do
        case $1 in
            --mediator-only) STACK_AGENTS=mediator ;;
            -*) usage ;;
            *) [[ -z "$env_file" ]] || usage; env_file=$1 ;;
        esac
        shift
    done
    env_file=${env_file:-$DEFAULT_ENV_FILE}
    case $STACK_AGENTS in
        all | "mediator multi" | mediator,multi) AGENTS=(mediator multi) ;;
        mediator) AGENTS=(mediator) ;;
        *) die "ACAPY_STACK_AGENTS=$STACK_AGENTS: expected all or mediator" ;;
    esac
    check_stack_dir
    command -v curl >/dev/null || die "curl not found"
    command -v setsid >/dev/null || die "setsid not found (util-linux)"

    if any_running; then
        die "stack already running (state dir $STACK_DIR); run '$0 down' first"
    fi
    for a in "${AGENTS[@]}"; do
        for p in $(agent_ports "$a"); do
            port_in_use "$p" && die "port $HOST:$p ($a) is already in use by another process"
        done
    done

    ensure_venv

    rm -rf "$STACK_DIR"
    mkdir -p "$STACK_DIR" "$(dirname "$env_file")"
    chmod 700 "$STACK_DIR"
    env_file="$(cd "$(dirname "$env_file")" && pwd)/$(basename "$env_file")"
    echo "$env_file" >"$STACK_DIR/env-file-path"
    save_config
    for a in "${AGENTS[@]}"; do new_secret "$a.wallet-key"; done
    if in_stack multi; then new_secret multi.jwt-secret; fi

    t0=$(now)
    for a in "${AGENTS[@]}"; do start_agent "$a"; done
    wait_pidfiles "${AGENTS[@]}"
    wait_ready "$t0" fail_up "${AGENTS[@]}"

    # Mediator's multi-use OOB invitation (didexchange/1.1) for tenants and edge agents to connect to.
    local resp url
    resp=$(curl -fsS --max-time 10 -X POST \
        -H "X-API-Key: $MEDIATOR_ADMIN_API_KEY" -H 'Content-Type: application/json' \
        "http://$HOST:$MEDIATOR_ADMIN_PORT/out-of-band/create-invitation?multi_use=true&auto_accept=true" \
        -d '{"handshake_protocols":["https://didcomm.org/didexchange/1.1"],"alias":"acaload-tenants","my_label":"mediator"}') ||
        fail_up "could not create the mediator invitation"
    url=$(json_get invitation_url <<<"$resp") || fail_up "no invitation_url in: $resp"

    local tmp="$env_file.tmp.$$"
    (
        umask 077
        {
            if in_stack multi; then
                echo "ACAPY_ADMIN_URL=http://$HOST:$AGENT_ADMIN_PORT"
                echo "ACAPY_ADMIN_API_KEY=$AGENT_ADMIN_API_KEY"
            fi
            echo "MEDIATOR_ADMIN_URL=http://$HOST:$MEDIATOR_ADMIN_PORT"
            echo "MEDIATOR_ADMIN_API_KEY=$MEDIATOR_ADMIN_API_KEY"
            echo "MEDIATOR_INVITATION_URL=$url"
            echo "MEDIATOR_HTTP_URL=http://$HOST:$MEDIATOR_PORT"
            echo "MEDIATOR_WS_URL=ws://$HOST:$MEDIATOR_WS_PORT"
            # Read at every `watch:` sample, so a restarted agent is followed.
            echo "MEDIATOR_PID_FILE=$(pid_file mediator)"
            if in_stack multi; then echo "ACAPY_PID_FILE=$(pid_file multi)"; fi
        } >"$tmp"
    )
    mv -f "$tmp" "$env_file"
    local msg
    msg="mediator pid $(<"$(pid_file mediator)") (:$MEDIATOR_PORT ws :$MEDIATOR_WS_PORT admin :$MEDIATOR_ADMIN_PORT)"
    if in_stack multi; then
        msg+=", multitenant pid $(<"$(pid_file multi)") (:$AGENT_PORT admin :$AGENT_ADMIN_PORT)"
    else
        msg+=", no multitenant agent (mediator only)"
    fi
    log "stack up in $(elapsed "$t0") s: $msg; env file $env_file"
}

cmd_down() {
    local env_file=""
    check_stack_dir
    [[ -f "$STACK_DIR/env-file-path" ]] && env_file=$(<"$STACK_DIR/env-file-path")
    if any_running; then
        stop_agents TERM "${ALL_AGENTS[@]}"
        log "stopped"
    fi
    if [[ -d "$STACK_DIR" ]]; then rm -rf "$STACK_DIR"; fi
    # The env file refers to a mediator wallet that no longer exists.
    if [[ -n "$env_file" && -f "$env_file" ]]; then rm -f "$env_file"; fi
    return 0
}

cmd_status() {
    local a pid port ok=0 have_config=0
    if load_config; then have_config=1; fi
    for a in "${ALL_AGENTS[@]}"; do
        port=$(admin_port "$a")
        if pid=$(live_pid "$a"); then
            if is_ready "$port"; then
                echo "$a: running (pid $pid), ready on http://$HOST:$port"
            else
                echo "$a: running (pid $pid), NOT ready on http://$HOST:$port"; ok=1
            fi
        elif in_stack "$a"; then
            echo "$a: stopped"; ok=1
        else
            echo "$a: not part of this stack (mediator only)"
        fi
    done
    if ((have_config)); then echo "mediator endpoints: http://$HOST:$MEDIATOR_PORT ws://$HOST:$MEDIATOR_WS_PORT"; fi
    if [[ -f "$STACK_DIR/env-file-path" ]]; then echo "env file: $(<"$STACK_DIR/env-file-path")"; fi
    echo "state dir: $STACK_DIR"
    return $ok
}

# Checks shared by kill and restart; sets AGENTS etc. from the state dir.
need_stack_agent() {
    case ${1:-} in mediator | multi) ;; *) usage ;; esac
    check_stack_dir
    load_config || die "no stack in $STACK_DIR (run '$0 up' first)"
    in_stack "$1" || die "$1 is not part of this stack (started with: ${AGENTS[*]})"
}

# A killed multi-threaded agent's leader shows as a zombie while its other threads still hold
# the listening sockets: its ports are free only a moment later. Waits up to 10 s.
wait_ports_free() {
    local name=$1 p i
    for p in $(agent_ports "$name"); do
        for ((i = 0; i < 50; i++)); do
            port_in_use "$p" || break
            sleep 0.2
        done
        port_in_use "$p" && return 1
    done
    return 0
}

cmd_kill() {
    local name=${1:-} pid
    need_stack_agent "$name"
    pid=$(live_pid "$name") || die "$name is not running"
    stop_agents KILL "$name"
    pid_alive "$pid" && die "$name (pid $pid) survived SIGKILL"
    wait_ports_free "$name" || die "$name (pid $pid) was killed but its ports are still in use"
    log "killed $name (SIGKILL to process group $pid)"
}

RESTARTING=""
cmd_restart() {
    local name=${1:-} t0 p
    need_stack_agent "$name"
    [[ -s "$(secret_file "$name.wallet-key")" ]] || die "no wallet key for $name in $STACK_DIR"
    command -v curl >/dev/null || die "curl not found"
    RESTARTING=$name
    if live_pid "$name" >/dev/null; then stop_agents TERM "$name"; fi
    wait_ports_free "$name" || true
    for p in $(agent_ports "$name"); do
        port_in_use "$p" && die "port $HOST:$p ($name) is already in use by another process"
    done
    t0=$(now)
    start_agent "$name"
    wait_pidfiles "$name"
    wait_ready "$t0" fail_restart "$name"
    log "restarted $name (pid $(<"$(pid_file "$name")")), ready after $(elapsed "$t0") s"
}

(($# <= 2)) || [[ "${1:-}" == up ]] || usage
case "${1:-}" in
    install) ensure_venv ;;
    up) shift; cmd_up "$@" ;;
    down) cmd_down ;;
    status) cmd_status ;;
    kill) cmd_kill "${2:-}" ;;
    restart) cmd_restart "${2:-}" ;;
    *) usage ;;
esac
