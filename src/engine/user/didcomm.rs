//! An edge-agent step (`didcomm:`): render its templates, run the protocol step of the user's
//! [`EdgeAgent`], record what it measured. Exchanges on the socket are `WS` rows, forwards
//! POSTed to the mediator `POST` rows, waits for a state (granted, connected) `state` rows,
//! and arrivals at a socket (delivery, ping round trip) `event` rows, so the report, levels
//! and thresholds read them as they read the multitenant plan's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{StepError, VirtualUser};
use crate::didcomm::oob::Invitation;
use crate::engine::edge::agent::{EdgeError, Profile};
use crate::engine::edge::inbox::Late;
use crate::engine::edge::{EdgeAgent, Sent};
use crate::measure::metrics::Event;
use crate::plan::compile::{CompiledDidcomm, CompiledStep, ConnectBehaviour, Dur};
use crate::plan::edge::{self, Choice};
use crate::plan::template::{JsonTemplate, Text};
use crate::results::StatKind;

/// The method column of a DIDComm exchange over the agent's own socket.
const WS: &str = "WS";
/// A failure and the row it is counted in (`None`: already recorded).
type Counted = (StatKind, Option<&'static str>, EdgeError);

/// Why a message was lost when the peer's socket to the mediator dropped (a mediator restart,
/// a network drop) between its send and the end of its wait.
pub const LOST_DROPPED: &str = "lost: the peer's socket to the mediator dropped before it arrived";
/// Why a message was lost when the proxy said one mediator instance took its forward and
/// another holds the receiver's socket (`target.instance_header`): several instances behind a
/// load balancer without a shared queue or socket registry (ACA-Py issue 2691).
pub const LOST_OTHER_INSTANCE: &str =
    "lost: the mediator instance that took it holds no socket for this agent";

/// The name of the onboarding time (connect → granted).
const ONBOARDING: &str = "onboarding (connect to granted)";

/// A failure counted in a `WS` row (an exchange on the agent's socket).
fn as_ws(e: EdgeError) -> Option<Counted> {
    Some((StatKind::Http, Some(WS), e))
}

/// A failure counted in a `POST` row (a forward POSTed to the mediator).
fn as_post(e: EdgeError) -> Option<Counted> {
    Some((StatKind::Http, Some("POST"), e))
}

/// A failure counted in a `state` row (a wait for granted, connected).
fn as_state(e: EdgeError) -> Option<Counted> {
    Some((StatKind::Poll, None, e))
}

/// A failure counted in an `event` row (an arrival at a socket).
fn as_event(e: EdgeError) -> Option<Counted> {
    Some((StatKind::Event, None, e))
}

/// A `connect` step's settings, rendered.
struct ConnectSettings {
    invitation: Invitation,
    websocket: String,
    profile: Profile,
}

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

    fn render_json(&self, t: &JsonTemplate) -> Result<serde_json::Value, EdgeError> {
        self.ctx
            .plan
            .templates
            .render_json(t, &self.scope(None))
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
        let ctx = self.ctx.clone();
        let time = |t: &Dur| ctx.durations.get(*t);
        match d {
            CompiledDidcomm::Connect {
                invitation,
                websocket,
                label,
                behaviour,
                timeout,
            } => {
                let how = (&**behaviour, time(&behaviour.poll));
                let settings = self
                    .connect_settings(invitation, websocket, label.as_ref(), how)
                    .map_err(as_ws)?;
                self.connect(hub, settings, time(timeout))
                    .await
                    .map_err(as_ws)?;
                self.record(step, StatKind::Http, Some(WS), started, None);
            }
            CompiledDidcomm::RequestMediation { timeout } => {
                let agent = self.edge().map_err(as_state)?;
                agent
                    .request_mediation(time(timeout))
                    .await
                    .map_err(as_state)?;
                let onboarding = agent.started;
                self.record(step, StatKind::Poll, None, started, None);
                let took = onboarding.elapsed();
                self.sample(step, StatKind::Poll, ONBOARDING.into(), onboarding, took);
            }
            CompiledDidcomm::Invite { into, timeout } => {
                let agent = self.edge().map_err(as_ws)?;
                let inv = agent.invite(time(timeout)).await.map_err(as_ws)?;
                let value = serde_json::to_value(&inv).map_err(|e| {
                    as_ws(EdgeError::unsent(
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
                let inv = self.peer_invitation(invitation).map_err(as_state)?;
                let agent = self.edge().map_err(as_state)?;
                agent
                    .accept_invitation(&inv, time(timeout))
                    .await
                    .map_err(as_state)?;
                self.record(step, StatKind::Poll, None, started, None);
            }
            CompiledDidcomm::AwaitConnection { timeout } => {
                let agent = self.edge().map_err(as_state)?;
                agent
                    .await_connection(time(timeout))
                    .await
                    .map_err(as_state)?;
                self.record(step, StatKind::Poll, None, started, None);
            }
            CompiledDidcomm::Message { content } => {
                let content = match content {
                    Some(c) => self.render_text(c).map_err(as_post)?,
                    None => crate::didcomm::messages::new_id(),
                };
                let agent = self.edge().map_err(as_post)?;
                let at = agent.message(content).await.map_err(as_post)?;
                self.sent.insert(step.name.clone(), at);
                self.record(step, StatKind::Http, Some("POST"), started, None);
            }
            CompiledDidcomm::Delivered { timeout } => {
                self.all_delivered(step, time(timeout)).await?;
            }
            CompiledDidcomm::Ping { to, timeout } => {
                let to_peer = *to == crate::plan::PingTo::Peer;
                self.ping(step, to_peer, time(timeout))
                    .await
                    .map_err(as_event)?;
            }
            CompiledDidcomm::Disconnect { timeout } => {
                if let Some(mut agent) = self.edge.take() {
                    agent.disconnect(time(timeout)).await.map_err(as_ws)?;
                    self.record(step, StatKind::Http, Some(WS), started, None);
                }
            }
        }
        Ok(())
    }

    /// A `connect` step's settings, rendered.
    fn connect_settings(
        &self,
        invitation: &Text,
        websocket: &Text,
        label: Option<&Text>,
        (how, poll): (&ConnectBehaviour, Duration),
    ) -> Result<ConnectSettings, EdgeError> {
        let url = self.render_text(invitation)?;
        let websocket = self.render_text(websocket)?;
        let label = match label {
            Some(l) => self.render_text(l)?,
            None => format!("acaload edge {}", self.index),
        };
        let drain = match &how.drain {
            None => false,
            Some(t) => {
                let v = self.render_json(t)?;
                flag(&v).ok_or_else(|| {
                    EdgeError::unsent("`drain` is neither true nor false", v.to_string())
                })?
            }
        };
        let invitation = Invitation::from_url(&url)
            .map_err(|e| EdgeError::unsent("bad mediator invitation", e.to_string()))?;
        // Empty: the invitation's own WebSocket endpoint, as Credo takes it.
        let websocket = match (websocket.trim(), invitation.websocket_endpoint()) {
            ("", Some(ws)) => ws.to_string(),
            ("", None) => {
                return Err(EdgeError::unsent(
                    "no WebSocket endpoint for the mediator",
                    "`websocket` is empty and the invitation lists no ws:// or wss:// service",
                ));
            }
            (given, _) => given.to_string(),
        };
        // each checked before the run: a failure here is a template that uses the user
        let chosen = |choice: Choice| -> Result<String, EdgeError> {
            let value = match how.chosen(choice) {
                Some(t) => self.render_text(t)?,
                None => String::new(),
            };
            choice
                .check(&value)
                .map_err(|why| EdgeError::unsent(why, value.clone()))?;
            Ok(value)
        };
        let pickup = edge::pickup(&chosen(Choice::Pickup)?, poll).unwrap_or_default();
        let credo_transport = edge::credo_transport(&chosen(Choice::Transport)?).unwrap_or(true);
        let did_peer_1 = edge::did_peer_1(&chosen(Choice::Did)?).unwrap_or(true);
        Ok(ConnectSettings {
            invitation,
            websocket,
            profile: Profile {
                label,
                drain,
                pickup,
                credo_transport,
                did_peer_1,
            },
        })
    }

    /// Makes this user an edge agent connected to the mediator (closing the one it was).
    async fn connect(
        &mut self,
        hub: Arc<crate::engine::edge::EdgeHub>,
        s: ConnectSettings,
        timeout: Duration,
    ) -> Result<(), EdgeError> {
        if let Some(mut old) = self.edge.take() {
            old.close(Duration::from_secs(1)).await;
        }
        let agent =
            EdgeAgent::connect(hub, &s.invitation, &s.websocket, s.profile, timeout).await?;
        self.edge = Some(Box::new(agent));
        Ok(())
    }

    /// The invitation an `accept_invitation` step names: its URL, or its JSON.
    fn peer_invitation(&self, t: &JsonTemplate) -> Result<Invitation, EdgeError> {
        match &self.render_json(t)? {
            serde_json::Value::String(url) => Invitation::from_url(url),
            other => Invitation::from_json(other.to_string().as_bytes()),
        }
        .map_err(|e| EdgeError::unsent("bad peer invitation", e.to_string()))
    }

    /// Waits for each message sent since the last wait: each is a sample of its own,
    /// delivered or lost.
    async fn all_delivered(
        &mut self,
        step: &CompiledStep,
        timeout: Duration,
    ) -> Result<(), Option<Counted>> {
        let agent = self.edge().map_err(as_event)?;
        let unconfirmed = std::mem::take(&mut agent.unconfirmed);
        if unconfirmed.is_empty() {
            return Err(as_event(EdgeError::unsent(
                "no message sent yet",
                "a `didcomm: message` step must come first",
            )));
        }
        let mut lost = false;
        for sent in unconfirmed {
            lost |= !self.delivered(step, sent, timeout).await;
        }
        if lost { Err(None) } else { Ok(()) }
    }

    /// A trust ping and its response: a sample of the round trip.
    async fn ping(
        &mut self,
        step: &CompiledStep,
        to_peer: bool,
        timeout: Duration,
    ) -> Result<(), EdgeError> {
        let agent = self.edge()?;
        let (at, waiter) = agent.ping(to_peer).await?;
        let pong = agent.pong(waiter, at + timeout, to_peer).await?;
        let took = pong.saturating_duration_since(at);
        self.sample(step, StatKind::Event, step.name.clone(), at, took);
        Ok(())
    }

    /// A passed sample of `step`'s phase.
    fn sample(
        &self,
        step: &CompiledStep,
        kind: StatKind,
        name: Arc<str>,
        at: Instant,
        took: Duration,
    ) {
        self.ctx.recorder.send(Event::Sample {
            phase: step.phase,
            kind,
            name,
            method: None,
            micros: took.as_micros() as u64,
            at,
            failure: None,
        });
    }

    /// Waits for one message at the peer's socket and records its delivery (or loss).
    async fn delivered(&self, step: &CompiledStep, mut sent: Sent, timeout: Duration) -> bool {
        let found = tokio::time::timeout_at((sent.at + timeout).into(), &mut sent.waiter).await;
        match found {
            Ok(Ok(a)) => {
                let took = a.at.saturating_duration_since(sent.at);
                self.sample(step, StatKind::Event, step.name.clone(), sent.at, took);
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
                    None => self.lost_in_mediator(step, &sent, timeout),
                }
                false
            }
        }
    }

    /// Records a message the mediator took and never gave the peer's socket, which stayed up:
    /// taken by another instance than the one that held the socket then, when the proxy named
    /// both, else plainly lost (with what is known of where it went).
    fn lost_in_mediator(&self, step: &CompiledStep, sent: &Sent, timeout: Duration) {
        let (took, held) = (&sent.instance, &sent.peer_instance);
        let mut detail = format!("message {}", sent.id);
        if let Some(took) = took {
            detail += &format!(": taken by instance {took}");
        }
        if let Some(held) = held {
            let sep = if took.is_some() { ";" } else { ":" };
            detail += &format!("{sep} the agent's socket was on instance {held}");
            match sent.to.instance() {
                Some(now) if now != *held => detail += &format!(" (now on instance {now})"),
                _ => {}
            }
        }
        let reason = match (took, held) {
            (Some(took), Some(held)) if took != held => LOST_OTHER_INSTANCE.to_string(),
            _ => format!(
                "lost: not at the peer's socket within {}",
                crate::plan::duration::format(timeout)
            ),
        };
        self.lost(step, sent.at, &reason, detail);
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
