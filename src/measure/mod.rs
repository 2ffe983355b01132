//! The measure layer: exact latency histograms, the aggregator that turns the engine's
//! events into per-step statistics, timelines and load levels, threshold verdicts on them,
//! and merging the results of shards.
//!
//! It may import the plan and results layers, never the engine or the reporters.

pub mod histogram;
pub mod levels;
pub mod merge;
pub mod metrics;
pub mod prometheus;
pub mod thresholds;
pub mod watched;
