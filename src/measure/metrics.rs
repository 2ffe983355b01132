//! Metrics: users send samples over a channel to one aggregator task that owns plain
//! HDR histograms (µs), counts, failures by reason and the per-second time series.
//! No locks on the hot path.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use crate::measure::histogram::Recent;
use crate::measure::levels::LevelAgg;
use crate::measure::prometheus::{Exporter, StepLabels, StepSeries};
use crate::measure::tally::Tally;
use crate::plan::Phase;
use crate::results::{
    AgentGauges, EventCounts, FailureGroup, LoadLevel, Second, StatKind, StepSecond, StepStats,
    Totals, UserCounts,
};

/// A failed step: a stable `reason` to group by, and a `detail` example.
#[derive(Debug, Clone)]
pub struct Failure {
    pub reason: String,
    pub detail: String,
}

/// What users and the controller report.
#[derive(Debug)]
pub enum Event {
    Sample {
        phase: Phase,
        kind: StatKind,
        name: Arc<str>,
        method: Option<&'static str>,
        micros: u64,
        at: Instant,
        failure: Option<Failure>,
    },
    /// A step that failed without a sample: nothing was sent or waited for (a template or a
    /// `when` that could not be evaluated, a request that never got a connection, an
    /// arrival no user was free for). Counted as a failure of the step's `kind` row, never
    /// as a request and never in a latency histogram.
    Failure {
        phase: Phase,
        kind: StatKind,
        name: Arc<str>,
        at: Instant,
        failure: Failure,
    },
    /// A user started (at this time).
    UserStarted(Instant),
    /// A user finished (at this time).
    UserStopped(Instant),
    SetupOk,
    StoppedByError,
    Iteration,
    /// The shape's target changed (this shard's share) at `at`.
    Target {
        users: u64,
        at: Instant,
    },
    /// The shape entered a new load level at `at` (`next` None: the last one ended).
    Level {
        next: Option<crate::plan::shape::Level>,
        at: Instant,
    },
    Gauge {
        agent: String,
        at: Instant,
        sample: crate::results::GaugeSample,
    },
    EventCounts {
        received: u64,
        duplicates: u64,
    },
}

impl Event {
    /// When this event changes the users running or their target.
    fn changes_users_at(&self) -> Option<Instant> {
        match self {
            Event::UserStarted(at) | Event::UserStopped(at) | Event::Target { at, .. } => Some(*at),
            _ => None,
        }
    }
}

/// A cheap handle users clone to report events.
#[derive(Debug, Clone)]
pub struct Recorder {
    tx: mpsc::UnboundedSender<Event>,
    /// Cancels the aggregator's pause when the last recorder is dropped, so the run's end
    /// is aggregated at once rather than at the next batch.
    _open: Arc<tokio_util::sync::DropGuard>,
}

impl Recorder {
    pub fn send(&self, e: Event) {
        // The aggregator outlives every user; a send after it stopped is harmless.
        let _ = self.tx.send(e);
    }
}

/// Live numbers for the progress line.
#[derive(Debug, Clone, Copy, Default)]
pub struct Live {
    pub users: u64,
    pub target: u64,
    pub requests: u64,
    pub failures: u64,
}

/// Step identity in the aggregator: phase, kind and name.
type StatKey = (Phase, StatKind, Arc<str>);

