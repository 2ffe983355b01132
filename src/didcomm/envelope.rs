//! The DIDComm v1 "pack" envelope (JWM/1.0), byte-compatible with ACA-Py 1.7 and Credo.
//!
//! A random 32-byte CEK encrypts the payload with ChaCha20-Poly1305 IETF (12-byte iv) although
//! the header says `xchacha20poly1305_ietf` — that is what ACA-Py, Credo and aries-vcx all do.
//! The CEK is boxed per recipient: `crypto_box` from the sender's X25519 key (Authcrypt, with
//! the sender verkey sealed alongside) or `crypto_box_seal` (Anoncrypt). The recipients live
//! inside `protected`, and the AAD is the ASCII of the base64url `protected` string.

use std::borrow::Cow;
use std::collections::HashMap;

use askar_crypto::alg::chacha20::{C20P, Chacha20Key};
use askar_crypto::encrypt::KeyAeadInPlace;
use askar_crypto::encrypt::crypto_box::{
    CBOX_NONCE_LENGTH, crypto_box, crypto_box_open, crypto_box_seal, crypto_box_seal_open,
};
use askar_crypto::random::fill_random;
use askar_crypto::repr::KeySecretBytes;
use serde::{Deserialize, Serialize};

use super::b64;
use super::error::DidcommError;
use super::keys::{KeyPair, PublicKey};

/// The `enc` ACA-Py writes (a misnomer: the cipher is the IETF ChaCha20-Poly1305).
pub const ENC: &str = "xchacha20poly1305_ietf";
/// The `typ` of a DIDComm v1 envelope.
pub const TYP: &str = "JWM/1.0";
/// Bytes in the content-encryption key.
const CEK_LENGTH: usize = 32;
/// Bytes in the ChaCha20-Poly1305 IETF nonce.
const IV_LENGTH: usize = 12;
/// Bytes in the Poly1305 tag.
const TAG_LENGTH: usize = 16;

/// Whether the sender is revealed (and authenticated) to the recipients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackAlg {
    /// Sender-authenticated: the recipient learns and can trust the sender's verkey.
    Authcrypt,
    /// Anonymous: used for forwards to mediators.
    Anoncrypt,
}

impl PackAlg {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Authcrypt => "Authcrypt",
            Self::Anoncrypt => "Anoncrypt",
        }
    }
}

/// Packs `plaintext` for `recipients`, authenticated as `sender`. Returns the envelope JSON.
pub fn pack_authcrypt(
    plaintext: &[u8],
    recipients: &[PublicKey],
    sender: &KeyPair,
) -> Result<String, DidcommError> {
    pack(plaintext, recipients, Some(sender))
}

/// Packs `plaintext` for `recipients` without revealing a sender. Returns the envelope JSON.
pub fn pack_anoncrypt(plaintext: &[u8], recipients: &[PublicKey]) -> Result<String, DidcommError> {
    pack(plaintext, recipients, None)
}

#[derive(Serialize)]
struct ProtectedOut<'a> {
    enc: &'static str,
    typ: &'static str,
    alg: &'static str,
    recipients: Vec<RecipientOut<'a>>,
}

#[derive(Serialize)]
struct RecipientOut<'a> {
    encrypted_key: String,
    header: HeaderOut<'a>,
}

#[derive(Serialize)]
struct HeaderOut<'a> {
    kid: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sender: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iv: Option<String>,
}

