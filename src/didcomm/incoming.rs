//! Classifying an incoming plaintext: read the routing fields (`@type`, `@id`, `~thread`) and
//! parse the body into its typed message. Match replies by thread id, except `mediate-grant`,
//! which ACA-Py sends unthreaded and must be matched by type.

use serde::Deserialize;

use super::decorators::Thread;
use super::error::DidcommError;
use super::forward::Forward;
use super::message_type::MessageType;
use super::messages::{
    BasicMessage, DidexComplete, DidexRequest, DidexResponse, KeylistUpdate, KeylistUpdateResponse,
    MediateDeny, MediateGrant, MediateRequest, ProblemReport, TrustPing, TrustPingResponse,
};
use super::oob::Invitation;

/// The routing fields every message has; cheap to read before deciding what to do.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Header {
    /// `@type` as sent.
    #[serde(rename = "@type")]
    pub type_: String,
    /// `@id`.
    #[serde(rename = "@id", default)]
    pub id: String,
    /// `~thread`, if any.
    #[serde(rename = "~thread", default)]
    pub thread: Option<Thread>,
}

impl Header {
    /// The thread id as ACA-Py computes it: `~thread.thid`, else the message's own `@id`.
    pub fn thid(&self) -> &str {
        self.thread
            .as_ref()
            .and_then(|t| t.thid.as_deref())
            .unwrap_or(&self.id)
    }

    /// `~thread.pthid`, if any.
    pub fn pthid(&self) -> Option<&str> {
        self.thread.as_ref().and_then(|t| t.pthid.as_deref())
    }

    /// The known kind of message, if any.
    pub fn kind(&self) -> Option<MessageType> {
        MessageType::parse(&self.type_)
    }
}

/// An incoming plaintext, classified by `@type`.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// OOB invitation.
    Invitation(Invitation),
    /// DID Exchange request.
    DidexRequest(DidexRequest),
    /// DID Exchange response.
    DidexResponse(DidexResponse),
    /// DID Exchange complete.
    DidexComplete(DidexComplete),
    /// Any problem report (see `ProblemReport::type_` for which).
    ProblemReport(ProblemReport),
    /// Mediation request.
    MediateRequest(MediateRequest),
    /// Mediation grant.
    MediateGrant(MediateGrant),
    /// Mediation deny.
    MediateDeny(MediateDeny),
    /// Keylist update.
    KeylistUpdate(KeylistUpdate),
    /// Keylist update response.
    KeylistUpdateResponse(KeylistUpdateResponse),
    /// Trust ping.
    TrustPing(TrustPing),
    /// Trust ping response.
    TrustPingResponse(TrustPingResponse),
    /// Forward.
    Forward(Forward),
    /// Basic message.
    BasicMessage(BasicMessage),
    /// Pickup 2.0 status.
    PickupStatus(crate::didcomm::pickup::Status),
    /// Pickup 2.0 delivery.
    PickupDelivery(crate::didcomm::pickup::Delivery),
    /// A type this crate does not model; kept as JSON.
    Unknown(Header, serde_json::Value),
}

