//! Live endpoints during a run: `--metrics ADDR` serves Prometheus text format and
//! `--web ADDR` a read-only page with the report so far (refreshing itself).

use std::fmt::Write as _;
use std::sync::Arc;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::measure::metrics::{Finished, Live};

/// Renders the live page from the results so far.
pub type PageFn = Arc<dyn Fn(&Finished) -> String + Send + Sync>;

/// An address from the command line; a bare `:PORT` binds to loopback.
pub fn address(addr: &str) -> String {
    if addr.starts_with(':') {
        format!("127.0.0.1{addr}")
    } else {
        addr.to_string()
    }
}

/// Starts one server with `/metrics` (Prometheus) and, when `page` is given, `/`.
pub async fn start(
    addr: &str,
    live: watch::Receiver<Live>,
    snaps: watch::Receiver<Option<Arc<Finished>>>,
    page: Option<PageFn>,
    stop: CancellationToken,
) -> Result<std::net::SocketAddr, String> {
    let addr = address(addr);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let (l2, s2) = (live.clone(), snaps.clone());
    let mut app =
        axum::Router::new().route(
            "/metrics",
            get(move || {
                let text = prometheus(&l2.borrow(), s2.borrow().as_deref());
                async move {
                    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
                }
            }),
        );
    if let Some(page) = page {
        app = app.route(
            "/",
            get(move || {
                let html = match snaps.borrow().as_deref() {
                    Some(s) => page(s),
                    None => "<!doctype html><meta http-equiv=\"refresh\" content=\"1\"><title>acaload</title><p>starting…".to_string(),
                };
                async move { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response() }
            }),
        );
    }
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
    });
    Ok(bound)
}

/// Reads one counter of a step.
type StepCount = fn(&crate::results::StepStats) -> u64;

/// The labels that identify a step's series.
fn step_labels(s: &crate::results::StepStats) -> String {
    format!(
        "phase=\"{:?}\",kind=\"{:?}\",step=\"{}\"",
        s.phase,
        s.kind,
        label(&s.name)
    )
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Prometheus text exposition of the live numbers.
pub fn prometheus(live: &Live, snap: Option<&Finished>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP acaload_users Virtual users running.\n# TYPE acaload_users gauge\nacaload_users {}",
        live.users
    );
    let _ = writeln!(
        out,
        "# HELP acaload_target_users Users the load shape asks for.\n# TYPE acaload_target_users gauge\nacaload_target_users {}",
        live.target
    );
    let _ = writeln!(
        out,
        "# HELP acaload_http_requests_total HTTP requests sent.\n# TYPE acaload_http_requests_total counter\nacaload_http_requests_total {}",
        live.requests
    );
    let _ = writeln!(
        out,
        "# HELP acaload_failures_total Failed steps.\n# TYPE acaload_failures_total counter\nacaload_failures_total {}",
        live.failures
    );
    let Some(snap) = snap else { return out };
    let counters: [(&str, &str, StepCount); 2] = [
        (
            "acaload_step_samples_total",
            "Samples per step (requests, polls, takes, events).",
            |s| s.count,
        ),
        (
            "acaload_step_failures_total",
            "Failed samples per step.",
            |s| s.failures,
        ),
    ];
    for (name, help, value) in counters {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for s in &snap.stats {
            let _ = writeln!(out, "{name}{{{}}} {}", step_labels(s), value(s));
        }
    }
    let _ = writeln!(
        out,
        "# HELP acaload_step_latency_seconds Latency per step since the start.\n# TYPE acaload_step_latency_seconds summary"
    );
    for s in &snap.stats {
        let labels = step_labels(s);
        for (q, v) in [
            ("0.5", s.latency_ms.p50),
            ("0.9", s.latency_ms.p90),
            ("0.95", s.latency_ms.p95),
            ("0.99", s.latency_ms.p99),
        ] {
            let _ = writeln!(
                out,
                "acaload_step_latency_seconds{{{labels},quantile=\"{q}\"}} {}",
                v / 1000.0
            );
        }
        let _ = writeln!(
            out,
            "acaload_step_latency_seconds_sum{{{labels}}} {}",
            s.latency_ms.mean * s.count as f64 / 1000.0
        );
        let _ = writeln!(
            out,
            "acaload_step_latency_seconds_count{{{labels}}} {}",
            s.count
        );
    }
    for a in &snap.agents {
        if let Some(g) = a.samples.last() {
            for (name, v) in [
                ("out_deliver", g.out_deliver),
                ("out_encode", g.out_encode),
                ("in_sessions", g.in_sessions),
                ("task_active", g.task_active),
                ("task_pending", g.task_pending),
            ] {
                if let Some(v) = v {
                    let _ = writeln!(
                        out,
                        "acaload_agent_{name}{{agent=\"{}\"}} {v}",
                        label(&a.name)
                    );
                }
            }
        }
    }
    out
}

/// The live page: the HTML report of the results so far, refreshing itself every 2 s
/// (no scripts, like the offline report).
pub fn live_html(results: &crate::results::Results) -> String {
    match crate::output::html::render(results, &[]) {
        Ok(page) => page.replacen(
            "<head>",
            "<head>\n<meta http-equiv=\"refresh\" content=\"2\">",
            1,
        ),
        Err(e) => format!(
            "<!doctype html><meta http-equiv=\"refresh\" content=\"2\"><title>acaload</title><p>the report could not be rendered: {}",
            e.to_string().replace('<', "&lt;")
        ),
    }
}