fn pack(
    plaintext: &[u8],
    recipients: &[PublicKey],
    sender: Option<&KeyPair>,
) -> Result<String, DidcommError> {
    if recipients.is_empty() {
        return Err(DidcommError::Encrypt("no recipients"));
    }
    let mut cek = [0u8; CEK_LENGTH];
    fill_random(&mut cek);
    let mut recips = Vec::with_capacity(recipients.len());
    for recip in recipients {
        recips.push(match sender {
            Some(sender) => authcrypt_recipient(recip, sender, &cek)?,
            None => RecipientOut {
                encrypted_key: b64::url_encode(
                    &crypto_box_seal(recip.x25519(), &cek)
                        .map_err(|_| DidcommError::Encrypt("crypto_box_seal of the CEK"))?,
                ),
                header: HeaderOut {
                    kid: recip.verkey(),
                    sender: None,
                    iv: None,
                },
            },
        });
    }
    let alg = match sender {
        Some(_) => PackAlg::Authcrypt,
        None => PackAlg::Anoncrypt,
    };
    let protected = ProtectedOut {
        enc: ENC,
        typ: TYP,
        alg: alg.as_str(),
        recipients: recips,
    };
    let protected_json = serde_json::to_vec(&protected)
        .map_err(|_| DidcommError::Encrypt("serializing the protected header"))?;
    let protected_b64 = b64::url_encode(&protected_json);

    let key =
        Chacha20Key::<C20P>::from_secret_bytes(&cek).map_err(|_| DidcommError::Encrypt("CEK"))?;
    let mut iv = [0u8; IV_LENGTH];
    fill_random(&mut iv);
    let mut buf = Vec::with_capacity(plaintext.len() + TAG_LENGTH);
    buf.extend_from_slice(plaintext);
    let ct_len = key
        .encrypt_in_place(&mut buf, &iv, protected_b64.as_bytes())
        .map_err(|_| DidcommError::Encrypt("ChaCha20-Poly1305"))?;
    let (ciphertext, tag) = buf.split_at(ct_len);

    // every value is base64url, so the JSON needs no escaping and can be written directly
    let mut out = String::with_capacity(protected_b64.len() + (buf.len() * 4).div_ceil(3) + 64);
    out.push_str("{\"protected\":\"");
    out.push_str(&protected_b64);
    out.push_str("\",\"iv\":\"");
    b64::url_encode_into(&iv, &mut out);
    out.push_str("\",\"ciphertext\":\"");
    b64::url_encode_into(ciphertext, &mut out);
    out.push_str("\",\"tag\":\"");
    b64::url_encode_into(tag, &mut out);
    out.push_str("\"}");
    Ok(out)
}

fn authcrypt_recipient<'a>(
    recip: &'a PublicKey,
    sender: &KeyPair,
    cek: &[u8; CEK_LENGTH],
) -> Result<RecipientOut<'a>, DidcommError> {
    let mut nonce = [0u8; CBOX_NONCE_LENGTH];
    fill_random(&mut nonce);
    let mut enc_cek = Vec::with_capacity(CEK_LENGTH + 16);
    enc_cek.extend_from_slice(cek);
    crypto_box(recip.x25519(), sender.x25519(), &mut enc_cek, &nonce)
        .map_err(|_| DidcommError::Encrypt("crypto_box of the CEK"))?;
    let enc_sender = crypto_box_seal(recip.x25519(), sender.verkey().as_bytes())
        .map_err(|_| DidcommError::Encrypt("crypto_box_seal of the sender"))?;
    Ok(RecipientOut {
        encrypted_key: b64::url_encode(&enc_cek),
        header: HeaderOut {
            kid: recip.verkey(),
            sender: Some(b64::url_encode(&enc_sender)),
            iv: Some(b64::url_encode(&nonce)),
        },
    })
}

/// The result of opening an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// The decrypted payload (a plaintext DIDComm message, JSON).
    pub plaintext: Vec<u8>,
    /// Our verkey the envelope was opened with.
    pub recipient_verkey: String,
    /// The authenticated sender's verkey; `None` for Anoncrypt.
    pub sender_verkey: Option<String>,
}

impl Unpacked {
    /// Parses the plaintext as JSON into `T`.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, DidcommError> {
        serde_json::from_slice(&self.plaintext).map_err(|e| DidcommError::json("plaintext", e))
    }
}

/// Where `unpack` looks up the secret for a recipient `kid` (a base58 verkey).
pub trait RecipientKeys {
    /// Our key pair for `verkey`, if we hold it.
    fn find(&self, verkey: &str) -> Option<&KeyPair>;
}

impl RecipientKeys for KeyPair {
    fn find(&self, verkey: &str) -> Option<&KeyPair> {
        (self.verkey() == verkey).then_some(self)
    }
}

impl RecipientKeys for [KeyPair] {
    fn find(&self, verkey: &str) -> Option<&KeyPair> {
        self.iter().find(|k| k.verkey() == verkey)
    }
}

impl RecipientKeys for Vec<KeyPair> {
    fn find(&self, verkey: &str) -> Option<&KeyPair> {
        self.as_slice().find(verkey)
    }
}

impl<S: std::hash::BuildHasher> RecipientKeys for HashMap<String, KeyPair, S> {
    fn find(&self, verkey: &str) -> Option<&KeyPair> {
        self.get(verkey)
    }
}

#[derive(Deserialize)]
struct EnvelopeIn<'a> {
    #[serde(borrow)]
    protected: Cow<'a, str>,
    #[serde(borrow)]
    iv: Cow<'a, str>,
    #[serde(borrow)]
    ciphertext: Cow<'a, str>,
    #[serde(borrow)]
    tag: Cow<'a, str>,
}

#[derive(Deserialize)]
struct ProtectedIn {
    alg: String,
    recipients: Vec<RecipientIn>,
}

#[derive(Deserialize)]
struct RecipientIn {
    encrypted_key: String,
    header: HeaderIn,
}

#[derive(Deserialize)]
struct HeaderIn {
    kid: String,
    sender: Option<String>,
    iv: Option<String>,
}

