//! End to end against real ACA-Py 1.7.0 processes: a mediator and a multitenant agent
//! started by `scripts/acapy-stack.sh` on their own loopback ports. The assertions ask
//! the agents themselves, not only acaload's output.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

const MEDIATOR_PORT: &str = "4300";
const MEDIATOR_ADMIN_PORT: &str = "4301";
const AGENT_PORT: &str = "4310";
const AGENT_ADMIN_PORT: &str = "4311";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_acaload"))
}

/// The stack for this test: started on creation, stopped on drop (also when a test fails).
struct Stack {
    dir: PathBuf,
    env_file: PathBuf,
    vars: HashMap<String, String>,
}

impl Stack {
    fn script(dir: &Path, args: &[&str]) -> std::process::Output {
        Command::new(repo().join("scripts/acapy-stack.sh"))
            .args(args)
            .env("ACAPY_STACK_DIR", dir.join("stack"))
            .env("MEDIATOR_PORT", MEDIATOR_PORT)
            .env("MEDIATOR_ADMIN_PORT", MEDIATOR_ADMIN_PORT)
            .env("AGENT_PORT", AGENT_PORT)
            .env("AGENT_ADMIN_PORT", AGENT_ADMIN_PORT)
            .output()
            .expect("run scripts/acapy-stack.sh")
    }

