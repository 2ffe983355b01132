//! Message type URIs of the ~22 DIDComm v1 messages an edge agent exchanges with ACA-Py, and
//! classification of an incoming `@type` (either the `https://didcomm.org/` or the legacy
//! `did:sov:…;spec/` prefix, any minor version of the same major).

/// Current prefix for message types.
pub const DIDCOMM_PREFIX: &str = "https://didcomm.org/";
/// Legacy prefix some agents still send.
pub const SOV_PREFIX: &str = "did:sov:BzCbsNYhMrjHiqZDTUASHg;spec/";

/// `out-of-band/1.1/invitation`
pub const OOB_INVITATION: &str = "https://didcomm.org/out-of-band/1.1/invitation";
/// `didexchange/1.1/request`
pub const DIDEX_REQUEST: &str = "https://didcomm.org/didexchange/1.1/request";
/// `didexchange/1.1/response`
pub const DIDEX_RESPONSE: &str = "https://didcomm.org/didexchange/1.1/response";
/// `didexchange/1.1/complete`
pub const DIDEX_COMPLETE: &str = "https://didcomm.org/didexchange/1.1/complete";
/// `didexchange/1.1/problem_report`
pub const DIDEX_PROBLEM_REPORT: &str = "https://didcomm.org/didexchange/1.1/problem_report";
/// `coordinate-mediation/1.0/mediate-request`
pub const MEDIATE_REQUEST: &str = "https://didcomm.org/coordinate-mediation/1.0/mediate-request";
/// `coordinate-mediation/1.0/mediate-grant` (ACA-Py sends it without `~thread`)
pub const MEDIATE_GRANT: &str = "https://didcomm.org/coordinate-mediation/1.0/mediate-grant";
/// `coordinate-mediation/1.0/mediate-deny`
pub const MEDIATE_DENY: &str = "https://didcomm.org/coordinate-mediation/1.0/mediate-deny";
/// `coordinate-mediation/1.0/keylist-update`
pub const KEYLIST_UPDATE: &str = "https://didcomm.org/coordinate-mediation/1.0/keylist-update";
/// `coordinate-mediation/1.0/keylist-update-response`
pub const KEYLIST_UPDATE_RESPONSE: &str =
    "https://didcomm.org/coordinate-mediation/1.0/keylist-update-response";
/// `coordinate-mediation/1.0/problem-report`
pub const MEDIATION_PROBLEM_REPORT: &str =
    "https://didcomm.org/coordinate-mediation/1.0/problem-report";
/// `trust_ping/1.0/ping`
pub const TRUST_PING: &str = "https://didcomm.org/trust_ping/1.0/ping";
/// `trust_ping/1.0/ping_response`
pub const TRUST_PING_RESPONSE: &str = "https://didcomm.org/trust_ping/1.0/ping_response";
/// `routing/1.0/forward`
pub const FORWARD: &str = "https://didcomm.org/routing/1.0/forward";
/// `basicmessage/1.0/message`
pub const BASIC_MESSAGE: &str = "https://didcomm.org/basicmessage/1.0/message";
/// `notification/1.0/problem-report`
pub const PROBLEM_REPORT: &str = "https://didcomm.org/notification/1.0/problem-report";
/// `messagepickup/2.0/status-request`
pub const PICKUP_STATUS_REQUEST: &str = "https://didcomm.org/messagepickup/2.0/status-request";
/// `messagepickup/2.0/status`
pub const PICKUP_STATUS: &str = "https://didcomm.org/messagepickup/2.0/status";
/// `messagepickup/2.0/delivery-request`
pub const PICKUP_DELIVERY_REQUEST: &str = "https://didcomm.org/messagepickup/2.0/delivery-request";
/// `messagepickup/2.0/delivery`
pub const PICKUP_DELIVERY: &str = "https://didcomm.org/messagepickup/2.0/delivery";
/// `messagepickup/2.0/messages-received`
pub const PICKUP_MESSAGES_RECEIVED: &str =
    "https://didcomm.org/messagepickup/2.0/messages-received";
/// `messagepickup/2.0/live-delivery-change`
pub const PICKUP_LIVE_DELIVERY_CHANGE: &str =
    "https://didcomm.org/messagepickup/2.0/live-delivery-change";
/// The handshake protocol an invitation lists.
pub const DIDEXCHANGE_1_1: &str = "https://didcomm.org/didexchange/1.1";

/// The message kinds this crate knows, independent of prefix and minor version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// Out-of-band invitation.
    OobInvitation,
    /// DID Exchange request.
    DidexRequest,
    /// DID Exchange response.
    DidexResponse,
    /// DID Exchange complete.
    DidexComplete,
    /// DID Exchange problem report.
    DidexProblemReport,
    /// Mediation request.
    MediateRequest,
    /// Mediation grant (unthreaded in ACA-Py: match it by type).
    MediateGrant,
    /// Mediation deny.
    MediateDeny,
    /// Keylist update.
    KeylistUpdate,
    /// Keylist update response.
    KeylistUpdateResponse,
    /// Coordinate-mediation problem report.
    MediationProblemReport,
    /// Trust ping.
    TrustPing,
    /// Trust ping response.
    TrustPingResponse,
    /// Routing forward.
    Forward,
    /// Basic message.
    BasicMessage,
    /// Generic problem report.
    ProblemReport,
    /// Pickup 2.0 status request.
    PickupStatusRequest,
    /// Pickup 2.0 status (the queue's depth).
    PickupStatus,
    /// Pickup 2.0 delivery request.
    PickupDeliveryRequest,
    /// Pickup 2.0 delivery (queued envelopes).
    PickupDelivery,
    /// Pickup 2.0 acknowledgement.
    PickupMessagesReceived,
    /// Pickup 2.0 live mode on or off.
    PickupLiveDeliveryChange,
}

