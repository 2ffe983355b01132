//! Command-line interface: clap arguments → plain configs → library calls → exit code.
//! Exit codes: 0 pass, 1 checks or thresholds failed, 2 bad plan/usage/runtime error,
//! 130 interrupted (Ctrl-C/SIGTERM).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use crate::plan::compile;

mod args;
mod exit;
mod inputs;
mod report;
mod run;

use args::{Arguments, Command, Format, SchemaKind, VarArgs};
use exit::{EXIT_ERROR, EXIT_OK};
use inputs::{load, sources};
use report::{merge, report};
use run::{resolve, run, runtime, watch_signals};

/// Entry point used by the binary.
pub fn main() -> ExitCode {
    let args = match Arguments::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_ERROR } else { EXIT_OK };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    ExitCode::from(match args.command {
        Command::Validate { files, format } => validate(&files, format),
        Command::Schema { kind } => {
            crate::out!(
                "{}",
                match kind {
                    SchemaKind::Plan => crate::plan::schema::plan_schema(),
                    SchemaKind::Results => crate::results::schema::results_schema(),
                }
            );
            EXIT_OK
        }
        Command::Explain { plan, vars } => explain(&plan, &vars),
        Command::Run(run) => self::run(*run),
        Command::Report { results, outputs } => report(&results, &outputs),
        Command::Merge { files, out } => merge(&files, &out),
        Command::TraceSink {
            listen,
            forward,
            out,
        } => trace_sink(listen, forward, out),
    })
}

fn validate(files: &[PathBuf], format: Format) -> u8 {
    let mut all = Vec::new();
    for f in files {
        match compile::load_file(f) {
            Ok(_) => {
                if matches!(format, Format::Text) {
                    crate::outln!("{}: ok", f.display());
                }
            }
            Err(failure) => {
                if matches!(format, Format::Text) {
                    crate::errln!("{}", failure.render());
                }
                all.extend(failure.diagnostics);
            }
        }
    }
    if matches!(format, Format::Json) {
        crate::outln!("{}", serde_json::to_string_pretty(&all).unwrap_or_default());
    } else if !all.is_empty() {
        let n = all.len();
        crate::errln!("{n} problem{} found", if n == 1 { "" } else { "s" });
    }
    if all.is_empty() { EXIT_OK } else { EXIT_ERROR }
}

fn explain(path: &std::path::Path, vars: &VarArgs) -> u8 {
    let plan = match load(path) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let mut sources = match sources(vars) {
        Ok(s) => s,
        Err(e) => {
            crate::errln!("error: {e}");
            return EXIT_ERROR;
        }
    };
    // Required variables that are missing become visible placeholders.
    for (name, var) in &plan.plan.env {
        if var.required
            && var.default.is_none()
            && sources
                .set
                .get(name)
                .or(sources.process.get(name))
                .or(sources.dotenv.get(name))
                .is_none()
        {
            sources.set.insert(name.clone(), format!("<{name}>"));
        }
    }
    let env = match crate::plan::env::resolve(&plan.plan.env, &sources) {
        Ok(e) => e,
        Err(errors) => {
            errors.iter().for_each(|e| crate::errln!("error: {e}"));
            return EXIT_ERROR;
        }
    };
    let display = crate::plan::env::ResolvedEnv {
        values: env.display.clone(),
        display: env.display.clone(),
        secrets: Vec::new(),
    };
    let id = crate::plan::resolve::RunIdentity {
        id: "<run.id>".into(),
        seed: 0,
        shard_index: 0,
        shard_count: 1,
        webhook_url: "<webhook_url>".into(),
    };
    let Some(resolved) = resolve(&plan, &display, &id) else {
        return EXIT_ERROR;
    };
    let defined = crate::plan::compile::defined_names(&plan.plan);
    crate::out!(
        "{}",
        crate::results::redact::scrub(
            &crate::tools::explain::explain(&plan, &resolved, &defined),
            &env.secrets
        )
    );
    EXIT_OK
}

fn trace_sink(listen: String, forward: Option<String>, out: Option<PathBuf>) -> u8 {
    let Some(runtime) = runtime() else {
        return EXIT_ERROR;
    };
    let result = runtime.block_on(async {
        let signals = crate::engine::context::StopSignals::default();
        tokio::spawn(watch_signals(signals.clone(), "stopping the trace sink"));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sink = tokio::spawn(crate::tools::trace_sink::run(
            crate::tools::trace_sink::SinkConfig { listen, forward },
            signals.graceful.clone(),
            tx,
        ));
        if let Ok(addr) = rx.await {
            crate::errln!(
                "trace sink listening on http://{addr}/ (summary at /summary); Ctrl-C to stop"
            );
        }
        sink.await.map_err(|e| e.to_string())?
    });
    match result {
        Ok(report) => {
            crate::out!("{}", report.render());
            if let Some(path) = out
                && let Err(e) = std::fs::write(
                    &path,
                    serde_json::to_string_pretty(&report).unwrap_or_default() + "\n",
                )
            {
                crate::errln!("error: cannot write {}: {e}", path.display());
                return EXIT_ERROR;
            }
            EXIT_OK
        }
        Err(e) => {
            crate::errln!("error: {e}");
            EXIT_ERROR
        }
    }
}