    fn up() -> Stack {
        let dir = repo().join("target/e2e");
        std::fs::create_dir_all(&dir).unwrap();
        let _ = Self::script(&dir, &["down"]);
        let env_file = dir.join("stack.env");
        let out = Self::script(&dir, &["up", env_file.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "stack did not start:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let vars = std::fs::read_to_string(&env_file)
            .unwrap()
            .lines()
            .filter_map(|l| {
                l.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect();
        Stack {
            dir,
            env_file,
            vars,
        }
    }

    fn get(&self, admin: &str, key: &str, path: &str) -> Value {
        let url = format!("{}{}", self.vars[admin], path);
        let out = Command::new("curl")
            .args(["-sf", "-H", &format!("X-API-Key: {}", self.vars[key]), &url])
            .output()
            .unwrap();
        assert!(out.status.success(), "GET {url} failed");
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn mediator(&self, path: &str) -> Value {
        self.get("MEDIATOR_ADMIN_URL", "MEDIATOR_ADMIN_API_KEY", path)
    }

    fn agent(&self, path: &str) -> Value {
        self.get("ACAPY_ADMIN_URL", "ACAPY_ADMIN_API_KEY", path)
    }

    fn acaload(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin());
        cmd.current_dir(repo())
            .args(args)
            .arg("--env-file")
            .arg(&self.env_file);
        cmd
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let out = Self::script(&self.dir, &["down"]);
        if !out.status.success() {
            eprintln!(
                "stack down failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

fn count(v: &Value) -> usize {
    v["results"].as_array().map_or(0, Vec::len)
}

fn granted_on_mediator(stack: &Stack) -> usize {
    count(&stack.mediator("/mediation/requests?state=granted&limit=10000"))
}

fn server_keys_on_mediator(stack: &Stack) -> usize {
    let v = stack.mediator("/mediation/keylists?role=server&limit=10000");
    count(&v)
}

fn results(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("results file written"))
        .expect("results are JSON")
}

#[test]
fn mediator_plan_end_to_end_against_real_acapy() {
    if std::env::var("ACALOAD_SKIP_E2E").is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED: end-to-end test (ACALOAD_SKIP_E2E=1)");
        return;
    }
    let stack = Stack::up();
    let out_dir = stack.dir.clone();

    // Warm the fresh mediator with one onboarding (its routing DID is created on the
    // first grant; concurrent first grants race in ACA-Py 1.7.0) — and test that plan.
    let warm = out_dir.join("warmup.json");
    let status = stack
        .acaload(&[
            "run",
            "plans/onboarding.yaml",
            "-q",
            "--set",
            "USERS=1",
            "--set",
            "DURATION=2s",
            "--out",
            warm.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0), "onboarding warm-up failed");
    assert_eq!(results(&warm)["users"]["setup_ok"], 1);

    let granted_before = granted_on_mediator(&stack);
    let keys_before = server_keys_on_mediator(&stack);
    assert_eq!(granted_before, 1, "the warm-up made exactly one grant");

    // The shape: 2 users every 5 s up to 6, for 30 s.
    let res = out_dir.join("mediator.json");
    let out = stack
        .acaload(&[
            "run",
            "plans/mediator.yaml",
            "--seed",
            "42",
            "--out",
            res.to_str().unwrap(),
            "--set",
            "STEP_TIME_SECS=5",
            "--set",
            "USERS_ADDED_PER_STEP=2",
            "--set",
            "USER_LIMIT=6",
            "--set",
            "TIME_LIMIT_MINS=0.5",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "mediator plan failed:\n{stdout}\n{stderr}"
    );
    let r = results(&res);
    assert_eq!(r["run"]["outcome"], "completed");
    assert_eq!(r["total"]["failures"], 0, "{stdout}");
    assert_eq!(r["users"]["started"], 6);
    assert_eq!(r["users"]["setup_ok"], 6);
    assert_eq!(r["users"]["stopped_by_error"], 0);
    let stat = |phase: &str, kind: &str, name: &str| -> Value {
        r["stats"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["phase"] == phase && s["kind"] == kind && s["name"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(stat("setup", "poll", "mediation granted")["count"], 6);
    assert_eq!(stat("setup", "poll", "peer connection active")["count"], 6);
    assert_eq!(stat("setup", "take", "take peer invitation")["count"], 3);
    assert_eq!(stat("teardown", "http", "remove tenant wallet")["count"], 6);
    assert!(
        r["users"]["iterations"].as_u64().unwrap() > 20,
        "tasks kept running: {}",
        r["users"]
    );
    assert!(stdout.contains("PASS all requests error rate"), "{stdout}");
    // Secrets stay out of the report and the results file.
    let file = std::fs::read_to_string(&res).unwrap();
    for secret in [
        &stack.vars["ACAPY_ADMIN_API_KEY"],
        &stack.vars["MEDIATOR_ADMIN_API_KEY"],
    ] {
        assert!(
            !file.contains(secret.as_str())
                && !stdout.contains(secret.as_str())
                && !stderr.contains(secret.as_str())
        );
    }
    assert!(
        !file.contains("eyJhbGci"),
        "a tenant token leaked into the results"
    );

    // The mediator's own view: one new grant per user and one routing key per peer connection.
    assert_eq!(
        granted_on_mediator(&stack) - granted_before,
        6,
        "mediator grants"
    );
    assert_eq!(
        server_keys_on_mediator(&stack) - keys_before,
        6,
        "mediator keylist entries for the peer connections"
    );
    // The multitenant agent has no tenant wallets left.
    assert_eq!(
        count(&stack.agent("/multitenancy/wallets")),
        0,
        "tenant wallets left behind"
    );

    // Wrong API key: one clear line, exit 2, results still written.
    let bad = out_dir.join("badkey.json");
    let out = stack
        .acaload(&[
            "run",
            "plans/mediator.yaml",
            "-q",
            "--set",
            "ACAPY_ADMIN_API_KEY=wrong",
            "--out",
            bad.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(
        err.trim(),
        format!(
            "error: preflight {}/status failed: status 401: 401: API Key invalid or missing",
            stack.vars["ACAPY_ADMIN_URL"]
        )
    );
    assert_eq!(results(&bad)["run"]["outcome"], "aborted");

    // Unreachable admin URL.
    let gone = out_dir.join("unreachable.json");
    let out = stack
        .acaload(&[
            "run",
            "plans/mediator.yaml",
            "-q",
            "--set",
            "ACAPY_ADMIN_URL=http://127.0.0.1:9",
            "--out",
            gone.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: preflight http://127.0.0.1:9/status failed: Connection refused"),
        "{err}"
    );
    assert!(gone.exists());

    // Ctrl-C mid-run: teardown still runs, results are written, exit 130.
    let int = out_dir.join("interrupted.json");
    let mut child = stack
        .acaload(&[
            "run",
            "plans/mediator.yaml",
            "--set",
            "USERS_ADDED_PER_STEP=4",
            "--set",
            "USER_LIMIT=4",
            "--set",
            "TIME_LIMIT_MINS=5",
            "--out",
            int.to_str().unwrap(),
        ])
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    // Wait (on the tool's own progress output, not a sleep) until all 4 users run tasks.
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.contains("users 4/4") && !line.contains("requests 0 ") {
            break;
        }
        assert!(seen.len() < 200, "never saw 4 users: {seen:?}");
    }
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{rest:?}");
    assert!(
        rest.iter()
            .any(|l| l.starts_with("stopping: finishing in-flight requests")),
        "{rest:?}"
    );
    let r = results(&int);
    assert_eq!(r["run"]["outcome"], "interrupted");
    assert!(r["run"]["duration_secs"].as_f64().unwrap() < 120.0);
    assert_eq!(
        count(&stack.agent("/multitenancy/wallets")),
        0,
        "teardown ran on Ctrl-C"
    );
}
