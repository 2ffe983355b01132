//! One load level of the shape as it is measured (or merged from shards): the HTTP and
//! event samples completed during it; once closed, its figures are kept final with their
//! histograms encoded and the histograms themselves freed.

use hdrhistogram::Histogram;

use crate::measure::tally::Tally;
use crate::results::{LoadLevel, StatKind};

/// A load level being measured (or merged): samples completed during one part of the shape.
pub(crate) struct LevelAgg {
    pub(crate) level: crate::plan::shape::Level,
    pub(crate) from: f64,
    pub(crate) to: Option<f64>,
    /// Users running (last seen while the level was open).
    pub(crate) users: u64,
    pub(crate) http: Tally,
    /// Event waits; their failures are lost events (`unsent` is not reported).
    pub(crate) events: Tally,
    /// A closed level's final figures, histograms encoded: its two histograms (~190 KB each)
    /// are freed then, so a step shape of hundreds of levels does not hold them all run.
    done: Option<LoadLevel>,
}

impl LevelAgg {
    pub(crate) fn new(level: crate::plan::shape::Level, from: f64) -> LevelAgg {
        LevelAgg {
            level,
            from,
            to: None,
            users: 0,
            http: Tally::default(),
            events: Tally::default(),
            done: None,
        }
    }

    /// The shape is still in this level.
    pub(crate) fn is_open(&self) -> bool {
        self.to.is_none()
    }

    /// Where samples of `kind` count in a level: HTTP requests and event waits only.
    pub(crate) fn tally(&mut self, kind: StatKind) -> Option<&mut Tally> {
        match kind {
            StatKind::Http => Some(&mut self.http),
            StatKind::Event => Some(&mut self.events),
            _ => None,
        }
    }

    /// Closes the level at `t`: its figures are final, its histograms kept encoded only.
    pub(crate) fn close(&mut self, t: f64) {
        self.to = Some(t);
        self.done = Some(self.result(t, true));
        let empty =
            || Histogram::new_with_bounds(1, 2, 1).expect("static histogram bounds are valid");
        self.http.hist = empty();
        self.events.hist = empty();
    }

    /// The level as results show it; an open level ends at `now` (seconds since the start).
    pub(crate) fn result(&self, now: f64, with_histograms: bool) -> LoadLevel {
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
        let http = self.http.totals(secs, with_histograms);
        let events = self.events.totals(secs, with_histograms);
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
