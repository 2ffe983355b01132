//! Recording a step's outcome, and building failures: reason, short example, secrets scrubbed.

use std::time::{Duration, Instant};

use super::{StepError, VirtualUser};
use crate::measure::metrics::{Event, Failure};
use crate::plan::compile::{CompiledStep, StepKind};
use crate::results::StatKind;

impl VirtualUser {
    /// Records a sample that started at `started` and ends now.
    pub(super) fn record(
        &self,
        step: &CompiledStep,
        kind: StatKind,
        method: Option<&'static str>,
        started: Instant,
        failure: Option<Failure>,
    ) {
        self.record_took(step, kind, method, started, started.elapsed(), failure);
    }

    /// Records a sample that started at `started` and took `took`.
    pub(super) fn record_took(
        &self,
        step: &CompiledStep,
        kind: StatKind,
        method: Option<&'static str>,
        started: Instant,
        took: Duration,
        failure: Option<Failure>,
    ) {
        let micros = took.as_micros() as u64;
        self.ctx.recorder.send(Event::Sample {
            phase: step.phase,
            kind,
            name: step.name.clone(),
            method,
            micros,
            at: started,
            failure,
        });
    }

    /// A failure without a request or a wait (template errors, `when`): counted as a
    /// failure of the step's `kind` row, never as a sample.
    pub(super) fn fail_untimed(
        &self,
        step: &CompiledStep,
        reason: &str,
        detail: String,
    ) -> StepError {
        let f = self.failure(step, reason.to_string(), detail);
        self.fail_unsent(step, f);
        StepError::Failed
    }

    /// Counts `failure` under the step without a sample.
    pub(super) fn fail_unsent(&self, step: &CompiledStep, failure: Failure) {
        let kind = match step.kind {
            StepKind::WaitEvent(_) => StatKind::Event,
            StepKind::Take { .. } => StatKind::Take,
            _ => StatKind::Http,
        };
        self.ctx.recorder.send(Event::Failure {
            phase: step.phase,
            kind,
            name: step.name.clone(),
            at: Instant::now(),
            failure,
        });
    }

    pub(super) fn failure(&self, step: &CompiledStep, reason: String, detail: String) -> Failure {
        let mut secrets: Vec<String> = self.secrets.iter().map(|(_, v)| v.clone()).collect();
        secrets.extend(self.ctx.secrets.iter().cloned());
        let detail = crate::results::redact::scrub(
            &format!("user {} (plan line {}): {detail}", self.index, step.line),
            &secrets,
        );
        if self.ctx.verbose_failures {
            crate::errln!("failure: {}: {}: {detail}", step.name, reason);
        }
        Failure {
            reason: crate::results::redact::scrub(&reason, &secrets),
            detail,
        }
    }
}

/// The first line of an ACA-Py error body (`404: Record not found…`), short.
pub(super) fn reason_text(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    let short: String = line.chars().take(120).collect();
    if short.is_empty() {
        "(empty body)".into()
    } else {
        short
    }
}

/// A short excerpt of a body for failure examples.
pub fn excerpt(text: &str) -> String {
    let mut masked = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(mut v) => {
            crate::results::redact::mask_secret_keys(&mut v);
            v.to_string()
        }
        Err(_) => text.to_string(),
    };
    if masked.chars().count() > 300 {
        masked = format!("{}…", masked.chars().take(300).collect::<String>());
    }
    masked
}
