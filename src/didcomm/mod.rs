//! DIDComm v1 as ACA-Py 1.7 and Credo speak it: wire formats, keys and crypto.
//!
//! Everything here is pure — no network, no tokio, no file I/O — so it can be unit-tested and
//! benchmarked alone. The folder imports nothing from the rest of the crate (no `crate::` path
//! outside `crate::didcomm`); the transport and the agent state machines build on top of it.

mod b64;
pub mod decorators;
pub mod did_doc;
pub mod did_key;
pub mod did_peer_1;
pub mod did_peer_2;
pub mod did_peer_4;
pub mod envelope;
mod error;
pub mod forward;
pub(crate) mod incoming;
pub mod jws;
pub mod keys;
pub mod message_type;
pub mod messages;
pub(crate) mod oob;
pub mod pickup;

pub use error::DidcommError;
