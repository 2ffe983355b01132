//! `acaload report` and `acaload merge`: reports from saved results files.

use std::path::PathBuf;

use super::args::OutputArgs;
use super::exit::{EXIT_ERROR, EXIT_OK, exit_code};

/// `acaload report`: the terminal report of a results file, and its HTML/CSV.
pub(super) fn report(path: &std::path::Path, outputs: &OutputArgs) -> u8 {
    let results = match load_results(path) {
        Ok(r) => r,
        Err(e) => {
            crate::errln!("error: {e}");
            return EXIT_ERROR;
        }
    };
    let verdicts = results.thresholds.clone();
    crate::outln!("{}", crate::output::report::render(&results, &verdicts));
    let written = write_outputs(&results, &verdicts, outputs);
    if written != EXIT_OK {
        written
    } else {
        // As `run` exited on the same results.
        exit_code(&results)
    }
}

/// Reads a results file, with one line saying what is wrong with it (missing, not JSON,
/// or which field does not fit the results schema).
pub(super) fn load_results(path: &std::path::Path) -> Result<crate::results::Results, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
    if json.get("schema_version").is_none() {
        return Err(format!(
            "{} is not an acaload results file (no schema_version; write one with `acaload run --out`)",
            path.display()
        ));
    }
    serde_path_to_error::deserialize(json).map_err(|e| {
        format!(
            "{} is not an acaload results file: at {}: {}",
            path.display(),
            e.path(),
            e.inner()
        )
    })
}

/// The results as `--out` writes them (secrets scrubbed), so that `run --html` and
/// `report results.json --html` give the same bytes. Fails closed: when the scrubbed
/// results are no longer results (a secret's value is also a word of the format), nothing
/// may be written from the unscrubbed ones.
pub(super) fn as_written(
    results: &crate::results::Results,
    secrets: &[String],
) -> Result<crate::results::Results, String> {
    let mut json =
        serde_json::to_value(results).map_err(|e| format!("cannot serialize the results: {e}"))?;
    crate::results::redact::scrub_json(&mut json, secrets);
    serde_json::from_value(json).map_err(|e| {
        format!(
            "a secret's value is also part of the results' format ({}); no results file or report is written, so the secret does not leak",
            crate::results::redact::scrub(&e.to_string(), secrets)
        )
    })
}

/// Writes `--html` and `--csv`; every problem is one line on stderr.
pub(super) fn write_outputs(
    results: &crate::results::Results,
    verdicts: &[crate::results::Verdict],
    outputs: &OutputArgs,
) -> u8 {
    let mut code = EXIT_OK;
    if let Some(path) = &outputs.html {
        let written = crate::output::html::render(results, verdicts)
            .map_err(|e| format!("cannot render the HTML report: {e}"))
            .and_then(|html| {
                std::fs::write(path, html)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))
            });
        match written {
            Ok(()) => crate::errln!("HTML report written to {}", path.display()),
            Err(e) => {
                crate::errln!("error: {e}");
                code = EXIT_ERROR;
            }
        }
    }
    if let Some(prefix) = &outputs.csv {
        match crate::output::csv::write(results, prefix) {
            Ok(paths) => crate::errln!(
                "CSV written to {}",
                paths
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Err(e) => {
                crate::errln!("error: {e}");
                code = EXIT_ERROR;
            }
        }
    }
    code
}

pub(super) fn merge(files: &[PathBuf], out: &std::path::Path) -> u8 {
    let mut inputs = Vec::new();
    for f in files {
        match load_results(f) {
            Ok(r) => inputs.push((f.display().to_string(), r)),
            Err(e) => {
                crate::errln!("error: {e}");
                return EXIT_ERROR;
            }
        }
    }
    match crate::measure::merge::merge(&inputs) {
        Ok(merged) => {
            let json = serde_json::to_string_pretty(&merged).unwrap_or_default() + "\n";
            if let Err(e) = std::fs::write(out, json) {
                crate::errln!("error: cannot write {}: {e}", out.display());
                return EXIT_ERROR;
            }
            let missing = merged
                .run
                .shard
                .map(|s| format!(" (incomplete: shards of {})", s.count))
                .unwrap_or_default();
            crate::errln!(
                "merged {} results into {}: {} requests, {} failures{missing}",
                inputs.len(),
                out.display(),
                merged.total.requests,
                merged.total.failures
            );
            // The plan's thresholds, judged on the merged histograms: one verdict for all.
            for v in merged.thresholds.iter().filter(|v| !v.passed) {
                crate::errln!(
                    "threshold failed: {} {}, measured {}",
                    v.label,
                    v.limit,
                    v.measured
                );
            }
            exit_code(&merged)
        }
        Err(e) => {
            crate::errln!("error: {e}");
            EXIT_ERROR
        }
    }
}