/// Everything aggregated, turned into results by [`Aggregate::finish`].
pub struct Aggregate {
    start: Instant,
    stats: HashMap<StatKey, Stat>,
    failures: HashMap<(Phase, Arc<str>, String), (u64, String)>,
    timeline: Vec<Second>,
    users: UserCounts,
    live: Live,
    /// Every HTTP request of the run.
    total: Tally,
    agents: Vec<AgentGauges>,
    events: Option<EventCounts>,
    /// The second being filled and its per-step latencies (by completion time).
    current: u64,
    this_second: HashMap<StatKey, (Recent, u64)>,
    series: Vec<StepSecond>,
    /// One entry per part (step, stage) of the closed-model shape: the load levels.
    levels: Vec<LevelAgg>,
    /// Per-step statistics of the current level, when thresholds are checked during the run.
    level_steps: Option<HashMap<StatKey, Stat>>,
    /// The level that closed last, as judged (complete: snapshots are once a second and a
    /// level may close between two).
    closed_level: Option<Arc<LevelView>>,
    /// The Prometheus series (`--metrics`), and each step's, fed as samples arrive.
    prometheus: Option<Arc<Exporter>>,
    prometheus_steps: HashMap<StatKey, StepSeries>,
    /// Requests and failures already counted in the Prometheus counters.
    prometheus_seen: (u64, u64),
}

/// One step's samples, and its method once a sample named it.
struct Stat {
    method: Option<&'static str>,
    tally: Tally,
}

impl Stat {
    /// The statistic of `key` in `map`, made on first use.
    fn of<'a>(
        map: &'a mut HashMap<StatKey, Stat>,
        key: StatKey,
        method: Option<&'static str>,
    ) -> &'a mut Tally {
        let s = map.entry(key).or_insert_with(|| Stat {
            method,
            tally: Tally::default(),
        });
        if s.method.is_none() {
            s.method = method;
        }
        &mut s.tally
    }
}

/// Starts the aggregator; returns the recorder, the live view and the task's handle.
pub fn start(
    start: Instant,
) -> (
    Recorder,
    watch::Receiver<Live>,
    tokio::task::JoinHandle<Aggregate>,
) {
    let (recorder, live, _snapshots, handle) = start_with_snapshots(start, None, false, None);
    (recorder, live, handle)
}

/// The longest the aggregator lets samples gather between batches. Every figure is placed by
/// the time its event carries, not by when it is aggregated, so the pause only delays the live
/// counters.
const BATCH: Duration = Duration::from_secs(1);
/// The aggregator's first pause; later ones follow the rate.
const FIRST_PAUSE: Duration = Duration::from_millis(50);
/// The most samples the aggregator takes from the channel at once, and about how many it
/// lets gather before it takes them.
const BATCH_LEN: usize = 256;

/// What [`start_with_snapshots`] returns: the recorder, the live counters, the
/// snapshots and the aggregator's handle.
pub type Started = (
    Recorder,
    watch::Receiver<Live>,
    watch::Receiver<Option<Arc<Finished>>>,
    tokio::task::JoinHandle<Aggregate>,
);

