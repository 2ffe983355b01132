//! Plaintext DIDComm v1 messages exchanged with ACA-Py 1.7: serde types for each, constructors
//! for the ones an edge agent sends (`incoming` classifies what arrives).

use serde::{Deserialize, Serialize};

use super::decorators::{Attachment, Thread, Transport};
use super::error::DidcommError;
use super::message_type as mt;

/// A fresh message id: a v4 UUID from the OS random source askar already uses, so the crate
/// needs no `uuid/v4` (and no second getrandom).
pub fn new_id() -> String {
    let mut bytes = [0u8; 16];
    askar_crypto::random::fill_random(&mut bytes);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// Serializes a message to the JSON bytes that get packed.
pub fn to_plaintext<T: Serialize>(message: &T) -> Result<Vec<u8>, DidcommError> {
    serde_json::to_vec(message).map_err(|e| DidcommError::json("outgoing message", e))
}

/// `didexchange/1.1/request`: `did` is a long-form did:peer:4 (or peer:2), no doc attached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DidexRequest {
    /// Message type URI.
    #[serde(rename = "@type")]
    pub type_: String,
    /// Message id; also the thread id.
    #[serde(rename = "@id")]
    pub id: String,
    /// `thid` = own `@id`, `pthid` = the invitation's `@id` (ACA-Py requires it).
    #[serde(rename = "~thread")]
    pub thread: Thread,
    /// Our label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// E.g. `aries.vc.mediate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal_code: Option<String>,
    /// Human-readable goal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal: Option<String>,
    /// Our DID.
    pub did: String,
    /// A signed DID doc (only for unqualified DIDs / DID Exchange 1.0).
    #[serde(
        rename = "did_doc~attach",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub did_doc_attach: Option<Attachment>,
    /// Return-route request.
    #[serde(
        rename = "~transport",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub transport: Option<Transport>,
}

impl DidexRequest {
    /// A request answering the invitation `invitation_id`, with return_route `all`.
    pub fn new(did: impl Into<String>, label: impl Into<String>, invitation_id: &str) -> Self {
        let id = new_id();
        Self {
            type_: mt::DIDEX_REQUEST.into(),
            thread: Thread {
                thid: Some(id.clone()),
                pthid: Some(invitation_id.into()),
            },
            id,
            label: Some(label.into()),
            goal_code: None,
            goal: None,
            did: did.into(),
            did_doc_attach: None,
            transport: Some(Transport::all()),
        }
    }
}

/// `didexchange/1.1/response`, with the responder's DID signed in `did_rotate~attach`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DidexResponse {
    /// Message type URI.
    #[serde(rename = "@type")]
    pub type_: String,
    /// Message id.
    #[serde(rename = "@id")]
    pub id: String,
    /// The request's thread.
    #[serde(rename = "~thread")]
    pub thread: Thread,
    /// The responder's DID.
    pub did: String,
    /// JWS over `did` by the invitation key.
    #[serde(
        rename = "did_rotate~attach",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub did_rotate_attach: Option<Attachment>,
    /// A signed DID doc (DID Exchange 1.0 / unqualified DIDs).
    #[serde(
        rename = "did_doc~attach",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub did_doc_attach: Option<Attachment>,
    /// Return-route request.
    #[serde(
        rename = "~transport",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub transport: Option<Transport>,
}

impl DidexResponse {
    /// A response in `thread` (the request's thid and the invitation pthid).
    pub fn new(did: impl Into<String>, thread: Thread, did_rotate_attach: Attachment) -> Self {
        Self {
            type_: mt::DIDEX_RESPONSE.into(),
            id: new_id(),
            thread,
            did: did.into(),
            did_rotate_attach: Some(did_rotate_attach),
            did_doc_attach: None,
            transport: None,
        }
    }
}