/// (protocol, major version, message name, kind, canonical URI)
const TABLE: &[(&str, &str, &str, MessageType, &str)] = &[
    (
        "out-of-band",
        "1",
        "invitation",
        MessageType::OobInvitation,
        OOB_INVITATION,
    ),
    (
        "didexchange",
        "1",
        "request",
        MessageType::DidexRequest,
        DIDEX_REQUEST,
    ),
    (
        "didexchange",
        "1",
        "response",
        MessageType::DidexResponse,
        DIDEX_RESPONSE,
    ),
    (
        "didexchange",
        "1",
        "complete",
        MessageType::DidexComplete,
        DIDEX_COMPLETE,
    ),
    (
        "didexchange",
        "1",
        "problem_report",
        MessageType::DidexProblemReport,
        DIDEX_PROBLEM_REPORT,
    ),
    (
        "coordinate-mediation",
        "1",
        "mediate-request",
        MessageType::MediateRequest,
        MEDIATE_REQUEST,
    ),
    (
        "coordinate-mediation",
        "1",
        "mediate-grant",
        MessageType::MediateGrant,
        MEDIATE_GRANT,
    ),
    (
        "coordinate-mediation",
        "1",
        "mediate-deny",
        MessageType::MediateDeny,
        MEDIATE_DENY,
    ),
    (
        "coordinate-mediation",
        "1",
        "keylist-update",
        MessageType::KeylistUpdate,
        KEYLIST_UPDATE,
    ),
    (
        "coordinate-mediation",
        "1",
        "keylist-update-response",
        MessageType::KeylistUpdateResponse,
        KEYLIST_UPDATE_RESPONSE,
    ),
    (
        "coordinate-mediation",
        "1",
        "problem-report",
        MessageType::MediationProblemReport,
        MEDIATION_PROBLEM_REPORT,
    ),
    (
        "trust_ping",
        "1",
        "ping",
        MessageType::TrustPing,
        TRUST_PING,
    ),
    (
        "trust_ping",
        "1",
        "ping_response",
        MessageType::TrustPingResponse,
        TRUST_PING_RESPONSE,
    ),
    ("routing", "1", "forward", MessageType::Forward, FORWARD),
    (
        "basicmessage",
        "1",
        "message",
        MessageType::BasicMessage,
        BASIC_MESSAGE,
    ),
    (
        "notification",
        "1",
        "problem-report",
        MessageType::ProblemReport,
        PROBLEM_REPORT,
    ),
    (
        "messagepickup",
        "2",
        "status-request",
        MessageType::PickupStatusRequest,
        PICKUP_STATUS_REQUEST,
    ),
    (
        "messagepickup",
        "2",
        "status",
        MessageType::PickupStatus,
        PICKUP_STATUS,
    ),
    (
        "messagepickup",
        "2",
        "delivery-request",
        MessageType::PickupDeliveryRequest,
        PICKUP_DELIVERY_REQUEST,
    ),
    (
        "messagepickup",
        "2",
        "delivery",
        MessageType::PickupDelivery,
        PICKUP_DELIVERY,
    ),
    (
        "messagepickup",
        "2",
        "messages-received",
        MessageType::PickupMessagesReceived,
        PICKUP_MESSAGES_RECEIVED,
    ),
    (
        "messagepickup",
        "2",
        "live-delivery-change",
        MessageType::PickupLiveDeliveryChange,
        PICKUP_LIVE_DELIVERY_CHANGE,
    ),
];

impl MessageType {
    /// Classifies a `@type` URI; `None` for anything this crate does not know.
    pub fn parse(type_uri: &str) -> Option<Self> {
        let rest = type_uri
            .strip_prefix(DIDCOMM_PREFIX)
            .or_else(|| type_uri.strip_prefix(SOV_PREFIX))?;
        let mut parts = rest.split('/');
        let (protocol, version, name) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let major = version.split('.').next()?;
        TABLE
            .iter()
            .find(|(p, m, n, _, _)| *p == protocol && *m == major && *n == name)
            .map(|(_, _, _, t, _)| *t)
    }

    /// The canonical (`https://didcomm.org/`, the version this crate speaks) URI.
    pub fn uri(self) -> &'static str {
        TABLE
            .iter()
            .find(|(_, _, _, t, _)| *t == self)
            .map_or("", |(_, _, _, _, uri)| uri)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_uri() {
        for (_, _, _, t, uri) in TABLE {
            assert_eq!(MessageType::parse(uri), Some(*t));
            assert_eq!(t.uri(), *uri);
        }
    }

    #[test]
    fn legacy_prefix_and_minor_versions() {
        assert_eq!(
            MessageType::parse(
                "did:sov:BzCbsNYhMrjHiqZDTUASHg;spec/coordinate-mediation/1.0/mediate-grant"
            ),
            Some(MessageType::MediateGrant)
        );
        assert_eq!(
            MessageType::parse("https://didcomm.org/didexchange/1.0/response"),
            Some(MessageType::DidexResponse)
        );
        assert_eq!(
            MessageType::parse("https://didcomm.org/didexchange/2.0/response"),
            None
        );
        assert_eq!(
            MessageType::parse("https://didcomm.org/routing/1.0/forward/x"),
            None
        );
        assert_eq!(
            MessageType::parse("https://example.org/routing/1.0/forward"),
            None
        );
        assert_eq!(MessageType::parse(""), None);
    }
}
