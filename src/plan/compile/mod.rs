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
    pub think: Option<(Duration, Duration)>,
    /// Load-shape parameters that are templates, compiled for resolution once env is known.
    pub load_params: BTreeMap<String, Expr>,
    pub load_texts: BTreeMap<String, Text>,
    /// Templated run settings (`events`, `watch`) by JSON pointer.
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

/// Target settings with templated parts compiled.
#[derive(Debug)]
pub struct CompiledTarget {
    pub base_url: Text,
    pub headers: Vec<(String, Text)>,
    pub timeout: Duration,
    pub connect_timeout: Duration,
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
    pub retry_delay: Duration,
    pub on_error: ErrorAction,
}

#[derive(Debug)]
pub enum StepKind {
    Request(Box<CompiledRequest>),
    Sleep(Duration),
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
        timeout: Duration,
    },
    WaitEvent(Box<CompiledWait>),
    Didcomm(Box<CompiledDidcomm>),
}

/// A compiled edge-agent action (`didcomm:`); timeouts are literal durations.
#[derive(Debug)]
pub enum CompiledDidcomm {
    Connect {
        invitation: Text,
        websocket: Text,
        label: Option<Text>,
        drain: Option<JsonTemplate>,
        timeout: Duration,
    },
    RequestMediation {
        timeout: Duration,
    },
    Invite {
        into: String,
        timeout: Duration,
    },
    AcceptInvitation {
        invitation: JsonTemplate,
        timeout: Duration,
    },
    AwaitConnection {
        timeout: Duration,
    },
    Message {
        content: Option<Text>,
    },
    Delivered {
        timeout: Duration,
    },
    Ping {
        to: crate::plan::PingTo,
        timeout: Duration,
    },
    Disconnect {
        timeout: Duration,
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
    pub timeout: Duration,
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
    pub timeout: Option<Duration>,
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
    pub interval: Duration,
    pub timeout: Duration,
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
