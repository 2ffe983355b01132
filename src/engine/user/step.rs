//! One step: dispatch by kind (request, wait, sleep, set, offer, take), and waiting for an
//! agent event.

use std::time::Instant;

use super::{StepError, VirtualUser, excerpt};
use crate::measure::metrics::Event;
use crate::plan::compile::{CompiledStep, CompiledWait, StepKind};
use crate::plan::template::{JsonTemplate, Text};
use crate::results::StatKind;

impl VirtualUser {
    pub(super) async fn step(&mut self, step: &CompiledStep) -> Result<(), StepError> {
        match &step.kind {
            StepKind::Request(rq) => self.request(step, rq).await,
            StepKind::Sleep(d) => {
                if self.pause(self.ctx.durations.get(*d)).await {
                    Ok(())
                } else {
                    Err(StepError::Stopped)
                }
            }
            StepKind::Set(values) => self.set(step, values),
            StepKind::Offer { pool, key, value } => self.offer(step, pool, key.as_ref(), value),
            StepKind::Take {
                pool,
                key,
                into,
                timeout,
            } => {
                let timeout = self.ctx.durations.get(*timeout);
                self.take(step, pool, key.as_ref(), into, timeout).await
            }
            StepKind::WaitEvent(w) => self.wait_event(step, w).await,
            StepKind::Didcomm(d) => self.didcomm(step, d).await,
        }
    }

    /// A template error of `step`, recorded (nothing was sent).
    fn template_error(&self, step: &CompiledStep, e: &minijinja::Error) -> StepError {
        self.fail_untimed(step, "template error", crate::plan::template::describe(e))
    }

    /// `set:` renders each value into its variable, in order (a value may use the ones before).
    fn set(
        &mut self,
        step: &CompiledStep,
        values: &[(String, JsonTemplate)],
    ) -> Result<(), StepError> {
        let templates = self.ctx.plan.templates.clone();
        for (name, t) in values {
            let v = templates.render_json(t, &self.scope(None));
            match v {
                Ok(v) => self.set_var(name, crate::plan::scope::to_value(v)),
                Err(e) => return Err(self.template_error(step, &e)),
            }
        }
        Ok(())
    }

    /// `offer:` puts a rendered value in a pairing pool, under a rendered key.
    fn offer(
        &mut self,
        step: &CompiledStep,
        pool: &str,
        key: Option<&Text>,
        value: &JsonTemplate,
    ) -> Result<(), StepError> {
        let templates = &self.ctx.plan.templates;
        let scope = self.scope(None);
        let rendered = templates.render_json(value, &scope).and_then(|v| {
            let k = key.map(|k| templates.render(k, &scope)).transpose()?;
            Ok((v, k.unwrap_or_default()))
        });
        let (v, k) = match rendered {
            Ok(x) => x,
            Err(e) => return Err(self.template_error(step, &e)),
        };
        // Secrets in the value stay secrets for whoever takes it.
        let text = v.to_string();
        let secrets = self
            .secrets
            .iter()
            .filter(|(_, s)| text.contains(s.as_str()))
            .map(|(_, s)| s.clone())
            .collect();
        self.ctx.pools.offer(
            pool,
            &k,
            crate::engine::pairing::Offered {
                value: crate::plan::scope::to_value(v),
                secrets,
            },
        );
        Ok(())
    }

    /// `take:` waits (at most `timeout`) for a value another user offered, into `into`.
    async fn take(
        &mut self,
        step: &CompiledStep,
        pool: &str,
        key: Option<&Text>,
        into: &str,
        timeout: std::time::Duration,
    ) -> Result<(), StepError> {
        let templates = &self.ctx.plan.templates;
        let k = match key
            .map(|k| templates.render(k, &self.scope(None)))
            .transpose()
        {
            Ok(k) => k.unwrap_or_default(),
            Err(e) => return Err(self.template_error(step, &e)),
        };
        let started = Instant::now();
        let taken = tokio::select! {
            r = self.ctx.pools.take(pool, &k, timeout) => r,
            _ = self.stop.cancelled() => return Err(StepError::Stopped),
        };
        match taken {
            Ok(offered) => {
                self.record(step, StatKind::Take, None, started, None);
                for (i, s) in offered.secrets.iter().enumerate() {
                    self.remember_secret(&format!("{into}#{i}"), s);
                }
                self.set_var(into, offered.value);
                Ok(())
            }
            Err(_) => {
                let f = self.failure(
                    step,
                    format!("no offer in pool `{pool}` within {}", crate::plan::duration::format(timeout)),
                    "no other user offered a value in time (odd number of users, or the offering user failed)".into(),
                );
                self.record(step, StatKind::Take, None, started, Some(f));
                Err(StepError::Failed)
            }
        }
    }

