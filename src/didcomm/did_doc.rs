//! DID documents on the DIDComm v1 path: the input doc an edge agent encodes into its own
//! did:peer:4 (Credo's shape), and reading a peer's resolved doc down to its
//! `did-communication` services with every key dereferenced to base58.

use serde::Serialize;
use serde_json::Value;

use super::b64;
use super::did_key;
use super::did_peer_2;
use super::did_peer_4;
use super::error::DidcommError;
use super::forward::ServiceTarget;
use super::keys::PublicKey;

/// Credo's endpoint for "I have no inbound endpoint; queue for me and use my socket".
pub const QUEUE_ENDPOINT: &str = "didcomm:transport/queue";

/// A did:peer:4 input doc as Credo builds it: the Ed25519 key (#key-1) and its X25519 form
/// (#key-2) embedded in `authentication` / `keyAgreement`, one `did-communication` service.
/// Field order matters (it is hashed), so it is a struct, not a map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerInputDoc {
    #[serde(rename = "@context")]
    context: Vec<String>,
    service: Vec<InputService>,
    authentication: Vec<InputVerificationMethod>,
    #[serde(rename = "keyAgreement")]
    key_agreement: Vec<InputVerificationMethod>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct InputService {
    id: String,
    #[serde(rename = "serviceEndpoint")]
    service_endpoint: String,
    #[serde(rename = "type")]
    type_: String,
    priority: u32,
    #[serde(rename = "recipientKeys")]
    recipient_keys: Vec<String>,
    #[serde(rename = "routingKeys")]
    routing_keys: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct InputVerificationMethod {
    id: String,
    #[serde(rename = "type")]
    type_: String,
    #[serde(rename = "publicKeyBase58")]
    public_key_base58: String,
}

impl PeerInputDoc {
    /// The doc for `key`, reachable at `endpoint` (`QUEUE_ENDPOINT` for the mediator connection;
    /// the mediator's endpoint for peer connections) through `routing_keys` (`did:key:…#…`).
    pub fn credo(key: &PublicKey, endpoint: &str, routing_keys: &[String]) -> Self {
        Self {
            context: vec!["https://w3id.org/did/v1".into()],
            service: vec![InputService {
                id: "#inline-0".into(),
                service_endpoint: endpoint.into(),
                type_: "did-communication".into(),
                priority: 0,
                recipient_keys: vec!["#key-1".into()],
                routing_keys: routing_keys.to_vec(),
            }],
            authentication: vec![InputVerificationMethod {
                id: "#key-1".into(),
                type_: "Ed25519VerificationKey2018".into(),
                public_key_base58: key.verkey().into(),
            }],
            key_agreement: vec![InputVerificationMethod {
                id: "#key-2".into(),
                type_: "X25519KeyAgreementKey2019".into(),
                public_key_base58: bs58::encode(key.x25519_bytes()).into_string(),
            }],
        }
    }

    /// Encodes the doc as a did:peer:4 (long and short form).
    pub fn to_did_peer_4(&self) -> Result<did_peer_4::PeerDid4, DidcommError> {
        did_peer_4::encode(self)
    }
}

/// A `did-communication` service read from a DID doc, keys as base58 verkeys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DidcommService {
    /// The service id (`#didcomm-0`).
    pub id: Option<String>,
    /// Where to send.
    pub service_endpoint: String,
    /// Recipient verkeys.
    pub recipient_keys: Vec<String>,
    /// Routing verkeys, innermost first.
    pub routing_keys: Vec<String>,
    /// Lower is preferred.
    pub priority: i64,
}

impl DidcommService {
    /// The packing target for this service.
    pub fn target(&self) -> Result<ServiceTarget, DidcommError> {
        ServiceTarget::from_key_refs(
            &self.recipient_keys,
            &self.routing_keys,
            self.service_endpoint.clone(),
        )
    }
}

/// Resolves a peer DID (did:peer:4 long form, or did:peer:2) to its doc.
pub fn resolve_peer_did(did: &str) -> Result<Value, DidcommError> {
    if did.starts_with("did:peer:4") {
        did_peer_4::decode(did)
    } else if did.starts_with("did:peer:2") {
        did_peer_2::resolve(did)
    } else {
        Err(DidcommError::did(
            did,
            "only did:peer:4 (long form) and did:peer:2 resolve here",
        ))
    }
}

