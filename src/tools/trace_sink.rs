//! `acaload trace-sink`: stands in for logstash as ACA-Py's `--trace-target`. It answers
//! every trace event at once, aggregates `elapsed_milli` by label, `traced_type` and
//! `outcome`, serves the summary as JSON, and can forward raw events to ELK. A plain HTTP/1
//! server, like the engine's webhook listener.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::output::serve::serve;

/// The largest trace event accepted (2 MiB); larger ones are refused (413).
const MAX_EVENT: usize = 2 << 20;

/// Settings of a sink.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    pub listen: String,
    /// Where raw events are re-posted (an Elasticsearch `_doc` URL or a logstash http input).
    pub forward: Option<String>,
}

/// Aggregated trace events.
#[derive(Default)]
pub struct Summary {
    groups: BTreeMap<(String, String, String), Group>,
    pub received: u64,
    pub not_json: u64,
    pub forwarded: u64,
    pub forward_failed: u64,
}

struct Group {
    hist: Histogram<u64>,
}

/// One row of the summary (times in milliseconds, as ACA-Py reports them).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Row {
    pub label: String,
    pub traced_type: String,
    pub outcome: String,
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub max_ms: f64,
}

/// The summary as served and written.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Report {
    pub received: u64,
    pub not_json: u64,
    pub forwarded: u64,
    pub forward_failed: u64,
    pub rows: Vec<Row>,
}

impl Summary {
    /// Adds one trace event (`handler` is the trace label).
    pub fn add(&mut self, event: &serde_json::Value) {
        self.received += 1;
        let s = |k: &str| event[k].as_str().unwrap_or("").to_string();
        // Deliver outcomes carry the URL (`…DELIVER.END.http://host/topic/x/`): group by kind.
        let outcome = s("outcome");
        let outcome = match outcome.find(".http") {
            Some(i) => outcome[..i].to_string(),
            None => outcome,
        };
        let key = (s("handler"), s("traced_type"), outcome);
        let ms = event["elapsed_milli"].as_f64().unwrap_or(0.0).max(0.0);
        let group = self.groups.entry(key).or_insert_with(|| Group {
            hist: crate::measure::histogram::new_histogram(),
        });
        crate::measure::histogram::record(&mut group.hist, (ms * 1000.0) as u64);
    }

    pub fn report(&self) -> Report {
        let rows = self
            .groups
            .iter()
            .map(|((label, traced_type, outcome), g)| {
                let l = crate::measure::histogram::latency(&g.hist);
                Row {
                    label: label.clone(),
                    traced_type: traced_type.clone(),
                    outcome: outcome.clone(),
                    count: g.hist.len(),
                    mean_ms: l.mean,
                    p50_ms: l.p50,
                    p95_ms: l.p95,
                    max_ms: l.max,
                }
            })
            .collect();
        Report {
            received: self.received,
            not_json: self.not_json,
            forwarded: self.forwarded,
            forward_failed: self.forward_failed,
            rows,
        }
    }
}

impl Report {
    /// A table for the terminal.
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut out = format!(
            "trace events: {} received, {} not JSON, {} forwarded, {} failed to forward\n{:<12} {:<48} {:<40} {:>7} {:>9} {:>9} {:>9}\n",
            self.received,
            self.not_json,
            self.forwarded,
            self.forward_failed,
            "label",
            "traced_type",
            "outcome",
            "count",
            "mean ms",
            "p95 ms",
            "max ms"
        );
        for r in &self.rows {
            let _ = writeln!(
                out,
                "{:<12} {:<48} {:<40} {:>7} {:>9.1} {:>9.1} {:>9.1}",
                r.label, r.traced_type, r.outcome, r.count, r.mean_ms, r.p95_ms, r.max_ms
            );
        }
        out
    }
}

#[derive(Clone)]
struct Shared {
    summary: Arc<Mutex<Summary>>,
    forward: Option<mpsc::Sender<Bytes>>,
}

/// Runs the sink until `stop`; returns the final report. `bound` receives the address.
pub async fn run(
    cfg: SinkConfig,
    stop: CancellationToken,
    bound: tokio::sync::oneshot::Sender<std::net::SocketAddr>,
) -> Result<Report, String> {
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let _ = bound.send(addr);
    let summary = Arc::new(Mutex::new(Summary::default()));
    let (forward, forwarder) = match &cfg.forward {
        Some(url) => {
            let (tx, rx) = mpsc::channel(10_000);
            (
                Some(tx),
                Some(tokio::spawn(forward_loop(url.clone(), rx, summary.clone()))),
            )
        }
        None => (None, None),
    };
    let shared = Shared {
        summary: summary.clone(),
        forward,
    };
    serve(listener, stop, move |request| {
        let shared = shared.clone();
        async move { answer(&shared, request).await }
    })
    .await;
    if let Some(f) = forwarder {
        // The server (and its sender) are gone; let queued events go out.
        let _ = tokio::time::timeout(Duration::from_secs(5), f).await;
    }
    let report = summary
        .lock()
        .map(|s| s.report())
        .map_err(|_| "summary lock poisoned".to_string())?;
    Ok(report)
}

