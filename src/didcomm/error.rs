//! The one error type of the DIDComm folder: every malformed input ends here, never in a panic.

use thiserror::Error;

/// Anything that can go wrong while packing, unpacking or parsing DIDComm data.
#[derive(Debug, Error)]
pub enum DidcommError {
    /// A base64 (url-safe or standard) field did not decode.
    #[error("invalid base64 in {field}: {source}")]
    Base64 {
        /// Which field held the bad value.
        field: &'static str,
        /// The decoder's complaint.
        source: base64::DecodeError,
    },
    /// A base58 value did not decode.
    #[error("invalid base58 in {field}: {source}")]
    Base58 {
        /// Which field held the bad value.
        field: &'static str,
        /// The decoder's complaint.
        source: bs58::decode::Error,
    },
    /// JSON did not parse or did not have the expected shape.
    #[error("invalid JSON in {what}: {source}")]
    Json {
        /// What was being parsed.
        what: &'static str,
        /// serde_json's message, with line and column.
        source: serde_json::Error,
    },
    /// A key had the wrong length or was not a valid curve point.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// The envelope's `alg` is neither `Authcrypt` nor `Anoncrypt`.
    #[error("unsupported pack algorithm {0:?} (expected Authcrypt or Anoncrypt)")]
    UnsupportedAlg(String),
    /// None of the envelope's recipient `kid`s is a key we hold.
    #[error("no recipient key of ours in envelope (kids: {kids:?})")]
    NoRecipientKey {
        /// The recipient kids the envelope named.
        kids: Vec<String>,
    },
    /// The envelope is structurally wrong (missing or inconsistent fields, bad lengths).
    #[error("malformed envelope: {0}")]
    Malformed(String),
    /// An AEAD or crypto_box tag did not verify: wrong key, or tampered data.
    #[error("decryption failed: {0}")]
    Decrypt(&'static str),
    /// Encryption failed (only on internal misuse, e.g. a key without its secret).
    #[error("encryption failed: {0}")]
    Encrypt(&'static str),
    /// A DID (or DID URL) could not be parsed or resolved.
    #[error("invalid DID {did:?}: {reason}")]
    InvalidDid {
        /// The offending DID, as given.
        did: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A DID document lacks what we need (keys, services) or has it in a form we do not read.
    #[error("DID document: {0}")]
    DidDoc(String),
    /// A JWS (e.g. `did_rotate~attach`) is malformed or its signature does not verify.
    #[error("JWS: {0}")]
    Jws(String),
    /// An out-of-band invitation body is malformed.
    #[error("invitation: {0}")]
    Invitation(String),
    /// A string is not an invitation URL, or its parameter does not decode to a JSON object.
    #[error("not an invitation URL: {0}")]
    InvitationUrl(String),
}

impl DidcommError {
    /// Shorthand for a JSON error with context.
    pub(crate) fn json(what: &'static str, source: serde_json::Error) -> Self {
        Self::Json { what, source }
    }

    /// Shorthand for an invalid-DID error.
    pub(crate) fn did(did: &str, reason: impl Into<String>) -> Self {
        Self::InvalidDid {
            did: did.to_owned(),
            reason: reason.into(),
        }
    }
}