/// The `did-communication` services of a peer DID, best (lowest priority) first.
pub fn resolve_didcomm_services(did: &str) -> Result<Vec<DidcommService>, DidcommError> {
    didcomm_services(&resolve_peer_did(did)?)
}

/// All verification methods of a doc, top-level and embedded in relationships.
fn verification_methods(doc: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for rel in [
        "verificationMethod",
        "authentication",
        "keyAgreement",
        "assertionMethod",
        "capabilityInvocation",
        "capabilityDelegation",
    ] {
        if let Some(Value::Array(items)) = doc.get(rel) {
            out.extend(items.iter().filter(|v| v.is_object()));
        }
    }
    out
}

/// The fragment of an id (`#key-1` of `did:…#key-1`, or of `#key-1` itself).
fn fragment(id: &str) -> Option<&str> {
    id.rfind('#').map(|i| &id[i..])
}

/// Base58 Ed25519 verkey of a verification method, for the types ACA-Py accepts.
fn vm_verkey(vm: &Value) -> Result<String, DidcommError> {
    let ty = vm.get("type").and_then(Value::as_str).unwrap_or("");
    if let Some(b58) = vm.get("publicKeyBase58").and_then(Value::as_str) {
        if ty.starts_with("X25519") {
            return Err(DidcommError::DidDoc(format!(
                "{ty} key cannot be a DIDComm recipient key"
            )));
        }
        return did_key::to_verkey(b58);
    }
    if let Some(mb) = vm.get("publicKeyMultibase").and_then(Value::as_str) {
        return Ok(bs58::encode(did_key::parse_multikey_ed25519(mb)?).into_string());
    }
    if let Some(jwk) = vm.get("publicKeyJwk") {
        let okp = jwk.get("kty").and_then(Value::as_str) == Some("OKP")
            && jwk.get("crv").and_then(Value::as_str) == Some("Ed25519");
        if let (true, Some(x)) = (okp, jwk.get("x").and_then(Value::as_str)) {
            let raw = b64::url_decode("publicKeyJwk.x", x)?;
            return Ok(PublicKey::from_bytes(&raw)?.verkey().to_owned());
        }
    }
    Err(DidcommError::DidDoc(format!(
        "verification method of type {ty:?} has no Ed25519 key we can read"
    )))
}

/// Dereferences a `recipientKeys` / `routingKeys` entry to a base58 verkey.
fn key_ref_verkey(doc: &Value, vms: &[&Value], key_ref: &str) -> Result<String, DidcommError> {
    if key_ref.starts_with("did:key:") {
        return did_key::to_verkey(key_ref);
    }
    if let Some(frag) = fragment(key_ref) {
        let vm = vms
            .iter()
            .find(|vm| vm.get("id").and_then(Value::as_str).and_then(fragment) == Some(frag))
            .ok_or_else(|| {
                let id = doc
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or("(input doc)");
                DidcommError::DidDoc(format!("{key_ref} is not a verification method of {id}"))
            })?;
        return vm_verkey(vm);
    }
    did_key::to_verkey(key_ref)
}

