//! The executor: follows the load shape, starts one task per virtual user, stops them
//! at the time limit or on a signal (grace period, then hard stop), and gathers results.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::compile::CompiledPlan;
use crate::env::ResolvedEnv;
use crate::metrics::{Event, Recorder};
use crate::pairing::Pools;
use crate::resolve::{Resolved, RunIdentity};
use crate::results::{Outcome, PlanInfo, Results, RunInfo, ShardInfo};
use crate::shape::Shape;
use crate::shard::Shard;
use crate::template::Globals;
use crate::user::VirtualUser;

/// Settings of one run that do not come from the plan.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub seed: u64,
    pub run_id: String,
    pub shard_index: u32,
    pub shard_count: u32,
    /// How long in-flight work may take after the time limit or first signal.
    pub grace: Duration,
    /// Print a progress line every this often (None: quiet).
    pub progress: Option<Duration>,
    pub verbose_failures: bool,
    /// Serve Prometheus metrics at this address during the run.
    pub metrics: Option<String>,
    /// Serve a live page at this address during the run.
    pub web: Option<String>,
}

/// What every user of a run shares.
pub struct RunContext {
    pub plan: Arc<CompiledPlan>,
    pub globals: Arc<Globals>,
    /// The plan's requests go through this client.
    pub http: crate::http::Client,
    pub recorder: Recorder,
    pub pools: Pools,
    pub seed: u64,
    pub run_id: String,
    pub shard: Shard,
    /// Cancelled when in-flight requests must be abandoned (second signal, grace over).
    pub hard_stop: CancellationToken,
    pub secrets: Vec<String>,
    pub verbose_failures: bool,
    /// Agent events by wallet, when the plan has an `events:` source.
    pub events: Option<Arc<crate::events::EventHub>>,
    /// Cancelled when the whole run ends (time limit or signal), not for one user.
    pub run_stop: CancellationToken,
    /// Users still busy before their teardown; at the end of a run, teardowns wait for
    /// all of them, so no user removes a wallet its peer is still messaging.
    pub busy: Busy,
}

/// Counts users that have not reached their teardown.
#[derive(Debug, Default)]
pub struct Busy {
    count: std::sync::atomic::AtomicUsize,
    idle: tokio::sync::Notify,
}

impl Busy {
    pub fn enter(&self) {
        self.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn leave(&self) {
        if self.count.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) == 1 {
            self.idle.notify_waiters();
        }
    }

    /// Resolves once no user is busy.
    pub async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.count.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Signals from outside: first = graceful stop, second = hard stop.
#[derive(Debug, Clone, Default)]
pub struct StopSignals {
    pub graceful: CancellationToken,
    pub hard: CancellationToken,
}

/// A run that could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Client(String),
    #[error("preflight {url} failed: {why}")]
    Preflight { url: String, why: String },
    #[error("{0}")]
    Events(String),
}

