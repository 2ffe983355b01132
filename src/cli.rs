//! Command-line interface: clap arguments → plain configs → library calls → exit code.
//! Exit codes: 0 pass, 1 checks or thresholds failed, 2 bad plan/usage/runtime error,
//! 130 interrupted (Ctrl-C/SIGTERM).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::compile::{self, CompiledPlan};

pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_ERROR: u8 = 2;
pub const EXIT_INTERRUPTED: u8 = 130;

#[derive(Debug, Parser)]
#[command(
    name = "acaload",
    version,
    about = "Declarative load tests for ACA-Py agents and DIDComm mediators"
)]
struct Arguments {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check plan files; every problem is printed as FILE:LINE:COL: message.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Print the JSON Schema of plans (or of results files).
    Schema {
        #[arg(long, value_enum, default_value_t = SchemaKind::Plan)]
        kind: SchemaKind,
    },
    /// Show the resolved load shape and the steps as the first user would send them. Sends nothing.
    Explain {
        plan: PathBuf,
        #[command(flatten)]
        vars: VarArgs,
    },
    /// Run a plan.
    Run(Box<RunArgs>),
    /// Print the report of a results file (`run --out`) and write it as HTML or CSV.
    Report {
        results: PathBuf,
        #[command(flatten)]
        outputs: OutputArgs,
    },
    /// Merge the results of shards into one file (histograms added exactly).
    Merge {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Where the merged results go.
        #[arg(long)]
        out: PathBuf,
    },
    /// Receive ACA-Py trace events (`--trace-target`), summarise them, optionally forward to ELK.
    TraceSink {
        /// Address to listen on (the agents' `--trace-target` points here).
        #[arg(long, default_value = "127.0.0.1:4004")]
        listen: String,
        /// Re-post every raw event to this URL (Elasticsearch `…/_doc` or a logstash http input).
        #[arg(long)]
        forward: Option<String>,
        /// Write the final summary as JSON.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SchemaKind {
    Plan,
    Results,
}

#[derive(Debug, clap::Args)]
struct VarArgs {
    /// Read variables from this file (default: .env when present).
    #[arg(long)]
    env_file: Option<PathBuf>,
    /// Set a plan variable (wins over the environment and the env file). Repeatable.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
}

/// Report files made from results, by `run` and `report` alike.
#[derive(Debug, clap::Args)]
struct OutputArgs {
    /// Write a self-contained HTML report (no scripts, no network requests).
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Write Locust-style CSV: PREFIX_stats.csv, PREFIX_failures.csv, PREFIX_stats_history.csv, PREFIX_step_history.csv.
    #[arg(long, value_name = "PREFIX")]
    csv: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    plan: PathBuf,
    #[command(flatten)]
    vars: VarArgs,
    /// Write results as JSON (schemas/results.schema.json).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Seed for random data (wallet names, keys, nonces); random when not given.
    #[arg(long)]
    seed: Option<u64>,
    /// Print only the final report.
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    outputs: OutputArgs,
    /// Serve Prometheus metrics during the run at ADDR (`:9464` binds to loopback), path /metrics.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
    /// Serve a read-only live page during the run at ADDR (`:8089` binds to loopback).
    #[arg(long, value_name = "ADDR")]
    web: Option<String>,
    /// Run one shard of the plan, INDEX/COUNT (0-based), e.g. 0/3; merge the results with `acaload merge`.
    #[arg(long, value_name = "INDEX/COUNT")]
    shard: Option<String>,
    /// Number of shards when the index comes from JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs).
    #[arg(long, env = "ACALOAD_SHARD_COUNT", value_name = "COUNT")]
    shard_count: Option<u32>,
}

/// The shard from `--shard`, or from `JOB_COMPLETION_INDEX` with `--shard-count`.
fn shard_of(args: &RunArgs) -> Result<crate::shard::Shard, String> {
    match (&args.shard, args.shard_count) {
        (Some(s), _) => crate::shard::Shard::parse(s),
        (None, Some(count)) => {
            let index = std::env::var("JOB_COMPLETION_INDEX")
                .map_err(|_| "--shard-count needs JOB_COMPLETION_INDEX (set by Kubernetes Indexed Jobs) or --shard INDEX/COUNT".to_string())?;
            crate::shard::Shard::parse(&format!("{index}/{count}"))
        }
        (None, None) => Ok(crate::shard::Shard::default()),
    }
}

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
                    SchemaKind::Plan => crate::schema::plan_schema(),
                    SchemaKind::Results => crate::schema::results_schema(),
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

fn load(path: &std::path::Path) -> Result<CompiledPlan, u8> {
    compile::load_file(path).map_err(|f| {
        crate::errln!("{}", f.render());
        EXIT_ERROR
    })
}

/// Collects variable sources: `--set`, the process environment and the env file.
fn sources(vars: &VarArgs) -> Result<crate::env::EnvSources, String> {
    let mut set = HashMap::new();
    for kv in &vars.set {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("--set {kv}: expected NAME=VALUE"))?;
        set.insert(k.to_string(), v.to_string());
    }
    let dotenv = match &vars.env_file {
        Some(p) => crate::env::read_dotenv(p)?,
        None if std::path::Path::new(".env").is_file() => {
            crate::env::read_dotenv(std::path::Path::new(".env"))?
        }
        None => HashMap::new(),
    };
    Ok(crate::env::EnvSources {
        set,
        process: std::env::vars().collect(),
        dotenv,
    })
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
    let env = match crate::env::resolve(&plan.plan.env, &sources) {
        Ok(e) => e,
        Err(errors) => {
            errors.iter().for_each(|e| crate::errln!("error: {e}"));
            return EXIT_ERROR;
        }
    };
    let display = crate::env::ResolvedEnv {
        values: env.display.clone(),
        display: env.display.clone(),
        secrets: Vec::new(),
    };
    let id = crate::resolve::RunIdentity {
        id: "<run.id>".into(),
        seed: 0,
        shard_index: 0,
        shard_count: 1,
        webhook_url: "<webhook_url>".into(),
    };
    let Some(resolved) = resolve(&plan, &display, &id) else {
        return EXIT_ERROR;
    };
    let defined = crate::compile::defined_names(&plan.plan);
    crate::out!(
        "{}",
        crate::redact::scrub(
            &crate::explain::explain(&plan, &resolved, &defined),
            &env.secrets
        )
    );
    EXIT_OK
}

