//! A request step: prepare, wait for a connection slot, send, then check, poll and capture.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{StepError, VirtualUser, excerpt, reason_text};
use crate::measure::metrics::{Event, Failure};
use crate::plan::Phase;
use crate::plan::compile::{CompiledPoll, CompiledRequest, CompiledStep};
use crate::plan::scope::ResponseView;
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
            let timeout = rq.timeout.map_or(ctx.timeout, |t| ctx.durations.get(t));
            let slot = self
                .connection(step, rq, &prepared, timeout, poll_started)
                .await?;
            // The request's latency starts here, after any wait for a connection.
            let started = Instant::now();
            let budget = timeout.saturating_sub(slot.waited.unwrap_or_default());
            let outcome = tokio::select! {
                r = crate::engine::http::send(&ctx.http, timeout, &prepared, rq, budget) => r,
                _ = ctx.hard_stop.cancelled() => return Err(StepError::Stopped),
            };
            drop(slot);
            let (response, read_at) = match outcome {
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
            // Until the last byte was read: checks, conditions and captures are not latency.
            let took = read_at.saturating_duration_since(started);
            let view = Arc::new(response);
            let mut failure = self.evaluate(step, rq, &view).err();
            let done = match (&rq.poll, &failure) {
                (Some(poll), None) => Some(
                    ctx.plan
                        .templates
                        .holds(poll.until, &self.scope(Some(view.clone()))),
                ),
                _ => None,
            };
            // Captures read the final response: the only one, or the one the poll ended on.
            if failure.is_none() && matches!(done, None | Some(Ok(true))) {
                failure = self.capture(step, rq, &view).err();
            }
            // One request, one sample: a check or capture that fails marks it failed.
            self.record_took(step, StatKind::Http, method, started, took, failure.clone());
            if let Some(f) = failure {
                if rq.poll.is_some() {
                    self.record(step, StatKind::Poll, None, poll_started, Some(f));
                }
                return Err(StepError::Failed);
            }
            let (Some(poll), Some(done)) = (&rq.poll, done) else {
                return Ok(());
            };
            if !self
                .poll_again(step, poll, done, poll_started, &view)
                .await?
            {
                return Ok(());
            }
        }
    }

    /// Waits for leave to send under `target.max_connections` (at once without a limit). A
    /// request still waiting has not been sent: a stop drops it (teardowns excepted), and
    /// its wait counts to its timeout.
    async fn connection(
        &mut self,
        step: &CompiledStep,
        rq: &CompiledRequest,
        prepared: &crate::engine::http::Prepared,
        timeout: Duration,
        poll_started: Instant,
    ) -> Result<crate::engine::http::Slot, StepError> {
        let ctx = self.ctx.clone();
        let waiting = Instant::now();
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
                method: Some(rq.method.as_str()),
                micros: w.as_micros() as u64,
                at: waiting,
                failure: None,
            });
        }
        if slot.granted {
            return Ok(slot);
        }
        // Never sent: a failure of the step, not a request (the wait has its row).
        let e = crate::engine::http::HttpError::Timeout {
            url: prepared.uri.to_string(),
            timeout,
        };
        let f = self.failure(step, e.reason(), format!("{e} (no free connection)"));
        self.fail_unsent(step, f.clone());
        if rq.poll.is_some() {
            self.record(step, StatKind::Poll, None, poll_started, Some(f));
        }
        Err(StepError::Failed)
    }

    /// After a polled request whose checks passed: whether to send it again (its condition
    /// does not hold yet, and there is time for another), after the poll's interval. The
    /// poll's own row is recorded when it ends.
    async fn poll_again(
        &mut self,
        step: &CompiledStep,
        poll: &CompiledPoll,
        done: Result<bool, minijinja::Error>,
        poll_started: Instant,
        view: &ResponseView,
    ) -> Result<bool, StepError> {
        let ctx = self.ctx.clone();
        let (interval, limit) = (
            ctx.durations.get(poll.interval),
            ctx.durations.get(poll.timeout),
        );
        let f = match done {
            Ok(true) => {
                self.record(step, StatKind::Poll, None, poll_started, None);
                return Ok(false);
            }
            Ok(false) if poll_started.elapsed() + interval <= limit => {
                return if self.pause(interval).await {
                    Ok(true)
                } else {
                    Err(StepError::Stopped)
                };
            }
            Ok(false) => self.failure(
                step,
                format!(
                    "poll timed out after {}: `{}` never held",
                    crate::plan::duration::format(limit),
                    ctx.plan.templates.source(poll.until)
                ),
                format!("last response: {} {}", view.status, excerpt(&view.text())),
            ),
            Err(e) => self.failure(
                step,
                "poll condition could not be evaluated".into(),
                crate::plan::template::describe(&e),
            ),
        };
        self.record(step, StatKind::Poll, None, poll_started, Some(f));
        Err(StepError::Failed)
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

    /// Applies the request's captures to the response; a capture that fails is the
    /// request's failure.
    pub(super) fn capture(
        &mut self,
        step: &CompiledStep,
        rq: &CompiledRequest,
        view: &ResponseView,
    ) -> Result<(), Failure> {
        if rq.captures.is_empty() {
            return Ok(());
        }
        let Some(json) = &view.json else {
            return Err(self.failure(step, "response is not JSON".into(), excerpt(&view.text())));
        };
        self.apply_captures(&rq.captures, json).map_err(|why| {
            let detail = format!("{why}; body: {}", excerpt(&view.text()));
            self.failure(step, why, detail)
        })
    }

    /// Sets each capture's variable from `json`; secret values are remembered (scrubbed
    /// from failures). The reason of the first capture that fails.
    pub(super) fn apply_captures(
        &mut self,
        captures: &[crate::plan::capture::Capture],
        json: &serde_json::Value,
    ) -> Result<(), String> {
        for c in captures {
            let v = c.apply(json)?;
            // One remembered value per secret capture: the latest is the live one.
            if c.secret
                && let Some(s) = v.as_str()
            {
                self.remember_secret(&c.name, s);
            }
            self.set_var(&c.name, crate::plan::scope::to_value(v));
        }
        Ok(())
    }

    /// Keeps `value` of the secret `name` (the latest value of a name is the live one).
    pub(super) fn remember_secret(&mut self, name: &str, value: &str) {
        match self.secrets.iter_mut().find(|(n, _)| n == name) {
            Some((_, old)) if old == value => {}
            Some((_, old)) => *old = value.to_string(),
            None => self.secrets.push((name.to_string(), value.to_string())),
        }
    }
}
