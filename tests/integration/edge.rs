//! End to end: `plans/edge-agents.yaml` with 20 edge agents against a real ACA-Py 1.7.0
//! mediator (alone: `scripts/acapy-stack.sh up --mediator-only` on ports 4500-4502 and its own
//! state dir). The assertions ask the mediator's admin API — grants, keylist entries during and
//! after the run — and the results file: every message sent arrived exactly once. It also
//! measures acaload's and the mediator's CPU over the run from `/proc`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const HTTP_PORT: &str = "4500";
const ADMIN_PORT: &str = "4501";
const WS_PORT: &str = "4502";
const LOCK: &str = "/tmp/acaload-stack-4500.lock";
const AGENTS: u64 = 20;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// True when ACA-Py's venv is there; panics in CI without it; false (skip) otherwise.
fn venv_present() -> bool {
    let venv = std::env::var_os("ACAPY_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".acapy/venv"));
    if venv.join("bin/aca-py").exists() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "ACA-Py venv not found at {} (set ACAPY_VENV); required in CI",
            venv.display()
        );
    }
    eprintln!(
        "SKIP: ACA-Py venv not found at {} (set ACAPY_VENV)",
        venv.display()
    );
    false
}

/// Holds `flock LOCK` for the test's life: another checkout running this test waits.
struct PortLock(Child);

