//! CSV files (`--csv PREFIX`) with Locust's file names and column names where they mean the
//! same, so spreadsheets and scripts written for Locust read them. Built from [`Results`]
//! alone; percentiles come from each step's decoded HDR histogram.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::output::report::{kind_label, phase_name};
use crate::plan::Phase;
use crate::results::{Results, StatKind};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot format CSV: {0}")]
    Format(#[from] csv::Error),
}

/// Locust's percentile columns.
const PERCENTILES: [(&str, f64); 11] = [
    ("50%", 0.5),
    ("66%", 0.66),
    ("75%", 0.75),
    ("80%", 0.8),
    ("90%", 0.9),
    ("95%", 0.95),
    ("98%", 0.98),
    ("99%", 0.99),
    ("99.9%", 0.999),
    ("99.99%", 0.9999),
    ("100%", 1.0),
];

/// Writes `PREFIX_stats.csv`, `PREFIX_failures.csv`, `PREFIX_stats_history.csv`,
/// `PREFIX_step_history.csv` and `PREFIX_levels.csv`; returns their paths.
pub fn write(results: &Results, prefix: &Path) -> Result<Vec<PathBuf>, Error> {
    let files = [
        ("_stats.csv", stats(results)?),
        ("_failures.csv", failures(results)?),
        ("_stats_history.csv", stats_history(results)?),
        ("_step_history.csv", step_history(results)?),
        ("_levels.csv", levels(results)?),
    ];
    let mut written = Vec::new();
    for (suffix, text) in files {
        let mut name = OsString::from(prefix.as_os_str());
        name.push(suffix);
        let path = PathBuf::from(name);
        std::fs::write(&path, text).map_err(|source| Error::Write {
            path: path.clone(),
            source,
        })?;
        written.push(path);
    }
    Ok(written)
}

/// Per step, plus an `Aggregated` row over all HTTP requests. Times in milliseconds
/// (µs precision); `Phase` is added after Locust's columns.
pub fn stats(results: &Results) -> Result<String, Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header = vec![
        "Type",
        "Name",
        "Request Count",
        "Failure Count",
        "Median Response Time",
        "Average Response Time",
        "Min Response Time",
        "Max Response Time",
        "Requests/s",
        "Failures/s",
    ];
    header.extend(PERCENTILES.iter().map(|(name, _)| *name));
    header.push("Phase");
    w.write_record(&header)?;
    let secs = results.run.duration_secs.max(1e-9);
    let rows = results
        .stats
        .iter()
        .map(|s| {
            (
                kind_label(s),
                s.name.as_str(),
                s.count,
                s.failures,
                s.histogram.as_str(),
                s.latency_ms.mean,
                s.per_second,
                phase_name(s.phase),
            )
        })
        .chain(std::iter::once((
            String::new(),
            "Aggregated",
            results.total.requests,
            results.total.failures,
            results.total.histogram.as_str(),
            results.total.latency_ms.mean,
            results.total.per_second,
            "",
        )));
    for (kind, name, count, failures, histogram, mean, per_second, phase) in rows {
        let hist = crate::measure::histogram::decode(histogram).filter(|h| !h.is_empty());
        let at = |q: f64| match &hist {
            Some(h) if q >= 1.0 => ms(h.max()),
            Some(h) => ms(h.value_at_quantile(q)),
            None => "N/A".to_string(),
        };
        let mut record = vec![
            kind,
            name.to_string(),
            count.to_string(),
            failures.to_string(),
            at(0.5),
            hist.as_ref().map_or("N/A".into(), |_| format!("{mean:.3}")),
            hist.as_ref().map_or("N/A".into(), |h| ms(h.min())),
            at(1.0),
            format!("{per_second:.4}"),
            format!("{:.4}", failures as f64 / secs),
        ];
        record.extend(PERCENTILES.iter().map(|(_, q)| at(*q)));
        record.push(phase.to_string());
        w.write_record(&record)?;
    }
    finish(w)
}

/// Failure groups: Locust's `Method`, `Name`, `Error`, `Occurrences`, then `Phase` and one
/// `Example`. `Method` is the step's HTTP method, or what a non-HTTP step measures.
pub fn failures(results: &Results) -> Result<String, Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["Method", "Name", "Error", "Occurrences", "Phase", "Example"])?;
    for f in &results.failures {
        let steps: Vec<_> = results
            .stats
            .iter()
            .filter(|s| s.phase == f.phase && s.name == f.name)
            .collect();
        let method = steps
            .iter()
            .find(|s| s.kind == StatKind::Http)
            .or(steps.first())
            .map(|s| kind_label(s))
            .unwrap_or_default();
        w.write_record([
            method.as_str(),
            &f.name,
            &f.reason,
            &f.count.to_string(),
            phase_name(f.phase),
            &f.example,
        ])?;
    }
    finish(w)
}

