//! Tools beside the run: `explain` (what a plan will do, without running it) and the
//! trace sink (a local receiver for the agents' traces).
//!
//! They may import the plan, results and measure layers, never the engine or the reporters.

pub(crate) mod explain;
pub(crate) mod trace_sink;
