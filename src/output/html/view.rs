//! The page model: everything formatted here, so the template only lays it out.

use serde::Serialize;

use super::charts::{
    StepCard, agent_chart, overlay_chart, plural, step_card, throughput_chart, users_chart,
};
use super::svg::{ChartView, seconds};
use crate::output::report::{kind_label, ms, phase_name};
use crate::plan::Phase;
use crate::results::{Outcome, Results, StatKind, StepStats, Verdict};

#[derive(Serialize)]
pub(super) struct Page {
    pub(super) plan: PlanView,
    pub(super) run_id: String,
    pub(super) version: String,
    pub(super) schema_version: u32,
    pub(super) banner: Banner,
    pub(super) facts: Vec<(String, String)>,
    pub(super) figures: Vec<Figure>,
    pub(super) verdicts: Vec<VerdictRow>,
    pub(super) phases: Vec<PhaseTable>,
    pub(super) total: Row,
    pub(super) failures: Vec<FailureRow>,
    pub(super) levels: Vec<LevelRow>,
    pub(super) level_events: bool,
    /// Watched agents with CPU, session or memory figures in some level (the capacity columns).
    pub(super) level_agents: Vec<String>,
    pub(super) overview: Vec<ChartView>,
    pub(super) waits: Vec<ChartView>,
    pub(super) agents: Vec<ChartView>,
    pub(super) steps: Vec<StepCard>,
    pub(super) env: Vec<(String, String)>,
}

#[derive(Serialize)]
pub(super) struct PlanView {
    pub(super) name: String,
    pub(super) file: String,
    pub(super) description: Option<String>,
    pub(super) shape: String,
}

#[derive(Serialize)]
pub(super) struct Banner {
    /// CSS class: `pass`, `fail` or `stopped`.
    pub(super) class: &'static str,
    pub(super) headline: &'static str,
    pub(super) detail: String,
}

#[derive(Serialize)]
pub(super) struct Figure {
    pub(super) label: &'static str,
    pub(super) value: String,
    pub(super) note: String,
    /// Shown in red.
    pub(super) bad: bool,
}

#[derive(Serialize)]
pub(super) struct VerdictRow {
    pub(super) passed: bool,
    pub(super) label: String,
    pub(super) limit: String,
    pub(super) measured: String,
}

#[derive(Serialize)]
pub(super) struct PhaseTable {
    pub(super) name: &'static str,
    pub(super) rows: Vec<Row>,
}

#[derive(Serialize)]
pub(super) struct Row {
    pub(super) kind: String,
    pub(super) name: String,
    pub(super) count: u64,
    pub(super) failures: u64,
    pub(super) median: String,
    p90: String,
    p95: String,
    p99: String,
    pub(super) max: String,
    pub(super) per_second: String,
}

/// One load level (the time the shape asked for `users`).
#[derive(Serialize)]
pub(super) struct LevelRow {
    pub(super) users: String,
    pub(super) span: String,
    pub(super) per_second: String,
    pub(super) requests: u64,
    pub(super) failures: u64,
    pub(super) fail_pct: String,
    /// Users running at the level's end.
    pub(super) running: u64,
    pub(super) median: String,
    p95: String,
    p99: String,
    pub(super) events: u64,
    pub(super) lost: u64,
    event_rate: String,
    event_p50: String,
    event_p95: String,
    event_p99: String,
    /// One cell triple per name of [`Page::level_agents`]: CPU, most sessions, most RSS.
    agents: Vec<[String; 3]>,
}

#[derive(Serialize)]
pub(super) struct FailureRow {
    pub(super) count: u64,
    pub(super) phase: &'static str,
    pub(super) step: String,
    pub(super) reason: String,
    pub(super) example: String,
}

pub(super) fn page(results: &Results, verdicts: &[Verdict]) -> Page {
    let duration = results.run.duration_secs.max(0.0);
    let time_max = duration.ceil().max(1.0);
    Page {
        plan: PlanView {
            name: results.plan.name.clone(),
            file: results.plan.file.clone(),
            description: results
                .plan
                .description
                .as_ref()
                .map(|d| d.trim().to_string())
                .filter(|d| !d.is_empty()),
            shape: results.plan.shape.clone(),
        },
        run_id: results.run.id.clone(),
        version: results.acaload_version.clone(),
        schema_version: results.schema_version,
        banner: banner(results, verdicts),
        facts: facts(results),
        figures: figures(results),
        verdicts: verdicts
            .iter()
            .map(|v| VerdictRow {
                passed: v.passed,
                label: v.label.clone(),
                limit: v.limit.clone(),
                measured: v.measured.clone(),
            })
            .collect(),
        phases: phase_tables(results),
        total: total_row(&results.total),
        failures: results
            .failures
            .iter()
            .map(|f| FailureRow {
                count: f.count,
                phase: phase_name(f.phase),
                step: f.name.clone(),
                reason: f.reason.clone(),
                example: f.example.clone(),
            })
            .collect(),
        levels: level_rows(results),
        level_events: results.levels.iter().any(|l| l.events > 0),
        level_agents: crate::output::report::level_agents(results.levels.iter()),
        overview: vec![
            users_chart(results, time_max),
            throughput_chart(results, time_max),
        ],
        waits: wait_charts(results),
        agents: results
            .agents
            .iter()
            .map(|a| agent_chart(a, time_max))
            .collect(),
        steps: results
            .stats
            .iter()
            .map(|s| step_card(results, s, time_max))
            .collect(),
        env: results
            .plan
            .env
            .iter()
            .map(|(k, v)| {
                let shown = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), shown)
            })
            .collect(),
    }
}

