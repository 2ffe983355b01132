//! `acaload run`: resolve, run with the observers the flags ask for, write results and
//! reports, and map the outcome to an exit code.

use super::args::{RunArgs, shard_of};
use super::exit::{EXIT_ERROR, EXIT_OK, exit_code};
use super::inputs::{load, sources};
use super::report::{as_written, write_outputs};
use std::sync::Arc;

use crate::engine::run::{Observer, RunView};
use crate::plan::compile::CompiledPlan;

/// What a run needs before it starts: the plan, its variables, the run's settings and the
/// plan resolved against them.
struct Prepared {
    plan: Arc<CompiledPlan>,
    env: crate::plan::env::ResolvedEnv,
    cfg: crate::engine::context::RunConfig,
    resolved: crate::plan::resolve::Resolved,
}

pub(super) fn run(args: RunArgs) -> u8 {
    let Prepared {
        plan,
        env,
        cfg,
        resolved,
    } = match prepare(&args) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let Some(runtime) = runtime() else {
        return EXIT_ERROR;
    };
    open_files(
        resolved
            .shape
            .peak_users()
            .div_ceil(u64::from(cfg.shard_count.max(1))),
    );
    if !args.quiet {
        crate::errln!(
            "running {} ({}) as run {}, seed {}",
            plan.plan.name,
            crate::plan::resolve::describe_shape(&resolved.shape),
            cfg.run_id,
            cfg.seed
        );
    }
    let secrets = env.secrets.clone();
    let outcome = runtime.block_on(async {
        let signals = crate::engine::context::StopSignals::default();
        tokio::spawn(watch_signals(signals.clone(), "stopping: finishing in-flight requests and running teardowns (signal again to stop at once)"));
        // The watcher registers its handlers when it first runs: give it the chance before
        // the run starts.
        tokio::task::yield_now().await;
        crate::engine::run::execute(plan.clone(), &env, resolved, cfg, signals, observers(&args)).await
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    let (mut results, error) = match outcome {
        Ok(r) => (r, None),
        Err((e, r)) => (
            *r,
            Some(crate::results::redact::scrub(&e.to_string(), &secrets)),
        ),
    };
    results.run.error = error.clone();
    if error.is_none() {
        results.thresholds =
            crate::measure::thresholds::thresholds(&results, &results.plan.thresholds.clone());
    }
    let code = write_results(&results, &secrets, &args);
    if let Some(e) = error {
        crate::errln!("error: {e}");
        return EXIT_ERROR;
    }
    crate::outln!(
        "{}",
        crate::results::redact::scrub(
            &crate::output::report::render(&results, &results.thresholds),
            &secrets
        )
    );
    if let Some(path) = &args.out
        && code == EXIT_OK
    {
        crate::errln!("results written to {}", path.display());
    }
    let verdict = exit_code(&results);
    match results.run.outcome {
        crate::results::Outcome::Interrupted | crate::results::Outcome::Aborted => {
            crate::errln!("interrupted: results cover the run up to the signal");
            return verdict;
        }
        crate::results::Outcome::Stopped => {
            if let Some(s) = &results.run.stopped_by {
                crate::errln!("{}", s.describe());
            }
        }
        crate::results::Outcome::Completed => {}
    }
    if code != EXIT_OK { code } else { verdict }
}

/// Loads the plan, resolves its variables and the shard, and resolves the plan for this run;
/// prints why when it cannot (the error is the exit code).
fn prepare(args: &RunArgs) -> Result<Prepared, u8> {
    let plan = Arc::new(load(&args.plan)?);
    let fail = |e: String| {
        crate::errln!("error: {e}");
        EXIT_ERROR
    };
    let sources = sources(&args.vars).map_err(fail)?;
    let env = crate::plan::env::resolve(&plan.plan.env, &sources).map_err(|errors| {
        errors.iter().for_each(|e| crate::errln!("error: {e}"));
        EXIT_ERROR
    })?;
    let shard = shard_of(args).map_err(fail)?;
    let cfg = crate::engine::context::RunConfig {
        seed: args.seed.unwrap_or_else(|| fastrand::u64(..)),
        run_id: format!("{:08x}", fastrand::u32(..)),
        shard_index: shard.index,
        shard_count: shard.count,
        grace: std::time::Duration::from_secs(30),
        verbose_failures: false,
    };
    let id = crate::engine::run::identity(&cfg, String::new());
    let mut resolved = resolve(&plan, &env, &id).ok_or(EXIT_ERROR)?;
    if !ca_file(&plan, &mut resolved, args.ca_file.as_deref()) {
        return Err(EXIT_ERROR);
    }
    Ok(Prepared {
        plan,
        env,
        cfg,
        resolved,
    })
}

/// Writes the results file (`--out`), the HTML and the CSV, all from the scrubbed results
/// (or none); the exit code says whether every file was written.
fn write_results(results: &crate::results::Results, secrets: &[String], args: &RunArgs) -> u8 {
    let written = match as_written(results, secrets) {
        Ok(w) => w,
        Err(e) => {
            crate::errln!("error: {e}");
            return EXIT_ERROR;
        }
    };
    let mut code = EXIT_OK;
    if let Some(path) = &args.out {
        match serde_json::to_string_pretty(&written) {
            Ok(json) => {
                if let Err(e) = std::fs::write(path, json + "\n") {
                    crate::errln!("error: cannot write {}: {e}", path.display());
                    code = EXIT_ERROR;
                }
            }
            Err(e) => crate::errln!("error: cannot serialize results: {e}"),
        }
    }
    // HTML and CSV are written in every case too, so an aborted run still has its report.
    if write_outputs(&written, &written.thresholds, &args.outputs) != EXIT_OK {
        code = EXIT_ERROR;
    }
    code
}

/// Resolves the plan against its variables; prints every located problem when it cannot.
pub(super) fn resolve(
    plan: &CompiledPlan,
    env: &crate::plan::env::ResolvedEnv,
    id: &crate::plan::resolve::RunIdentity,
) -> Option<crate::plan::resolve::Resolved> {
    crate::plan::resolve::resolve(plan, env, id)
        .map_err(|diags| {
            diags
                .iter()
                .for_each(|d| crate::errln!("{}", d.render(Some(&plan.source))))
        })
        .ok()
}

/// Settles the CA file the run trusts: `--ca-file`, else the plan's `target.ca_file`. It must
/// hold at least one PEM certificate; when it does not, says why on stderr (located in the plan
/// when the plan named it) and returns false.
fn ca_file(
    plan: &CompiledPlan,
    resolved: &mut crate::plan::resolve::Resolved,
    flag: Option<&std::path::Path>,
) -> bool {
    if let Some(f) = flag {
        resolved.target.ca_file = Some(f.to_path_buf());
    }
    let Some(path) = &resolved.target.ca_file else {
        return true;
    };
    let Err(why) = crate::engine::http::tls::read_ca_file(path) else {
        return true;
    };
    if flag.is_some() {
        crate::errln!("error: --ca-file: {why}");
    } else {
        let at = plan.spans.value("/target/ca_file");
        let d = crate::plan::diagnostic::Diagnostic::new(&plan.file, at, format!("ca_file: {why}"));
        crate::errln!("{}", d.render(Some(&plan.source)));
    }
    false
}

/// The async runtime (`engine::run::runtime`). Says why on stderr when it cannot start.
pub(super) fn runtime() -> Option<tokio::runtime::Runtime> {
    crate::engine::run::runtime()
        .map_err(|e| crate::errln!("error: cannot start the async runtime: {e}"))
        .ok()
}

/// Raises this process's open-file limit to its hard limit (each user may hold a socket or
/// two: an edge agent keeps its WebSocket for the whole run), and warns when even that is
/// too few for `users`.
fn open_files(users: u64) {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    // An unlimited hard limit still meets the kernel's `nr_open` (2^20 by default).
    let most = limit.maximum.unwrap_or(1 << 20);
    if limit.current.is_some_and(|c| c < most) {
        limit.current = Some(most);
        if setrlimit(Resource::Nofile, limit).is_err() {
            limit = getrlimit(Resource::Nofile);
        }
    }
    let need = users.saturating_mul(2).saturating_add(64);
    if let Some(have) = limit.current
        && have < need
    {
        crate::errln!(
            "warning: {users} users may need {need} open files, and this process may open {have} \
             (`ulimit -Hn` sets the most it can raise to)"
        );
    }
}

/// First Ctrl-C or SIGTERM: graceful stop. Second: stop at once.
pub(super) async fn watch_signals(
    signals: crate::engine::context::StopSignals,
    first: &'static str,
) {
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

/// What the run shows while it goes: the live terminal view (unless `-q`), and the
/// servers of `--web` (live page and /metrics) and `--metrics` (only /metrics).
fn observers(args: &RunArgs) -> Vec<Observer> {
    let mut out: Vec<Observer> = Vec::new();
    let announce = !args.quiet;
    if !args.quiet {
        out.push(Box::new(|v: RunView| {
            Box::pin(crate::output::live::show(
                v.live,
                v.snapshots,
                v.start,
                v.duration,
            ))
        }));
    }
    let same = |m: &String| Some(m) == args.web.as_ref() && !m.ends_with(":0");
    let servers = args.web.iter().map(|w| (w.clone(), true)).chain(
        args.metrics
            .iter()
            .filter(|m| !same(m))
            .map(|m| (m.clone(), false)),
    );
    for (addr, page) in servers {
        out.push(Box::new(move |v: RunView| {
            Box::pin(async move {
                let what = if page { "page" } else { "metrics" };
                let render = page.then(|| {
                    let results = v.results.clone();
                    let f: crate::output::serve::PageFn = std::sync::Arc::new(move |snap| {
                        crate::output::serve::live_html(&results(snap))
                    });
                    f
                });
                match crate::output::serve::start(&addr, v.prometheus, v.snapshots, render, v.stop)
                    .await
                {
                    Ok(bound) if announce => crate::errln!(
                        "live {what} at http://{bound}/{}",
                        if page { "" } else { "metrics" }
                    ),
                    Ok(_) => {}
                    Err(e) => crate::errln!("warning: {e}; running without the live {what}"),
                }
            })
        }));
    }
    out
}
