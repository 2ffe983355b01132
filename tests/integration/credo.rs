//! `plans/edge-agents.yaml` against a real Credo-TS 0.5.19 mediator (`scripts/credo-stack.sh`,
//! ports 4800/4801, Credo's default `DirectDelivery`, implicit pickup on the agents' sockets):
//! the WebSocket URL comes from the mediator's invitation, the preflight passes on Credo's 404,
//! every agent is granted and paired, every message arrives once, nothing fails.

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::stack::{bin, repo, results, stat};

const AGENTS: u64 = 6;

/// The Credo mediator, its state under `target/credo-e2e`; stopped on drop.
struct Credo {
    dir: PathBuf,
    _serial: std::sync::MutexGuard<'static, ()>,
}

impl Credo {
    fn script(dir: &std::path::Path, args: &[&str]) -> Output {
        Command::new(repo().join("scripts/credo-stack.sh"))
            .args(args)
            .env("CREDO_DIR", dir)
            // the install is shared with scripts/test.sh's (node_modules under .credo/node)
            .env("CREDO_NODE_DIR", repo().join(".credo/node"))
            .env("CREDO_HTTP_PORT", "4800")
            .env("CREDO_WS_PORT", "4801")
            .output()
            .expect("run scripts/credo-stack.sh")
    }

    fn up() -> Credo {
        let serial = crate::stack::serial();
        let dir = repo().join("target/credo-e2e");
        let _ = Self::script(&dir, &["down"]);
        let out = Self::script(&dir, &["up"]);
        assert!(
            out.status.success(),
            "credo mediator did not start:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Credo {
            dir,
            _serial: serial,
        }
    }
}

impl Drop for Credo {
    fn drop(&mut self) {
        let _ = Self::script(&self.dir, &["down"]);
    }
}

#[test]
#[ignore = "starts a real Credo mediator (scripts/test.sh runs it)"]
fn edge_agents_run_against_a_credo_mediator() {
    let credo = Credo::up();
    let env = std::fs::read_to_string(credo.dir.join("stack.env")).unwrap();
    assert!(
        !env.lines().any(|l| l.starts_with("MEDIATOR_WS_URL=")),
        "the socket's URL is the invitation's own: {env}"
    );
    let out = credo.dir.join("credo.json");
    let users = AGENTS.to_string();
    let done = Command::new(bin())
        .current_dir(repo())
        .args([
            "run",
            "plans/edge-agents.yaml",
            "-q",
            "--seed",
            "5",
            "--out",
        ])
        .arg(&out)
        .arg("--env-file")
        .arg(credo.dir.join("stack.env"))
        .args(["--set", "STEP_TIME_SECS=5"])
        .args(["--set", &format!("USERS_ADDED_PER_STEP={users}")])
        .args(["--set", &format!("USER_LIMIT={users}")])
        .args(["--set", "TIME_LIMIT_MINS=0.3"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&done.stdout);
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert_eq!(done.status.code(), Some(0), "{stdout}\n{stderr}");
    let r = results(&out);
    let stat = |phase: &str, kind: &str, name: &str| stat(&r, phase, kind, name);
    assert_eq!(r["total"]["failures"], 0, "{stdout}");
    assert_eq!(r["users"]["setup_ok"], AGENTS);
    assert_eq!(stat("setup", "poll", "mediation granted")["count"], AGENTS);
    let sent = stat("tasks", "http", "message peer")["count"].as_u64();
    let delivered = stat("tasks", "event", "message delivered through mediator");
    assert!(sent > Some(10), "messages sent: {sent:?}");
    assert_eq!(
        (delivered["count"].as_u64(), delivered["failures"].as_u64()),
        (sent, Some(0))
    );
    assert_eq!(r["events"]["duplicates"], 0);
    assert_eq!(
        stat("teardown", "http", "remove keys and disconnect")["count"],
        AGENTS
    );
}
