//! did:peer:1 as Credo 0.5 makes it for a DID Exchange request (its default numalgo): the
//! genesis DID doc — one `did-communication` service whose recipient key is `#key-1`, the
//! Ed25519 key as authentication and its X25519 form as key agreement — named by the sha-256
//! multihash (base58btc multibase) of the doc without its `id`, and sent along as a
//! `did_doc~attach` signed by the key. Field order and the JWS header are Credo's, so a
//! mediator reads and verifies the same bytes a real wallet sends.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::b64;
use super::decorators::{Attachment, AttachmentData, AttachmentJws, JwsHeader};
use super::error::DidcommError;
use super::keys::KeyPair;
use super::messages::new_id;

/// A did:peer:1 and its signed genesis doc.
#[derive(Debug, Clone)]
pub struct PeerDid1 {
    pub did: String,
    /// The `did_doc~attach` of the request.
    pub attach: Attachment,
}

/// The doc as Credo's `createPeerDidDocumentFromServices` + `toJSON` write it (compact, in
/// its field order, `id` second).
fn doc(key: &KeyPair, endpoint: &str, routing_keys: &[String], id: Option<&str>) -> String {
    let q = |s: &str| Value::String(s.to_owned()).to_string();
    let routing: Vec<String> = routing_keys.iter().map(|k| q(k)).collect();
    let id = id
        .map(|id| format!(r#""id":{},"#, q(id)))
        .unwrap_or_default();
    let x25519 = bs58::encode(key.public_key().x25519_bytes()).into_string();
    format!(
        concat!(
            r##"{{"@context":["https://w3id.org/did/v1"],{id}"service":[{{"id":"#inline-0","##,
            r##""serviceEndpoint":{endpoint},"type":"did-communication","priority":0,"##,
            r##""recipientKeys":["#key-1"],"routingKeys":[{routing}]}}],"##,
            r##""authentication":[{{"id":"#key-1","type":"Ed25519VerificationKey2018","##,
            r##""controller":"#id","publicKeyBase58":"{ed}"}}],"##,
            r##""keyAgreement":[{{"id":"#key-2","type":"X25519KeyAgreementKey2019","##,
            r##""controller":"#id","publicKeyBase58":"{x}"}}]}}"##
        ),
        id = id,
        endpoint = q(endpoint),
        routing = routing.join(","),
        ed = key.verkey(),
        x = x25519,
    )
}

/// The did:peer:1 for `key` reached at `endpoint` through `routing_keys` (did:key refs).
pub fn encode(
    key: &KeyPair,
    endpoint: &str,
    routing_keys: &[String],
) -> Result<PeerDid1, DidcommError> {
    let genesis = doc(key, endpoint, routing_keys, None);
    // multihash: sha2-256 (0x12), 32 bytes (0x20), the digest
    let mut multihash = vec![0x12, 0x20];
    multihash.extend_from_slice(&Sha256::digest(genesis.as_bytes()));
    let did = format!("did:peer:1z{}", bs58::encode(multihash).into_string());
    let full = doc(key, endpoint, routing_keys, Some(&did));
    Ok(PeerDid1 {
        attach: sign_json(full.as_bytes(), key)?,
        did,
    })
}

/// A JSON attachment signed as Credo's `createSignedAttachment` does: standard base64 data,
/// the protected header `{"alg":"EdDSA","jwk":{…}}`, the did:key as the unprotected kid.
fn sign_json(json: &[u8], signer: &KeyPair) -> Result<Attachment, DidcommError> {
    let protected_json = format!(
        r#"{{"alg":"EdDSA","jwk":{{"kty":"OKP","crv":"Ed25519","x":"{}"}}}}"#,
        b64::url_encode(signer.public_bytes())
    );
    let protected = b64::url_encode(protected_json.as_bytes());
    let signing_input = format!("{protected}.{}", b64::url_encode(json));
    let signature = signer.sign(signing_input.as_bytes())?;
    Ok(Attachment {
        id: Some(new_id()),
        mime_type: Some("application/json".into()),
        data: AttachmentData {
            base64: Some(b64::std_encode(json)),
            json: None,
            jws: Some(AttachmentJws {
                header: Some(JwsHeader {
                    kid: signer.did_key(),
                }),
                protected,
                signature: b64::url_encode(&signature),
            }),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The did and doc Credo 0.5.19 makes for the same key, endpoint and no routing keys
    /// (`createPeerDidDocumentFromServices`, `didDocumentJsonToNumAlgo1Did`, printed by
    /// node), and an attachment that verifies as signed by the key.
    #[test]
    fn the_did_and_doc_are_credos() {
        let key = KeyPair::from_seed(&[7; 32]);
        let p = encode(&key, "didcomm:transport/queue", &[]).unwrap();
        let verified = crate::didcomm::jws::verify_attachment(&p.attach).unwrap();
        assert_eq!(verified.signer_verkey, key.verkey());
        let doc = String::from_utf8(verified.payload).unwrap();
        assert_eq!(key.verkey(), "GmaDrppBC7P5ARKV8g3djiwP89vz1jLK23V2GBjuAEGB");
        assert_eq!(
            p.did,
            "did:peer:1zQmRSDA6hzaVimX5gNpmQKDBQqi9TzbioC3rES52qA1j7JP"
        );
        assert_eq!(
            doc,
            concat!(
                r##"{"@context":["https://w3id.org/did/v1"],"id":"did:peer:1zQmRSDA6hzaVimX5gNpmQKDBQqi9TzbioC3rES52qA1j7JP","##,
                r##""service":[{"id":"#inline-0","serviceEndpoint":"didcomm:transport/queue","type":"did-communication","##,
                r##""priority":0,"recipientKeys":["#key-1"],"routingKeys":[]}],"authentication":[{"id":"#key-1","##,
                r##""type":"Ed25519VerificationKey2018","controller":"#id","publicKeyBase58":"##,
                r##""GmaDrppBC7P5ARKV8g3djiwP89vz1jLK23V2GBjuAEGB"}],"keyAgreement":[{"id":"#key-2","##,
                r##""type":"X25519KeyAgreementKey2019","controller":"#id","publicKeyBase58":"##,
                r##""8x5EHk37xGWhH6inCRfhu8sBN4trHLncvex232qbhoLF"}]}"##
            )
        );
    }
}