/// Runs a resolved plan to the end and returns its results.
pub async fn execute(
    plan: Arc<CompiledPlan>,
    env: &ResolvedEnv,
    resolved: Resolved,
    cfg: RunConfig,
    signals: StopSignals,
) -> Result<Results, (RunError, Box<Results>)> {
    let started_at = SystemTime::now();
    let start = Instant::now();
    let info = PlanInfo {
        name: plan.plan.name.clone(),
        file: plan.file.clone(),
        description: plan.plan.description.clone(),
        shape: crate::resolve::describe_shape(&resolved.shape),
        env: env
            .display
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or_default()))
            .collect(),
    };
    let client = match preflight(&plan, &resolved, &signals).await {
        Ok(c) => c,
        Err(e) => return aborted(e, info, &cfg, started_at, start),
    };
    let http = match crate::http::Client::new(&plan.target, &resolved.base_url, &resolved.headers) {
        Ok(c) => c,
        Err(e) => return aborted(RunError::Client(e), info, &cfg, started_at, start),
    };
    let background = CancellationToken::new();
    let (events, globals) = match start_events(&plan, &resolved, &background).await {
        Ok(x) => x,
        Err(e) => return aborted(e, info, &cfg, started_at, start),
    };
    let aborting = plan.plan.thresholds.iter().any(|t| t.abort);
    let (recorder, live, snapshots, aggregator) =
        crate::metrics::start_with_snapshots(start, Some(Duration::from_secs(1)), aborting);
    for w in watchers(&plan, &resolved) {
        tokio::spawn(crate::gauges::sample(
            w,
            client.clone(),
            recorder.clone(),
            background.clone(),
        ));
    }
    let stop_all = signals.graceful.child_token();
    let ctx = Arc::new(RunContext {
        plan: plan.clone(),
        globals,
        http,
        recorder: recorder.clone(),
        pools: Pools::new(plan.plan.pools.keys()),
        seed: cfg.seed,
        run_id: cfg.run_id.clone(),
        shard: Shard {
            index: cfg.shard_index,
            count: cfg.shard_count,
        },
        hard_stop: signals.hard.clone(),
        secrets: env.secrets.clone(),
        verbose_failures: cfg.verbose_failures,
        events: events.clone(),
        run_stop: stop_all.clone(),
        busy: Busy::default(),
    });
    // --web serves the live page (and /metrics); --metrics alone, or elsewhere, only /metrics.
    let mut servers: Vec<(&str, Option<crate::serve::PageFn>)> = Vec::new();
    if let Some(w) = &cfg.web {
        servers.push((
            w,
            Some(live_page(info.clone(), cfg.clone(), started_at, start)),
        ));
    }
    let same = |m: &str| Some(m) == cfg.web.as_deref() && !m.ends_with(":0");
    if let Some(m) = cfg.metrics.as_deref().filter(|m| !same(m)) {
        servers.push((m, None));
    }
    for (addr, page) in servers {
        let what = if page.is_some() { "page" } else { "metrics" };
        match crate::serve::start(
            addr,
            live.clone(),
            snapshots.clone(),
            page,
            background.clone(),
        )
        .await
        {
            Ok(bound) if cfg.progress.is_some() => {
                crate::errln!(
                    "live {what} at http://{bound}/{}",
                    if what == "page" { "" } else { "metrics" }
                )
            }
            Ok(_) => {}
            Err(e) => crate::errln!("warning: {e}; running without the live {what}"),
        }
    }
    let progress = cfg.progress.map(|_| {
        tokio::spawn(crate::live::show(
            live.clone(),
            snapshots.clone(),
            start,
            resolved.shape.duration(),
        ))
    });
    let watcher = aborting.then(|| {
        tokio::spawn(watch_thresholds(
            plan.clone(),
            snapshots.clone(),
            stop_all.clone(),
            cfg.shard_count > 1,
        ))
    });
    let mut users = JoinSet::new();
    let interrupted = drive(&ctx, &resolved.shape, start, &stop_all, &mut users).await;
    stop_all.cancel();
    // The watcher has stopped the run, or sees the stop and returns: one answer either way.
    let stopped_by = match watcher {
        Some(w) => w.await.ok().flatten(),
        None => None,
    };
    recorder.send(Event::Target(0));
    recorder.send(Event::Level(None));
    // Grace: in-flight work and teardowns finish, bounded; then hard stop.
    let graceful_end = async { while users.join_next().await.is_some() {} };
    let mut outcome = if stopped_by.is_some() {
        Outcome::Stopped
    } else if interrupted {
        Outcome::Interrupted
    } else {
        Outcome::Completed
    };
    tokio::select! {
        _ = graceful_end => {}
        _ = tokio::time::sleep(cfg.grace) => {
            crate::errln!("warning: users still busy {} after the end; stopping them", crate::duration::format(cfg.grace));
            signals.hard.cancel();
        }
        _ = signals.hard.cancelled() => {}
    }
    if signals.hard.is_cancelled() {
        if outcome == Outcome::Interrupted {
            outcome = Outcome::Aborted;
        }
        // Give cancelled users a moment to record what they were doing.
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while users.join_next().await.is_some() {}
        })
        .await;
        users.abort_all();
    }
    if let Some(p) = progress {
        p.abort();
    }
    background.cancel();
    if let Some(hub) = &events {
        use std::sync::atomic::Ordering::Relaxed;
        recorder.send(Event::EventCounts {
            received: hub.received.load(Relaxed),
            duplicates: hub.duplicates.load(Relaxed),
        });
    }
    drop(ctx);
    drop(recorder);
    let agg = aggregator.await.ok();
    let mut results = build(agg, info, &cfg, started_at, start.elapsed(), outcome);
    results.run.stopped_by = stopped_by;
    Ok(results)
}

