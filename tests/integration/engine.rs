//! The engine against a small local HTTP stub (not a stand-in for ACA-Py behaviour):
//! failures are recorded with their reasons, retries and polls behave, teardown runs,
//! and secrets stay out of the results.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

const TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.eyJ3YWxsZXRfaWQiOiJ3MSJ9.c2lnbmF0dXJl";

pub(super) type Counts = Arc<Mutex<HashMap<String, usize>>>;

/// Starts the stub on a free loopback port; returns its URL and per-route counts.
pub(super) fn stub() -> (String, Counts) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let counts: Counts = Arc::default();
    let c = counts.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let c = c.clone();
            *c.lock().unwrap().entry("connections".into()).or_default() += 1;
            std::thread::spawn(move || serve(conn, c));
        }
    });
    (url, counts)
}

fn serve(conn: TcpStream, counts: Counts) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut out = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        );
        let (mut length, mut bearer, mut api_key) = (0, String::new(), None);
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).unwrap();
            if h.trim().is_empty() {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            if h.to_ascii_lowercase().starts_with("authorization:") {
                bearer = h["authorization:".len()..].trim().to_string();
            }
            if h.to_ascii_lowercase().starts_with("x-api-key:") {
                api_key = Some(h["x-api-key:".len()..].trim().to_string());
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let route = format!("{method} {}", path.split('?').next().unwrap());
        let n = {
            let mut map = counts.lock().unwrap();
            if let Some(k) = &api_key {
                *map.entry(format!("x-api-key {k}: {route}")).or_default() += 1;
            }
            let e = map.entry(route.clone()).or_default();
            *e += 1;
            *e
        };
        let (status, ctype, text) = match route.as_str() {
            "POST /multitenancy/wallet" => (
                200,
                "application/json",
                format!(r#"{{"wallet_id":"w1","token":"{TOKEN}"}}"#),
            ),
            "GET /text" => (404, "text/plain", "404: Record not found".to_string()),
            // A secret that is not a JWT (only the capture's `secret: true` hides it).
            "POST /secret" => (
                200,
                "application/json",
                format!(r#"{{"secret":"pool-secret-{n}-d41d8cd9"}}"#),
            ),
            // An agent that repeats the credential it refuses, as error texts do.
            "GET /echo" => (401, "text/plain", format!("401: not valid: {bearer}")),
            "GET /huge" => (
                200,
                "application/json",
                format!(r#"{{"pad":"{}"}}"#, "x".repeat(9 << 20)),
            ),
            "GET /busy" => {
                // A target that takes two requests at a time and refuses a third (only
                // tests/fixtures/engine/abort.yaml calls it).
                use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
                static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
                let n = IN_FLIGHT.fetch_add(1, SeqCst) + 1;
                std::thread::sleep(Duration::from_millis(50));
                IN_FLIGHT.fetch_sub(1, SeqCst);
                if n > 2 {
                    (503, "text/plain", "503: busy".to_string())
                } else {
                    (200, "application/json", "{}".to_string())
                }
            }
            "GET /delay" => {
                // Answers after 200 ms (tests/integration/as_written.rs).
                std::thread::sleep(Duration::from_millis(200));
                (200, "application/json", "{}".to_string())
            }
            "GET /hold" => {
                std::thread::sleep(Duration::from_millis(20));
                (200, "application/json", "{}".to_string())
            }
            "GET /slow" => {
                std::thread::sleep(Duration::from_secs(2));
                (200, "application/json", "{}".to_string())
            }
            "GET /paused" => {
                // A one-second pause of the whole target, 1 s after its first request.
                static FIRST: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
                let t0 = *FIRST.get_or_init(std::time::Instant::now);
                let (from, to) = (t0 + Duration::from_secs(1), t0 + Duration::from_secs(2));
                let now = std::time::Instant::now();
                if now >= from && now < to {
                    std::thread::sleep(to - now);
                }
                (200, "application/json", "{}".to_string())
            }
            "GET /flaky" if n <= 2 => (500, "text/plain", "500: boom".to_string()),
            "GET /flaky" => (200, "application/json", r#"{"ok":true}"#.to_string()),
            "GET /state" => (
                200,
                "application/json",
                format!(
                    r#"{{"state":"{}"}}"#,
                    if n < 4 { "request" } else { "granted" }
                ),
            ),
            "DELETE /multitenancy/wallet/w1" => (200, "application/json", "{}".to_string()),
            _ => (404, "text/plain", "404: Not Found".to_string()),
        };
        let resp = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\n\r\n{text}",
            text.len()
        );
        if out.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

#[test]
fn failures_are_recorded_with_reasons_and_teardown_runs() {
    let (url, counts) = stub();
    let dir = std::env::temp_dir().join(format!("acaload-engine-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("results.json");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_acaload"))
        .args([
            "run",
            "tests/fixtures/engine/stub.yaml",
            "-q",
            "--seed",
            "1",
            "--out",
            out.to_str().unwrap(),
        ])
        .env("STUB_URL", &url)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(
        run.status.code(),
        Some(1),
        "failures without thresholds exit 1:\n{stdout}"
    );
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        !text.contains(TOKEN) && !stdout.contains(TOKEN),
        "the tenant token leaked"
    );
    let r: Value = serde_json::from_str(&text).unwrap();
    let reasons: Vec<(String, String, u64)> = r["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_string(),
                f["reason"].as_str().unwrap().to_string(),
                f["count"].as_u64().unwrap(),
            )
        })
        .collect();
    let has = |name: &str, reason: &str, count: u64| {
        assert!(
            reasons.contains(&(name.into(), reason.into(), count)),
            "missing ({name}, {reason}, {count}) in {reasons:#?}"
        )
    };
    has(
        "capture that finds nothing",
        "capture `missing`: `$.nope` matched nothing",
        1,
    );
    has(
        "plain text where JSON is needed",
        "status 404 (expected 2xx): 404: Record not found",
        1,
    );
    has("too slow", "timeout after 300ms", 1);
    has("flaky", "status 500 (expected 200): 500: boom", 2);
    // The token reached a failure text (the stub repeats it) and was scrubbed there.
    has(
        "token refused",
        "status 401 (expected 2xx): 401: not valid: Bearer ***",
        1,
    );
    let refused = r["failures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "token refused")
        .unwrap();
    assert!(
        refused["example"]
            .as_str()
            .unwrap()
            .ends_with("401 401: not valid: Bearer ***"),
        "{refused}"
    );
    assert_eq!(reasons.len(), 5, "{reasons:#?}");
    let stat = |kind: &str, name: &str| {
        r["stats"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["kind"] == kind && s["name"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        (
            stat("http", "flaky")["count"].as_u64(),
            stat("http", "flaky")["failures"].as_u64()
        ),
        (Some(3), Some(2))
    );
    assert_eq!(
        stat("poll", "wait for grant")["count"],
        1,
        "one time-to-state sample"
    );
    assert_eq!(stat("poll", "wait for grant")["failures"], 0);
    assert_eq!(
        r["users"]["setup_ok"], 1,
        "on_error: continue kept the user going"
    );
    let counts = counts.lock().unwrap();
    assert_eq!(
        counts.get("DELETE /multitenancy/wallet/w1"),
        Some(&1),
        "teardown removed the wallet"
    );
    assert_eq!(
        counts.get("GET /flaky"),
        Some(&3),
        "two retries after the first failure"
    );
}

#[test]
fn non_json_body_where_a_capture_needs_json_is_a_failure() {
    let (url, _) = stub();
    let plan = "name: t\nenv: { U: { type: string } }\ntarget: { base_url: \"{{ env.U }}\" }\nload: { constant: { users: 1, duration: 1s } }\nuser:\n  setup:\n    - request: { method: GET, path: /text }\n      check: { status: 404 }\n      capture: { x: $.x }\n";
    let (code, r) = run_inline("nonjson", plan, &url);
    assert_eq!(code, Some(1));
    assert_eq!(r["failures"][0]["reason"], "response is not JSON");
    assert_eq!(
        r["failures"][0]["example"],
        "user 0 (plan line 7): 404 404: Record not found"
    );
    assert_eq!(
        r["users"]["stopped_by_error"], 1,
        "setup failures stop the user by default"
    );
    // `report` on the same results exits as `run` did: failures and no thresholds, 1.
    let out = std::env::temp_dir()
        .join(format!("acaload-nonjson-{}", std::process::id()))
        .join("r.json");
    let report = acaload(&["report", out.to_str().unwrap()], &url);
    assert_eq!(report.status.code(), Some(1), "report exits as run did");
}

#[test]
fn merged_shards_are_judged_on_the_plans_thresholds() {
    let (url, _) = stub();
    let dir = std::env::temp_dir().join(format!("acaload-merge-verdict-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = |n: &str| dir.join(n).to_str().unwrap().to_string();
    for i in 0..2 {
        let run = acaload(
            &[
                "run",
                "tests/fixtures/engine/impossible.yaml",
                "-q",
                "--shard",
                &format!("{i}/2"),
                "--out",
                &path(&format!("s{i}.json")),
            ],
            &url,
        );
        assert_eq!(run.status.code(), Some(1), "each shard fails its threshold");
    }
    let merge = acaload(
        &[
            "merge",
            &path("s0.json"),
            &path("s1.json"),
            "--out",
            &path("merged.json"),
        ],
        &url,
    );
    let stderr = String::from_utf8_lossy(&merge.stderr);
    assert_eq!(merge.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("threshold failed: read state max <= 0ms"),
        "{stderr}"
    );
    let merged: Value =
        serde_json::from_str(&std::fs::read_to_string(path("merged.json")).unwrap()).unwrap();
    let verdicts: Vec<(&str, bool)> = merged["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["label"].as_str().unwrap(), v["passed"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        verdicts,
        [("all requests error rate", true), ("read state max", false)],
        "judged on the merged histograms"
    );
    assert_eq!(merged["plan"]["thresholds"].as_array().unwrap().len(), 2);
    let report = acaload(&["report", &path("merged.json")], &url);
    assert_eq!(report.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&report.stdout).contains("FAIL read state max"));
}

#[test]
fn max_connections_bounds_the_sockets_opened() {
    let run = |limit: &str| {
        let (url, counts) = stub();
        let plan = format!(
            "name: t\nenv: {{ U: {{ type: string }} }}\ntarget: {{ base_url: \"{{{{ env.U }}}}\"{limit} }}\nload: {{ constant: {{ users: 20, duration: 1s }} }}\nuser:\n  tasks:\n    - request: {{ method: GET, path: /hold }}\n"
        );
        let (code, r) = run_inline("maxconn", &plan, &url);
        assert_eq!(code, Some(0), "{r}");
        let counts = counts.lock().unwrap();
        assert_eq!(r["total"]["failures"], 0);
        assert_eq!(
            r["total"]["requests"].as_u64(),
            counts.get("GET /hold").map(|n| *n as u64),
            "every request reached the stub"
        );
        let row = |kind: &str| {
            r["stats"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["kind"] == kind)
                .cloned()
        };
        let queued = row("queue").map_or(0, |s| s["count"].as_u64().unwrap());
        if queued > 0 {
            // The wait for a connection is the queue row's, not counted again in the
            // request's latency: about 17 users wait for 3 connections of 20 ms each.
            let p50 = |s: Value| s["latency_ms"]["p50"].as_f64().unwrap();
            let (http, queue) = (p50(row("http").unwrap()), p50(row("queue").unwrap()));
            assert!(
                http < queue,
                "request p50 {http} ms includes the wait for a connection (queue p50 {queue} ms)"
            );
        }
        (counts["connections"], counts["GET /hold"], queued)
    };
    let (open, _, queued) = run("");
    assert!(
        open >= 15,
        "20 users without a limit opened {open} connections"
    );
    assert_eq!(queued, 0, "no limit, no queue");
    let (open, requests, queued) = run(", max_connections: 3");
    assert!(open <= 3, "max_connections 3, but {open} connections");
    // 17 of the 20 users wait at any moment: most requests queue, and the results say so.
    assert!(
        queued * 2 > requests as u64,
        "{queued} of {requests} requests counted as waiting for a connection"
    );
    // 3 connections, 20 ms a request, 1 s (and the last in flight): about 150 requests;
    // 20 users unbounded make about 1,000.
    assert!(
        (20..=250).contains(&requests),
        "{requests} requests through 3 connections"
    );
}

#[test]
fn an_abort_threshold_stops_the_run_at_the_load_the_target_cannot_take() {
    let (url, counts) = stub();
    let dir = std::env::temp_dir().join(format!("acaload-abort-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("r.json").to_str().unwrap().to_string();
    let html = dir.join("r.html").to_str().unwrap().to_string();
    let csv = dir.join("r").to_str().unwrap().to_string();
    let run = acaload(
        &[
            "run",
            "tests/fixtures/engine/abort.yaml",
            "-q",
            "--out",
            &out,
            "--html",
            &html,
            "--csv",
            &csv,
        ],
        &url,
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(r["run"]["outcome"], "stopped");
    let stop = &r["run"]["stopped_by"];
    assert_eq!(stop["verdict"]["label"], "all requests error rate");
    assert_eq!(stop["verdict"]["passed"], false);
    // Two users never make a third request in flight; the third user does, and the check
    // (once a second, on the level's own samples) stops the run within the next second. A
    // second's `users` are those running at its end: 3, or 0 when the stop fell in the same
    // second as the first failures (the run asked for no users by then).
    let timeline = r["timeline"].as_array().unwrap();
    let first = timeline
        .iter()
        .position(|s| s["failures"].as_u64() > Some(0))
        .unwrap();
    let users = timeline[first]["users"].as_u64().unwrap();
    assert!(
        users == 3 || (users == 0 && timeline[first]["target_users"] == 0),
        "{}",
        timeline[first]
    );
    // The same answer by load level: no failure at 1 or 2 users, refusals at 3.
    let levels: Vec<(u64, u64)> = r["levels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["target_users"].as_u64().unwrap(),
                l["failures"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(&levels[..2], &[(1, 0), (2, 0)], "{levels:?}");
    // Next to each target, the users actually running: all of them at 1 and 2 users.
    let running: Vec<u64> = r["levels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["users"].as_u64().unwrap())
        .collect();
    assert_eq!(&running[..2], &[1, 2], "{}", r["levels"]);
    assert_eq!(levels[2].0, 3);
    assert!(levels[2].1 > 0, "{levels:?}");
    // The same rows in PREFIX_levels.csv: users and failure count per level.
    let table = std::fs::read_to_string(format!("{csv}_levels.csv")).unwrap();
    let rows: Vec<(u64, u64)> = table
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].parse().unwrap(), f[6].parse().unwrap())
        })
        .collect();
    assert_eq!(rows, levels, "{table}");
    assert!(table.starts_with("Users,From Users,From,To,Requests/s,Request Count,Failure Count,"));
    // The threshold judges each load level on its own samples: the 3-user level failed.
    assert_eq!(stop["target_users"], 3, "{stop}");
    assert!(
        r["run"]["duration_secs"].as_f64().unwrap() < 10.0,
        "stopped long before the 30 s time limit: {}",
        r["run"]["duration_secs"]
    );
    let refused = r["failures"][0]["count"].as_u64().unwrap();
    assert!(refused > 0);
    assert_eq!(
        r["failures"][0]["reason"],
        "status 503 (expected 2xx): 503: busy"
    );
    assert_eq!(
        r["total"]["requests"].as_u64(),
        counts.lock().unwrap().get("GET /busy").map(|n| *n as u64)
    );
    let line = stop_line(stop);
    assert!(stderr.contains(&line), "{stderr}");
    assert!(stdout.contains(&line), "{stdout}");
    assert!(stdout.contains(" by load    from"), "{stdout}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("STOPPED BY A THRESHOLD"));
    assert!(page.contains("<h2>By load level</h2>"));
}

/// The line the report and stderr give for a threshold stop.
fn stop_line(stop: &Value) -> String {
    format!(
        "stopped at {:.0} s at the {}-user load level ({} running): threshold `all requests error rate <= 0.00%` failed there, measured {}",
        stop["at_secs"].as_f64().unwrap(),
        stop["target_users"],
        stop["users"],
        stop["verdict"]["measured"].as_str().unwrap()
    )
}

/// Runs an inline plan (variable `U` = the stub's URL) from a temp folder of its own;
/// returns the exit code and the results file.
fn run_inline(tag: &str, plan: &str, url: &str) -> (Option<i32>, Value) {
    let dir = std::env::temp_dir().join(format!("acaload-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("p.yaml"), plan).unwrap();
    let out = dir.join("r.json");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_acaload"))
        .args(["run", dir.join("p.yaml").to_str().unwrap(), "-q", "--out"])
        .arg(&out)
        .env("U", url)
        .output()
        .unwrap();
    let r = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    (run.status.code(), r)
}

fn acaload(args: &[&str], url: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_acaload"))
        .args(args)
        .env("STUB_URL", url)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

#[test]
fn three_shards_merged_match_a_single_run() {
    let (url, counts) = stub();
    let dir = std::env::temp_dir().join(format!("acaload-shards-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = |n: &str| dir.join(n).to_str().unwrap().to_string();
    let single = acaload(
        &[
            "run",
            "tests/fixtures/engine/shards.yaml",
            "-q",
            "--out",
            &path("single.json"),
        ],
        &url,
    );
    assert_eq!(
        single.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&single.stderr)
    );
    // Three shards at once, as an Indexed Job would run them.
    let shards: Vec<_> = (0..3)
        .map(|i| {
            let (url, out) = (url.clone(), path(&format!("shard{i}.json")));
            std::thread::spawn(move || {
                acaload(
                    &[
                        "run",
                        "tests/fixtures/engine/shards.yaml",
                        "-q",
                        "--shard",
                        &format!("{i}/3"),
                        "--out",
                        &out,
                    ],
                    &url,
                )
            })
        })
        .collect();
    for s in shards {
        assert_eq!(s.join().unwrap().status.code(), Some(0));
    }
    let merge = acaload(
        &[
            "merge",
            &path("shard0.json"),
            &path("shard1.json"),
            &path("shard2.json"),
            "--out",
            &path("merged.json"),
        ],
        &url,
    );
    assert_eq!(
        merge.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&merge.stderr)
    );
    let read = |n: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(path(n)).unwrap()).unwrap()
    };
    let (one, merged) = (read("single.json"), read("merged.json"));
    assert_eq!(one["total"]["requests"], 27);
    assert_eq!(merged["total"]["requests"], one["total"]["requests"]);
    assert_eq!(merged["users"]["started"], one["users"]["started"]);
    assert_eq!(
        merged["run"]["shard"],
        Value::Null,
        "all three shards merged"
    );
    let counts_of = |r: &Value| -> Vec<(String, u64)> {
        r["stats"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["name"].as_str().unwrap().to_string(),
                    s["count"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(counts_of(&merged), counts_of(&one));
    // Load levels: the ramp 0→9, then the hold at 9 (one per stage, in every shard); the
    // setups (2 requests each) all completed while the shape asked for users.
    let levels = |r: &Value| -> (Vec<(Value, Value)>, u64) {
        let l = r["levels"].as_array().unwrap();
        (
            l.iter()
                .map(|l| (l["from_users"].clone(), l["target_users"].clone()))
                .collect(),
            l.iter().map(|l| l["requests"].as_u64().unwrap()).sum(),
        )
    };
    let stages = vec![(0.into(), 9.into()), (Value::Null, 9.into())];
    assert_eq!(levels(&one), (stages, 18), "{}", one["levels"]);
    assert_eq!(levels(&merged), levels(&one));
    for i in 0..3 {
        let s = read(&format!("shard{i}.json"));
        assert_eq!(s["users"]["started"], 3, "each shard runs its exact share");
        assert_eq!(s["run"]["shard"]["index"], i);
    }
    // 9 wallets from the single run and 9 from the three shards together.
    assert_eq!(
        counts.lock().unwrap().get("POST /multitenancy/wallet"),
        Some(&18)
    );
    // Merging a shard twice is refused with a clear line.
    let twice = acaload(
        &[
            "merge",
            &path("shard0.json"),
            &path("shard0.json"),
            "--out",
            &path("bad.json"),
        ],
        &url,
    );
    assert_eq!(twice.status.code(), Some(2));
    let err = String::from_utf8_lossy(&twice.stderr);
    assert!(
        err.trim()
            .ends_with("are both shard 0; each shard may appear once"),
        "{err}"
    );
}

/// GET over plain HTTP/1.1 (the stub world needs no client crate).
fn http_get(url: &str) -> String {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let mut s = TcpStream::connect(host).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn live_metrics_and_page_are_served_during_the_run() {
    let (url, _) = stub();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_acaload"))
        .args([
            "run",
            "tests/fixtures/engine/live.yaml",
            "--metrics",
            "127.0.0.1:0",
            "--web",
            "127.0.0.1:0",
        ])
        .env("STUB_URL", &url)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (mut page, mut metrics) = (None, None);
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(u) = line.strip_prefix("live page at ") {
            page = Some(u.to_string());
        }
        if let Some(u) = line.strip_prefix("live metrics at ") {
            metrics = Some(u.to_string());
        }
        if page.is_some() && metrics.is_some() {
            break;
        }
    }
    let (page, metrics) = (page.unwrap(), metrics.unwrap());
    assert!(page.starts_with("http://127.0.0.1:") && metrics.ends_with("/metrics"));
    // Wait (polling the endpoint itself) until the first snapshot has the step.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = http_get(&metrics);
        if text.contains("step=\"read state\"") {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no step metrics: {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE acaload_users gauge\nacaload_users 2"),
        "{text}"
    );
    // A real histogram (cumulative buckets, sum and count), not quantiles computed here:
    // shards' buckets can be summed and rate() taken over them.
    assert!(
        text.contains("# TYPE acaload_step_latency_seconds histogram"),
        "{text}"
    );
    let labels = "phase=\"tasks\",kind=\"http\",step=\"read state\"";
    let value = |series: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(series))
            .unwrap_or_else(|| panic!("no {series} in {text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let count = value(&format!("acaload_step_latency_seconds_count{{{labels}}}"));
    let inf = value(&format!(
        "acaload_step_latency_seconds_bucket{{le=\"+Inf\",{labels}}}"
    ));
    assert!(count >= 1.0 && inf == count, "{text}");
    assert!(
        !text.contains("quantile="),
        "no hand-made summaries: {text}"
    );
    assert!(
        text.contains("# TYPE acaload_http_requests counter"),
        "{text}"
    );
    // The page shows the snapshot of each second (the metrics are live): wait for it.
    let html = loop {
        let html = http_get(&page);
        if html.contains("read state") {
            break html;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no step on the page: {html}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(html.contains("<meta http-equiv=\"refresh\""), "{html}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert_eq!(child.wait().unwrap().code(), Some(0), "{rest:?}");
}

#[test]
fn a_stall_shows_in_scheduled_start_percentiles() {
    let (url, counts) = stub();
    let dir = std::env::temp_dir().join(format!("acaload-stall-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("r.json");
    let run = acaload(
        &[
            "run",
            "tests/fixtures/engine/stall.yaml",
            "-q",
            "--out",
            out.to_str().unwrap(),
        ],
        &url,
    );
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stdout)
    );
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let stat = |name: &str| {
        r["stats"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap()
    };
    let scheduled = stat("tasks (scheduled start)");
    let service = stat("tasks (service time)");
    // Every arrival of the schedule started: 50/s for 3 s, none dropped.
    assert_eq!(scheduled["count"], 150);
    assert_eq!(counts.lock().unwrap().get("GET /paused"), Some(&150));
    let p99 = scheduled["latency_ms"]["p99"].as_f64().unwrap();
    let p50 = scheduled["latency_ms"]["p50"].as_f64().unwrap();
    assert!(p99 >= 900.0, "the 1 s stall shows at p99: {p99} ms");
    assert!(
        p50 < 500.0,
        "most iterations were not stalled: p50 {p50} ms"
    );
    assert!(
        service["latency_ms"]["p50"].as_f64().unwrap() <= p50 + 1.0,
        "service time never exceeds the scheduled-start latency"
    );
}

#[test]
fn an_impossible_threshold_exits_1_and_says_which() {
    let (url, _) = stub();
    let dir = std::env::temp_dir().join(format!("acaload-threshold-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("r.json");
    let run = acaload(
        &[
            "run",
            "tests/fixtures/engine/impossible.yaml",
            "-q",
            "--out",
            out.to_str().unwrap(),
        ],
        &url,
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.status.code(), Some(1), "{stdout}");
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("  PASS") || l.starts_with("  FAIL"))
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[0].starts_with("  PASS all requests error rate"),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with("  FAIL read state max") && lines[1].contains("<= 0ms"),
        "{stdout}"
    );
    // The verdicts travel with the results: `acaload report` shows them and exits 1 too.
    let report = acaload(&["report", out.to_str().unwrap()], &url);
    assert_eq!(report.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&report.stdout).contains("FAIL read state max"));
}

/// A TLS stub with a fresh self-signed certificate for 127.0.0.1: `200 {}` to every request.
fn tls_stub() -> String {
    let key = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.signing_key.serialize_der().into());
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![key.cert.der().clone()], der)
        .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let config = config.clone();
            std::thread::spawn(move || {
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut tls = BufReader::new(rustls::StreamOwned::new(conn, tcp));
                loop {
                    // GET requests only: the head ends with an empty line.
                    let mut line = String::new();
                    loop {
                        line.clear();
                        match tls.read_line(&mut line) {
                            Ok(0) | Err(_) => return,
                            Ok(_) if line.trim().is_empty() => break,
                            Ok(_) => {}
                        }
                    }
                    let resp = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
                    if tls.get_mut().write_all(resp.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    url
}

#[test]
fn tls_is_verified_unless_the_plan_opts_out() {
    let url = tls_stub();
    let run = |insecure: bool| {
        let plan = format!(
            "name: t\nenv: {{ U: {{ type: string }} }}\ntarget: {{ base_url: \"{{{{ env.U }}}}\", insecure_skip_tls_verify: {insecure} }}\nload: {{ constant: {{ users: 1, duration: 1s }} }}\nuser:\n  setup:\n    - {{ name: status, request: {{ method: GET, path: /status }}, check: {{ status: 200 }} }}\n"
        );
        run_inline("tls", &plan, &url)
    };
    let (code, r) = run(true);
    assert_eq!(code, Some(0), "{r}");
    assert_eq!(r["total"]["requests"], 1);
    assert_eq!(r["total"]["failures"], 0);
    let (code, r) = run(false);
    assert_eq!(code, Some(1), "{r}");
    assert_eq!(r["total"]["failures"], 1);
    assert_eq!(
        r["failures"][0]["reason"],
        "connection error: TLS certificate not accepted: unknown issuer (name its CA with \
         target.ca_file, --ca-file or SSL_CERT_FILE)"
    );
}

#[test]
fn failures_without_a_request_are_step_failures_not_requests() {
    let (url, counts) = stub();
    // One user, setup only: a request whose capture fails after a 200, a template that
    // cannot render and a `when` that cannot be evaluated (both read what the capture did
    // not set), then a plain request.
    let plan = r#"name: t
env: { U: { type: string } }
target: { base_url: "{{ env.U }}" }
load: { constant: { users: 1, duration: 1s } }
user:
  setup:
    - name: capture after a good response
      request: { method: GET, path: /state }
      capture: { missing: $.nope }
      on_error: continue
    - name: bad template
      request: { method: GET, path: "/state/{{ missing }}" }
      on_error: continue
    - name: bad when
      when: "missing.x == 1"
      request: { method: GET, path: /state }
      on_error: continue
    - name: fine
      request: { method: GET, path: /state }
"#;
    let (code, r) = run_inline("untimed", plan, &url);
    assert_eq!(code, Some(1), "{r}");
    let received: usize = counts
        .lock()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.as_str() != "connections")
        .map(|(_, n)| *n)
        .sum();
    assert_eq!(received, 2, "the stub got the two requests that were sent");
    assert_eq!(
        r["total"]["requests"].as_u64(),
        Some(received as u64),
        "results count the requests the stub received: {}",
        r["total"]
    );
    let stats = r["stats"].as_array().unwrap();
    let http: u64 = stats
        .iter()
        .filter(|s| s["kind"] == "http")
        .map(|s| s["count"].as_u64().unwrap())
        .sum();
    assert_eq!(http, 2, "{stats:#?}");
    for s in stats.iter().filter(|s| s["count"].as_u64() > Some(0)) {
        // A loopback round trip takes tens of µs at least; 1 µs is a made-up sample.
        assert!(
            s["latency_ms"]["min"].as_f64().unwrap() >= 0.01,
            "a sample below any real request: {s}"
        );
    }
    let step = |name: &str| {
        stats
            .iter()
            .find(|s| s["name"] == name && s["kind"] == "http")
            .cloned()
            .unwrap_or_else(|| panic!("no row for {name}: {stats:#?}"))
    };
    let counted = |name: &str| {
        let s = step(name);
        (
            s["count"].as_u64().unwrap(),
            s["failures"].as_u64().unwrap(),
        )
    };
    assert_eq!(counted("capture after a good response"), (1, 1));
    assert_eq!(counted("bad template"), (0, 1));
    assert_eq!(counted("bad when"), (0, 1));
    assert_eq!(counted("fine"), (1, 0));
    let reasons: Vec<(&str, &str, u64)> = r["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap(),
                f["reason"].as_str().unwrap(),
                f["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons.contains(&("bad template", "template error", 1)));
    assert!(reasons.contains(&("bad when", "`when` could not be evaluated", 1)));
    // The failures still count against the run: 3 failed steps, 2 requests.
    assert_eq!(r["total"]["failures"], 3, "{}", r["total"]);
}

#[test]
fn secrets_stay_secret_after_a_pool_and_response_bodies_are_capped() {
    let (url, _) = stub();
    // User 0 captures a secret (not a JWT) and offers it; user 1 takes it and sends it to
    // an agent that repeats it in its error text.
    let plan = r#"name: t
env: { U: { type: string } }
target: { base_url: "{{ env.U }}" }
load: { constant: { users: 2, duration: 1s } }
pools: { creds: {} }
user:
  setup:
    - name: get secret
      when: "user.index == 0"
      request: { method: POST, path: /secret }
      capture: { s: { path: $.secret, secret: true } }
    - name: hand over
      when: "user.index == 0"
      offer: { pool: creds, value: "{{ s }}" }
    - name: take
      when: "user.index == 1"
      take: { pool: creds, as: s, timeout: 5s }
    - name: use it
      when: "user.index == 1"
      request: { method: GET, path: /echo, bearer: "{{ s }}" }
      on_error: continue
    - name: huge
      when: "user.index == 1"
      request: { method: GET, path: /huge }
      on_error: continue
"#;
    let (code, r) = run_inline("poolsecret", plan, &url);
    assert_eq!(code, Some(1), "{r}");
    let text = r.to_string();
    assert!(
        !text.contains("pool-secret-"),
        "the pooled secret leaked: {text}"
    );
    let reason = |name: &str| {
        r["failures"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .map(|f| f["reason"].as_str().unwrap().to_string())
    };
    assert_eq!(
        reason("use it").as_deref(),
        Some("status 401 (expected 2xx): 401: not valid: Bearer ***")
    );
    assert_eq!(
        reason("huge").as_deref(),
        Some("request error: response body over 8 MiB")
    );
}

#[test]
fn results_are_not_written_when_scrubbing_would_break_them() {
    let (url, _) = stub();
    let dir = std::env::temp_dir().join(format!("acaload-failclosed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // The API key's value is also a word of the results format (`"phase": "setup"`).
    let plan = "name: t\nenv: { U: { type: string }, K: { type: string, secret: true } }\ntarget: { base_url: \"{{ env.U }}\", headers: { X-API-Key: \"{{ env.K }}\" } }\nload: { constant: { users: 1, duration: 1s } }\nuser:\n  setup:\n    - request: { method: GET, path: /text }\n";
    std::fs::write(dir.join("p.yaml"), plan).unwrap();
    let (out, html) = (dir.join("r.json"), dir.join("r.html"));
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_acaload"))
        .args(["run", dir.join("p.yaml").to_str().unwrap(), "-q", "--out"])
        .arg(&out)
        .arg("--html")
        .arg(&html)
        .env("U", &url)
        .env("K", "setup")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no results file or report is written"),
        "{stderr}"
    );
    assert!(!out.exists(), "results written from unscrubbed data");
    assert!(!html.exists(), "a report written from unscrubbed data");
}

#[test]
fn a_watched_local_process_shows_its_cpu_by_load_level() {
    let (url, counts) = stub();
    let dir = std::env::temp_dir().join(format!("acaload-pidwatch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A process that keeps one core busy stands in for a loaded agent.
    let mut busy = std::process::Command::new("sh")
        .args(["-c", "while :; do :; done"])
        .spawn()
        .unwrap();
    let pid_file = dir.join("busy.pid");
    std::fs::write(&pid_file, busy.id().to_string()).unwrap();
    let plan = |pid_file: &std::path::Path| {
        format!(
            r#"name: t
env: {{ U: {{ type: string }} }}
target: {{ base_url: "{{{{ env.U }}}}", headers: {{ X-API-Key: target-key }} }}
load: {{ steps: {{ step_time: 1500ms, users_per_step: 1, user_limit: 2, time_limit: 3s }} }}
watch:
  - {{ name: busy, url: "{{{{ env.U }}}}", interval: 200ms, pid_file: "{}" }}
  - {{ name: keyed, url: "{{{{ env.U }}}}/keyed", interval: 200ms, api_key: watch-key }}
user:
  tasks:
    - {{ name: ping, request: {{ method: GET, path: /state }} }}
  think: 100ms
"#,
            pid_file.display()
        )
    };
    let (code, r) = run_inline("pidwatch", &plan(&pid_file), &url);
    let _ = busy.kill();
    let _ = busy.wait();
    assert_eq!(code, Some(0), "{r}");
    // A watched agent gets its own API key, or none: never the target's.
    {
        let c = counts.lock().unwrap();
        let n = |k: &str| c.get(k).copied().unwrap_or(0);
        assert!(n("x-api-key target-key: GET /state") >= 10, "{c:?}");
        assert_eq!(n("x-api-key target-key: GET /status"), 0, "{c:?}");
        assert_eq!(n("x-api-key target-key: GET /keyed/status"), 0, "{c:?}");
        assert!(n("x-api-key watch-key: GET /keyed/status") >= 10, "{c:?}");
        assert!(n("GET /status") >= 10, "{c:?}");
        assert_eq!(
            n("x-api-key watch-key: GET /keyed/status"),
            n("GET /keyed/status"),
            "{c:?}"
        );
    }
    let levels = r["levels"].as_array().unwrap();
    assert_eq!(levels.len(), 2, "{r}");
    for l in levels {
        let a = &l["agents"][0];
        assert_eq!(a["name"], "busy");
        // One busy core, sampled every 200 ms (the machine may be shared: not exactly 100 %).
        let cpu = a["cpu_pct"].as_f64().unwrap();
        assert!((25.0..=110.0).contains(&cpu), "{l}");
        assert!(a["rss_mb"].as_f64().unwrap() > 0.0, "{l}");
    }
    let report = std::process::Command::new(env!("CARGO_BIN_EXE_acaload"))
        .args(["report", dir.join("r.json").to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&report.stdout);
    assert!(
        text.contains("   by load running | busy CPU sessions  RSS MB"),
        "{text}"
    );

    // A run that does not start: exit 2 and one line.
    let refused = |file: &str, text: String| {
        std::fs::write(dir.join(file), text).unwrap();
        let run = std::process::Command::new(env!("CARGO_BIN_EXE_acaload"))
            .args(["run", dir.join(file).to_str().unwrap(), "-q"])
            .env("U", &url)
            .output()
            .unwrap();
        assert_eq!(run.status.code(), Some(2));
        String::from_utf8_lossy(&run.stderr).into_owned()
    };

    // A watched agent's URL that is not one: without http(s), located as `base_url` is;
    // one that has the scheme but does not parse, in one line before anything starts.
    let alive = dir.join("self.pid");
    std::fs::write(&alive, std::process::id().to_string()).unwrap();
    let with_url = |u: &str| {
        let text = plan(&alive).replace("\"{{ env.U }}/keyed\"", &format!("\"{u}\""));
        assert_ne!(text, plan(&alive));
        text
    };
    let located = refused("u.yaml", with_url("127.0.0.1:9/keyed"));
    assert!(
        located.starts_with(&format!(
            "{}:7:25: url `127.0.0.1:9/keyed` must start with http:// or https://\n",
            dir.join("u.yaml").display()
        )),
        "{located}"
    );
    assert_eq!(
        refused("v.yaml", with_url("http://[::1/keyed")),
        "error: watch keyed: url `http://[::1/keyed` is not a valid URL: invalid authority\n"
    );

    // A pid file that names no running process.
    std::fs::write(&pid_file, "4194000").unwrap();
    assert_eq!(
        refused("p.yaml", plan(&pid_file)),
        format!(
            "error: watch busy: process 4194000 (from {}) is not running on this machine\n",
            pid_file.display()
        )
    );
}
