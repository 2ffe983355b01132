//! Loading a plan: YAML → JSON with spans → schema → typed model → compiled steps.
//! Every template, condition and JSONPath is compiled here, once; the runner only renders.
//!
//! `load` runs the pipeline; `cx` compiles the plan's settings and load shape, `steps`
//! its steps; `names` lists what a plan defines.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::plan::capture::Capture;
use crate::plan::diagnostic::Diagnostic;
use crate::plan::source::SpanIndex;
use crate::plan::template::{self, Expr, JsonTemplate, Templates, Text};
use crate::plan::{ErrorAction, Method, Phase, Plan};

mod cx;
mod didcomm;
mod load;
mod names;
mod steps;

pub use load::{load_file, load_str};
pub use names::defined_names;

/// A plan that passed every check, ready to explain or run.
#[derive(Debug)]
pub struct CompiledPlan {
    pub file: String,
    pub source: String,
    pub spans: SpanIndex,
    pub plan: Plan,
    pub templates: Arc<Templates>,
    pub target: CompiledTarget,
    pub vars: Vec<(String, JsonTemplate)>,
    pub setup: Vec<CompiledStep>,
    pub tasks: Vec<TaskList>,
    pub teardown: Vec<CompiledStep>,
    pub think: Option<Think>,
    /// Durations written as templates, in the order [`Dur::Templated`] counts them;
    /// `resolve` renders and checks each once the variables are known.
    pub templated: Vec<TemplatedDuration>,
    /// The duration limits of `thresholds` (`p50`, `p95`, `p99`, `max`).
    pub threshold_limits: Vec<ThresholdLimit>,
    /// Each `watch` entry's sampling interval, in order.
    pub watch_intervals: Vec<Dur>,
    /// Load-shape parameters that are templates, compiled for resolution once env is known.
    pub load_params: BTreeMap<String, Expr>,
    pub load_texts: BTreeMap<String, Text>,
    /// Templated run settings (`events`, `watch`, `target.ca_file`) by JSON pointer.
    pub settings: BTreeMap<String, Text>,
}

impl CompiledPlan {
    /// Renders the run setting at `pointer` (compiled at load) with a plan-level scope.
    pub fn setting(&self, pointer: &str, scope: &minijinja::Value) -> Result<String, String> {
        let text = self
            .settings
            .get(pointer)
            .ok_or_else(|| format!("no setting at {pointer}"))?;
        self.templates.render(text, scope).map_err(|e| {
            let at = self.spans.value(pointer);
            format!(
                "{}:{}:{}: {}",
                self.file,
                at.line,
                at.column,
                template::describe(&e)
            )
        })
    }
}

/// A duration the plan sets: a literal, known at load, or a template, known once the
/// variables are. The engine reads both through the resolved plan's durations
/// (`plan::resolve::Durations`), never as a placeholder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dur {
    Literal(Duration),
    /// The index of the template in [`CompiledPlan::templated`].
    Templated(usize),
}

/// A templated duration, compiled; rendered and checked like a literal by `resolve`.
#[derive(Debug)]
pub struct TemplatedDuration {
    /// Where the plan writes it, for located errors.
    pub pointer: String,
    /// What the plan wrote, for messages.
    pub source: String,
    pub text: Text,
    /// Zero is refused (timeouts, intervals).
    pub above_zero: bool,
}

/// `user.think`: `1s`, a range `500ms..2s`, or a template rendering to either.
#[derive(Debug, Clone)]
pub enum Think {
    Literal(Duration, Duration),
    Templated(Text),
}

/// Parses a think time: one duration, or a range `lo..hi` that does not go backwards.
pub fn parse_think(text: &str) -> Result<(Duration, Duration), String> {
    let parse = |t: &str| crate::plan::duration::parse(t.trim()).map_err(|e| e.to_string());
    match text.split_once("..") {
        Some((lo, hi)) => {
            let (lo, hi) = (parse(lo)?, parse(hi)?);
            if lo > hi {
                return Err(format!("think range `{text}` goes backwards"));
            }
            Ok((lo, hi))
        }
        None => parse(text).map(|d| (d, d)),
    }
}

/// One duration limit of a threshold: `thresholds[index].{key}`.
#[derive(Debug, Clone, Copy)]
pub struct ThresholdLimit {
    pub index: usize,
    /// `p50`, `p95`, `p99` or `max`.
    pub key: &'static str,
    pub limit: Dur,
}

/// Target settings with templated parts compiled.
#[derive(Debug)]
pub struct CompiledTarget {
    pub base_url: Text,
    pub headers: Vec<(String, Text)>,
    pub timeout: Dur,
    pub connect_timeout: Dur,
    pub insecure: bool,
    pub max_connections: Option<usize>,
}

/// One of the task lists a user picks from each iteration (one list when sequential).
#[derive(Debug)]
pub struct TaskList {
    pub name: String,
    pub weight: u32,
    pub steps: Vec<CompiledStep>,
}

