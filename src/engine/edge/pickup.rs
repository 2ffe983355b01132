//! How an edge agent collects its messages from the mediator, as Credo's pickup strategies do:
//! `implicit` (the mediator writes them on the agent's `return_route: all` socket: ACA-Py's only
//! way), `v2` (Message Pickup 2.0 polled: `status-request` at an interval, `delivery-request`
//! while the status counts any, `messages-received` for each delivery) and `v2_live` (Pickup
//! 2.0 live mode: what queued is collected, then `live-delivery-change` and the mediator pushes
//! each message as a `delivery` as it comes; again after every reconnect).
//!
//! The socket task reads a `delivery`'s envelopes as if they had come as frames, so delivery
//! latency keeps its meaning (the forward's POST to the message in the agent's hands). It
//! acknowledges every envelope, as Credo does; one it cannot read is counted as acknowledged
//! and never seen, one the mediator hands over again after it was acknowledged as seen twice.
//! The depth of the queue each `status` gives is summed over the agents into a gauge.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{EdgeHub, Shared};
use crate::didcomm::envelope::pack_authcrypt;
pub use crate::didcomm::pickup::Pickup;
use crate::didcomm::pickup::{
    BATCH, Delivery, DeliveryRequest, LiveDeliveryChange, MessagesReceived, Status, StatusRequest,
};
use crate::measure::metrics::{Event, Failure};
use crate::plan::Phase;
use crate::results::{GaugeSample, StatKind};

/// The gauge's agent name in the results.
pub const QUEUE_GAUGE: &str = "pickup queue";
/// Queue ids remembered per agent to spot a delivery after its acknowledgement.
const ACKED: usize = 64;

/// One agent's pickup: its strategy (set at the grant; until then nothing is collected
/// explicitly), where its pickup messages go, and the queue ids it acknowledged lately.
#[derive(Default)]
pub struct State {
    pub mode: Option<Pickup>,
    /// The mediator's HTTP endpoint when the agent sends as Credo: its status requests,
    /// delivery requests and acknowledgements are POSTed there (the answer in the body);
    /// `None`: they go on the socket.
    pub http: Option<String>,
    acked: VecDeque<u64>,
    /// The queue depth the last status gave.
    depth: u64,
}

/// The run-wide sum of the agents' queue depths, sent as a gauge at most once a second.
#[derive(Default)]
pub struct QueueGauge {
    state: Mutex<(u64, Option<Instant>)>,
}

impl QueueGauge {
    fn update(&self, hub: &EdgeHub, old: u64, new: u64) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        s.0 = (s.0 + new).saturating_sub(old);
        let now = Instant::now();
        if s.1
            .is_some_and(|last| now.duration_since(last) < Duration::from_secs(1))
        {
            return;
        }
        s.1 = Some(now);
        hub.recorder.send(Event::Gauge {
            agent: QUEUE_GAUGE.to_string(),
            at: now,
            sample: GaugeSample {
                queued: Some(s.0),
                ..Default::default()
            },
        });
    }
}

/// A message for the mediator on the socket: authcrypted from our key on the mediator
/// connection. `None` before that connection exists.
pub fn for_mediator(shared: &Shared, message: &impl serde::Serialize) -> Option<String> {
    let (mine, theirs) = shared.mediator.lock().ok()?.clone()?;
    let plaintext = crate::didcomm::messages::to_plaintext(message).ok()?;
    pack_authcrypt(&plaintext, std::slice::from_ref(&theirs), &mine).ok()
}

/// What a strategy sends when it starts collecting again after a reconnect (the grant's
/// start is the agent's): implicit nothing (the caller's ping), `v2` and `v2_live` a
/// `status-request` (whose status brings a `delivery-request` while any wait), the agent's
/// way; `v2_live` then live mode on, which must go on the new socket (`true`).
pub fn reopening(shared: &Shared, mode: Pickup) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    if mode != Pickup::Implicit {
        out.extend(for_mediator(shared, &StatusRequest::new()).map(|m| (m, false)));
    }
    if mode == Pickup::V2Live {
        out.extend(for_mediator(shared, &LiveDeliveryChange::new(true)).map(|m| (m, true)));
    }
    out
}

/// A status: the gauge, and a `delivery-request` while messages wait (as Credo's recipient).
/// Returns the request, to send the agent's way.
pub fn status(shared: &Shared, hub: &EdgeHub, s: &Status) -> Option<String> {
    let old = {
        let mut state = shared.pickup.lock().ok()?;
        std::mem::replace(&mut state.depth, s.message_count)
    };
    hub.queue.update(hub, old, s.message_count);
    if s.message_count == 0 {
        return None;
    }
    let limit = (s.message_count as usize).min(BATCH);
    for_mediator(shared, &DeliveryRequest::new(limit))
}

/// A delivery: each envelope read as a frame (`read`, which says whether it was readable),
/// then all acknowledged: returns the acknowledgement, to send the agent's way.
pub fn delivery(
    shared: &Arc<Shared>,
    hub: &Arc<EdgeHub>,
    d: &Delivery,
    at: Instant,
    read: impl Fn(&[u8]) -> Result<(), String>,
) -> Option<String> {
    let mut ids = Vec::with_capacity(d.attachments.len());
    for (id, envelope) in d.envelopes() {
        if again(shared, &id) {
            counted(
                hub,
                at,
                "pickup: delivered again after it was acknowledged",
                format!("queue id {id}"),
            );
        }
        let seen = envelope.map_err(|e| e.to_string()).and_then(|b| read(&b));
        if let Err(why) = seen {
            counted(
                hub,
                at,
                "pickup: acknowledged but never seen",
                format!("queue id {id}: {why}"),
            );
        }
        ids.push(id);
    }
    for_mediator(shared, &MessagesReceived::new(ids))
}

/// Notes `id` as acknowledged; whether it had been already.
fn again(shared: &Shared, id: &str) -> bool {
    let Ok(mut s) = shared.pickup.lock() else {
        return false;
    };
    let id = super::inbox::key(id);
    if s.acked.contains(&id) {
        return true;
    }
    if s.acked.len() >= ACKED {
        s.acked.pop_front();
    }
    s.acked.push_back(id);
    false
}

fn counted(hub: &EdgeHub, at: Instant, reason: &str, detail: String) {
    hub.recorder.send(Event::Sample {
        phase: Phase::Tasks,
        kind: StatKind::Event,
        name: Arc::from("pickup"),
        method: None,
        micros: 0,
        at,
        failure: Some(Failure {
            reason: reason.into(),
            detail,
        }),
    });
}
