//! Live endpoints during a run: `--metrics ADDR` serves the Prometheus series (OpenMetrics
//! text, see `measure::prometheus`) and `--web ADDR` a read-only page with the report so
//! far (refreshing itself). A plain HTTP/1 server, like the engine's webhook listener.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

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

/// What the server answers from: the series, and the page with the snapshots it shows.
struct Live {
    metrics: Arc<Exporter>,
    snaps: watch::Receiver<Option<Arc<Finished>>>,
    page: Option<PageFn>,
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
    let live = Arc::new(Live {
        metrics,
        snaps,
        page,
    });
    tokio::spawn(serve(listener, stop, move |request| {
        let response = answer(&live, &request);
        async move { response }
    }));
    Ok(bound)
}

/// `GET /metrics`, and `GET /` when there is a page; 404 elsewhere, 405 for other methods.
fn answer(live: &Live, request: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let body = match request.uri().path() {
        "/metrics" => Some((crate::measure::prometheus::CONTENT_TYPE, live.metrics.render())),
        "/" => live.page.as_ref().map(|page| {
            let html = match live.snaps.borrow().as_deref() {
                Some(s) => page(s),
                None => "<!doctype html><meta http-equiv=\"refresh\" content=\"1\"><title>acaload</title><p>starting…".to_string(),
            };
            ("text/html; charset=utf-8", html)
        }),
        _ => None,
    };
    let mut response = Response::new(Full::default());
    match body {
        None => *response.status_mut() = StatusCode::NOT_FOUND,
        Some(_) if !matches!(*request.method(), Method::GET | Method::HEAD) => {
            *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            response
                .headers_mut()
                .insert(ALLOW, hyper::header::HeaderValue::from_static("GET,HEAD"));
        }
        Some((content_type, text)) => {
            *response.body_mut() = Full::new(Bytes::from(text));
            response.headers_mut().insert(
                CONTENT_TYPE,
                hyper::header::HeaderValue::from_static(content_type),
            );
        }
    }
    response
}

/// Serves HTTP/1 on `listener` until `stop`, a task per connection. At `stop` each connection
/// finishes the request it is in and closes; this returns when the last one has. The live
/// endpoints and the trace sink both serve through it.
pub(crate) async fn serve<F, R>(
    listener: tokio::net::TcpListener,
    stop: CancellationToken,
    handle: F,
) where
    F: Fn(Request<hyper::body::Incoming>) -> R + Clone + Send + 'static,
    R: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let connections = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.cancelled() => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            // Out of file descriptors and the like: try again shortly, do not spin.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let handle = handle.clone();
        let stop = stop.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let response = handle(request);
                async move { Ok::<_, Infallible>(response.await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => return,
                _ = stop.cancelled() => {}
            }
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        });
    }
    connections.close();
    connections.wait().await;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The status line, headers (lower-case names) and body of a raw HTTP/1.1 request.
    async fn raw(addr: std::net::SocketAddr, method: &str, path: &str) -> String {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(request.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn serves_the_metrics_and_the_page_and_nothing_else() {
        let metrics = Arc::new(Exporter::new());
        metrics.users(3, 4);
        let (snap_tx, snaps) = watch::channel(None);
        let page: PageFn = Arc::new(|f: &Finished| format!("<p>{} steps", f.stats.len()));
        let stop = CancellationToken::new();
        let addr = start(":0", metrics, snaps, Some(page), stop.clone())
            .await
            .unwrap();
        assert!(addr.ip().is_loopback(), "a bare :PORT is loopback");

        let text = raw(addr, "GET", "/metrics").await;
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(
            text.contains(&format!(
                "content-type: {}\r\n",
                crate::measure::prometheus::CONTENT_TYPE
            )),
            "{text}"
        );
        assert!(text.contains("acaload_users 3\n"), "{text}");

        let starting = raw(addr, "GET", "/").await;
        assert!(starting.starts_with("HTTP/1.1 200 OK\r\n"), "{starting}");
        assert!(starting.contains("content-type: text/html; charset=utf-8\r\n"));
        assert!(starting.ends_with("<p>starting…"), "{starting}");
        snap_tx.send_replace(Some(Arc::new(Finished::default())));
        assert!(raw(addr, "GET", "/").await.ends_with("\r\n\r\n<p>0 steps"));

        let head = raw(addr, "HEAD", "/metrics").await;
        assert!(
            head.starts_with("HTTP/1.1 200 OK\r\n") && head.ends_with("\r\n\r\n"),
            "{head}"
        );
        let post = raw(addr, "POST", "/metrics").await;
        assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
        assert!(post.contains("allow: GET,HEAD\r\n"), "{post}");
        let other = raw(addr, "GET", "/other").await;
        assert!(other.starts_with("HTTP/1.1 404 "), "{other}");

        stop.cancel();
        let closed = async {
            while tokio::net::TcpStream::connect(addr).await.is_ok() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), closed)
            .await
            .expect("a stopped server lets go of its port");
    }

    #[tokio::test]
    async fn without_a_page_the_root_is_not_found() {
        let stop = CancellationToken::new();
        let (_tx, snaps) = watch::channel(None);
        let addr = start("127.0.0.1:0", Arc::new(Exporter::new()), snaps, None, stop)
            .await
            .unwrap();
        assert!(raw(addr, "GET", "/").await.starts_with("HTTP/1.1 404 "));
    }
}
