//! The command line as clap parses it, before it becomes plain configs.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "acaload",
    version,
    about = "Declarative load tests for ACA-Py agents and DIDComm mediators"
)]
pub(super) struct Arguments {
    #[command(subcommand)]
    pub(super) command: Command,
}

#[derive(Debug, Subcommand)]
pub(super) enum Command {
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
pub(super) enum Format {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum SchemaKind {
    Plan,
    Results,
}

#[derive(Debug, clap::Args)]
pub(super) struct VarArgs {
    /// Read variables from this file (default: .env when present).
    #[arg(long)]
    pub(super) env_file: Option<PathBuf>,
    /// Set a plan variable (wins over the environment and the env file). Repeatable.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub(super) set: Vec<String>,
}

/// Report files made from results, by `run` and `report` alike.
#[derive(Debug, clap::Args)]
pub(super) struct OutputArgs {
    /// Write a self-contained HTML report (no scripts, no network requests).
    #[arg(long, value_name = "FILE")]
    pub(super) html: Option<PathBuf>,
    /// Write Locust-style CSV: PREFIX_stats.csv, PREFIX_failures.csv, PREFIX_stats_history.csv, PREFIX_step_history.csv.
    #[arg(long, value_name = "PREFIX")]
    pub(super) csv: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub(super) struct RunArgs {
    pub(super) plan: PathBuf,
    #[command(flatten)]
    pub(super) vars: VarArgs,
    /// Write results as JSON (schemas/results.schema.json).
    #[arg(long)]
    pub(super) out: Option<PathBuf>,
    /// Trust the CA certificates in this PEM file beside the system's roots, for every https://
    /// and wss:// connection (overrides the plan's `target.ca_file`).
    #[arg(long, value_name = "FILE")]
    pub(super) ca_file: Option<PathBuf>,
    /// Seed for random data (wallet names, keys, nonces); random when not given.
    #[arg(long)]
    pub(super) seed: Option<u64>,
    /// Print only the final report.
    #[arg(long, short)]
    pub(super) quiet: bool,
    #[command(flatten)]
    pub(super) outputs: OutputArgs,
    /// Serve Prometheus metrics during the run at ADDR (`:9464` binds to loopback), path /metrics.
    #[arg(long, value_name = "ADDR")]
    pub(super) metrics: Option<String>,
    /// Serve a read-only live page during the run at ADDR (`:8089` binds to loopback).
    #[arg(long, value_name = "ADDR")]
    pub(super) web: Option<String>,
    /// Run one shard of the plan, INDEX/COUNT (0-based), e.g. 0/3; merge the results with `acaload merge`.
    #[arg(long, value_name = "INDEX/COUNT")]
    pub(super) shard: Option<String>,
    /// Number of shards when the index comes from JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs).
    #[arg(long, env = "ACALOAD_SHARD_COUNT", value_name = "COUNT")]
    pub(super) shard_count: Option<u32>,
}

/// The shard from `--shard`, or from `JOB_COMPLETION_INDEX` with `--shard-count`.
pub(super) fn shard_of(args: &RunArgs) -> Result<crate::engine::shard::Shard, String> {
    match (&args.shard, args.shard_count) {
        (Some(s), _) => crate::engine::shard::Shard::parse(s),
        (None, Some(count)) => {
            let index = std::env::var("JOB_COMPLETION_INDEX")
                .map_err(|_| "--shard-count needs JOB_COMPLETION_INDEX (set by Kubernetes Indexed Jobs) or --shard INDEX/COUNT".to_string())?;
            crate::engine::shard::Shard::parse(&format!("{index}/{count}"))
        }
        (None, None) => Ok(crate::engine::shard::Shard::default()),
    }
}
