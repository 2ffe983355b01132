//! The executor: follows the load shape, starts one task per virtual user, stops them
//! at the time limit or on a signal (grace period, then hard stop), and gathers results.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use futures_util::future::BoxFuture;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::engine::context::{Busy, RunConfig, RunContext, StopSignals};
use crate::engine::events::EventHub;
use crate::engine::http::Client;
use crate::engine::http::tls::Tls;
use crate::engine::pairing::Pools;
use crate::engine::shard::Shard;
use crate::measure::metrics::{Event, Finished, Live, Recorder};
use crate::plan::compile::CompiledPlan;
use crate::plan::env::ResolvedEnv;
use crate::plan::resolve::{Resolved, RunIdentity};
use crate::plan::scope::Globals;
use crate::results::{Outcome, PlanInfo, Results, RunInfo, ShardInfo, ThresholdStop};

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

/// The most worker threads a run uses: load for agents that answer at Python's pace needs
/// far fewer, and on a large host more would only be idle threads.
const MAX_WORKER_THREADS: usize = 16;

/// The runtime a run goes on: tokio's multi-threaded scheduler, one worker thread per CPU
/// this process may use (at most `MAX_WORKER_THREADS`). Users are tasks on it, and move
/// between its threads as tokio balances them.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cpus.min(MAX_WORKER_THREADS))
        .thread_name("acaload-worker")
        .enable_all()
        .build()
}

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
    let info = plan_info(&plan, env, &resolved);
    // Stops the event source, the gauges and the observers once the users are done.
    let background = CancellationToken::new();
    let tls = Tls::new(resolved.target.insecure, resolved.target.ca_file.clone());
    let ready = async {
        let (http, gauges) = clients(&resolved, &tls)?;
        preflight(&plan, &resolved, &http, &tls, &signals).await?;
        let (events, globals) = start_events(&plan, &resolved, &tls, &background).await?;
        Ok(((http, events, globals, tls), gauges))
    };
    let (shared, gauges) = match ready.await {
        Ok(ready) => ready,
        Err(e) => {
            background.cancel();
            return aborted(e, info, &cfg, started_at, start);
        }
    };
    let aborting = resolved.thresholds.iter().any(|t| t.abort);
    let prometheus = Arc::new(crate::measure::prometheus::Exporter::new());
    let (recorder, live, snapshots, aggregator) =
        measure(start, !observers.is_empty(), aborting, &prometheus);
    for (w, gauge) in resolved.watch.iter().zip(gauges) {
        let stop = background.clone();
        tokio::spawn(crate::engine::gauges::sample(
            w.clone(),
            gauge,
            recorder.clone(),
            stop,
        ));
    }
    let ctx = Arc::new(context(
        &plan, env, &resolved, &cfg, &signals, shared, &recorder,
    ));
    let view = RunView {
        live,
        snapshots: snapshots.clone(),
        prometheus,
        start,
        duration: resolved.shape.duration(),
        stop: background.clone(),
        results: live_results(info.clone(), cfg.clone(), started_at, start),
    };
    let observing: Vec<_> = observers
        .into_iter()
        .map(|o| tokio::spawn(o(view.clone())))
        .collect();
    let watcher = aborting.then(|| {
        tokio::spawn(crate::engine::abort::watch_thresholds(
            resolved.thresholds.clone(),
            snapshots,
            ctx.run_stop.clone(),
            cfg.shard_count > 1,
        ))
    });
    let (outcome, stopped_by) =
        run_users(&ctx, &resolved.shape, start, &signals, cfg.grace, watcher).await;
    background.cancel();
    for o in observing {
        o.abort();
    }
    record_event_counts(&ctx);
    // The aggregator ends once every recorder is dropped.
    drop((ctx, recorder));
    let agg = aggregator.await.ok();
    let mut results = build(agg, info, &cfg, started_at, start.elapsed(), outcome);
    results.run.stopped_by = stopped_by;
    Ok(results)
}

