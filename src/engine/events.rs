//! Agent events: ACA-Py webhooks (an embedded listener) or the admin websocket, kept
//! per tenant wallet so `wait_event` steps can find them, including events that came
//! before the wait started.
//!
//! A webhook is kept as the bytes received and parsed only when a wait looks at it: events
//! on topics no step waits for (`out_of_band`, `keylist`, …) are never parsed.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt as _;
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::{Method, Request, Response, StatusCode};
use tokio_util::sync::CancellationToken;

/// Events kept per wallet; older ones are dropped (a wait looks at recent events only).
const KEEP_PER_WALLET: usize = 512;

/// Wallets whose events are kept; past it, those quiet the longest are forgotten.
pub const MAX_WALLETS: usize = 100_000;

/// The largest webhook body or websocket frame accepted (1 MiB); larger ones are refused
/// (413) and not kept.
pub const MAX_EVENT_BODY: usize = 1 << 20;

/// One event from an agent.
#[derive(Debug, Clone)]
pub struct AgentEvent {
    pub seq: u64,
    pub received: Instant,
    pub topic: Arc<str>,
    pub payload: Arc<Payload>,
    hash: u64,
}

/// An event's body: as received, parsed as JSON the first time a wait looks at it (and
/// then kept parsed for every other wait).
#[derive(Debug)]
pub struct Payload {
    raw: Bytes,
    json: OnceLock<Option<Arc<serde_json::Value>>>,
}

impl Payload {
    /// A body as received.
    pub fn raw(raw: Bytes) -> Payload {
        Payload {
            raw,
            json: OnceLock::new(),
        }
    }

    /// A body parsed already (a websocket frame's `payload`).
    pub fn parsed(value: serde_json::Value) -> Payload {
        Payload {
            raw: Bytes::new(),
            json: OnceLock::from(Some(Arc::new(value))),
        }
    }

    /// The body as JSON; `None` when it is not JSON.
    pub fn json(&self) -> Option<&Arc<serde_json::Value>> {
        self.json
            .get_or_init(|| serde_json::from_slice(&self.raw).ok().map(Arc::new))
            .as_ref()
    }
}

#[derive(Default)]
struct WalletLog {
    events: VecDeque<AgentEvent>,
    notify: Arc<tokio::sync::Notify>,
    /// The hub's sequence number when the wallet was last used (pushed to or waited on).
    touched: u64,
}

/// All events of a run, by wallet id (`""` for the agent's base wallet).
pub struct EventHub {
    wallets: Mutex<HashMap<String, WalletLog>>,
    /// At most this many wallets are kept ([`MAX_WALLETS`]).
    max_wallets: usize,
    seq: std::sync::atomic::AtomicU64,
    pub received: std::sync::atomic::AtomicU64,
    pub duplicates: std::sync::atomic::AtomicU64,
}

impl Default for EventHub {
    fn default() -> EventHub {
        EventHub::with_max_wallets(MAX_WALLETS)
    }
}

impl std::fmt::Debug for EventHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventHub")
    }
}

impl EventHub {
    /// A hub that keeps the events of at most `max` wallets.
    pub fn with_max_wallets(max: usize) -> EventHub {
        EventHub {
            wallets: Mutex::default(),
            max_wallets: max.max(1),
            seq: Default::default(),
            received: Default::default(),
            duplicates: Default::default(),
        }
    }