/// A table of step rows per phase that has steps.
fn phase_tables(results: &Results) -> Vec<PhaseTable> {
    [Phase::Setup, Phase::Tasks, Phase::Teardown]
        .into_iter()
        .map(|p| PhaseTable {
            name: phase_name(p),
            rows: results
                .stats
                .iter()
                .filter(|s| s.phase == p)
                .map(row)
                .collect(),
        })
        .filter(|t| !t.rows.is_empty())
        .collect()
}

/// The row of all HTTP requests.
fn total_row(t: &crate::results::Totals) -> Row {
    let l = &t.latency_ms;
    Row {
        kind: String::new(),
        name: "Aggregated (HTTP)".into(),
        count: t.requests,
        failures: t.failures,
        median: ms(l.p50),
        p90: ms(l.p90),
        p95: ms(l.p95),
        p99: ms(l.p99),
        max: ms(l.max),
        per_second: format!("{:.2}", t.per_second),
    }
}

/// The percentile curves of the waits, one chart per kind that has rows.
fn wait_charts(results: &Results) -> Vec<ChartView> {
    [
        (
            StatKind::Event,
            "Delivery latency",
            "Time from a step's send until the agent event arrived (event rows), by percentile.",
        ),
        (
            StatKind::Poll,
            "Time to state",
            "Time from the first poll until the condition held (state rows), by percentile; polling granularity applies.",
        ),
    ]
    .into_iter()
    .filter_map(|(kind, title, caption)| overlay_chart(results, kind, title, caption))
    .collect()
}

/// The load levels worth a row (see [`crate::output::report::shown_levels`]).
pub(super) fn level_rows(results: &Results) -> Vec<LevelRow> {
    let names = crate::output::report::level_agents(results.levels.iter());
    crate::output::report::shown_levels(&results.levels)
        .into_iter()
        .map(|l| LevelRow {
            users: crate::output::report::level_users(l),
            running: l.users,
            span: format!("{}–{}", seconds(l.from_secs), seconds(l.to_secs)),
            per_second: format!("{:.2}", l.per_second),
            requests: l.requests,
            failures: l.failures,
            fail_pct: format!("{:.2}%", l.failure_pct()),
            median: ms(l.latency_ms.p50),
            p95: ms(l.latency_ms.p95),
            p99: ms(l.latency_ms.p99),
            events: l.events,
            lost: l.event_failures,
            event_rate: format!("{:.2}", l.events_per_second()),
            event_p50: ms(l.event_latency_ms.p50),
            event_p95: ms(l.event_latency_ms.p95),
            event_p99: ms(l.event_latency_ms.p99),
            agents: names
                .iter()
                .map(|n| {
                    let a = l.agents.iter().find(|a| &a.name == n);
                    let dash = || "–".to_string();
                    [
                        a.and_then(|a| a.cpu_pct)
                            .map_or_else(dash, |c| format!("{c:.0}%")),
                        a.and_then(|a| a.sessions)
                            .map_or_else(dash, |s| s.to_string()),
                        a.and_then(|a| a.rss_mb)
                            .map_or_else(dash, |m| format!("{m:.0}")),
                    ]
                })
                .collect(),
        })
        .collect()
}

/// Failed steps of any kind (HTTP, polls, waits), as the exit code counts them.
pub(super) fn failed_steps(results: &Results) -> u64 {
    results.failures.iter().map(|f| f.count).sum::<u64>()
}