/// Follows the load shape with the users, then stops them: a grace period for in-flight
/// work and teardowns, then the hard stop. Returns how the run ended, and the threshold that
/// stopped it if one did.
async fn run_users(
    ctx: &Arc<RunContext>,
    shape: &crate::plan::shape::Shape,
    start: Instant,
    signals: &StopSignals,
    grace: Duration,
    watcher: Option<tokio::task::JoinHandle<Option<ThresholdStop>>>,
) -> (Outcome, Option<ThresholdStop>) {
    let mut users = JoinSet::new();
    let interrupted =
        crate::engine::driver::drive(ctx, shape, start, &ctx.run_stop, &mut users).await;
    ctx.run_stop.cancel();
    // The watcher has stopped the run, or sees the stop and returns: one answer either way.
    let stopped_by = match watcher {
        Some(w) => w.await.ok().flatten(),
        None => None,
    };
    let stopped = Instant::now();
    ctx.recorder.send(Event::Target {
        users: 0,
        at: stopped,
    });
    ctx.recorder.send(Event::Level {
        next: None,
        at: stopped,
    });
    let mut outcome = if stopped_by.is_some() {
        Outcome::Stopped
    } else if interrupted {
        Outcome::Interrupted
    } else {
        Outcome::Completed
    };
    // Grace: in-flight work and teardowns finish, bounded; then hard stop.
    let graceful_end = async { while users.join_next().await.is_some() {} };
    tokio::select! {
        _ = graceful_end => {}
        _ = tokio::time::sleep(grace) => {
            crate::errln!("warning: users still busy {} after the end; stopping them", crate::plan::duration::format(grace));
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
    (outcome, stopped_by)
}

/// What every user of the run shares; `shared` is the target's client, the event source,
/// the globals with `webhook_url` set and the run's TLS.
fn context(
    plan: &Arc<CompiledPlan>,
    env: &ResolvedEnv,
    resolved: &Resolved,
    cfg: &RunConfig,
    signals: &StopSignals,
    (http, events, globals, tls): (Client, Option<Arc<EventHub>>, Arc<Globals>, Tls),
    recorder: &Recorder,
) -> RunContext {
    let edge = uses_didcomm(plan).then(|| {
        Arc::new(crate::engine::edge::EdgeHub::new(
            recorder.clone(),
            (resolved.target.timeout, resolved.target.connect_timeout),
            &tls,
            resolved.target.instance_header.clone(),
        ))
    });
    RunContext {
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
        events,
        edge,
        run_stop: signals.graceful.child_token(),
        busy: Busy::default(),
    }
}

/// Starts the aggregator the run's samples go to. Snapshots and Prometheus series cost CPU
/// every second and per sample: kept only when someone reads them (an observer, or the abort
/// watcher for snapshots).
fn measure(
    start: Instant,
    observed: bool,
    aborting: bool,
    prometheus: &Arc<crate::measure::prometheus::Exporter>,
) -> crate::measure::metrics::Started {
    crate::measure::metrics::start_with_snapshots(
        start,
        (observed || aborting).then_some(Duration::from_secs(1)),
        aborting,
        observed.then(|| prometheus.clone()),
    )
}

/// How many messages the run's event source and edge agents received, and how many twice.
fn record_event_counts(ctx: &RunContext) {
    let events = ctx.events.iter().map(|h| (&h.received, &h.duplicates));
    let edge = ctx.edge.iter().map(|h| (&h.received, &h.duplicates));
    for (received, duplicates) in events.chain(edge) {
        ctx.recorder.send(Event::EventCounts {
            received: received.load(Ordering::Relaxed),
            duplicates: duplicates.load(Ordering::Relaxed),
        });
    }
}

/// What the results say about the plan.
fn plan_info(plan: &CompiledPlan, env: &ResolvedEnv, resolved: &Resolved) -> PlanInfo {
    PlanInfo {
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
    }
}

/// The client for the plan's requests, and one for each watched agent: its URL and API key,
/// never the target's headers (an API key for one agent is not sent to another). A watched
/// agent's `pid_file` must name a process on this machine.
fn clients(resolved: &Resolved, tls: &Tls) -> Result<(Client, Vec<Option<Client>>), RunError> {
    let watch = |name: &str, why| RunError::Watch {
        name: name.to_string(),
        why,
    };
    for w in &resolved.watch {
        if let Some(file) = &w.pid_file {
            crate::engine::gauges::process(file).map_err(|why| watch(&w.name, why))?;
        }
    }
    let http = Client::new(
        &resolved.target,
        tls,
        "base_url",
        &resolved.base_url,
        &resolved.headers,
    )
    .map_err(RunError::Client)?;
    let gauges = resolved.watch.iter().map(|w| {
        let key: Vec<_> = w
            .api_key
            .iter()
            .map(|k| ("x-api-key".to_string(), k.clone()))
            .collect();
        w.url
            .as_ref()
            .map(|url| Client::new(&resolved.target, tls, "url", url, &key))
            .transpose()
            .map_err(|why| watch(&w.name, why))
    });
    Ok((http, gauges.collect::<Result<_, _>>()?))
}

/// The results so far from a live snapshot, for the observers.
fn live_results(
    info: PlanInfo,
    cfg: RunConfig,
    started_at: SystemTime,
    start: Instant,
) -> Arc<dyn Fn(&Finished) -> Results + Send + Sync> {
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
    tls: &Tls,
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
                tls.clone(),
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

/// Before any user starts: when the plan asks, the target answers 2xx; and the certificate
/// of every `wss://` socket the edge agents open verifies (a TLS handshake, nothing sent).
async fn preflight(
    plan: &CompiledPlan,
    resolved: &Resolved,
    http: &Client,
    tls: &Tls,
    signals: &StopSignals,
) -> Result<(), RunError> {
    if let Some(path) = &plan.plan.target.preflight {
        let url = http.url(path);
        let outcome = tokio::select! {
            r = http.get(path, resolved.target.timeout) => r,
            _ = signals.graceful.cancelled() => return Err(RunError::Preflight { url, why: "interrupted".into() }),
        };
        let why = match outcome {
            Ok((status, _)) if status.is_success() || plan.plan.target.preflight_any_status => None,
            Ok((status, body)) => Some(format!(
                "status {}: {}",
                status.as_u16(),
                crate::engine::http::first_line(&String::from_utf8_lossy(&body))
            )),
            Err(
                crate::engine::http::HttpError::Connect { why, .. }
                | crate::engine::http::HttpError::Other { why, .. },
            ) => Some(why),
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = why {
            return Err(RunError::Preflight { url, why });
        }
    }
    for url in secure_websockets(plan, resolved) {
        let limit = resolved.target.connect_timeout;
        let check =
            tokio::time::timeout(limit, crate::engine::edge::wire::Wire::check_tls(&url, tls));
        let why = tokio::select! {
            r = check => match r {
                Ok(Ok(())) => continue,
                Ok(Err(why)) => why,
                Err(_) => format!("no TLS handshake within {}", crate::plan::duration::format(limit)),
            },
            _ = signals.graceful.cancelled() => "interrupted".into(),
        };
        // The socket's errors start with the URL, which the preflight line names already.
        let why = why
            .strip_prefix(&format!("WebSocket {url}: "))
            .map_or(why.clone(), str::to_string);
        return Err(RunError::Preflight { url, why });
    }
    Ok(())
}

/// The `wss://` URLs of the plan's `connect` steps that render without a user (the
/// mediator's socket, from a variable), each once.
fn secure_websockets(plan: &CompiledPlan, resolved: &Resolved) -> Vec<String> {
    let scope = crate::plan::resolve::plan_scope(&resolved.globals, 0);
    let mut urls: Vec<String> = plan
        .setup
        .iter()
        .chain(plan.tasks.iter().flat_map(|t| t.steps.iter()))
        .chain(plan.teardown.iter())
        .filter_map(|s| match &s.kind {
            crate::plan::compile::StepKind::Didcomm(d) => match &**d {
                crate::plan::compile::CompiledDidcomm::Connect { websocket, .. } => {
                    plan.templates.render(websocket, &scope).ok()
                }
                _ => None,
            },
            _ => None,
        })
        .filter(|u| u.starts_with("wss://"))
        .collect();
    urls.sort();
    urls.dedup();
    urls
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
fn results_of(
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
