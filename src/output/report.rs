//! Terminal report: a Locust-style table per phase, failures by reason, and the
//! thresholds verdict. Reads only [`Results`], so it works for saved files too.

use std::fmt::Write as _;

use crate::plan::Phase;
use crate::results::{Results, StatKind, Verdict};

/// The final report as text.
pub fn render(results: &Results, verdicts: &[Verdict]) -> String {
    let mut out = String::new();
    header(&mut out, results);
    step_tables(&mut out, results);
    levels(&mut out, &results.levels);
    failures(&mut out, &results.failures);
    thresholds(&mut out, verdicts);
    out
}

/// The plan, the run and its users.
fn header(out: &mut String, results: &Results) {
    let r = &results.run;
    let _ = writeln!(
        out,
        "\nplan {} | run {} | {:?} after {:.1}s | {}",
        results.plan.name, r.id, r.outcome, r.duration_secs, results.plan.shape
    );
    if let Some(s) = &r.stopped_by {
        let _ = writeln!(out, "{}", s.describe());
    }
    let u = &results.users;
    let _ = writeln!(
        out,
        "users: {} started, {} completed setup, {} stopped by errors, {} iterations",
        u.started, u.setup_ok, u.stopped_by_error, u.iterations
    );
}

/// A Locust-style table of steps per phase, then the HTTP total and what the rows mean.
fn step_tables(out: &mut String, results: &Results) {
    for phase in [Phase::Setup, Phase::Tasks, Phase::Teardown] {
        let rows: Vec<_> = results.stats.iter().filter(|s| s.phase == phase).collect();
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "\n{:<8} {:<40} {:>8} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
            format!("{phase:?}").to_lowercase(),
            "Name",
            "# reqs",
            "# fails",
            "Median",
            "90%ile",
            "95%ile",
            "99%ile",
            "Max",
            "req/s"
        );
        for s in rows {
            let name: String = if s.name.chars().count() > 40 {
                format!("{}…", s.name.chars().take(39).collect::<String>())
            } else {
                s.name.clone()
            };
            let counts = (s.count, s.failures, s.per_second);
            row(out, ("", &kind_label(s)), &name, counts, &s.latency_ms);
        }
    }
    let t = &results.total;
    let counts = (t.requests, t.failures, t.per_second);
    row(out, ("\n", ""), "Aggregated (HTTP)", counts, &t.latency_ms);
    let _ = writeln!(
        out,
        "(latencies in ms; `state` rows are time until a polled condition held; `take` rows are waits for another user's offer; `event` rows are the time from a step's send until an agent event arrived; `queue` rows are requests that waited for a free connection under target.max_connections)"
    );
}

/// One row of a step table, after `before` (a blank line or nothing).
fn row(
    out: &mut String,
    (before, kind): (&str, &str),
    name: &str,
    (count, failures, per_second): (u64, u64, f64),
    l: &crate::results::Latency,
) {
    let _ = writeln!(
        out,
        "{before}{:<8} {:<40} {:>8} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8.2}",
        kind,
        name,
        count,
        failures,
        ms(l.p50),
        ms(l.p90),
        ms(l.p95),
        ms(l.p99),
        ms(l.max),
        per_second
    );
}

/// Failures by step and reason, each with an example.
fn failures(out: &mut String, failures: &[crate::results::FailureGroup]) {
    if failures.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nfailures:");
    for f in failures {
        let _ = writeln!(
            out,
            "  {:>6}x  {:?} / {}: {}",
            f.count, f.phase, f.name, f.reason
        );
        let _ = writeln!(out, "           e.g. {}", f.example);
    }
}

/// The thresholds' verdicts.
fn thresholds(out: &mut String, verdicts: &[Verdict]) {
    if verdicts.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nthresholds:");
    for v in verdicts {
        let _ = writeln!(
            out,
            "  {} {:<40} {:<12} measured {}",
            if v.passed { "PASS" } else { "FAIL" },
            v.label,
            v.limit,
            v.measured
        );
    }
}

/// The load levels table: how the target coped in each step or stage of the shape. Shown
/// when the shape had more than one level (a constant shape has just the totals).
fn levels(out: &mut String, levels: &[crate::results::LoadLevel]) {
    let levels = shown_levels(levels);
    if levels.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n{:>10} {:>7} {:>7} {:>7} {:>8} {:>8} {:>7} {:>7} {:>8} {:>8} {:>8}",
        "by load",
        "from",
        "to",
        "running",
        "req/s",
        "# reqs",
        "# fails",
        "fail %",
        "Median",
        "95%ile",
        "99%ile"
    );
    for l in &levels {
        let _ = writeln!(
            out,
            "{:>10} {:>6.0}s {:>6.0}s {:>7} {:>8.2} {:>8} {:>7} {:>6.2}% {:>8} {:>8} {:>8}",
            format!("{} u", level_users(l)),
            l.from_secs,
            l.to_secs,
            l.users,
            l.per_second,
            l.requests,
            l.failures,
            l.failure_pct(),
            ms(l.latency_ms.p50),
            ms(l.latency_ms.p95),
            ms(l.latency_ms.p99)
        );
    }
    let _ = writeln!(
        out,
        "(each row: one step or stage of the shape, `a→b` a ramp, `running` the users running at its end; HTTP requests completed then)"
    );
    capacity(out, &levels);
}