/// Checks the plan's `abort: true` thresholds on every snapshot (each second) against the
/// current load level (or the whole run when the shape has no levels) and stops the run at
/// the first that fails with enough samples to judge.
async fn watch_thresholds(
    plan: Arc<CompiledPlan>,
    mut snapshots: tokio::sync::watch::Receiver<Option<Arc<crate::metrics::Finished>>>,
    stop: CancellationToken,
    shard: bool,
) -> Option<crate::results::ThresholdStop> {
    let watched: Vec<_> = plan
        .plan
        .thresholds
        .iter()
        .filter(|t| t.abort)
        .cloned()
        .collect();
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
                crate::report::thresholds_of(total, stats, std::slice::from_ref(t))
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

/// The results of a run that could not start.
fn aborted(
    e: RunError,
    info: PlanInfo,
    cfg: &RunConfig,
    started_at: SystemTime,
    start: Instant,
) -> Result<Results, (RunError, Box<Results>)> {
    Err((
        e,
        Box::new(build(
            None,
            info,
            cfg,
            started_at,
            start.elapsed(),
            Outcome::Aborted,
        )),
    ))
}

/// Starts the plan's event source; returns the hub and the globals with `webhook_url` set.
async fn start_events(
    plan: &CompiledPlan,
    resolved: &Resolved,
    stop: &CancellationToken,
) -> Result<(Option<Arc<crate::events::EventHub>>, Arc<Globals>), RunError> {
    let Some(ev) = &plan.plan.events else {
        return Ok((None, resolved.globals.clone()));
    };
    let hub = Arc::new(crate::events::EventHub::default());
    let scope = crate::resolve::plan_scope(&resolved.globals, 0);
    let render = |pointer: &str| plan.setting(pointer, &scope).map_err(RunError::Events);
    let mut globals = crate::resolve::clone_globals(&resolved.globals);
    let source = if crate::template::is_template(&ev.source) {
        render("/events/source")?
    } else {
        ev.source.clone()
    };
    match crate::events::parse_source(&source).map_err(RunError::Events)? {
        crate::plan::EventSource::Webhook => {
            let listen = if ev.listen.is_some() {
                render("/events/listen")?
            } else {
                "127.0.0.1:0".into()
            };
            let bound = crate::events::listen(&listen, hub.clone(), stop.clone())
                .await
                .map_err(RunError::Events)?;
            // An empty public URL (e.g. an unset variable) means the bound address.
            let url = match &ev.public_url {
                Some(_) => Some(render("/events/public_url")?).filter(|u| !u.trim().is_empty()),
                None => None,
            }
            .unwrap_or_else(|| format!("http://{bound}"));
            globals.webhook_url = minijinja::Value::from(url);
        }
        crate::plan::EventSource::Websocket => {
            let url = match &ev.websocket_url {
                Some(_) => render("/events/websocket_url")?,
                None => format!("{}/ws", resolved.base_url.replacen("http", "ws", 1)),
            };
            let key = match &ev.api_key {
                Some(_) => Some(render("/events/api_key")?),
                None => resolved
                    .headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("x-api-key"))
                    .map(|(_, v)| v.clone()),
            };
            let (tx, rx) = tokio::sync::oneshot::channel();
            tokio::spawn(crate::events::follow_websocket(
                url.clone(),
                key,
                hub.clone(),
                stop.clone(),
                tx,
            ));
            match tokio::time::timeout(Duration::from_secs(10), rx).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => return Err(RunError::Events(e)),
                _ => {
                    return Err(RunError::Events(format!(
                        "the admin websocket {url} did not answer within 10s"
                    )));
                }
            }
        }
    }
    Ok((Some(hub), Arc::new(globals)))
}

/// The agents to watch, with their URLs and keys rendered.
fn watchers(plan: &CompiledPlan, resolved: &Resolved) -> Vec<crate::gauges::Watched> {
    let scope = crate::resolve::plan_scope(&resolved.globals, 0);
    plan.plan
        .watch
        .iter()
        .enumerate()
        .filter_map(|(i, w)| {
            let url = plan.setting(&format!("/watch/{i}/url"), &scope).ok()?;
            let api_key = w
                .api_key
                .as_ref()
                .and_then(|_| plan.setting(&format!("/watch/{i}/api_key"), &scope).ok())
                .filter(|k| !k.is_empty());
            let interval = w
                .interval
                .as_deref()
                .and_then(|i| crate::duration::parse(i).ok())
                .unwrap_or(Duration::from_secs(1));
            Some(crate::gauges::Watched {
                name: w.name.clone(),
                url: url.trim_end_matches('/').to_string(),
                api_key,
                interval,
            })
        })
        .collect()
}

