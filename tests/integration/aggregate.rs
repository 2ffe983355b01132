//! The aggregator places every event by the time it carries, not by when it is aggregated:
//! it takes samples in batches up to a second apart, so a figure stamped on arrival would
//! land in a later second or load level.

use std::sync::Arc;
use std::time::{Duration, Instant};

use acaload::measure::metrics::{self, Event};
use acaload::plan::Phase;
use acaload::plan::shape::Level;
use acaload::results::StatKind;

#[tokio::test]
async fn seconds_levels_and_series_follow_the_events_own_times() {
    // Everything below happened in the 5 s before it is aggregated.
    let start = Instant::now() - Duration::from_secs(5);
    let at = |secs: f64| start + Duration::from_secs_f64(secs);
    let (rec, _live, handle) = metrics::start(start);
    // The shape asks for `users` from `secs` on, in load level `level` (None: the end).
    let shape = |users: u64, level: Option<usize>, secs: f64| {
        rec.send(Event::Target {
            users,
            at: at(secs),
        });
        let next = level.map(|index| Level {
            index,
            users,
            from_users: None,
        });
        rec.send(Event::Level { next, at: at(secs) });
    };
    shape(1, Some(0), 0.0);
    rec.send(Event::UserStarted(at(0.2)));
    shape(2, Some(1), 1.1);
    rec.send(Event::UserStarted(at(1.3)));
    // Sent at 1.8 s, answered 0.5 s later: second 1 of the timeline (it was sent then) and
    // second 2 of the step's series (it completed then).
    rec.send(Event::Sample {
        phase: Phase::Tasks,
        kind: StatKind::Http,
        name: Arc::from("get"),
        method: Some("GET"),
        micros: 500_000,
        at: at(1.8),
        failure: None,
    });
    rec.send(Event::UserStopped(at(2.6)));
    // Nothing happens in second 3: it ends as second 2 did, not with the target of second 4.
    shape(0, None, 4.5);
    drop(rec);
    let f = handle.await.unwrap().finish(Duration::from_secs(5));

    let seconds: Vec<(u64, u64, u64)> = f
        .timeline
        .iter()
        .map(|s| (s.users, s.target_users, s.requests))
        .collect();
    assert_eq!(
        seconds,
        vec![(1, 1, 0), (2, 2, 1), (1, 2, 0), (1, 2, 0), (1, 0, 0)]
    );
    let series: Vec<(u64, u64)> = f.series.iter().map(|s| (s.t, s.count)).collect();
    assert_eq!(series, vec![(2, 1)]);
    let levels: Vec<(f64, f64)> = f.levels.iter().map(|l| (l.from_secs, l.to_secs)).collect();
    assert_eq!(levels.len(), 2, "{levels:?}");
    assert!(
        (levels[0].0 - 0.0).abs() < 1e-6 && (levels[0].1 - 1.1).abs() < 1e-6,
        "{levels:?}"
    );
    assert!(
        (levels[1].0 - 1.1).abs() < 1e-6 && (levels[1].1 - 4.5).abs() < 1e-6,
        "{levels:?}"
    );
}
