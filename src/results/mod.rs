//! The results layer: the results file a run writes and every reporter reads (`model.rs`,
//! re-exported here), its JSON Schema, and scrubbing secrets out of what is written.
//!
//! It may import only the plan layer.

mod model;
pub(crate) mod redact;
pub(crate) mod schema;

pub use model::*;