/// The capacity table: by load level, the agent events (deliveries, ping round trips) and
/// the watched agents' CPU, sessions and memory. Shown when a level has either.
fn capacity(out: &mut String, levels: &[&crate::results::LoadLevel]) {
    let events = levels.iter().any(|l| l.events > 0);
    let agents = level_agents(levels.iter().copied());
    if !events && agents.is_empty() {
        return;
    }
    let _ = write!(out, "\n{:>10} {:>7}", "by load", "running");
    if events {
        let _ = write!(
            out,
            " {:>9} {:>8} {:>6} {:>8} {:>8} {:>8}",
            "events/s", "# events", "lost", "Median", "95%ile", "99%ile"
        );
    }
    let widths: Vec<usize> = agents.iter().map(|n| (n.len() + 4).max(8)).collect();
    for (name, w) in agents.iter().zip(&widths) {
        let _ = write!(
            out,
            " | {:>w$} {:>8} {:>7}",
            format!("{name} CPU"),
            "sessions",
            "RSS MB"
        );
    }
    out.push('\n');
    for l in levels {
        let _ = write!(
            out,
            "{:>10} {:>7}",
            format!("{} u", level_users(l)),
            l.users
        );
        if events {
            let _ = write!(
                out,
                " {:>9.2} {:>8} {:>6} {:>8} {:>8} {:>8}",
                l.events_per_second(),
                l.events,
                l.event_failures,
                ms(l.event_latency_ms.p50),
                ms(l.event_latency_ms.p95),
                ms(l.event_latency_ms.p99)
            );
        }
        for (name, w) in agents.iter().zip(&widths) {
            let a = l.agents.iter().find(|a| a.name == *name);
            let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
            let _ = write!(
                out,
                " | {:>w$} {:>8} {:>7}",
                opt(a.and_then(|a| a.cpu_pct).map(|c| format!("{c:.0}%"))),
                opt(a.and_then(|a| a.sessions).map(|s| s.to_string())),
                opt(a.and_then(|a| a.rss_mb).map(|m| format!("{m:.0}"))),
            );
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "(capacity by load: agent events are the `event` rows above (deliveries, ping round trips), `lost` = events that never came; {}CPU in % of one core, sessions the most the agent held)",
        if agents.is_empty() {
            ""
        } else {
            "watched agents: "
        }
    );
}

/// Names of the watched agents with a CPU, session or memory figure in some level, in the
/// order they first appear: the capacity table's agent columns.
pub fn level_agents<'a>(
    levels: impl Iterator<Item = &'a crate::results::LoadLevel>,
) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for a in levels.flat_map(|l| &l.agents) {
        let shown = a.cpu_pct.is_some() || a.sessions.is_some() || a.rss_mb.is_some();
        if shown && !names.contains(&a.name) {
            names.push(a.name.clone());
        }
    }
    names
}

/// The levels a report shows: none for a shape of one part (the totals say it all), else
/// each that measured something.
pub fn shown_levels(levels: &[crate::results::LoadLevel]) -> Vec<&crate::results::LoadLevel> {
    if levels.len() < 2 {
        return Vec::new();
    }
    levels
        .iter()
        .filter(|l| l.requests + l.events > 0)
        .collect()
}

/// A level's users: `40`, or `0→40` for a ramp.
pub fn level_users(l: &crate::results::LoadLevel) -> String {
    match l.from_users {
        Some(from) => format!("{from}→{}", l.target_users),
        None => l.target_users.to_string(),
    }
}

/// A row's label: the HTTP method, or what a non-HTTP row measures.
pub fn kind_label(s: &crate::results::StepStats) -> String {
    match s.kind {
        StatKind::Http => s.method.clone().unwrap_or_default(),
        StatKind::Poll => "state".into(),
        StatKind::Take => "take".into(),
        StatKind::Event => "event".into(),
        StatKind::Iteration => "iter".into(),
        StatKind::Queue => "queue".into(),
    }
}

pub fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Setup => "setup",
        Phase::Tasks => "tasks",
        Phase::Teardown => "teardown",
    }
}

/// Milliseconds with three significant figures at most, as the reports print them.
pub fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}
