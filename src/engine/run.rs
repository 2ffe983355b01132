//! The executor: follows the load shape, starts one task per virtual user, stops them
//! at the time limit or on a signal (grace period, then hard stop), and gathers results.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_util::future::BoxFuture;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::engine::context::{Busy, RunConfig, RunContext, StopSignals};
use crate::engine::pairing::Pools;
use crate::engine::shard::Shard;
use crate::measure::metrics::{Event, Finished, Live};
use crate::plan::compile::CompiledPlan;
use crate::plan::env::ResolvedEnv;
use crate::plan::resolve::{Resolved, RunIdentity};
use crate::plan::scope::Globals;
use crate::results::{Outcome, PlanInfo, Results, RunInfo, ShardInfo};

/// A run that could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Client(String),
    #[error("preflight {url} failed: {why}")]
    Preflight { url: String, why: String },
    #[error("{0}")]
    Events(String),
    /// A watched agent's `pid_file` does not name a process on this machine, or its `url`
    /// is not one.
    #[error("watch {name}: {why}")]
    Watch { name: String, why: String },
}

/// What a running test shows to its observers.
#[derive(Clone)]
pub struct RunView {
    /// Users, target and counters, updated as they change.
    pub live: watch::Receiver<Live>,
    /// The aggregated results so far, every second.
    pub snapshots: watch::Receiver<Option<Arc<Finished>>>,
    /// The Prometheus series, as samples arrive.
    pub prometheus: Arc<crate::measure::prometheus::Exporter>,
    pub start: Instant,
    /// How long the load shape runs.
    pub duration: Duration,
    /// Cancelled when the run ends.
    pub stop: CancellationToken,
    /// Results so far from a snapshot (for a page that shows the report while it runs).
    pub results: Arc<dyn Fn(&Finished) -> Results + Send + Sync>,
}

/// Something the caller runs beside the test (live terminal view, Prometheus endpoint, live
/// page): started before the first user, aborted when the run ends. The engine knows
/// nothing of what it shows.
pub type Observer = Box<dyn FnOnce(RunView) -> BoxFuture<'static, ()> + Send>;

