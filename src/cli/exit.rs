//! Exit codes: 0 pass, 1 checks or thresholds failed, 2 bad plan/usage/runtime error,
//! 130 interrupted (Ctrl-C/SIGTERM), and the one a results file stands for.

pub(super) const EXIT_OK: u8 = 0;
pub(super) const EXIT_FAILED: u8 = 1;
pub(super) const EXIT_ERROR: u8 = 2;
pub(super) const EXIT_INTERRUPTED: u8 = 130;

/// The exit code a results file stands for, the same for `run`, `report` and `merge`: 2 when
/// the run could not start, 130 when interrupted, 1 when an `abort` threshold stopped it or a
/// threshold failed (without thresholds: when any step failed), else 0.
pub(super) fn exit_code(results: &crate::results::Results) -> u8 {
    use crate::results::Outcome;
    if results.run.error.is_some() {
        return EXIT_ERROR;
    }
    match results.run.outcome {
        Outcome::Interrupted | Outcome::Aborted => EXIT_INTERRUPTED,
        Outcome::Stopped => EXIT_FAILED,
        Outcome::Completed => {
            // Results files of an older format have the verdicts but not the plan's thresholds.
            let judged = !results.plan.thresholds.is_empty() || !results.thresholds.is_empty();
            let failed = if judged {
                results.thresholds.iter().any(|v| !v.passed)
            } else {
                results.total.failures > 0 || results.failures.iter().any(|f| f.count > 0)
            };
            if failed { EXIT_FAILED } else { EXIT_OK }
        }
    }
}
