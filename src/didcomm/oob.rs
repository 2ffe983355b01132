//! Out-of-band 1.1 invitations: parse an invitation URL (`?oob=` in any base64 flavour, or a
//! legacy `?c_i=` connection invitation) and build the invitation an edge agent hands out.

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

    /// `base?oob=<base64url JSON>`.
    pub fn to_url(&self, base: &str) -> Result<String, DidcommError> {
        let json = serde_json::to_vec(self).map_err(|e| DidcommError::json("invitation", e))?;
        Ok(format!("{base}?oob={}", b64::url_encode(&json)))
    }

    /// Parses an invitation URL: `oob=` (OOB 1.x) or `c_i=` (connections/1.0, converted).
    pub fn from_url(url: &str) -> Result<Self, DidcommError> {
        let query = url
            .split_once('?')
            .map(|(_, q)| q)
            .ok_or_else(|| DidcommError::Invitation("URL has no query string".into()))?;
        let query = query.split('#').next().unwrap_or(query);
        let mut oob = None;
        let mut legacy = None;
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "oob" => oob = Some(v),
                "c_i" => legacy = Some(v),
                _ => {}
            }
        }
        if let Some(v) = oob {
            let json = b64::any_decode("oob", &percent_decode(v)?)?;
            return Self::from_json(&json);
        }
        if let Some(v) = legacy {
            let json = b64::any_decode("c_i", &percent_decode(v)?)?;
            let l: LegacyInvitation = serde_json::from_slice(&json)
                .map_err(|e| DidcommError::json("c_i invitation", e))?;
            return Ok(Self {
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
            });
        }
        Err(DidcommError::Invitation(
            "URL has neither an oob= nor a c_i= parameter".into(),
        ))
    }

    /// Parses the invitation JSON itself.
    pub fn from_json(json: &[u8]) -> Result<Self, DidcommError> {
        let inv: Self =
            serde_json::from_slice(json).map_err(|e| DidcommError::json("invitation", e))?;
        if !inv.type_.ends_with("/invitation") {
            return Err(DidcommError::Invitation(format!(
                "@type {:?} is not an invitation",
                inv.type_
            )));
        }
        Ok(inv)
    }
}

/// Undoes %XX escapes (and `+` for space) in a query value; padding often arrives as `%3D`.
fn percent_decode(s: &str) -> Result<String, DidcommError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| DidcommError::Invitation("bad %-escape in URL".into()))?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                // a literal '+' of standard base64 that was not escaped: keep it
                out.push(b'+');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| DidcommError::Invitation("URL is not UTF-8".into()))
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
        assert_eq!(
            inv.inline_service().unwrap().recipient_keys,
            vec!["8eiywMWU"]
        );
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
    fn malformed_urls_are_errors() {
        for bad in [
            "http://x",
            "http://x?foo=1",
            "http://x?oob=%%%",
            "http://x?oob=%4",
            "http://x?oob=!!!!",
            "http://x?oob=e30", // {} : not an invitation
            "http://x?oob=W10", // []
            "http://x?c_i=e30",
        ] {
            assert!(Invitation::from_url(bad).is_err(), "{bad}");
        }
    }
}
