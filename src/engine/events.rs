//! Agent events: ACA-Py webhooks (an embedded listener) or the admin websocket, kept
//! per tenant wallet so `wait_event` steps can find them, including events that came
//! before the wait started.

use std::collections::{HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use futures_util::StreamExt as _;
use tokio_util::sync::CancellationToken;

/// Events kept per wallet; older ones are dropped (a wait looks at recent events only).
const KEEP_PER_WALLET: usize = 512;

/// One event from an agent.
#[derive(Debug, Clone)]
pub struct AgentEvent {
    pub seq: u64,
    pub received: Instant,
    pub topic: String,
    pub payload: Arc<serde_json::Value>,
    hash: u64,
}

#[derive(Default)]
struct WalletLog {
    events: VecDeque<AgentEvent>,
    notify: Arc<tokio::sync::Notify>,
}

/// All events of a run, by wallet id (`""` for the agent's base wallet).
#[derive(Default)]
pub struct EventHub {
    wallets: Mutex<HashMap<String, WalletLog>>,
    seq: std::sync::atomic::AtomicU64,
    pub received: std::sync::atomic::AtomicU64,
    pub duplicates: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for EventHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventHub")
    }
}

impl EventHub {
    /// Stores an event; identical redeliveries (ACA-Py retries) are dropped.
    pub fn push(&self, wallet: &str, topic: &str, payload: serde_json::Value) {
        use std::sync::atomic::Ordering::Relaxed;
        self.received.fetch_add(1, Relaxed);
        let mut h = DefaultHasher::new();
        topic.hash(&mut h);
        payload.to_string().hash(&mut h);
        let hash = h.finish();
        let Ok(mut wallets) = self.wallets.lock() else {
            return;
        };
        let log = wallets.entry(wallet.to_string()).or_default();
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
            received: Instant::now(),
            topic: topic.to_string(),
            payload: Arc::new(payload),
            hash,
        });
        log.notify.notify_waiters();
    }

    /// Waits for the first event of `wallet` on `topic`, received at or after `since` and
    /// not in `skip`, for which `matches` holds. None on timeout.
    pub async fn wait(
        &self,
        wallet: &str,
        topic: &str,
        since: Instant,
        skip: &[u64],
        timeout: Duration,
        mut matches: impl FnMut(&AgentEvent) -> bool,
    ) -> Option<AgentEvent> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notify;
            let mut notified;
            {
                let Ok(mut wallets) = self.wallets.lock() else {
                    return None;
                };
                let log = wallets.entry(wallet.to_string()).or_default();
                if let Some(e) = log.events.iter().find(|e| {
                    e.topic == topic && e.received >= since && !skip.contains(&e.seq) && matches(e)
                }) {
                    return Some(e.clone());
                }
                // Registered under the lock that `push` notifies under: no wake-up is missed.
                notify = log.notify.clone();
                notified = Box::pin(notify.notified());
                notified.as_mut().enable();
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }
}

/// Starts the webhook listener: `POST …/topic/{topic}/` with `x-wallet-id`; answers 200 at once.
pub async fn listen(
    addr: &str,
    hub: Arc<EventHub>,
    stop: CancellationToken,
) -> Result<SocketAddr, String> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen for webhooks on {addr}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let app = axum::Router::new()
        .route("/topic/{topic}/", post(webhook))
        .route("/topic/{topic}", post(webhook))
        .route("/{prefix}/topic/{topic}/", post(prefixed_webhook))
        .with_state(hub);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
    });
    Ok(bound)
}

async fn webhook(
    State(hub): State<Arc<EventHub>>,
    Path(topic): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let wallet = headers
        .get("x-wallet-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if let Ok(payload) = serde_json::from_slice(&body) {
        hub.push(wallet, &topic, payload);
    }
    StatusCode::OK
}

async fn prefixed_webhook(
    State(hub): State<Arc<EventHub>>,
    Path((_prefix, topic)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    webhook(State(hub), Path(topic), headers, body).await
}

/// Follows the admin websocket (`/ws`), routing frames by `wallet_id`; reconnects
/// until stopped. Keep-alive frames (`topic: ping` without payload) are ignored.
pub async fn follow_websocket(
    url: String,
    api_key: Option<String>,
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
        let connected = tokio::select! {
            r = tokio_tungstenite::connect_async(request) => r,
            _ = stop.cancelled() => return,
        };
        let mut ws = match connected {
            Ok((ws, _)) => ws,
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
            hub.push(wallet, topic, payload.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
                |e| e.payload["content"] == "n1",
            )
            .await;
        assert!(e.is_some(), "an event from before the wait is found");
        let h = hub.clone();
        let later = tokio::spawn(async move {
            h.wait(
                "w1",
                "basicmessages",
                since,
                &[],
                Duration::from_secs(5),
                |e| e.payload["content"] == "n2",
            )
            .await
        });
        tokio::task::yield_now().await;
        hub.push("w2", "basicmessages", json!({"content": "n2"}));
        hub.push("w1", "basicmessages", json!({"content": "n2"}));
        assert_eq!(later.await.unwrap().unwrap().payload["content"], "n2");
        let none = hub
            .wait("w1", "ping", since, &[], Duration::from_millis(20), |_| {
                true
            })
            .await;
        assert!(none.is_none());
    }
}
