//! DIDComm v1 interop with ACA-Py 1.7, checked both ways.
//!
//! ACA-Py → Rust: the fixtures in `tests/fixtures/didcomm/` were written by ACA-Py's own code
//! (`scripts/didcomm-fixtures.py generate`); Rust must open every envelope and reproduce every
//! DID and signature byte for byte. Rust → ACA-Py: Rust packs into a temp dir and the script's
//! `unpack` runs ACA-Py's `unpack_message`, `Forward` schema, did resolvers and JWS verify on it.

use std::path::{Path, PathBuf};
use std::process::Command;

use acaload::didcomm::did_doc::{PeerInputDoc, QUEUE_ENDPOINT, resolve_didcomm_services};
use acaload::didcomm::envelope::{pack_anoncrypt, pack_authcrypt, unpack};
use acaload::didcomm::forward::{Forward, ServiceTarget, pack_for_service, wrap_forwards};
use acaload::didcomm::keys::{KeyPair, PublicKey};
use acaload::didcomm::message_type::FORWARD;
use acaload::didcomm::{DidcommError, did_key, did_peer_2, did_peer_4, jws};
use serde_json::{Value, json};

fn crate_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> Value {
    let path = crate_root().join("tests/fixtures/didcomm").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn key(f: &Value, who: &str) -> KeyPair {
    let seed = f["keys"][who]["seed"].as_str().expect("seed");
    let seed: [u8; 32] = seed.as_bytes().try_into().expect("32-byte seed");
    let kp = KeyPair::from_seed(&seed);
    assert_eq!(
        kp.verkey(),
        f["keys"][who]["verkey"],
        "seed of {who} gives ACA-Py's verkey"
    );
    kp
}

fn envelope_bytes(f: &Value) -> Vec<u8> {
    serde_json::to_vec(&f["envelope"]).expect("envelope")
}

// ---------------------------------------------------------------- ACA-Py -> Rust

#[test]
fn rust_opens_acapy_authcrypt() {
    let f = fixture("authcrypt.json");
    let out = unpack(&envelope_bytes(&f), &key(&f, "bob")).unwrap();
    assert_eq!(
        String::from_utf8(out.plaintext).unwrap(),
        f["plaintext"].as_str().unwrap()
    );
    assert_eq!(
        out.sender_verkey.as_deref(),
        Some(key(&f, "alice").verkey())
    );
    assert_eq!(out.recipient_verkey, key(&f, "bob").verkey());
}

#[test]
fn rust_opens_acapy_anoncrypt() {
    let f = fixture("anoncrypt.json");
    let out = unpack(&envelope_bytes(&f), &key(&f, "bob")).unwrap();
    assert_eq!(
        String::from_utf8(out.plaintext).unwrap(),
        f["plaintext"].as_str().unwrap()
    );
    assert_eq!(out.sender_verkey, None);
}

#[test]
fn rust_opens_acapy_multi_recipient_with_each_key() {
    let f = fixture("multi_recipient.json");
    for who in ["carol", "bob", "mediator"] {
        let out = unpack(&envelope_bytes(&f), &key(&f, who)).unwrap();
        assert_eq!(
            String::from_utf8(out.plaintext).unwrap(),
            f["plaintext"].as_str().unwrap()
        );
        assert_eq!(
            out.sender_verkey.as_deref(),
            Some(key(&f, "alice").verkey())
        );
        assert_eq!(out.recipient_verkey, key(&f, who).verkey());
    }
    let err = unpack(&envelope_bytes(&f), &key(&f, "alice")).unwrap_err();
    assert!(
        matches!(err, DidcommError::NoRecipientKey { ref kids } if kids.len() == 3),
        "{err}"
    );
}

/// Peels forward layers the way a chain of mediators would; returns the final plaintext.
fn peel(f: &Value, keys: &[KeyPair], expected_hops: &[&str]) -> (String, Option<String>) {
    let mut body = envelope_bytes(f);
    for hop in expected_hops {
        let out = unpack(&body, keys).unwrap();
        assert_eq!(out.recipient_verkey, key(f, hop).verkey(), "hop {hop}");
        assert_eq!(out.sender_verkey, None, "forwards are anoncrypted");
        let fwd: Forward = out.json().unwrap();
        assert_eq!(fwd.type_, FORWARD);
        body = serde_json::to_vec(&fwd.msg).unwrap();
        let next = unpack(&body, keys).unwrap();
        assert_eq!(
            fwd.to, next.recipient_verkey,
            "forward.to is the next hop's raw base58 key"
        );
    }
    let out = unpack(&body, keys).unwrap();
    (String::from_utf8(out.plaintext).unwrap(), out.sender_verkey)
}

#[test]
fn rust_unwraps_acapy_forward() {
    let f = fixture("forward.json");
    let keys = vec![key(&f, "mediator"), key(&f, "bob")];
    let (plaintext, sender) = peel(&f, &keys, &["mediator"]);
    assert_eq!(plaintext, f["plaintext"].as_str().unwrap());
    assert_eq!(sender.as_deref(), Some(key(&f, "alice").verkey()));
}

#[test]
fn rust_unwraps_acapy_two_hop_forward_outermost_is_last_routing_key() {
    let f = fixture("forward_two_hops.json");
    let keys = vec![key(&f, "mediator2"), key(&f, "mediator"), key(&f, "bob")];
    let (plaintext, sender) = peel(&f, &keys, &["mediator2", "mediator"]);
    assert_eq!(plaintext, f["plaintext"].as_str().unwrap());
    assert_eq!(sender.as_deref(), Some(key(&f, "alice").verkey()));
}

#[test]
fn rust_did_peer_4_is_byte_equal_to_acapy() {
    let f = fixture("did_peer_4.json");
    let cases = f["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    for case in cases {
        let long = case["long"].as_str().unwrap();
        let short = case["short"].as_str().unwrap();
        let verkey = case["verkey"].as_str().unwrap();
        let endpoint = case["endpoint"].as_str().unwrap();
        if case["style"] == "credo" {
            let pk = PublicKey::from_verkey(verkey).unwrap();
            assert_eq!(
                bs58::encode(pk.x25519_bytes()).into_string(),
                case["x25519"]
            );
            let routing: Vec<String> =
                serde_json::from_value(case["routing_keys"].clone()).unwrap();
            let did = PeerInputDoc::credo(&pk, endpoint, &routing)
                .to_did_peer_4()
                .unwrap();
            assert_eq!(did.long, long, "long form for endpoint {endpoint}");
            assert_eq!(did.short, short);
        }
        assert_eq!(did_peer_4::decode(long).unwrap(), case["input_doc"]);
        assert!(
            long.starts_with(&format!("{short}:")),
            "{long} is {short}:…"
        );
        let services = resolve_didcomm_services(long).unwrap();
        assert_eq!(services[0].recipient_keys, vec![verkey.to_owned()]);
        assert_eq!(services[0].service_endpoint, endpoint);
        let expect_routing: Vec<String> = case["routing_keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| did_key::to_verkey(k.as_str().unwrap()).unwrap())
            .collect();
        assert_eq!(services[0].routing_keys, expect_routing);
        if case["style"] == "acapy" {
            assert_eq!(services.len(), 2);
            assert_eq!(services[1].service_endpoint, "ws://127.0.0.1:4702");
        }
    }
}

#[test]
fn rust_resolves_acapy_did_peer_2() {
    let f = fixture("did_peer_2.json");
    let did = f["did"].as_str().unwrap();
    assert_eq!(did_peer_2::resolve(did).unwrap(), f["resolved"]);
    let services = resolve_didcomm_services(did).unwrap();
    assert_eq!(services.len(), 1);
    assert_eq!(
        services[0].recipient_keys,
        vec![f["verkey"].as_str().unwrap().to_owned()]
    );
    assert_eq!(services[0].service_endpoint, "http://127.0.0.1:4700");
}

#[test]
fn rust_verifies_acapy_did_rotate_and_signs_identically() {
    let f = fixture("did_rotate.json");
    let attach: acaload::didcomm::decorators::Attachment =
        serde_json::from_value(f["attach"].clone()).unwrap();
    let inviter = key(&f, "inviter");
    let did = f["did"].as_str().unwrap();
    assert_eq!(
        jws::verify_did_rotate(&attach, Some(inviter.verkey())).unwrap(),
        did
    );
    assert_eq!(
        jws::verify_did_rotate(&attach, Some(&inviter.did_key())).unwrap(),
        did
    );
    assert!(jws::verify_did_rotate(&attach, Some(key(&f, "alice").verkey())).is_err());
    // Ed25519 is deterministic, so our attachment matches ACA-Py's in everything but @id
    let ours = jws::sign_did_rotate(did, &inviter).unwrap();
    let mut ours = serde_json::to_value(ours).unwrap();
    ours["@id"] = f["attach"]["@id"].clone();
    assert_eq!(ours, f["attach"]);
}

// ---------------------------------------------------------------- Rust -> ACA-Py

/// ACA-Py's venv python (`ACAPY_VENV`, default `.acapy/venv`; `scripts/test.sh` installs it).
fn acapy_python() -> PathBuf {
    let venv = std::env::var_os("ACAPY_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate_root().join(".acapy/venv"));
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "ACA-Py venv not found at {} (set ACAPY_VENV, or run scripts/acapy-stack.sh install)",
        venv.display()
    );
    python
}

fn run_acapy_unpack(python: &Path, spec: &Value) -> Value {
    let dir = std::env::temp_dir().join(format!("acaload-didcomm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("rust-packed.json");
    std::fs::write(&file, serde_json::to_vec_pretty(spec).unwrap()).unwrap();
    let out = Command::new(python)
        .arg(crate_root().join("scripts/didcomm-fixtures.py"))
        .arg("unpack")
        .arg(&file)
        .output()
        .expect("run the fixture script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ACA-Py rejected what Rust packed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("script output: {e}\n{stdout}"))
}

#[test]
#[ignore = "runs ACA-Py's Python from .acapy/venv (scripts/test.sh runs it)"]
fn acapy_opens_what_rust_packs() {
    let python = acapy_python();
    let f = fixture("authcrypt.json");
    let (alice, bob, carol) = (key(&f, "alice"), key(&f, "bob"), key(&f, "carol"));
    let (m1, m2) = (key(&f, "mediator"), key(&f, "mediator2"));
    let seed = |who: &str| f["keys"][who]["seed"].clone();
    let plaintext = f["plaintext"].as_str().unwrap();
    let ping = r#"{"@type":"https://didcomm.org/trust_ping/1.0/ping","@id":"p1","response_requested":false}"#;

    let routed = ServiceTarget::from_key_refs(
        &[did_key::url_from_public(bob.public_bytes())],
        &[did_key::url_from_public(m1.public_bytes())],
        "http://127.0.0.1:4700",
    )
    .unwrap();
    let two_hops = ServiceTarget::from_key_refs(
        &[bob.verkey()],
        &[m1.verkey(), m2.verkey()],
        "http://127.0.0.1:4700",
    )
    .unwrap();
    let cases = json!([
        {"name": "authcrypt", "seeds": [seed("bob")],
         "envelope": pack_authcrypt(plaintext.as_bytes(), &[bob.public_key()], &alice).unwrap()},
        {"name": "anoncrypt", "seeds": [seed("bob")],
         "envelope": pack_anoncrypt(ping.as_bytes(), &[bob.public_key()]).unwrap()},
        {"name": "multi_recipient", "seeds": [seed("carol")],
         "envelope": pack_authcrypt(plaintext.as_bytes(), &[bob.public_key(), carol.public_key()], &alice).unwrap()},
        {"name": "forward", "seeds": [seed("mediator"), seed("bob")],
         "envelope": pack_for_service(plaintext.as_bytes(), &routed, &alice).unwrap()},
        {"name": "forward_two_hops", "seeds": [seed("mediator2"), seed("mediator"), seed("bob")],
         "envelope": pack_for_service(plaintext.as_bytes(), &two_hops, &alice).unwrap()},
        {"name": "forward_of_anoncrypt", "seeds": [seed("mediator"), seed("bob")],
         "envelope": wrap_forwards(pack_anoncrypt(ping.as_bytes(), &[bob.public_key()]).unwrap(),
                                   bob.verkey(), &[m1.public_key()]).unwrap()},
    ]);
    let queue_did = PeerInputDoc::credo(&alice.public_key(), QUEUE_ENDPOINT, &[])
        .to_did_peer_4()
        .unwrap();
    let routed_did = PeerInputDoc::credo(
        &bob.public_key(),
        "http://127.0.0.1:4700",
        &[did_key::url_from_public(m1.public_bytes())],
    )
    .to_did_peer_4()
    .unwrap();
    let inviter = key(&f, "inviter");
    let attach = jws::sign_did_rotate(&routed_did.long, &inviter).unwrap();
    let spec = json!({
        "cases": cases,
        "dids": [queue_did.long, routed_did.long],
        "attachments": [{"name": "did_rotate", "attach": attach, "signer_verkey": inviter.verkey()}],
    });

    let result = run_acapy_unpack(&python, &spec);
    let case = |name: &str| &result["cases"][name];
    for name in [
        "authcrypt",
        "multi_recipient",
        "forward",
        "forward_two_hops",
    ] {
        assert_eq!(case(name)["ok"], true, "{name}: {}", case(name));
        assert_eq!(case(name)["plaintext"], plaintext, "{name}");
        assert_eq!(case(name)["sender_verkey"], alice.verkey(), "{name}");
    }
    assert_eq!(case("multi_recipient")["recipient_verkey"], carol.verkey());
    for name in ["anoncrypt", "forward_of_anoncrypt"] {
        assert_eq!(case(name)["plaintext"], ping, "{name}");
        assert_eq!(case(name)["sender_verkey"], Value::Null, "{name}");
    }
    let layers = case("forward_two_hops")["layers"].as_array().unwrap();
    let hops: Vec<_> = layers
        .iter()
        .map(|l| l["recipient_verkey"].as_str().unwrap())
        .collect();
    assert_eq!(hops, [m2.verkey(), m1.verkey(), bob.verkey()]);
    assert_eq!(layers[0]["to"], m1.verkey());
    assert_eq!(layers[1]["to"], bob.verkey());
    for did in [&queue_did.long, &routed_did.long] {
        assert_eq!(result["dids"][did]["ok"], true, "{}", result["dids"][did]);
    }
    let resolved = &result["dids"][&routed_did.long]["resolved"];
    assert_eq!(resolved["alsoKnownAs"][0], routed_did.short.as_str());
    assert_eq!(result["attachments"]["did_rotate"]["ok"], true);
    assert_eq!(
        result["attachments"]["did_rotate"]["signed"],
        routed_did.long.as_str()
    );
}

#[test]
#[ignore = "runs ACA-Py's Python from .acapy/venv (scripts/test.sh runs it)"]
fn acapy_rejects_a_tampered_rust_envelope() {
    // proves the round trip above can fail: one flipped ciphertext byte must make ACA-Py exit 1
    let python = acapy_python();
    let f = fixture("authcrypt.json");
    let env = pack_authcrypt(
        b"{\"@type\":\"x\"}",
        &[key(&f, "bob").public_key()],
        &key(&f, "alice"),
    )
    .unwrap();
    let mut v: Value = serde_json::from_str(&env).unwrap();
    let ct = v["ciphertext"].as_str().unwrap().to_owned();
    let flipped = if ct.starts_with('A') { "B" } else { "A" };
    v["ciphertext"] = format!("{flipped}{}", &ct[1..]).into();
    let spec = json!({"cases": [{"name": "tampered", "seeds": [f["keys"]["bob"]["seed"]], "envelope": v}]});
    let dir = std::env::temp_dir().join(format!("acaload-didcomm-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("tampered.json");
    std::fs::write(&file, serde_json::to_vec(&spec).unwrap()).unwrap();
    let out = Command::new(&python)
        .arg(crate_root().join("scripts/didcomm-fixtures.py"))
        .arg("unpack")
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
