//! did:peer:2 resolution (what ACA-Py's mediator answers with when the client used peer:2):
//! `.V`/`.E`/`.A`/`.I`/`.D` multikeys numbered `#key-1…` in order, `.S` base64url JSON services
//! with the abbreviations t/s/r/a and `dm` → `DIDCommMessaging`. Mirrors `did_peer_2.resolve`.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::b64;
use super::error::DidcommError;

const PREFIX: &str = "did:peer:2";

fn relationship(purpose: u8) -> Option<&'static str> {
    Some(match purpose {
        b'A' => "assertionMethod",
        b'E' => "keyAgreement",
        b'V' => "authentication",
        b'I' => "capabilityInvocation",
        b'D' => "capabilityDelegation",
        _ => return None,
    })
}

fn expand_key(k: &str) -> &str {
    match k {
        "t" => "type",
        "dm" => "DIDCommMessaging",
        "s" => "serviceEndpoint",
        "r" => "routingKeys",
        "a" => "accept",
        other => other,
    }
}

fn expand(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                out.insert(expand_key(&k).to_owned(), expand_nested(v));
            }
            if let Some(Value::String(t)) = out.get_mut("type")
                && t == "dm"
            {
                *t = "DIDCommMessaging".into();
            }
            Value::Object(out)
        }
        other => other,
    }
}

fn expand_nested(v: Value) -> Value {
    match v {
        Value::Object(_) => expand(v),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|e| if e.is_object() { expand(e) } else { e })
                .collect(),
        ),
        other => other,
    }
}

fn is_b58(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() && !b"0OIl".contains(&b))
}

/// The did:peer:3 of a did:peer:2 (sha256 of everything after `did:peer:2`).
pub fn peer2_to_peer3(did: &str) -> String {
    let mut raw = [0u8; 34];
    raw[..2].copy_from_slice(&[0x12, 0x20]);
    raw[2..].copy_from_slice(&Sha256::digest(
        &did.as_bytes()[PREFIX.len().min(did.len())..],
    ));
    format!("did:peer:3z{}", bs58::encode(raw).into_string())
}

/// Resolves a did:peer:2 into its DID document (the same JSON as Python's `resolve`).
pub fn resolve(did: &str) -> Result<Value, DidcommError> {
    let rest = did
        .strip_prefix(PREFIX)
        .ok_or_else(|| DidcommError::did(did, "not a did:peer:2"))?;
    let elements = rest
        .strip_prefix('.')
        .ok_or_else(|| DidcommError::did(did, "no elements"))?;
    let mut vms = Vec::new();
    let mut rels: Map<String, Value> = Map::new();
    let mut services = Vec::new();
    let mut unnamed = 0usize;
    for element in elements.split('.') {
        let (&purpose, _) = element
            .as_bytes()
            .split_first()
            .ok_or_else(|| DidcommError::did(did, "empty element"))?;
        let value = &element[1..];
        if purpose == b'S' {
            let ok = !value.is_empty()
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !ok {
                return Err(DidcommError::did(did, "malformed service element"));
            }
            let raw = b64::url_decode("did:peer:2 service", value)?;
            let svc: Value = serde_json::from_slice(&raw)
                .map_err(|e| DidcommError::json("did:peer:2 service", e))?;
            let mut svc = expand(svc);
            let Some(obj) = svc.as_object_mut() else {
                return Err(DidcommError::did(did, "service is not a JSON object"));
            };
            if !obj.contains_key("id") {
                let id = if unnamed == 0 {
                    "#service".to_owned()
                } else {
                    format!("#service-{unnamed}")
                };
                obj.insert("id".into(), id.into());
                unnamed += 1;
            }
            services.push(svc);
        } else {
            let rel = relationship(purpose).ok_or_else(|| {
                DidcommError::did(did, format!("unknown purpose {:?}", purpose as char))
            })?;
            if !(value.starts_with('z') && is_b58(&value[1..])) {
                return Err(DidcommError::did(did, "malformed key element"));
            }
            let id = format!("#key-{}", vms.len() + 1);
            vms.push(json!({
                "type": "Multikey",
                "id": id,
                "controller": did,
                "publicKeyMultibase": value,
            }));
            match rels.entry(rel).or_insert_with(|| Value::Array(vec![])) {
                Value::Array(a) => a.push(id.into()),
                _ => unreachable!("relationship entries are always arrays"),
            }
        }
    }
    let mut doc = Map::new();
    doc.insert(
        "@context".into(),
        json!([
            "https://www.w3.org/ns/did/v1",
            "https://w3id.org/security/multikey/v1"
        ]),
    );
    doc.insert("id".into(), did.into());
    if !vms.is_empty() {
        doc.insert("verificationMethod".into(), Value::Array(vms));
    }
    doc.extend(rels);
    if !services.is_empty() {
        doc.insert("service".into(), Value::Array(services));
    }
    doc.insert("alsoKnownAs".into(), json!([peer2_to_peer3(did)]));
    Ok(Value::Object(doc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abbreviations_expand() {
        let svc = json!({"t": "dm", "s": {"uri": "http://x", "a": ["didcomm/v2"], "r": []}});
        let enc = b64::url_encode(serde_json::to_string(&svc).unwrap().as_bytes());
        let did = format!("did:peer:2.Vz6MkqRYqQiSgvZQdnBytw86Qbs2ZWUkGv22od935YF4s8M7V.S{enc}");
        let doc = resolve(&did).unwrap();
        assert_eq!(doc["service"][0]["type"], "DIDCommMessaging");
        assert_eq!(doc["service"][0]["id"], "#service");
        assert_eq!(
            doc["service"][0]["serviceEndpoint"]["accept"][0],
            "didcomm/v2"
        );
        assert_eq!(doc["authentication"][0], "#key-1");
    }

    #[test]
    fn malformed_peer2_are_errors() {
        for (bad, says) in [
            ("did:peer:2", "no elements"),
            ("did:peer:2.", "empty element"),
            ("did:peer:2.X", "unknown purpose 'X'"),
            ("did:peer:2.Qz6Mk", "unknown purpose 'Q'"),
            ("did:peer:2.Vabc", "malformed key element"),
            ("did:peer:2.S!!", "malformed service element"),
            ("did:peer:2.SW10", "service is not a JSON object"), // []
            ("did:peer:2.Se30xe", "invalid base64 in did:peer:2 service"),
            ("did:peer:2.Sew", "invalid JSON in did:peer:2 service"), // {
        ] {
            let err = resolve(bad).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