    /// The log of `wallet`, made on first use; over the bound, the tenth of the wallets
    /// quiet the longest is forgotten first (amortised: one sort per many new wallets).
    fn log<'a>(
        &self,
        wallets: &'a mut HashMap<String, WalletLog>,
        wallet: &str,
    ) -> &'a mut WalletLog {
        use std::sync::atomic::Ordering::Relaxed;
        if !wallets.contains_key(wallet) {
            if wallets.len() >= self.max_wallets {
                let mut quiet: Vec<(u64, String)> = wallets
                    .iter()
                    .map(|(k, l)| (l.touched, k.clone()))
                    .collect();
                quiet.sort_unstable();
                let drop = (self.max_wallets / 10).max(1);
                for (_, k) in quiet.into_iter().take(drop) {
                    wallets.remove(&k);
                }
            }
            // The id is copied once per wallet, not once per event.
            wallets.insert(wallet.to_string(), WalletLog::default());
        }
        let log = wallets.get_mut(wallet).expect("inserted above");
        log.touched = self.seq.load(Relaxed);
        log
    }

    /// How many wallets have events (or waiters) kept.
    #[cfg(test)]
    pub fn wallets(&self) -> usize {
        self.wallets.lock().map_or(0, |w| w.len())
    }

    /// Stores an event; identical redeliveries (ACA-Py retries) are dropped.
    #[cfg(test)]
    pub fn push(&self, wallet: &str, topic: &str, payload: serde_json::Value) {
        self.push_received(wallet, topic, payload, Instant::now());
    }

    /// Stores a parsed event that arrived at `received` (stamped by the listener on
    /// arrival, before any lock: a busy hub does not add to delivery latency).
    pub fn push_received(
        &self,
        wallet: &str,
        topic: &str,
        payload: serde_json::Value,
        received: Instant,
    ) {
        let hash = event_hash(topic, payload.to_string().as_bytes());
        self.keep(wallet, topic, Payload::parsed(payload), hash, received);
    }

    /// Stores a webhook body as received; it is parsed when a wait first looks at it.
    pub fn push_raw(&self, wallet: &str, topic: &str, body: Bytes, received: Instant) {
        let hash = event_hash(topic, &body);
        self.keep(wallet, topic, Payload::raw(body), hash, received);
    }

    fn keep(&self, wallet: &str, topic: &str, payload: Payload, hash: u64, received: Instant) {
        use std::sync::atomic::Ordering::Relaxed;
        self.received.fetch_add(1, Relaxed);
        let Ok(mut wallets) = self.wallets.lock() else {
            return;
        };
        let log = self.log(&mut wallets, wallet);
        if log.events.iter().any(|e| e.hash == hash) {
            self.duplicates.fetch_add(1, Relaxed);
            return;
        }
        if log.events.len() >= KEEP_PER_WALLET {
            log.events.pop_front();
        }
        let seq = self.seq.fetch_add(1, Relaxed);
        log.events.push_back(AgentEvent {
            seq,
            received,
            topic: topic.into(),
            payload: Arc::new(payload),
            hash,
        });
        log.notify.notify_waiters();
    }

    /// Waits for the first event of `wallet` on `topic`, received at or after `since` and
    /// not in `skip`, whose payload is JSON and for which `matches` holds; returns it with
    /// its payload. None on timeout. Payloads are parsed and `matches` runs without the
    /// hub's lock (on copies of the candidates), so neither holds up arriving events.
    pub async fn wait(
        &self,
        wallet: &str,
        topic: &str,
        since: Instant,
        skip: &[u64],
        timeout: Duration,
        mut matches: impl FnMut(&AgentEvent, &Arc<serde_json::Value>) -> bool,
    ) -> Option<(AgentEvent, Arc<serde_json::Value>)> {
        let deadline = tokio::time::Instant::now() + timeout;
        // Events up to this sequence number were looked at already.
        let mut seen: Option<u64> = None;
        loop {
            let notify;
            let mut notified;
            let candidates: Vec<AgentEvent>;
            {
                let Ok(mut wallets) = self.wallets.lock() else {
                    return None;
                };
                let log = self.log(&mut wallets, wallet);
                candidates = log
                    .events
                    .iter()
                    .filter(|e| {
                        seen.is_none_or(|s| e.seq > s)
                            && &*e.topic == topic
                            && e.received >= since
                            && !skip.contains(&e.seq)
                    })
                    .cloned()
                    .collect();
                seen = log.events.back().map(|e| e.seq).or(seen);
                // Registered under the lock that `push` notifies under: no wake-up is missed,
                // also while the candidates are looked at below.
                notify = log.notify.clone();
                notified = Box::pin(notify.notified());
                notified.as_mut().enable();
            }
            for e in candidates {
                if let Some(json) = e.payload.json().cloned()
                    && matches(&e, &json)
                {
                    return Some((e, json));
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }
}

/// What makes two deliveries the same event: its topic and its body's bytes (ACA-Py
/// resends the same body when it retries).
fn event_hash(topic: &str, body: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    topic.hash(&mut h);
    body.hash(&mut h);
    h.finish()
}

/// Starts the webhook listener: `POST …/topic/{topic}/` with `x-wallet-id`; answers 200 at
/// once. A plain HTTP/1 server: one task per agent connection (ACA-Py keeps them alive).
pub async fn listen(
    addr: &str,
    hub: Arc<EventHub>,
    stop: CancellationToken,
) -> Result<SocketAddr, String> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen for webhooks on {addr}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = stop.cancelled() => return,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                // Out of file descriptors and the like: try again shortly, do not spin.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let hub = hub.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let hub = hub.clone();
                    async move { Ok::<_, Infallible>(webhook(&hub, request).await) }
                });
                let connection = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                tokio::select! {
                    _ = connection => {}
                    _ = stop.cancelled() => {}
                }
            });
        }
    });
    Ok(bound)
}

