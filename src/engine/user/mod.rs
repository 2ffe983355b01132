//! A virtual user: runs setup once, the task loop until stopped, then teardown.
//! Every failure is recorded with its reason; `on_error` decides what happens next.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use minijinja::Value;
use tokio_util::sync::CancellationToken;

use crate::engine::context::RunContext;
use crate::measure::metrics::{Event, Failure};
use crate::plan::ErrorAction;
use crate::plan::Phase;
use crate::plan::compile::{CompiledStep, StepKind};
use crate::plan::scope::{ResponseView, RngCell, Scope};
use crate::results::StatKind;

mod didcomm;
mod failure;
mod request;
mod step;

pub use failure::excerpt;
use failure::reason_text;
/// Where the user goes after a list of steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    NextIteration,
    Stop,
}

/// One virtual user's state.
pub struct VirtualUser {
    ctx: Arc<RunContext>,
    pub index: u64,
    user: Value,
    vars: Arc<BTreeMap<String, Value>>,
    rng: Value,
    think_rng: fastrand::Rng,
    /// Captured secret values by capture name, scrubbed from failure messages.
    secrets: Vec<(String, String)>,
    /// Cancelled when the user should stop starting new work (time limit, ramp-down, Ctrl-C).
    stop: CancellationToken,
    /// When each request step last started sending (clocks for `wait_event`).
    sent: std::collections::HashMap<Arc<str>, Instant>,
    /// When the previous and the current step started.
    prev_step_started: Instant,
    step_started: Instant,
    /// Events already used by a wait, so one event satisfies one wait.
    consumed: Vec<u64>,
    /// Open model: iterations come as scheduled start times instead of a loop.
    feed: Option<(Arc<Feed>, Instant)>,
    /// The DIDComm agent this user is, once a `didcomm: connect` step made it (boxed: every
    /// user's task holds its `VirtualUser`, and most users are not edge agents).
    edge: Option<Box<crate::engine::edge::EdgeAgent>>,
}

/// The open model's iteration tickets: each carries its scheduled start.
#[derive(Debug)]
pub struct Feed {
    pub tx: tokio::sync::mpsc::UnboundedSender<Instant>,
    rx: tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<Instant>>,
    /// Users waiting for a ticket.
    pub idle: std::sync::atomic::AtomicUsize,
}

impl Feed {
    pub fn new() -> Arc<Feed> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        Arc::new(Feed {
            tx,
            rx: tokio::sync::Mutex::new(rx),
            idle: Default::default(),
        })
    }
}

/// A wait for something already sent: it still runs after a stop, so what was sent is counted.
fn completes_a_measurement(kind: &StepKind) -> bool {
    match kind {
        StepKind::WaitEvent(_) => true,
        StepKind::Didcomm(d) => {
            matches!(**d, crate::plan::compile::CompiledDidcomm::Delivered { .. })
        }
        _ => false,
    }
}

/// The parts of a user's scope, to build many scopes cheaply (one per candidate event).
struct ScopeParts {
    globals: Arc<crate::plan::scope::Globals>,
    user: Value,
    vars: Arc<BTreeMap<String, Value>>,
    rng: Value,
}

impl ScopeParts {
    fn with_event(&self, event: Arc<serde_json::Value>) -> Value {
        Value::from_object(Scope {
            globals: self.globals.clone(),
            user: self.user.clone(),
            vars: self.vars.clone(),
            response: None,
            event: Some(event),
            rng: self.rng.clone(),
        })
    }
}

enum StepError {
    Failed,
    Stopped,
}

