//! A latency histogram with its failure counts: what the aggregator keeps per step, per load
//! level and for the whole run, what merging and thresholds add up, and the one place their
//! result figures ([`Totals`], [`StepStats`]) are made.

use hdrhistogram::Histogram;

use crate::measure::histogram::{self, encode, latency, new_histogram};
use crate::plan::Phase;
use crate::results::{StatKind, StepStats, Totals};

/// Samples (µs) and failures of one step, level or run.
pub(crate) struct Tally {
    pub(crate) hist: Histogram<u64>,
    pub(crate) failures: u64,
    /// Of `failures`: those without a sample (a request step that sent nothing).
    pub(crate) unsent: u64,
}

impl Default for Tally {
    fn default() -> Tally {
        Tally {
            hist: new_histogram(),
            failures: 0,
            unsent: 0,
        }
    }
}

/// A histogram that cannot be added to another (a corrupt results file).
#[derive(Debug)]
pub(crate) struct Unmergeable;

impl Tally {
    /// One sample of `micros`, failed or not.
    pub(crate) fn record(&mut self, micros: u64, failed: bool) {
        histogram::record(&mut self.hist, micros);
        self.failures += u64::from(failed);
    }

    /// A failure without a sample.
    pub(crate) fn record_unsent(&mut self) {
        self.failures += 1;
        self.unsent += 1;
    }

    /// Adds a part's counts and its samples (`hist`, when it has any).
    pub(crate) fn add(
        &mut self,
        hist: Option<&Histogram<u64>>,
        failures: u64,
        unsent: u64,
    ) -> Result<(), Unmergeable> {
        self.failures += failures;
        self.unsent += unsent;
        match hist {
            Some(h) => self.hist.add(h).map_err(|_| Unmergeable),
            None => Ok(()),
        }
    }

    /// Samples over `secs`: count, failures, rate and latency (histogram serialized when asked).
    pub(crate) fn totals(&self, secs: f64, with_histogram: bool) -> Totals {
        let h = &self.hist;
        Totals {
            requests: h.len(),
            failures: self.failures,
            unsent: self.unsent,
            per_second: h.len() as f64 / secs.max(1e-9),
            latency_ms: latency(h),
            histogram: if with_histogram {
                encode(h)
            } else {
                String::new()
            },
        }
    }

    /// The statistics row of step `(phase, kind, name)` over `secs`.
    pub(crate) fn step_stats(
        &self,
        (phase, kind, name): (Phase, StatKind, String),
        method: Option<String>,
        secs: f64,
        with_histogram: bool,
    ) -> StepStats {
        let t = self.totals(secs, with_histogram);
        StepStats {
            phase,
            kind,
            name,
            method,
            count: t.requests,
            failures: t.failures,
            unsent: t.unsent,
            latency_ms: t.latency_ms,
            per_second: t.per_second,
            histogram: t.histogram,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_row_has_the_figures_of_its_totals() {
        let mut t = Tally::default();
        for v in [1_000, 2_000, 3_000] {
            t.record(v, v == 2_000);
        }
        t.record_unsent();
        let totals = t.totals(2.0, true);
        assert_eq!((totals.requests, totals.failures, totals.unsent), (3, 2, 1));
        assert_eq!(totals.per_second, 1.5);
        let row = t.step_stats(
            (Phase::Tasks, StatKind::Http, "ping".into()),
            Some("GET".into()),
            2.0,
            true,
        );
        assert_eq!(
            (row.count, row.failures, row.unsent, row.per_second),
            (3, 2, 1, 1.5)
        );
        let json = |l| serde_json::to_value(l).unwrap();
        assert_eq!(json(&row.latency_ms), json(&totals.latency_ms));
        assert_eq!(row.histogram, totals.histogram);
        assert!(t.totals(2.0, false).histogram.is_empty());
    }
}
