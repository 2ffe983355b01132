//! Out-of-band 1.1 invitations: parse an invitation URL (`?oob=` in any base64 flavour, or a
//! legacy `?c_i=` connection invitation) and build the invitation an edge agent hands out.

use percent_encoding::percent_decode_str;
use serde::{Deserialize, Serialize};

use super::b64;
use super::error::DidcommError;
use super::forward::ServiceTarget;
use super::message_type as mt;
use super::messages::new_id;

/// An `out-of-band/1.x/invitation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invitation {
    /// Message type URI.
    #[serde(rename = "@type")]
    pub type_: String,
    /// Invitation id: the `pthid` of the DID Exchange request that answers it.
    #[serde(rename = "@id")]
    pub id: String,
    /// Inviter's label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Handshake protocols offered (`https://didcomm.org/didexchange/1.1`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub handshake_protocols: Vec<String>,
    /// Where and how to answer.
    #[serde(default)]
    pub services: Vec<OobService>,
    /// Goal code, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal_code: Option<String>,
    /// Goal, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal: Option<String>,
    /// Accepted media types / profiles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept: Option<Vec<String>>,
}

/// An invitation service: an inline object, or a DID to resolve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OobService {
    /// A public DID whose doc holds the service.
    Did(String),
    /// An inline `did-communication` service.
    Inline(InlineService),
}

/// An inline `did-communication` service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InlineService {
    /// Service id (`#inline`).
    pub id: String,
    /// `did-communication`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `did:key:…#…` URLs (or raw base58 in old invitations).
    #[serde(rename = "recipientKeys")]
    pub recipient_keys: Vec<String>,
    /// Mediator keys, `did:key:…#…`.
    #[serde(rename = "routingKeys", default, skip_serializing_if = "Vec::is_empty")]
    pub routing_keys: Vec<String>,
    /// The endpoint to send to.
    #[serde(rename = "serviceEndpoint")]
    pub service_endpoint: String,
    /// Accepted profiles, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept: Option<Vec<String>>,
}

impl InlineService {
    /// Decodes the keys into a packing target.
    pub fn target(&self) -> Result<ServiceTarget, DidcommError> {
        ServiceTarget::from_key_refs(
            &self.recipient_keys,
            &self.routing_keys,
            self.service_endpoint.clone(),
        )
    }
}

/// A connections/1.0 invitation (`c_i=`), read only to turn it into an `Invitation`.
#[derive(Deserialize)]
struct LegacyInvitation {
    #[serde(rename = "@type")]
    type_: String,
    #[serde(rename = "@id")]
    id: String,
    label: Option<String>,
    #[serde(rename = "recipientKeys")]
    recipient_keys: Vec<String>,
    #[serde(rename = "routingKeys", default)]
    routing_keys: Vec<String>,
    #[serde(rename = "serviceEndpoint")]
    service_endpoint: String,
}

impl Invitation {
    /// A DID Exchange 1.1 invitation with one inline service (what an edge agent hands out:
    /// its invitation key, the mediator's routing keys, the mediator's endpoint).
    pub fn new_inline(
        label: impl Into<String>,
        recipient_key_did_url: String,
        routing_keys: Vec<String>,
        service_endpoint: impl Into<String>,
    ) -> Self {
        Self {
            type_: mt::OOB_INVITATION.into(),
            id: new_id(),
            label: Some(label.into()),
            handshake_protocols: vec![mt::DIDEXCHANGE_1_1.into()],
            services: vec![OobService::Inline(InlineService {
                id: "#inline".into(),
                type_: "did-communication".into(),
                recipient_keys: vec![recipient_key_did_url],
                routing_keys,
                service_endpoint: service_endpoint.into(),
                accept: None,
            })],
            goal_code: None,
            goal: None,
            accept: None,
        }
    }

    /// The first inline service, which is the one agents answer.
    pub fn inline_service(&self) -> Option<&InlineService> {
        self.services.iter().find_map(|s| match s {
            OobService::Inline(i) => Some(i),
            OobService::Did(_) => None,
        })
    }

    /// The endpoint of the first inline service over WebSocket (`ws://` or `wss://`), when the
    /// invitation has one (Credo's mediator lists its WebSocket beside its HTTP endpoint).
    pub fn websocket_endpoint(&self) -> Option<&str> {
        self.services.iter().find_map(|s| match s {
            OobService::Inline(i)
                if i.service_endpoint.starts_with("ws://")
                    || i.service_endpoint.starts_with("wss://") =>
            {
                Some(i.service_endpoint.as_str())
            }
            _ => None,
        })
    }

    /// `base?oob=<base64url JSON>` (the round-trip tests make invitation URLs with it).
    #[cfg(test)]
    pub fn to_url(&self, base: &str) -> Result<String, DidcommError> {
        let json = serde_json::to_vec(self).map_err(|e| DidcommError::json("invitation", e))?;
        Ok(format!("{base}?oob={}", b64::url_encode(&json)))
    }

