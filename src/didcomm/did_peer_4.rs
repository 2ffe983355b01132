//! did:peer:4: `did:peer:4` + hash + `:` + encoded input doc (long form), or just the hash
//! (short form), as the `did_peer_4` package ACA-Py 1.7 uses computes them.
//!
//! encoded = `z` base58(0x80 0x04 ‖ compact JSON of the input doc); hash = `z` base58(0x12 0x20
//! ‖ sha256(encoded)). The JSON is Python's `json.dumps(doc, separators=(",", ":"))`: key order
//! as given and non-ASCII escaped as `\uXXXX`, so the same doc yields the same DID in both.

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::error::DidcommError;

const PREFIX: &str = "did:peer:4";
const MULTICODEC_JSON: [u8; 2] = [0x80, 0x04];
const MULTIHASH_SHA256: [u8; 2] = [0x12, 0x20];
/// Characters in the hash: `z` + 46 base58 (34 bytes), i.e. `zQm` + 44 as Python checks.
const HASH_B58_LENGTH: usize = 47;

/// Both forms of one did:peer:4.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerDid4 {
    /// `did:peer:4zQm…:z…` — what a DID Exchange request carries.
    pub long: String,
    /// `did:peer:4zQm…`.
    pub short: String,
}

/// Encodes an input doc (no `id`, relative `#…` ids). Field order is the serializer's, so use a
/// struct (declaration order) to control it; a `serde_json::Value` comes out key-sorted.
pub fn encode<T: Serialize>(input_doc: &T) -> Result<PeerDid4, DidcommError> {
    let json =
        serde_json::to_string(input_doc).map_err(|e| DidcommError::json("did:peer:4 doc", e))?;
    Ok(encode_compact_json(&python_ascii(json)))
}

/// Encodes input-doc JSON that is already compact and ASCII, byte for byte.
pub fn encode_compact_json(json: &str) -> PeerDid4 {
    let mut raw = Vec::with_capacity(json.len() + 2);
    raw.extend_from_slice(&MULTICODEC_JSON);
    raw.extend_from_slice(json.as_bytes());
    let encoded = format!("z{}", bs58::encode(raw).into_string());
    let short = format!("{PREFIX}{}", hash(&encoded));
    PeerDid4 {
        long: format!("{short}:{encoded}"),
        short,
    }
}

fn hash(encoded: &str) -> String {
    let mut raw = [0u8; 34];
    raw[..2].copy_from_slice(&MULTIHASH_SHA256);
    raw[2..].copy_from_slice(&Sha256::digest(encoded.as_bytes()));
    format!("z{}", bs58::encode(raw).into_string())
}

/// Escapes every non-ASCII (and DEL) character as `\uXXXX` (UTF-16, lowercase hex), as
/// Python's `ensure_ascii` does; such characters can only occur inside JSON strings.
fn python_ascii(json: String) -> String {
    if json.bytes().all(|b| b < 0x7f) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if (c as u32) < 0x7f {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

/// Splits a long form into (short form, encoded doc), checking the shape.
fn split_long(did: &str) -> Result<(&str, &str), DidcommError> {
    let rest = did
        .strip_prefix(PREFIX)
        .ok_or_else(|| DidcommError::did(did, "not a did:peer:4"))?;
    let (hash, encoded) = rest
        .split_once(':')
        .ok_or_else(|| DidcommError::did(did, "short form: it has no document to decode"))?;
    let b58 = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() && !b"0OIl".contains(&b))
    };
    if hash.len() != HASH_B58_LENGTH || !hash.starts_with("zQm") || !b58(&hash[1..]) {
        return Err(DidcommError::did(did, "malformed hash"));
    }
    if encoded.len() < 7 || !encoded.starts_with('z') || !b58(&encoded[1..]) {
        return Err(DidcommError::did(did, "malformed encoded document"));
    }
    Ok((&did[..PREFIX.len() + hash.len()], encoded))
}

/// Decodes a long-form did:peer:4 to its input doc, verifying the hash.
pub fn decode(did: &str) -> Result<serde_json::Value, DidcommError> {
    let (short, encoded) = split_long(did)?;
    if hash(encoded) != short[PREFIX.len()..] {
        return Err(DidcommError::did(did, "hash does not match the document"));
    }
    let raw = bs58::decode(&encoded[1..])
        .into_vec()
        .map_err(|source| DidcommError::Base58 {
            field: "did:peer:4 document",
            source,
        })?;
    let json = raw
        .strip_prefix(&MULTICODEC_JSON)
        .ok_or_else(|| DidcommError::did(did, "document is not multicodec JSON"))?;
    serde_json::from_slice(json).map_err(|e| DidcommError::json("did:peer:4 document", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let doc =
            serde_json::json!({"service": [{"id": "#s", "type": "x", "serviceEndpoint": "é"}]});
        let d = encode(&doc).unwrap();
        assert!(d.long.starts_with(&d.short));
        assert_eq!(split_long(&d.long).unwrap().0, d.short);
        assert_eq!(decode(&d.long).unwrap(), doc);
        assert!(decode(&d.short).is_err());
    }

    #[test]
    fn escapes_like_python() {
        assert_eq!(
            python_ascii("\"é😀\u{7f}\"".into()),
            "\"\\u00e9\\ud83d\\ude00\\u007f\""
        );
    }

    #[test]
    fn bad_dids_are_errors() {
        let d = encode(&serde_json::json!({"a": 1})).unwrap();
        let mut tampered = d.long.clone();
        tampered.pop();
        tampered.push('2');
        // The last two have the right hash: what fails is the document.
        let not_json = encode_compact_json("{not json");
        let plain = format!("z{}", bs58::encode(br#"{"a":1}"#).into_string());
        let not_multicodec = format!("did:peer:4{}:{plain}", hash(&plain));
        for (bad, says) in [
            ("did:peer:4", "it has no document"),
            ("did:peer:4zQm:z", "malformed hash"),
            ("did:peer:2.Vz6Mk", "not a did:peer:4"),
            ("did:peer:4zQmAAAA:zAAAAAAAA", "malformed hash"),
            (tampered.as_str(), "hash does not match the document"),
            (&d.long.replace(":z", ":x"), "malformed encoded document"),
            (&not_json.long, "invalid JSON in did:peer:4 document"),
            (&not_multicodec, "document is not multicodec JSON"),
        ] {
            let err = decode(bad).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
