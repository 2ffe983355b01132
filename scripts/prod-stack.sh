#!/usr/bin/env bash
# A production-shaped ACA-Py 1.7.0 mediator on this machine, beside the lab stack (acapy-stack.sh):
# PostgreSQL (a cluster of its own), PROD_INSTANCES mediator instances (default 2) on ONE
# askar-postgres wallet, and nginx in front terminating TLS for HTTP and WebSocket with a CA made
# here, balancing round-robin with no stickiness (as a Kubernetes Service). Loopback only.
#
#   scripts/prod-stack.sh install        apt-get install postgresql and nginx when missing, create the
#                                        ACA-Py venv (acapy-stack.sh install); prints nothing when done
#   scripts/prod-stack.sh start          install, then start postgres, the instances and nginx, wait until
#                                        each answers, create the mediator's multi-use invitation, write
#                                        the env file ($PROD_DIR/stack.env)
#   scripts/prod-stack.sh stop [--purge] stop what `start` started (nginx, instances, postgres); the
#                                        cluster, wallet and CA are kept for the next start. --purge
#                                        also removes $PROD_DIR (cluster, wallet, CA, logs)
#   scripts/prod-stack.sh status         pids and readiness; exit 0 only if every part answers
#   scripts/prod-stack.sh env [--export] the variables a plan needs (KEY=value lines, for --env-file;
#                                        --export: shell-quoted `export` lines, for eval)
#   scripts/prod-stack.sh kill N         fault injection: SIGKILL instance N's process group (1-based);
#                                        nginx sends new requests and sockets to the others
#   scripts/prod-stack.sh restart N      start instance N again (stopping it first if it runs), wait ready
#
# What runs (ports from PROD_PORT, default 3100; the lab stack uses 3000-3011):
#   nginx      https:// and wss:// on PROD_PORT (one port: requests with `Upgrade: websocket` go to
#              the instances' WebSocket transports, all others to their HTTP transports), and each
#              instance's admin API over TLS on PROD_PORT + N. CA: $PROD_DIR/ca.pem; server
#              certificate for 127.0.0.1 and localhost.
#   instance N aca-py on PROD_PORT + 10N (http), + 10N + 1 (admin, plain http), + 10N + 2 (ws);
#              every instance advertises nginx's https:// and wss:// endpoints.
#   postgres   127.0.0.1:PROD_PORT + 9, data in $PROD_DIR/pg (run as the `postgres` user when root).
# Each instance keeps its undelivered queue in memory (--enable-undelivered-queue): no maintained
# persistent queue for ACA-Py 1.7 installs from PyPI (the acapy-plugins redis_events plugin installs
# only from its git repository, and the PyPI name redis-events is an unrelated project).
#
# The first start provisions the wallet with instance 1 alone, then starts the others: started
# together on an empty database, one instance often exits ("Error fetching store configuration":
# it opens the store before the other has made its tables, and ACA-Py gives up after 3 tries).
#
# Environment (all optional; status/stop/env/kill/restart reuse what `start` saved):
#   PROD_DIR               state: cluster, certificates, logs, pid files, secrets ($REPO/.prod)
#   PROD_PORT              nginx's public port, base of the others                  (3100)
#   PROD_INSTANCES         mediator instances, 1..8                                  (2)
#   PROD_POOL_MAX          askar's PostgreSQL pool size per instance (max_connections)(10, askar's default)
#   PROD_POOL_TIMEOUT      seconds a request waits for a pool connection            (askar's default, 30)
#   PROD_NGINX_WORKERS     nginx worker processes                                   (1)
#   PROD_READY_TIMEOUT     seconds to wait for each part                            (90)
#   PROD_MEDIATOR_EXTRA_ARGS  extra aca-py args for every instance, split on whitespace
#   ACAPY_VENV             the ACA-Py venv                                          ($REPO/.acapy/venv)
#
# Secrets (wallet key, database password, admin API key) are random, made once per PROD_DIR, kept
# there (mode 600) and handed to aca-py through its environment, not its command line. The admin
# API key is in the env file (the plan's `watch:` needs it). Exit codes: 0 ok, 1 error (one line on
# stderr starting with "prod-stack: ERROR:"), 2 usage.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)

PROD_DIR=${PROD_DIR:-$REPO/.prod}
VENV=${ACAPY_VENV:-$REPO/.acapy/venv}
HOST=127.0.0.1

