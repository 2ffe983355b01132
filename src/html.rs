//! Self-contained HTML report (`--html`): one file with inline CSS and inline SVG charts
//! drawn here, no scripts and no network. Reads only [`Results`] and the verdicts, and
//! prints no generation time, so the same results always give the same bytes.

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::compile::Phase;
use crate::report::{Verdict, kind_label, ms, phase_name};
use crate::results::{Outcome, Results, StatKind, StepStats};

const TEMPLATE: &str = include_str!("report.html");

/// Renders the report. Text from the results (step names, failure examples, variables)
/// is HTML-escaped by the template; the SVG charts escape their own labels.
pub fn render(results: &Results, verdicts: &[Verdict]) -> Result<String, minijinja::Error> {
    let mut env = minijinja::Environment::new();
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()?,
    );
    // The `.html` name turns on HTML auto-escaping.
    env.add_template("report.html", TEMPLATE)?;
    let page = page(results, verdicts);
    env.get_template("report.html")?
        .render(minijinja::Value::from(minijinja::value::Serde(&page)))
}

// ---------------------------------------------------------------------------------------
// The page model: everything formatted here, so the template only lays it out.

#[derive(Serialize)]
struct Page {
    plan: PlanView,
    run_id: String,
    version: String,
    schema_version: u32,
    banner: Banner,
    facts: Vec<(String, String)>,
    figures: Vec<Figure>,
    verdicts: Vec<VerdictRow>,
    phases: Vec<PhaseTable>,
    total: Row,
    failures: Vec<FailureRow>,
    levels: Vec<LevelRow>,
    level_events: bool,
    overview: Vec<ChartView>,
    waits: Vec<ChartView>,
    agents: Vec<ChartView>,
    steps: Vec<StepCard>,
    env: Vec<(String, String)>,
}

#[derive(Serialize)]
struct PlanView {
    name: String,
    file: String,
    description: Option<String>,
    shape: String,
}

#[derive(Serialize)]
struct Banner {
    /// CSS class: `pass`, `fail` or `stopped`.
    class: &'static str,
    headline: &'static str,
    detail: String,
}

#[derive(Serialize)]
struct Figure {
    label: &'static str,
    value: String,
    note: String,
    /// Shown in red.
    bad: bool,
}

#[derive(Serialize)]
struct VerdictRow {
    passed: bool,
    label: String,
    limit: String,
    measured: String,
}

#[derive(Serialize)]
struct PhaseTable {
    name: &'static str,
    rows: Vec<Row>,
}

#[derive(Serialize)]
struct Row {
    kind: String,
    name: String,
    count: u64,
    failures: u64,
    median: String,
    p90: String,
    p95: String,
    p99: String,
    max: String,
    per_second: String,
}

/// One load level (the time the shape asked for `users`).
#[derive(Serialize)]
struct LevelRow {
    users: String,
    span: String,
    per_second: String,
    requests: u64,
    failures: u64,
    fail_pct: String,
    median: String,
    p95: String,
    p99: String,
    events: u64,
    lost: u64,
    event_p95: String,
}

#[derive(Serialize)]
struct FailureRow {
    count: u64,
    phase: &'static str,
    step: String,
    reason: String,
    example: String,
}

#[derive(Serialize)]
struct ChartView {
    title: String,
    caption: String,
    svg: String,
    legend: Vec<Legend>,
}

#[derive(Serialize)]
struct Legend {
    label: String,
    color: &'static str,
    dash: bool,
}

#[derive(Serialize)]
struct StepCard {
    kind: String,
    name: String,
    phase: &'static str,
    summary: String,
    failed: bool,
    over_time: ChartView,
    distribution: ChartView,
}

