//! `plans/edge-agents.yaml` against a real Credo-TS 0.5.19 mediator (`scripts/credo-stack.sh`,
//! ports 4800/4801), once per pickup strategy with the forwarding strategy that serves it:
//! implicit with Credo's default `DirectDelivery`, `v2` (polled) with `QueueOnly`, `v2_live` with
//! `QueueAndLiveModeDelivery`. The WebSocket URL comes from the mediator's invitation, the
//! preflight passes on Credo's 404, every agent is granted and paired, every message arrives
//! exactly once, every agent removes its keys, nothing fails; the mediator's own log of what
//! it received shows the pickup protocol was the one used.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::stack::{bin, repo, results, stat};

const AGENTS: u64 = 6;

/// A Credo mediator, its state under `target/NAME`; stopped on drop.
pub struct Credo {
    pub dir: PathBuf,
    env: Vec<(String, String)>,
    serial: Option<std::sync::MutexGuard<'static, ()>>,
}

impl Credo {
    fn script(dir: &Path, env: &[(String, String)], args: &[&str]) -> Output {
        Command::new(repo().join("scripts/credo-stack.sh"))
            .args(args)
            .env("CREDO_DIR", dir)
            // the install is shared with scripts/test.sh's (node_modules under .credo/node)
            .env("CREDO_NODE_DIR", repo().join(".credo/node"))
            .env("CREDO_HTTP_PORT", "4800")
            .env("CREDO_WS_PORT", "4801")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("run scripts/credo-stack.sh")
    }

    /// Starts a mediator with `forwarding` (Credo's `messageForwardingStrategy`) and the
    /// extra environment `env` (e.g. `CREDO_MESSAGE_LOG`).
    pub fn up(name: &str, forwarding: &str, env: &[(&str, &str)]) -> Credo {
        let serial = crate::stack::serial();
        Self::start(name, forwarding, env, serial)
    }

    /// [`up`](Self::up) for a test that holds the real-stack lock already.
    pub fn start(
        name: &str,
        forwarding: &str,
        env: &[(&str, &str)],
        serial: std::sync::MutexGuard<'static, ()>,
    ) -> Credo {
        let dir = repo().join("target").join(name);
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.push(("CREDO_FORWARDING".into(), forwarding.into()));
        let _ = Self::script(&dir, &env, &["down"]);
        let out = Self::script(&dir, &env, &["up"]);
        assert!(
            out.status.success(),
            "credo mediator did not start:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Credo {
            dir,
            env,
            serial: Some(serial),
        }
    }

    pub fn env_file(&self) -> PathBuf {
        self.dir.join("stack.env")
    }

    /// The mediator's process id.
    pub fn pid(&self) -> String {
        std::fs::read_to_string(self.dir.join("stack/mediator.pid"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// Stops the mediator and hands back the lock.
    pub fn stop(mut self) -> std::sync::MutexGuard<'static, ()> {
        let _ = Self::script(&self.dir, &self.env, &["down"]);
        self.serial.take().expect("held until stopped")
    }
}

impl Drop for Credo {
    fn drop(&mut self) {
        if self.serial.is_some() {
            let _ = Self::script(&self.dir, &self.env, &["down"]);
        }
    }
}

/// Runs the edge plan against a Credo mediator with `pickup` and checks the run: every agent
/// granted and paired, every message delivered exactly once, keys removed, nothing failed.
/// Returns the mediator's log of what it received, one JSON line each.
fn edge_plan_against_credo(forwarding: &str, pickup: &str) -> Vec<serde_json::Value> {
    let name = format!("credo-{pickup}");
    let log = repo().join("target").join(format!("{name}-messages.jsonl"));
    let _ = std::fs::remove_file(&log);
    let credo = Credo::up(
        &name,
        forwarding,
        &[("CREDO_MESSAGE_LOG", log.to_str().unwrap())],
    );
    let env = std::fs::read_to_string(credo.env_file()).unwrap();
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
        .arg(credo.env_file())
        .args(["--set", &format!("PICKUP={pickup}")])
        .args(["--set", "POLL_INTERVAL=1s"])
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
        (sent, Some(0)),
        "every message delivered"
    );
    assert_eq!(r["events"]["duplicates"], 0, "none twice");
    // Credo's mediator has no admin API: it is watched by its pid file alone
    let agents = r["agents"].as_array().unwrap();
    let mediator = agents.iter().find(|a| a["name"] == "mediator").unwrap();
    let samples = mediator["samples"].as_array().unwrap();
    assert!(
        samples
            .iter()
            .any(|s| s["cpu_secs"].is_number() && s["rss_mb"].is_number())
    );
    assert_eq!(
        stat("teardown", "http", "remove keys and disconnect")["count"],
        AGENTS
    );
    drop(credo);
    std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// How many messages of `name` (the last part of the type) the mediator received.
fn received(log: &[serde_json::Value], name: &str, transport: &str) -> usize {
    log.iter()
        .filter(|l| l["type"].as_str().unwrap().ends_with(&format!("/{name}")))
        .filter(|l| l["transport"] == transport)
        .count()
}

#[test]
#[ignore = "starts a real Credo mediator (scripts/test.sh runs it)"]
fn edge_agents_pick_up_implicitly_from_a_credo_mediator() {
    let log = edge_plan_against_credo("DirectDelivery", "implicit");
    // as a Credo wallet: the request on its socket, a trust ping there after the grant
    assert_eq!(received(&log, "mediate-request", "ws"), AGENTS as usize);
    assert_eq!(received(&log, "status-request", "http"), 0);
}

#[test]
#[ignore = "starts a real Credo mediator (scripts/test.sh runs it)"]
fn edge_agents_poll_a_credo_mediator_with_pickup_2() {
    let log = edge_plan_against_credo("QueueOnly", "v2");
    // polled every second by HTTP, as Credo's PickUpV2 does; no socket at all
    assert!(received(&log, "status-request", "http") > 3 * AGENTS as usize);
    assert!(received(&log, "delivery-request", "http") > 0);
    assert!(received(&log, "messages-received", "http") > 0);
    assert!(log.iter().all(|l| l["transport"] == "http"), "no socket");
}

#[test]
#[ignore = "starts a real Credo mediator (scripts/test.sh runs it)"]
fn edge_agents_take_live_deliveries_from_a_credo_mediator() {
    let log = edge_plan_against_credo("QueueAndLiveModeDelivery", "v2_live");
    assert_eq!(received(&log, "status-request", "http"), AGENTS as usize);
    assert_eq!(
        received(&log, "live-delivery-change", "ws"),
        AGENTS as usize,
        "live mode on each agent's socket"
    );
    assert!(received(&log, "messages-received", "http") > 10);
    assert_eq!(
        received(&log, "delivery-request", "http"),
        0,
        "nothing queued"
    );
    // the queue depth each status gave, summed over the agents: a gauge
    let r = results(&repo().join("target/credo-v2_live/credo.json"));
    let agents = r["agents"].as_array().unwrap();
    let queue = agents.iter().find(|a| a["name"] == "pickup queue").unwrap();
    let depths: Vec<u64> = queue["samples"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["queued"].as_u64())
        .collect();
    assert!(
        !depths.is_empty() && depths.iter().all(|d| *d < AGENTS),
        "{depths:?}"
    );
}
