//! The results file (`--out results.json`): what a run measured, described by
//! `schemas/results.schema.json`, with serialized histograms so shards merge exactly.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::plan::Phase;

/// Everything a run measured.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Results {
    /// Format version of this file.
    pub schema_version: u32,
    pub acaload_version: String,
    pub plan: PlanInfo,
    pub run: RunInfo,
    /// Per-step statistics, setup/tasks/teardown kept apart.
    pub stats: Vec<StepStats>,
    /// All requests together.
    pub total: Totals,
    /// Failures grouped by step and reason, with one example each.
    pub failures: Vec<FailureGroup>,
    /// One entry per second of the run.
    pub timeline: Vec<Second>,
    /// What happened to the virtual users.
    pub users: UserCounts,
    /// Gauges of the watched agents over time (`watch:` in the plan).
    #[serde(default)]
    pub agents: Vec<AgentGauges>,
    /// Agent events received (webhooks or websocket), when the plan has an event source.
    #[serde(default)]
    pub events: Option<EventCounts>,
    /// Per-step latency per second (by completion time), for charts over time.
    #[serde(default)]
    pub series: Vec<StepSecond>,
    /// The plan's thresholds as evaluated at the end of the run.
    #[serde(default)]
    pub thresholds: Vec<Verdict>,
    /// One entry per part of a closed-model shape (step, stage, or the whole constant run), in
    /// order: how the target coped at each load (samples by completion time).
    #[serde(default)]
    pub levels: Vec<LoadLevel>,
}

/// What the target did during one part of the shape: a step of the step shape, a stage (a
/// hold, or a ramp from `from_users`), or a whole constant run.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct LoadLevel {
    /// Position of the part in the shape (the same in every shard).
    #[serde(default)]
    pub index: usize,
    /// Users the shape asked for (all shards together; at its end, for a ramp).
    pub target_users: u64,
    /// A ramping stage: the users at its start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_users: Option<u64>,
    /// Users actually running at the level's end (all shards, in a merge): below
    /// `target_users` when users could not start (or keep running) as fast as asked.
    #[serde(default)]
    pub users: u64,
    /// Seconds since the start: when the shape asked for them, and when it changed again.
    pub from_secs: f64,
    pub to_secs: f64,
    /// HTTP requests completed in this period, all steps and phases.
    pub requests: u64,
    pub failures: u64,
    /// Of `failures`: request steps that failed without sending (see [`Totals::unsent`]).
    #[serde(default)]
    pub unsent: u64,
    pub per_second: f64,
    pub latency_ms: Latency,
    /// HDR histogram of `requests` (as in `stats`).
    pub histogram: String,
    /// Agent events waited for (`wait_event`): delivery latency; failures are lost events.
    pub events: u64,
    pub event_failures: u64,
    pub event_latency_ms: Latency,
    pub event_histogram: String,
    /// The watched agents during this level (`watch:`), from their gauge samples.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<LevelAgent>,
}

/// One watched agent during one load level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LevelAgent {
    pub name: String,
    /// The agent process's CPU use over the level, in % of one core (`watch.pid_file`):
    /// CPU seconds between the level's first and last sample over the time between them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_pct: Option<f64>,
    /// The most inbound sessions (ACA-Py `in_sessions`: open WebSocket or HTTP sessions)
    /// any sample of the level saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<u64>,
    /// The largest resident memory of the level's samples, MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_mb: Option<f64>,
}

/// One threshold's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Verdict {
    pub label: String,
    pub limit: String,
    pub measured: String,
    pub passed: bool,
}

/// The format version of results files.
pub const SCHEMA_VERSION: u32 = 1;

/// One step's samples completed in one second.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct StepSecond {
    pub t: u64,
    pub phase: Phase,
    pub kind: StatKind,
    pub name: String,
    pub count: u64,
    pub failures: u64,
    /// Milliseconds.
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

/// One watched agent's samples.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct AgentGauges {
    pub name: String,
    pub samples: Vec<GaugeSample>,
}

/// ACA-Py's `GET /status` conductor counters at one moment.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct GaugeSample {
    /// Seconds since the start of the run.
    pub t: f64,
    pub in_sessions: Option<u64>,
    pub out_encode: Option<u64>,
    pub out_deliver: Option<u64>,
    pub task_active: Option<u64>,
    pub task_pending: Option<u64>,
    pub task_done: Option<u64>,
    pub task_failed: Option<u64>,
    /// CPU seconds the agent's process has used since it started (`watch.pid_file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_secs: Option<f64>,
    /// The agent's resident memory in MiB (`watch.pid_file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_mb: Option<f64>,
    /// Messages waiting in the mediator's pickup queues, summed over the edge agents' last
    /// Pickup 2.0 `status` (the `pickup queue` gauge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued: Option<u64>,
    /// Why the sample could not be read.
    pub error: Option<String>,
}