fn page(results: &Results, verdicts: &[Verdict]) -> Page {
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
        phases: [Phase::Setup, Phase::Tasks, Phase::Teardown]
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
            .collect(),
        total: {
            let t = &results.total;
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
        },
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
        overview: vec![users_chart(results, time_max), throughput_chart(results, time_max)],
        waits: [
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
        .collect(),
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

/// The load levels worth a row (see [`crate::report::shown_levels`]).
fn level_rows(results: &Results) -> Vec<LevelRow> {
    crate::report::shown_levels(&results.levels)
        .into_iter()
        .map(|l| LevelRow {
            users: crate::report::level_users(l),
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
            event_p95: ms(l.event_latency_ms.p95),
        })
        .collect()
}

/// Failed steps of any kind (HTTP, polls, waits), as the exit code counts them.
fn failed_steps(results: &Results) -> u64 {
    results.failures.iter().map(|f| f.count).sum::<u64>()
}

fn banner(results: &Results, verdicts: &[Verdict]) -> Banner {
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

fn facts(results: &Results) -> Vec<(String, String)> {
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
fn timestamp(rfc3339: &str) -> String {
    match (rfc3339.get(..19), rfc3339.ends_with('Z')) {
        (Some(head), true) if head.as_bytes().get(10) == Some(&b'T') => {
            format!("{} UTC", head.replacen('T', " ", 1))
        }
        _ => rfc3339.to_string(),
    }
}

fn figures(results: &Results) -> Vec<Figure> {
    let t = &results.total;
    let u = &results.users;
    let peak = results.timeline.iter().map(|s| s.users).max().unwrap_or(0);
    let failed = failed_steps(results);
    let pct = if t.requests == 0 {
        0.0
    } else {
        t.failures as f64 / t.requests as f64 * 100.0
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

fn row(s: &StepStats) -> Row {
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

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

// ---------------------------------------------------------------------------------------
// The charts.

const BLUE: &str = "#2563eb";
const ORANGE: &str = "#ea8a0c";
const RED: &str = "#dc2626";
const GREY: &str = "#6b7280";
const PALETTE: [&str; 8] = [
    "#2563eb", "#ea8a0c", "#16a34a", "#dc2626", "#7c3aed", "#0891b2", "#be185d", "#854d0e",
];

fn users_chart(results: &Results, time_max: f64) -> ChartView {
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

fn throughput_chart(results: &Results, time_max: f64) -> ChartView {
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

fn overlay_chart(
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

fn agent_chart(agent: &crate::results::AgentGauges, time_max: f64) -> ChartView {
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

fn step_card(results: &Results, s: &StepStats, time_max: f64) -> StepCard {
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
fn nines_points(s: &StepStats) -> Vec<(f64, f64)> {
    let Some(h) = crate::metrics::decode(&s.histogram).filter(|h| !h.is_empty()) else {
        return Vec::new();
    };
    percentile_curve(&h)
}

fn percentile_curve(h: &Histogram<u64>) -> Vec<(f64, f64)> {
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

// ---------------------------------------------------------------------------------------
// A small SVG line chart: axes, grid, polylines. Hand-written to keep the report a
// single dependency-free file.

struct Line {
    label: String,
    color: &'static str,
    dash: bool,
    points: Vec<(f64, f64)>,
    /// Points further apart than this on x are not joined.
    max_gap: f64,
}

impl Line {
    fn new(
        label: impl Into<String>,
        color: &'static str,
        points: impl IntoIterator<Item = (f64, f64)>,
    ) -> Line {
        Line {
            label: label.into(),
            color,
            dash: false,
            points: points.into_iter().collect(),
            max_gap: 1.5,
        }
    }

    fn dashed(mut self) -> Line {
        self.dash = true;
        self
    }

    fn gap(mut self, max_gap: f64) -> Line {
        self.max_gap = max_gap;
        self
    }
}

#[derive(Clone, Copy)]
enum XScale {
    /// Seconds since the start, 0..max.
    Time(f64),
    /// Percentiles on the nines scale, 0..3.
    Nines,
}

#[derive(Clone, Copy)]
struct Spec {
    x: XScale,
    unit: &'static str,
    /// Whole numbers only (users, counters): no fractional ticks.
    integer: bool,
    width: f64,
    height: f64,
}

impl Spec {
    fn time(max: f64, unit: &'static str, integer: bool) -> Spec {
        Spec {
            x: XScale::Time(max),
            unit,
            integer,
            width: 270.0,
            height: 170.0,
        }
    }

    fn nines() -> Spec {
        Spec {
            x: XScale::Nines,
            unit: "ms",
            integer: false,
            width: 270.0,
            height: 170.0,
        }
    }

    fn size(mut self, width: f64, height: f64) -> Spec {
        self.width = width;
        self.height = height;
        self
    }
}

fn chart(title: &str, caption: &str, spec: Spec, lines: Vec<Line>) -> ChartView {
    ChartView {
        title: title.to_string(),
        caption: caption.to_string(),
        svg: svg(title, &spec, &lines),
        legend: lines
            .iter()
            .map(|l| Legend {
                label: l.label.clone(),
                color: l.color,
                dash: l.dash,
            })
            .collect(),
    }
}

fn svg(title: &str, spec: &Spec, lines: &[Line]) -> String {
    use std::fmt::Write as _;
    let (left, right, top, bottom) = (46.0, 16.0, 24.0, 22.0);
    let (w, h) = (spec.width, spec.height);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let data_max = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    let (y_step, y_max) = y_axis(data_max, spec.integer);
    let (x_max, x_ticks) = match spec.x {
        XScale::Time(max) => {
            // A label ("1m30s") needs about 45 px.
            let step = time_step(max, (pw / 45.0).floor().max(2.0));
            let ticks = (0..)
                .map(|i| f64::from(i) * step)
                .take_while(|t| *t <= max + 1e-9)
                .map(|t| (t, seconds(t)))
                .collect::<Vec<_>>();
            (max, ticks)
        }
        XScale::Nines => (
            3.0,
            vec![
                (0.0, "0%".to_string()),
                // Too close to 0% to label on a small chart.
                (2f64.log10(), if w >= 400.0 { "50%" } else { "" }.into()),
                (1.0, "90%".into()),
                (2.0, "99%".into()),
                (3.0, "99.9%".into()),
            ],
        ),
    };
    let sx = |x: f64| left + x.clamp(0.0, x_max) / x_max * pw;
    let sy = |y: f64| top + ph - y.clamp(0.0, y_max) / y_max * ph;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-label="{}">"#,
        esc(title)
    );
    // Horizontal grid and y labels.
    let decimals = if y_step >= 1.0 {
        0
    } else {
        (-y_step.log10().floor()) as usize
    };
    let intervals = (y_max / y_step).round() as u32;
    for i in 0..=intervals {
        let y = f64::from(i) * y_step;
        let py = sy(y);
        let _ = write!(
            s,
            r##"<line x1="{left}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="{}"/><text x="{:.1}" y="{:.1}" text-anchor="end" class="tick">{y:.decimals$}</text>"##,
            left + pw,
            if i == 0 { "#9ca3af" } else { "#e5e7eb" },
            left - 5.0,
            py + 3.5,
        );
    }
    let _ = write!(
        s,
        r#"<text x="{:.1}" y="11" text-anchor="end" class="unit">{}</text>"#,
        left - 5.0,
        esc(spec.unit)
    );
    // X ticks.
    for (x, label) in &x_ticks {
        let px = sx(*x);
        // The last label ends at its tick instead of running off the chart.
        let anchor = if px > w - right - 1.0 {
            "end"
        } else {
            "middle"
        };
        let _ = write!(
            s,
            r##"<line x1="{px:.1}" y1="{:.1}" x2="{px:.1}" y2="{:.1}" stroke="#9ca3af"/><text x="{px:.1}" y="{:.1}" text-anchor="{anchor}" class="tick">{}</text>"##,
            top + ph,
            top + ph + 4.0,
            top + ph + 16.0,
            esc(label)
        );
    }
    if lines.iter().all(|l| l.points.is_empty()) {
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" class="empty">no samples</text>"#,
            left + pw / 2.0,
            top + ph / 2.0
        );
    }
    for line in lines {
        let dash = if line.dash {
            r#" stroke-dasharray="5 3""#
        } else {
            ""
        };
        for seg in segments(&line.points, line.max_gap) {
            if let [(x, y)] = seg {
                let _ = write!(
                    s,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{}"/>"#,
                    sx(*x),
                    sy(*y),
                    line.color
                );
            } else {
                let pts: Vec<String> = seg
                    .iter()
                    .map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y)))
                    .collect();
                let _ = write!(
                    s,
                    r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="1.8" stroke-linejoin="round"{dash}/>"#,
                    pts.join(" "),
                    line.color
                );
            }
        }
    }
    s.push_str("</svg>");
    s
}

/// Splits points where consecutive x values are more than `max_gap` apart.
fn segments(points: &[(f64, f64)], max_gap: f64) -> Vec<&[(f64, f64)]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=points.len() {
        if i == points.len() || points[i].0 - points[i - 1].0 > max_gap {
            if i > start {
                out.push(&points[start..i]);
            }
            start = i;
        }
    }
    out
}

/// A 1-2-5 tick step giving about four intervals, and the axis top (a whole number of steps).
fn y_axis(data_max: f64, integer: bool) -> (f64, f64) {
    let max = if data_max > 0.0 { data_max } else { 1.0 };
    let raw = max / 4.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let mut step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    if integer {
        step = step.max(1.0).round();
    }
    (step, (max / step).ceil() * step)
}

/// Time ticks at round numbers of seconds or minutes, at most `intervals` of them.
fn time_step(max: f64, intervals: f64) -> f64 {
    [
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0,
    ]
    .into_iter()
    .find(|s| max / s <= intervals)
    .unwrap_or(7200.0)
}

fn seconds(t: f64) -> String {
    let t = t.round() as u64;
    match (t / 3600, t / 60 % 60, t % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, _) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m}m"),
    }
}

/// HTML/SVG text escaping for the few labels the charts print themselves.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Results {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/results/mediator.json"
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn text_from_results_is_escaped() {
        let mut r = fixture();
        r.stats[0].name = "<script>alert('x')</script> & co".into();
        r.failures.push(crate::results::FailureGroup {
            phase: Phase::Tasks,
            name: "<b>step</b>".into(),
            reason: "status 500: <html>".into(),
            count: 2,
            example: "body \"<img src=x onerror=alert(1)>\"".into(),
        });
        let html = render(&r, &[]).unwrap();
        assert!(!html.contains("<script>"), "step names are escaped");
        assert!(!html.contains("<img"), "failure examples are escaped");
        assert!(!html.contains("<b>step"));
        assert!(html.contains("&lt;script&gt;alert("));
        assert!(html.contains("FAILED"));
    }

    #[test]
    fn same_results_same_bytes() {
        let r = fixture();
        assert_eq!(render(&r, &[]).unwrap(), render(&r, &[]).unwrap());
    }

    #[test]
    fn axes_are_round() {
        assert_eq!(y_axis(0.0, true), (1.0, 1.0));
        assert_eq!(y_axis(6.0, true), (2.0, 6.0));
        assert_eq!(y_axis(52.6, false), (20.0, 60.0));
        assert_eq!(y_axis(0.012, false), (0.005, 0.015));
        assert_eq!(time_step(16.0, 8.0), 2.0);
        assert_eq!(time_step(16.0, 4.0), 5.0);
        assert_eq!(time_step(600.0, 8.0), 120.0);
        assert_eq!(seconds(90.0), "1m30s");
        assert_eq!(seconds(3600.0), "1h");
    }

    #[test]
    fn gaps_split_lines() {
        let pts = [(0.0, 1.0), (1.0, 1.0), (5.0, 2.0), (9.0, 1.0), (10.0, 1.0)];
        let segs = segments(&pts, 1.5);
        assert_eq!(segs.iter().map(|s| s.len()).collect::<Vec<_>>(), [2, 1, 2]);
    }

    #[test]
    fn percentile_curve_runs_from_min_to_the_three_nines() {
        let mut h = crate::metrics::new_histogram();
        for v in 1..=10_000u64 {
            h.record(v * 10).unwrap();
        }
        let c = percentile_curve(&h);
        assert_eq!(c.first().unwrap().0, 0.0);
        assert!((c.last().unwrap().0 - 3.0).abs() < 1e-9);
        assert!((c.first().unwrap().1 - 0.01).abs() < 1e-3);
        assert!((c.last().unwrap().1 - 99.9).abs() < 0.2, "{:?}", c.last());
        assert!(c.windows(2).all(|w| w[0].1 <= w[1].1), "monotonic");
    }
}