/// `GET /summary` is the summary as JSON; any other request is a trace event.
async fn answer(shared: &Shared, request: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let status = |status: StatusCode| {
        let mut response = Response::new(Full::default());
        *response.status_mut() = status;
        response
    };
    if request.uri().path() == "/summary" {
        if !matches!(*request.method(), Method::GET | Method::HEAD) {
            let mut response = status(StatusCode::METHOD_NOT_ALLOWED);
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET,HEAD"));
            return response;
        }
        let mut response = Response::new(Full::new(Bytes::from(serve_summary(shared))));
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return response;
    }
    match Limited::new(request.into_body(), MAX_EVENT).collect().await {
        Ok(body) => {
            receive(shared, body.to_bytes());
            // ACA-Py posts trace events synchronously from its event loop: answer at once.
            status(StatusCode::OK)
        }
        Err(e) if e.is::<LengthLimitError>() => status(StatusCode::PAYLOAD_TOO_LARGE),
        Err(_) => status(StatusCode::BAD_REQUEST),
    }
}

fn receive(shared: &Shared, body: Bytes) {
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(event) => {
            if let Ok(mut s) = shared.summary.lock() {
                s.add(&event);
            }
            if let Some(tx) = &shared.forward
                && tx.try_send(body).is_err()
                && let Ok(mut s) = shared.summary.lock()
            {
                s.forward_failed += 1;
            }
        }
        Err(_) => {
            if let Ok(mut s) = shared.summary.lock() {
                s.not_json += 1;
            }
        }
    }
}

/// The summary as JSON.
fn serve_summary(shared: &Shared) -> Vec<u8> {
    let report = shared.summary.lock().map(|s| s.report()).unwrap_or(Report {
        received: 0,
        not_json: 0,
        forwarded: 0,
        forward_failed: 0,
        rows: Vec::new(),
    });
    serde_json::to_vec(&report).unwrap_or_default()
}

async fn forward_loop(url: String, mut rx: mpsc::Receiver<Bytes>, summary: Arc<Mutex<Summary>>) {
    // reqwest has no crypto provider of its own here: it uses rustls's process default.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = match reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(_) => return,
    };
    while let Some(body) = rx.recv().await {
        let ok = client
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if let Ok(mut s) = summary.lock() {
            if ok {
                s.forwarded += 1;
            } else {
                s.forward_failed += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_by_label_type_and_outcome_kind() {
        let mut s = Summary::default();
        for (outcome, ms) in [
            ("Dispatcher.handle_message.END", 3.0),
            ("Dispatcher.handle_message.END", 5.0),
            (
                "OutboundTransportManager.DELIVER.END.http://127.0.0.1:3010",
                7.0,
            ),
        ] {
            s.add(&serde_json::json!({"handler": "mediator", "traced_type": "https://didcomm.org/routing/1.0/forward", "outcome": outcome, "elapsed_milli": ms}));
        }
        let r = s.report();
        assert_eq!(r.received, 3);
        assert_eq!(r.rows.len(), 2);
        assert_eq!(
            (r.rows[0].outcome.as_str(), r.rows[0].count),
            ("Dispatcher.handle_message.END", 2)
        );
        assert_eq!(r.rows[1].outcome, "OutboundTransportManager.DELIVER.END");
        assert!((r.rows[0].mean_ms - 4.0).abs() < 0.01);
    }

    /// Starts a sink on a free loopback port; returns its address and its report's task.
    async fn sink(
        forward: Option<String>,
        stop: &CancellationToken,
    ) -> (
        std::net::SocketAddr,
        tokio::task::JoinHandle<Result<Report, String>>,
    ) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let cfg = SinkConfig {
            listen: "127.0.0.1:0".into(),
            forward,
        };
        let task = tokio::spawn(run(cfg, stop.clone(), tx));
        (rx.await.unwrap(), task)
    }

    #[tokio::test]
    async fn receives_events_serves_the_summary_and_forwards() {
        let (elk_stop, stop) = (CancellationToken::new(), CancellationToken::new());
        let (elk, elk_report) = sink(None, &elk_stop).await;
        let (addr, report) = sink(Some(format!("http://{elk}/")), &stop).await;
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let event = serde_json::json!({"handler": "mediator", "traced_type": "t", "outcome": "o", "elapsed_milli": 2.0});
        for path in ["/", "/any/path"] {
            let r = client
                .post(format!("http://{addr}{path}"))
                .json(&event)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), reqwest::StatusCode::OK);
        }
        let r = client
            .post(format!("http://{addr}/"))
            .body("not json")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::OK, "answered all the same");
        let r = client
            .post(format!("http://{addr}/"))
            .body(vec![b' '; MAX_EVENT + 1])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::PAYLOAD_TOO_LARGE);
        let r = client
            .post(format!("http://{addr}/summary"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::METHOD_NOT_ALLOWED);

        let r = client
            .get(format!("http://{addr}/summary"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["content-type"], "application/json");
        let served: Report = r.json().await.unwrap();
        assert_eq!((served.received, served.not_json), (2, 1));
        assert_eq!(served.rows.len(), 1);
        assert_eq!(served.rows[0].count, 2);

        stop.cancel();
        let report = report.await.unwrap().unwrap();
        assert_eq!((report.received, report.not_json), (2, 1));
        assert_eq!((report.forwarded, report.forward_failed), (2, 0));
        elk_stop.cancel();
        let elk_report = elk_report.await.unwrap().unwrap();
        assert_eq!(elk_report.received, 2, "the raw events were forwarded");
        assert_eq!(elk_report.rows[0].label, "mediator");
    }
}
