//! The live view while a run goes on: a few updating lines on a terminal (indicatif),
//! or one plain line every few seconds when stderr is not a terminal (CI, Kubernetes logs).

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::measure::metrics::{Finished, Live};
use crate::results::StatKind;

/// The main line: time, users, request rate, failures.
pub fn headline(l: &Live, elapsed: Duration, total: Duration, rate: f64) -> String {
    format!(
        "[{:>6} / {}] users {}/{} | requests {} ({rate:.1}/s) | failures {}",
        crate::plan::duration::format(Duration::from_secs(elapsed.as_secs())),
        crate::plan::duration::format(total),
        l.users,
        l.target,
        l.requests,
        l.failures
    )
}

/// The slowest steps by p95 (HTTP and time-to-state), at most three.
pub fn slowest(snap: &Finished) -> String {
    let mut rows: Vec<_> = snap
        .stats
        .iter()
        .filter(|s| matches!(s.kind, StatKind::Http | StatKind::Poll) && s.count > 0)
        .collect();
    rows.sort_by(|a, b| b.latency_ms.p95.total_cmp(&a.latency_ms.p95));
    let parts: Vec<String> = rows
        .iter()
        .take(3)
        .map(|s| format!("{} {:.0}ms", s.name, s.latency_ms.p95))
        .collect();
    if parts.is_empty() {
        "slowest p95: -".into()
    } else {
        format!("slowest p95: {}", parts.join(", "))
    }
}

/// Event latencies (delivery through the mediator, ping round trips).
pub fn delivery(snap: &Finished) -> Option<String> {
    let parts: Vec<String> = snap
        .stats
        .iter()
        .filter(|s| s.kind == StatKind::Event && s.count > 0)
        .map(|s| {
            format!(
                "{} p50 {:.0}ms p95 {:.0}ms ({} lost)",
                s.name, s.latency_ms.p50, s.latency_ms.p95, s.failures
            )
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(" | "))
}

/// Shows the live view until the task is aborted.
pub async fn show(
    mut live: watch::Receiver<Live>,
    snaps: watch::Receiver<Option<Arc<Finished>>>,
    start: Instant,
    total: Duration,
) {
    if std::io::stderr().is_terminal() {
        terminal(live, snaps, start, total).await
    } else {
        let every = Duration::from_secs(5);
        let mut last = (Instant::now(), 0u64);
        loop {
            tokio::time::sleep(every).await;
            let l = *live.borrow_and_update();
            let rate = rate(&mut last, l.requests);
            let mut line = headline(&l, start.elapsed(), total, rate);
            if let Some(s) = snaps.borrow().clone() {
                line.push_str(&format!(" | {}", slowest(&s)));
                if let Some(d) = delivery(&s) {
                    line.push_str(&format!(" | {d}"));
                }
            }
            crate::errln!("{line}");
        }
    }
}

fn rate(last: &mut (Instant, u64), requests: u64) -> f64 {
    let now = Instant::now();
    let r =
        requests.saturating_sub(last.1) as f64 / now.duration_since(last.0).as_secs_f64().max(1e-9);
    *last = (now, requests);
    r
}

async fn terminal(
    live: watch::Receiver<Live>,
    snaps: watch::Receiver<Option<Arc<Finished>>>,
    start: Instant,
    total: Duration,
) {
    use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
    let multi = MultiProgress::new();
    let bar = multi.add(ProgressBar::new(total.as_secs().max(1)));
    bar.set_style(
        ProgressStyle::with_template("{bar:30.cyan/blue} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let second = multi.add(ProgressBar::new_spinner());
    second.set_style(
        ProgressStyle::with_template("  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let third = multi.add(ProgressBar::new_spinner());
    third.set_style(
        ProgressStyle::with_template("  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let mut last = (Instant::now(), 0u64);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let _clear = ClearOnDrop(multi.clone());
    loop {
        tick.tick().await;
        let l = *live.borrow();
        let r = rate(&mut last, l.requests);
        bar.set_position(start.elapsed().as_secs().min(total.as_secs()));
        bar.set_message(headline(&l, start.elapsed(), total, r));
        if let Some(s) = snaps.borrow().clone() {
            second.set_message(slowest(&s));
            third.set_message(delivery(&s).unwrap_or_default());
        }
    }
}

/// Removes the live lines when the view stops, so the final report starts clean.
struct ClearOnDrop(indicatif::MultiProgress);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        let _ = self.0.clear();
    }
}