/// Runs a resolved plan to the end and returns its results.
pub async fn execute(
    plan: Arc<CompiledPlan>,
    env: &ResolvedEnv,
    resolved: Resolved,
    cfg: RunConfig,
    signals: StopSignals,
    observers: Vec<Observer>,
) -> Result<Results, (RunError, Box<Results>)> {
    let started_at = SystemTime::now();
    let start = Instant::now();
    let info = PlanInfo {
        name: plan.plan.name.clone(),
        file: plan.file.clone(),
        description: plan.plan.description.clone(),
        shape: crate::plan::resolve::describe_shape(&resolved.shape),
        env: env
            .display
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or_default()))
            .collect(),
        // Rendered: a templated limit is stored as this run judged it (merge and report judge again).
        thresholds: resolved.thresholds.clone(),
    };
    if let Some(e) = resolved.watch.iter().find_map(|w| {
        let file = w.pid_file.as_ref()?;
        let why = crate::engine::gauges::process(file).err()?;
        Some(RunError::Watch {
            name: w.name.clone(),
            why,
        })
    }) {
        return aborted(e, info, &cfg, started_at, start);
    }
    let lanes = crate::engine::workers::count(resolved.target.max_connections);
    let http = match crate::engine::http::Client::new(
        &resolved.target,
        "base_url",
        &resolved.base_url,
        &resolved.headers,
        lanes,
    ) {
        Ok(c) => c,
        Err(e) => return aborted(RunError::Client(e), info, &cfg, started_at, start),
    };
    // Each watched agent gets a client of its own: its URL and API key, and never the
    // target's headers (an API key for one agent is not sent to another).
    let mut gauges = Vec::with_capacity(resolved.watch.len());
    for w in &resolved.watch {
        let key = w
            .api_key
            .iter()
            .map(|k| ("x-api-key".to_string(), k.clone()));
        match crate::engine::http::Client::new(
            &resolved.target,
            "url",
            &w.url,
            &key.collect::<Vec<_>>(),
            1,
        ) {
            Ok(c) => gauges.push(c),
            Err(e) => {
                let e = RunError::Watch {
                    name: w.name.clone(),
                    why: e,
                };
                return aborted(e, info, &cfg, started_at, start);
            }
        }
    }
    if let Err(e) = preflight(&plan, &resolved, &http, &signals).await {
        return aborted(e, info, &cfg, started_at, start);
    }
    let background = CancellationToken::new();
    let (events, globals) = match start_events(&plan, &resolved, &background).await {
        Ok(x) => x,
        Err(e) => return aborted(e, info, &cfg, started_at, start),
    };
    let aborting = resolved.thresholds.iter().any(|t| t.abort);
    let prometheus = Arc::new(crate::measure::prometheus::Exporter::new());
    // Snapshots and Prometheus series cost CPU every second and per sample: kept only when
    // someone reads them (an observer, or the abort watcher for snapshots).
    let observed = !observers.is_empty();
    let (recorder, live, snapshots, aggregator) = crate::measure::metrics::start_with_snapshots(
        start,
        (observed || aborting).then_some(Duration::from_secs(1)),
        aborting,
        observed.then(|| prometheus.clone()),
    );
    for (w, gauge) in resolved.watch.iter().zip(gauges) {
        tokio::spawn(crate::engine::gauges::sample(
            w.clone(),
            gauge,
            recorder.clone(),
            background.clone(),
        ));
    }
    let edge = if uses_didcomm(&plan) {
        match crate::engine::edge::EdgeHub::new(
            recorder.clone(),
            resolved.target.timeout,
            resolved.target.connect_timeout,
        ) {
            Ok(h) => Some(Arc::new(h)),
            Err(e) => return aborted(RunError::Client(e), info, &cfg, started_at, start),
        }
    } else {
        None
    };
    let stop_all = signals.graceful.child_token();
    // Split connections stay with the worker they were split to: such a run never packs.
    let workers = Arc::new(crate::engine::workers::Workers::new(
        lanes,
        resolved.target.max_connections.is_none(),
    ));
    let ctx = Arc::new(RunContext {
        plan: plan.clone(),
        globals,
        durations: resolved.durations.clone(),
        think: resolved.think,
        timeout: resolved.target.timeout,
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
        edge: edge.clone(),
        run_stop: stop_all.clone(),
        busy: Busy::default(),
        workers: workers.clone(),
    });
    let view = RunView {
        live: live.clone(),
        snapshots: snapshots.clone(),
        prometheus,
        start,
        duration: resolved.shape.duration(),
        stop: background.clone(),
        results: {
            let (info, cfg) = (info.clone(), cfg.clone());
            Arc::new(move |f: &Finished| {
                results_of(
                    f.clone(),
                    info.clone(),
                    &cfg,
                    started_at,
                    start.elapsed(),
                    Outcome::Completed,
                )
            })
        },
    };
    let observing: Vec<_> = observers
        .into_iter()
        .map(|o| tokio::spawn(o(view.clone())))
        .collect();
    let watcher = aborting.then(|| {
        tokio::spawn(crate::engine::abort::watch_thresholds(
            resolved.thresholds.clone(),
            snapshots.clone(),
            stop_all.clone(),
            cfg.shard_count > 1,
        ))
    });
    let mut users = JoinSet::new();
    let balancer = workers.packed().then(|| {
        let workers = workers.clone();
        tokio::spawn(async move { workers.balance().await })
    });
    let interrupted = crate::engine::driver::drive(
        &ctx,
        &resolved.shape,
        start,
        &stop_all,
        &mut users,
        &workers,
    )
    .await;
    stop_all.cancel();
    // The watcher has stopped the run, or sees the stop and returns: one answer either way.
    let stopped_by = match watcher {
        Some(w) => w.await.ok().flatten(),
        None => None,
    };
    let stopped = Instant::now();
    recorder.send(Event::Target {
        users: 0,
        at: stopped,
    });
    recorder.send(Event::Level {
        next: None,
        at: stopped,
    });
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
            crate::errln!("warning: users still busy {} after the end; stopping them", crate::plan::duration::format(cfg.grace));
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
    background.cancel();
    for o in observing {
        o.abort();
    }
    if let Some(hub) = &events {
        use std::sync::atomic::Ordering::Relaxed;
        recorder.send(Event::EventCounts {
            received: hub.received.load(Relaxed),
            duplicates: hub.duplicates.load(Relaxed),
        });
    }
    if let Some(hub) = &edge {
        use std::sync::atomic::Ordering::Relaxed;
        recorder.send(Event::EventCounts {
            received: hub.received.load(Relaxed),
            duplicates: hub.duplicates.load(Relaxed),
        });
    }
    drop(edge);
    if let Some(b) = balancer {
        b.abort();
    }
    drop(ctx);
    workers.shutdown();
    drop(recorder);
    let agg = aggregator.await.ok();
    let mut results = build(agg, info, &cfg, started_at, start.elapsed(), outcome);
    results.run.stopped_by = stopped_by;
    Ok(results)
}