impl Message {
    /// Parses a plaintext message and classifies it by `@type`.
    pub fn parse(plaintext: &[u8]) -> Result<(Header, Message), DidcommError> {
        let header: Header = serde_json::from_slice(plaintext)
            .map_err(|e| DidcommError::json("message header", e))?;
        fn typed<T: serde::de::DeserializeOwned>(p: &[u8]) -> Result<T, DidcommError> {
            serde_json::from_slice(p).map_err(|e| DidcommError::json("message body", e))
        }
        let p = plaintext;
        let msg = match header.kind() {
            Some(MessageType::OobInvitation) => Message::Invitation(typed(p)?),
            Some(MessageType::DidexRequest) => Message::DidexRequest(typed(p)?),
            Some(MessageType::DidexResponse) => Message::DidexResponse(typed(p)?),
            Some(MessageType::DidexComplete) => Message::DidexComplete(typed(p)?),
            Some(
                MessageType::DidexProblemReport
                | MessageType::MediationProblemReport
                | MessageType::ProblemReport,
            ) => Message::ProblemReport(typed(p)?),
            Some(MessageType::MediateRequest) => Message::MediateRequest(typed(p)?),
            Some(MessageType::MediateGrant) => Message::MediateGrant(typed(p)?),
            Some(MessageType::MediateDeny) => Message::MediateDeny(typed(p)?),
            Some(MessageType::KeylistUpdate) => Message::KeylistUpdate(typed(p)?),
            Some(MessageType::KeylistUpdateResponse) => Message::KeylistUpdateResponse(typed(p)?),
            Some(MessageType::TrustPing) => Message::TrustPing(typed(p)?),
            Some(MessageType::TrustPingResponse) => Message::TrustPingResponse(typed(p)?),
            Some(MessageType::Forward) => Message::Forward(typed(p)?),
            Some(MessageType::BasicMessage) => Message::BasicMessage(typed(p)?),
            Some(MessageType::PickupStatus) => Message::PickupStatus(typed(p)?),
            Some(MessageType::PickupDelivery) => Message::PickupDelivery(typed(p)?),
            Some(
                MessageType::PickupStatusRequest
                | MessageType::PickupDeliveryRequest
                | MessageType::PickupMessagesReceived
                | MessageType::PickupLiveDeliveryChange,
            )
            | None => Message::Unknown(header.clone(), typed(p)?),
        };
        Ok((header, msg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::didcomm::messages::KeylistAction;

    #[test]
    fn grant_without_thread_is_matched_by_type() {
        // E6 of the walkthrough, verbatim
        let raw = br#"{"@type": "https://didcomm.org/coordinate-mediation/1.0/mediate-grant", "@id": "726f63b6-1a4f-421f-8490-eb1c47c8765e", "endpoint": "http://127.0.0.1:4700", "routing_keys": ["did:key:z6MkuWiMbuiVaEwwpiGr5CV8Zzn3YZCRf6n9ZJEqucqTXze6#z6MkuWiMbuiVaEwwpiGr5CV8Zzn3YZCRf6n9ZJEqucqTXze6"]}"#;
        let (h, m) = Message::parse(raw).unwrap();
        assert_eq!(h.thid(), "726f63b6-1a4f-421f-8490-eb1c47c8765e");
        let Message::MediateGrant(g) = m else {
            panic!("not a grant: {m:?}")
        };
        assert_eq!(g.endpoint, "http://127.0.0.1:4700");
        assert_eq!(g.routing_keys.len(), 1);
        assert_eq!(g.thread, None);
    }

    #[test]
    fn keylist_update_response_is_threaded() {
        let raw = br#"{"@type":"https://didcomm.org/coordinate-mediation/1.0/keylist-update-response","@id":"e8b5","~thread":{"thid":"ea51"},"updated":[{"recipient_key":"did:key:z6Mkr","action":"add","result":"success"}]}"#;
        let (h, m) = Message::parse(raw).unwrap();
        assert_eq!(h.thid(), "ea51");
        let Message::KeylistUpdateResponse(r) = m else {
            panic!("{m:?}")
        };
        assert_eq!(r.updated[0].action, KeylistAction::Add);
    }

    #[test]
    fn unknown_and_malformed() {
        let (h, m) =
            Message::parse(br#"{"@type":"https://didcomm.org/x/1.0/y","@id":"1"}"#).unwrap();
        assert!(matches!(m, Message::Unknown(..)));
        assert_eq!(h.kind(), None);
        assert!(Message::parse(b"{}").is_err());
        assert!(Message::parse(b"[1]").is_err());
        // right type, wrong body
        assert!(
            Message::parse(br#"{"@type":"https://didcomm.org/coordinate-mediation/1.0/mediate-grant","@id":"1"}"#)
                .is_err()
        );
    }
}