impl VirtualUser {
    pub fn new(ctx: Arc<RunContext>, index: u64, stop: CancellationToken) -> Self {
        let seed = ctx.seed
            ^ (index.wrapping_add(1)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ u64::from(ctx.shard.index) << 48;
        let user = crate::plan::scope::to_value(serde_json::json!({
            "index": index,
            "id": format!("{}-{}-{}", ctx.run_id, ctx.shard.index, index),
        }));
        VirtualUser {
            ctx,
            index,
            user,
            vars: Arc::new(BTreeMap::new()),
            rng: Value::from_object(RngCell(Mutex::new(fastrand::Rng::with_seed(seed)))),
            think_rng: fastrand::Rng::with_seed(seed.rotate_left(17)),
            secrets: Vec::new(),
            stop,
            sent: std::collections::HashMap::new(),
            prev_step_started: Instant::now(),
            step_started: Instant::now(),
            consumed: Vec::new(),
            feed: None,
            edge: None,
        }
    }

    /// Makes this an open-model user whose first iteration was scheduled at `first`.
    pub fn with_feed(mut self, feed: Arc<Feed>, first: Instant) -> Self {
        self.feed = Some((feed, first));
        self
    }

    /// The whole life of the user.
    pub async fn live(mut self) {
        let ctx = self.ctx.clone();
        ctx.recorder.send(Event::UserStarted(Instant::now()));
        ctx.busy.enter();
        let setup = self.run_steps(&ctx.plan.setup).await;
        let mut started_tasks = false;
        match setup {
            Flow::Stop => {
                if !self.stop.is_cancelled() {
                    ctx.recorder.send(Event::StoppedByError);
                }
            }
            _ => {
                ctx.recorder.send(Event::SetupOk);
                started_tasks = true;
            }
        }
        if started_tasks {
            match self.feed.take() {
                Some((feed, first)) => self.iterations_on_schedule(&feed, first).await,
                None => self.task_loop().await,
            }
        }
        ctx.busy.leave();
        if ctx.run_stop.is_cancelled() {
            // The run is ending: wait until every user has finished its in-flight work.
            tokio::select! {
                _ = ctx.busy.idle() => {}
                _ = ctx.hard_stop.cancelled() => {}
            }
        }
        // Teardown runs for every user, also on stop; its steps guard themselves with `when`.
        self.run_steps(&ctx.plan.teardown).await;
        if let Some(mut agent) = self.edge.take() {
            // a plan without a `disconnect` step still closes its socket (boxed, as steps are)
            Box::pin(async move { agent.close(Duration::from_secs(1)).await }).await;
        }
        ctx.recorder.send(Event::UserStopped(Instant::now()));
    }

    /// Open model: one iteration per ticket; latency counts from the scheduled start, so
    /// a stalled target shows in the percentiles instead of slowing the schedule.
    async fn iterations_on_schedule(&mut self, feed: &Feed, first: Instant) {
        use std::sync::atomic::Ordering::SeqCst;
        let ctx = self.ctx.clone();
        let mut next = Some(first);
        loop {
            let scheduled = match next.take() {
                Some(t) => t,
                None => {
                    feed.idle.fetch_add(1, SeqCst);
                    let ticket = tokio::select! {
                        t = async { feed.rx.lock().await.recv().await } => t,
                        _ = self.stop.cancelled() => None,
                    };
                    feed.idle.fetch_sub(1, SeqCst);
                    match ticket {
                        Some(t) => t,
                        None => return,
                    }
                }
            };
            let started = Instant::now();
            let list = self.pick_list();
            let flow = self.run_steps(&ctx.plan.tasks[list].steps).await;
            ctx.recorder.send(Event::Iteration);
            let failure = (flow != Flow::Continue).then(|| Failure {
                reason: "the iteration failed".into(),
                detail: format!("user {}", self.index),
            });
            let name = ctx.plan.tasks[list].name.as_str();
            for (label, from) in [("scheduled start", scheduled), ("service time", started)] {
                ctx.recorder.send(Event::Sample {
                    phase: Phase::Tasks,
                    kind: StatKind::Iteration,
                    name: Arc::from(format!("{name} ({label})")),
                    method: None,
                    micros: from.elapsed().as_micros() as u64,
                    at: from,
                    failure: failure.clone(),
                });
            }
            if flow == Flow::Stop || self.stop.is_cancelled() {
                return;
            }
        }
    }

    /// The task list of the next iteration, picked by weight.
    fn pick_list(&mut self) -> usize {
        let lists = &self.ctx.plan.tasks;
        if lists.len() == 1 {
            return 0;
        }
        let total: u32 = lists.iter().map(|l| l.weight).sum();
        let mut pick = self.think_rng.u32(0..total.max(1));
        for (i, l) in lists.iter().enumerate() {
            if pick < l.weight {
                return i;
            }
            pick -= l.weight;
        }
        0
    }

    /// The closed model's loop: iterations, with think time between them, until stopped.
    async fn task_loop(&mut self) {
        let ctx = self.ctx.clone();
        let lists = &ctx.plan.tasks;
        if lists.iter().all(|l| l.steps.is_empty()) {
            // Nothing to loop over: hold the user until the run stops.
            self.stop.cancelled().await;
            return;
        }
        while !self.stop.is_cancelled() {
            let list = &lists[self.pick_list()];
            let flow = self.run_steps(&list.steps).await;
            ctx.recorder.send(Event::Iteration);
            if flow == Flow::Stop {
                if !self.stop.is_cancelled() {
                    ctx.recorder.send(Event::StoppedByError);
                }
                return;
            }
            if let Some((lo, hi)) = ctx.think {
                let span = hi.saturating_sub(lo).as_micros() as u64;
                let pause = lo
                    + Duration::from_micros(if span > 0 {
                        self.think_rng.u64(0..=span)
                    } else {
                        0
                    });
                if !self.pause(pause).await {
                    return;
                }
            }
        }
    }

    /// Sleeps unless stopped; false when stopped.
    async fn pause(&self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = self.stop.cancelled() => false,
        }
    }