/// Builds the client and, when the plan asks, checks the target answers 2xx.
async fn preflight(
    plan: &CompiledPlan,
    resolved: &Resolved,
    signals: &StopSignals,
) -> Result<reqwest::Client, RunError> {
    let client =
        crate::http::admin_client(&plan.target, &resolved.headers).map_err(RunError::Client)?;
    let Some(path) = &plan.plan.target.preflight else {
        return Ok(client);
    };
    let url = format!("{}{}", resolved.base_url, path);
    let outcome = tokio::select! {
        r = client.get(&url).send() => r,
        _ = signals.graceful.cancelled() => return Err(RunError::Preflight { url, why: "interrupted".into() }),
    };
    let why = match outcome {
        Ok(r) if r.status().is_success() => return Ok(client),
        Ok(r) => {
            let status = r.status().as_u16();
            let body = r.text().await.unwrap_or_default();
            format!(
                "status {status}: {}",
                body.lines()
                    .next()
                    .unwrap_or("")
                    .chars()
                    .take(120)
                    .collect::<String>()
            )
        }
        Err(e) => crate::http::root_cause(&e),
    };
    Err(RunError::Preflight { url, why })
}

/// Follows the shape until it ends or a stop signal; returns true when interrupted.
async fn drive(
    ctx: &Arc<RunContext>,
    shape: &Shape,
    start: Instant,
    stop_all: &CancellationToken,
    users: &mut JoinSet<()>,
) -> bool {
    let mut slots = Slots {
        shard: ctx.shard,
        global: 0,
        next_local: 0,
        local: Vec::new(),
    };
    let mut last_spawn = start;
    let mut last_target = u64::MAX;
    let mut last_level = None;
    let tick = Duration::from_millis(20);
    let end = start + shape.duration();
    if let Shape::ArrivalRate { max_users, .. } = shape {
        return drive_open(ctx, shape, *max_users, start, stop_all, users).await;
    }
    loop {
        let now = Instant::now();
        let Some(target) = shape.users_at(now - start) else {
            return false;
        };
        if target.users != last_target {
            ctx.recorder
                .send(Event::Target(ctx.shard.share(target.users)));
            last_target = target.users;
        }
        let level = shape.level_at(now - start);
        if level.map(|l| l.index) != last_level {
            last_level = level.map(|l| l.index);
            ctx.recorder.send(Event::Level(level));
        }
        // Finished users free nothing: the shape counts started users, as Locust does.
        while users.try_join_next().is_some() {}
        let mut wake = (now + tick).min(end);
        if slots.global < target.users {
            match target.spawn_rate {
                None => {
                    while slots.global < target.users {
                        slots.grow(ctx, stop_all, users);
                    }
                }
                Some(rate) if rate > 0.0 => {
                    let gap = Duration::from_secs_f64(1.0 / rate);
                    let first = slots.global == 0;
                    if first || now >= last_spawn + gap {
                        slots.grow(ctx, stop_all, users);
                        last_spawn = if first || now > last_spawn + gap + tick {
                            now
                        } else {
                            last_spawn + gap
                        };
                    }
                    wake = wake.min(last_spawn + gap);
                }
                Some(_) => {}
            }
        } else if slots.global > target.users {
            slots.shrink_to(target.users);
        }
        tokio::select! {
            _ = tokio::time::sleep_until(wake.into()) => {}
            _ = stop_all.cancelled() => return true,
        }
    }
}

/// The run's users across all shards, of which this shard starts its own.
struct Slots {
    shard: Shard,
    /// Global users the shape has started and not ramped down (all shards).
    global: u64,
    /// This shard's next user index (never reused, so identities never collide).
    next_local: u64,
    local: Vec<CancellationToken>,
}

impl Slots {
    fn grow(
        &mut self,
        ctx: &Arc<RunContext>,
        stop_all: &CancellationToken,
        users: &mut JoinSet<()>,
    ) {
        let k = self.global;
        self.global += 1;
        if self.shard.owns(k) {
            let token = stop_all.child_token();
            self.local.push(token.clone());
            users.spawn(VirtualUser::new(ctx.clone(), self.next_local, token).live());
            self.next_local += 1;
        }
    }

