//! A virtual user: runs setup once, the task loop until stopped, then teardown.
//! Every failure is recorded with its reason; `on_error` decides what happens next.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use minijinja::Value;
use tokio_util::sync::CancellationToken;

use crate::compile::{CompiledRequest, CompiledStep, CompiledWait, Phase, StepKind};
use crate::metrics::{Event, Failure};
use crate::plan::ErrorAction;
use crate::results::StatKind;
use crate::run::RunContext;
use crate::template::{ResponseView, RngCell, Scope};

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

/// The parts of a user's scope, to build many scopes cheaply (one per candidate event).
struct ScopeParts {
    globals: Arc<crate::template::Globals>,
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
        let user = crate::template::to_value(serde_json::json!({
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
        ctx.recorder.send(Event::UserStarted);
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
        ctx.recorder.send(Event::UserStopped);
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

    async fn task_loop(&mut self) {
        let ctx = self.ctx.clone();
        let lists = &ctx.plan.tasks;
        let total_weight: u32 = lists.iter().map(|l| l.weight).sum();
        if lists.iter().all(|l| l.steps.is_empty()) {
            // Nothing to loop over: hold the user until the run stops.
            self.stop.cancelled().await;
            return;
        }
        while !self.stop.is_cancelled() {
            let list = if lists.len() == 1 {
                &lists[0]
            } else {
                let mut pick = self.think_rng.u32(0..total_weight.max(1));
                lists
                    .iter()
                    .find(|l| {
                        if pick < l.weight {
                            true
                        } else {
                            pick -= l.weight;
                            false
                        }
                    })
                    .unwrap_or(&lists[0])
            };
            let flow = self.run_steps(&list.steps).await;
            ctx.recorder.send(Event::Iteration);
            if flow == Flow::Stop {
                if !self.stop.is_cancelled() {
                    ctx.recorder.send(Event::StoppedByError);
                }
                return;
            }
            if let Some((lo, hi)) = ctx.plan.think {
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
            if self.stop.is_cancelled() && !teardown && !matches!(step.kind, StepKind::WaitEvent(_))
            {
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
                        crate::template::describe(&e),
                    ));
                }
            }
        }
        let mut attempt = 0;
        loop {
            match self.step(step).await {
                Err(StepError::Failed) if attempt < step.retries && !self.stop.is_cancelled() => {
                    attempt += 1;
                    if !self.pause(step.retry_delay).await {
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

    fn record(
        &self,
        step: &CompiledStep,
        kind: StatKind,
        method: Option<&'static str>,
        started: Instant,
        failure: Option<Failure>,
    ) {
        let micros = started.elapsed().as_micros() as u64;
        self.ctx.recorder.send(Event::Sample {
            phase: step.phase,
            kind,
            name: step.name.clone(),
            method,
            micros,
            at: started,
            failure,
        });
    }

    /// A failure that is not tied to a request (template errors, `when`): counted under the step.
    fn fail_untimed(&self, step: &CompiledStep, reason: &str, detail: String) -> StepError {
        let f = self.failure(step, reason.to_string(), detail);
        self.record(step, StatKind::Http, None, Instant::now(), Some(f.clone()));
        StepError::Failed
    }

    fn failure(&self, step: &CompiledStep, reason: String, detail: String) -> Failure {
        let mut secrets: Vec<String> = self.secrets.iter().map(|(_, v)| v.clone()).collect();
        secrets.extend(self.ctx.secrets.iter().cloned());
        let detail = crate::redact::scrub(
            &format!("user {} (plan line {}): {detail}", self.index, step.line),
            &secrets,
        );
        if self.ctx.verbose_failures {
            crate::errln!("failure: {}: {}: {detail}", step.name, reason);
        }
        Failure {
            reason: crate::redact::scrub(&reason, &secrets),
            detail,
        }
    }

    async fn step(&mut self, step: &CompiledStep) -> Result<(), StepError> {
        let templates = self.ctx.plan.templates.clone();
        match &step.kind {
            StepKind::Request(rq) => self.request(step, rq).await,
            StepKind::Sleep(d) => {
                if self.pause(*d).await {
                    Ok(())
                } else {
                    Err(StepError::Stopped)
                }
            }
            StepKind::Set(values) => {
                for (name, t) in values {
                    let scope = self.scope(None);
                    let v = templates.render_json(t, &scope);
                    drop(scope);
                    match v {
                        Ok(v) => self.set_var(name, crate::template::to_value(v)),
                        Err(e) => {
                            return Err(self.fail_untimed(
                                step,
                                "template error",
                                crate::template::describe(&e),
                            ));
                        }
                    }
                }
                Ok(())
            }
            StepKind::Offer { pool, key, value } => {
                let scope = self.scope(None);
                let v = templates.render_json(value, &scope).and_then(|v| {
                    let k = key
                        .as_ref()
                        .map(|k| templates.render(k, &scope))
                        .transpose()?;
                    Ok((v, k.unwrap_or_default()))
                });
                match v {
                    Ok((v, k)) => {
                        self.ctx.pools.offer(pool, &k, crate::template::to_value(v));
                        Ok(())
                    }
                    Err(e) => Err(self.fail_untimed(
                        step,
                        "template error",
                        crate::template::describe(&e),
                    )),
                }
            }
            StepKind::Take {
                pool,
                key,
                into,
                timeout,
            } => {
                let k = match key
                    .as_ref()
                    .map(|k| templates.render(k, &self.scope(None)))
                    .transpose()
                {
                    Ok(k) => k.unwrap_or_default(),
                    Err(e) => {
                        return Err(self.fail_untimed(
                            step,
                            "template error",
                            crate::template::describe(&e),
                        ));
                    }
                };
                let started = Instant::now();
                let taken = tokio::select! {
                    r = self.ctx.pools.take(pool, &k, *timeout) => r,
                    _ = self.stop.cancelled() => return Err(StepError::Stopped),
                };
                match taken {
                    Ok(v) => {
                        self.record(step, StatKind::Take, None, started, None);
                        self.set_var(into, v);
                        Ok(())
                    }
                    Err(_) => {
                        let f = self.failure(
                            step,
                            format!("no offer in pool `{pool}` within {}", crate::duration::format(*timeout)),
                            "no other user offered a value in time (odd number of users, or the offering user failed)".into(),
                        );
                        self.record(step, StatKind::Take, None, started, Some(f.clone()));
                        Err(StepError::Failed)
                    }
                }
            }
            StepKind::WaitEvent(w) => self.wait_event(step, w).await,
        }
    }

    /// Waits for an agent event; its latency runs from the `clock` step's send (or from
    /// the previous step's start) to the event's arrival at acaload. A graceful stop lets
    /// the wait finish (it completes a measurement of something already sent); only the
    /// hard stop cuts it short.
    async fn wait_event(&mut self, step: &CompiledStep, w: &CompiledWait) -> Result<(), StepError> {
        let ctx = self.ctx.clone();
        let Some(hub) = ctx.events.clone() else {
            return Err(self.fail_untimed(
                step,
                "no event source",
                "the plan has no `events:` section".into(),
            ));
        };
        let wallet = match ctx.plan.templates.render(&w.wallet, &self.scope(None)) {
            Ok(v) => v,
            Err(e) => {
                return Err(self.fail_untimed(
                    step,
                    "template error",
                    crate::template::describe(&e),
                ));
            }
        };
        let since = match &w.clock {
            Some(c) => match self.sent.get(c) {
                Some(t) => *t,
                None => {
                    return Err(self.fail_untimed(
                        step,
                        &format!("clock step `{c}` has not sent anything yet"),
                        String::new(),
                    ));
                }
            },
            None => self.prev_step_started,
        };
        let templates = ctx.plan.templates.clone();
        let mut eval_error = None;
        let base = self.scope_parts();
        let found = tokio::select! {
            e = hub.wait(&wallet, &w.topic, since, &self.consumed, w.timeout.saturating_sub(since.elapsed()), |e| {
                let Some(until) = w.until else { return true };
                let scope = base.with_event(e.payload.clone());
                match templates.holds(until, &scope) {
                    Ok(b) => b,
                    Err(err) => {
                        eval_error.get_or_insert(crate::template::describe(&err));
                        false
                    }
                }
            }) => e,
            _ = ctx.hard_stop.cancelled() => return Err(StepError::Stopped),
        };
        match found {
            Some(event) => {
                let micros = event.received.saturating_duration_since(since).as_micros() as u64;
                ctx.recorder.send(Event::Sample {
                    phase: step.phase,
                    kind: StatKind::Event,
                    name: step.name.clone(),
                    method: None,
                    micros,
                    at: since,
                    failure: None,
                });
                if self.consumed.len() >= 64 {
                    self.consumed.remove(0);
                }
                self.consumed.push(event.seq);
                for c in &w.captures {
                    match c.apply(&event.payload) {
                        Ok(v) => self.set_var(&c.name, crate::template::to_value(v)),
                        Err(why) => {
                            return Err(self.fail_untimed(
                                step,
                                &why,
                                excerpt(&event.payload.to_string()),
                            ));
                        }
                    }
                }
                Ok(())
            }
            None => {
                let cond = w.until.map_or("any event".to_string(), |u| {
                    format!("`{}`", templates.source(u))
                });
                let reason = match eval_error {
                    Some(e) => format!("event condition could not be evaluated: {e}"),
                    None => format!(
                        "no `{}` event with {cond} within {}",
                        w.topic,
                        crate::duration::format(w.timeout)
                    ),
                };
                let f = self.failure(step, reason, format!("wallet {wallet}"));
                ctx.recorder.send(Event::Sample {
                    phase: step.phase,
                    kind: StatKind::Event,
                    name: step.name.clone(),
                    method: None,
                    micros: since.elapsed().as_micros() as u64,
                    at: since,
                    failure: Some(f),
                });
                Err(StepError::Failed)
            }
        }
    }

    async fn request(
        &mut self,
        step: &CompiledStep,
        rq: &CompiledRequest,
    ) -> Result<(), StepError> {
        let ctx = self.ctx.clone();
        let prepared = {
            let scope = self.scope(None);
            crate::http::prepare(&ctx, rq, &scope)
        };
        let prepared = match prepared {
            Ok(p) => p,
            Err(e) => return Err(self.fail_untimed(step, "template error", e)),
        };
        let method = Some(rq.method.as_str());
        let poll_started = Instant::now();
        self.sent.insert(step.name.clone(), poll_started);
        loop {
            let started = Instant::now();
            let timeout = rq.timeout.unwrap_or(ctx.plan.target.timeout);
            // A request still waiting for a connection (target.max_connections) has not been
            // sent: a stop drops it (teardowns excepted), and its wait counts to its timeout.
            let slot = tokio::select! {
                // A free (or unlimited) slot answers at once; only a wait registers for stops.
                biased;
                s = ctx.http.slot(timeout) => s,
                _ = self.stop.cancelled(), if step.phase != Phase::Teardown => {
                    return Err(StepError::Stopped)
                }
                _ = ctx.hard_stop.cancelled() => return Err(StepError::Stopped),
            };
            if let Some(w) = slot.waited {
                ctx.recorder.send(Event::Sample {
                    phase: step.phase,
                    kind: StatKind::Queue,
                    name: step.name.clone(),
                    method,
                    micros: w.as_micros() as u64,
                    at: started,
                    failure: None,
                });
            }
            let outcome = if slot.granted {
                let budget = timeout.saturating_sub(slot.waited.unwrap_or_default());
                tokio::select! {
                    r = crate::http::send(&ctx, &prepared, rq, budget) => r,
                    _ = ctx.hard_stop.cancelled() => return Err(StepError::Stopped),
                }
            } else {
                Err(crate::http::HttpError::Timeout {
                    url: prepared.uri.to_string(),
                    timeout,
                })
            };
            drop(slot);
            let response = match outcome {
                Ok(r) => r,
                Err(e) => {
                    let f = self.failure(step, e.reason(), e.to_string());
                    self.record(step, StatKind::Http, method, started, Some(f.clone()));
                    if rq.poll.is_some() {
                        self.record(step, StatKind::Poll, None, poll_started, Some(f.clone()));
                    }
                    return Err(StepError::Failed);
                }
            };
            let view = Arc::new(response);
            match self.evaluate(step, rq, &view) {
                Err(f) => {
                    self.record(step, StatKind::Http, method, started, Some(f.clone()));
                    if rq.poll.is_some() {
                        self.record(step, StatKind::Poll, None, poll_started, Some(f.clone()));
                    }
                    return Err(StepError::Failed);
                }
                Ok(()) => self.record(step, StatKind::Http, method, started, None),
            }
            let Some(poll) = &rq.poll else {
                return self.capture(step, rq, &view);
            };
            let done = ctx
                .plan
                .templates
                .holds(poll.until, &self.scope(Some(view.clone())));
            match done {
                Ok(true) => {
                    let captured = self.capture(step, rq, &view);
                    self.record(step, StatKind::Poll, None, poll_started, None);
                    return captured;
                }
                Ok(false) if poll_started.elapsed() + poll.interval <= poll.timeout => {
                    if !self.pause(poll.interval).await {
                        return Err(StepError::Stopped);
                    }
                }
                Ok(false) => {
                    let f = self.failure(
                        step,
                        format!(
                            "poll timed out after {}: `{}` never held",
                            crate::duration::format(poll.timeout),
                            ctx.plan.templates.source(poll.until)
                        ),
                        format!("last response: {} {}", view.status, excerpt(&view.text())),
                    );
                    self.record(step, StatKind::Poll, None, poll_started, Some(f.clone()));
                    return Err(StepError::Failed);
                }
                Err(e) => {
                    let f = self.failure(
                        step,
                        "poll condition could not be evaluated".into(),
                        crate::template::describe(&e),
                    );
                    self.record(step, StatKind::Poll, None, poll_started, Some(f.clone()));
                    return Err(StepError::Failed);
                }
            }
        }
    }

    /// Status and `check.that`; a failure carries the status and a body excerpt.
    fn evaluate(
        &self,
        step: &CompiledStep,
        rq: &CompiledRequest,
        view: &Arc<ResponseView>,
    ) -> Result<(), Failure> {
        let ok_status = match &rq.status {
            Some(codes) => codes.contains(&view.status),
            None => (200..300).contains(&view.status),
        };
        if !ok_status {
            let expected = rq.status.as_ref().map_or("2xx".to_string(), |c| {
                c.iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(" or ")
            });
            return Err(self.failure(
                step,
                format!(
                    "status {} (expected {expected}): {}",
                    view.status,
                    reason_text(&view.text())
                ),
                format!("{} {}", view.status, excerpt(&view.text())),
            ));
        }
        if rq.reads_body() && view.json.is_none() {
            return Err(self.failure(
                step,
                "response is not JSON".into(),
                format!("{} {}", view.status, excerpt(&view.text())),
            ));
        }
        if rq.that.is_empty() {
            return Ok(());
        }
        let scope = self.scope(Some(view.clone()));
        for cond in &rq.that {
            let src = self.ctx.plan.templates.source(*cond);
            match self.ctx.plan.templates.holds(*cond, &scope) {
                Ok(true) => {}
                Ok(false) => {
                    return Err(self.failure(
                        step,
                        format!("check failed: `{src}`"),
                        format!("{} {}", view.status, excerpt(&view.text())),
                    ));
                }
                Err(e) => {
                    return Err(self.failure(
                        step,
                        format!("check `{src}` could not be evaluated"),
                        format!(
                            "{}; response {} {}",
                            crate::template::describe(&e),
                            view.status,
                            excerpt(&view.text())
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn capture(
        &mut self,
        step: &CompiledStep,
        rq: &CompiledRequest,
        view: &ResponseView,
    ) -> Result<(), StepError> {
        let Some(json) = &view.json else {
            return if rq.captures.is_empty() {
                Ok(())
            } else {
                Err(self.fail_untimed(step, "response is not JSON", excerpt(&view.text())))
            };
        };
        for c in &rq.captures {
            match c.apply(json) {
                Ok(v) => {
                    // One remembered value per secret capture: the latest is the live one.
                    if c.secret
                        && let Some(s) = v.as_str()
                    {
                        match self.secrets.iter_mut().find(|(name, _)| name == &c.name) {
                            Some((_, old)) if old == s => {}
                            Some((_, old)) => *old = s.to_string(),
                            None => self.secrets.push((c.name.clone(), s.to_string())),
                        }
                    }
                    self.set_var(&c.name, crate::template::to_value(v));
                }
                Err(why) => {
                    let detail = format!("{why}; body: {}", excerpt(&view.text()));
                    return Err(self.fail_untimed(step, &why, detail));
                }
            }
        }
        Ok(())
    }
}

/// The first line of an ACA-Py error body (`404: Record not found…`), short.
fn reason_text(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    let short: String = line.chars().take(120).collect();
    if short.is_empty() {
        "(empty body)".into()
    } else {
        short
    }
}

/// A short excerpt of a body for failure examples.
pub fn excerpt(text: &str) -> String {
    let mut masked = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(mut v) => {
            crate::redact::mask_secret_keys(&mut v);
            v.to_string()
        }
        Err(_) => text.to_string(),
    };
    if masked.chars().count() > 300 {
        masked = format!("{}…", masked.chars().take(300).collect::<String>());
    }
    masked
}
