//! Threshold verdicts: each of the plan's `thresholds` judged on the exact histograms and
//! counts of a run, a load level or merged shards.

use crate::plan::Threshold;
use crate::results::{Results, StatKind, Verdict};

/// Evaluates the plan's thresholds against the results.
pub fn thresholds(results: &Results, thresholds: &[Threshold]) -> Vec<Verdict> {
    thresholds_of(&results.total, &results.stats, thresholds)
        .into_iter()
        .map(|(v, _)| v)
        .collect()
}

/// Each threshold's verdicts with the number of samples they were judged on.
pub fn thresholds_of(
    total: &crate::results::Totals,
    stats: &[crate::results::StepStats],
    thresholds: &[Threshold],
) -> Vec<(Verdict, u64)> {
    let mut out = Vec::new();
    for th in thresholds {
        let scope = th.step.clone().unwrap_or_else(|| "all requests".into());
        // `unsent`: failures of steps that sent nothing; they count in the error rate.
        let (hist, count, failures, unsent) = match &th.step {
            None => (
                crate::measure::histogram::decode(&total.histogram),
                total.requests,
                total.failures,
                total.unsent,
            ),
            Some(name) => {
                let mut h = crate::measure::histogram::new_histogram();
                let (mut c, mut f, mut u) = (0, 0, 0);
                let mut kinds: Vec<_> = stats
                    .iter()
                    .filter(|s| &s.name == name && s.kind == StatKind::Http)
                    .collect();
                if kinds.is_empty() {
                    // Not a request: a wait (event, state, take). Queue rows are never
                    // what a step's latency means.
                    kinds = stats
                        .iter()
                        .filter(|s| &s.name == name && s.kind != StatKind::Queue)
                        .collect();
                }
                for s in kinds {
                    if let Some(sh) = crate::measure::histogram::decode(&s.histogram) {
                        let _ = h.add(&sh);
                    }
                    c += s.count;
                    f += s.failures;
                    u += s.unsent;
                }
                (Some(h), c, f, u)
            }
        };
        for (label, q, limit) in [
            ("p50", 0.5, &th.p50),
            ("p95", 0.95, &th.p95),
            ("p99", 0.99, &th.p99),
            ("max", 1.0, &th.max),
        ] {
            let Some(limit) = limit else { continue };
            // `resolve` renders and checks every limit before a run; a limit that is still
            // not a duration here (a template judged without its variables) fails, and
            // says so, rather than leave the verdict.
            let Ok(limit_d) = crate::plan::duration::parse(limit.trim()) else {
                out.push((
                    Verdict {
                        label: format!("{scope} {label}"),
                        limit: format!("<= {limit}"),
                        measured: "the limit is not a duration".into(),
                        passed: false,
                    },
                    count,
                ));
                continue;
            };
            let measured = hist.as_ref().filter(|h| !h.is_empty()).map(|h| {
                if q >= 1.0 {
                    h.max()
                } else {
                    h.value_at_quantile(q)
                }
            });
            let passed = count > 0 && measured.is_some_and(|us| us as u128 <= limit_d.as_micros());
            out.push((
                Verdict {
                    label: format!("{scope} {label}"),
                    limit: format!("<= {limit}"),
                    measured: measured.map_or("no samples".into(), |us| {
                        format!("{:.1}ms", us as f64 / 1000.0)
                    }),
                    passed,
                },
                count,
            ));
        }
        if let Some(limit) = th.error_rate {
            let attempts = count + unsent;
            let rate = if attempts == 0 {
                0.0
            } else {
                failures as f64 / attempts as f64
            };
            out.push((
                Verdict {
                    label: format!("{scope} error rate"),
                    limit: format!("<= {:.2}%", limit * 100.0),
                    measured: format!("{:.2}% ({failures} of {attempts})", rate * 100.0),
                    passed: attempts > 0 && rate <= limit,
                },
                attempts,
            ));
        }
    }
    out
}
