//! The abort watcher: judges the plan's `abort: true` thresholds on every snapshot and
//! stops the run at the load level where one fails.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::plan::Threshold;

/// Checks the plan's `abort: true` thresholds on every snapshot (each second) against the
/// current load level (or the whole run when the shape has no levels) and stops the run at
/// the first that fails with enough samples to judge.
pub async fn watch_thresholds(
    thresholds: Vec<Threshold>,
    mut snapshots: tokio::sync::watch::Receiver<Option<Arc<crate::measure::metrics::Finished>>>,
    stop: CancellationToken,
    shard: bool,
) -> Option<crate::results::ThresholdStop> {
    let watched: Vec<_> = thresholds.into_iter().filter(|t| t.abort).collect();
    // The last closed level judged in its final state (levels close in order).
    let mut closed_judged = None;
    loop {
        tokio::select! {
            changed = snapshots.changed() => if changed.is_err() { return None },
            _ = stop.cancelled() => return None,
        }
        let Some(snap) = snapshots.borrow_and_update().clone() else {
            continue;
        };
        // The level in progress, and the one that closed since the last look (its last
        // moments may fall between two snapshots); without levels, the whole run.
        let mut candidates: Vec<(
            &crate::results::Totals,
            &[crate::results::StepStats],
            Option<u64>,
        )> = Vec::new();
        for l in &snap.judged {
            if l.closed {
                if closed_judged >= Some(l.index) {
                    continue;
                }
                closed_judged = Some(l.index);
            }
            candidates.push((&l.total, &l.stats, Some(l.target_users)));
        }
        if snap.judged.is_empty() {
            candidates.push((&snap.total, &snap.stats, None));
        }
        let failed = candidates.into_iter().find_map(|(total, stats, level)| {
            watched.iter().find_map(|t| {
                crate::measure::thresholds::thresholds_of(total, stats, std::slice::from_ref(t))
                    .into_iter()
                    .find(|(v, samples)| !v.passed && *samples >= t.min_samples.unwrap_or(20))
                    .map(|(v, _)| (v, level))
            })
        });
        if let Some((verdict, level)) = failed {
            if stop.is_cancelled() {
                return None;
            }
            let last = snap.timeline.last();
            stop.cancel();
            return Some(crate::results::ThresholdStop {
                verdict,
                at_secs: snap.timeline.len() as f64,
                users: last.map_or(0, |s| s.users),
                target_users: level.unwrap_or(last.map_or(0, |s| s.target_users)),
                shard,
            });
        }
    }
}
