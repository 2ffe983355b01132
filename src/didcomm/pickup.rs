//! Message Pickup 2.0 (Aries RFC 0685), the messages a recipient and a mediator exchange, as
//! Credo 0.5 writes and reads them: the recipient asks (`status-request`, `delivery-request`,
//! `live-delivery-change`) and acknowledges (`messages-received`); the mediator answers with
//! `status` and hands queued envelopes over in a `delivery`, one attachment per envelope, its
//! `@id` the queue's id for it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::DidcommError;
use super::decorators::{Attachment, Thread, Transport};
use super::message_type as mt;
use super::messages::new_id;

/// Credo's `mediatorPollingInterval`: how often `v2` asks for its status.
pub const CREDO_POLL: Duration = Duration::from_secs(5);

/// A pickup strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pickup {
    #[default]
    Implicit,
    /// Polled, at this interval.
    V2(Duration),
    V2Live,
}

/// Credo's batch size: a `delivery-request` asks for at most this many envelopes.
pub const BATCH: usize = 10;

/// `messagepickup/2.0/status-request`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusRequest {
    #[serde(rename = "@type")]
    pub type_: String,
    #[serde(rename = "@id")]
    pub id: String,
    #[serde(
        rename = "~transport",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub transport: Option<Transport>,
}

impl StatusRequest {
    pub fn new() -> Self {
        StatusRequest {
            type_: mt::PICKUP_STATUS_REQUEST.into(),
            id: new_id(),
            transport: Some(Transport::all()),
        }
    }
}

impl Default for StatusRequest {
    fn default() -> Self {
        Self::new()
    }
}

/// `messagepickup/2.0/status`: how many envelopes wait for the recipient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    #[serde(rename = "@type")]
    pub type_: String,
    #[serde(rename = "@id")]
    pub id: String,
    #[serde(rename = "~thread", default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<Thread>,
    pub message_count: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_delivery: Option<bool>,
}

/// `messagepickup/2.0/delivery-request`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryRequest {
    #[serde(rename = "@type")]
    pub type_: String,
    #[serde(rename = "@id")]
    pub id: String,
    pub limit: usize,
    #[serde(
        rename = "~transport",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub transport: Option<Transport>,
}

impl DeliveryRequest {
    pub fn new(limit: usize) -> Self {
        DeliveryRequest {
            type_: mt::PICKUP_DELIVERY_REQUEST.into(),
            id: new_id(),
            limit,
            transport: Some(Transport::all()),
        }
    }
}

/// `messagepickup/2.0/delivery`: queued envelopes, one per attachment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    #[serde(rename = "@type")]
    pub type_: String,
    #[serde(rename = "@id")]
    pub id: String,
    #[serde(rename = "~thread", default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<Thread>,
    #[serde(rename = "~attach", default)]
    pub attachments: Vec<Attachment>,
}

impl Delivery {
    /// Each attachment's id and the envelope it carries (Credo: `data.json`, the RFC's
    /// example: `data.base64`), or why it carries none.
    pub fn envelopes(&self) -> Vec<(String, Result<Vec<u8>, DidcommError>)> {
        self.attachments
            .iter()
            .map(|a| (a.id.clone().unwrap_or_default(), envelope(a)))
            .collect()
    }
}

fn envelope(a: &Attachment) -> Result<Vec<u8>, DidcommError> {
    if let Some(json) = &a.data.json {
        return serde_json::to_vec(json).map_err(|e| DidcommError::json("delivery attachment", e));
    }
    let b64 = a.data.base64.as_deref().ok_or_else(|| {
        DidcommError::Malformed("a delivery attachment has neither json nor base64".into())
    })?;
    super::b64::any_decode("delivery attachment", b64)
}

/// `messagepickup/2.0/messages-received`: the envelopes the recipient has, to remove.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessagesReceived {
    #[serde(rename = "@type")]
    pub type_: String,
    #[serde(rename = "@id")]
    pub id: String,
    pub message_id_list: Vec<String>,
    #[serde(
        rename = "~transport",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub transport: Option<Transport>,
}

impl MessagesReceived {
    pub fn new(message_id_list: Vec<String>) -> Self {
        MessagesReceived {
            type_: mt::PICKUP_MESSAGES_RECEIVED.into(),
            id: new_id(),
            message_id_list,
            transport: Some(Transport::all()),
        }
    }
}

/// `messagepickup/2.0/live-delivery-change`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveDeliveryChange {
    #[serde(rename = "@type")]
    pub type_: String,
    #[serde(rename = "@id")]
    pub id: String,
    pub live_delivery: bool,
    #[serde(
        rename = "~transport",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub transport: Option<Transport>,
}

impl LiveDeliveryChange {
    pub fn new(live_delivery: bool) -> Self {
        LiveDeliveryChange {
            type_: mt::PICKUP_LIVE_DELIVERY_CHANGE.into(),
            id: new_id(),
            live_delivery,
            transport: Some(Transport::all()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::didcomm::message_type::MessageType;

    /// A delivery as Credo 0.5.19's mediator writes it (`V2MessageDeliveryMessage`, its
    /// attachment's data the envelope as JSON) and one as the RFC's example (base64).
    #[test]
    fn a_delivery_carries_envelopes_as_json_or_base64() {
        let raw = br#"{"@type":"https://didcomm.org/messagepickup/2.0/delivery","@id":"d1",
            "~attach":[{"@id":"q1","lastmod_time":"2026-12-07T18:00:00.000Z","data":{"json":{"protected":"p","iv":"i","ciphertext":"c","tag":"t"}}},
                       {"@id":"q2","data":{"base64":"eyJhIjoxfQ=="}}]}"#;
        let d: Delivery = serde_json::from_slice(raw).unwrap();
        assert_eq!(
            MessageType::parse(&d.type_),
            Some(MessageType::PickupDelivery)
        );
        assert_eq!(d.id, "d1");
        let got = d.envelopes();
        assert_eq!(got[0].0, "q1");
        let first: serde_json::Value = serde_json::from_slice(got[0].1.as_ref().unwrap()).unwrap();
        assert_eq!(first["ciphertext"], "c");
        assert_eq!(got[1].0, "q2");
        assert_eq!(got[1].1.as_ref().unwrap(), br#"{"a":1}"#);
    }

    /// Credo's status answering a messages-received: threaded, a count, no recipient key.
    #[test]
    fn a_status_gives_the_queue_depth() {
        let raw = br#"{"@type":"https://didcomm.org/messagepickup/2.0/status","@id":"s","~thread":{"thid":"r"},"message_count":3,"live_delivery":true}"#;
        let s: Status = serde_json::from_slice(raw).unwrap();
        assert_eq!(
            MessageType::parse(&s.type_),
            Some(MessageType::PickupStatus)
        );
        assert_eq!(s.thread.and_then(|t| t.thid).as_deref(), Some("r"));
        assert_eq!((s.message_count, s.live_delivery), (3, Some(true)));
    }

    #[test]
    fn requests_ask_for_return_route_all() {
        let v = serde_json::to_value(MessagesReceived::new(vec!["q1".into()])).unwrap();
        assert_eq!(
            v["@type"],
            "https://didcomm.org/messagepickup/2.0/messages-received"
        );
        assert_eq!(v["message_id_list"][0], "q1");
        assert_eq!(v["~transport"]["return_route"], "all");
        let v = serde_json::to_value(LiveDeliveryChange::new(true)).unwrap();
        assert_eq!(v["live_delivery"], true);
        let v = serde_json::to_value(DeliveryRequest::new(BATCH)).unwrap();
        assert_eq!(v["limit"], 10);
    }
}
