//! `scripts/prod-stack.sh` driven from the tests: PostgreSQL, ACA-Py mediator instances on one
//! askar-postgres wallet and nginx terminating TLS, on ports 4900-4922, state under
//! `target/NAME/prod`. Started on creation, stopped on drop (also when a test fails); one stack
//! at a time (`stack::serial`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::stack::{bin, count, repo, results};

pub const PORT: u16 = 4900;
/// Agents of the TLS runs.
pub const AGENTS: u64 = 6;

/// `scripts/prod-stack.sh` with `instances` mediator instances, its state under
/// `target/NAME/prod`; started on creation, stopped on drop (also when a test fails). The
/// cluster and wallet stay for the next start.
pub struct Prod {
    pub dir: PathBuf,
    pub env_file: PathBuf,
    pub vars: HashMap<String, String>,
    instances: u8,
    _serial: MutexGuard<'static, ()>,
}

impl Prod {
    fn script(dir: &Path, instances: u8, args: &[&str]) -> Output {
        Command::new(repo().join("scripts/prod-stack.sh"))
            .args(args)
            .env("PROD_DIR", dir)
            .env("PROD_PORT", PORT.to_string())
            .env("PROD_INSTANCES", instances.to_string())
            .output()
            .expect("run scripts/prod-stack.sh")
    }

    /// Runs `scripts/prod-stack.sh ARGS` on this stack; panics with its stderr on failure.
    pub fn control(&self, args: &[&str]) {
        let out = Self::script(&self.dir, self.instances, args);
        assert!(
            out.status.success(),
            "prod-stack.sh {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn start(name: &str, instances: u8) -> Prod {
        let serial = crate::stack::serial();
        let dir = repo().join("target").join(name).join("prod");
        std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
        let _ = Self::script(&dir, instances, &["stop"]);
        let out = Self::script(&dir, instances, &["start"]);
        assert!(
            out.status.success(),
            "prod stack did not start:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let env_file = dir.join("stack.env");
        let vars = std::fs::read_to_string(&env_file)
            .unwrap()
            .lines()
            .filter_map(|l| {
                l.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect();
        Prod {
            dir,
            env_file,
            vars,
            instances,
            _serial: serial,
        }
    }

    /// `GET path` on the mediator's admin API (instance 1's, plain http, beside nginx).
    pub fn mediator(&self, path: &str) -> Value {
        self.admin(1, path)
    }

    /// `GET path` on instance `n`'s admin API (plain http, beside nginx).
    pub fn admin(&self, n: u8, path: &str) -> Value {
        let url = format!("{}{}", self.vars[&format!("MEDIATOR_{n}_ADMIN_URL")], path);
        let key = format!("X-API-Key: {}", self.vars["MEDIATOR_ADMIN_API_KEY"]);
        let out = Command::new("curl")
            .args(["-sf", "-H", &key, &url])
            .output()
            .unwrap();
        assert!(out.status.success(), "GET {url} failed");
        serde_json::from_slice(&out.stdout).unwrap()
    }

    pub fn granted(&self) -> usize {
        count(&self.mediator("/mediation/requests?state=granted&limit=10000"))
    }

    pub fn keys(&self) -> usize {
        count(&self.mediator("/mediation/keylists?role=server&limit=10000"))
    }

    /// `acaload run plans/edge-agents.yaml` with this stack's env file: AGENTS agents over 15 s,
    /// draining, quiet; `sets` are more `--set`s (a later one wins).
    pub fn edge_plan(&self, out: &Path, sets: &[&str]) -> Command {
        let mut cmd = Command::new(bin());
        cmd.current_dir(repo())
            .args([
                "run",
                "plans/edge-agents.yaml",
                "-q",
                "--seed",
                "7",
                "--out",
            ])
            .arg(out)
            .arg("--env-file")
            .arg(&self.env_file);
        let users = AGENTS.to_string();
        let shape = [
            "STEP_TIME_SECS=5",
            &format!("USERS_ADDED_PER_STEP={users}"),
            &format!("USER_LIMIT={users}"),
            "TIME_LIMIT_MINS=0.25",
            // As in the lab edge test: ACA-Py's undelivered queue is drained (issue 2111).
            "DRAIN_PINGS=true",
        ]
        .map(String::from);
        for s in shape.iter().map(String::as_str).chain(sets.iter().copied()) {
            cmd.args(["--set", s]);
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd
    }

    /// Runs the edge plan to its end and checks what the mediator and the results say:
    /// every agent granted, keys there during the run and gone after, every message
    /// delivered exactly once (one instance: no message can reach the wrong one).
    pub fn run_edge_and_check(&self, what: &str, mut cmd: Command, out: &Path) {
        let (granted_before, keys_before) = (self.granted(), self.keys());
        let mut run = cmd.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut most_keys = keys_before;
        while run.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "{what}: acaload ran over 120 s");
            most_keys = most_keys.max(self.keys());
            std::thread::sleep(Duration::from_millis(300));
        }
        let done = run.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&done.stdout);
        let stderr = String::from_utf8_lossy(&done.stderr);
        assert_eq!(done.status.code(), Some(0), "{what}:\n{stdout}\n{stderr}");
        assert_eq!(
            self.granted() - granted_before,
            AGENTS as usize,
            "{what}: grants"
        );
        assert!(
            most_keys - keys_before >= AGENTS as usize,
            "{what}: keylist entries during the run: {most_keys} (start {keys_before})"
        );
        assert_eq!(
            self.keys(),
            keys_before,
            "{what}: keys left after the teardown"
        );
        let r = results(out);
        let stat = |phase: &str, kind: &str, name: &str| crate::stack::stat(&r, phase, kind, name);
        assert_eq!(r["run"]["outcome"], "completed", "{what}");
        assert_eq!(r["total"]["failures"], 0, "{what}: {stdout}");
        assert_eq!(r["users"]["setup_ok"], AGENTS, "{what}");
        assert_eq!(
            stat("setup", "http", "connect to mediator")["count"],
            AGENTS,
            "{what}: sockets opened"
        );
        let sent = stat("tasks", "http", "message peer")["count"].as_u64();
        let delivered = stat("tasks", "event", "message delivered through mediator");
        assert!(sent > Some(10), "{what}: messages sent: {sent:?}");
        assert_eq!(
            (delivered["count"].as_u64(), delivered["failures"].as_u64()),
            (sent, Some(0)),
            "{what}: every message arrived"
        );
        assert_eq!(
            r["events"]["duplicates"], 0,
            "{what}: a message arrived twice"
        );
        assert_eq!(
            stat("teardown", "http", "remove keys and disconnect")["count"],
            AGENTS,
            "{what}"
        );
    }
}

impl Drop for Prod {
    fn drop(&mut self) {
        let out = Self::script(&self.dir, self.instances, &["stop"]);
        if !out.status.success() {
            eprintln!(
                "prod stack stop failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