    /// Parses an invitation URL: `oob=` (OOB 1.x) or `c_i=` (connections/1.0, converted).
    pub fn from_url(url: &str) -> Result<Self, DidcommError> {
        let (param, object) = url_payload(url)?;
        let json = serde_json::Value::Object(object);
        match param {
            UrlParam::Oob => Self::from_value(json),
            UrlParam::ConnectionInvitation => {
                let l: LegacyInvitation = serde_json::from_value(json)
                    .map_err(|e| DidcommError::json("c_i invitation", e))?;
                Ok(l.into())
            }
        }
    }

    /// Parses the invitation JSON itself.
    pub fn from_json(json: &[u8]) -> Result<Self, DidcommError> {
        Self::checked(
            serde_json::from_slice(json).map_err(|e| DidcommError::json("invitation", e))?,
        )
    }

    fn from_value(json: serde_json::Value) -> Result<Self, DidcommError> {
        Self::checked(
            serde_json::from_value(json).map_err(|e| DidcommError::json("invitation", e))?,
        )
    }

    /// Refuses a message that parses as an invitation but says it is something else.
    fn checked(inv: Self) -> Result<Self, DidcommError> {
        if !inv.type_.ends_with("/invitation") {
            return Err(DidcommError::Invitation(format!(
                "@type {:?} is not an invitation",
                inv.type_
            )));
        }
        Ok(inv)
    }
}

/// A connections/1.0 invitation is answered like an OOB invitation with one inline service
/// that offers the connections protocol.
impl From<LegacyInvitation> for Invitation {
    fn from(l: LegacyInvitation) -> Self {
        Self {
            type_: l.type_,
            id: l.id,
            label: l.label,
            handshake_protocols: vec!["https://didcomm.org/connections/1.0".into()],
            services: vec![OobService::Inline(InlineService {
                id: "#inline".into(),
                type_: "did-communication".into(),
                recipient_keys: l.recipient_keys,
                routing_keys: l.routing_keys,
                service_endpoint: l.service_endpoint,
                accept: None,
            })],
            goal_code: None,
            goal: None,
            accept: None,
        }
    }
}

/// The query parameter of an invitation URL that carried the invitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlParam {
    /// `oob=`: an out-of-band 1.x invitation.
    Oob,
    /// `c_i=`: a connections/1.0 invitation.
    ConnectionInvitation,
}

