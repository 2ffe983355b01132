//! The results layer: the results file a run writes and every reporter reads ([`model`],
//! re-exported here), its JSON Schema, and scrubbing secrets out of what is written.
//!
//! It may import only the plan layer.

pub mod model;
pub mod redact;
pub mod schema;

pub use model::*;
