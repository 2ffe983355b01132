#!/usr/bin/env bash
# End-to-end check of the ACA-Py 1.7.0 flow acaload relies on, with plain curl, against the stack
# started by scripts/acapy-stack.sh (behaviour doc section 0):
#   two tenants (A: default ARGON2I key derivation, B: RAW base58 key) -> mediator connection ->
#   mediation granted -> default mediator -> A invites B (via mediator) -> both active ->
#   ping + basic messages (delivery confirmed by webhook) -> mediator-side grant/keylist checks ->
#   delete both tenants.
#
#   scripts/acapy-flow-check.sh [ENV_FILE]      (default ENV_FILE: $REPO/.acapy/stack.env)
#   VERBOSE=1 prints every response body in full.
# Exits non-zero on the first failed check. Tenant wallets and the webhook listener are cleaned up on exit.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
ENV_FILE=${1:-$REPO/.acapy/stack.env}
PY=${ACAPY_VENV:-$REPO/.acapy/venv}/bin/python
[[ -x "$PY" ]] || PY=$(command -v python3)
VERBOSE=${VERBOSE:-0}
WAIT_S=${FLOW_WAIT_S:-15}

log() { printf '%s\n' "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }
ok() { log "  ok: $*"; }

# ---------------------------------------------------------------- env file (KEY=VALUE, no quoting)
[[ -f "$ENV_FILE" ]] || fail "env file $ENV_FILE not found (run scripts/acapy-stack.sh up first)"
while IFS= read -r line || [[ -n "$line" ]]; do
    [[ "$line" == *=* && "$line" != \#* ]] || continue
    key=${line%%=*} val=${line#*=}
    case $key in
        ACAPY_ADMIN_URL | ACAPY_ADMIN_API_KEY | MEDIATOR_ADMIN_URL | MEDIATOR_ADMIN_API_KEY | MEDIATOR_INVITATION_URL)
            printf -v "$key" '%s' "$val" ;;
    esac
done <"$ENV_FILE"
for v in ACAPY_ADMIN_URL ACAPY_ADMIN_API_KEY MEDIATOR_ADMIN_URL MEDIATOR_ADMIN_API_KEY MEDIATOR_INVITATION_URL; do
    [[ -n "${!v:-}" ]] || fail "$v missing in $ENV_FILE"
done
AG=$ACAPY_ADMIN_URL
MED=$MEDIATOR_ADMIN_URL

# ---------------------------------------------------------------- helpers
# jp EXPR : evaluate a python expression over d = JSON from stdin; strings printed raw, rest as JSON.
jp() { "$PY" -c 'import json,sys; d=json.load(sys.stdin); v=eval(sys.argv[1]); print(v if isinstance(v,str) else json.dumps(v))' "$1"; }

# api METHOD URL EXPECTED_STATUS AUTH [BODY]   AUTH = agent | mediator | <tenant JWT>
# Sets RESP (body), STATUS, TIME (seconds).
api() {
    local method=$1 url=$2 expect=$3 auth=$4 body=${5-} out hdr data=()
    case $auth in
        agent) hdr="X-API-Key: $ACAPY_ADMIN_API_KEY" ;;
        mediator) hdr="X-API-Key: $MEDIATOR_ADMIN_API_KEY" ;;
        *) hdr="Authorization: Bearer $auth" ;;
    esac
    [[ -n "$body" ]] && data=(--data-binary "$body")
    out=$(curl -sS --max-time 30 -X "$method" -H "$hdr" -H 'Content-Type: application/json' \
        "${data[@]}" -w '\n%{http_code} %{time_total}' "$url") || fail "curl error: $method $url"
    RESP=${out%$'\n'*}
    local last=${out##*$'\n'}
    STATUS=${last% *} TIME=${last#* }
    if ((VERBOSE)); then log "  $method $url -> $STATUS (${TIME}s) $RESP"; fi
    [[ "$STATUS" == "$expect" ]] || fail "$method $url -> $STATUS, expected $expect: $RESP"
}

ms() { awk -v t="$1" 'BEGIN { printf "%.0f", t * 1000 }'; }

# poll DESC CMD... : rerun CMD (a function returning 0 when done) every 0.1 s for up to WAIT_S seconds.
poll() {
    local desc=$1; shift
    local deadline=$((SECONDS + WAIT_S))
    until "$@"; do
        ((SECONDS < deadline)) || fail "timeout after ${WAIT_S}s waiting for $desc"
        sleep 0.1
    done
}

conn_active() { # TOKEN CONN_ID
    api GET "$AG/connections/$2" 200 "$1"
    [[ "$(jp 'd["state"]' <<<"$RESP")" == active ]]
}
mediation_granted() { # TOKEN MEDIATION_ID
    api GET "$AG/mediation/requests/$2" 200 "$1"
    [[ "$(jp 'd["state"]' <<<"$RESP")" == granted ]]
}
conn_by_invi_msg_id() { # TOKEN INVI_MSG_ID -> sets FOUND_CONN
    api GET "$AG/connections?invitation_msg_id=$2" 200 "$1"
    FOUND_CONN=$(jp '",".join(c["connection_id"] for c in d["results"])' <<<"$RESP")
    [[ -n "$FOUND_CONN" ]]
}
# did:key:z6Mk...(#frag) -> base58 ed25519 verkey (the form the mediator's keylist stores)
didkey_to_verkey() {
    "$PY" -c '
import sys
A = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
def dec(s):
    n = 0
    for ch in s: n = n * 58 + A.index(ch)
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return b"\0" * (len(s) - len(s.lstrip("1"))) + b
def enc(b):
    n = int.from_bytes(b, "big"); s = ""
    while n: n, r = divmod(n, 58); s = A[r] + s
    return "1" * (len(b) - len(b.lstrip(b"\0"))) + s
for k in sys.argv[1:]:
    mb = k.split("#")[0].split(":")[-1]
    assert mb[0] == "z", k
    raw = dec(mb[1:])
    assert raw[:2] == b"\xed\x01", k
    print(enc(raw[2:]))
' "$@"
}

# ---------------------------------------------------------------- webhook listener (127.0.0.1, random port)
WH_DIR=$(mktemp -d)
WH_PID=""
WALLETS=()
cleanup() {
    local rc=$? w
    for w in "${WALLETS[@]}"; do
        curl -sS -o /dev/null --max-time 10 -X DELETE -H "X-API-Key: $ACAPY_ADMIN_API_KEY" "$AG/multitenancy/wallet/$w" || true
    done
    if [[ -n "$WH_PID" ]]; then kill "$WH_PID" 2>/dev/null || true; wait "$WH_PID" 2>/dev/null || true; fi
    rm -rf "$WH_DIR"
    exit $rc
}
trap cleanup EXIT

"$PY" -c '
import json, sys, http.server, threading
out = open(sys.argv[1] + "/events.jsonl", "a", buffering=1)
lock = threading.Lock()
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
        try: body = json.loads(body)
        except Exception: body = body.decode("utf-8", "replace")
        with lock:
            out.write(json.dumps({"path": self.path, "wallet_id": self.headers.get("x-wallet-id"), "body": body}) + "\n")
    def log_message(self, *a): pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
open(sys.argv[1] + "/port.tmp", "w").write(str(srv.server_address[1]))
import os; os.rename(sys.argv[1] + "/port.tmp", sys.argv[1] + "/port")
srv.serve_forever()
' "$WH_DIR" </dev/null &
WH_PID=$!
for _ in $(seq 50); do [[ -f "$WH_DIR/port" ]] && break; sleep 0.1; done
[[ -f "$WH_DIR/port" ]] || fail "webhook listener did not start"
WH_URL="http://127.0.0.1:$(<"$WH_DIR/port")"
touch "$WH_DIR/events.jsonl"

# webhook_seen WALLET_ID TOPIC PY_CONDITION_ON_b : true when a matching event arrived
webhook_seen() {
    "$PY" -c '
import json, sys
wid, topic, cond = sys.argv[1:4]
for line in open(sys.argv[4]):
    e = json.loads(line); b = e["body"]
    if e["wallet_id"] == wid and e["path"] == "/topic/%s/" % topic and eval(cond):
        print(json.dumps(b)); sys.exit(0)
sys.exit(1)' "$1" "$2" "$3" "$WH_DIR/events.jsonl" >"$WH_DIR/match" 2>/dev/null
}

# ---------------------------------------------------------------- 0. stack reachable
log "== stack ($ENV_FILE)"
api GET "$AG/status" 200 agent
ok "multitenant agent $(jp '"%s %s" % (d["label"], d["version"])' <<<"$RESP")"
api GET "$MED/status" 200 mediator
ok "mediator $(jp '"%s %s" % (d["label"], d["version"])' <<<"$RESP")"

# Mediator invitation: decode the oob= base64url parameter into the JSON body.
MED_INV=$("$PY" -c '
import sys, base64, urllib.parse as u
q = u.parse_qs(u.urlparse(sys.argv[1]).query)["oob"][0]
print(base64.urlsafe_b64decode(q + "=" * (-len(q) % 4)).decode())' "$MEDIATOR_INVITATION_URL")
MED_ENDPOINT=$(jp 'd["services"][0]["serviceEndpoint"]' <<<"$MED_INV")
ok "mediator invitation decoded, serviceEndpoint $MED_ENDPOINT"

# ---------------------------------------------------------------- 1. tenants
SUFFIX=$("$PY" -c 'import secrets; print(secrets.token_hex(4))')
RAW_KEY=$("$PY" -c '
import os
A = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
b = os.urandom(32); n = int.from_bytes(b, "big"); s = ""
while n: n, r = divmod(n, 58); s = A[r] + s
print("1" * (len(b) - len(b.lstrip(b"\0"))) + s)')

log "== tenants"
api POST "$AG/multitenancy/wallet" 200 agent \
    "{\"wallet_name\":\"A-$SUFFIX\",\"wallet_key\":\"k-$SUFFIX\",\"label\":\"A\",\"wallet_type\":\"askar\",
      \"wallet_webhook_urls\":[\"$WH_URL\"],\"extra_settings\":{\"ACAPY_MONITOR_PING\":true}}"
WA=$(jp 'd["wallet_id"]' <<<"$RESP") TA=$(jp 'd["token"]' <<<"$RESP")
WALLETS+=("$WA")
T_A=$(ms "$TIME")
ok "A created (default key derivation) in ${T_A} ms: wallet_id $WA"

api POST "$AG/multitenancy/wallet" 200 agent \
    "{\"wallet_name\":\"B-$SUFFIX\",\"wallet_key\":\"$RAW_KEY\",\"wallet_key_derivation\":\"RAW\",\"label\":\"B\",
      \"wallet_type\":\"askar\",\"wallet_webhook_urls\":[\"$WH_URL\"],\"extra_settings\":{\"ACAPY_MONITOR_PING\":true}}"
WB=$(jp 'd["wallet_id"]' <<<"$RESP") TB=$(jp 'd["token"]' <<<"$RESP")
WALLETS+=("$WB")
T_B=$(ms "$TIME")
[[ "$(jp 'd["settings"].get("wallet.key_derivation_method")' <<<"$RESP")" == RAW ]] || fail "B settings lack RAW: $RESP"
ok "B created (RAW key) in ${T_B} ms: wallet_id $WB"

# ---------------------------------------------------------------- 2. mediation for each tenant
declare -A MED_CONN MEDIATION ROUTING_KEYS TENANT_DID
for who in A B; do
    tok=TA; [[ $who == B ]] && tok=TB
    tok=${!tok}
    log "== $who: mediator connection + mediation"
    api POST "$AG/out-of-band/receive-invitation?alias=mediator&auto_accept=true" 200 "$tok" "$MED_INV"
    MED_CONN[$who]=$(jp 'd["connection_id"]' <<<"$RESP")
    ok "receive-invitation -> connection ${MED_CONN[$who]} (oob state $(jp 'd["state"]' <<<"$RESP"))"
    t0=$SECONDS
    poll "$who mediator connection active" conn_active "$tok" "${MED_CONN[$who]}"
    TENANT_DID[$who]=$(jp 'd["my_did"]' <<<"$RESP")
    ok "mediator connection active (my_did ${TENANT_DID[$who]})"

    api POST "$AG/mediation/request/${MED_CONN[$who]}" 201 "$tok" '{}'
    MEDIATION[$who]=$(jp 'd["mediation_id"]' <<<"$RESP")
    ok "mediation request 201 -> ${MEDIATION[$who]} state $(jp 'd["state"]' <<<"$RESP")"
    poll "$who mediation granted" mediation_granted "$tok" "${MEDIATION[$who]}"
    ok "mediation granted"

    api PUT "$AG/mediation/${MEDIATION[$who]}/default-mediator" 201 "$tok"
    ROUTING_KEYS[$who]=$(jp 'd["routing_keys"]' <<<"$RESP")
    [[ "$(jp 'd["endpoint"]' <<<"$RESP")" == "$MED_ENDPOINT" ]] || fail "default-mediator endpoint: $RESP"
    [[ "${ROUTING_KEYS[$who]}" != "[]" ]] || fail "no routing_keys in grant: $RESP"
    ok "default mediator set (201), routing_keys ${ROUTING_KEYS[$who]}, endpoint $MED_ENDPOINT"
    api GET "$AG/mediation/default-mediator" 200 "$tok"
    [[ "$(jp 'd["mediation_id"]' <<<"$RESP")" == "${MEDIATION[$who]}" ]] || fail "default-mediator mismatch: $RESP"
done

# ---------------------------------------------------------------- 3. A invites B
log "== A -> B connection via mediator"
api POST "$AG/out-of-band/create-invitation?auto_accept=true" 200 "$TA" \
    '{"handshake_protocols":["https://didcomm.org/didexchange/1.1"],"alias":"to-B"}'
INV_A=$(jp 'd["invitation"]' <<<"$RESP")
INVI_MSG_ID=$(jp 'd["invi_msg_id"]' <<<"$RESP")
[[ "$(jp 'd.get("connection_id")' <<<"$RESP")" == null ]] || log "  note: create-invitation now returns connection_id"
SVC_EP=$(jp 'd["services"][0]["serviceEndpoint"]' <<<"$INV_A")
SVC_RK=$(jp 'd["services"][0].get("routingKeys", [])' <<<"$INV_A")
INV_KEY=$(jp 'd["services"][0]["recipientKeys"][0]' <<<"$INV_A")
[[ "$SVC_EP" == "$MED_ENDPOINT" ]] || fail "A's invitation serviceEndpoint $SVC_EP is not the mediator's ($MED_ENDPOINT)"
[[ "$SVC_RK" == "${ROUTING_KEYS[A]}" ]] || fail "A's invitation routingKeys $SVC_RK != mediator routing_keys ${ROUTING_KEYS[A]}"
ok "invitation $INVI_MSG_ID: serviceEndpoint = mediator ($SVC_EP), routingKeys = $SVC_RK"

# Mediator side: A's mediator connection (their_did = A's my_did) must have the invitation key in its keylist.
api GET "$MED/connections?their_did=${TENANT_DID[A]}" 200 mediator
MCONN_A=$(jp 'd["results"][0]["connection_id"]' <<<"$RESP")
INV_VERKEY=$(didkey_to_verkey "$INV_KEY")
inv_key_routed() {
    api GET "$MED/mediation/keylists?conn_id=$MCONN_A&role=server" 200 mediator
    jp '[r["recipient_key"] for r in d["results"]]' <<<"$RESP" | grep -q "\"$INV_VERKEY\""
}
poll "invitation key $INV_VERKEY in mediator keylist" inv_key_routed
ok "mediator keylist of A's connection $MCONN_A has the invitation key $INV_VERKEY"

# A's connection record already exists (state invitation) before B answers.
poll "A's connection for invi_msg_id $INVI_MSG_ID" conn_by_invi_msg_id "$TA" "$INVI_MSG_ID"
CONN_A=$FOUND_CONN
ok "A's connection $CONN_A found via GET /connections?invitation_msg_id= (state $(jp 'd["results"][0]["state"]' <<<"$RESP"))"

api POST "$AG/out-of-band/receive-invitation?auto_accept=true" 200 "$TB" "$INV_A"
CONN_B=$(jp 'd["connection_id"]' <<<"$RESP")
ok "B receive-invitation -> connection $CONN_B"
t0=$(date +%s.%N)
poll "A's connection active" conn_active "$TA" "$CONN_A"
poll "B's connection active" conn_active "$TB" "$CONN_B"
ok "both active after $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", (b - a) * 1000 }') ms"
api GET "$AG/connections/$CONN_B/endpoints" 200 "$TB"
ok "B's endpoints $RESP"

# ---------------------------------------------------------------- 4. ping + messages
log "== ping + basic messages"
api POST "$AG/connections/$CONN_B/send-ping" 200 "$TB" '{"comment":"ping from B"}'
PING_THREAD=$(jp 'd["thread_id"]' <<<"$RESP")
ok "send-ping -> thread_id $PING_THREAD"
poll "ping response_received webhook at B" webhook_seen "$WB" ping "b.get('thread_id') == '$PING_THREAD' and b.get('state') == 'response_received'"
ok "B got ping webhook: $(<"$WH_DIR/match")"

NONCE_BA="hello A from B $SUFFIX"
api POST "$AG/connections/$CONN_B/send-message" 200 "$TB" "{\"content\":\"$NONCE_BA\"}"
[[ "$RESP" == "{}" ]] || log "  note: send-message returned $RESP"
poll "basicmessages webhook at A" webhook_seen "$WA" basicmessages "b.get('content') == '$NONCE_BA'"
ok "A received B's message: $(<"$WH_DIR/match")"
[[ "$(jp 'd["connection_id"]' <"$WH_DIR/match")" == "$CONN_A" ]] || fail "basicmessage connection_id is not A's connection"

NONCE_AB="hello B from A $SUFFIX"
api POST "$AG/connections/$CONN_A/send-message" 200 "$TA" "{\"content\":\"$NONCE_AB\"}"
poll "basicmessages webhook at B" webhook_seen "$WB" basicmessages "b.get('content') == '$NONCE_AB'"
ok "B received A's message"

# ---------------------------------------------------------------- 5. mediator-side checks
log "== mediator admin API"
api GET "$MED/mediation/requests?state=granted" 200 mediator
ok "mediator has $(jp 'len(d["results"])' <<<"$RESP") granted mediation(s) in total"
for who in A B; do
    tok=TA; [[ $who == B ]] && tok=TB
    tok=${!tok}
    api GET "$MED/connections?their_did=${TENANT_DID[$who]}" 200 mediator
    mconn=$(jp 'd["results"][0]["connection_id"]' <<<"$RESP")
    api GET "$MED/mediation/requests?conn_id=$mconn&state=granted" 200 mediator
    [[ "$(jp 'len(d["results"])' <<<"$RESP")" == 1 ]] || fail "no granted mediation on mediator for $who ($mconn): $RESP"
    [[ "$(jp 'd["results"][0]["role"]' <<<"$RESP")" == server ]] || fail "mediation role: $RESP"
    # Every key the tenant registered (client keylist, did:key) must be routed by the mediator (server, base58).
    api GET "$AG/mediation/keylists" 200 "$tok"
    client_keys=$(jp '" ".join(r["recipient_key"] for r in d["results"] if r["connection_id"] == "'"${MED_CONN[$who]}"'")' <<<"$RESP")
    [[ -n "$client_keys" ]] || fail "$who has no client keylist entries: $RESP"
    # shellcheck disable=SC2086
    want=$(didkey_to_verkey $client_keys | sort)
    api GET "$MED/mediation/keylists?conn_id=$mconn&role=server" 200 mediator
    have=$(jp '"\n".join(r["recipient_key"] for r in d["results"])' <<<"$RESP" | sort)
    missing=$(comm -23 <(echo "$want") <(echo "$have"))
    [[ -z "$missing" ]] || fail "keys of $who missing in mediator keylist: $missing (mediator has: $have)"
    ok "$who: mediator conn $mconn granted (role server); keylist ${have//$'\n'/ } covers the tenant's $(wc -w <<<"$client_keys") client key(s)"
done
api GET "$MED/mediation/keylists" 200 mediator
MED_KEYS_BEFORE=$(jp 'len(d["results"])' <<<"$RESP")

# ---------------------------------------------------------------- 6. cleanup
log "== delete tenants"
for w in "$WA" "$WB"; do
    api DELETE "$AG/multitenancy/wallet/$w" 200 agent
    [[ "$RESP" == "{}" ]] || log "  note: DELETE returned $RESP"
    ok "deleted $w (${TIME}s)"
done
WALLETS=()
api GET "$AG/multitenancy/wallets" 200 agent
left=$(jp '[w["wallet_id"] for w in d["results"]]' <<<"$RESP")
for w in "$WA" "$WB"; do
    [[ "$left" != *"$w"* ]] || fail "wallet $w still listed after DELETE"
done
if [[ "$left" == "[]" ]]; then ok "GET /multitenancy/wallets is empty"; else log "  note: other wallets remain: $left"; fi
api GET "$MED/mediation/keylists" 200 mediator
ok "mediator keylist entries before/after tenant delete: $MED_KEYS_BEFORE/$(jp 'len(d["results"])' <<<"$RESP") (nothing is sent to the mediator)"

log "PASS (wallet create: A default KDF ${T_A} ms, B RAW ${T_B} ms)"