/// One row per second of the run. `Timestamp` is Unix time (seconds) of the second's start,
/// as Locust writes it; `Elapsed` is seconds since the run started. Counts are of that
/// second alone (HTTP requests; failed steps of any kind), the totals cumulative.
pub fn stats_history(results: &Results) -> Result<String, Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "Timestamp",
        "Elapsed",
        "User Count",
        "Target User Count",
        "Requests/s",
        "Failures/s",
        "Total Request Count",
        "Total Failure Count",
    ])?;
    let start = start_unix(results);
    let (mut requests, mut failures) = (0, 0);
    for s in &results.timeline {
        requests += s.requests;
        failures += s.failures;
        w.write_record([
            start.map_or(String::new(), |u| (u + s.t).to_string()),
            s.t.to_string(),
            s.users.to_string(),
            s.target_users.to_string(),
            s.requests.to_string(),
            s.failures.to_string(),
            requests.to_string(),
            failures.to_string(),
        ])?;
    }
    finish(w)
}

/// Per step and second (by completion time), from `results.series`: samples, failures
/// and latency percentiles in milliseconds.
pub fn step_history(results: &Results) -> Result<String, Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "Timestamp",
        "Elapsed",
        "Phase",
        "Type",
        "Name",
        "Request Count",
        "Failure Count",
        "50%",
        "95%",
        "99%",
    ])?;
    let start = start_unix(results);
    let types: HashMap<(Phase, StatKind, &str), String> = results
        .stats
        .iter()
        .map(|s| ((s.phase, s.kind, s.name.as_str()), kind_label(s)))
        .collect();
    for p in &results.series {
        let kind = types
            .get(&(p.phase, p.kind, p.name.as_str()))
            .cloned()
            .unwrap_or_default();
        w.write_record([
            start.map_or(String::new(), |u| (u + p.t).to_string()),
            p.t.to_string(),
            phase_name(p.phase).to_string(),
            kind,
            p.name.clone(),
            p.count.to_string(),
            p.failures.to_string(),
            format!("{:.3}", p.p50),
            format!("{:.3}", p.p95),
            format!("{:.3}", p.p99),
        ])?;
    }
    finish(w)
}

/// One row per load level (a step or stage of the shape; `From Users` set for a ramp), from
/// `results.levels`: requests and agent events completed then, latencies in milliseconds.
pub fn levels(results: &Results) -> Result<String, Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "Users",
        "From Users",
        "From",
        "To",
        "Requests/s",
        "Request Count",
        "Failure Count",
        "50%",
        "95%",
        "99%",
        "Event Count",
        "Lost Count",
        "Event 95%",
        "Running Users",
    ])?;
    for l in &results.levels {
        w.write_record([
            l.target_users.to_string(),
            l.from_users.map_or(String::new(), |u| u.to_string()),
            format!("{:.3}", l.from_secs),
            format!("{:.3}", l.to_secs),
            format!("{:.3}", l.per_second),
            l.requests.to_string(),
            l.failures.to_string(),
            format!("{:.3}", l.latency_ms.p50),
            format!("{:.3}", l.latency_ms.p95),
            format!("{:.3}", l.latency_ms.p99),
            l.events.to_string(),
            l.event_failures.to_string(),
            format!("{:.3}", l.event_latency_ms.p95),
            l.users.to_string(),
        ])?;
    }
    finish(w)
}

fn finish(w: csv::Writer<Vec<u8>>) -> Result<String, Error> {
    let bytes = w
        .into_inner()
        .map_err(|e| Error::Format(e.into_error().into()))?;
    // Every field written was a Rust string.
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Microseconds as milliseconds with µs precision.
fn ms(us: u64) -> String {
    format!("{:.3}", us as f64 / 1000.0)
}

/// The run's start as whole Unix seconds, when `started_at` is RFC 3339.
fn start_unix(results: &Results) -> Option<u64> {
    humantime::parse_rfc3339_weak(&results.run.started_at)
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Results {
        let path = format!(
            "{}/tests/fixtures/results/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn medians_match_the_results_summary() {
        let r = fixture("mediator");
        let text = stats(&r).unwrap();
        let mut rd = csv::Reader::from_reader(text.as_bytes());
        let header = rd.headers().unwrap().clone();
        let col = |n: &str| header.iter().position(|h| h == n).unwrap();
        let records: Vec<_> = rd.records().map(Result::unwrap).collect();
        assert_eq!(
            records.len(),
            r.stats.len() + 1,
            "a row per step and the total"
        );
        assert_eq!(&records[r.stats.len()][col("Name")], "Aggregated");
        for (rec, s) in records.iter().zip(&r.stats) {
            assert_eq!(&rec[col("Name")], s.name);
            assert_eq!(
                rec[col("Median Response Time")].parse::<f64>().unwrap(),
                s.latency_ms.p50
            );
            assert_eq!(rec[col("100%")].parse::<f64>().unwrap(), s.latency_ms.max);
        }
    }

    #[test]
    fn start_time_is_read_as_unix_seconds() {
        let r = fixture("mediator");
        let u = start_unix(&r).unwrap();
        assert_eq!(
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(u)
            )
            .to_string()
            .get(..19),
            r.run.started_at.get(..19)
        );
    }
}
