//! The EdDSA JWS that signs `did_rotate~attach` in a DID Exchange 1.1 response, built and
//! checked exactly as ACA-Py's `AttachDecoratorData.sign` / `verify` do.
//!
//! `data.base64` is standard base64 with padding; the signing input re-encodes it as unpadded
//! base64url: `protected + "." + b64url(payload)`. The protected header is Python's
//! `json.dumps` output (with its `", "` and `": "` separators), so ours is byte-identical.

use serde::Deserialize;

use super::b64;
use super::decorators::{Attachment, AttachmentData, AttachmentJws, JwsHeader};
use super::did_key;
use super::error::DidcommError;
use super::keys::{KeyPair, PublicKey};
use super::messages::new_id;

/// A verified JWS: what was signed and by whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedJws {
    /// The decoded payload.
    pub payload: Vec<u8>,
    /// The signer's base58 verkey.
    pub signer_verkey: String,
}

/// The `did_rotate~attach` for `did`, signed by `signer` (the invitation key).
pub fn sign_did_rotate(did: &str, signer: &KeyPair) -> Result<Attachment, DidcommError> {
    let kid = signer.did_key();
    let protected_json = format!(
        r#"{{"alg": "EdDSA", "jwk": {{"kty": "OKP", "crv": "Ed25519", "x": "{}", "kid": "{}"}}}}"#,
        b64::url_encode(signer.public_bytes()),
        kid
    );
    let protected = b64::url_encode(protected_json.as_bytes());
    let signing_input = format!("{protected}.{}", b64::url_encode(did.as_bytes()));
    let signature = signer.sign(signing_input.as_bytes())?;
    Ok(Attachment {
        id: Some(new_id()),
        mime_type: Some("text/string".into()),
        data: AttachmentData {
            base64: Some(b64::std_encode(did.as_bytes())),
            json: None,
            jws: Some(AttachmentJws {
                header: Some(JwsHeader { kid }),
                protected,
                signature: b64::url_encode(&signature),
            }),
        },
    })
}

#[derive(Deserialize)]
struct Protected {
    alg: String,
    jwk: Jwk,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    crv: Option<String>,
    x: String,
    kid: Option<String>,
}

/// Verifies a signed base64 attachment and returns the payload and signer.
pub fn verify_attachment(attach: &Attachment) -> Result<VerifiedJws, DidcommError> {
    let data = &attach.data;
    let payload_b64 = data
        .base64
        .as_deref()
        .ok_or_else(|| DidcommError::Jws("attachment has no base64 data".into()))?;
    let jws = data
        .jws
        .as_ref()
        .ok_or_else(|| DidcommError::Jws("attachment is not signed".into()))?;
    let payload = b64::any_decode("attachment base64", payload_b64)?;
    let protected_json = b64::url_decode("jws protected", &jws.protected)?;
    let protected: Protected = serde_json::from_slice(&protected_json)
        .map_err(|e| DidcommError::json("jws protected header", e))?;
    if protected.alg != "EdDSA"
        || protected.jwk.kty != "OKP"
        || protected.jwk.crv.as_deref().is_some_and(|c| c != "Ed25519")
    {
        return Err(DidcommError::Jws(format!(
            "unsupported JWS alg {:?} / key type {:?}",
            protected.alg, protected.jwk.kty
        )));
    }
    let signer = PublicKey::from_bytes(&b64::url_decode("jwk x", &protected.jwk.x)?)?;
    // ACA-Py translates the stored base64 to the url alphabet and drops padding, rather than
    // re-encoding the decoded bytes; do the same so odd encodings verify identically
    let payload_url: String = payload_b64
        .trim()
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    let signing_input = format!("{}.{payload_url}", jws.protected);
    let signature = b64::url_decode("jws signature", &jws.signature)?;
    if !signer.verify(signing_input.as_bytes(), &signature) {
        return Err(DidcommError::Jws("signature does not verify".into()));
    }
    // the unprotected kid wins over jwk.kid, as in ACA-Py; either must name the same key
    let kid = jws
        .header
        .as_ref()
        .map(|h| h.kid.as_str())
        .or(protected.jwk.kid.as_deref());
    if let Some(kid) = kid
        && did_key::parse(kid)? != *signer.public_bytes()
    {
        return Err(DidcommError::Jws(format!(
            "kid {kid} does not match the signing jwk"
        )));
    }
    Ok(VerifiedJws {
        payload,
        signer_verkey: signer.verkey().to_owned(),
    })
}

/// Verifies `did_rotate~attach` and returns the signed DID. With `expected_signer` (a base58
/// verkey or did:key — the invitation key), a signature by any other key is rejected.
pub fn verify_did_rotate(
    attach: &Attachment,
    expected_signer: Option<&str>,
) -> Result<String, DidcommError> {
    let v = verify_attachment(attach)?;
    if let Some(expected) = expected_signer {
        let expected = did_key::to_verkey(expected)?;
        if expected != v.signer_verkey {
            return Err(DidcommError::Jws(format!(
                "signed by {}, expected {expected}",
                v.signer_verkey
            )));
        }
    }
    String::from_utf8(v.payload).map_err(|_| DidcommError::Jws("signed DID is not UTF-8".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_then_verify() {
        let k = KeyPair::from_seed(&[7; 32]);
        let a = sign_did_rotate("did:peer:4zQmX", &k).unwrap();
        assert_eq!(
            verify_did_rotate(&a, Some(k.verkey())).unwrap(),
            "did:peer:4zQmX"
        );
        assert_eq!(
            verify_did_rotate(&a, Some(&k.did_key())).unwrap(),
            "did:peer:4zQmX"
        );
        let other = KeyPair::from_seed(&[8; 32]);
        let err = verify_did_rotate(&a, Some(other.verkey())).unwrap_err();
        assert!(err.to_string().contains("expected"), "{err}");
    }

    #[test]
    fn tampering_and_garbage_fail() {
        let k = KeyPair::from_seed(&[7; 32]);
        let good = sign_did_rotate("did:peer:4zQmX", &k).unwrap();
        let says = |a: &Attachment, what: &str| {
            let err = verify_did_rotate(a, None).unwrap_err().to_string();
            assert!(err.contains(what), "{err}");
        };
        let mut a = good.clone();
        a.data.base64 = Some(b64::std_encode(b"did:peer:4zQmY"));
        says(&a, "signature does not verify");
        let mut a = good.clone();
        a.data.jws.as_mut().unwrap().signature = "AAAA".into();
        says(&a, "signature does not verify");
        let mut a = good.clone();
        a.data.jws.as_mut().unwrap().protected = "!!".into();
        says(&a, "invalid base64 in jws protected");
        let mut a = good.clone();
        a.data.jws.as_mut().unwrap().header = Some(JwsHeader {
            kid: KeyPair::from_seed(&[9; 32]).did_key(),
        });
        says(&a, "does not match the signing jwk");
        let mut a = good;
        a.data.jws = None;
        says(&a, "attachment is not signed");
    }
}