    async fn run_steps(&mut self, steps: &[CompiledStep]) -> Flow {
        let teardown = steps.first().is_some_and(|s| s.phase == Phase::Teardown);
        for step in steps {
            // After a stop, only waits that complete a measurement still run.
            if self.stop.is_cancelled() && !teardown && !completes_a_measurement(&step.kind) {
                return Flow::Stop;
            }
            if self.ctx.hard_stop.is_cancelled() {
                return Flow::Stop;
            }
            self.prev_step_started = self.step_started;
            self.step_started = Instant::now();
            match self.step_with_retries(step).await {
                Ok(()) => {}
                Err(StepError::Stopped) => return Flow::Stop,
                Err(StepError::Failed) => match step.on_error {
                    ErrorAction::Stop => return Flow::Stop,
                    ErrorAction::NextIteration => return Flow::NextIteration,
                    ErrorAction::Continue => {}
                },
            }
        }
        Flow::Continue
    }

    async fn step_with_retries(&mut self, step: &CompiledStep) -> Result<(), StepError> {
        if let Some(when) = step.when {
            match self.ctx.plan.templates.holds(when, &self.scope(None)) {
                Ok(true) => {}
                Ok(false) => return Ok(()),
                Err(e) => {
                    return Err(self.fail_untimed(
                        step,
                        "`when` could not be evaluated",
                        crate::plan::template::describe(&e),
                    ));
                }
            }
        }
        let mut attempt = 0;
        loop {
            // Boxed: a step's future (an edge agent's DID Exchange, say) is several KB, and a
            // user spends most of its life between steps; unboxed, every user's task would
            // hold the largest step's state all run long (thousands of edge agents).
            match Box::pin(self.step(step)).await {
                Err(StepError::Failed) if attempt < step.retries && !self.stop.is_cancelled() => {
                    attempt += 1;
                    if !self.pause(self.ctx.durations.get(step.retry_delay)).await {
                        return Err(StepError::Stopped);
                    }
                }
                other => return other,
            }
        }
    }

    fn scope(&self, response: Option<Arc<ResponseView>>) -> Value {
        Value::from_object(Scope {
            globals: self.ctx.globals.clone(),
            user: self.user.clone(),
            vars: self.vars.clone(),
            response,
            event: None,
            rng: self.rng.clone(),
        })
    }

    fn scope_parts(&self) -> ScopeParts {
        ScopeParts {
            globals: self.ctx.globals.clone(),
            user: self.user.clone(),
            vars: self.vars.clone(),
            rng: self.rng.clone(),
        }
    }

    fn set_var(&mut self, name: &str, v: Value) {
        Arc::make_mut(&mut self.vars).insert(name.to_string(), v);
    }
}
