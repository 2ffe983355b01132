//! One load level of the shape as it is measured (or merged from shards): the HTTP and
//! event samples completed during it; once closed, its figures are kept final with their
//! histograms encoded and the histograms themselves freed.

use hdrhistogram::Histogram;

use crate::measure::histogram::new_histogram;
use crate::measure::metrics::totals;
use crate::results::LoadLevel;

/// A load level being measured (or merged): samples completed during one part of the shape.
pub struct LevelAgg {
    pub level: crate::plan::shape::Level,
    pub from: f64,
    pub to: Option<f64>,
    /// Users running (last seen while the level was open).
    pub users: u64,
    pub http: Histogram<u64>,
    pub http_failures: u64,
    /// Of `http_failures`: request steps that failed without sending.
    pub http_unsent: u64,
    pub events: Histogram<u64>,
    pub event_failures: u64,
    /// A closed level's final figures, histograms encoded: its two histograms (~190 KB each)
    /// are freed then, so a step shape of hundreds of levels does not hold them all run.
    pub done: Option<LoadLevel>,
}

impl LevelAgg {
    pub fn new(level: crate::plan::shape::Level, from: f64) -> LevelAgg {
        LevelAgg {
            level,
            from,
            to: None,
            users: 0,
            http: new_histogram(),
            http_failures: 0,
            http_unsent: 0,
            events: new_histogram(),
            event_failures: 0,
            done: None,
        }
    }

    /// Closes the level at `t`: its figures are final, its histograms kept encoded only.
    pub fn close(&mut self, t: f64) {
        self.to = Some(t);
        self.done = Some(self.result(t, true));
        let empty =
            || Histogram::new_with_bounds(1, 2, 1).expect("static histogram bounds are valid");
        self.http = empty();
        self.events = empty();
    }

    /// The level as results show it; an open level ends at `now` (seconds since the start).
    pub fn result(&self, now: f64, with_histograms: bool) -> LoadLevel {
        if let Some(done) = &self.done {
            let mut l = done.clone();
            if !with_histograms {
                l.histogram.clear();
                l.event_histogram.clear();
            }
            return l;
        }
        let to = self.to.unwrap_or(now);
        let secs = to - self.from;
        let http = totals(
            &self.http,
            self.http_failures,
            self.http_unsent,
            secs,
            with_histograms,
        );
        let events = totals(&self.events, self.event_failures, 0, secs, with_histograms);
        LoadLevel {
            index: self.level.index,
            target_users: self.level.users,
            from_users: self.level.from_users,
            users: self.users,
            from_secs: self.from,
            to_secs: to,
            requests: http.requests,
            failures: http.failures,
            unsent: http.unsent,
            per_second: http.per_second,
            latency_ms: http.latency_ms,
            histogram: http.histogram,
            events: events.requests,
            event_failures: events.failures,
            event_latency_ms: events.latency_ms,
            event_histogram: events.histogram,
            agents: Vec::new(),
        }
    }
}
