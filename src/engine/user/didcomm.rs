//! An edge-agent step (`didcomm:`): render its templates, run the protocol step of the user's
//! [`EdgeAgent`], record what it measured. Exchanges on the socket are `WS` rows, forwards
//! POSTed to the mediator `POST` rows, waits for a state (granted, connected) `state` rows,
//! and arrivals at a socket (delivery, ping round trip) `event` rows, so the report, levels
//! and thresholds read them as they read the multitenant plan's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{StepError, VirtualUser};
use crate::engine::edge::EdgeAgent;
use crate::engine::edge::agent::EdgeError;
use crate::engine::edge::inbox::Late;
use crate::measure::metrics::Event;
use crate::plan::compile::{CompiledDidcomm, CompiledStep};
use crate::results::StatKind;

/// The method column of a DIDComm exchange over the agent's own socket.
const WS: &str = "WS";
/// A failure and the row it is counted in (`None`: already recorded).
type Counted = (StatKind, Option<&'static str>, EdgeError);

/// Why a message was lost when the peer's socket to the mediator dropped (a mediator restart,
/// a network drop) between its send and the end of its wait.
pub const LOST_DROPPED: &str = "lost: the peer's socket to the mediator dropped before it arrived";

/// The name of the onboarding time (connect → granted).
const ONBOARDING: &str = "onboarding (connect to granted)";

impl VirtualUser {
    pub(super) async fn didcomm(
        &mut self,
        step: &CompiledStep,
        d: &CompiledDidcomm,
    ) -> Result<(), StepError> {
        let Some(hub) = self.ctx.edge.clone() else {
            return Err(self.fail_untimed(step, "no edge agents in this run", String::new()));
        };
        let started = Instant::now();
        let hard_stop = self.ctx.hard_stop.clone();
        let outcome = tokio::select! {
            r = self.didcomm_action(step, d, hub, started) => r,
            _ = hard_stop.cancelled() => return Err(StepError::Stopped),
        };
        match outcome {
            Ok(()) => Ok(()),
            Err(None) => Err(StepError::Failed),
            Err(Some((kind, method, e))) => {
                let unsent = e.unsent;
                let f = self.failure(step, e.reason, e.detail);
                if unsent {
                    self.fail_unsent(step, f);
                } else {
                    self.record(step, kind, method, started, Some(f));
                }
                Err(StepError::Failed)
            }
        }
    }

    fn edge(&mut self) -> Result<&mut EdgeAgent, EdgeError> {
        self.edge.as_deref_mut().ok_or_else(|| {
            EdgeError::unsent(
                "not connected to the mediator",
                "a `didcomm: connect` step must succeed first",
            )
        })
    }

    fn render_text(&self, t: &crate::plan::template::Text) -> Result<String, EdgeError> {
        self.ctx
            .plan
            .templates
            .render(t, &self.scope(None))
            .map_err(|e| EdgeError::unsent("template error", crate::plan::template::describe(&e)))
    }

    /// Runs the action; a failure comes back with the kind of row it is counted in.
    async fn didcomm_action(
        &mut self,
        step: &CompiledStep,
        d: &CompiledDidcomm,
        hub: Arc<crate::engine::edge::EdgeHub>,
        started: Instant,
    ) -> Result<(), Option<Counted>> {
        let ws = |e| Some((StatKind::Http, Some(WS), e));
        let post = |e| Some((StatKind::Http, Some("POST"), e));
        let state = |e| Some((StatKind::Poll, None, e));
        let event = |e| Some((StatKind::Event, None, e));
        let ctx = self.ctx.clone();
        match d {
            CompiledDidcomm::Connect {
                invitation,
                websocket,
                label,
                drain,
                timeout,
            } => {
                let url = self.render_text(invitation).map_err(ws)?;
                let websocket = self.render_text(websocket).map_err(ws)?;
                let label = match label {
                    Some(l) => self.render_text(l).map_err(ws)?,
                    None => format!("acaload edge {}", self.index),
                };
                let drain = match drain {
                    None => false,
                    Some(t) => {
                        let v = self
                            .ctx
                            .plan
                            .templates
                            .render_json(t, &self.scope(None))
                            .map_err(|e| {
                                ws(EdgeError::unsent(
                                    "template error",
                                    crate::plan::template::describe(&e),
                                ))
                            })?;
                        flag(&v).ok_or_else(|| {
                            ws(EdgeError::unsent(
                                "`drain` is neither true nor false",
                                v.to_string(),
                            ))
                        })?
                    }
                };
                let inv = crate::didcomm::oob::Invitation::from_url(&url)
                    .map_err(|e| ws(EdgeError::unsent("bad mediator invitation", e.to_string())))?;
                if let Some(mut old) = self.edge.take() {
                    old.close(Duration::from_secs(1)).await;
                }
                let agent = EdgeAgent::connect(
                    hub,
                    &inv,
                    &websocket,
                    label,
                    drain,
                    ctx.durations.get(*timeout),
                )
                .await
                .map_err(ws)?;
                self.edge = Some(Box::new(agent));
                self.record(step, StatKind::Http, Some(WS), started, None);
            }
            CompiledDidcomm::RequestMediation { timeout } => {
                let agent = self.edge().map_err(state)?;
                agent
                    .request_mediation(ctx.durations.get(*timeout))
                    .await
                    .map_err(state)?;
                let onboarding = agent.started;
                self.record(step, StatKind::Poll, None, started, None);
                self.ctx.recorder.send(Event::Sample {
                    phase: step.phase,
                    kind: StatKind::Poll,
                    name: Arc::from(ONBOARDING),
                    method: None,
                    micros: onboarding.elapsed().as_micros() as u64,
                    at: onboarding,
                    failure: None,
                });
            }
            CompiledDidcomm::Invite { into, timeout } => {
                let agent = self.edge().map_err(ws)?;
                let inv = agent
                    .invite(ctx.durations.get(*timeout))
                    .await
                    .map_err(ws)?;
                let value = serde_json::to_value(&inv).map_err(|e| {
                    ws(EdgeError::unsent(
                        "cannot write the invitation",
                        e.to_string(),
                    ))
                })?;
                self.set_var(into, crate::plan::scope::to_value(value));
                self.record(step, StatKind::Http, Some(WS), started, None);
            }
            CompiledDidcomm::AcceptInvitation {
                invitation,
                timeout,
            } => {
                let v = self
                    .ctx
                    .plan
                    .templates
                    .render_json(invitation, &self.scope(None))
                    .map_err(|e| {
                        state(EdgeError::unsent(
                            "template error",
                            crate::plan::template::describe(&e),
                        ))
                    })?;
                let inv = match &v {
                    serde_json::Value::String(url) => {
                        crate::didcomm::oob::Invitation::from_url(url)
                    }
                    other => {
                        crate::didcomm::oob::Invitation::from_json(other.to_string().as_bytes())
                    }
                }
                .map_err(|e| state(EdgeError::unsent("bad peer invitation", e.to_string())))?;
                let agent = self.edge().map_err(state)?;
                agent
                    .accept_invitation(&inv, ctx.durations.get(*timeout))
                    .await
                    .map_err(state)?;
                self.record(step, StatKind::Poll, None, started, None);
            }
            CompiledDidcomm::AwaitConnection { timeout } => {
                let agent = self.edge().map_err(state)?;
                agent
                    .await_connection(ctx.durations.get(*timeout))
                    .await
                    .map_err(state)?;
                self.record(step, StatKind::Poll, None, started, None);
            }
            CompiledDidcomm::Message { content } => {
                let content = match content {
                    Some(c) => self.render_text(c).map_err(post)?,
                    None => crate::didcomm::messages::new_id(),
                };
                let agent = self.edge().map_err(post)?;
                let at = agent.message(content).await.map_err(post)?;
                self.sent.insert(step.name.clone(), at);
                self.record(step, StatKind::Http, Some("POST"), started, None);
            }
            CompiledDidcomm::Delivered { timeout } => {
                let agent = self.edge().map_err(event)?;
                let unconfirmed = std::mem::take(&mut agent.unconfirmed);
                if unconfirmed.is_empty() {
                    return Err(event(EdgeError::unsent(
                        "no message sent yet",
                        "a `didcomm: message` step must come first",
                    )));
                }
                // each message sent since the last wait: its own sample, lost or delivered
                let mut lost = false;
                for sent in unconfirmed {
                    lost |= !self
                        .delivered(step, sent, ctx.durations.get(*timeout))
                        .await;
                }
                if lost {
                    return Err(None);
                }
            }
            CompiledDidcomm::Ping { to, timeout } => {
                let agent = self.edge().map_err(event)?;
                let to_peer = *to == crate::plan::PingTo::Peer;
                let (at, waiter) = agent.ping(to_peer).await.map_err(event)?;
                let pong = agent
                    .pong(waiter, at + ctx.durations.get(*timeout), to_peer)
                    .await
                    .map_err(event)?;
                self.ctx.recorder.send(Event::Sample {
                    phase: step.phase,
                    kind: StatKind::Event,
                    name: step.name.clone(),
                    method: None,
                    micros: pong.saturating_duration_since(at).as_micros() as u64,
                    at,
                    failure: None,
                });
            }
            CompiledDidcomm::Disconnect { timeout } => {
                let Some(mut agent) = self.edge.take() else {
                    return Ok(());
                };
                agent
                    .disconnect(ctx.durations.get(*timeout))
                    .await
                    .map_err(ws)?;
                self.record(step, StatKind::Http, Some(WS), started, None);
            }
        }
        Ok(())
    }

    /// Waits for one message at the peer's socket and records its delivery (or loss).
    async fn delivered(
        &self,
        step: &CompiledStep,
        sent: crate::engine::edge::Sent,
        timeout: Duration,
    ) -> bool {
        let found = tokio::time::timeout_at((sent.at + timeout).into(), sent.waiter).await;
        match found {
            Ok(Ok(a)) => {
                self.ctx.recorder.send(Event::Sample {
                    phase: step.phase,
                    kind: StatKind::Event,
                    name: step.name.clone(),
                    method: None,
                    micros: a.at.saturating_duration_since(sent.at).as_micros() as u64,
                    at: sent.at,
                    failure: None,
                });
                true
            }
            Ok(Err(_)) => {
                let why = sent
                    .to
                    .inbox
                    .closed()
                    .unwrap_or_else(|| "the peer's socket task ended".into());
                self.lost(step, sent.at, "lost: the peer's socket closed", why);
                false
            }
            Err(_) => {
                sent.to.inbox.gave_up(
                    &sent.id,
                    Late {
                        sent: sent.at,
                        step: step.name.clone(),
                    },
                );
                // The mediator held it while the peer was disconnected: in its in-memory
                // queue, lost if it restarted (or still there: it arrives late, as held).
                match sent.to.down_during(sent.at, Instant::now()) {
                    Some(outage) => self.lost(
                        step,
                        sent.at,
                        LOST_DROPPED,
                        format!("message {}: the peer's socket: {outage}", sent.id),
                    ),
                    None => self.lost(
                        step,
                        sent.at,
                        &format!(
                            "lost: not at the peer's socket within {}",
                            crate::plan::duration::format(timeout)
                        ),
                        format!("message {}", sent.id),
                    ),
                }
                false
            }
        }
    }

    /// Records a lost message (its `event` row, timed from the send) and fails the step.
    fn lost(&self, step: &CompiledStep, sent: Instant, reason: &str, detail: String) {
        // recorded here, timed from the send (the caller's record would start at the wait)
        let f = self.failure(step, reason.to_string(), detail);
        self.ctx.recorder.send(Event::Sample {
            phase: step.phase,
            kind: StatKind::Event,
            name: step.name.clone(),
            method: None,
            micros: sent.elapsed().as_micros() as u64,
            at: sent,
            failure: Some(f),
        });
    }
}

/// `true`/`false` as JSON or text.
fn flag(v: &serde_json::Value) -> Option<bool> {
    match v {
        serde_json::Value::Bool(b) => Some(*b),
        serde_json::Value::String(s) => match s.trim() {
            "true" | "True" => Some(true),
            "false" | "False" | "" => Some(false),
            _ => None,
        },
        _ => None,
    }
}