/// Like [`start`], and also publishes the results so far every `every` (for the live
/// terminal view, `--metrics` and `--web`).
/// With `histograms`, the snapshots carry them, and the current load level's per-step
/// statistics (for thresholds checked during the run).
/// With `prometheus`, the aggregator feeds its series too.
pub fn start_with_snapshots(
    start: Instant,
    every: Option<Duration>,
    histograms: bool,
    prometheus: Option<Arc<Exporter>>,
) -> Started {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let open = tokio_util::sync::CancellationToken::new();
    let closed = open.clone();
    let (live_tx, live_rx) = watch::channel(Live::default());
    let (snap_tx, snap_rx) = watch::channel(None);
    let handle = tokio::spawn(async move {
        let mut agg = Aggregate::new(start, histograms, prometheus);
        let mut buf = Vec::with_capacity(BATCH_LEN);
        let mut tick = tokio::time::interval(every.unwrap_or(BATCH));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Samples are taken in batches: while this task pauses it has no waker in the
        // channel, so users send without waking it (rather than a wake-up per request). The
        // pause lasts as long as about BATCH_LEN samples take to come at the last batch's
        // rate, at most BATCH: a light run wakes this task once a second, a busy one keeps
        // few samples waiting. Only when a pause brought nothing does it wait in the channel:
        // a quiet run costs nothing until its next sample.
        let mut idle = true;
        let mut open = true;
        let mut pause = FIRST_PAUSE;
        let mut last = Instant::now();
        while open {
            let ticked = if idle {
                tokio::select! {
                    n = rx.recv_many(&mut buf, BATCH_LEN) => {
                        open = n > 0;
                        false
                    }
                    _ = tick.tick(), if every.is_some() => true,
                }
            } else {
                tokio::select! {
                    _ = tokio::time::sleep(pause) => false,
                    _ = tick.tick(), if every.is_some() => true,
                    // The last recorder is gone: take the rest now.
                    _ = closed.cancelled() => false,
                }
            };
            let mut took = buf.len();
            for e in buf.drain(..) {
                agg.add(e);
            }
            // The rest of what waits, in batches: each await lets this thread's users run.
            while !rx.is_empty() {
                took += rx.recv_many(&mut buf, BATCH_LEN).await;
                for e in buf.drain(..) {
                    agg.add(e);
                }
            }
            // Closed first: once every sender is gone, empty stays empty.
            open = open && !(rx.is_closed() && rx.is_empty());
            idle = took == 0;
            let now = Instant::now();
            if took > 0 {
                let each = now.duration_since(last).as_secs_f64() / took as f64;
                // Shorter at once, longer by doubling (a quiet start does not pile up a BATCH).
                let fits = Duration::try_from_secs_f64(each * BATCH_LEN as f64).unwrap_or(BATCH);
                pause = fits.min(pause * 2).min(BATCH);
            }
            last = now;
            live_tx.send_replace(agg.live);
            if ticked {
                snap_tx.send_replace(Some(Arc::new(agg.snapshot(start.elapsed(), histograms))));
            }
        }
        agg
    });
    let recorder = Recorder {
        tx,
        _open: Arc::new(open.drop_guard()),
    };
    (recorder, live_rx, snap_rx, handle)
}

impl Aggregate {
    /// Nothing aggregated yet; `level_steps` keeps the open level's per-step statistics.
    fn new(start: Instant, level_steps: bool, prometheus: Option<Arc<Exporter>>) -> Aggregate {
        Aggregate {
            start,
            stats: HashMap::new(),
            failures: HashMap::new(),
            timeline: Vec::new(),
            users: UserCounts::default(),
            live: Live::default(),
            total: Tally::default(),
            agents: Vec::new(),
            events: None,
            current: 0,
            this_second: HashMap::new(),
            series: Vec::new(),
            levels: Vec::new(),
            level_steps: level_steps.then(HashMap::new),
            closed_level: None,
            prometheus,
            prometheus_steps: HashMap::new(),
            prometheus_seen: (0, 0),
        }
    }

    fn second(&mut self, at: Instant) -> &mut Second {
        let t = at.saturating_duration_since(self.start).as_secs();
        while self.timeline.len() as u64 <= t {
            let n = self.timeline.len() as u64;
            self.timeline.push(Second {
                t: n,
                target_users: self.live.target,
                users: self.live.users,
                requests: 0,
                failures: 0,
            });
        }
        let i = t as usize;
        &mut self.timeline[i]
    }

    /// Closes finished seconds of the per-step series.
    fn roll(&mut self, now: Instant) {
        let t = now.saturating_duration_since(self.start).as_secs();
        if t > self.current {
            self.flush();
            self.current = t;
        }
    }

    /// The Prometheus series of a step, when they are exported.
    fn prometheus_series(&mut self, key: &StatKey) -> Option<&StepSeries> {
        let p = self.prometheus.as_ref()?;
        Some(
            self.prometheus_steps
                .entry(key.clone())
                .or_insert_with(|| p.step(&StepLabels::new(key.0, key.1, &key.2))),
        )
    }

    fn flush(&mut self) {
        let t = self.current;
        for ((phase, kind, name), (recent, failures)) in self.this_second.iter_mut() {
            if recent.is_empty() {
                continue;
            }
            let [p50, p95, p99] = recent.percentiles();
            self.series.push(StepSecond {
                t,
                phase: *phase,
                kind: *kind,
                name: name.to_string(),
                count: recent.len(),
                failures: *failures,
                p50,
                p95,
                p99,
            });
            recent.reset();
            *failures = 0;
        }
    }

