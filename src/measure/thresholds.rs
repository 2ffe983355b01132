//! Threshold verdicts: each of the plan's `thresholds` judged on the exact histograms and
//! counts of a run, a load level or merged shards.

use crate::measure::histogram::{decode, new_histogram};
use crate::measure::tally::Tally;
use crate::plan::Threshold;
use crate::results::{Results, StatKind, StepStats, Totals, Verdict};

/// Evaluates the plan's thresholds against the results.
pub fn thresholds(results: &Results, thresholds: &[Threshold]) -> Vec<Verdict> {
    thresholds_of(&results.total, &results.stats, thresholds)
        .into_iter()
        .map(|(v, _)| v)
        .collect()
}

/// Each threshold's verdicts with the number of samples they were judged on.
pub fn thresholds_of(
    total: &Totals,
    stats: &[StepStats],
    thresholds: &[Threshold],
) -> Vec<(Verdict, u64)> {
    let mut out = Vec::new();
    for th in thresholds {
        let scope = th.step.clone().unwrap_or_else(|| "all requests".into());
        let (samples, count) = judged(total, stats, th.step.as_deref());
        for (label, q, limit) in [
            ("p50", 0.5, &th.p50),
            ("p95", 0.95, &th.p95),
            ("p99", 0.99, &th.p99),
            ("max", 1.0, &th.max),
        ] {
            if let Some(limit) = limit {
                let label = format!("{scope} {label}");
                let verdict = latency_verdict(&label, limit, q, (&samples, count));
                out.push((verdict, count));
            }
        }
        if let Some(limit) = th.error_rate {
            out.push(error_rate_verdict(&scope, limit, count, &samples));
        }
    }
    out
}

/// The samples a threshold judges and their count: all requests, or the rows of one step.
/// `unsent` failures (steps that sent nothing) count in the error rate.
fn judged(total: &Totals, stats: &[StepStats], step: Option<&str>) -> (Tally, u64) {
    let Some(name) = step else {
        let samples = Tally {
            hist: decode(&total.histogram).unwrap_or_else(new_histogram),
            failures: total.failures,
            unsent: total.unsent,
        };
        return (samples, total.requests);
    };
    let mut rows: Vec<_> = stats
        .iter()
        .filter(|s| s.name == name && s.kind == StatKind::Http)
        .collect();
    if rows.is_empty() {
        // Not a request: a wait (event, state, take). Queue rows are never what a step's
        // latency means.
        rows = stats
            .iter()
            .filter(|s| s.name == name && s.kind != StatKind::Queue)
            .collect();
    }
    let mut samples = Tally::default();
    let mut count = 0;
    for s in rows {
        // A row whose histogram cannot be read still counts its samples and failures.
        let _ = samples.add(decode(&s.histogram).as_ref(), s.failures, s.unsent);
        count += s.count;
    }
    (samples, count)
}

/// `label` (quantile `q`, 1.0 the maximum) against `limit`. `resolve` renders and checks
/// every limit before a run; a limit that is still not a duration here (a template judged
/// without its variables) fails, and says so, rather than leave the verdict out.
fn latency_verdict(label: &str, limit: &str, q: f64, (samples, count): (&Tally, u64)) -> Verdict {
    let Ok(limit_d) = crate::plan::duration::parse(limit.trim()) else {
        return Verdict {
            label: label.to_string(),
            limit: format!("<= {limit}"),
            measured: "the limit is not a duration".into(),
            passed: false,
        };
    };
    let h = &samples.hist;
    let measured = (!h.is_empty()).then(|| {
        if q >= 1.0 {
            h.max()
        } else {
            h.value_at_quantile(q)
        }
    });
    Verdict {
        label: label.to_string(),
        limit: format!("<= {limit}"),
        measured: measured.map_or("no samples".into(), |us| {
            format!("{:.1}ms", us as f64 / 1000.0)
        }),
        passed: count > 0 && measured.is_some_and(|us| us as u128 <= limit_d.as_micros()),
    }
}

/// The share of failed attempts (samples and steps that sent nothing) against `limit`.
fn error_rate_verdict(scope: &str, limit: f64, count: u64, samples: &Tally) -> (Verdict, u64) {
    let (failures, attempts) = (samples.failures, count + samples.unsent);
    let rate = if attempts == 0 {
        0.0
    } else {
        failures as f64 / attempts as f64
    };
    let verdict = Verdict {
        label: format!("{scope} error rate"),
        limit: format!("<= {:.2}%", limit * 100.0),
        measured: format!("{:.2}% ({failures} of {attempts})", rate * 100.0),
        passed: attempts > 0 && rate <= limit,
    };
    (verdict, attempts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Phase;

    fn row(kind: StatKind, name: &str, samples: &[u64], failed: u64, unsent: u64) -> StepStats {
        let mut t = Tally::default();
        for (i, us) in samples.iter().enumerate() {
            t.record(*us, (i as u64) < failed);
        }
        (0..unsent).for_each(|_| t.record_unsent());
        t.step_stats((Phase::Tasks, kind, name.into()), None, 1.0, true)
    }

    fn threshold(json: serde_json::Value) -> Threshold {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn judges_all_requests_a_step_or_a_wait_and_counts_what_was_not_sent() {
        let get = row(StatKind::Http, "get", &[1_000, 2_000, 3_000, 40_000], 1, 1);
        let queue = row(StatKind::Queue, "get", &[900_000], 0, 0);
        let delivered = row(StatKind::Event, "delivered", &[5_000, 7_000], 0, 0);
        let stats = [get, queue, delivered];
        let total = {
            let mut t = Tally::default();
            for us in [1_000, 2_000, 3_000, 40_000] {
                t.record(us, false);
            }
            t.failures = 1;
            t.record_unsent();
            t.totals(1.0, true)
        };
        let judged = thresholds_of(
            &total,
            &stats,
            &[
                threshold(serde_json::json!({"max": "41ms", "error_rate": 0.5})),
                threshold(serde_json::json!({"step": "get", "p50": "1ms"})),
                threshold(serde_json::json!({"step": "delivered", "p99": "8ms", "p95": "later"})),
                threshold(serde_json::json!({"step": "missing", "p95": "1s", "error_rate": 0.0})),
            ],
        );
        let got: Vec<_> = judged
            .iter()
            .map(|(v, n)| (v.label.as_str(), v.measured.as_str(), v.passed, *n))
            .collect();
        assert_eq!(
            got,
            [
                ("all requests max", "40.0ms", true, 4),
                // 2 failures (one not sent) of 5 attempts
                ("all requests error rate", "40.00% (2 of 5)", true, 5),
                // the HTTP rows of `get`, not its queue row
                ("get p50", "2.0ms", false, 4),
                ("delivered p95", "the limit is not a duration", false, 2),
                ("delivered p99", "7.0ms", true, 2),
                ("missing p95", "no samples", false, 0),
                ("missing error rate", "0.00% (0 of 0)", false, 0),
            ]
        );
    }
}
