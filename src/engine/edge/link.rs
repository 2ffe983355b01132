//! Whether an agent's socket to the mediator is up, and when it dropped: Credo's reconnect
//! backoff ([`Backoff`]), and the recent outages of a socket ([`Link`]) so that a message
//! that never arrived can be counted lost *because the peer's socket was down* rather than
//! as a plain timeout. Pure: times are passed in.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Credo's first reconnect delay (`baseMediatorReconnectionIntervalMs`, 100 ms).
pub const FIRST_DELAY: Duration = Duration::from_millis(100);

/// Outages remembered per socket: enough for the waits a run has open at once.
const OUTAGES: usize = 16;

/// Credo's reconnect delays: 100 ms, doubling after every attempt, with no cap (Credo's
/// `maximumMediatorReconnectionIntervalMs` defaults to infinity); back to 100 ms once a
/// socket is open again.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: FIRST_DELAY }
    }
}

impl Backoff {
    /// The delay before the next attempt; the one after is twice as long.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        // a day is already far past any run; saturate instead of overflowing
        self.next = (d * 2).min(Duration::from_secs(86_400));
        d
    }
}

/// One time the socket was down.
#[derive(Debug, Clone)]
pub struct Outage {
    pub from: Instant,
    /// When a new socket was open and associated again (`None`: still down).
    pub to: Option<Instant>,
    /// Why it dropped.
    pub why: String,
    /// Attempts that failed before it was back, and the last one's error.
    pub failed_attempts: u32,
    pub last_error: Option<String>,
}

/// The state of an agent's socket over time.
#[derive(Debug, Default)]
pub struct Link {
    outages: VecDeque<Outage>,
}

impl Link {
    /// The socket dropped at `at`.
    pub fn dropped(&mut self, at: Instant, why: String) {
        if self.outages.len() >= OUTAGES {
            self.outages.pop_front();
        }
        self.outages.push_back(Outage {
            from: at,
            to: None,
            why,
            failed_attempts: 0,
            last_error: None,
        });
    }

    /// A reconnect attempt failed.
    pub fn attempt_failed(&mut self, error: String) {
        if let Some(o) = self.outages.back_mut().filter(|o| o.to.is_none()) {
            o.failed_attempts += 1;
            o.last_error = Some(error);
        }
    }

    /// The socket is open and associated again at `at`; returns the outage it ended.
    pub fn back(&mut self, at: Instant) -> Option<Outage> {
        let o = self.outages.back_mut().filter(|o| o.to.is_none())?;
        o.to = Some(at);
        Some(o.clone())
    }

    /// The current outage, while the socket is down.
    pub fn down(&self) -> Option<&Outage> {
        self.outages.back().filter(|o| o.to.is_none())
    }

    /// The first outage that overlaps `[from, to]`: the socket was down at some moment of it.
    pub fn down_during(&self, from: Instant, to: Instant) -> Option<&Outage> {
        self.outages
            .iter()
            .find(|o| o.from <= to && o.to.is_none_or(|back| back >= from))
    }
}

impl Outage {
    /// One line for a failure's example: why it dropped, how long it was down, the attempts.
    pub fn describe(&self, now: Instant) -> String {
        let down = self.to.unwrap_or(now).saturating_duration_since(self.from);
        let state = if self.to.is_some() {
            "back after"
        } else {
            "still down after"
        };
        let mut s = format!(
            "{}; {state} {}",
            self.why,
            crate::plan::duration::format(down)
        );
        if self.failed_attempts > 0 {
            s.push_str(&format!(
                ", {} failed reconnect attempt(s), the last: {}",
                self.failed_attempts,
                self.last_error.as_deref().unwrap_or("?")
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_credos_100ms_doubling_without_cap() {
        let mut b = Backoff::default();
        let ms: Vec<u128> = (0..8).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1600, 3200, 6400, 12800]);
        for _ in 0..100 {
            b.next_delay();
        }
        assert_eq!(b.next_delay(), Duration::from_secs(86_400));
    }

    #[test]
    fn an_outage_counts_for_waits_it_overlaps() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        let mut link = Link::default();
        assert!(link.down().is_none());
        link.dropped(s(10), "the socket ended".into());
        link.attempt_failed("connection refused".into());
        assert!(link.down().is_some());
        assert!(link.down_during(s(0), s(5)).is_none(), "before it");
        assert!(link.down_during(s(5), s(11)).is_some(), "spans its start");
        let o = link.back(s(20)).unwrap();
        assert_eq!(o.failed_attempts, 1);
        assert!(link.down().is_none());
        assert!(link.down_during(s(12), s(13)).is_some(), "inside it");
        assert!(link.down_during(s(19), s(30)).is_some(), "spans its end");
        assert!(link.down_during(s(21), s(30)).is_none(), "after it");
        assert_eq!(
            o.describe(s(99)),
            "the socket ended; back after 10s, 1 failed reconnect attempt(s), the last: connection refused"
        );
    }
}