/// `didexchange/1.1/complete`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DidexComplete {
    /// Message type URI.
    #[serde(rename = "@type")]
    pub type_: String,
    /// Message id.
    #[serde(rename = "@id")]
    pub id: String,
    /// The request's thread (thid and pthid).
    #[serde(rename = "~thread")]
    pub thread: Thread,
    /// Return-route request.
    #[serde(
        rename = "~transport",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub transport: Option<Transport>,
}

impl DidexComplete {
    /// A complete in `thread`.
    pub fn new(thread: Thread) -> Self {
        Self {
            type_: mt::DIDEX_COMPLETE.into(),
            id: new_id(),
            thread,
            transport: None,
        }
    }
}

/// Any of the three problem reports (didexchange, coordinate-mediation, notification).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProblemReport {
    /// Message type URI.
    #[serde(rename = "@type")]
    pub type_: String,
    /// Message id.
    #[serde(rename = "@id")]
    pub id: String,
    /// The failing thread.
    #[serde(rename = "~thread", default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<Thread>,
    /// `{"code": …, "en": …}` in ACA-Py.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<serde_json::Value>,
    /// Legacy problem code field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem_code: Option<String>,
    /// Legacy explanation field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explain: Option<String>,
}

/// `coordinate-mediation/1.0/mediate-request` (no fields).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediateRequest {
    /// Message type URI.
    #[serde(rename = "@type")]
    pub type_: String,
    /// Message id.
    #[serde(rename = "@id")]
    pub id: String,
    /// Return-route request.
    #[serde(
        rename = "~transport",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub transport: Option<Transport>,
}

impl MediateRequest {
    /// A mediation request with return_route `all`.
    pub fn new() -> Self {
        Self {
            type_: mt::MEDIATE_REQUEST.into(),
            id: new_id(),
            transport: Some(Transport::all()),
        }
    }
}

impl Default for MediateRequest {
    fn default() -> Self {
        Self::new()
    }
}

/// `coordinate-mediation/1.0/mediate-grant`. ACA-Py sends it **without** `~thread`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediateGrant {
    /// Message type URI.
    #[serde(rename = "@type")]
    pub type_: String,
    /// Message id.
    #[serde(rename = "@id")]
    pub id: String,
    /// The mediator's endpoint peers should POST forwards to.
    pub endpoint: String,
    /// Routing keys as `did:key:…#…` (the same for every client of one mediator).
    #[serde(default)]
    pub routing_keys: Vec<String>,
    /// Present in other implementations; absent in ACA-Py 1.7.
    #[serde(rename = "~thread", default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<Thread>,
}

/// `coordinate-mediation/1.0/mediate-deny`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediateDeny {
    /// Message type URI.
    #[serde(rename = "@type")]
    pub type_: String,
    /// Message id.
    #[serde(rename = "@id")]
    pub id: String,
    /// The request's thread, if given.
    #[serde(rename = "~thread", default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<Thread>,
}

/// Add or remove a routing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeylistAction {
    /// Route this key to us.
    Add,
    /// Stop routing this key.
    Remove,
}

/// One entry of `keylist-update.updates`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeylistUpdateRule {
    /// Base58 or did:key; ACA-Py normalises either.
    pub recipient_key: String,
    /// Add or remove.
    pub action: KeylistAction,
}

/// `coordinate-mediation/1.0/keylist-update`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeylistUpdate {
    /// Message type URI.
    #[serde(rename = "@type")]
    pub type_: String,
    /// Message id; the response's thid.
    #[serde(rename = "@id")]
    pub id: String,
    /// The changes.
    pub updates: Vec<KeylistUpdateRule>,
    /// Return-route request.
    #[serde(
        rename = "~transport",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub transport: Option<Transport>,
}

impl KeylistUpdate {
    /// An update with return_route `all`.
    pub fn new(updates: Vec<KeylistUpdateRule>) -> Self {
        Self {
            type_: mt::KEYLIST_UPDATE.into(),
            id: new_id(),
            updates,
            transport: Some(Transport::all()),
        }
    }
}

