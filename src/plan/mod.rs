//! The plan layer: what a user wrote, and everything that can be known about it before a run.
//! It owns the plan model ([`model`], re-exported here), reading YAML with positions
//! ([`source`]), schema checks and located diagnostics, durations, env variables, templates
//! and the scope they render against, captures, the compiler, resolution of templated
//! settings once variables are known, and the load shapes as pure functions of time.
//!
//! It imports only `didcomm` (the `invitation` filter reads invitation URLs with it) and does
//! no network I/O.

pub mod bounds;
pub mod capture;
pub mod compile;
pub mod diagnostic;
pub mod duration;
pub mod env;
pub mod model;
mod plain;
pub mod resolve;
pub mod schema;
pub mod scope;
pub mod shape;
pub mod source;
pub mod template;

pub use model::*;
