//! A real ACA-Py stack for one test: `scripts/acapy-stack.sh` on the test's own loopback
//! ports and state dir, started on creation and stopped on drop (also when a test fails).
//! Tests with real agents run one at a time ([`Stack::up`] holds a lock): two stacks and
//! acaload on two cores would make each other's timings meaningless. They are marked
//! `#[ignore = "starts real ACA-Py agents ..."]`, so a plain `cargo test` lists them as ignored
//! and `scripts/test.sh` runs them (`-- --include-ignored`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

static REAL_AGENTS: Mutex<()> = Mutex::new(());

/// Held while a test runs real agents: one such test at a time in this process.
pub fn serial() -> MutexGuard<'static, ()> {
    REAL_AGENTS.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_acaload"))
}

/// The loopback ports of one stack: mediator DIDComm HTTP (its WebSocket is `base + 2`),
/// mediator admin `base + 1`, multitenant agent `base + 10` and admin `base + 11`.
#[derive(Clone, Copy)]
pub struct Ports(pub u16);

pub struct Stack {
    pub dir: PathBuf,
    pub env_file: PathBuf,
    pub vars: HashMap<String, String>,
    ports: Ports,
    /// Extra environment for the stack script (e.g. `MEDIATOR_EXTRA_ARGS`).
    env: Vec<(String, String)>,
    serial: Option<MutexGuard<'static, ()>>,
}

impl Stack {
    fn script(
        dir: &Path,
        ports: Ports,
        env: &[(String, String)],
        args: &[&str],
    ) -> std::process::Output {
        let p = |n: u16| (ports.0 + n).to_string();
        Command::new(repo().join("scripts/acapy-stack.sh"))
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("ACAPY_STACK_DIR", dir.join("stack"))
            .env("MEDIATOR_PORT", p(0))
            .env("MEDIATOR_ADMIN_PORT", p(1))
            .env("MEDIATOR_WS_PORT", p(2))
            .env("AGENT_PORT", p(10))
            .env("AGENT_ADMIN_PORT", p(11))
            .output()
            .expect("run scripts/acapy-stack.sh")
    }

    /// Starts a mediator and a multitenant agent; `name` is the state folder under
    /// `target/`.
    pub fn up(name: &str, ports: Ports) -> Stack {
        Self::start(name, ports, &[])
    }

    /// Starts the mediator alone (edge agents need no multitenant agent).
    pub fn mediator_only(name: &str, ports: Ports) -> Stack {
        Self::start(name, ports, &["--mediator-only"])
    }

    fn start(name: &str, ports: Ports, flags: &[&str]) -> Stack {
        Self::start_with(name, ports, flags, &[], serial())
    }

    /// The mediator alone, with extra environment for the stack script, for a test that holds
    /// the real-stack lock already.
    pub fn mediator_with(
        name: &str,
        ports: Ports,
        env: &[(&str, &str)],
        serial: MutexGuard<'static, ()>,
    ) -> Stack {
        Self::start_with(name, ports, &["--mediator-only"], env, serial)
    }

    fn start_with(
        name: &str,
        ports: Ports,
        flags: &[&str],
        env: &[(&str, &str)],
        serial: MutexGuard<'static, ()>,
    ) -> Stack {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let dir = repo().join("target").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let _ = Self::script(&dir, ports, &env, &["down"]);
        let env_file = dir.join("stack.env");
        let args: Vec<&str> = ["up"]
            .into_iter()
            .chain(flags.iter().copied())
            .chain([env_file.to_str().unwrap()])
            .collect();
        let out = Self::script(&dir, ports, &env, &args);
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
            ports,
            env,
            serial: Some(serial),
        }
    }

    /// Runs `plans/onboarding.yaml` with one user, which must succeed: a fresh mediator
    /// creates its routing DID on its first grant, and concurrent first grants race in
    /// ACA-Py 1.7.0, so a test that starts several users at once warms the mediator first.
    pub fn warm_up(&self) {
        let warm = self.dir.join("warmup.json");
        let out = self
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
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "onboarding warm-up failed:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert_eq!(results(&warm)["users"]["setup_ok"], 1);
    }

    /// `scripts/acapy-stack.sh kill|restart mediator|multi`, which must succeed.
    pub fn control(&self, action: &str, agent: &str) {
        let out = Self::script(&self.dir, self.ports, &self.env, &[action, agent]);
        assert!(
            out.status.success(),
            "{action} {agent} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// utime + stime of one of the stack's agents so far, in seconds.
    pub fn cpu_secs(&self, agent: &str) -> f64 {
        let pid = std::fs::read_to_string(self.dir.join(format!("stack/{agent}.pid"))).unwrap();
        proc_cpu_secs(pid.trim()).expect("the agent is running")
    }

    pub fn get(&self, admin: &str, key: &str, path: &str) -> Value {
        let url = format!("{}{}", self.vars[admin], path);
        let out = Command::new("curl")
            .args(["-sf", "-H", &format!("X-API-Key: {}", self.vars[key]), &url])
            .output()
            .unwrap();
        assert!(out.status.success(), "GET {url} failed");
        serde_json::from_slice(&out.stdout).unwrap()
    }

    pub fn mediator(&self, path: &str) -> Value {
        self.get("MEDIATOR_ADMIN_URL", "MEDIATOR_ADMIN_API_KEY", path)
    }

    pub fn agent(&self, path: &str) -> Value {
        self.get("ACAPY_ADMIN_URL", "ACAPY_ADMIN_API_KEY", path)
    }

    pub fn acaload(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin());
        cmd.current_dir(repo())
            .args(args)
            .arg("--env-file")
            .arg(&self.env_file);
        cmd
    }
}

impl Stack {
    /// Stops the stack and hands back the real-stack lock.
    pub fn stop(mut self) -> MutexGuard<'static, ()> {
        self.down();
        self.serial.take().expect("held until stopped")
    }

    fn down(&self) {
        let out = Self::script(&self.dir, self.ports, &self.env, &["down"]);
        if !out.status.success() {
            eprintln!(
                "stack down failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if self.serial.is_some() {
            self.down();
        }
    }
}

pub fn count(v: &Value) -> usize {
    v["results"].as_array().map_or(0, Vec::len)
}

pub fn granted_on_mediator(stack: &Stack) -> usize {
    count(&stack.mediator("/mediation/requests?state=granted&limit=10000"))
}

pub fn server_keys_on_mediator(stack: &Stack) -> usize {
    count(&stack.mediator("/mediation/keylists?role=server&limit=10000"))
}

/// A step's statistics in a results file (`Null` when there is no such step).
pub fn stat(r: &Value, phase: &str, kind: &str, name: &str) -> Value {
    r["stats"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["phase"] == phase && s["kind"] == kind && s["name"] == name)
        .cloned()
        .unwrap_or(Value::Null)
}

pub fn results(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("results file written"))
        .expect("results are JSON")
}

/// Polls `ready` every 200 ms until it holds; panics with `what` after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// utime + stime of a process from `/proc/PID/stat` (fields 14 and 15, after the `(comm)`).
pub fn proc_cpu_secs(pid: &str) -> Option<f64> {
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
