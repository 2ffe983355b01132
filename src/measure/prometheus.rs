//! The `--metrics` exposition: Prometheus histograms and counters through the
//! `prometheus-client` crate, fed by the aggregator as samples arrive, so that the series of
//! several shards can be summed and `rate()` shows the current throughput and latency.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::plan::Phase;
use crate::results::{GaugeSample, StatKind};

/// Latency bucket bounds in seconds: 1 ms to 60 s, the range an agent's answers span.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0,
];

/// The labels of a step's series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabels {
    pub phase: String,
    pub kind: String,
    pub step: String,
}

impl StepLabels {
    pub fn new(phase: Phase, kind: StatKind, step: &str) -> StepLabels {
        let word = |v: serde_json::Value| v.as_str().unwrap_or_default().to_string();
        StepLabels {
            phase: word(serde_json::to_value(phase).unwrap_or_default()),
            kind: word(serde_json::to_value(kind).unwrap_or_default()),
            step: step.to_string(),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AgentLabels {
    agent: String,
}

/// One step's series, held by the aggregator so a sample costs no label lookup.
#[derive(Clone, Debug)]
pub struct StepSeries {
    latency: Histogram,
    failures: Counter,
}

impl StepSeries {
    /// A sample of `micros`, failed or not.
    pub fn sample(&self, micros: u64, failed: bool) {
        self.latency.observe(micros as f64 / 1e6);
        if failed {
            self.failures.inc();
        }
    }

    /// A failure without a sample.
    pub fn failure(&self) {
        self.failures.inc();
    }
}

/// Every series `/metrics` shows.
#[derive(Debug)]
pub struct Exporter {
    registry: Registry,
    users: Gauge,
    target: Gauge,
    requests: Counter,
    failures: Counter,
    latency: Family<StepLabels, Histogram>,
    step_failures: Family<StepLabels, Counter>,
    agents: Vec<(&'static str, Family<AgentLabels, Gauge>)>,
}

impl Default for Exporter {
    fn default() -> Exporter {
        Exporter::new()
    }
}

impl Exporter {
    pub fn new() -> Exporter {
        let mut registry = Registry::with_prefix("acaload");
        let users = Gauge::default();
        registry.register("users", "Virtual users running", users.clone());
        let target = Gauge::default();
        registry.register(
            "target_users",
            "Users the load shape asks for (this shard's share)",
            target.clone(),
        );
        let requests = Counter::default();
        registry.register("http_requests", "HTTP requests sent", requests.clone());
        let failures = Counter::default();
        registry.register("failures", "Failed steps", failures.clone());
        let latency = Family::<StepLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(LATENCY_BUCKETS)) as fn() -> Histogram,
        );
        registry.register(
            "step_latency_seconds",
            "Latency per step: requests, time to state, takes, events, iterations, queue waits",
            latency.clone(),
        );
        let step_failures = Family::<StepLabels, Counter>::default();
        registry.register(
            "step_failures",
            "Failed steps, with or without a sample",
            step_failures.clone(),
        );
        let mut agents = Vec::new();
        for (name, help) in [
            (
                "out_deliver",
                "Outbound messages being delivered (ACA-Py /status)",
            ),
            (
                "out_encode",
                "Outbound messages being encoded (ACA-Py /status)",
            ),
            ("in_sessions", "Inbound sessions (ACA-Py /status)"),
            ("task_active", "Active tasks (ACA-Py /status)"),
            ("task_pending", "Pending tasks (ACA-Py /status)"),
        ] {
            let family = Family::<AgentLabels, Gauge>::default();
            registry.register(format!("agent_{name}"), help, family.clone());
            agents.push((name, family));
        }
        Exporter {
            registry,
            users,
            target,
            requests,
            failures,
            latency,
            step_failures,
            agents,
        }
    }

    /// The series of one step (made on first use).
    pub fn step(&self, labels: &StepLabels) -> StepSeries {
        StepSeries {
            latency: self.latency.get_or_create_owned(labels),
            failures: self.step_failures.get_or_create_owned(labels),
        }
    }

    /// Users running and asked for.
    pub fn users(&self, running: u64, target: u64) {
        self.users.set(running as i64);
        self.target.set(target as i64);
    }

    /// More HTTP requests (failed or not) and failed steps.
    pub fn counted(&self, requests: u64, failures: u64) {
        self.requests.inc_by(requests);
        self.failures.inc_by(failures);
    }

    /// An agent's latest `/status` gauges.
    pub fn agent(&self, agent: &str, g: &GaugeSample) {
        let labels = AgentLabels {
            agent: agent.to_string(),
        };
        for (name, family) in &self.agents {
            let v = match *name {
                "out_deliver" => g.out_deliver,
                "out_encode" => g.out_encode,
                "in_sessions" => g.in_sessions,
                "task_active" => g.task_active,
                _ => g.task_pending,
            };
            if let Some(v) = v {
                family.get_or_create(&labels).set(v as i64);
            }
        }
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The content type of [`Exporter::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_fill_cumulative_buckets_that_shards_can_sum() {
        let e = Exporter::new();
        let s = e.step(&StepLabels::new(Phase::Tasks, StatKind::Http, "ping"));
        for micros in [800, 3_000, 3_000, 700_000] {
            s.sample(micros, micros > 500_000);
        }
        let text = e.render();
        let labels = r#"phase="tasks",kind="http",step="ping""#;
        for (le, n) in [
            ("0.001", 1),
            ("0.005", 3),
            ("0.5", 3),
            ("1.0", 4),
            ("+Inf", 4),
        ] {
            let line = format!("acaload_step_latency_seconds_bucket{{le=\"{le}\",{labels}}} {n}");
            assert!(text.contains(&line), "no `{line}` in\n{text}");
        }
        assert!(text.contains("# TYPE acaload_step_latency_seconds histogram"));
        assert!(text.contains(&format!("acaload_step_latency_seconds_count{{{labels}}} 4")));
        assert!(text.contains(&format!("acaload_step_failures_total{{{labels}}} 1")));
    }
}
