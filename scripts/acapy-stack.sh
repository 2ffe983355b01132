#!/usr/bin/env bash
# Local ACA-Py 1.7.0 test stack for acaload: one mediator + one multitenant agent,
# everything on 127.0.0.1, per-run state thrown away on `down`.
#
#   scripts/acapy-stack.sh install         create the Python 3.13 venv with acapy-agent 1.7.0 (once)
#   scripts/acapy-stack.sh up [ENV_FILE]   install (once), start both agents, wait for ready,
#                                          create the mediator's multi-use invitation, write ENV_FILE
#                                          (default: $REPO/.acapy/stack.env)
#   scripts/acapy-stack.sh down            stop exactly the processes `up` started, remove state dir + env file
#   scripts/acapy-stack.sh status          show pids/readiness; exit 0 only if both agents are ready
#
# `up` refuses (exit 1) when the stack is already running: run `down` first.
#
# Environment (all optional):
#   ACAPY_VENV              venv location                      ($REPO/.acapy/venv)
#   ACAPY_STACK_DIR         pid files, logs, ACAPY_HOME        ($REPO/.acapy/stack)  -- wiped on up/down
#   MEDIATOR_PORT           mediator inbound http port         (3000)
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
set -euo pipefail

ACAPY_VERSION=1.7.0
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)

VENV=${ACAPY_VENV:-$REPO/.acapy/venv}
STACK_DIR=${ACAPY_STACK_DIR:-$REPO/.acapy/stack}
DEFAULT_ENV_FILE=$REPO/.acapy/stack.env

MEDIATOR_PORT=${MEDIATOR_PORT:-3000}
MEDIATOR_ADMIN_PORT=${MEDIATOR_ADMIN_PORT:-3001}
MEDIATOR_ADMIN_API_KEY=${MEDIATOR_ADMIN_API_KEY:-mediator-admin-key}
AGENT_PORT=${AGENT_PORT:-3010}
AGENT_ADMIN_PORT=${AGENT_ADMIN_PORT:-3011}
AGENT_ADMIN_API_KEY=${ACAPY_ADMIN_API_KEY:-agent-admin-key}
READY_TIMEOUT=${ACAPY_READY_TIMEOUT:-60}

HOST=127.0.0.1
AGENTS=(mediator multi)

