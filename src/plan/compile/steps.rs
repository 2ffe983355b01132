//! Compiling steps: requests, checks, captures, polls, waits and pool use.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::cx::Cx;
use super::{CompiledPoll, CompiledRequest, CompiledStep, CompiledWait, Dur, StepKind};
use crate::plan::capture::Capture;
use crate::plan::source::{self};
use crate::plan::template::{JsonTemplate, Text};
use crate::plan::{self, CaptureSpec, ErrorAction, OnError, Phase, Plan, Step};

impl Cx<'_> {
    pub(super) fn steps(
        &mut self,
        pointer: &str,
        steps: &[Step],
        phase: Phase,
        plan: &Plan,
    ) -> Vec<CompiledStep> {
        steps
            .iter()
            .enumerate()
            .filter_map(|(i, s)| self.step(&format!("{pointer}/{i}"), s, phase, plan))
            .collect()
    }

    pub(super) fn step(
        &mut self,
        p: &str,
        step: &Step,
        phase: Phase,
        plan: &Plan,
    ) -> Option<CompiledStep> {
        if !self.does_one_thing(p, step) {
            return None;
        }
        let when = step
            .when
            .as_ref()
            .map(|w| self.compiler.expr(&format!("{p}/when"), w, false));
        let (retries, retry_delay, on_error) = self.on_error(p, step, phase);
        let (kind, default_name) = self.kind(p, step, plan)?;
        Some(CompiledStep {
            name: Arc::from(step.name.clone().unwrap_or(default_name)),
            phase,
            line: self.spans.value(p).line,
            when,
            kind,
            retries,
            retry_delay,
            on_error,
        })
    }

    /// Checks that the step has exactly one action, and keys only its action allows.
    fn does_one_thing(&mut self, p: &str, step: &Step) -> bool {
        let kinds: Vec<&str> = [
            ("request", step.request.is_some()),
            ("sleep", step.sleep.is_some()),
            ("set", step.set.is_some()),
            ("offer", step.offer.is_some()),
            ("take", step.take.is_some()),
            ("wait_event", step.wait_event.is_some()),
            ("didcomm", step.didcomm.is_some()),
        ]
        .iter()
        .filter(|(_, present)| *present)
        .map(|(k, _)| *k)
        .collect();
        if kinds.len() != 1 {
            let msg = if kinds.is_empty() {
                "a step needs one of `request`, `sleep`, `set`, `offer`, `take`, `wait_event`, `didcomm`"
                    .to_string()
            } else {
                format!(
                    "a step does one thing; this one has {}",
                    kinds
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(" and ")
                )
            };
            self.error(p, msg);
            return false;
        }
        if step.request.is_none() {
            for (key, present) in [
                ("check", step.check.is_some()),
                (
                    "capture",
                    !step.capture.is_empty() && step.wait_event.is_none(),
                ),
                ("poll", step.poll.is_some()),
            ] {
                if present {
                    self.error(
                        &format!("{p}/{key}"),
                        format!("`{key}` only applies to `request` steps"),
                    );
                }
            }
        }
        true
    }

    /// Retries, the delay between them, and what to do after the last failure (by default:
    /// stop in setup, next iteration in tasks, carry on in teardown).
    fn on_error(&mut self, p: &str, step: &Step, phase: Phase) -> (u32, Dur, ErrorAction) {
        let (retries, retry_delay, then) = match &step.on_error {
            None => (0, Dur::Literal(Duration::ZERO), None),
            Some(OnError::Action(a)) => (0, Dur::Literal(Duration::ZERO), Some(*a)),
            Some(OnError::Retry(r)) => (
                r.retry,
                self.opt_duration(
                    &format!("{p}/on_error/delay"),
                    r.delay.as_ref(),
                    Duration::from_secs(1),
                    false,
                ),
                r.then,
            ),
        };
        let on_error = then.unwrap_or(match phase {
            Phase::Setup => ErrorAction::Stop,
            Phase::Tasks => ErrorAction::NextIteration,
            Phase::Teardown => ErrorAction::Continue,
        });
        (retries, retry_delay, on_error)
    }

    /// The step's action, compiled, and the name it gets in the statistics when it has none.
    fn kind(&mut self, p: &str, step: &Step, plan: &Plan) -> Option<(StepKind, String)> {
        Some(if let Some(r) = &step.request {
            let rq = self.request(p, r, step);
            (
                StepKind::Request(Box::new(rq)),
                format!("{} {}", r.method.as_str(), r.path),
            )
        } else if let Some(s) = &step.sleep {
            (
                StepKind::Sleep(self.duration(&format!("{p}/sleep"), s, false)),
                format!("sleep {s}"),
            )
        } else if let Some(set) = &step.set {
            let vals = self.jsons(&format!("{p}/set"), set);
            (StepKind::Set(vals), "set".to_string())
        } else if let Some(o) = &step.offer {
            self.offer(&format!("{p}/offer"), o, plan)
        } else if let Some(t) = &step.take {
            self.take(&format!("{p}/take"), t, plan)
        } else if let Some(w) = &step.wait_event {
            self.wait_event(p, w, step, plan)
        } else if let Some(d) = &step.didcomm {
            let compiled = self.didcomm(&format!("{p}/didcomm"), d);
            let default_name = format!("didcomm {}", compiled.action());
            (StepKind::Didcomm(Box::new(compiled)), default_name)
        } else {
            return None;
        })
    }

    fn offer(&mut self, op: &str, o: &plan::Offer, plan: &Plan) -> (StepKind, String) {
        self.pool(&format!("{op}/pool"), &o.pool, plan);
        let value = self.compiler.json(&format!("{op}/value"), &o.value);
        let key = o
            .key
            .as_ref()
            .map(|k| self.compiler.text(&format!("{op}/key"), k, false));
        let kind = StepKind::Offer {
            pool: o.pool.clone(),
            key,
            value,
        };
        (kind, format!("offer {}", o.pool))
    }

    fn take(&mut self, tp: &str, t: &plan::Take, plan: &Plan) -> (StepKind, String) {
        self.pool(&format!("{tp}/pool"), &t.pool, plan);
        let timeout = self.opt_duration(
            &format!("{tp}/timeout"),
            t.timeout.as_ref(),
            Duration::from_secs(30),
            true,
        );
        let key = t
            .key
            .as_ref()
            .map(|k| self.compiler.text(&format!("{tp}/key"), k, false));
        let kind = StepKind::Take {
            pool: t.pool.clone(),
            key,
            into: t.into.clone(),
            timeout,
        };
        (kind, format!("take {}", t.pool))
    }

    fn wait_event(
        &mut self,
        p: &str,
        w: &plan::WaitEvent,
        step: &Step,
        plan: &Plan,
    ) -> (StepKind, String) {
        let wp = format!("{p}/wait_event");
        if plan.events.is_none() {
            self.error(
                &wp,
                "`wait_event` needs an `events:` section (source: webhook or websocket)",
            );
        }
        let wallet = self
            .compiler
            .text(&format!("{wp}/wallet"), &w.wallet, false);
        let until = w
            .until
            .as_ref()
            .map(|u| self.compiler.expr(&format!("{wp}/until"), u, true));
        let timeout = self.opt_duration(
            &format!("{wp}/timeout"),
            w.timeout.as_ref(),
            Duration::from_secs(30),
            true,
        );
        if let Some(c) = &w.clock
            && !self.step_names.contains(c)
        {
            let names: Vec<String> = self.step_names.iter().cloned().collect();
            let hint = crate::plan::diagnostic::suggest(c, &names)
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            self.error(
                &format!("{wp}/clock"),
                format!("`clock` names no step of this plan: `{c}`{hint}"),
            );
        }
        let captures = self.captures(p, step);
        let kind = StepKind::WaitEvent(Box::new(CompiledWait {
            topic: w.topic.clone(),
            wallet,
            until,
            timeout,
            clock: w.clock.as_deref().map(Arc::from),
            captures,
        }));
        (kind, format!("event {}", w.topic))
    }

    pub(super) fn captures(&mut self, p: &str, step: &Step) -> Vec<Capture> {
        let mut captures = Vec::new();
        for (name, spec) in &step.capture {
            let (path, select, secret) = match spec {
                CaptureSpec::Path(path) => (path.as_str(), plan::Select::First, false),
                CaptureSpec::Full(f) => (f.path.as_str(), f.select, f.secret),
            };
            let pointer = match spec {
                CaptureSpec::Path(_) => format!("{p}/capture/{}", source::escape(name)),
                CaptureSpec::Full(_) => format!("{p}/capture/{}/path", source::escape(name)),
            };
            match Capture::compile(name, path, select, secret) {
                Ok(c) => captures.push(c),
                Err(e) => self.error(&pointer, e),
            }
        }
        captures
    }

    pub(super) fn pool(&mut self, pointer: &str, name: &str, plan: &Plan) {
        if !plan.pools.contains_key(name) {
            let names: Vec<String> = plan.pools.keys().cloned().collect();
            let hint = crate::plan::diagnostic::suggest(name, &names)
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            self.error(
                pointer,
                format!("pool `{name}` is not declared under `pools:`{hint}"),
            );
        }
    }

    /// A map of JSON values with templated leaves (plan `vars`, `set`) under `prefix`.
    pub(super) fn jsons(
        &mut self,
        prefix: &str,
        map: &BTreeMap<String, serde_json::Value>,
    ) -> Vec<(String, JsonTemplate)> {
        map.iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    self.compiler
                        .json(&format!("{prefix}/{}", source::escape(k)), v),
                )
            })
            .collect()
    }

    /// A map of templated strings (query parameters, headers) under `prefix`.
    pub(super) fn texts(
        &mut self,
        prefix: &str,
        map: &BTreeMap<String, String>,
    ) -> Vec<(String, Text)> {
        map.iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    self.compiler
                        .text(&format!("{prefix}/{}", source::escape(k)), v, false),
                )
            })
            .collect()
    }

    pub(super) fn request(&mut self, p: &str, r: &plan::Request, step: &Step) -> CompiledRequest {
        let rp = format!("{p}/request");
        let path = self.compiler.text(&format!("{rp}/path"), &r.path, false);
        let query = self.texts(&format!("{rp}/query"), &r.query);
        let headers = self.texts(&format!("{rp}/headers"), &r.headers);
        let bearer = r
            .bearer
            .as_ref()
            .map(|b| self.compiler.text(&format!("{rp}/bearer"), b, false));
        let json = r
            .json
            .as_ref()
            .map(|j| self.compiler.json(&format!("{rp}/json"), j));
        let timeout = r
            .timeout
            .as_ref()
            .map(|t| self.duration(&format!("{rp}/timeout"), t, true));
        let status = step
            .check
            .as_ref()
            .and_then(|c| c.status.as_ref())
            .map(|s| s.to_vec());
        if let Some(codes) = &status {
            for c in codes {
                if !(100..=599).contains(c) {
                    self.error(
                        &format!("{p}/check/status"),
                        format!("{c} is not an HTTP status code"),
                    );
                }
            }
        }
        let that = step
            .check
            .iter()
            .flat_map(|c| c.that.iter().enumerate())
            .map(|(i, e)| self.compiler.expr(&format!("{p}/check/that/{i}"), e, true))
            .collect();
        let captures = self.captures(p, step);
        let poll = step.poll.as_ref().map(|poll| CompiledPoll {
            until: self
                .compiler
                .expr(&format!("{p}/poll/until"), &poll.until, true),
            interval: self.opt_duration(
                &format!("{p}/poll/interval"),
                poll.interval.as_ref(),
                Duration::from_millis(250),
                true,
            ),
            timeout: self.opt_duration(
                &format!("{p}/poll/timeout"),
                poll.timeout.as_ref(),
                Duration::from_secs(30),
                true,
            ),
        });
        CompiledRequest {
            method: r.method,
            path,
            query,
            headers,
            bearer,
            json,
            timeout,
            status,
            that,
            captures,
            poll,
        }
    }
}
