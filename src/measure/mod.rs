//! The measure layer: exact latency histograms, the aggregator that turns the engine's
//! events into per-step statistics, timelines and load levels, threshold verdicts on them,
//! and merging the results of shards.
//!
//! It may import the plan and results layers, never the engine or the reporters.

pub(crate) mod histogram;
pub(crate) mod levels;
pub(crate) mod merge;
// The aggregator is part of the library's surface: integration tests drive it with events.
pub mod metrics;
pub(crate) mod prometheus;
pub(crate) mod tally;
pub(crate) mod thresholds;
pub(crate) mod watched;
