//! Agent gauges without ELK: `GET /status` of each watched agent (the conductor's
//! session, encode, deliver and task counters) sampled into the results time series, and —
//! for an agent on this machine with a `pid_file` — its process's CPU time and resident
//! memory from `/proc` (a process without an admin API, as a Credo mediator, by that alone).

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::measure::metrics::{Event, Recorder};
use crate::plan::resolve::WatchSettings;
use crate::results::GaugeSample;

/// Samples one agent until stopped. A failed sample is recorded as such, not skipped.
/// `client` is the agent's own (its base URL and API key only: never the target's headers);
/// `None` for a process watched by its `pid_file` alone.
pub async fn sample(
    w: WatchSettings,
    client: Option<crate::engine::http::Client>,
    recorder: Recorder,
    stop: CancellationToken,
) {
    let timeout = w.interval.max(Duration::from_secs(1));
    // The first sample at once, then one per interval. Each sample's time is recorded with
    // it, so rates stay exact; a sample late by a whole interval skips the missed ones
    // instead of bunching them.
    let mut every = tokio::time::interval(w.interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.cancelled() => return,
        }
        let at = Instant::now();
        let mut sample = match &client {
            Some(client) => status(client, timeout).await,
            None => GaugeSample::default(),
        };
        if let Some(file) = &w.pid_file {
            match process(file) {
                Ok(p) => {
                    sample.cpu_secs = Some(p.cpu_secs);
                    sample.rss_mb = Some(p.rss_mb);
                }
                Err(e) if sample.error.is_none() => sample.error = Some(e),
                Err(_) => {}
            }
        }
        recorder.send(Event::Gauge {
            agent: w.name.clone(),
            at,
            sample,
        });
    }
}

/// One `GET /status` of an agent's admin API, as gauges (or why there are none).
async fn status(client: &crate::engine::http::Client, timeout: Duration) -> GaugeSample {
    match client.get("/status", timeout).await {
        Ok((status, body)) if status.is_success() => {
            match serde_json::from_slice::<serde_json::Value>(&body) {
                Ok(v) => parse(&v),
                Err(e) => GaugeSample {
                    error: Some(format!("not JSON: {e}")),
                    ..Default::default()
                },
            }
        }
        Ok((status, _)) => GaugeSample {
            error: Some(format!("status {}", status.as_u16())),
            ..Default::default()
        },
        Err(e) => GaugeSample {
            error: Some(e.reason()),
            ..Default::default()
        },
    }
}

/// CPU time and resident memory of a local process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Process {
    /// User + system CPU seconds since the process started (all its threads).
    pub cpu_secs: f64,
    pub rss_mb: f64,
}

/// Reads the process whose id `pid_file` holds. The error is one line that names the file.
pub fn process(pid_file: &std::path::Path) -> Result<Process, String> {
    let shown = pid_file.display();
    let text = std::fs::read_to_string(pid_file).map_err(|e| format!("pid file {shown}: {e}"))?;
    let pid: u32 = text
        .trim()
        .parse()
        .map_err(|_| format!("pid file {shown} holds `{}`, not a process id", text.trim()))?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|_| format!("process {pid} (from {shown}) is not running on this machine"))?;
    parse_stat(&stat, rustix::param::clock_ticks_per_second(), page_size())
        .ok_or_else(|| format!("/proc/{pid}/stat: unexpected format"))
}

fn page_size() -> u64 {
    rustix::param::page_size() as u64
}

/// `utime`, `stime` (fields 14, 15) and `rss` (field 24) of `/proc/PID/stat`; fields are
/// counted after the command name, which is in parentheses and may hold spaces.
fn parse_stat(stat: &str, ticks_per_sec: u64, page: u64) -> Option<Process> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i - 3)?.parse::<u64>().ok();
    Some(Process {
        cpu_secs: (n(14)? + n(15)?) as f64 / ticks_per_sec.max(1) as f64,
        rss_mb: (n(24)? * page) as f64 / (1024.0 * 1024.0),
    })
}

/// Reads the conductor counters of ACA-Py's `GET /status`.
pub fn parse(status: &serde_json::Value) -> GaugeSample {
    let c = &status["conductor"];
    let n = |k: &str| c[k].as_u64();
    GaugeSample {
        t: 0.0,
        in_sessions: n("in_sessions"),
        out_encode: n("out_encode"),
        out_deliver: n("out_deliver"),
        task_active: n("task_active"),
        task_pending: n("task_pending"),
        task_done: n("task_done"),
        task_failed: n("task_failed"),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_acapy_status() {
        let v = serde_json::json!({"version":"1.7.0","label":"multi","conductor":{"in_sessions":0,"out_encode":1,"out_deliver":2,"task_active":1,"task_done":136,"task_failed":4,"task_pending":0}});
        let g = parse(&v);
        assert_eq!(
            (g.out_deliver, g.task_done, g.task_failed, g.task_pending),
            (Some(2), Some(136), Some(4), Some(0))
        );
    }

    #[test]
    fn reads_cpu_and_memory_of_a_process() {
        let stat = "4242 (python3 aca (py)) S 1 4242 4242 0 -1 4194560 5000 0 0 0 1234 566 0 0 20 0 7 0 900 800000000 25600 18446744073709551615";
        assert_eq!(
            parse_stat(stat, 100, 4096),
            Some(Process {
                cpu_secs: 18.0,
                rss_mb: 100.0
            })
        );
        let me = std::env::temp_dir().join(format!("acaload-gauge-{}.pid", std::process::id()));
        std::fs::write(&me, std::process::id().to_string()).unwrap();
        let p = process(&me).unwrap();
        assert!(p.rss_mb > 1.0 && p.cpu_secs >= 0.0, "{p:?}");
        std::fs::write(&me, "4194304999").unwrap();
        assert_eq!(
            process(&me).unwrap_err(),
            format!(
                "process 4194304999 (from {}) is not running on this machine",
                me.display()
            )
        );
        std::fs::write(&me, "mediator").unwrap();
        assert!(
            process(&me)
                .unwrap_err()
                .ends_with("holds `mediator`, not a process id")
        );
        std::fs::remove_file(&me).unwrap();
    }
}
