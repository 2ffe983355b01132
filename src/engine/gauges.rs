//! Agent gauges without ELK: `GET /status` of each watched agent (the conductor's
//! session, encode, deliver and task counters) sampled into the results time series.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::measure::metrics::{Event, Recorder};
use crate::plan::resolve::WatchSettings;
use crate::results::GaugeSample;

/// Samples one agent until stopped. A failed sample is recorded as such, not skipped.
pub async fn sample(
    w: WatchSettings,
    client: reqwest::Client,
    recorder: Recorder,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(w.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let url = format!("{}/status", w.url);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let at = Instant::now();
        let mut req = client
            .get(&url)
            .timeout(w.interval.max(Duration::from_secs(1)));
        if let Some(k) = &w.api_key {
            req = req.header("x-api-key", k);
        }
        let sample = match req.send().await {
            Ok(r) if r.status().is_success() => match r.json::<serde_json::Value>().await {
                Ok(v) => parse(&v),
                Err(e) => GaugeSample {
                    error: Some(format!("not JSON: {e}")),
                    ..Default::default()
                },
            },
            Ok(r) => GaugeSample {
                error: Some(format!("status {}", r.status().as_u16())),
                ..Default::default()
            },
            Err(e) => GaugeSample {
                error: Some(crate::engine::http::root_cause(&e)),
                ..Default::default()
            },
        };
        recorder.send(Event::Gauge {
            agent: w.name.clone(),
            at,
            sample,
        });
    }
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
        error: None,
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
}
