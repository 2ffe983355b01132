//! The watched agents by load level: each level of the shape gets its agents' CPU use,
//! most sessions and most memory from the gauge samples taken while it ran, so a report
//! shows how the system under test coped with each load next to the latencies.

use crate::results::{AgentGauges, GaugeSample, LevelAgent, LoadLevel};

/// `levels`, each with its summary of every watched agent.
pub fn by_level(mut levels: Vec<LoadLevel>, agents: &[AgentGauges]) -> Vec<LoadLevel> {
    for l in &mut levels {
        l.agents = agents
            .iter()
            .map(|a| summary(&a.name, &a.samples, l.from_secs, l.to_secs))
            .collect();
    }
    levels
}

/// One agent over `[from, to]` seconds since the start.
fn summary(name: &str, samples: &[GaugeSample], from: f64, to: f64) -> LevelAgent {
    let inside: Vec<&GaugeSample> = samples
        .iter()
        .filter(|s| s.t >= from && s.t <= to)
        .collect();
    let cpu: Vec<(f64, f64)> = inside
        .iter()
        .filter_map(|s| Some((s.t, s.cpu_secs?)))
        .collect();
    // A restarted agent's counter starts again from zero: a drop is not negative use,
    // and the time across it is left out too.
    let (used, secs) = cpu
        .windows(2)
        .filter(|w| w[1].1 >= w[0].1)
        .fold((0.0, 0.0), |(u, s), w| {
            (u + w[1].1 - w[0].1, s + w[1].0 - w[0].0)
        });
    LevelAgent {
        name: name.to_string(),
        cpu_pct: (secs > 0.0).then(|| 100.0 * used / secs),
        sessions: inside.iter().filter_map(|s| s.in_sessions).max(),
        rss_mb: inside
            .iter()
            .filter_map(|s| s.rss_mb)
            .fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.max(r)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: f64, cpu: f64, sessions: u64) -> GaugeSample {
        GaugeSample {
            t,
            cpu_secs: Some(cpu),
            in_sessions: Some(sessions),
            rss_mb: Some(100.0 + t),
            ..Default::default()
        }
    }

    #[test]
    fn each_level_gets_its_own_samples_and_a_restart_is_not_negative_cpu() {
        let agents = [AgentGauges {
            name: "mediator".into(),
            samples: vec![
                sample(0.5, 10.0, 1),
                sample(1.5, 10.5, 3),
                sample(2.5, 11.0, 2),
                // The mediator restarted between 2.5 s and 3.5 s.
                sample(3.5, 0.25, 0),
                sample(4.5, 1.25, 5),
            ],
        }];
        let level = |from: f64, to: f64| {
            LoadLevel {
            from_secs: from,
            to_secs: to,
            ..serde_json::from_value(serde_json::json!({
                "target_users": 1, "from_secs": 0.0, "to_secs": 0.0, "requests": 0,
                "failures": 0, "per_second": 0.0,
                "latency_ms": {"min":0.0,"mean":0.0,"p50":0.0,"p90":0.0,"p95":0.0,"p99":0.0,"max":0.0},
                "histogram": "", "events": 0, "event_failures": 0,
                "event_latency_ms": {"min":0.0,"mean":0.0,"p50":0.0,"p90":0.0,"p95":0.0,"p99":0.0,"max":0.0},
                "event_histogram": ""
            }))
            .unwrap()
        }
        };
        let levels = by_level(vec![level(0.0, 3.0), level(3.0, 5.0)], &agents);
        assert_eq!(
            levels[0].agents,
            vec![LevelAgent {
                name: "mediator".into(),
                cpu_pct: Some(50.0),
                sessions: Some(3),
                rss_mb: Some(102.5),
            }]
        );
        assert_eq!(levels[1].agents[0].cpu_pct, Some(100.0));
        assert_eq!(levels[1].agents[0].sessions, Some(5));
        // Across the restart: 2 CPU-s over the 3 s without a drop (0.5→2.5, 3.5→4.5).
        let whole = by_level(vec![level(0.0, 5.0)], &agents);
        let pct = whole[0].agents[0].cpu_pct.unwrap();
        assert!((pct - 200.0 / 3.0).abs() < 1e-9, "{pct}");
    }
}