log() { printf 'prod-stack: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
usage() {
    echo "usage: $0 install | start | stop [--purge] | status | env [--export] | kill N | restart N" >&2
    exit 2
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

check_prod_dir() {
    case "$PROD_DIR" in
        "" | / | "$HOME" | "$REPO" | /root | /tmp | /work) die "refusing to use PROD_DIR=$PROD_DIR" ;;
    esac
}

# ---------------------------------------------------------------- settings
# Read from the environment by `start`, saved in $PROD_DIR/config, read back by the other commands.
SETTINGS=(PROD_PORT PROD_INSTANCES PROD_POOL_MAX PROD_POOL_TIMEOUT PROD_NGINX_WORKERS
    PROD_READY_TIMEOUT PROD_MEDIATOR_EXTRA_ARGS)

settings_from_env() {
    PROD_PORT=${PROD_PORT:-3100}
    PROD_INSTANCES=${PROD_INSTANCES:-2}
    PROD_POOL_MAX=${PROD_POOL_MAX:-10}
    PROD_POOL_TIMEOUT=${PROD_POOL_TIMEOUT:-}
    PROD_NGINX_WORKERS=${PROD_NGINX_WORKERS:-1}
    PROD_READY_TIMEOUT=${PROD_READY_TIMEOUT:-90}
    PROD_MEDIATOR_EXTRA_ARGS=${PROD_MEDIATOR_EXTRA_ARGS:-}
    if ! [[ "$PROD_PORT" =~ ^[0-9]+$ ]] || ((PROD_PORT < 1024 || PROD_PORT > 65435)); then
        die "PROD_PORT=$PROD_PORT: expected a port from 1024 to 65435"
    fi
    [[ "$PROD_INSTANCES" =~ ^[1-8]$ ]] || die "PROD_INSTANCES=$PROD_INSTANCES: expected 1 to 8"
    [[ "$PROD_POOL_MAX" =~ ^[1-9][0-9]*$ ]] || die "PROD_POOL_MAX=$PROD_POOL_MAX: expected a positive integer"
    [[ -z "$PROD_POOL_TIMEOUT" || "$PROD_POOL_TIMEOUT" =~ ^[1-9][0-9]*$ ]] ||
        die "PROD_POOL_TIMEOUT=$PROD_POOL_TIMEOUT: expected whole seconds"
    [[ "$PROD_NGINX_WORKERS" =~ ^[1-9][0-9]*$ ]] || die "PROD_NGINX_WORKERS=$PROD_NGINX_WORKERS: expected a positive integer"
    [[ "$PROD_READY_TIMEOUT" =~ ^[1-9][0-9]*$ ]] || die "PROD_READY_TIMEOUT=$PROD_READY_TIMEOUT: expected seconds"
}

save_settings() {
    local v
    (
        umask 077
        for v in "${SETTINGS[@]}"; do printf '%s=%q\n' "$v" "${!v}"; done >"$PROD_DIR/config"
    )
}

load_settings() {
    [[ -f "$PROD_DIR/config" ]] || return 1
    # shellcheck disable=SC1091
    source "$PROD_DIR/config"
}

# Port layout (see the header).
public_port() { echo "$PROD_PORT"; }
admin_tls_port() { echo $((PROD_PORT + $1)); }
pg_port() { echo $((PROD_PORT + 9)); }
http_port() { echo $((PROD_PORT + 10 * $1)); }
admin_port() { echo $((PROD_PORT + 10 * $1 + 1)); }
ws_port() { echo $((PROD_PORT + 10 * $1 + 2)); }
instances() { seq 1 "$PROD_INSTANCES"; }

# ---------------------------------------------------------------- install
pg_bindir() {
    local d
    d=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    [[ -x "$d/initdb" && -x "$d/pg_ctl" && -x "$d/postgres" ]] || return 1
    echo "$d"
}

cmd_install() {
    local missing=() out
    pg_bindir >/dev/null || missing+=(postgresql)
    [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
    command -v openssl >/dev/null 2>&1 || missing+=(openssl)
    command -v curl >/dev/null 2>&1 || missing+=(curl)
    if ((${#missing[@]})); then
        [[ "$(id -u)" == 0 ]] ||
            die "missing ${missing[*]}; install as root first: apt-get update && apt-get install -y ${missing[*]}"
        command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get here"
        log "installing ${missing[*]} with apt-get ..."
        export DEBIAN_FRONTEND=noninteractive
        # Output only on failure. The package lists are refreshed only when the install fails without.
        out=$({ apt-get install -y -qq --no-install-recommends "${missing[@]}" ||
            { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; }; } 2>&1 </dev/null) || {
            printf '%s\n' "$out" | tail -n 20 >&2
            die "apt-get install ${missing[*]} failed"
        }
        pg_bindir >/dev/null || die "postgresql installed but no initdb/pg_ctl under /usr/lib/postgresql/*/bin"
    fi
    ACAPY_VENV=$VENV "$SCRIPT_DIR/acapy-stack.sh" install
}

# ---------------------------------------------------------------- processes
port_in_use() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# Alive and not a zombie.
pid_alive() {
    local stat
    read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
    stat=${stat##*) }
    [[ "${stat%% *}" != [ZX] ]]
}

# pid_matching FILE PATTERN: the pid in FILE's first line if that process lives and its command
# line contains PATTERN (a guard against pid reuse).
pid_matching() {
    local pid
    [[ -f "$1" ]] || return 1
    read -r pid <"$1" || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    pid_alive "$pid" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$2" || return 1
    echo "$pid"
}

wait_gone() { # wait_gone PID SECONDS
    local i
    for ((i = 0; i < $2 * 10; i++)); do pid_alive "$1" || return 0; sleep 0.1; done
    return 1
}

secret() { # secret NAME: print it, making it first if needed
    local f="$PROD_DIR/secrets/$1"
    if [[ ! -s "$f" ]]; then
        (umask 077; mkdir -p "$PROD_DIR/secrets"; openssl rand -hex 32 >"$f")
    fi
    cat "$f"
}

# ---------------------------------------------------------------- certificates
make_certs() {
    local d=$PROD_DIR
    if [[ -s "$d/ca.pem" && -s "$d/server.pem" && -s "$d/server.key" ]] &&
        openssl x509 -checkend 86400 -noout -in "$d/server.pem" >/dev/null 2>&1 &&
        openssl verify -CAfile "$d/ca.pem" "$d/server.pem" >/dev/null 2>&1; then
        return 0
    fi
    (
        umask 077
        openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 -days 3650 \
            -subj "/CN=acaload prod-stack CA" -keyout "$d/ca.key" -out "$d/ca.pem" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
        openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 \
            -subj "/CN=127.0.0.1" -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
        printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=critical,CA:FALSE" \
            "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" \
            "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid,issuer" >"$d/server.ext"
        openssl x509 -req -sha256 -days 825 -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
            -CAcreateserial -extfile "$d/server.ext" -out "$d/server.pem" 2>/dev/null
        rm -f "$d/server.csr" "$d/server.ext" "$d/ca.srl"
    ) || die "openssl could not make the CA and server certificate in $d"
    chmod 644 "$d/ca.pem" "$d/server.pem"
}

# ---------------------------------------------------------------- postgres
PG_USER=postgres # the OS user the server runs as, and its superuser's name
[[ "$(id -u)" == 0 ]] || PG_USER=$(id -un)
PG_DATA=$PROD_DIR/pg/data
PG_RUN=$PROD_DIR/pg/run
PG_LOG=$PROD_DIR/pg/postgres.log
PG_BIN=""
pg_setup_vars() {
    PG_BIN=$(pg_bindir) || die "PostgreSQL not installed (run '$0 install')"
    # Unix socket paths are limited to 107 bytes.
    ((${#PG_RUN} < 90)) || die "PROD_DIR is too long for postgres' socket path ($PG_RUN)"
}

# The wallet's database exists (askar made it at the first provisioning).
pg_has_wallet() {
    [[ "$(pg_psql -tA <<<"SELECT 1 FROM pg_database WHERE datname = 'mediator'")" == 1 ]]
}

as_pg() {
    if [[ "$(id -u)" == 0 ]]; then runuser -u "$PG_USER" -- "$@"; else "$@"; fi
}

pg_pid() { pid_matching "$PG_DATA/postmaster.pid" "$PG_DATA"; }

pg_psql() { # SQL on stdin, as the superuser over the cluster's unix socket; extra psql args
    as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_RUN" -p "$(pg_port)" -U "$PG_USER" -d postgres "$@" -f -
}

pg_start() {
    local max out
    if [[ ! -s "$PG_DATA/PG_VERSION" ]]; then
        mkdir -p "$PROD_DIR/pg"
        [[ "$(id -u)" != 0 ]] || chown "$PG_USER:" "$PROD_DIR/pg"
        chmod 700 "$PROD_DIR/pg"
        out=$(as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U "$PG_USER" --auth-local=peer \
            --auth-host=scram-sha-256 --encoding=UTF8 --locale=C 2>&1) || {
            printf '%s\n' "$out" | tail -n 20 >&2
            die "initdb failed in $PG_DATA"
        }
    fi
    as_pg mkdir -p "$PG_RUN"
    # Room for every instance's whole pool, plus psql and slack.
    max=$((PROD_INSTANCES * PROD_POOL_MAX + 20))
    ((max >= 100)) || max=100
    out=$(as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$PROD_READY_TIMEOUT" \
        -o "-c listen_addresses=$HOST -p $(pg_port) -k $PG_RUN -c max_connections=$max" start 2>&1) || {
        printf '%s\n' "$out" >&2
        tail -n 20 "$PG_LOG" >&2 2>/dev/null || true
        die "postgres did not start (log: $PG_LOG)"
    }
    # The wallet's role: may create its database (askar creates it at first provisioning).
    pg_psql <<SQL || die "could not create the acapy role"
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'acapy') THEN CREATE ROLE acapy LOGIN CREATEDB; END IF;
END \$\$;
ALTER ROLE acapy PASSWORD '$(secret pg-password)';
SQL
}

pg_stop() {
    local pid
    pid=$(pg_pid) || return 0
    log "stopping postgres (pid $pid)"
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 30 stop >/dev/null 2>&1 || true
    if ! wait_gone "$pid" 10; then
        log "postgres (pid $pid) still running after pg_ctl stop, sending KILL"
        kill -KILL "$pid" 2>/dev/null || true
        wait_gone "$pid" 5 || true
    fi
}

# ---------------------------------------------------------------- mediator instances
inst_pid_file() { echo "$PROD_DIR/mediator-$1.pid"; }
inst_log() { echo "$PROD_DIR/mediator-$1.log"; }
inst_pid() { pid_matching "$(inst_pid_file "$1")" "aca-py start"; }

# The wallet is the database `mediator`, shared by every instance.
inst_args() {
    local n=$1 cfg
    cfg="{\"url\":\"$HOST:$(pg_port)\",\"max_connections\":$PROD_POOL_MAX"
    [[ -z "$PROD_POOL_TIMEOUT" ]] || cfg+=",\"connection_timeout\":$PROD_POOL_TIMEOUT"
    cfg+="}"
    local extra=()
    read -r -a extra <<<"$PROD_MEDIATOR_EXTRA_ARGS"
    INST_ARGS=(
        --label mediator
        --inbound-transport http "$HOST" "$(http_port "$n")"
        --inbound-transport ws "$HOST" "$(ws_port "$n")"
        --outbound-transport http
        --endpoint "https://$HOST:$(public_port)" "wss://$HOST:$(public_port)"
        --admin "$HOST" "$(admin_port "$n")"
        --wallet-type askar --wallet-name mediator --auto-provision
        --wallet-storage-type postgres_storage --wallet-storage-config "$cfg"
        --no-ledger
        --open-mediation --enable-undelivered-queue --monitor-forward
        --auto-accept-invites --auto-accept-requests --auto-ping-connection
        --log-level warning
        "${extra[@]}"
    )
}

# Launched in its own session (pgid == pid); the child writes its pid file. No ACAPY_* variable of
# the caller reaches aca-py (configargparse would take it as an option), only the ones set here.
inst_start() {
    local n=$1 home="$PROD_DIR/mediator-$1-home" creds v
    inst_args "$n"
    creds="{\"account\":\"acapy\",\"password\":\"$(secret pg-password)\",\"admin_account\":\"acapy\",\"admin_password\":\"$(secret pg-password)\"}"
    mkdir -p "$home"
    rm -f "$(inst_pid_file "$n")"
    printf '==== prod-stack: starting mediator-%s at %s\n' "$n" "$(date -Is)" >>"$(inst_log "$n")"
    (
        for v in $(compgen -e); do
            if [[ "$v" == ACAPY_* ]]; then unset "$v"; fi
        done
        ACAPY_WALLET_KEY=$(secret wallet-key)
        ACAPY_ADMIN_API_KEY=$(secret admin-api-key)
        export ACAPY_HOME="$home" PYTHONUNBUFFERED=1 ACAPY_WALLET_KEY ACAPY_ADMIN_API_KEY
        export ACAPY_WALLET_STORAGE_CREDS="$creds"
        # One socket per connected edge agent: as many open files as allowed.
        ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
        # shellcheck disable=SC2016
        exec setsid bash -c 'echo $$ >"$0"; exec nohup "$@"' "$(inst_pid_file "$n")" \
            "$VENV/bin/aca-py" start "${INST_ARGS[@]}"
    ) >>"$(inst_log "$n")" 2>&1 </dev/null &
}

inst_ready() { curl -fsS --max-time 2 "http://$HOST:$(admin_port "$1")/status/ready" 2>/dev/null | grep -q '"ready": *true'; }

show_inst_log() {
    local f cause
    f=$(inst_log "$1")
    [[ -f "$f" ]] || return 0
    log "---- last 20 lines of $f ----"
    tail -n 20 "$f" >&2 || true
    cause=$(grep -E '^(aca-py [a-z]+: error:|[A-Za-z_.]*(Error|Exception)[A-Za-z_]*:)' "$f" | tail -n 1 || true)
    [[ -z "$cause" ]] || log "mediator-$1: likely cause: $cause"
}

# wait_instances T0 N...: each pid file written, then /status/ready; returns 1 (after logging why)
# when one exits or the timeout passes.
wait_instances() {
    local t0=$1 n i pid pending=() still deadline
    shift
    for n in "$@"; do
        for ((i = 0; i < 50; i++)); do [[ -s "$(inst_pid_file "$n")" ]] && break; sleep 0.1; done
        [[ -s "$(inst_pid_file "$n")" ]] || { log "ERROR: mediator-$n did not write its pid file"; return 1; }
        pending+=("$n")
    done
    deadline=$((SECONDS + PROD_READY_TIMEOUT))
    while ((${#pending[@]})); do
        still=()
        for n in "${pending[@]}"; do
            if inst_ready "$n"; then log "mediator-$n ready after $(elapsed "$t0") s"; continue; fi
            read -r pid <"$(inst_pid_file "$n")"
            pid_alive "$pid" || { log "ERROR: mediator-$n exited during startup"; show_inst_log "$n"; return 1; }
            still+=("$n")
        done
        ((${#still[@]})) || break
        pending=("${still[@]}")
        if ((SECONDS >= deadline)); then
            log "ERROR: not ready after $PROD_READY_TIMEOUT s: ${pending[*]/#/mediator-}"
            for n in "${pending[@]}"; do show_inst_log "$n"; done
            return 1
        fi
        sleep 0.2
    done
}

# inst_stop SIG N...: signal the live ones' process groups (TERM: KILL after 10 s), wait until gone.
inst_stop() {
    local sig=$1 n pid pids=()
    shift
    for n in "$@"; do
        if pid=$(inst_pid "$n"); then
            pids+=("$pid")
            [[ "$sig" == KILL ]] || log "stopping mediator-$n (pid $pid)"
            kill "-$sig" -- "-$pid" 2>/dev/null || kill "-$sig" "$pid" 2>/dev/null || true
        fi
    done
    for pid in "${pids[@]}"; do
        if ! wait_gone "$pid" 10; then
            log "pid $pid ignored $sig for 10 s, sending KILL"
            kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
            wait_gone "$pid" 5 || true
        fi
    done
    for n in "$@"; do rm -f "$(inst_pid_file "$n")"; done
}

# A killed multi-threaded process's leader can be gone while other threads still hold its sockets.
wait_inst_ports_free() {
    local p i
    for p in $(http_port "$1") $(admin_port "$1") $(ws_port "$1"); do
        for ((i = 0; i < 50; i++)); do port_in_use "$p" || break; sleep 0.2; done
        port_in_use "$p" && return 1
    done
    return 0
}

# ---------------------------------------------------------------- nginx
NGINX=/usr/sbin/nginx
ngx_dir() { echo "$PROD_DIR/nginx"; }
ngx_pid() { pid_matching "$(ngx_dir)/nginx.pid" "nginx: master process"; }

# Round-robin over the instances, per request for HTTP and per connection for WebSocket (the
# default balancing, no hash or sticky cookie): a phone's socket and the POSTs for it can land on
# different instances, as behind a Kubernetes Service. A refused connection is retried on the next
# instance (proxy_next_upstream's default `error timeout`); a POST already sent is not. No passive
# health marks (max_fails=0): a Service sends to every ready endpoint, and nginx's default would
# keep a restarted instance out for 10 s after one refused connect, so a failover's reconnects
# would meet "no live upstreams" (502) while the survivor is up.
write_nginx_conf() {
    local d n ws_servers="" http_servers="" admin_servers="" instance_of="" nofile wc user=""
    d=$(ngx_dir)
    for n in $(instances); do
        # The last address tried is the one that answered ("a:1, b:2" after a retry).
        instance_of+="        \"~:$(http_port "$n")\$\" $n;"$'\n'"        \"~:$(ws_port "$n")\$\" $n;"$'\n'
        http_servers+="        server $HOST:$(http_port "$n") max_fails=0;"$'\n'
        ws_servers+="        server $HOST:$(ws_port "$n") max_fails=0;"$'\n'
        admin_servers+="    server {
        listen $HOST:$(admin_tls_port "$n") ssl;
        location / {
            proxy_pass http://$HOST:$(admin_port "$n");
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection \$connection_upgrade;
            proxy_set_header Host \$host;
            proxy_read_timeout 1h;
        }
    }
"
    done
    nofile=$(ulimit -Hn)
    [[ "$nofile" =~ ^[0-9]+$ ]] || nofile=65536
    ((nofile <= 1048576)) || nofile=1048576
    # Two connections per proxied socket (client and instance); leave some for files.
    wc=$((nofile - 64))
    ((wc <= 65536)) || wc=65536
    if [[ "$(id -u)" == 0 ]]; then user="user www-data;"; getent passwd www-data >/dev/null || user="user nobody;"; fi
    cat >"$d/nginx.conf" <<EOF
# Written by scripts/prod-stack.sh start; rewritten at every start.
$user
worker_processes $PROD_NGINX_WORKERS;
worker_rlimit_nofile $nofile;
worker_shutdown_timeout 5s;
pid $d/nginx.pid;
error_log $d/error.log warn;

events {
    worker_connections $wc;
}

http {
    # upstream= names the instance that answered (how requests alternate can be read here).
    log_format upstream '\$remote_addr [\$time_iso8601] "\$request_method \$uri" \$status '
                        'upstream=\$upstream_addr rt=\$request_time urt=\$upstream_response_time';
    access_log $d/access.log upstream buffer=64k flush=1s;
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;

    ssl_certificate $PROD_DIR/server.pem;
    ssl_certificate_key $PROD_DIR/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:10m;
    client_max_body_size 10m;
    keepalive_requests 100000;

    map \$http_upgrade \$connection_upgrade {
        default upgrade;
        ''      '';
    }
    # A WebSocket handshake goes to the instances' ws transports, everything else to http.
    map \$http_upgrade \$mediator_upstream {
        default        mediator_http;
        ~*^websocket\$ mediator_ws;
    }

    # Which instance answered, by number, in every response (X-Mediator-Instance, WebSocket
    # upgrades included): acaload's target.instance_header, so a message lost at the instance
    # that holds no socket for its receiver is counted lost for that reason.
    map \$upstream_addr \$mediator_instance {
        default "";
$instance_of    }

    upstream mediator_http {
$http_servers        keepalive 64;
    }
    upstream mediator_ws {
$ws_servers    }

    server {
        listen $HOST:$(public_port) ssl;
        server_name $HOST localhost;
        location / {
            proxy_pass http://\$mediator_upstream;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection \$connection_upgrade;
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto https;
            # Idle mediator sockets stay open for an hour each way.
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
            add_header X-Mediator-Instance \$mediator_instance always;
        }
    }

$admin_servers}
EOF
}

ngx_start() {
    local d out i
    d=$(ngx_dir)
    # (nginx makes the temp folders inside, owned by its workers' user)
    mkdir -p "$d/tmp"
    write_nginx_conf
    out=$("$NGINX" -t -q -p "$d/" -e "$d/error.log" -c "$d/nginx.conf" 2>&1) || {
        printf '%s\n' "$out" >&2
        die "nginx rejects $d/nginx.conf"
    }
    rm -f "$d/nginx.pid"
    "$NGINX" -p "$d/" -e "$d/error.log" -c "$d/nginx.conf" || die "nginx did not start (log: $d/error.log)"
    for ((i = 0; i < 50; i++)); do ngx_pid >/dev/null && return 0; sleep 0.1; done
    die "nginx did not write its pid file (log: $d/error.log)"
}

ngx_stop() {
    local pid
    pid=$(ngx_pid) || return 0
    log "stopping nginx (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_gone "$pid" 10; then
        log "nginx (pid $pid) still running after TERM, sending KILL to it and its workers"
        pkill -KILL -P "$pid" 2>/dev/null || true
        kill -KILL "$pid" 2>/dev/null || true
        wait_gone "$pid" 5 || true
    fi
}

# ---------------------------------------------------------------- env file
env_file() { echo "$PROD_DIR/stack.env"; }

write_env() {
    local url=$1 n tmp
    tmp="$(env_file).tmp.$$"
    (
        umask 077
        {
            echo "MEDIATOR_INVITATION_URL=$url"
            echo "MEDIATOR_HTTP_URL=https://$HOST:$(public_port)"
            echo "MEDIATOR_WS_URL=wss://$HOST:$(public_port)"
            echo "MEDIATOR_CA_FILE=$PROD_DIR/ca.pem"
            echo "MEDIATOR_INSTANCE_HEADER=X-Mediator-Instance"
            echo "MEDIATOR_ADMIN_API_KEY=$(secret admin-api-key)"
            # Instance 1 under the lab stack's names, so plans with one `watch:` entry work.
            echo "MEDIATOR_ADMIN_URL=http://$HOST:$(admin_port 1)"
            echo "MEDIATOR_PID_FILE=$(inst_pid_file 1)"
            echo "MEDIATOR_INSTANCES=$PROD_INSTANCES"
            for n in $(instances); do
                echo "MEDIATOR_${n}_ADMIN_URL=http://$HOST:$(admin_port "$n")"
                echo "MEDIATOR_${n}_ADMIN_TLS_URL=https://$HOST:$(admin_tls_port "$n")"
                echo "MEDIATOR_${n}_PID_FILE=$(inst_pid_file "$n")"
            done
        } >"$tmp"
    )
    mv -f "$tmp" "$(env_file)"
}

# ---------------------------------------------------------------- commands
all_ports() {
    local n
    echo "$(public_port) $(pg_port)"
    for n in $(instances); do echo "$(admin_tls_port "$n") $(http_port "$n") $(admin_port "$n") $(ws_port "$n")"; done
}

any_running() {
    local n
    ngx_pid >/dev/null && return 0
    for n in $(seq 1 8); do inst_pid "$n" >/dev/null && return 0; done
    pg_pid >/dev/null
}

fail_start() {
    log "ERROR: $*"
    stop_all
    log "logs kept in $PROD_DIR"
    exit 1
}

stop_all() {
    ngx_stop
    # Every instance number a pid file may name, whatever PROD_INSTANCES is now.
    inst_stop TERM $(seq 1 8)
    pg_stop
}

cmd_start() {
    local t0 t p n resp url
    check_prod_dir
    if any_running; then
        die "already running (state dir $PROD_DIR); run '$0 stop' first"
    fi
    settings_from_env
    cmd_install
    pg_setup_vars
    command -v setsid >/dev/null || die "setsid not found (util-linux)"
    for p in $(all_ports); do
        port_in_use "$p" && die "port $HOST:$p is already in use by another process"
    done
    t0=$(now)
    mkdir -p "$PROD_DIR"
    chmod 711 "$PROD_DIR" # postgres and nginx's workers pass through, nobody else lists it
    printf '*\n' >"$PROD_DIR/.gitignore"
    save_settings
    make_certs

    t=$(now)
    pg_start
    log "postgres ready on $HOST:$(pg_port) after $(elapsed "$t") s"

    # The first start provisions the wallet: one instance alone, so the others open a store that
    # is complete (askar creates the database and its tables without a lock between processes).
    t=$(now)
    if ! pg_has_wallet; then
        inst_start 1
        wait_instances "$t" 1 || fail_start "mediator-1 could not provision the wallet"
        for n in $(instances); do ((n == 1)) || inst_start "$n"; done
        ((PROD_INSTANCES == 1)) || wait_instances "$t" $(seq 2 "$PROD_INSTANCES") || fail_start "instances did not start"
    else
        for n in $(instances); do inst_start "$n"; done
        wait_instances "$t" $(seq 1 "$PROD_INSTANCES") || fail_start "instances did not start"
    fi

    t=$(now)
    ngx_start
    log "nginx up after $(elapsed "$t") s"

    # The mediator's multi-use OOB invitation (didexchange/1.1); it lives in the shared wallet,
    # so every instance accepts connections to it.
    resp=$(curl -fsS --max-time 10 -X POST -H "X-API-Key: $(secret admin-api-key)" -H 'Content-Type: application/json' \
        "http://$HOST:$(admin_port 1)/out-of-band/create-invitation?multi_use=true&auto_accept=true" \
        -d '{"handshake_protocols":["https://didcomm.org/didexchange/1.1"],"alias":"acaload-prod","my_label":"mediator"}') ||
        fail_start "could not create the mediator invitation"
    url=$("$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["invitation_url"])' <<<"$resp") ||
        fail_start "no invitation_url in: $resp"
    # Through nginx, as a user would: TLS, the certificate and the proxy path all work.
    curl -fsS --max-time 10 --cacert "$PROD_DIR/ca.pem" -o /dev/null "https://$HOST:$(public_port)/" ||
        fail_start "no answer through nginx on https://$HOST:$(public_port)"
    write_env "$url"
    log "up in $(elapsed "$t0") s: $PROD_INSTANCES instance(s) behind https://$HOST:$(public_port) and wss://$HOST:$(public_port), askar pool $PROD_POOL_MAX per instance; env file $(env_file), CA $PROD_DIR/ca.pem"
}

cmd_stop() {
    local purge=0 t0
    case ${1:-} in --purge) purge=1 ;; "") ;; *) usage ;; esac
    check_prod_dir
    if load_settings; then
        pg_setup_vars
        if any_running; then
            t0=$(now)
            stop_all
            log "stopped in $(elapsed "$t0") s"
        fi
        rm -f "$(env_file)"
    elif [[ -d "$PROD_DIR" ]] && ((purge == 0)); then
        die "no settings in $PROD_DIR/config; nothing known to stop (use --purge to remove the folder)"
    fi
    if ((purge)) && [[ -d "$PROD_DIR" ]]; then
        rm -rf "$PROD_DIR"
        log "removed $PROD_DIR (cluster, wallet, CA, logs)"
    fi
    return 0
}

cmd_status() {
    local ok=0 n pid code
    check_prod_dir
    load_settings || { echo "not started (no $PROD_DIR/config)"; return 1; }
    pg_setup_vars
    if pid=$(pg_pid) && as_pg "$PG_BIN/pg_isready" -q -h "$PG_RUN" -p "$(pg_port)"; then
        echo "postgres: running (pid $pid) on $HOST:$(pg_port)"
    else
        echo "postgres: stopped or not ready"; ok=1
    fi
    for n in $(instances); do
        if pid=$(inst_pid "$n"); then
            if inst_ready "$n"; then
                echo "mediator-$n: running (pid $pid), ready on http://$HOST:$(admin_port "$n")"
            else
                echo "mediator-$n: running (pid $pid), NOT ready on http://$HOST:$(admin_port "$n")"; ok=1
            fi
        else
            echo "mediator-$n: stopped"; ok=1
        fi
    done
    if pid=$(ngx_pid); then
        code=$(curl -sS --max-time 5 --cacert "$PROD_DIR/ca.pem" -o /dev/null -w '%{http_code}' \
            "https://$HOST:$(public_port)/" 2>/dev/null || true)
        echo "nginx: running (pid $pid) on https://$HOST:$(public_port) (GET / -> ${code:-no answer})"
        [[ "$code" == 200 ]] || ok=1
    else
        echo "nginx: stopped"; ok=1
    fi
    echo "state dir: $PROD_DIR"
    return $ok
}

cmd_env() {
    local k v
    [[ -s "$(env_file)" ]] || die "no env file; run '$0 start' first"
    case ${1:-} in
        "") cat "$(env_file)" ;;
        --export)
            while IFS='=' read -r k v; do printf 'export %s=%q\n' "$k" "$v"; done <"$(env_file)"
            ;;
        *) usage ;;
    esac
}

need_instance() {
    [[ "${1:-}" =~ ^[1-8]$ ]] || usage
    check_prod_dir
    load_settings || die "not started (no $PROD_DIR/config)"
    ((${1} <= PROD_INSTANCES)) || die "instance $1: this deployment has $PROD_INSTANCES"
}

cmd_kill() {
    local n=${1:-} pid
    need_instance "$n"
    pid=$(inst_pid "$n") || die "mediator-$n is not running"
    inst_stop KILL "$n"
    pid_alive "$pid" && die "mediator-$n (pid $pid) survived SIGKILL"
    wait_inst_ports_free "$n" || die "mediator-$n (pid $pid) was killed but its ports are still in use"
    log "killed mediator-$n (SIGKILL to process group $pid)"
}

cmd_restart() {
    local n=${1:-} t0
    need_instance "$n"
    pg_setup_vars
    pg_pid >/dev/null || die "postgres is not running; run '$0 start'"
    if inst_pid "$n" >/dev/null; then inst_stop TERM "$n"; fi
    wait_inst_ports_free "$n" || die "mediator-$n's ports are still in use"
    t0=$(now)
    inst_start "$n"
    wait_instances "$t0" "$n" || { inst_stop TERM "$n"; die "mediator-$n did not restart (log: $(inst_log "$n"))"; }
    log "restarted mediator-$n (pid $(inst_pid "$n")), ready after $(elapsed "$t0") s"
}

(($# <= 2)) || usage
case "${1:-}" in
    install) (($# == 1)) || usage; cmd_install ;;
    start) (($# == 1)) || usage; cmd_start ;;
    stop) cmd_stop "${2:-}" ;;
    status) (($# == 1)) || usage; cmd_status ;;
    env) cmd_env "${2:-}" ;;
    kill) cmd_kill "${2:-}" ;;
    restart) cmd_restart "${2:-}" ;;
    *) usage ;;
esac