/// Decodes the JSON object an invitation URL carries, without reading it as an invitation
/// (plans get it as written through the `invitation` template filter). `oob=` is taken over
/// `c_i=`; the value may be %-escaped, in either base64 alphabet, padded or not. A string
/// without `?` is read as the query itself.
pub fn url_payload(
    url: &str,
) -> Result<(UrlParam, serde_json::Map<String, serde_json::Value>), DidcommError> {
    let bad = |why: String| DidcommError::InvitationUrl(why);
    let query = url.split_once('?').map_or(url, |(_, q)| q);
    let query = query.split('#').next().unwrap_or(query);
    let value = |key: &str| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
    };
    let (param, name, encoded) = match (value("oob"), value("c_i")) {
        (Some(v), _) => (UrlParam::Oob, "oob", v),
        (None, Some(v)) => (UrlParam::ConnectionInvitation, "c_i", v),
        (None, None) => return Err(bad("it has no `oob=` or `c_i=` parameter".into())),
    };
    let encoded = percent_decode_str(encoded).decode_utf8().map_err(|_| {
        bad(format!(
            "the `{name}=` parameter is not UTF-8 once %-decoded"
        ))
    })?;
    let bytes = b64::any_decode("invitation URL", &encoded)
        .map_err(|_| bad(format!("the `{name}=` parameter is not base64")))?;
    match serde_json::from_slice(&bytes) {
        Ok(serde_json::Value::Object(object)) => Ok((param, object)),
        Ok(_) => Err(bad(format!(
            "the decoded `{name}=` parameter is not a JSON object"
        ))),
        Err(e) => Err(bad(format!(
            "the decoded `{name}=` parameter is not JSON: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    const E1: &str = r##"{"@type": "https://didcomm.org/out-of-band/1.1/invitation", "@id": "5270e615-db63-468f-9e6a-02df52e06cce", "label": "acaload-mediator", "handshake_protocols": ["https://didcomm.org/didexchange/1.1"], "services": [{"id": "#inline", "type": "did-communication", "recipientKeys": ["did:key:z6Mkn6z2XbkvAckiEMmche7Hgatwh3jjyLEGKfFYpKcGxYKe#z6Mkn6z2XbkvAckiEMmche7Hgatwh3jjyLEGKfFYpKcGxYKe"], "serviceEndpoint": "http://127.0.0.1:4700"}]}"##;

    #[test]
    fn every_base64_flavour_parses() {
        let e = base64::engine::general_purpose::STANDARD;
        let u = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let padded = e.encode(E1);
        for enc in [
            u.encode(E1),
            base64::engine::general_purpose::URL_SAFE.encode(E1),
            padded.clone(),
            padded.trim_end_matches('=').to_owned(),
            padded
                .replace('=', "%3D")
                .replace('+', "%2B")
                .replace('/', "%2F"),
        ] {
            let inv = Invitation::from_url(&format!("http://127.0.0.1:4700?oob={enc}")).unwrap();
            assert_eq!(inv.id, "5270e615-db63-468f-9e6a-02df52e06cce");
            let svc = inv.inline_service().unwrap();
            let t = svc.target().unwrap();
            assert_eq!(
                t.recipient_keys[0].did_key(),
                svc.recipient_keys[0].split('#').next().unwrap()
            );
            assert!(t.routing_keys.is_empty());
            assert_eq!(t.service_endpoint, "http://127.0.0.1:4700");
        }
    }

    #[test]
    fn did_service_and_legacy_c_i() {
        let j = r#"{"@type":"https://didcomm.org/out-of-band/1.1/invitation","@id":"1","services":["did:sov:abc"]}"#;
        let inv = Invitation::from_json(j.as_bytes()).unwrap();
        assert_eq!(inv.services, vec![OobService::Did("did:sov:abc".into())]);
        assert!(inv.inline_service().is_none());
        let ci = r#"{"@type":"https://didcomm.org/connections/1.0/invitation","@id":"2","label":"x","recipientKeys":["8eiywMWU"],"serviceEndpoint":"http://e"}"#;
        let url = format!(
            "http://e?c_i={}",
            base64::engine::general_purpose::URL_SAFE.encode(ci)
        );
        let inv = Invitation::from_url(&url).unwrap();
        assert_eq!(inv.id, "2");
        assert_eq!(inv.label.as_deref(), Some("x"));
        assert_eq!(
            inv.handshake_protocols,
            ["https://didcomm.org/connections/1.0"]
        );
        let svc = inv.inline_service().unwrap();
        assert_eq!(svc.recipient_keys, ["8eiywMWU"]);
        assert_eq!(svc.service_endpoint, "http://e");
    }

    #[test]
    fn round_trip_through_url() {
        let kp = crate::didcomm::keys::KeyPair::from_seed(&[9; 32]);
        let inv = Invitation::new_inline(
            "edge-A",
            crate::didcomm::did_key::url_from_public(kp.public_bytes()),
            vec![],
            "http://m",
        );
        let back = Invitation::from_url(&inv.to_url("http://m").unwrap()).unwrap();
        assert_eq!(back, inv);
    }

    #[test]
    fn the_payload_is_the_object_as_written() {
        let object = serde_json::json!({"@type": "x/invitation", "extra": {"kept": [1, 2]}});
        let raw = serde_json::to_vec(&object).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&raw);
        let escaped = b64
            .replace('=', "%3D")
            .replace('+', "%2B")
            .replace('/', "%2F");
        for (url, param) in [
            (format!("http://x/?a=1&oob={escaped}#frag"), UrlParam::Oob),
            (format!("oob={b64}"), UrlParam::Oob),
            (
                format!("http://x?c_i={b64}"),
                UrlParam::ConnectionInvitation,
            ),
            (
                format!("http://x?c_i=e30&oob={b64}"),
                UrlParam::Oob, // oob= wins over c_i=
            ),
        ] {
            let (got_param, got) = url_payload(&url).unwrap();
            assert_eq!(got_param, param, "{url}");
            assert_eq!(serde_json::Value::Object(got), object, "{url}");
        }
    }

    #[test]
    fn malformed_urls_say_what_is_wrong() {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let ping = b64(r#"{"@type":"https://didcomm.org/trust_ping/1.0/ping","@id":"1"}"#);
        for (bad, says) in [
            (
                "http://x".to_string(),
                "not an invitation URL: it has no `oob=` or `c_i=` parameter",
            ),
            (
                "http://x?foo=1&oobx=e30".into(),
                "no `oob=` or `c_i=` parameter",
            ),
            (
                "http://x?oob=%%%".into(),
                "the `oob=` parameter is not base64",
            ),
            (
                "http://x?oob=%4".into(),
                "the `oob=` parameter is not base64",
            ),
            (
                "http://x?oob=%FF%FE".into(),
                "the `oob=` parameter is not UTF-8",
            ),
            (
                "http://x?oob=!!!!".into(),
                "the `oob=` parameter is not base64",
            ),
            (
                format!("http://x?oob={}", b64("{")),
                "the decoded `oob=` parameter is not JSON",
            ),
            (
                "http://x?oob=W10".into(),
                "the decoded `oob=` parameter is not a JSON object",
            ),
            // An object that is no invitation at all, then one that says it is something else.
            (
                "http://x?oob=e30".into(),
                "invalid JSON in invitation: missing field `@type`",
            ),
            (
                format!("http://x?oob={ping}"),
                "invitation: @type \"https://didcomm.org/trust_ping/1.0/ping\" is not an invitation",
            ),
            (
                "http://x?c_i=e30".into(),
                "invalid JSON in c_i invitation: missing field `@type`",
            ),
        ] {
            let err = Invitation::from_url(&bad).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