    /// The per-step statistics of the open level, when they are kept.
    fn open_level_steps(&mut self) -> Option<&mut HashMap<StatKey, Stat>> {
        let open = open_level(&self.levels).is_some();
        self.level_steps.as_mut().filter(|_| open)
    }

    fn add(&mut self, e: Event) {
        // A change of the users or their target (by its own time): the seconds before it end
        // with the figures before it, its own second with the new ones.
        let changed = e.changes_users_at();
        if let Some(at) = changed {
            self.second(at);
        }
        match e {
            Event::Sample {
                phase,
                kind,
                name,
                method,
                micros,
                at,
                failure,
            } => self.add_sample((phase, kind, name), method, micros, at, failure),
            Event::Failure {
                phase,
                kind,
                name,
                at,
                failure,
            } => self.add_failure((phase, kind, name), at, failure),
            Event::UserStarted(_) => {
                self.users.started += 1;
                self.live.users += 1;
            }
            Event::UserStopped(_) => self.live.users = self.live.users.saturating_sub(1),
            Event::SetupOk => self.users.setup_ok += 1,
            Event::StoppedByError => self.users.stopped_by_error += 1,
            Event::Iteration => self.users.iterations += 1,
            Event::Target { users, .. } => self.live.target = users,
            Event::Level { next, at } => self.next_level(next, at),
            Event::Gauge { agent, at, sample } => self.add_gauge(agent, at, sample),
            Event::EventCounts {
                received,
                duplicates,
            } => {
                self.events = Some(EventCounts {
                    received,
                    duplicates,
                })
            }
        }
        self.update_users(changed);
    }

    /// A step's sample: its statistics, the open level's, the second's and the failures.
    fn add_sample(
        &mut self,
        key: StatKey,
        method: Option<&'static str>,
        micros: u64,
        at: Instant,
        failure: Option<Failure>,
    ) {
        let failed = failure.is_some();
        self.roll(at + Duration::from_micros(micros));
        let slot = self
            .this_second
            .entry(key.clone())
            .or_insert_with(|| (Recent::default(), 0));
        slot.0.record(micros);
        slot.1 += u64::from(failed);
        if let Some(steps) = self.open_level_steps() {
            Stat::of(steps, key.clone(), method).record(micros, failed);
        }
        if let Some(s) = self.prometheus_series(&key) {
            s.sample(micros.max(1), failed);
        }
        Stat::of(&mut self.stats, key.clone(), method).record(micros, failed);
        if let Some(level) = open_level_mut(&mut self.levels).and_then(|l| l.tally(key.1)) {
            level.record(micros, failed);
        }
        let (phase, kind, name) = key;
        if let Some(f) = failure {
            self.add_failure_group(phase, name, f);
        }
        if kind == StatKind::Http {
            self.total.record(micros, failed);
            self.live.requests += 1;
            self.live.failures += u64::from(failed);
            let sec = self.second(at);
            sec.requests += 1;
            sec.failures += u64::from(failed);
        } else if failed {
            self.live.failures += 1;
            self.second(at).failures += 1;
        }
    }

    /// A step that failed without a sample. Not in the per-second latency series: there is
    /// no latency to chart.
    fn add_failure(&mut self, key: StatKey, at: Instant, failure: Failure) {
        if let Some(steps) = self.open_level_steps() {
            Stat::of(steps, key.clone(), None).record_unsent();
        }
        if let Some(s) = self.prometheus_series(&key) {
            s.failure();
        }
        Stat::of(&mut self.stats, key.clone(), None).record_unsent();
        if let Some(level) = open_level_mut(&mut self.levels).and_then(|l| l.tally(key.1)) {
            level.record_unsent();
        }
        let (phase, kind, name) = key;
        self.add_failure_group(phase, name, failure);
        if kind == StatKind::Http {
            self.total.record_unsent();
        }
        self.live.failures += 1;
        self.second(at).failures += 1;
    }

