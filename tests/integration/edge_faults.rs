//! Edge agents through a mediator restart, on the real stack (`Ports(4700)`, mediator only):
//! the agents' sockets drop while senders go on posting (the mediator queues those messages in
//! memory), the mediator is killed and restarted on its wallet, and the agents reconnect with
//! Credo's backoff and keep their connections; then once more with the sockets open, so the
//! mediator's death is what drops them. Counted with numbers: two reconnects per agent,
//! sends refused while the mediator was down, the queued messages lost by their reason,
//! deliveries after the restart, keys removed by the teardown, exit 1 by the thresholds.
//! Synchronised on the run's live metrics, never on sleeps.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::proxy::Proxy;
use crate::stack::{Ports, Stack, results, server_keys_on_mediator, stat, wait_until};

const AGENTS: u64 = 6;
const PORTS: Ports = Ports(4700);
/// The agents' WebSocket goes through the proxy on this port to the mediator's (`4702`).
const PROXY: &str = "127.0.0.1:4703";
const METRICS: &str = "127.0.0.1:4720";
/// Messages certainly posted while the agents' sockets are cut: the test waits for these
/// beyond one per agent (a POST in flight at the cut may still have been delivered).
const QUEUED: f64 = 3.0;

/// One series of a step in the run's live metrics: `count` (samples) or `failures`.
fn live(step: &str, kind: &str, series: &str) -> f64 {
    let out = Command::new("curl")
        .args(["-sf", &format!("http://{METRICS}/metrics")])
        .output()
        .unwrap();
    let labels = format!("kind=\"{kind}\",step=\"{step}\"");
    let name = match series {
        "count" => "acaload_step_latency_seconds_count",
        _ => "acaload_step_failures_total",
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with(name) && l.contains(&labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Samples of a step that did not fail.
fn live_ok(step: &str, kind: &str) -> f64 {
    live(step, kind, "count") - live(step, kind, "failures")
}

fn failures(r: &Value, step: &str) -> Vec<(String, u64)> {
    r["failures"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["name"] == step)
        .map(|f| {
            (
                f["reason"].as_str().unwrap().to_string(),
                f["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn with_reason(groups: &[(String, u64)], reason: &str) -> u64 {
    groups
        .iter()
        .filter(|(r, _)| r.starts_with(reason))
        .map(|g| g.1)
        .sum()
}

#[test]
#[ignore = "starts real ACA-Py agents (scripts/test.sh runs it)"]
fn edge_agents_reconnect_across_a_mediator_restart() {
    let stack = Stack::mediator_only("edge-faults", PORTS);
    let keys_before = server_keys_on_mediator(&stack);
    let upstream: SocketAddr = format!("127.0.0.1:{}", PORTS.0 + 2).parse().unwrap();
    let proxy = Proxy::start(PROXY.parse().unwrap(), upstream);
    let out = stack.dir.join("edge-faults.json");
    let mut run = stack
        .acaload(&[
            "run",
            "plans/edge-agents.yaml",
            "-q",
            "--out",
            out.to_str().unwrap(),
            "--metrics",
            METRICS,
        ])
        .args(["--set", &format!("MEDIATOR_WS_URL=ws://{PROXY}")])
        .args(["--set", "STEP_TIME_SECS=5", "--set", "SPAWN_PCT=1"])
        .args(["--set", &format!("USERS_ADDED_PER_STEP={AGENTS}")])
        .args(["--set", &format!("USER_LIMIT={AGENTS}")])
        .args(["--set", "TIME_LIMIT_MINS=2"])
        // Draining: every message that reaches the mediator while a socket is up arrives, so
        // what is lost here is what the restart lost (as Credo, bursts can stay queued too).
        .args(["--set", "DRAIN_PINGS=true"])
        // The faults stall deliveries on purpose: the plan's stop at the mediator's limit
        // (delivery p95 of a load level) must not end this run early.
        .args(["--set", "ABORT_DELIVERY_P95=1h"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    wait_until(
        "every agent connected to its peer",
        Duration::from_secs(60),
        || live("peer connection active", "poll", "count") >= AGENTS as f64,
    );
    wait_until("a delivery", Duration::from_secs(30), || {
        live_ok("message delivered through mediator", "event") >= 1.0
    });

    // 1. Every socket drops (the mediator keeps running): messages posted now are queued in
    //    the mediator's memory for recipients that are not connected.
    //    A POST in flight at the cut (at most one per agent) may still have been delivered.
    let cut = Instant::now();
    proxy.cut();
    let posted_before = live_ok("message peer", "http");
    wait_until(
        "messages posted while the sockets are down",
        Duration::from_secs(60),
        || live_ok("message peer", "http") >= posted_before + QUEUED + AGENTS as f64,
    );
    // 2. The mediator dies (its queue with it) and comes back on the same wallet; the agents'
    //    attempts meanwhile reach nothing behind the proxy.
    stack.control("kill", "mediator");
    let killed = cut.elapsed();
    let queued = live_ok("message peer", "http") - posted_before;
    proxy.resume();
    stack.control("restart", "mediator");
    let restarted = cut.elapsed();

    // 3. Every agent reconnects and associates its new socket; messages go through again.
    wait_until("every agent reconnected", Duration::from_secs(60), || {
        live("reconnected to mediator", "poll", "count") >= AGENTS as f64
    });
    let reconnected = cut.elapsed();
    let delivered_then = live_ok("message delivered through mediator", "event");
    wait_until(
        "deliveries after the restart",
        Duration::from_secs(30),
        || live_ok("message delivered through mediator", "event") >= delivered_then + AGENTS as f64,
    );

    // 4. Again with the sockets open: this time the mediator's death drops them.
    let reconnects_before = live("reconnected to mediator", "poll", "count");
    let second = Instant::now();
    stack.control("kill", "mediator");
    let killed_again = second.elapsed();
    stack.control("restart", "mediator");
    let restarted_again = second.elapsed();
    wait_until(
        "every agent reconnected again",
        Duration::from_secs(60),
        || live("reconnected to mediator", "poll", "count") >= reconnects_before + AGENTS as f64,
    );
    let delivered_then = live_ok("message delivered through mediator", "event");
    wait_until(
        "deliveries after the second restart",
        Duration::from_secs(30),
        || live_ok("message delivered through mediator", "event") >= delivered_then + AGENTS as f64,
    );

    let status = run.wait().unwrap();
    let mut err = String::new();
    if let Some(mut e) = run.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    assert!(!err.contains("panicked"), "acaload panicked:\n{err}");
    let r = results(&out);
    drop(proxy);

    // Reconnects: one per agent (each had a socket), timed from the drop; none given up.
    let reconnects = stat(&r, "tasks", "poll", "reconnected to mediator");
    let (count, failed) = (
        reconnects["count"].as_u64().unwrap(),
        reconnects["failures"].as_u64().unwrap(),
    );
    let (min, max) = (
        reconnects["latency_ms"]["min"].as_f64().unwrap_or(0.0),
        reconnects["latency_ms"]["max"].as_f64().unwrap(),
    );
    eprintln!(
        "mediator back {:.1} s after the cut, every agent reconnected by {:.1} s; second restart \
         {:.1} s; {count} reconnects, {failed} given up, time to reconnect {:.0}–{:.0} ms",
        restarted.as_secs_f64(),
        reconnected.as_secs_f64(),
        restarted_again.as_secs_f64(),
        min,
        max
    );
    assert!(count >= 2 * AGENTS, "reconnects: {count}");
    assert_eq!(failed, 0, "an agent gave up reconnecting");
    // Nobody is back while the way to the mediator was cut or it was dead; Credo's backoff
    // waits at most about as long again as the outage lasted (100 ms doubling: the next
    // attempt after D comes before 2D).
    let down = killed.min(killed_again);
    assert!(
        min >= down.as_millis() as f64,
        "reconnected in {min} ms, while the way to the mediator was certainly down ({down:?})"
    );
    let longest = restarted.max(restarted_again);
    assert!(
        max <= 2.0 * longest.as_millis() as f64 + 5_000.0,
        "slowest reconnect {max} ms for outages up to {longest:?}"
    );

    // What the restart lost: every message posted while the sockets were down, counted
    // under its own reason; every loss has a reason and the groups add up.
    let delivered = stat(&r, "tasks", "event", "message delivered through mediator");
    let lost = delivered["failures"].as_u64().unwrap();
    let groups = failures(&r, "message delivered through mediator");
    let dropped = with_reason(
        &groups,
        "lost: the peer's socket to the mediator dropped before it arrived",
    );
    let timed_out = with_reason(&groups, "lost: not at the peer's socket within");
    eprintln!(
        "messages: {} sent, {} delivered, {lost} lost ({dropped} across the dropped sockets, \
         {timed_out} timed out); {queued} posted while the sockets were down",
        stat(&r, "tasks", "http", "message peer")["count"],
        delivered["count"].as_u64().unwrap() - lost,
    );
    assert!(
        dropped as f64 >= queued - AGENTS as f64 && dropped as f64 >= QUEUED,
        "messages the mediator held when it restarted: {groups:?}, {queued} posted"
    );
    assert_eq!(
        dropped + timed_out,
        lost,
        "every loss has a reason: {groups:?}"
    );
    assert_eq!(
        with_reason(
            &failures(&r, "message delivered through mediator"),
            "lost: the peer's socket closed"
        ),
        0
    );

    // Sends while the mediator was down failed at once, as refused; every failure has a reason.
    let sends = failures(&r, "message peer");
    eprintln!("failed sends: {sends:?}");
    assert!(
        with_reason(&sends, "forward POST failed: connection") >= 1,
        "a send while the mediator was down: {sends:?}"
    );
    crate::faults::failures_add_up(&r);

    // The connections survived the restart: the teardown removed every key from the
    // restarted mediator's keylist over the reconnected sockets.
    assert_eq!(r["run"]["outcome"], "completed");
    assert_eq!(r["users"]["setup_ok"], AGENTS);
    let teardown = stat(&r, "teardown", "http", "remove keys and disconnect");
    assert_eq!(
        (teardown["count"].as_u64(), teardown["failures"].as_u64()),
        (Some(AGENTS), Some(0))
    );
    assert_eq!(server_keys_on_mediator(&stack), keys_before, "keys left");
    // Thresholds: `error_rate: 0.0` fails, so the run exits 1.
    let verdicts = r["thresholds"].as_array().unwrap();
    assert!(
        verdicts.iter().any(|v| v["passed"] == false),
        "{verdicts:?}"
    );
    assert_eq!(status.code(), Some(1), "{err}");
}
