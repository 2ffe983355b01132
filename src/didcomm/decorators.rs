//! The DIDComm v1 decorators an edge agent uses: `~thread`, `~transport` and `~attach`-style
//! attachments (the `did_rotate~attach` of a DID Exchange response).

use serde::{Deserialize, Serialize};

/// `~thread`: the thread a message belongs to and its parent (the invitation for DID Exchange).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thread {
    /// Thread id: the `@id` of the thread's first message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thid: Option<String>,
    /// Parent thread id (DID Exchange: the invitation `@id`; required by ACA-Py).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pthid: Option<String>,
}

impl Thread {
    /// A thread reference to `thid`.
    pub fn reply_to(thid: impl Into<String>) -> Self {
        Self {
            thid: Some(thid.into()),
            pthid: None,
        }
    }
}

/// `~transport`: how the receiver may answer on the same connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transport {
    /// `all`, `thread` or `none`. ACA-Py re-sets a socket's mode on every inbound message, so
    /// everything an agent sends on its pickup socket must carry `all`.
    pub return_route: String,
}

impl Transport {
    /// `{"return_route":"all"}`.
    pub fn all() -> Self {
        Self {
            return_route: "all".into(),
        }
    }
}

/// An attachment (`~attach` item), e.g. `did_rotate~attach`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    /// Attachment id.
    #[serde(rename = "@id", default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// MIME type (`text/string` for a rotated DID).
    #[serde(rename = "mime-type", default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// The content.
    pub data: AttachmentData,
}

/// The content of an attachment, optionally signed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AttachmentData {
    /// Base64 content. ACA-Py writes standard base64 with padding; accept either alphabet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base64: Option<String>,
    /// Inline JSON content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<serde_json::Value>,
    /// Detached JWS over the base64 content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jws: Option<AttachmentJws>,
}

/// A detached, single-signature JWS as ACA-Py attaches it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentJws {
    /// Unprotected header (`kid` = the signer's did:key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<JwsHeader>,
    /// Base64url protected header.
    pub protected: String,
    /// Base64url EdDSA signature.
    pub signature: String,
}

/// The unprotected JWS header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwsHeader {
    /// The signer's did:key.
    pub kid: String,
}
