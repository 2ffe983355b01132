//! TLS end to end. `plans/edge-agents.yaml` over `wss://` and `https://` through nginx with a
//! private CA: `scripts/prod-stack.sh` with ONE mediator instance (ports 4900-4912; with two,
//! nginx balances without stickiness and a message may reach the instance that does not hold
//! the receiver's socket, which is the cross-instance case, not what these tests check). With
//! the CA given (by the plan's setting, and by `SSL_CERT_FILE`) every agent is granted, every
//! message arrives once and the keys are gone after; without it the run stops at preflight
//! with one line, exit 2, nothing sent. And, on local stubs, the preflight's TLS check of a
//! `wss://` socket when the HTTP endpoint is plain.

use std::io::{BufRead, BufReader, Write};
use std::process::Command;
use std::sync::{Arc, Mutex};

use crate::prod::{PORT, Prod};
use crate::stack::{bin, repo, results};

#[test]
#[ignore = "starts real ACA-Py agents, PostgreSQL and nginx (scripts/test.sh runs it)"]
fn edge_agents_over_wss_through_nginx_with_the_private_ca() {
    let prod = Prod::start("tls-e2e", 1);
    assert!(prod.vars["MEDIATOR_WS_URL"].starts_with("wss://"));
    assert!(prod.vars["MEDIATOR_INVITATION_URL"].starts_with("https://"));
    // The CA by the plan's setting (MEDIATOR_CA_FILE, from the stack's env file).
    let out = prod.dir.join("with-ca.json");
    let cmd = prod.edge_plan(&out, &[]);
    prod.run_edge_and_check("CA by target.ca_file", cmd, &out);
    // The CA by SSL_CERT_FILE, the plan's setting empty.
    let out = prod.dir.join("ssl-cert-file.json");
    let mut cmd = prod.edge_plan(&out, &["MEDIATOR_CA_FILE="]);
    cmd.env("SSL_CERT_FILE", &prod.vars["MEDIATOR_CA_FILE"]);
    prod.run_edge_and_check("CA by SSL_CERT_FILE", cmd, &out);
}

#[test]
#[ignore = "starts real ACA-Py agents, PostgreSQL and nginx (scripts/test.sh runs it)"]
fn without_the_ca_the_run_stops_at_preflight_with_one_line() {
    let prod = Prod::start("tls-no-ca", 1);
    let (granted, keys) = (prod.granted(), prod.keys());
    let out = prod.dir.join("no-ca.json");
    let mut cmd = prod.edge_plan(&out, &["MEDIATOR_CA_FILE="]);
    // No CA anywhere: the system's roots only.
    cmd.env_remove("SSL_CERT_FILE").env_remove("SSL_CERT_DIR");
    let done = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert_eq!(done.status.code(), Some(2), "{stderr}");
    assert_eq!(
        stderr,
        format!(
            "error: preflight https://127.0.0.1:{PORT}/ failed: TLS certificate not accepted: \
             unknown issuer (name its CA with target.ca_file, --ca-file or SSL_CERT_FILE)\n"
        )
    );
    // Nothing sent: no request counted, the mediator saw no one.
    let r = results(&out);
    assert_eq!(r["run"]["outcome"], "aborted");
    assert_eq!(r["total"]["requests"], 0);
    assert_eq!(r["users"]["started"], 0);
    assert_eq!((prod.granted(), prod.keys()), (granted, keys));
}

/// A TLS server on loopback with a fresh self-signed certificate: it completes handshakes
/// and reads nothing. Its address.
fn self_signed_tls_listener() -> String {
    let key = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.signing_key.serialize_der().into());
    let config = Arc::new(
        rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![key.cert.der().clone()], der)
            .unwrap(),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for mut tcp in listener.incoming().flatten() {
            let mut conn = rustls::ServerConnection::new(config.clone()).unwrap();
            let _ = conn.complete_io(&mut tcp);
        }
    });
    addr
}

/// A plain HTTP server: `200 {}` to every request; the request lines it got.
fn http_stub() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let mut reader = BufReader::new(tcp);
            let mut head = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
                head.push(line.trim().to_string());
            }
            if let Some(first) = head.first() {
                log.lock().unwrap().push(first.clone());
            }
            let resp = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}";
            let _ = reader.get_mut().write_all(resp.as_bytes());
        }
    });
    (url, seen)
}

#[test]
fn the_preflight_checks_the_certificate_of_a_wss_socket_too() {
    let (http, seen) = http_stub();
    let wss = format!("wss://{}/", self_signed_tls_listener());
    let dir = repo().join("target/tls-preflight");
    std::fs::create_dir_all(&dir).unwrap();
    let plan = dir.join("plan.yaml");
    std::fs::write(
        &plan,
        r#"name: wss preflight
env: { HTTP: { type: string }, WSS: { type: string } }
target: { base_url: "{{ env.HTTP }}", preflight: / }
load: { constant: { users: 1, duration: 1s } }
user:
  setup:
    - name: connect to mediator
      didcomm: { connect: { invitation: "{{ env.HTTP }}?oob=e30", websocket: "{{ env.WSS }}" } }
"#,
    )
    .unwrap();
    let out = dir.join("results.json");
    let done = Command::new(bin())
        .args(["run", "-q", "--out"])
        .arg(&out)
        .arg(&plan)
        .args([
            "--set",
            &format!("HTTP={http}"),
            "--set",
            &format!("WSS={wss}"),
        ])
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert_eq!(done.status.code(), Some(2), "{stderr}");
    assert_eq!(
        stderr,
        format!(
            "error: preflight {wss} failed: TLS certificate not accepted: unknown issuer \
             (name its CA with target.ca_file, --ca-file or SSL_CERT_FILE)\n"
        )
    );
    // The HTTP endpoint answered the preflight's GET, and nothing else was sent.
    assert_eq!(*seen.lock().unwrap(), vec!["GET / HTTP/1.1".to_string()]);
    assert_eq!(results(&out)["total"]["requests"], 0);
}