    /// Counts a failure by its step and reason, keeping the first detail as the example.
    fn add_failure_group(&mut self, phase: Phase, name: Arc<str>, failure: Failure) {
        self.failures
            .entry((phase, name, failure.reason))
            .or_insert((0, failure.detail))
            .0 += 1;
    }

    /// Closes the open load level at `at` (judged, when thresholds are checked during the
    /// run) and opens `next`.
    fn next_level(&mut self, next: Option<crate::plan::shape::Level>, at: Instant) {
        let t = at.saturating_duration_since(self.start).as_secs_f64();
        let index = self.levels.len().saturating_sub(1);
        if let Some(open) = open_level_mut(&mut self.levels) {
            open.to = Some(t);
            if let Some(steps) = &self.level_steps {
                self.closed_level = Some(Arc::new(level_view(index, open, steps, t)));
            }
            open.close(t);
        }
        if let Some(steps) = &mut self.level_steps {
            steps.clear();
        }
        if let Some(next) = next {
            self.levels.push(LevelAgg::new(next, t));
        }
    }

    fn add_gauge(&mut self, agent: String, at: Instant, mut sample: crate::results::GaugeSample) {
        sample.t = at.saturating_duration_since(self.start).as_secs_f64();
        if let Some(p) = &self.prometheus {
            p.agent(&agent, &sample);
        }
        match self.agents.iter_mut().find(|a| a.name == agent) {
            Some(a) => a.samples.push(sample),
            None => self.agents.push(AgentGauges {
                name: agent,
                samples: vec![sample],
            }),
        }
    }

    /// After each event: the users running where they are shown (Prometheus, the open
    /// level, and the second of a change) and the Prometheus counters.
    fn update_users(&mut self, changed: Option<Instant>) {
        let (users, target) = (self.live.users, self.live.target);
        if let Some(p) = &self.prometheus {
            p.users(users, target);
            // Requests and failures counted since the last event.
            let (requests, failures) = self.prometheus_seen;
            p.counted(
                self.live.requests.saturating_sub(requests),
                self.live.failures.saturating_sub(failures),
            );
            self.prometheus_seen = (self.live.requests, self.live.failures);
        }
        if let Some(level) = open_level_mut(&mut self.levels) {
            level.users = users;
        }
        if let Some(at) = changed {
            let sec = self.second(at);
            sec.users = users;
            sec.target_users = target;
        }
    }

    /// Turns the aggregate into result sections; `elapsed` is the run's length.
    pub fn finish(mut self, elapsed: Duration) -> Finished {
        self.flush();
        self.snapshot(elapsed, true)
    }

    /// The results so far; `with_histograms` adds the serialized histograms (the live
    /// views only need the summaries).
    pub fn snapshot(&self, elapsed: Duration, with_histograms: bool) -> Finished {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let stats = step_stats(&self.stats, secs, with_histograms);
        let mut judged = Vec::new();
        if let Some(closed) = &self.closed_level {
            judged.push(closed.clone());
        }
        if let Some(steps) = &self.level_steps
            && let Some(l) = open_level(&self.levels)
        {
            judged.push(Arc::new(level_view(
                self.levels.len() - 1,
                l,
                steps,
                elapsed.as_secs_f64(),
            )));
        }
        let total = self.total.totals(secs, with_histograms);
        let mut failures: Vec<FailureGroup> = self
            .failures
            .iter()
            .map(|((phase, name, reason), (count, example))| FailureGroup {
                phase: *phase,
                name: name.to_string(),
                reason: reason.clone(),
                count: *count,
                example: example.clone(),
            })
            .collect();
        failures.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| (a.phase, &a.name, &a.reason).cmp(&(b.phase, &b.name, &b.reason)))
        });
        let mut agents = self.agents.clone();
        agents.sort_by(|a, b| a.name.cmp(&b.name));
        let levels = self
            .levels
            .iter()
            .map(|l| l.result(elapsed.as_secs_f64(), with_histograms))
            .collect();
        Finished {
            stats,
            total,
            failures,
            timeline: self.timeline.clone(),
            users: self.users.clone(),
            agents,
            events: self.events.clone(),
            series: self.series.clone(),
            levels,
            judged,
        }
    }
}