/// Counts of agent events.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct EventCounts {
    pub received: u64,
    /// Redeliveries dropped (ACA-Py retries a webhook that was not answered 2xx).
    pub duplicates: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct PlanInfo {
    pub name: String,
    pub file: String,
    pub description: Option<String>,
    /// The resolved load shape, in words.
    pub shape: String,
    /// Resolved plan variables; secrets are `***`.
    pub env: BTreeMap<String, serde_json::Value>,
    /// The plan's thresholds as the run judged them: `report` and `merge` judge them again
    /// (merged shards on their merged histograms), so every path gives one verdict.
    #[serde(default)]
    pub thresholds: Vec<crate::plan::Threshold>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RunInfo {
    pub id: String,
    /// RFC 3339 start and end times.
    pub started_at: String,
    pub ended_at: String,
    pub duration_secs: f64,
    pub seed: u64,
    /// `completed`, `interrupted` (Ctrl-C/SIGTERM), `aborted` (a second signal) or
    /// `stopped` (an `abort: true` threshold failed; see `stopped_by`).
    pub outcome: Outcome,
    pub shard: Option<ShardInfo>,
    /// Why the run could not start (preflight, event source), when it could not.
    #[serde(default)]
    pub error: Option<String>,
    /// The `abort: true` threshold that stopped the run, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_by: Option<ThresholdStop>,
}

impl ThresholdStop {
    /// One line: when, at what load, which threshold.
    pub fn describe(&self) -> String {
        format!(
            "stopped at {:.0} s at the {}-user load level ({} running{}): threshold `{} {}` failed there, measured {}",
            self.at_secs,
            self.target_users,
            self.users,
            if self.shard { " in this shard" } else { "" },
            self.verdict.label,
            self.verdict.limit,
            self.verdict.measured
        )
    }
}

impl LoadLevel {
    /// Failed requests as a percentage of the level's attempts (requests, and request
    /// steps that failed without sending; 0 without any).
    pub fn failure_pct(&self) -> f64 {
        100.0 * self.failures as f64 / (self.requests + self.unsent).max(1) as f64
    }

    /// Agent events completed per second of the level.
    pub fn events_per_second(&self) -> f64 {
        self.events as f64 / (self.to_secs - self.from_secs).max(1e-9)
    }
}

/// A threshold that failed during the run and stopped it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ThresholdStop {
    pub verdict: Verdict,
    /// Seconds since the start of the run.
    pub at_secs: f64,
    /// Users running (in this shard, when `shard`) and the users the shape asked for (the
    /// whole run): the load level that failed.
    pub users: u64,
    pub target_users: u64,
    /// The run was one shard of several: each shard judges, and stops, on its own.
    #[serde(default)]
    pub shard: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Completed,
    Interrupted,
    Aborted,
    Stopped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ShardInfo {
    pub index: u32,
    pub count: u32,
}

/// What a statistic measures.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum StatKind {
    /// One HTTP request (each poll attempt counts).
    Http,
    /// Time until a polled condition held (time to state).
    Poll,
    /// Time waiting for another user's offer.
    Take,
    /// Time until an agent event arrived (from the `clock` step's send): delivery latency.
    Event,
    /// A whole iteration of the open model, from its scheduled start (coordinated
    /// omission corrected) or from when it really started (service time).
    Iteration,
    /// Time a request waited for a free connection (`target.max_connections`); only
    /// requests that had to wait are counted. Their `Http` latency starts after the wait.
    Queue,
}

/// Statistics of one step name.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct StepStats {
    pub phase: Phase,
    pub kind: StatKind,
    pub name: String,
    pub method: Option<String>,
    pub count: u64,
    /// Failed samples, and failures of the step without a sample (`unsent`).
    pub failures: u64,
    /// Of `failures`: the step failed before anything was sent or waited for (a template or
    /// `when` that could not be evaluated, no free connection within the timeout). Not in
    /// `count` nor in the latency.
    #[serde(default)]
    pub unsent: u64,
    /// Latency summary in milliseconds (µs precision), over all samples (failures included).
    pub latency_ms: Latency,
    pub per_second: f64,
    /// HDR histogram (µs, 3 significant digits), V2 deflate serialization, base64.
    pub histogram: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct Latency {
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct Totals {
    pub requests: u64,
    /// Failed requests, and request steps that failed without sending (`unsent`).
    pub failures: u64,
    /// Of `failures`: request steps that failed before a request was sent (a template or
    /// `when` that could not be evaluated, no free connection within the timeout). Not in
    /// `requests` nor in the latency; the error rate is `failures / (requests + unsent)`.
    #[serde(default)]
    pub unsent: u64,
    pub per_second: f64,
    pub latency_ms: Latency,
    pub histogram: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct FailureGroup {
    pub phase: Phase,
    pub name: String,
    pub reason: String,
    pub count: u64,
    /// One full example (response excerpts are cut short; secrets removed).
    pub example: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct Second {
    /// Seconds since the start.
    pub t: u64,
    /// Users the shape asked for.
    pub target_users: u64,
    /// Users running at the end of this second.
    pub users: u64,
    pub requests: u64,
    pub failures: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct UserCounts {
    pub started: u64,
    /// Users whose setup finished without error.
    pub setup_ok: u64,
    /// Users stopped by a failed step (`on_error: stop`).
    pub stopped_by_error: u64,
    pub iterations: u64,
}