pub(super) fn banner(results: &Results, verdicts: &[Verdict]) -> Banner {
    match results.run.outcome {
        Outcome::Interrupted => {
            return Banner {
                class: "stopped",
                headline: "INTERRUPTED",
                detail: "stopped by a signal; the results cover the run up to it".into(),
            };
        }
        Outcome::Aborted => {
            return Banner {
                class: "stopped",
                headline: "ABORTED",
                detail: results
                    .run
                    .error
                    .clone()
                    .unwrap_or_else(|| "the run did not complete".into()),
            };
        }
        Outcome::Stopped => {
            return Banner {
                class: "fail",
                headline: "STOPPED BY A THRESHOLD",
                detail: results
                    .run
                    .stopped_by
                    .as_ref()
                    .map_or_else(|| "an abort threshold failed".into(), |s| s.describe()),
            };
        }
        Outcome::Completed => {}
    }
    let failed = verdicts.iter().filter(|v| !v.passed).count();
    let (passed, detail) = if !verdicts.is_empty() {
        let n = verdicts.len();
        if failed == 0 {
            (true, format!("all {n} thresholds passed"))
        } else {
            (false, format!("{failed} of {n} thresholds failed"))
        }
    } else {
        let failures = failed_steps(results).max(results.total.failures);
        if failures == 0 {
            (true, "no thresholds evaluated; no step failed".into())
        } else {
            (
                false,
                format!(
                    "no thresholds evaluated; {failures} failed step{}",
                    plural(failures)
                ),
            )
        }
    };
    if passed {
        Banner {
            class: "pass",
            headline: "PASSED",
            detail,
        }
    } else {
        Banner {
            class: "fail",
            headline: "FAILED",
            detail,
        }
    }
}

pub(super) fn facts(results: &Results) -> Vec<(String, String)> {
    let r = &results.run;
    let mut out = vec![
        ("Run".to_string(), r.id.clone()),
        ("Started".into(), timestamp(&r.started_at)),
        ("Ended".into(), timestamp(&r.ended_at)),
        ("Duration".into(), format!("{:.1} s", r.duration_secs)),
        ("Outcome".into(), format!("{:?}", r.outcome).to_lowercase()),
        ("Seed".into(), r.seed.to_string()),
    ];
    if let Some(s) = r.shard {
        out.push(("Shard".into(), format!("{} of {}", s.index + 1, s.count)));
    }
    out
}

/// `2026-11-27T22:28:42.046Z` → `2026-11-27 22:28:42 UTC`; anything else as written.
pub(super) fn timestamp(rfc3339: &str) -> String {
    match (rfc3339.get(..19), rfc3339.ends_with('Z')) {
        (Some(head), true) if head.as_bytes().get(10) == Some(&b'T') => {
            format!("{} UTC", head.replacen('T', " ", 1))
        }
        _ => rfc3339.to_string(),
    }
}

pub(super) fn figures(results: &Results) -> Vec<Figure> {
    let t = &results.total;
    let u = &results.users;
    let peak = results.timeline.iter().map(|s| s.users).max().unwrap_or(0);
    let failed = failed_steps(results);
    // Steps that failed without sending count as attempts: 100 % when nothing was sent.
    let attempts = t.requests + t.unsent;
    let pct = if attempts == 0 {
        0.0
    } else {
        t.failures as f64 / attempts as f64 * 100.0
    };
    let latency = |v: f64| {
        if t.requests == 0 {
            "–".to_string()
        } else {
            format!("{} ms", ms(v))
        }
    };
    let mut out = vec![
        Figure {
            label: "Requests",
            value: t.requests.to_string(),
            note: format!("{:.2} req/s", t.per_second),
            bad: false,
        },
        Figure {
            label: "Failures",
            value: failed.to_string(),
            note: format!("HTTP {} ({pct:.2}%)", t.failures),
            bad: failed > 0 || t.failures > 0,
        },
        Figure {
            label: "Median",
            value: latency(t.latency_ms.p50),
            note: "all HTTP requests".into(),
            bad: false,
        },
        Figure {
            label: "95th percentile",
            value: latency(t.latency_ms.p95),
            note: format!("p99 {}", latency(t.latency_ms.p99)),
            bad: false,
        },
        Figure {
            label: "Peak users",
            value: peak.to_string(),
            note: format!("{} started, {} set up", u.started, u.setup_ok),
            bad: false,
        },
        Figure {
            label: "Iterations",
            value: u.iterations.to_string(),
            note: format!("{} stopped by errors", u.stopped_by_error),
            bad: false,
        },
    ];
    if let Some(e) = &results.events {
        out.push(Figure {
            label: "Agent events",
            value: e.received.to_string(),
            note: format!("{} duplicates dropped", e.duplicates),
            bad: false,
        });
    }
    out
}

pub(super) fn row(s: &StepStats) -> Row {
    let l = &s.latency_ms;
    Row {
        kind: kind_label(s),
        name: s.name.clone(),
        count: s.count,
        failures: s.failures,
        median: ms(l.p50),
        p90: ms(l.p90),
        p95: ms(l.p95),
        p99: ms(l.p99),
        max: ms(l.max),
        per_second: format!("{:.2}", s.per_second),
    }
}
