//! A request step: prepare, wait for a connection slot, send, then check, poll and capture.

use std::sync::Arc;
use std::time::Instant;

use super::{StepError, VirtualUser, excerpt, reason_text};
use crate::measure::metrics::{Event, Failure};
use crate::plan::Phase;
use crate::plan::compile::{CompiledRequest, CompiledStep};
use crate::plan::template::ResponseView;
use crate::results::StatKind;

impl VirtualUser {
    pub(super) async fn request(
        &mut self,
        step: &CompiledStep,
        rq: &CompiledRequest,
    ) -> Result<(), StepError> {
        let ctx = self.ctx.clone();
        let prepared = {
            let scope = self.scope(None);
            crate::engine::http::prepare(&ctx.http, &ctx.plan.templates, rq, &scope)
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
            let timeout = rq.timeout.map_or(ctx.timeout, |t| ctx.durations.get(t));
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
                    r = crate::engine::http::send(&ctx.http, timeout, &prepared, rq, budget) => r,
                    _ = ctx.hard_stop.cancelled() => return Err(StepError::Stopped),
                }
            } else {
                Err(crate::engine::http::HttpError::Timeout {
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
                Ok(false)
                    if poll_started.elapsed() + ctx.durations.get(poll.interval)
                        <= ctx.durations.get(poll.timeout) =>
                {
                    if !self.pause(ctx.durations.get(poll.interval)).await {
                        return Err(StepError::Stopped);
                    }
                }
                Ok(false) => {
                    let f = self.failure(
                        step,
                        format!(
                            "poll timed out after {}: `{}` never held",
                            crate::plan::duration::format(ctx.durations.get(poll.timeout)),
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
                        crate::plan::template::describe(&e),
                    );
                    self.record(step, StatKind::Poll, None, poll_started, Some(f.clone()));
                    return Err(StepError::Failed);
                }
            }
        }
    }

    /// Status and `check.that`; a failure carries the status and a body excerpt.
    pub(super) fn evaluate(
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
                            crate::plan::template::describe(&e),
                            view.status,
                            excerpt(&view.text())
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    pub(super) fn capture(
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
                    self.set_var(&c.name, crate::plan::template::to_value(v));
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
