//! Live endpoints during a run: `--metrics ADDR` serves the Prometheus series (OpenMetrics
//! text, see `measure::prometheus`) and `--web ADDR` a read-only page with the report so
//! far (refreshing itself).

use std::sync::Arc;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::measure::metrics::Finished;
use crate::measure::prometheus::Exporter;

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
    metrics: Arc<Exporter>,
    snaps: watch::Receiver<Option<Arc<Finished>>>,
    page: Option<PageFn>,
    stop: CancellationToken,
) -> Result<std::net::SocketAddr, String> {
    let addr = address(addr);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let mut app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let text = metrics.render();
            async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        crate::measure::prometheus::CONTENT_TYPE,
                    )],
                    text,
                )
                    .into_response()
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
