//! One task per agent socket: it always reads (so the mediator's heartbeat pings are answered
//! well inside its 1.5 s pong deadline; tungstenite queues the pong and flushes it on the next
//! read or write), writes what the agent sends, unpacks each frame once and routes it to the
//! inbox, answers the peer's trust pings, and — when the plan opts in — sends a drain ping
//! after every received message.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::inbox::{Arrival, Taken};
use super::{EdgeHub, Shared};
use crate::didcomm::decorators::Thread;
use crate::didcomm::envelope::{pack_authcrypt, unpack};
use crate::didcomm::forward::pack_for_service;
use crate::didcomm::incoming::Message;
use crate::didcomm::message_type as mt;
use crate::didcomm::messages::{TrustPing, TrustPingResponse, new_id, to_plaintext};
use crate::measure::metrics::{Event, Failure};
use crate::plan::Phase;
use crate::results::StatKind;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Small buffers: thousands of sockets in one process (see the DIDComm reference notes, §6).
fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
}

/// Opens the socket.
pub async fn open(url: &str) -> Result<Ws, String> {
    match tokio_tungstenite::connect_async_with_config(url, Some(config()), true).await {
        Ok((ws, _)) => Ok(ws),
        Err(e) => Err(format!(
            "WebSocket {url}: {}",
            crate::engine::http::root_cause(&e)
        )),
    }
}

/// Reads and writes `ws` until the agent drops its sender or the socket ends.
pub async fn run(
    mut ws: Ws,
    shared: Arc<Shared>,
    hub: Arc<EdgeHub>,
    mut out: mpsc::Receiver<String>,
) {
    let why = loop {
        tokio::select! {
            frame = ws.next() => {
                let at = Instant::now();
                let bytes = match frame {
                    Some(Ok(Frame::Text(t))) => t.as_bytes().to_vec(),
                    Some(Ok(Frame::Binary(b))) => b.to_vec(),
                    Some(Ok(Frame::Close(c))) => {
                        break format!("the mediator closed the socket{}", c.map(|c| format!(" ({} {})", c.code, c.reason)).unwrap_or_default());
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => break format!("socket error: {}", crate::engine::http::root_cause(&e)),
                    None => break "the socket ended".to_string(),
                };
                hub.received.fetch_add(1, Ordering::Relaxed);
                if let Some(reply) = take_in(&bytes, at, &shared, &hub)
                    && let Err(e) = ws.send(Frame::text(reply)).await
                {
                    break format!("socket error: {}", crate::engine::http::root_cause(&e));
                }
            }
            msg = out.recv() => match msg {
                Some(text) => {
                    if let Err(e) = ws.send(Frame::text(text)).await {
                        break format!("socket error: {}", crate::engine::http::root_cause(&e));
                    }
                }
                None => {
                    // the agent is done with it: close cleanly
                    let _ = ws.close(None).await;
                    break "the socket was closed by the agent".to_string();
                }
            }
        }
    };
    shared.inbox.close(why);
}

/// Unpacks and routes one frame; returns a drain ping to write, when the agent drains.
fn take_in(bytes: &[u8], at: Instant, shared: &Arc<Shared>, hub: &Arc<EdgeHub>) -> Option<String> {
    let unpacked = {
        let keys = shared.keys.lock().ok()?;
        unpack(bytes, &*keys)
    };
    let parsed = unpacked.map_err(|e| e.to_string()).and_then(|u| {
        Message::parse(&u.plaintext)
            .map(|m| (u, m))
            .map_err(|e| e.to_string())
    });
    let (unpacked, (header, message)) = match parsed {
        Ok(x) => x,
        Err(why) => {
            // not ours or malformed: counted, never a panic
            hub.recorder.send(Event::Sample {
                phase: Phase::Tasks,
                kind: StatKind::Event,
                name: Arc::from("unreadable message on socket"),
                method: None,
                micros: 0,
                at,
                failure: Some(Failure {
                    reason: "a frame could not be unpacked or parsed".into(),
                    detail: why,
                }),
            });
            return None;
        }
    };
    match &message {
        Message::TrustPing(p) if p.response_requested => {
            answer_peer_ping(shared, hub, &header.id, unpacked.sender_verkey.as_deref())
        }
        Message::BasicMessage(_) => match shared.inbox.take_in(&header.id) {
            Taken::New => {}
            Taken::Duplicate => {
                hub.duplicates.fetch_add(1, Ordering::Relaxed);
                hub.recorder.send(Event::Sample {
                    phase: Phase::Tasks,
                    kind: StatKind::Event,
                    name: Arc::from("duplicate delivery"),
                    method: None,
                    micros: 0,
                    at,
                    failure: Some(Failure {
                        reason: "a message was delivered a second time".into(),
                        detail: format!("message {}", header.id),
                    }),
                });
                return drain_ping(shared);
            }
            Taken::Late(l) => {
                // its wait counted it lost; it was held (in the mediator's undelivered queue)
                hub.recorder.send(Event::Sample {
                    phase: Phase::Tasks,
                    kind: StatKind::Event,
                    name: Arc::from(format!("{} (held, arrived late)", l.step)),
                    method: None,
                    micros: at.saturating_duration_since(l.sent).as_micros() as u64,
                    at: l.sent,
                    failure: None,
                });
                return drain_ping(shared);
            }
        },
        _ => {}
    }
    shared.inbox.deliver(Arrival {
        at,
        header,
        message,
        sender: unpacked.sender_verkey,
    });
    drain_ping(shared)
}

/// A trust ping (no response wanted) to the mediator, when the agent drains.
fn drain_ping(shared: &Shared) -> Option<String> {
    if !shared.drain.load(Ordering::Relaxed) {
        return None;
    }
    let (mine, theirs) = shared.mediator.lock().ok()?.clone()?;
    let plaintext = to_plaintext(&TrustPing::new(false)).ok()?;
    pack_authcrypt(&plaintext, std::slice::from_ref(&theirs), &mine).ok()
}

/// Answers a ping from the peer through the mediator (a spawned POST, so reading goes on).
fn answer_peer_ping(shared: &Shared, hub: &Arc<EdgeHub>, ping_id: &str, sender: Option<&str>) {
    let Some(link) = shared.peer.lock().ok().and_then(|p| p.clone()) else {
        return;
    };
    if sender.is_none_or(|s| !link.their.recipient_keys.iter().any(|k| k.verkey() == s)) {
        return;
    }
    let response = TrustPingResponse {
        type_: mt::TRUST_PING_RESPONSE.into(),
        id: new_id(),
        thread: Some(Thread::reply_to(ping_id)),
        comment: None,
    };
    let Ok(plaintext) = to_plaintext(&response) else {
        return;
    };
    let Ok(envelope) = pack_for_service(&plaintext, &link.their, &link.my_key) else {
        return;
    };
    let hub = hub.clone();
    let endpoint = link.their.service_endpoint.clone();
    tokio::spawn(async move {
        // a failed answer shows as the pinger's timeout
        let _ = hub.post(&endpoint, envelope).await;
    });
}