/// One entry of `keylist-update-response.updated`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeylistUpdated {
    /// Echoed as `did:key:z…` whatever form was sent (normalise before comparing).
    pub recipient_key: String,
    /// The requested action.
    pub action: KeylistAction,
    /// `success`, `no_change`, `client_error` or `server_error`.
    pub result: String,
}

/// `coordinate-mediation/1.0/keylist-update-response`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeylistUpdateResponse {
    /// Message type URI.
    #[serde(rename = "@type")]
    pub type_: String,
    /// Message id.
    #[serde(rename = "@id")]
    pub id: String,
    /// thid = the update's `@id`.
    #[serde(rename = "~thread", default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<Thread>,
    /// Per-key results.
    #[serde(default)]
    pub updated: Vec<KeylistUpdated>,
}

/// `trust_ping/1.0/ping`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrustPing {
    /// Message type URI.
    #[serde(rename = "@type")]
    pub type_: String,
    /// Message id.
    #[serde(rename = "@id")]
    pub id: String,
    /// Whether a `ping_response` is wanted. Drain pings use `false`: with `true`, the response
    /// occupies ACA-Py's one-message session buffer and no queued message comes with it.
    #[serde(default = "default_true")]
    pub response_requested: bool,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Return-route request.
    #[serde(
        rename = "~transport",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub transport: Option<Transport>,
}

fn default_true() -> bool {
    true
}

impl TrustPing {
    /// A ping with return_route `all`.
    pub fn new(response_requested: bool) -> Self {
        Self {
            type_: mt::TRUST_PING.into(),
            id: new_id(),
            response_requested,
            comment: None,
            transport: Some(Transport::all()),
        }
    }
}

/// `trust_ping/1.0/ping_response`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrustPingResponse {
    /// Message type URI.
    #[serde(rename = "@type")]
    pub type_: String,
    /// Message id.
    #[serde(rename = "@id")]
    pub id: String,
    /// thid = the ping's `@id`.
    #[serde(rename = "~thread", default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<Thread>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// `basicmessage/1.0/message`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BasicMessage {
    /// Message type URI.
    #[serde(rename = "@type")]
    pub type_: String,
    /// Message id.
    #[serde(rename = "@id")]
    pub id: String,
    /// RFC 3339 send time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_time: Option<String>,
    /// The text.
    pub content: String,
    /// Return-route request (only when sent on the own socket).
    #[serde(
        rename = "~transport",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub transport: Option<Transport>,
}

impl BasicMessage {
    /// A message with `content` sent at `sent_time` (RFC 3339; the caller owns the clock).
    pub fn new(content: impl Into<String>, sent_time: Option<String>) -> Self {
        Self {
            type_: mt::BASIC_MESSAGE.into(),
            id: new_id(),
            sent_time,
            content: content.into(),
            transport: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outgoing_shapes_match_the_walkthrough() {
        let req = DidexRequest::new("did:peer:4zQm", "edge-A", "inv-1");
        let v: serde_json::Value = serde_json::from_slice(&to_plaintext(&req).unwrap()).unwrap();
        assert_eq!(v["@type"], mt::DIDEX_REQUEST);
        assert_eq!(v["~thread"]["thid"], v["@id"]);
        assert_eq!(v["~thread"]["pthid"], "inv-1");
        assert_eq!(v["~transport"]["return_route"], "all");
        assert!(v.get("goal_code").is_none());
        let ping = TrustPing::new(false);
        let v: serde_json::Value = serde_json::from_slice(&to_plaintext(&ping).unwrap()).unwrap();
        assert_eq!(v["response_requested"], false);
        let up = KeylistUpdate::new(vec![KeylistUpdateRule {
            recipient_key: "abc".into(),
            action: KeylistAction::Remove,
        }]);
        let v: serde_json::Value = serde_json::from_slice(&to_plaintext(&up).unwrap()).unwrap();
        assert_eq!(v["updates"][0]["action"], "remove");
    }
}