/// The topic of a webhook path: `/topic/{topic}/`, `/topic/{topic}` or
/// `/{prefix}/topic/{topic}/`.
fn topic_of(path: &str) -> Option<&str> {
    let path = path.strip_prefix('/')?;
    let path = path.strip_suffix('/').unwrap_or(path);
    let mut segments = path.rsplit('/');
    let topic = segments.next().filter(|t| !t.is_empty())?;
    (segments.next()? == "topic").then_some(())?;
    match (segments.next(), segments.next()) {
        (None, _) => Some(topic),
        (Some(prefix), None) if !prefix.is_empty() => Some(topic),
        _ => None,
    }
}

async fn webhook(
    hub: &EventHub,
    request: Request<hyper::body::Incoming>,
) -> Response<Empty<Bytes>> {
    let arrived = Instant::now();
    let answer = |status: StatusCode| {
        let mut response = Response::new(Empty::new());
        *response.status_mut() = status;
        response
    };
    let (parts, body) = request.into_parts();
    let Some(topic) = topic_of(parts.uri.path()) else {
        return answer(StatusCode::NOT_FOUND);
    };
    if parts.method != Method::POST {
        return answer(StatusCode::METHOD_NOT_ALLOWED);
    }
    // At most MAX_EVENT_BODY bytes are read; a larger body is refused and not kept.
    let Ok(body) = Limited::new(body, MAX_EVENT_BODY).collect().await else {
        return answer(StatusCode::PAYLOAD_TOO_LARGE);
    };
    let wallet = parts
        .headers
        .get("x-wallet-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // A copy of the exact size: the received chunk may share a far larger read buffer,
    // which the hub would otherwise keep alive with the event.
    hub.push_raw(
        wallet,
        topic,
        Bytes::copy_from_slice(&body.to_bytes()),
        arrived,
    );
    answer(StatusCode::OK)
}

/// Opens a websocket on a TCP or TLS connection made with the run's TLS settings.
async fn open_websocket(
    request: tokio_tungstenite::tungstenite::handshake::client::Request,
    tls: &crate::engine::http::tls::Tls,
    config: tokio_tungstenite::tungstenite::protocol::WebSocketConfig,
) -> Result<tokio_tungstenite::WebSocketStream<crate::engine::http::tls::Stream>, String> {
    let (host, port, secure) = crate::engine::http::tls::websocket_address(request.uri())?;
    let stream = tls.connect(&host, port, secure).await?;
    tokio_tungstenite::client_async_with_config(request, stream, Some(config))
        .await
        .map(|(ws, _)| ws)
        .map_err(|e| e.to_string())
}

/// Follows the admin websocket (`/ws`, `wss://` over the run's TLS), routing frames by
/// `wallet_id`; reconnects until stopped. Keep-alive frames (`topic: ping` without payload)
/// are ignored.
pub async fn follow_websocket(
    url: String,
    api_key: Option<String>,
    tls: crate::engine::http::tls::Tls,
    hub: Arc<EventHub>,
    stop: CancellationToken,
    ready: tokio::sync::oneshot::Sender<Result<(), String>>,
) {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut ready = Some(ready);
    while !stop.is_cancelled() {
        let mut request = match url.as_str().into_client_request() {
            Ok(r) => r,
            Err(e) => {
                if let Some(r) = ready.take() {
                    let _ = r.send(Err(format!("bad websocket URL {url}: {e}")));
                }
                return;
            }
        };
        if let Some(key) = &api_key
            && let Ok(v) = key.parse()
        {
            request.headers_mut().insert("x-api-key", v);
        }
        // Frames are capped like webhook bodies.
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(MAX_EVENT_BODY))
            .max_frame_size(Some(MAX_EVENT_BODY));
        let connected = tokio::select! {
            r = open_websocket(request, &tls, config) => r,
            _ = stop.cancelled() => return,
        };
        let mut ws = match connected {
            Ok(ws) => ws,
            Err(e) => {
                if let Some(r) = ready.take() {
                    let _ = r.send(Err(format!("cannot open the admin websocket {url}: {e}")));
                    return;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        loop {
            let msg = tokio::select! {
                m = ws.next() => m,
                _ = stop.cancelled() => return,
            };
            let Some(Ok(msg)) = msg else { break };
            let arrived = Instant::now();
            let Ok(text) = msg.to_text() else { continue };
            let Ok(frame) = serde_json::from_str::<serde_json::Value>(text) else {
                continue;
            };
            let topic = frame["topic"].as_str().unwrap_or_default();
            if topic == "settings" {
                let ok = frame["payload"]["authenticated"].as_bool() == Some(true);
                if let Some(r) = ready.take() {
                    let _ = r.send(if ok { Ok(()) } else { Err(format!("the admin websocket {url} did not accept the API key (authenticated: false)")) });
                }
                continue;
            }
            let Some(payload) = frame.get("payload") else {
                continue;
            };
            let wallet = frame["wallet_id"].as_str().unwrap_or("");
            hub.push_received(wallet, topic, payload.clone(), arrived);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn events_are_stamped_on_arrival_while_a_waiter_evaluates_its_condition() {
        let hub = Arc::new(EventHub::default());
        let since = Instant::now();
        hub.push("w1", "basicmessages", json!({"content": "old"}));
        let (inside, entered) = std::sync::mpsc::channel();
        let h = hub.clone();
        let waiter = tokio::spawn(async move {
            let mut inside = Some(inside);
            h.wait(
                "w1",
                "basicmessages",
                since,
                &[],
                Duration::from_secs(5),
                |_, payload| {
                    // A slow condition (a large payload, a complex `until`).
                    if let Some(tx) = inside.take() {
                        tx.send(()).unwrap();
                        std::thread::sleep(Duration::from_millis(300));
                    }
                    payload["content"] == "new"
                },
            )
            .await
        });
        let h = hub.clone();
        let pusher = std::thread::spawn(move || {
            entered.recv().unwrap();
            let arrived = Instant::now();
            h.push("w1", "basicmessages", json!({"content": "new"}));
            (arrived, arrived.elapsed())
        });
        let (arrived, push_took) = pusher.join().unwrap();
        assert!(
            push_took < Duration::from_millis(150),
            "an arriving event waited {push_took:?} for a waiter's condition"
        );
        let (found, _) = waiter.await.unwrap().unwrap();
        let stamped = found.received.saturating_duration_since(arrived);
        assert!(
            stamped < Duration::from_millis(150),
            "stamped {stamped:?} after it arrived"
        );
    }

    #[tokio::test]
    async fn keeps_a_bounded_number_of_wallets_the_quiet_ones_go_first() {
        let hub = EventHub::with_max_wallets(10);
        hub.push("busy", "ping", json!({"n": 0}));
        for i in 0..50 {
            hub.push(&format!("w{i}"), "ping", json!({"n": i}));
            hub.push("busy", "ping", json!({"n": i + 1}));
        }
        assert!(hub.wallets() <= 10, "{} wallets kept", hub.wallets());
        let kept = |w: &str| {
            let hub = &hub;
            let w = w.to_string();
            async move {
                hub.wait(
                    &w,
                    "ping",
                    Instant::now() - Duration::from_secs(60),
                    &[],
                    Duration::ZERO,
                    |_, _| true,
                )
                .await
                .is_some()
            }
        };
        assert!(kept("busy").await, "a wallet in use stays");
        assert!(kept("w49").await, "the newest wallet stays");
        assert!(!kept("w0").await, "the quietest wallet went");
    }

    #[tokio::test]
    async fn webhook_bodies_over_the_cap_are_refused_and_not_kept() {
        let hub = Arc::new(EventHub::default());
        let stop = CancellationToken::new();
        let addr = listen("127.0.0.1:0", hub.clone(), stop.clone())
            .await
            .unwrap();
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let post = |body: String| {
            client
                .post(format!("http://{addr}/topic/ping/"))
                .header("x-wallet-id", "w1")
                .header("content-type", "application/json")
                .body(body)
                .send()
        };
        let big = format!(
            r#"{{"pad":"{}"}}"#,
            "x".repeat(MAX_EVENT_BODY + MAX_EVENT_BODY / 2)
        );
        assert_eq!(post(big).await.unwrap().status(), 413);
        assert_eq!(post(r#"{"n":1}"#.into()).await.unwrap().status(), 200);
        assert_eq!(hub.received.load(std::sync::atomic::Ordering::Relaxed), 1);
        stop.cancel();
    }

    #[test]
    fn webhook_paths_name_their_topic() {
        assert_eq!(topic_of("/topic/ping/"), Some("ping"));
        assert_eq!(topic_of("/topic/ping"), Some("ping"));
        assert_eq!(
            topic_of("/tenant-7/topic/basicmessages/"),
            Some("basicmessages")
        );
        for bad in [
            "/topic/",
            "/topic//",
            "/ping/",
            "/a/b/topic/ping/",
            "//topic/ping/",
            "topic/ping",
        ] {
            assert_eq!(topic_of(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn bodies_are_parsed_when_looked_at_and_retries_are_dropped_by_their_bytes() {
        let hub = EventHub::default();
        let since = Instant::now();
        let body = Bytes::from_static(br#"{"state": "active", "connection_id": "c1"}"#);
        hub.push_raw("w1", "connections", Bytes::from_static(b"not json"), since);
        hub.push_raw("w1", "connections", body.clone(), since);
        hub.push_raw("w1", "connections", body, since);
        use std::sync::atomic::Ordering::Relaxed;
        assert_eq!(
            (hub.received.load(Relaxed), hub.duplicates.load(Relaxed)),
            (3, 1)
        );
        let mut looked = Vec::new();
        let (event, payload) = hub
            .wait("w1", "connections", since, &[], Duration::ZERO, |e, p| {
                looked.push(e.seq);
                p["state"] == "active"
            })
            .await
            .unwrap();
        assert_eq!(payload["connection_id"], "c1");
        assert_eq!(
            looked,
            [event.seq],
            "the body that is not JSON is never offered"
        );
    }

    #[tokio::test]
    async fn finds_earlier_events_and_waits_for_later_ones() {
        let hub = Arc::new(EventHub::default());
        let since = Instant::now();
        hub.push("w1", "basicmessages", json!({"content": "n1"}));
        hub.push("w1", "basicmessages", json!({"content": "n1"}));
        assert_eq!(hub.duplicates.load(std::sync::atomic::Ordering::Relaxed), 1);
        let e = hub
            .wait(
                "w1",
                "basicmessages",
                since,
                &[],
                Duration::from_millis(10),
                |_, p| p["content"] == "n1",
            )
            .await;
        assert!(e.is_some(), "an event from before the wait is found");
        // The waiter says when it has looked at what is there (n1): from then on only a
        // wake-up from `push` can end its wait before the 5 s timeout.
        let (looked, mut has_looked) = tokio::sync::mpsc::unbounded_channel();
        let h = hub.clone();
        let later = tokio::spawn(async move {
            h.wait(
                "w1",
                "basicmessages",
                since,
                &[],
                Duration::from_secs(5),
                |_, p| {
                    let _ = looked.send(());
                    p["content"] == "n2"
                },
            )
            .await
        });
        has_looked.recv().await.unwrap();
        let pushed = Instant::now();
        hub.push("w2", "basicmessages", json!({"content": "n2"}));
        hub.push("w1", "basicmessages", json!({"content": "n2"}));
        let (_, found) = later.await.unwrap().unwrap();
        assert_eq!(found["content"], "n2");
        assert!(
            pushed.elapsed() < Duration::from_secs(2),
            "woken by the push, not by the timeout"
        );
        let none = hub
            .wait(
                "w1",
                "ping",
                since,
                &[],
                Duration::from_millis(20),
                |_, _| true,
            )
            .await;
        assert!(none.is_none());
    }
}