/// The aggregate turned into result sections.
#[derive(Debug, Default, Clone)]
pub struct Finished {
    pub stats: Vec<StepStats>,
    pub total: Totals,
    pub failures: Vec<FailureGroup>,
    pub timeline: Vec<Second>,
    pub users: UserCounts,
    pub agents: Vec<AgentGauges>,
    pub events: Option<EventCounts>,
    pub series: Vec<StepSecond>,
    pub levels: Vec<LoadLevel>,
    /// Only in snapshots of runs that check thresholds during the run: the load level that
    /// closed last (complete) and the one in progress, with per-step statistics.
    pub judged: Vec<Arc<LevelView>>,
}

/// One load level's statistics: what `abort` thresholds judge.
#[derive(Debug, Clone)]
pub struct LevelView {
    /// Position in `levels`.
    pub index: usize,
    /// The shape has moved on: these are the level's final numbers.
    pub closed: bool,
    /// Users the shape asked for (all shards).
    pub target_users: u64,
    pub total: Totals,
    pub stats: Vec<StepStats>,
}

/// The last load level, while the shape is in it.
fn open_level(levels: &[LevelAgg]) -> Option<&LevelAgg> {
    levels.last().filter(|l| l.is_open())
}

/// [`open_level`], to record in.
fn open_level_mut(levels: &mut [LevelAgg]) -> Option<&mut LevelAgg> {
    levels.last_mut().filter(|l| l.is_open())
}

/// Per-step statistics, sorted; histograms serialized only when asked.
fn step_stats(map: &HashMap<StatKey, Stat>, secs: f64, with_histograms: bool) -> Vec<StepStats> {
    let mut stats: Vec<StepStats> = map
        .iter()
        .map(|((phase, kind, name), s)| {
            let key = (*phase, *kind, name.to_string());
            let method = s.method.map(str::to_string);
            s.tally.step_stats(key, method, secs, with_histograms)
        })
        .collect();
    stats.sort_by(|a, b| (a.phase, a.kind, &a.name).cmp(&(b.phase, b.kind, &b.name)));
    stats
}

/// A level's statistics up to `now` (seconds since the start), histograms included.
fn level_view(index: usize, l: &LevelAgg, steps: &HashMap<StatKey, Stat>, now: f64) -> LevelView {
    let secs = (l.to.unwrap_or(now) - l.from).max(1e-9);
    LevelView {
        index,
        closed: l.to.is_some(),
        target_users: l.level.users,
        total: l.http.totals(secs, true),
        stats: step_stats(steps, secs, true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn aggregates_counts_and_failures() {
        let start = Instant::now();
        let (rec, _live, handle) = super::start(start);
        let name: Arc<str> = Arc::from("ping");
        for i in 0..10u64 {
            let failure = (i % 5 == 0).then(|| Failure {
                reason: "unexpected status 404".into(),
                detail: format!("#{i}"),
            });
            rec.send(Event::Sample {
                phase: Phase::Tasks,
                kind: StatKind::Http,
                name: name.clone(),
                method: Some("POST"),
                micros: 1000 + i,
                at: start,
                failure,
            });
        }
        drop(rec);
        let f = handle.await.unwrap().finish(Duration::from_secs(1));
        let (stats, total, failures, timeline) = (f.stats, f.total, f.failures, f.timeline);
        assert_eq!((stats[0].count, stats[0].failures), (10, 2));
        assert_eq!((total.requests, total.failures), (10, 2));
        assert_eq!((failures[0].count, failures[0].example.as_str()), (2, "#0"));
        assert_eq!(timeline[0].requests, 10);
    }
}