/// The `did-communication` services of a resolved (or input) doc, best first.
pub fn didcomm_services(doc: &Value) -> Result<Vec<DidcommService>, DidcommError> {
    let vms = verification_methods(doc);
    let mut out = Vec::new();
    let Some(Value::Array(services)) = doc.get("service") else {
        return Ok(out);
    };
    for svc in services {
        if svc.get("type").and_then(Value::as_str) != Some("did-communication") {
            continue;
        }
        let endpoint = svc
            .get("serviceEndpoint")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                DidcommError::DidDoc("service without a string serviceEndpoint".into())
            })?;
        let keys = |field: &str| -> Result<Vec<String>, DidcommError> {
            match svc.get(field) {
                None | Some(Value::Null) => Ok(vec![]),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|k| {
                        k.as_str()
                            .ok_or_else(|| {
                                DidcommError::DidDoc(format!("{field} entry is not a string"))
                            })
                            .and_then(|k| key_ref_verkey(doc, &vms, k))
                    })
                    .collect(),
                Some(_) => Err(DidcommError::DidDoc(format!("{field} is not a list"))),
            }
        };
        out.push(DidcommService {
            id: svc.get("id").and_then(Value::as_str).map(str::to_owned),
            service_endpoint: endpoint.to_owned(),
            recipient_keys: keys("recipientKeys")?,
            routing_keys: keys("routingKeys")?,
            priority: svc.get("priority").and_then(Value::as_i64).unwrap_or(0),
        });
    }
    out.sort_by_key(|s| s.priority);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::didcomm::keys::KeyPair;

    #[test]
    fn credo_doc_resolves_to_its_own_key() {
        let k = KeyPair::from_seed(&[1; 32]).public_key();
        let routing = vec![did_key::url_from_public(
            KeyPair::from_seed(&[2; 32]).public_bytes(),
        )];
        let did = PeerInputDoc::credo(&k, "http://m", &routing)
            .to_did_peer_4()
            .unwrap();
        let svcs = resolve_didcomm_services(&did.long).unwrap();
        assert_eq!(svcs.len(), 1);
        assert_eq!(svcs[0].recipient_keys, vec![k.verkey().to_owned()]);
        assert_eq!(
            svcs[0].routing_keys,
            vec![KeyPair::from_seed(&[2; 32]).verkey().to_owned()]
        );
        assert_eq!(svcs[0].service_endpoint, "http://m");
        let t = svcs[0].target().unwrap();
        assert_eq!(t.recipient_keys[0], k);
    }

    #[test]
    fn mediator_doc_e19_shape() {
        // the walkthrough's E19: Multikey #key-0, two services, ws one second by priority
        let doc = serde_json::json!({
            "verificationMethod": [{"id": "#key-0", "type": "Multikey",
                "publicKeyMultibase": "z6MkkngPjdYR88tvZ51pv3727tKCc6yeRMgqym32uBKTNfGj"}],
            "service": [
                {"id": "#didcomm-1", "type": "did-communication", "recipientKeys": ["#key-0"],
                 "routingKeys": [], "serviceEndpoint": "ws://127.0.0.1:4702", "priority": 1},
                {"id": "#didcomm-0", "type": "did-communication", "recipientKeys": ["#key-0"],
                 "routingKeys": [], "serviceEndpoint": "http://127.0.0.1:4700", "priority": 0}]
        });
        let s = didcomm_services(&doc).unwrap();
        assert_eq!(s[0].service_endpoint, "http://127.0.0.1:4700");
        assert_eq!(s[1].service_endpoint, "ws://127.0.0.1:4702");
        // the walkthrough (P8) names this key 7LRM9PHy… as base58
        assert!(
            s[0].recipient_keys[0].starts_with("7LRM9PHy"),
            "{}",
            s[0].recipient_keys[0]
        );
        assert_eq!(
            s[0].recipient_keys,
            vec![
                did_key::to_verkey("did:key:z6MkkngPjdYR88tvZ51pv3727tKCc6yeRMgqym32uBKTNfGj")
                    .unwrap()
            ]
        );
    }

    #[test]
    fn bad_docs_are_errors() {
        for doc in [
            serde_json::json!({"service": [{"type": "did-communication", "recipientKeys": ["#nope"], "serviceEndpoint": "x"}]}),
            serde_json::json!({"service": [{"type": "did-communication", "recipientKeys": "x", "serviceEndpoint": "x"}]}),
            serde_json::json!({"service": [{"type": "did-communication", "recipientKeys": [1], "serviceEndpoint": "x"}]}),
            serde_json::json!({"service": [{"type": "did-communication", "serviceEndpoint": {"uri": "x"}}]}),
            serde_json::json!({"keyAgreement": [{"id": "#k", "type": "X25519KeyAgreementKey2019", "publicKeyBase58": "abc"}],
                "service": [{"type": "did-communication", "recipientKeys": ["#k"], "serviceEndpoint": "x"}]}),
        ] {
            assert!(didcomm_services(&doc).is_err(), "{doc}");
        }
        assert!(resolve_didcomm_services("did:key:z6Mk").is_err());
    }
}
