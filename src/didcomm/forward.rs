//! Routing: wrap an envelope in `routing/1.0/forward` messages, anoncrypted to each routing key
//! in turn — exactly ACA-Py's `V1PackWireFormat.pack` and Credo's `packMessage`.

use serde::{Deserialize, Serialize};

use super::envelope::{pack_anoncrypt, pack_authcrypt};
use super::error::DidcommError;
use super::keys::{KeyPair, PublicKey};
use super::message_type::FORWARD;
use super::messages::new_id;

/// Where a message for a peer goes: its keys, its mediators' keys, and the endpoint to POST to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceTarget {
    /// The peer's recipient keys (the inner envelope is authcrypted to all of them).
    pub recipient_keys: Vec<PublicKey>,
    /// Routing keys, innermost first: the message is forward-wrapped for each in this order.
    pub routing_keys: Vec<PublicKey>,
    /// The transport endpoint of the outermost hop.
    pub service_endpoint: String,
}

impl ServiceTarget {
    /// Builds a target from key references as invitations and DID docs carry them
    /// (base58 verkeys, `did:key`, or `did:key#frag`).
    pub fn from_key_refs<R: AsRef<str>, S: AsRef<str>>(
        recipient_keys: &[R],
        routing_keys: &[S],
        service_endpoint: impl Into<String>,
    ) -> Result<Self, DidcommError> {
        let recipient_keys = recipient_keys
            .iter()
            .map(|k| PublicKey::from_key_ref(k.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        if recipient_keys.is_empty() {
            return Err(DidcommError::DidDoc("service has no recipient keys".into()));
        }
        Ok(Self {
            recipient_keys,
            routing_keys: routing_keys
                .iter()
                .map(|k| PublicKey::from_key_ref(k.as_ref()))
                .collect::<Result<Vec<_>, _>>()?,
            service_endpoint: service_endpoint.into(),
        })
    }
}

/// A received `routing/1.0/forward` (what a mediator unpacks); `msg` is the next envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forward {
    /// Message type URI.
    #[serde(rename = "@type")]
    pub type_: String,
    /// Message id.
    #[serde(rename = "@id")]
    pub id: String,
    /// The next hop's raw base58 verkey (ACA-Py drops a forward whose `to` is a did:key).
    pub to: String,
    /// The wrapped envelope (a JWE object).
    pub msg: serde_json::Value,
}

/// The plaintext of a forward of `inner` (an envelope JSON object) to `to` (base58 verkey).
/// With `return_route`, it carries `~transport.return_route: "all"`, which a forward sent over
/// an agent's own pickup socket needs or the mediator stops pushing to that socket.
pub fn forward_plaintext(
    to: &str,
    inner: &str,
    return_route: bool,
) -> Result<String, DidcommError> {
    let inner_trimmed = inner.trim();
    if !(inner_trimmed.starts_with('{') && inner_trimmed.ends_with('}')) {
        return Err(DidcommError::Malformed(
            "forward payload must be an envelope JSON object".into(),
        ));
    }
    let id = new_id();
    // built by hand so the (large) inner envelope is copied once and never re-parsed
    let to_json = serde_json::to_string(to).map_err(|e| DidcommError::json("forward to", e))?;
    let mut out = String::with_capacity(inner.len() + to.len() + 160);
    out.push_str("{\"@type\":\"");
    out.push_str(FORWARD);
    out.push_str("\",\"@id\":\"");
    out.push_str(&id);
    out.push_str("\",\"to\":");
    out.push_str(&to_json);
    out.push_str(",\"msg\":");
    out.push_str(inner_trimmed);
    if return_route {
        out.push_str(",\"~transport\":{\"return_route\":\"all\"}");
    }
    out.push('}');
    Ok(out)
}

/// Wraps `inner` (an envelope for `to_verkey`) in one anoncrypted forward per routing key.
/// With no routing keys, `inner` is returned unchanged.
pub fn wrap_forwards(
    inner: String,
    to_verkey: &str,
    routing_keys: &[PublicKey],
) -> Result<String, DidcommError> {
    let mut msg = inner;
    let mut to = to_verkey;
    for rk in routing_keys {
        let fwd = forward_plaintext(to, &msg, false)?;
        msg = pack_anoncrypt(fwd.as_bytes(), std::slice::from_ref(rk))?;
        to = rk.verkey();
    }
    Ok(msg)
}

/// Authcrypts `plaintext` from `sender` to the target's recipient keys, then forward-wraps it
/// for each routing key: the envelope to POST to `target.service_endpoint`.
pub fn pack_for_service(
    plaintext: &[u8],
    target: &ServiceTarget,
    sender: &KeyPair,
) -> Result<String, DidcommError> {
    let first = target
        .recipient_keys
        .first()
        .ok_or_else(|| DidcommError::DidDoc("service has no recipient keys".into()))?;
    let inner = pack_authcrypt(plaintext, &target.recipient_keys, sender)?;
    wrap_forwards(inner, first.verkey(), &target.routing_keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::didcomm::envelope::unpack;

    #[test]
    fn two_hop_forward_unwraps_in_order() {
        let (alice, bob) = (KeyPair::from_seed(&[1; 32]), KeyPair::from_seed(&[2; 32]));
        let (m1, m2) = (KeyPair::from_seed(&[3; 32]), KeyPair::from_seed(&[4; 32]));
        let target = ServiceTarget::from_key_refs(
            &[bob.did_key()],
            &[m1.public_key().did_key(), m2.verkey().to_owned()],
            "http://x",
        )
        .unwrap();
        let outer = pack_for_service(b"{\"hi\":1}", &target, &alice).unwrap();
        // the outermost layer is for the LAST routing key
        let o = unpack(outer.as_bytes(), &m2).unwrap();
        assert_eq!(o.sender_verkey, None);
        let f2: Forward = o.json().unwrap();
        assert_eq!(f2.type_, FORWARD);
        assert_eq!(f2.to, m1.verkey());
        let o = unpack(serde_json::to_vec(&f2.msg).unwrap().as_slice(), &m1).unwrap();
        let f1: Forward = o.json().unwrap();
        assert_eq!(f1.to, bob.verkey());
        let o = unpack(serde_json::to_vec(&f1.msg).unwrap().as_slice(), &bob).unwrap();
        assert_eq!(o.plaintext, b"{\"hi\":1}");
        assert_eq!(o.sender_verkey.as_deref(), Some(alice.verkey()));
    }

    #[test]
    fn forward_plaintext_shape() {
        let p = forward_plaintext("abc", "{\"protected\":\"x\"}", true).unwrap();
        let v: serde_json::Value = serde_json::from_str(&p).unwrap();
        assert_eq!(v["to"], "abc");
        assert_eq!(v["msg"]["protected"], "x");
        assert_eq!(v["~transport"]["return_route"], "all");
        assert!(forward_plaintext("abc", "nope", false).is_err());
    }

    #[test]
    fn bad_key_refs_are_errors() {
        assert!(ServiceTarget::from_key_refs(&["did:key:zBad"], &[] as &[&str], "x").is_err());
        assert!(ServiceTarget::from_key_refs(&[] as &[&str], &[] as &[&str], "x").is_err());
    }
}
