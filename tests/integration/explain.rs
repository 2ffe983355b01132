//! `acaload explain`: the seed's staircase and the first user's requests, secrets hidden.

use std::process::Command;

fn explain(extra: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_acaload"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["explain", "plans/mediator.yaml"])
        .args(extra)
        .env_remove("ACAPY_ADMIN_API_KEY")
        .env_remove("MEDIATOR_INVITATION_URL")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn shows_the_seed_staircase_with_seed_defaults() {
    let (code, out, err) = explain(&["--env-file", "/dev/null"]);
    assert_eq!(code, Some(0), "{err}");
    let staircase: Vec<(String, String)> = out
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("time"))
        .skip(1)
        .take_while(|l| !l.trim_start().starts_with("peak"))
        .map(|l| {
            let mut p = l.split_whitespace();
            (p.next().unwrap().to_string(), p.next().unwrap().to_string())
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("0s", "10"),
        ("30s", "20"),
        ("1m", "30"),
        ("1m30s", "40"),
        ("2m", "50"),
        ("2m30s", "60"),
        ("3m", "70"),
        ("3m30s", "80"),
        ("4m", "90"),
        ("4m30s", "100"),
        ("10m", "end"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(staircase, expected, "{out}");
    assert!(out.contains("peak users: 100"));
    assert!(
        out.contains("POST http://127.0.0.1:3011/multitenancy/wallet"),
        "{out}"
    );
    assert!(
        out.contains("\"wallet_key\":\"***\""),
        "wallet keys are hidden: {out}"
    );
    assert!(
        out.contains("GET http://127.0.0.1:3011/connections/<peer_conn_id>"),
        "{out}"
    );
    assert!(
        out.contains("wait for a `mediation` event of wallet <wallet_id> with `event.mediation_id == mediation_id and event.state == 'granted'` (give up after 30s)"),
        "{out}"
    );
}

#[test]
fn secrets_from_variables_are_hidden() {
    let (code, out, _) = explain(&[
        "--env-file",
        "/dev/null",
        "--set",
        "ACAPY_ADMIN_API_KEY=topsecret-key",
        "--set",
        "STEP_TIME_SECS=5",
    ]);
    assert_eq!(code, Some(0));
    assert!(!out.contains("topsecret-key"), "{out}");
    assert!(out.contains("header X-API-Key: ***"));
    assert!(out.contains("       5s  20"), "{out}");
}

#[test]
fn bad_variable_types_are_refused_before_anything_runs() {
    let (code, _, err) = explain(&["--env-file", "/dev/null", "--set", "SPAWN_PCT=abc"]);
    assert_eq!(code, Some(2));
    assert_eq!(
        err.trim(),
        "error: SPAWN_PCT=\"abc\" from --set is not a valid number: expected a number such as 0.5"
    );
}

#[test]
fn the_same_seed_repeats_uuids_but_never_keys() {
    // `explain` renders the first user's requests with a fixed seed, as `run --seed` would.
    let dir = std::env::temp_dir().join(format!("acaload-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let plan = dir.join("p.yaml");
    std::fs::write(
        &plan,
        "name: t\ntarget: { base_url: \"http://127.0.0.1:9\" }\nload: { constant: { users: 1, duration: 1s } }\nuser:\n  setup:\n    - request: { method: POST, path: /w, json: { nonce: \"{{ random_key() }}\", id: \"{{ uuid() }}\" } }\n",
    )
    .unwrap();
    let body = || {
        let out = Command::new(env!("CARGO_BIN_EXE_acaload"))
            .arg("explain")
            .arg(&plan)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let json = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("json: "))
            .unwrap_or_else(|| panic!("no body in {text}"))
            .to_string();
        serde_json::from_str::<serde_json::Value>(&json).unwrap()
    };
    let (a, b) = (body(), body());
    assert_eq!(a["id"], b["id"], "uuids follow the seed");
    assert_ne!(a["nonce"], b["nonce"], "random_key() does not: {a} {b}");
    assert_eq!(
        bs58::decode(a["nonce"].as_str().unwrap())
            .into_vec()
            .unwrap()
            .len(),
        32
    );
}