    /// Ramp down: stop the newest users; they run their teardown.
    fn shrink_to(&mut self, target: u64) {
        while self.global > target {
            self.global -= 1;
            if self.shard.owns(self.global)
                && let Some(token) = self.local.pop()
            {
                token.cancel();
            }
        }
    }
}

/// Open model: iterations start on the arrival schedule, each on a new user, while fewer
/// than `max_users` (this shard's share) are busy; arrivals beyond that are counted as dropped.
async fn drive_open(
    ctx: &Arc<RunContext>,
    shape: &Shape,
    max_users: u64,
    start: Instant,
    stop_all: &CancellationToken,
    users: &mut JoinSet<()>,
) -> bool {
    let cap = ctx.shard.share(max_users).max(1);
    let feed = crate::user::Feed::new();
    let mut next_local = 0u64;
    let mut k = 0u64;
    while let Some(at) = shape.arrival_time(k) {
        k += 1;
        if !ctx.shard.owns(k - 1) {
            continue;
        }
        let scheduled = start + at;
        tokio::select! {
            _ = tokio::time::sleep_until(scheduled.into()) => {}
            _ = stop_all.cancelled() => return true,
        }
        while users.try_join_next().is_some() {}
        if feed.idle.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            let _ = feed.tx.send(scheduled);
        } else if (users.len() as u64) < cap {
            let user = VirtualUser::new(ctx.clone(), next_local, stop_all.child_token())
                .with_feed(feed.clone(), scheduled);
            next_local += 1;
            users.spawn(user.live());
        } else {
            ctx.recorder.send(Event::Sample {
                phase: crate::compile::Phase::Tasks,
                kind: crate::results::StatKind::Iteration,
                name: Arc::from("(dropped arrivals)"),
                method: None,
                micros: 1,
                at: Instant::now(),
                failure: Some(crate::metrics::Failure {
                    reason: format!("all {cap} users busy"),
                    detail: format!("arrival {} could not start", k - 1),
                }),
            });
        }
    }
    tokio::select! {
        _ = tokio::time::sleep_until((start + shape.duration()).into()) => false,
        _ = stop_all.cancelled() => true,
    }
}

fn build(
    agg: Option<crate::metrics::Aggregate>,
    plan: PlanInfo,
    cfg: &RunConfig,
    started_at: SystemTime,
    elapsed: Duration,
    outcome: Outcome,
) -> Results {
    let f = agg.map(|a| a.finish(elapsed)).unwrap_or_default();
    results_of(f, plan, cfg, started_at, elapsed, outcome)
}

/// The live page: the report so far, refreshing itself every two seconds.
fn live_page(
    info: PlanInfo,
    cfg: RunConfig,
    started_at: SystemTime,
    start: Instant,
) -> crate::serve::PageFn {
    Arc::new(move |f: &crate::metrics::Finished| {
        let results = results_of(
            f.clone(),
            info.clone(),
            &cfg,
            started_at,
            start.elapsed(),
            Outcome::Completed,
        );
        crate::serve::live_html(&results)
    })
}

/// Results from aggregated sections (final, or a live snapshot).
pub fn results_of(
    f: crate::metrics::Finished,
    plan: PlanInfo,
    cfg: &RunConfig,
    started_at: SystemTime,
    elapsed: Duration,
    outcome: Outcome,
) -> Results {
    Results {
        schema_version: crate::results::SCHEMA_VERSION,
        acaload_version: env!("CARGO_PKG_VERSION").to_string(),
        plan,
        run: RunInfo {
            id: cfg.run_id.clone(),
            started_at: humantime::format_rfc3339_millis(started_at).to_string(),
            ended_at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            duration_secs: elapsed.as_secs_f64(),
            seed: cfg.seed,
            outcome,
            error: None,
            stopped_by: None,
            shard: (cfg.shard_count > 1).then_some(ShardInfo {
                index: cfg.shard_index,
                count: cfg.shard_count,
            }),
        },
        stats: f.stats,
        total: f.total,
        failures: f.failures,
        timeline: f.timeline,
        users: f.users,
        agents: f.agents,
        events: f.events,
        series: f.series,
        thresholds: Vec::new(),
        levels: f.levels,
    }
}

/// The identity templates see for this run.
pub fn identity(cfg: &RunConfig, webhook_url: String) -> RunIdentity {
    RunIdentity {
        id: cfg.run_id.clone(),
        seed: cfg.seed,
        shard_index: cfg.shard_index,
        shard_count: cfg.shard_count,
        webhook_url,
    }
}