/// Whether any step of the plan is an edge-agent step.
fn uses_didcomm(plan: &CompiledPlan) -> bool {
    plan.setup
        .iter()
        .chain(plan.tasks.iter().flat_map(|t| t.steps.iter()))
        .chain(plan.teardown.iter())
        .any(|s| matches!(s.kind, crate::plan::compile::StepKind::Didcomm(_)))
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
) -> Result<(Option<Arc<crate::engine::events::EventHub>>, Arc<Globals>), RunError> {
    let Some(ev) = &plan.plan.events else {
        return Ok((None, resolved.globals.clone()));
    };
    let hub = Arc::new(crate::engine::events::EventHub::default());
    let scope = crate::plan::resolve::plan_scope(&resolved.globals, 0);
    let render = |pointer: &str| plan.setting(pointer, &scope).map_err(RunError::Events);
    let mut globals = crate::plan::resolve::clone_globals(&resolved.globals);
    let source = if crate::plan::template::is_template(&ev.source) {
        render("/events/source")?
    } else {
        ev.source.clone()
    };
    match crate::plan::EventSource::parse(&source).map_err(RunError::Events)? {
        crate::plan::EventSource::Webhook => {
            let listen = if ev.listen.is_some() {
                render("/events/listen")?
            } else {
                "127.0.0.1:0".into()
            };
            let bound = crate::engine::events::listen(&listen, hub.clone(), stop.clone())
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
            tokio::spawn(crate::engine::events::follow_websocket(
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

/// When the plan asks, checks the target answers 2xx before any user starts.
async fn preflight(
    plan: &CompiledPlan,
    resolved: &Resolved,
    http: &crate::engine::http::Client,
    signals: &StopSignals,
) -> Result<(), RunError> {
    let Some(path) = &plan.plan.target.preflight else {
        return Ok(());
    };
    let url = http.url(path);
    let outcome = tokio::select! {
        r = http.get(path, resolved.target.timeout) => r,
        _ = signals.graceful.cancelled() => return Err(RunError::Preflight { url, why: "interrupted".into() }),
    };
    let why = match outcome {
        Ok((status, _)) if status.is_success() => return Ok(()),
        Ok((status, body)) => format!(
            "status {}: {}",
            status.as_u16(),
            crate::engine::http::first_line(&String::from_utf8_lossy(&body))
        ),
        Err(
            crate::engine::http::HttpError::Connect { why, .. }
            | crate::engine::http::HttpError::Other { why, .. },
        ) => why,
        Err(e) => e.to_string(),
    };
    Err(RunError::Preflight { url, why })
}

fn build(
    agg: Option<crate::measure::metrics::Aggregate>,
    plan: PlanInfo,
    cfg: &RunConfig,
    started_at: SystemTime,
    elapsed: Duration,
    outcome: Outcome,
) -> Results {
    let f = agg.map(|a| a.finish(elapsed)).unwrap_or_default();
    results_of(f, plan, cfg, started_at, elapsed, outcome)
}

/// Results from aggregated sections (final, or a live snapshot).
pub fn results_of(
    f: crate::measure::metrics::Finished,
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
        events: f.events,
        series: f.series,
        thresholds: Vec::new(),
        levels: crate::measure::watched::by_level(f.levels, &f.agents),
        agents: f.agents,
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