/// A compiled step.
#[derive(Debug)]
pub struct CompiledStep {
    /// Name in the statistics.
    pub name: Arc<str>,
    pub phase: Phase,
    pub line: usize,
    pub when: Option<Expr>,
    pub kind: StepKind,
    pub retries: u32,
    pub retry_delay: Dur,
    pub on_error: ErrorAction,
}

#[derive(Debug)]
pub enum StepKind {
    Request(Box<CompiledRequest>),
    Sleep(Dur),
    Set(Vec<(String, JsonTemplate)>),
    Offer {
        pool: String,
        key: Option<Text>,
        value: JsonTemplate,
    },
    Take {
        pool: String,
        key: Option<Text>,
        into: String,
        timeout: Dur,
    },
    WaitEvent(Box<CompiledWait>),
    Didcomm(Box<CompiledDidcomm>),
}

/// How a `connect` step's agent behaves (`drain`, `poll`, and the settings chosen by name).
#[derive(Debug)]
pub struct ConnectBehaviour {
    pub drain: Option<JsonTemplate>,
    /// `pickup`, `transport` and `did` (see [`crate::plan::edge::Choice`]), each with its
    /// place in the plan: a literal is checked when the plan compiles, a template by
    /// `resolve` before the run; each user renders them again.
    pub chosen: [(crate::plan::edge::Choice, Option<(String, Text)>); 3],
    pub poll: Dur,
}

impl ConnectBehaviour {
    /// The setting `choice`, when the plan wrote it.
    pub fn chosen(&self, choice: crate::plan::edge::Choice) -> Option<&Text> {
        self.chosen
            .iter()
            .find(|(c, _)| *c == choice)
            .and_then(|(_, t)| t.as_ref().map(|(_, t)| t))
    }
}

/// A compiled edge-agent action (`didcomm:`); timeouts rendered by `resolve` when templated.
#[derive(Debug)]
pub enum CompiledDidcomm {
    Connect {
        invitation: Text,
        websocket: Text,
        label: Option<Text>,
        behaviour: Box<ConnectBehaviour>,
        timeout: Dur,
    },
    RequestMediation {
        timeout: Dur,
    },
    Invite {
        into: String,
        timeout: Dur,
    },
    AcceptInvitation {
        invitation: JsonTemplate,
        timeout: Dur,
    },
    AwaitConnection {
        timeout: Dur,
    },
    Message {
        content: Option<Text>,
    },
    Delivered {
        timeout: Dur,
    },
    Ping {
        to: crate::plan::PingTo,
        timeout: Dur,
    },
    Disconnect {
        timeout: Dur,
    },
}

impl CompiledDidcomm {
    /// The action's name as the plan spells it.
    pub fn action(&self) -> &'static str {
        match self {
            CompiledDidcomm::Connect { .. } => "connect",
            CompiledDidcomm::RequestMediation { .. } => "request_mediation",
            CompiledDidcomm::Invite { .. } => "invite",
            CompiledDidcomm::AcceptInvitation { .. } => "accept_invitation",
            CompiledDidcomm::AwaitConnection { .. } => "await_connection",
            CompiledDidcomm::Message { .. } => "message",
            CompiledDidcomm::Delivered { .. } => "delivered",
            CompiledDidcomm::Ping { .. } => "ping",
            CompiledDidcomm::Disconnect { .. } => "disconnect",
        }
    }
}

/// A compiled `wait_event`.
#[derive(Debug)]
pub struct CompiledWait {
    pub topic: String,
    pub wallet: Text,
    pub until: Option<Expr>,
    pub timeout: Dur,
    pub clock: Option<Arc<str>>,
    pub captures: Vec<Capture>,
}

#[derive(Debug)]
pub struct CompiledRequest {
    pub method: Method,
    pub path: Text,
    pub query: Vec<(String, Text)>,
    pub headers: Vec<(String, Text)>,
    pub bearer: Option<Text>,
    pub json: Option<JsonTemplate>,
    pub timeout: Option<Dur>,
    pub status: Option<Vec<u16>>,
    pub that: Vec<Expr>,
    pub captures: Vec<Capture>,
    pub poll: Option<CompiledPoll>,
}

impl CompiledRequest {
    /// True when the step looks at the response body (captures, conditions, polls).
    pub fn reads_body(&self) -> bool {
        !self.captures.is_empty() || self.poll.is_some() || !self.that.is_empty()
    }
}

#[derive(Debug)]
pub struct CompiledPoll {
    pub until: Expr,
    pub interval: Dur,
    pub timeout: Dur,
}

/// Why a file could not be loaded: its findings, and its text when it was readable.
#[derive(Debug)]
pub struct LoadFailure {
    pub diagnostics: Vec<Diagnostic>,
    pub source: Option<String>,
}

impl LoadFailure {
    /// Every finding rendered with its snippet.
    pub fn render(&self) -> String {
        self.diagnostics
            .iter()
            .map(|d| d.render(self.source.as_deref()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}