    /// Waits for an agent event; its latency runs from the `clock` step's send (or from
    /// the previous step's start) to the event's arrival at acaload. A graceful stop lets
    /// the wait finish (it completes a measurement of something already sent); only the
    /// hard stop cuts it short.
    pub(super) async fn wait_event(
        &mut self,
        step: &CompiledStep,
        w: &CompiledWait,
    ) -> Result<(), StepError> {
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
            Err(e) => return Err(self.template_error(step, &e)),
        };
        let since = self.event_clock(step, w)?;
        let templates = &ctx.plan.templates;
        let timeout = ctx.durations.get(w.timeout);
        let mut eval_error = None;
        let base = self.scope_parts();
        let left = timeout.saturating_sub(since.elapsed());
        let found = tokio::select! {
            e = hub.wait(&wallet, &w.topic, since, &self.consumed, left, |_, payload| {
                let Some(until) = w.until else { return true };
                let scope = base.with_event(payload.clone());
                match templates.holds(until, &scope) {
                    Ok(b) => b,
                    Err(err) => {
                        eval_error.get_or_insert(crate::plan::template::describe(&err));
                        false
                    }
                }
            }) => e,
            _ = ctx.hard_stop.cancelled() => return Err(StepError::Stopped),
        };
        let Some((event, payload)) = found else {
            let cond = w.until.map_or("any event".to_string(), |u| {
                format!("`{}`", templates.source(u))
            });
            let reason = match eval_error {
                Some(e) => format!("event condition could not be evaluated: {e}"),
                None => format!(
                    "no `{}` event with {cond} within {}",
                    w.topic,
                    crate::plan::duration::format(timeout)
                ),
            };
            let f = self.failure(step, reason, format!("wallet {wallet}"));
            self.event_sample(step, since, since.elapsed(), Some(f));
            return Err(StepError::Failed);
        };
        if self.consumed.len() >= 64 {
            self.consumed.remove(0);
        }
        self.consumed.push(event.seq);
        // One event, one sample: a capture that fails marks it failed.
        let failure = self
            .apply_captures(&w.captures, &payload)
            .err()
            .map(|why| self.failure(step, why, excerpt(&payload.to_string())));
        let took = event.received.saturating_duration_since(since);
        self.event_sample(step, since, took, failure.clone());
        match failure {
            None => Ok(()),
            Some(_) => Err(StepError::Failed),
        }
    }

    /// When a wait's latency starts: its `clock` step's last send, or the previous step's
    /// start.
    fn event_clock(&self, step: &CompiledStep, w: &CompiledWait) -> Result<Instant, StepError> {
        let Some(c) = &w.clock else {
            return Ok(self.prev_step_started);
        };
        self.sent.get(c).copied().ok_or_else(|| {
            self.fail_untimed(
                step,
                &format!("clock step `{c}` has not sent anything yet"),
                String::new(),
            )
        })
    }

    /// A wait's sample in its `event` row.
    fn event_sample(
        &self,
        step: &CompiledStep,
        since: Instant,
        took: std::time::Duration,
        failure: Option<crate::measure::metrics::Failure>,
    ) {
        self.ctx.recorder.send(Event::Sample {
            phase: step.phase,
            kind: StatKind::Event,
            name: step.name.clone(),
            method: None,
            micros: took.as_micros() as u64,
            at: since,
            failure,
        });
    }
}