impl PortLock {
    fn take() -> PortLock {
        let mut child = Command::new("flock")
            .args(["-x", LOCK, "-c", "echo locked; exec cat"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run flock");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("flock stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("flock answers");
        assert_eq!(line.trim(), "locked");
        PortLock(child)
    }
}

impl Drop for PortLock {
    fn drop(&mut self) {
        drop(self.0.stdin.take()); // cat ends, the lock goes
        let _ = self.0.wait();
    }
}

/// The mediator-only stack, stopped on drop (also when the test fails).
struct Mediator {
    dir: PathBuf,
    env_file: PathBuf,
    vars: HashMap<String, String>,
    _lock: PortLock,
}

impl Mediator {
    fn script(dir: &Path, args: &[&str]) -> std::process::Output {
        Command::new(repo().join("scripts/acapy-stack.sh"))
            .args(args)
            .env("ACAPY_STACK_DIR", dir.join("stack"))
            .env("MEDIATOR_PORT", HTTP_PORT)
            .env("MEDIATOR_ADMIN_PORT", ADMIN_PORT)
            .env("MEDIATOR_WS_PORT", WS_PORT)
            .output()
            .expect("run scripts/acapy-stack.sh")
    }

    fn up() -> Mediator {
        let lock = PortLock::take();
        let dir = std::env::temp_dir().join(format!("acaload-edge-e2e-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let env_file = dir.join("stack.env");
        let out = Self::script(&dir, &["up", "--mediator-only", env_file.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "mediator did not start:\n{}",
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
        Mediator {
            dir,
            env_file,
            vars,
            _lock: lock,
        }
    }

    fn admin(&self, path: &str) -> Value {
        let url = format!("{}{}", self.vars["MEDIATOR_ADMIN_URL"], path);
        let out = Command::new("curl")
            .args([
                "-sf",
                "--max-time",
                "10",
                "-H",
                &format!("X-API-Key: {}", self.vars["MEDIATOR_ADMIN_API_KEY"]),
                &url,
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "GET {url} failed");
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn granted(&self) -> usize {
        count(&self.admin("/mediation/requests?state=granted&limit=10000"))
    }

    fn keylist(&self) -> usize {
        count(&self.admin("/mediation/keylists?role=server&limit=10000"))
    }

    /// utime + stime of the mediator process, in seconds.
    fn cpu_secs(&self) -> f64 {
        let pid = std::fs::read_to_string(self.dir.join("stack/mediator.pid")).unwrap();
        proc_cpu_secs(pid.trim()).expect("the mediator is running")
    }
}

impl Drop for Mediator {
    fn drop(&mut self) {
        let out = Self::script(&self.dir, &["down"]);
        if !out.status.success() {
            eprintln!(
                "stack down failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn count(v: &Value) -> usize {
    v["results"].as_array().map_or(0, Vec::len)
}

/// utime + stime of a process from `/proc/PID/stat` (fields 14 and 15, after the `(comm)`).
fn proc_cpu_secs(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / clock_ticks())
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

#[test]
fn edge_agents_plan_against_a_real_mediator() {
    if std::env::var("ACALOAD_SKIP_E2E").is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED: end-to-end test (ACALOAD_SKIP_E2E=1)");
        return;
    }
    if !venv_present() {
        return;
    }
    let mediator = Mediator::up();
    let granted_before = mediator.granted();
    let keys_before = mediator.keylist();
    let results = mediator.dir.join("edge.json");

    // 10 agents every 10 s up to 20, for 30 s, draining; the shell reports acaload's CPU (`times`).
    let cpu_mediator_before = mediator.cpu_secs();
    let mut run = Command::new("bash")
        .args(["-c", "\"$@\"; rc=$?; times >&2; exit $rc", "bash"])
        .arg(env!("CARGO_BIN_EXE_acaload"))
        .args(["run", "plans/edge-agents.yaml", "--seed", "7", "--out"])
        .arg(&results)
        .arg("--env-file")
        .arg(&mediator.env_file)
        .args([
            "--set",
            "STEP_TIME_SECS=10",
            "--set",
            "USERS_ADDED_PER_STEP=10",
            "--set",
            &format!("USER_LIMIT={AGENTS}"),
            "--set",
            "TIME_LIMIT_MINS=0.5",
            // A ping response and a message for the same agent at once: ACA-Py's session holds
            // one, the other goes to its undelivered queue and stays there (issue 2111). As
            // Credo, an agent would count it lost; the test asks for the drain workaround.
            "--set",
            "DRAIN_PINGS=true",
        ])
        .current_dir(repo())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The keylist while the agents run: sampled until acaload exits (bounded).
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut most_keys = keys_before;
    while run.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "acaload did not finish in 120 s");
        most_keys = most_keys.max(mediator.keylist());
        std::thread::sleep(Duration::from_millis(300));
    }
    let out = run.wait_with_output().unwrap();
    let cpu_mediator = mediator.cpu_secs() - cpu_mediator_before;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "edge plan failed:\n{stdout}\n{stderr}"
    );

    // `times`: the shell's own line, then its children's (acaload): "0m1.234s 0m0.567s".
    let children = stderr.lines().last().unwrap_or_default();
    let secs = |t: &str| -> f64 {
        let (m, s) = t
            .trim_end_matches('s')
            .split_once('m')
            .unwrap_or(("0", "0"));
        m.parse::<f64>().unwrap_or(0.0) * 60.0 + s.parse::<f64>().unwrap_or(0.0)
    };
    let cpu_acaload: f64 = children.split_whitespace().map(secs).sum();
    eprintln!(
        "CPU over the {AGENTS}-agent run: acaload {cpu_acaload:.2} s, mediator {cpu_mediator:.2} s ({:.1} %)",
        100.0 * cpu_acaload / cpu_mediator.max(0.001)
    );
    eprintln!("{stdout}");

    // The mediator's view: a grant per agent, a key per agent during the run, none after.
    assert_eq!(
        mediator.granted() - granted_before,
        AGENTS as usize,
        "grants"
    );
    assert!(
        most_keys - keys_before >= AGENTS as usize,
        "keylist entries during the run: {most_keys} (start {keys_before})"
    );
    assert_eq!(
        mediator.keylist(),
        keys_before,
        "keys left after the teardown"
    );

    // acaload's view: every message sent arrived exactly once.
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&results).unwrap()).unwrap();
    let stat = |phase: &str, kind: &str, name: &str| -> Value {
        r["stats"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["phase"] == phase && s["kind"] == kind && s["name"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(r["run"]["outcome"], "completed");
    assert_eq!(r["total"]["failures"], 0, "{stdout}");
    assert_eq!(r["users"]["setup_ok"], AGENTS);
    assert_eq!(stat("setup", "poll", "mediation granted")["count"], AGENTS);
    assert_eq!(
        stat("setup", "poll", "peer connection active")["count"],
        AGENTS
    );
    let sent = stat("tasks", "http", "message peer")["count"]
        .as_u64()
        .unwrap();
    let delivered = stat("tasks", "event", "message delivered through mediator");
    assert!(sent > 50, "messages were sent: {sent}");
    assert_eq!(
        (delivered["count"].as_u64(), delivered["failures"].as_u64()),
        (Some(sent), Some(0)),
        "every message arrived"
    );
    assert_eq!(r["events"]["duplicates"], 0, "a message arrived twice");
    assert!(stat("tasks", "event", "ping round trip")["count"].as_u64() > Some(0));
    assert_eq!(
        stat("teardown", "http", "remove keys and disconnect")["count"],
        AGENTS
    );

    assert!(
        cpu_acaload < 0.2 * cpu_mediator,
        "acaload used {cpu_acaload:.2} CPU-s, the mediator {cpu_mediator:.2}"
    );
}
