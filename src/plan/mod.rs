//! The plan layer: what a user wrote, and everything that can be known about it before a run.
//! It owns the plan model (`model.rs`, re-exported here), reading YAML with positions
//! ([`source`]), schema checks and located diagnostics, durations, env variables, templates
//! and the scope they render against, captures, the compiler, resolution of templated
//! settings once variables are known, and the load shapes as pure functions of time.
//!
//! It imports only `didcomm` (the `invitation` filter reads invitation URLs with it) and does
//! no network I/O. The modules tests and the binary use are public; the rest is `pub(crate)`.

pub(crate) mod bounds;
pub(crate) mod capture;
pub mod compile;
pub(crate) mod diagnostic;
pub(crate) mod duration;
pub mod edge;
pub(crate) mod env;
mod model;
mod plain;
pub(crate) mod resolve;
pub(crate) mod schema;
pub(crate) mod scope;
pub mod shape;
pub mod source;
pub(crate) mod template;

pub use model::*;