fn parse_protected(protected_b64: &str) -> Result<ProtectedIn, DidcommError> {
    let json = b64::url_decode("protected", protected_b64)?;
    serde_json::from_slice(&json).map_err(|e| DidcommError::json("protected header", e))
}

/// Opens an envelope with the first recipient key we hold.
pub fn unpack<K: RecipientKeys + ?Sized>(
    envelope: &[u8],
    keys: &K,
) -> Result<Unpacked, DidcommError> {
    let env: EnvelopeIn<'_> =
        serde_json::from_slice(envelope).map_err(|e| DidcommError::json("envelope", e))?;
    let protected = parse_protected(&env.protected)?;
    let alg = match protected.alg.as_str() {
        "Authcrypt" => PackAlg::Authcrypt,
        "Anoncrypt" => PackAlg::Anoncrypt,
        other => return Err(DidcommError::UnsupportedAlg(other.to_owned())),
    };
    let Some((recip, ours)) = protected
        .recipients
        .iter()
        .find_map(|r| keys.find(&r.header.kid).map(|k| (r, k)))
    else {
        return Err(DidcommError::NoRecipientKey {
            kids: protected
                .recipients
                .into_iter()
                .map(|r| r.header.kid)
                .collect(),
        });
    };
    let enc_cek = b64::url_decode("encrypted_key", &recip.encrypted_key)?;
    let (cek, sender_verkey) = match alg {
        PackAlg::Authcrypt => {
            let (sender_b64, nonce_b64) = match (&recip.header.sender, &recip.header.iv) {
                (Some(s), Some(n)) => (s, n),
                _ => {
                    return Err(DidcommError::Malformed(
                        "Authcrypt recipient without sender or iv".into(),
                    ));
                }
            };
            let enc_sender = b64::url_decode("sender", sender_b64)?;
            let sender_vk = crypto_box_seal_open(ours.x25519(), &enc_sender)
                .map_err(|_| DidcommError::Decrypt("sealed sender key"))?;
            let sender_vk = std::str::from_utf8(sender_vk.as_ref())
                .map_err(|_| DidcommError::Malformed("sender key is not UTF-8".into()))?
                .to_owned();
            let sender = PublicKey::from_verkey(&sender_vk)?;
            let nonce = b64::url_decode("recipient iv", nonce_b64)?;
            if nonce.len() != CBOX_NONCE_LENGTH {
                return Err(DidcommError::Malformed(format!(
                    "recipient iv is {} bytes, expected {CBOX_NONCE_LENGTH}",
                    nonce.len()
                )));
            }
            let mut cek = enc_cek;
            crypto_box_open(ours.x25519(), sender.x25519(), &mut cek, &nonce)
                .map_err(|_| DidcommError::Decrypt("boxed CEK"))?;
            (cek, Some(sender_vk))
        }
        PackAlg::Anoncrypt => {
            let cek = crypto_box_seal_open(ours.x25519(), &enc_cek)
                .map_err(|_| DidcommError::Decrypt("sealed CEK"))?;
            (cek.as_ref().to_vec(), None)
        }
    };
    let key = Chacha20Key::<C20P>::from_secret_bytes(&cek)
        .map_err(|_| DidcommError::Malformed(format!("CEK is {} bytes, expected 32", cek.len())))?;
    let iv = b64::url_decode("iv", &env.iv)?;
    if iv.len() != IV_LENGTH {
        return Err(DidcommError::Malformed(format!(
            "iv is {} bytes, expected {IV_LENGTH}",
            iv.len()
        )));
    }
    let mut buf = Vec::with_capacity(env.ciphertext.len() * 3 / 4 + TAG_LENGTH + 3);
    b64::url_decode_into("ciphertext", &env.ciphertext, &mut buf)?;
    let ct_len = buf.len();
    b64::url_decode_into("tag", &env.tag, &mut buf)?;
    if buf.len() - ct_len != TAG_LENGTH {
        return Err(DidcommError::Malformed(format!(
            "tag is {} bytes, expected {TAG_LENGTH}",
            buf.len() - ct_len
        )));
    }
    key.decrypt_in_place(&mut buf, &iv, env.protected.as_bytes())
        .map_err(|_| DidcommError::Decrypt("payload (ChaCha20-Poly1305 tag mismatch)"))?;
    Ok(Unpacked {
        plaintext: buf,
        recipient_verkey: ours.verkey().to_owned(),
        sender_verkey,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> KeyPair {
        KeyPair::from_seed(&[n; 32])
    }

    #[test]
    fn authcrypt_round_trip() {
        let (alice, bob) = (key(1), key(2));
        let env = pack_authcrypt(b"{\"a\":1}", &[bob.public_key()], &alice).unwrap();
        let out = unpack(env.as_bytes(), &bob).unwrap();
        assert_eq!(out.plaintext, b"{\"a\":1}");
        assert_eq!(out.sender_verkey.as_deref(), Some(alice.verkey()));
        assert_eq!(out.recipient_verkey, bob.verkey());
    }

    #[test]
    fn anoncrypt_multi_recipient() {
        let keys = vec![key(3), key(4), key(5)];
        let pubs: Vec<_> = keys.iter().map(KeyPair::public_key).collect();
        let env = pack_anoncrypt(b"x", &pubs).unwrap();
        for k in &keys {
            let out = unpack(env.as_bytes(), k).unwrap();
            assert_eq!(out.plaintext, b"x");
            assert_eq!(out.sender_verkey, None);
            assert_eq!(out.recipient_verkey, k.verkey());
        }
        assert!(matches!(
            unpack(env.as_bytes(), &key(6)),
            Err(DidcommError::NoRecipientKey { kids }) if kids.len() == 3
        ));
    }

    #[test]
    fn header_shape() {
        let env = pack_authcrypt(b"{}", &[key(2).public_key()], &key(1)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&env).unwrap();
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys.len(), 4);
        let p: serde_json::Value = serde_json::from_slice(
            &b64::url_decode("p", v["protected"].as_str().unwrap()).unwrap(),
        )
        .unwrap();
        assert_eq!(p["enc"], ENC);
        assert_eq!(p["typ"], TYP);
        assert_eq!(p["alg"], "Authcrypt");
        let r = &p["recipients"][0];
        assert_eq!(
            b64::url_decode("k", r["encrypted_key"].as_str().unwrap())
                .unwrap()
                .len(),
            48
        );
        assert_eq!(
            b64::url_decode("s", r["header"]["sender"].as_str().unwrap())
                .unwrap()
                .len(),
            92
        );
        assert_eq!(
            b64::url_decode("n", r["header"]["iv"].as_str().unwrap())
                .unwrap()
                .len(),
            24
        );
        assert_eq!(
            b64::url_decode("i", v["iv"].as_str().unwrap())
                .unwrap()
                .len(),
            12
        );
    }

    #[test]
    fn tampering_is_detected() {
        let bob = key(2);
        let env = pack_authcrypt(b"hello world", &[bob.public_key()], &key(1)).unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&env).unwrap();
        v["tag"] = "AAAAAAAAAAAAAAAAAAAAAA".into();
        let bad = serde_json::to_vec(&v).unwrap();
        assert!(matches!(unpack(&bad, &bob), Err(DidcommError::Decrypt(_))));
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        let bob = key(2);
        let good = pack_authcrypt(b"hi", &[bob.public_key()], &key(1)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&good).unwrap();
        let mut cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"not json".to_vec(),
            b"[]".to_vec(),
            b"{}".to_vec(),
            b"{\"protected\":\"!!\",\"iv\":\"\",\"ciphertext\":\"\",\"tag\":\"\"}".to_vec(),
        ];
        for (field, value) in [
            ("iv", "AAAA"),
            ("iv", "!"),
            ("tag", "AAAA"),
            ("ciphertext", "%%"),
            ("protected", "e30"),                                  // {}
            ("protected", "eyJhbGciOiJYIiwicmVjaXBpZW50cyI6W119"), // alg X
        ] {
            let mut w = v.clone();
            w[field] = value.into();
            cases.push(serde_json::to_vec(&w).unwrap());
        }
        // truncated envelope
        cases.push(good.as_bytes()[..good.len() / 2].to_vec());
        for c in cases {
            assert!(unpack(&c, &bob).is_err(), "{}", String::from_utf8_lossy(&c));
        }
        // short encrypted_key / sender inside an otherwise valid protected header
        for (k, val) in [
            ("encrypted_key", "AAAA"),
            ("sender", "AAAA"),
            ("iv", "AAAA"),
        ] {
            let mut p: serde_json::Value = serde_json::from_slice(
                &b64::url_decode("p", v["protected"].as_str().unwrap()).unwrap(),
            )
            .unwrap();
            if k == "encrypted_key" {
                p["recipients"][0][k] = val.into();
            } else {
                p["recipients"][0]["header"][k] = val.into();
            }
            let mut w = v.clone();
            w["protected"] = b64::url_encode(&serde_json::to_vec(&p).unwrap()).into();
            assert!(
                unpack(&serde_json::to_vec(&w).unwrap(), &bob).is_err(),
                "{k}"
            );
        }
    }

    #[test]
    fn no_recipients_is_an_error() {
        assert!(pack_anoncrypt(b"x", &[]).is_err());
    }
}