log() { printf 'acapy-stack: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

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

# Print the pid of agent $1 if its pid file exists and the process is an aca-py we started.
live_pid() {
    local f pid
    f=$(pid_file "$1")
    [[ -f "$f" ]] || return 1
    pid=$(<"$f")
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    # Guard against pid reuse: the process must be our venv's aca-py.
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "aca-py start" || return 1
    echo "$pid"
}

any_running() {
    local a
    for a in "${AGENTS[@]}"; do live_pid "$a" >/dev/null && return 0; done
    return 1
}

# Command line for aca-py without our own ACAPY_* control variables (and any other stray
# ACAPY_* variable, which configargparse would otherwise pick up as an aca-py option).
clean_env_args() {
    local v
    CLEAN_ENV=(env)
    for v in $(compgen -e); do
        [[ "$v" == ACAPY_* ]] && CLEAN_ENV+=(-u "$v")
    done
    return 0
}

# start_agent NAME ARGS... : launched in its own session (pgid == pid), pid written by the child itself.
start_agent() {
    local name=$1; shift
    local home="$STACK_DIR/$name-home"
    mkdir -p "$home"
    clean_env_args
    # shellcheck disable=SC2016
    "${CLEAN_ENV[@]}" ACAPY_HOME="$home" PYTHONUNBUFFERED=1 \
        setsid bash -c 'echo $$ >"$0"; exec nohup "$@"' "$(pid_file "$name")" \
        "$VENV/bin/aca-py" start "$@" \
        >"$STACK_DIR/$name.log" 2>&1 </dev/null &
}

wait_pidfiles() {
    local a i
    for a in "${AGENTS[@]}"; do
        for ((i = 0; i < 50; i++)); do
            [[ -s "$(pid_file "$a")" ]] && break
            sleep 0.1
        done
        [[ -s "$(pid_file "$a")" ]] || die "$a did not write its pid file"
    done
}

is_ready() { curl -fsS --max-time 2 "http://$HOST:$1/status/ready" 2>/dev/null | grep -q '"ready": *true'; }

# Stop all agents of this stack (pid files), TERM then KILL after 10 s, whole process groups.
stop_agents() {
    local a pid pids=() deadline i
    for a in "${AGENTS[@]}"; do
        if pid=$(live_pid "$a"); then
            pids+=("$pid")
            log "stopping $a (pid $pid)"
            kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        fi
    done
    ((${#pids[@]})) || return 0
    deadline=$((SECONDS + 10))
    while ((SECONDS < deadline)); do
        local alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.2
    done
    for pid in "${pids[@]}"; do
        # KILL the group too, in case aca-py left children behind.
        if kill -0 "$pid" 2>/dev/null; then log "pid $pid ignored TERM for 10 s, sending KILL"; fi
        kill -KILL -- "-$pid" 2>/dev/null || true
        kill -KILL "$pid" 2>/dev/null || true
    done
    # Reap/wait until gone (zombies of our own shell don't count).
    for pid in "${pids[@]}"; do
        for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    done
}

fail_up() {
    local a
    log "ERROR: $*"
    for a in "${AGENTS[@]}"; do
        if [[ -f "$STACK_DIR/$a.log" ]]; then
            log "---- last 20 lines of $STACK_DIR/$a.log ----"
            tail -n 20 "$STACK_DIR/$a.log" >&2 || true
            # The real cause often sits above a long traceback.
            local cause
            cause=$(grep -E '^(aca-py [a-z]+: error:|[A-Za-z_.]*(Error|Exception)[A-Za-z_]*:)' "$STACK_DIR/$a.log" | tail -n 1 || true)
            [[ -z "$cause" ]] || log "$a: likely cause: $cause"
        fi
    done
    stop_agents
    log "logs kept in $STACK_DIR (removed by the next up/down)"
    exit 1
}

# JSON helpers via the venv python (no jq).
json_get() { # json_get KEY  < json   -> prints top-level KEY
    "$VENV/bin/python" -c 'import json,sys; v=json.load(sys.stdin)[sys.argv[1]]; print(v if isinstance(v,str) else json.dumps(v))' "$1"
}

# ---------------------------------------------------------------- commands
cmd_up() {
    local env_file=${1:-$DEFAULT_ENV_FILE} t0 a p
    check_stack_dir
    command -v curl >/dev/null || die "curl not found"
    command -v setsid >/dev/null || die "setsid not found (util-linux)"

    if any_running; then
        die "stack already running (state dir $STACK_DIR); run '$0 down' first"
    fi
    for p in "$MEDIATOR_PORT" "$MEDIATOR_ADMIN_PORT" "$AGENT_PORT" "$AGENT_ADMIN_PORT"; do
        port_in_use "$p" && die "port $HOST:$p is already in use by another process"
    done

    ensure_venv

    rm -rf "$STACK_DIR"
    mkdir -p "$STACK_DIR" "$(dirname "$env_file")"
    chmod 700 "$STACK_DIR"
    env_file="$(cd "$(dirname "$env_file")" && pwd)/$(basename "$env_file")"
    echo "$env_file" >"$STACK_DIR/env-file-path"

    local med_extra=() agent_extra=()
    read -r -a med_extra <<<"${MEDIATOR_EXTRA_ARGS:-}"
    read -r -a agent_extra <<<"${ACAPY_EXTRA_ARGS:-}"

    t0=$(now)
    start_agent mediator \
        --label mediator \
        --inbound-transport http "$HOST" "$MEDIATOR_PORT" \
        --outbound-transport http \
        --endpoint "http://$HOST:$MEDIATOR_PORT" \
        --admin "$HOST" "$MEDIATOR_ADMIN_PORT" \
        --admin-api-key "$MEDIATOR_ADMIN_API_KEY" \
        --wallet-type askar --wallet-name mediator --wallet-key "$(rand_secret)" --auto-provision \
        --no-ledger \
        --open-mediation --enable-undelivered-queue --monitor-forward \
        --auto-accept-invites --auto-accept-requests --auto-ping-connection \
        --log-level warning \
        "${med_extra[@]}"
    start_agent multi \
        --label multi \
        --inbound-transport http "$HOST" "$AGENT_PORT" \
        --outbound-transport http \
        --endpoint "http://$HOST:$AGENT_PORT" \
        --admin "$HOST" "$AGENT_ADMIN_PORT" \
        --admin-api-key "$AGENT_ADMIN_API_KEY" \
        --multitenant --multitenant-admin --jwt-secret "$(rand_secret)" \
        --wallet-type askar --wallet-name multi --wallet-key "$(rand_secret)" --auto-provision \
        --no-ledger \
        --auto-accept-invites --auto-accept-requests --auto-ping-connection \
        --log-level warning \
        "${agent_extra[@]}"
    wait_pidfiles

    local deadline=$((SECONDS + READY_TIMEOUT)) med_ready=0 multi_ready=0
    while :; do
        ((med_ready)) || { is_ready "$MEDIATOR_ADMIN_PORT" && med_ready=1 && log "mediator ready after $(elapsed "$t0") s"; } || true
        ((multi_ready)) || { is_ready "$AGENT_ADMIN_PORT" && multi_ready=1 && log "multitenant agent ready after $(elapsed "$t0") s"; } || true
        ((med_ready && multi_ready)) && break
        for a in "${AGENTS[@]}"; do
            kill -0 "$(<"$(pid_file "$a")")" 2>/dev/null || fail_up "$a exited during startup"
        done
        ((SECONDS < deadline)) || fail_up "not ready after ${READY_TIMEOUT} s (mediator ready=$med_ready, multitenant ready=$multi_ready)"
        sleep 0.2
    done

    # Mediator's multi-use OOB invitation (didexchange/1.1) for tenants to connect to.
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
        cat >"$tmp" <<EOF
ACAPY_ADMIN_URL=http://$HOST:$AGENT_ADMIN_PORT
ACAPY_ADMIN_API_KEY=$AGENT_ADMIN_API_KEY
MEDIATOR_ADMIN_URL=http://$HOST:$MEDIATOR_ADMIN_PORT
MEDIATOR_ADMIN_API_KEY=$MEDIATOR_ADMIN_API_KEY
MEDIATOR_INVITATION_URL=$url
EOF
    )
    mv -f "$tmp" "$env_file"
    log "stack up in $(elapsed "$t0") s: mediator pid $(<"$(pid_file mediator)") (:$MEDIATOR_PORT admin :$MEDIATOR_ADMIN_PORT)," \
        "multitenant pid $(<"$(pid_file multi)") (:$AGENT_PORT admin :$AGENT_ADMIN_PORT); env file $env_file"
}

cmd_down() {
    local env_file=""
    check_stack_dir
    [[ -f "$STACK_DIR/env-file-path" ]] && env_file=$(<"$STACK_DIR/env-file-path")
    if any_running; then
        stop_agents
        log "stopped"
    fi
    if [[ -d "$STACK_DIR" ]]; then rm -rf "$STACK_DIR"; fi
    # The env file refers to a mediator wallet that no longer exists.
    if [[ -n "$env_file" && -f "$env_file" ]]; then rm -f "$env_file"; fi
    return 0
}

cmd_status() {
    local a pid port ok=0
    for a in "${AGENTS[@]}"; do
        case $a in mediator) port=$MEDIATOR_ADMIN_PORT ;; multi) port=$AGENT_ADMIN_PORT ;; esac
        if pid=$(live_pid "$a"); then
            if is_ready "$port"; then
                echo "$a: running (pid $pid), ready on http://$HOST:$port"
            else
                echo "$a: running (pid $pid), NOT ready on http://$HOST:$port"; ok=1
            fi
        else
            echo "$a: stopped"; ok=1
        fi
    done
    if [[ -f "$STACK_DIR/env-file-path" ]]; then echo "env file: $(<"$STACK_DIR/env-file-path")"; fi
    echo "state dir: $STACK_DIR"
    return $ok
}

case "${1:-}" in
    install) ensure_venv ;;
    up) shift; cmd_up "$@" ;;
    down) cmd_down ;;
    status) cmd_status ;;
    *)
        echo "usage: $0 install | up [ENV_FILE] | down | status" >&2
        exit 2
        ;;
esac
