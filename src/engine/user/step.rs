//! One step: dispatch by kind (request, wait, sleep, set, offer, take), and waiting for an
//! agent event.

use std::time::Instant;

use super::{StepError, VirtualUser, excerpt};
use crate::measure::metrics::Event;
use crate::plan::compile::{CompiledStep, CompiledWait, StepKind};
use crate::results::StatKind;

impl VirtualUser {
    pub(super) async fn step(&mut self, step: &CompiledStep) -> Result<(), StepError> {
        let templates = self.ctx.plan.templates.clone();
        match &step.kind {
            StepKind::Request(rq) => self.request(step, rq).await,
            StepKind::Sleep(d) => {
                if self.pause(self.ctx.durations.get(*d)).await {
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
                        Ok(v) => self.set_var(name, crate::plan::scope::to_value(v)),
                        Err(e) => {
                            return Err(self.fail_untimed(
                                step,
                                "template error",
                                crate::plan::template::describe(&e),
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
                    Err(e) => Err(self.fail_untimed(
                        step,
                        "template error",
                        crate::plan::template::describe(&e),
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
                            crate::plan::template::describe(&e),
                        ));
                    }
                };
                let timeout = self.ctx.durations.get(*timeout);
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
                        self.record(step, StatKind::Take, None, started, Some(f.clone()));
                        Err(StepError::Failed)
                    }
                }
            }
            StepKind::WaitEvent(w) => self.wait_event(step, w).await,
            StepKind::Didcomm(d) => self.didcomm(step, d).await,
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
            Err(e) => {
                return Err(self.fail_untimed(
                    step,
                    "template error",
                    crate::plan::template::describe(&e),
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
        let timeout = ctx.durations.get(w.timeout);
        let mut eval_error = None;
        let base = self.scope_parts();
        let found = tokio::select! {
            e = hub.wait(&wallet, &w.topic, since, &self.consumed, timeout.saturating_sub(since.elapsed()), |_, payload| {
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
        match found {
            Some((event, payload)) => {
                let micros = event.received.saturating_duration_since(since).as_micros() as u64;
                if self.consumed.len() >= 64 {
                    self.consumed.remove(0);
                }
                self.consumed.push(event.seq);
                // One event, one sample: a capture that fails marks it failed.
                let failure = self
                    .apply_captures(&w.captures, &payload)
                    .err()
                    .map(|why| self.failure(step, why, excerpt(&payload.to_string())));
                ctx.recorder.send(Event::Sample {
                    phase: step.phase,
                    kind: StatKind::Event,
                    name: step.name.clone(),
                    method: None,
                    micros,
                    at: since,
                    failure: failure.clone(),
                });
                match failure {
                    None => Ok(()),
                    Some(_) => Err(StepError::Failed),
                }
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
                        crate::plan::duration::format(timeout)
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
}