fn run(args: RunArgs) -> u8 {
    let plan = match load(&args.plan) {
        Ok(p) => std::sync::Arc::new(p),
        Err(code) => return code,
    };
    let sources = match sources(&args.vars) {
        Ok(s) => s,
        Err(e) => {
            crate::errln!("error: {e}");
            return EXIT_ERROR;
        }
    };
    let env = match crate::env::resolve(&plan.plan.env, &sources) {
        Ok(e) => e,
        Err(errors) => {
            errors.iter().for_each(|e| crate::errln!("error: {e}"));
            return EXIT_ERROR;
        }
    };
    let shard = match shard_of(&args) {
        Ok(s) => s,
        Err(e) => {
            crate::errln!("error: {e}");
            return EXIT_ERROR;
        }
    };
    let seed = args.seed.unwrap_or_else(|| fastrand::u64(..));
    let cfg = crate::run::RunConfig {
        seed,
        run_id: format!("{:08x}", fastrand::u32(..)),
        shard_index: shard.index,
        shard_count: shard.count,
        grace: std::time::Duration::from_secs(30),
        progress: (!args.quiet).then_some(std::time::Duration::from_secs(5)),
        verbose_failures: false,
        metrics: args.metrics.clone(),
        web: args.web.clone(),
    };
    let Some(resolved) = resolve(&plan, &env, &crate::run::identity(&cfg, String::new())) else {
        return EXIT_ERROR;
    };
    let Some(runtime) = runtime() else {
        return EXIT_ERROR;
    };
    if !args.quiet {
        crate::errln!(
            "running {} ({}) as run {}, seed {seed}",
            plan.plan.name,
            crate::resolve::describe_shape(&resolved.shape),
            cfg.run_id
        );
    }
    let secrets = env.secrets.clone();
    let outcome = runtime.block_on(async {
        let signals = crate::run::StopSignals::default();
        tokio::spawn(watch_signals(signals.clone(), "stopping: finishing in-flight requests and running teardowns (signal again to stop at once)"));
        crate::run::execute(plan.clone(), &env, resolved, cfg, signals).await
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    let (mut results, error) = match outcome {
        Ok(r) => (r, None),
        Err((e, r)) => (*r, Some(crate::redact::scrub(&e.to_string(), &secrets))),
    };
    results.run.error = error.clone();
    if error.is_none() {
        results.thresholds = crate::report::thresholds(&results, &plan.plan.thresholds);
    }
    let verdicts = results.thresholds.clone();
    let mut code = EXIT_OK;
    if let Some(path) = &args.out {
        match serde_json::to_string_pretty(&results) {
            Ok(json) => {
                if let Err(e) = std::fs::write(path, crate::redact::scrub(&json, &secrets) + "\n") {
                    crate::errln!("error: cannot write {}: {e}", path.display());
                    code = EXIT_ERROR;
                }
            }
            Err(e) => crate::errln!("error: cannot serialize results: {e}"),
        }
    }
    // HTML and CSV are written in every case too, so an aborted run still has its report.
    if write_outputs(&as_written(&results, &secrets), &verdicts, &args.outputs) != EXIT_OK {
        code = EXIT_ERROR;
    }
    if let Some(e) = error {
        crate::errln!("error: {e}");
        return EXIT_ERROR;
    }
    crate::outln!(
        "{}",
        crate::redact::scrub(&crate::report::render(&results, &verdicts), &secrets)
    );
    if let Some(path) = &args.out {
        if code == EXIT_OK {
            crate::errln!("results written to {}", path.display());
        }
    }
    match results.run.outcome {
        crate::results::Outcome::Interrupted | crate::results::Outcome::Aborted => {
            crate::errln!("interrupted: results cover the run up to the signal");
            EXIT_INTERRUPTED
        }
        crate::results::Outcome::Stopped => {
            if let Some(s) = &results.run.stopped_by {
                crate::errln!("{}", s.describe());
            }
            if code != EXIT_OK { code } else { EXIT_FAILED }
        }
        crate::results::Outcome::Completed => {
            let failed = if plan.plan.thresholds.is_empty() {
                results.total.failures > 0 || results.failures.iter().any(|f| f.count > 0)
            } else {
                verdicts.iter().any(|v| !v.passed)
            };
            if code != EXIT_OK {
                code
            } else if failed {
                EXIT_FAILED
            } else {
                EXIT_OK
            }
        }
    }
}

/// `acaload report`: the terminal report of a results file, and its HTML/CSV.
fn report(path: &std::path::Path, outputs: &OutputArgs) -> u8 {
    let results = match load_results(path) {
        Ok(r) => r,
        Err(e) => {
            crate::errln!("error: {e}");
            return EXIT_ERROR;
        }
    };
    let verdicts = results.thresholds.clone();
    crate::outln!("{}", crate::report::render(&results, &verdicts));
    let written = write_outputs(&results, &verdicts, outputs);
    if written != EXIT_OK {
        written
    } else if verdicts.iter().any(|v| !v.passed)
        || results.run.outcome == crate::results::Outcome::Stopped
    {
        EXIT_FAILED
    } else {
        EXIT_OK
    }
}

/// Reads a results file, with one line saying what is wrong with it (missing, not JSON,
/// or which field does not fit the results schema).
fn load_results(path: &std::path::Path) -> Result<crate::results::Results, String> {
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
/// `report results.json --html` give the same bytes.
fn as_written(results: &crate::results::Results, secrets: &[String]) -> crate::results::Results {
    serde_json::to_string(results)
        .ok()
        .and_then(|json| serde_json::from_str(&crate::redact::scrub(&json, secrets)).ok())
        .unwrap_or_else(|| results.clone())
}

/// Writes `--html` and `--csv`; every problem is one line on stderr.
fn write_outputs(
    results: &crate::results::Results,
    verdicts: &[crate::report::Verdict],
    outputs: &OutputArgs,
) -> u8 {
    let mut code = EXIT_OK;
    if let Some(path) = &outputs.html {
        let written = crate::html::render(results, verdicts)
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
        match crate::csv_out::write(results, prefix) {
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

/// Resolves the plan against its variables; prints every located problem when it cannot.
fn resolve(
    plan: &CompiledPlan,
    env: &crate::env::ResolvedEnv,
    id: &crate::resolve::RunIdentity,
) -> Option<crate::resolve::Resolved> {
    crate::resolve::resolve(plan, env, id)
        .map_err(|diags| {
            diags
                .iter()
                .for_each(|d| crate::errln!("{}", d.render(Some(&plan.source))))
        })
        .ok()
}

/// The async runtime; says why on stderr when it cannot start.
fn runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| crate::errln!("error: cannot start the async runtime: {e}"))
        .ok()
}

/// First Ctrl-C or SIGTERM: graceful stop. Second: stop at once.
async fn watch_signals(signals: crate::run::StopSignals, first: &'static str) {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    for n in 0..2 {
        #[cfg(unix)]
        let got = match term.as_mut() {
            Some(t) => {
                tokio::select! { r = tokio::signal::ctrl_c() => r.is_ok(), r = t.recv() => r.is_some() }
            }
            None => tokio::signal::ctrl_c().await.is_ok(),
        };
        #[cfg(not(unix))]
        let got = tokio::signal::ctrl_c().await.is_ok();
        if !got {
            return;
        }
        if n == 0 {
            crate::errln!("{first}");
            signals.graceful.cancel();
        } else {
            crate::errln!("stopping now");
            signals.hard.cancel();
        }
    }
}

fn trace_sink(listen: String, forward: Option<String>, out: Option<PathBuf>) -> u8 {
    let Some(runtime) = runtime() else {
        return EXIT_ERROR;
    };
    let result = runtime.block_on(async {
        let signals = crate::run::StopSignals::default();
        tokio::spawn(watch_signals(signals.clone(), "stopping the trace sink"));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sink = tokio::spawn(crate::trace_sink::run(
            crate::trace_sink::SinkConfig { listen, forward },
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

fn merge(files: &[PathBuf], out: &std::path::Path) -> u8 {
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
    match crate::merge::merge(&inputs) {
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
            EXIT_OK
        }
        Err(e) => {
            crate::errln!("error: {e}");
            EXIT_ERROR
        }
    }
}
