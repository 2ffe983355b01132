//! The report's charts: users, throughput, latency over time, agent gauges, percentile curves.

use hdrhistogram::Histogram;
use serde::Serialize;

use super::svg::{ChartView, Line, Spec, chart};

use crate::output::report::{kind_label, ms, phase_name};
use crate::results::{Results, StatKind, StepStats};

pub(super) const BLUE: &str = "#2563eb";
pub(super) const ORANGE: &str = "#ea8a0c";
pub(super) const RED: &str = "#dc2626";
pub(super) const GREY: &str = "#6b7280";
pub(super) const PALETTE: [&str; 8] = [
    "#2563eb", "#ea8a0c", "#16a34a", "#dc2626", "#7c3aed", "#0891b2", "#be185d", "#854d0e",
];

#[derive(Serialize)]
pub(super) struct StepCard {
    pub(super) kind: String,
    pub(super) name: String,
    pub(super) phase: &'static str,
    pub(super) summary: String,
    pub(super) failed: bool,
    pub(super) over_time: ChartView,
    pub(super) distribution: ChartView,
}

pub(super) fn users_chart(results: &Results, time_max: f64) -> ChartView {
    let tl = &results.timeline;
    // The target goes last, dashed, so it shows where the two coincide.
    let lines = vec![
        Line::new(
            "running users",
            BLUE,
            tl.iter().map(|s| (s.t as f64, s.users as f64)),
        ),
        Line::new(
            "target users",
            GREY,
            tl.iter().map(|s| (s.t as f64, s.target_users as f64)),
        )
        .dashed(),
    ];
    chart(
        "Users",
        "Users the load shape asked for and users running, at the end of each second.",
        Spec::time(time_max, "users", true).size(560.0, 240.0),
        lines,
    )
}

pub(super) fn throughput_chart(results: &Results, time_max: f64) -> ChartView {
    let duration = results.run.duration_secs;
    // The last second is usually cut short: rate over the part that ran, or left out.
    let rate = |t: u64, n: u64| {
        let width = (duration - t as f64).clamp(0.0, 1.0);
        (width >= 0.25).then(|| (t as f64, n as f64 / width))
    };
    let tl = &results.timeline;
    let lines = vec![
        Line::new(
            "requests/s",
            BLUE,
            tl.iter().filter_map(|s| rate(s.t, s.requests)),
        ),
        Line::new(
            "failures/s",
            RED,
            tl.iter().filter_map(|s| rate(s.t, s.failures)),
        ),
    ];
    chart(
        "Throughput",
        "HTTP requests and failed steps per second of the run.",
        Spec::time(time_max, "per s", false).size(560.0, 240.0),
        lines,
    )
}

pub(super) fn overlay_chart(
    results: &Results,
    kind: StatKind,
    title: &str,
    caption: &str,
) -> Option<ChartView> {
    let stats: Vec<&StepStats> = results.stats.iter().filter(|s| s.kind == kind).collect();
    if stats.is_empty() {
        return None;
    }
    let lines = stats
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let label = if stats.iter().filter(|o| o.name == s.name).count() > 1 {
                format!("{} ({})", s.name, phase_name(s.phase))
            } else {
                s.name.clone()
            };
            Line::new(label, PALETTE[i % PALETTE.len()], nines_points(s)).gap(f64::INFINITY)
        })
        .collect();
    Some(chart(
        title,
        caption,
        Spec::nines().size(560.0, 240.0),
        lines,
    ))
}

pub(super) fn agent_chart(agent: &crate::results::AgentGauges, time_max: f64) -> ChartView {
    type Get = fn(&crate::results::GaugeSample) -> Option<u64>;
    let gauges: [(&str, Get); 5] = [
        ("out_deliver", |s| s.out_deliver),
        ("out_encode", |s| s.out_encode),
        ("task_active", |s| s.task_active),
        ("task_pending", |s| s.task_pending),
        ("in_sessions", |s| s.in_sessions),
    ];
    let lines = gauges
        .iter()
        .enumerate()
        .map(|(i, (label, get))| {
            Line::new(
                *label,
                PALETTE[i],
                agent
                    .samples
                    .iter()
                    .filter_map(|s| get(s).map(|v| (s.t, v as f64))),
            )
            .gap(2.5)
        })
        .filter(|l| !l.points.is_empty())
        .collect();
    let errors = agent.samples.iter().filter(|s| s.error.is_some()).count();
    let mut caption = format!(
        "ACA-Py /status conductor counters, {} sample{}",
        agent.samples.len(),
        plural(agent.samples.len() as u64)
    );
    if errors > 0 {
        caption.push_str(&format!(
            ", {errors} unreadable (gaps); first error: {}",
            agent
                .samples
                .iter()
                .find_map(|s| s.error.as_deref())
                .unwrap_or_default()
        ));
    }
    caption.push('.');
    chart(
        &agent.name,
        &caption,
        Spec::time(time_max, "count", true).size(560.0, 240.0),
        lines,
    )
}

pub(super) fn step_card(results: &Results, s: &StepStats, time_max: f64) -> StepCard {
    let per_second: Vec<_> = results
        .series
        .iter()
        .filter(|p| p.phase == s.phase && p.kind == s.kind && p.name == s.name)
        .collect();
    let over_time = chart(
        "Over time",
        "p50, p95 and p99 of each second",
        Spec::time(time_max, "ms", false),
        // Lower percentiles on top: with few samples they often coincide.
        vec![
            Line::new("p99", RED, per_second.iter().map(|p| (p.t as f64, p.p99))),
            Line::new(
                "p95",
                ORANGE,
                per_second.iter().map(|p| (p.t as f64, p.p95)),
            ),
            Line::new("p50", BLUE, per_second.iter().map(|p| (p.t as f64, p.p50))),
        ],
    );
    let distribution = chart(
        "Distribution",
        "latency by percentile",
        Spec::nines(),
        vec![Line::new("latency", BLUE, nines_points(s)).gap(f64::INFINITY)],
    );
    StepCard {
        kind: kind_label(s),
        name: s.name.clone(),
        phase: phase_name(s.phase),
        summary: format!(
            "{} sample{}, {} failed · median {} ms · p95 {} ms · max {} ms",
            s.count,
            plural(s.count),
            s.failures,
            ms(s.latency_ms.p50),
            ms(s.latency_ms.p95),
            ms(s.latency_ms.max)
        ),
        failed: s.failures > 0,
        over_time,
        distribution,
    }
}

/// Percentile curve of a step's histogram on the "nines" scale: x = -log10(1 - q),
/// so 0, 1, 2, 3 are the 0th, 90th, 99th and 99.9th percentiles.
pub(super) fn nines_points(s: &StepStats) -> Vec<(f64, f64)> {
    let Some(h) = crate::measure::histogram::decode(&s.histogram).filter(|h| !h.is_empty()) else {
        return Vec::new();
    };
    percentile_curve(&h)
}

pub(super) fn percentile_curve(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::new();
    for i in 0..=150 {
        let x = f64::from(i) * 0.02;
        let q = 1.0 - 10f64.powf(-x);
        let y = h.value_at_quantile(q) as f64 / 1000.0;
        // Plateaus need only their two ends.
        if out.len() >= 2 && out[out.len() - 1].1 == y && out[out.len() - 2].1 == y {
            out.pop();
        }
        out.push((x, y));
    }
    out
}

pub(super) fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}
