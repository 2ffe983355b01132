//! One task per agent socket: it always reads (so the mediator's heartbeat pings are answered
//! well inside its 1.5 s pong deadline; tungstenite queues the pong and flushes it on the next
//! read or write), writes what the agent sends, unpacks each frame once and routes it to the
//! inbox, answers the peer's trust pings, and — when the plan opts in — sends a drain ping
//! after every received message. When the socket drops it reopens it as Credo does.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_channel::mpsc::{UnboundedReceiver, UnboundedSender};
use futures_util::StreamExt;
use tokio::task::JoinHandle;

use super::inbox::{Arrival, Taken};
use super::link::Backoff;
use super::wire::{Incoming, Wire};
use super::{EdgeHub, Shared};
use crate::didcomm::decorators::Thread;
use crate::didcomm::envelope::unpack;
use crate::didcomm::forward::pack_for_service;
use crate::didcomm::incoming::Message;
use crate::didcomm::message_type as mt;
use crate::didcomm::messages::{TrustPing, TrustPingResponse, new_id, to_plaintext};
use crate::didcomm::pickup::StatusRequest;
use crate::measure::metrics::{Event, Failure};
use crate::plan::Phase;
use crate::results::StatKind;

/// Opens the socket, as one of at most [`super::OPENS_IN_FLIGHT`] opens at a time.
pub async fn open(hub: &EdgeHub, url: &str) -> Result<Wire, String> {
    let _turn = hub.opening.acquire().await;
    Wire::connect(url, &hub.tls, hub.instance_header.as_ref()).await
}

/// How long one reconnect attempt may take to open a socket.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// The row of a reconnect: time from the drop to a new socket, associated again.
pub const RECONNECTED: &str = "reconnected to mediator";

/// How one socket ended.
enum End {
    /// The agent is done with it (its sender dropped): closed cleanly, not reopened.
    Closed(String),
    /// It dropped (the mediator closed it, restarted, the network): reopened.
    Dropped(String),
}

/// Reads and writes the agent's socket until the agent drops its sender. When the socket
/// drops after the mediator connection exists, it is reopened as Credo does (`reconnect`);
/// waits registered in the inbox stay, and fail only when the task ends.
pub async fn run(
    ws: Wire,
    url: String,
    shared: Arc<Shared>,
    hub: Arc<EdgeHub>,
    mut out: UnboundedReceiver<String>,
) {
    let mut ws = ws;
    shared.opened.store(true, Ordering::Relaxed);
    let why = loop {
        if let Ok(mut i) = shared.instance.lock() {
            *i = ws.instance.take();
        }
        let why = match session(ws, &shared, &hub, &mut out).await {
            End::Closed(why) => break why,
            End::Dropped(why) => why,
        };
        // Before DID Exchange with the mediator is done there is no connection to keep.
        if shared
            .mediator
            .lock()
            .ok()
            .and_then(|m| m.clone())
            .is_none()
        {
            break why;
        }
        let dropped = Instant::now();
        if let Ok(mut link) = shared.link.lock() {
            link.dropped(dropped, why.clone());
        }
        // boxed: the task keeps only what a connected socket needs while it is connected
        match Box::pin(reconnect(&url, &shared, &hub, &mut out, dropped)).await {
            Some(new) => ws = new,
            None => break format!("{why}; the agent stopped before it reconnected"),
        }
    };
    shared.inbox.close(why);
}

/// One socket's life: reads (routing what it reads) and writes until it ends.
async fn session(
    mut ws: Wire,
    shared: &Arc<Shared>,
    hub: &Arc<EdgeHub>,
    out: &mut UnboundedReceiver<String>,
) -> End {
    loop {
        tokio::select! {
            read = ws.read() => {
                let at = Instant::now();
                let frames = match read {
                    Ok(frames) => frames,
                    Err(why) => return End::Dropped(why),
                };
                for frame in frames {
                    let written = match frame {
                        Incoming::Message(bytes) => {
                            match take_in(&bytes, at, shared, hub) {
                                Some(reply) => ws.send_text(&reply).await,
                                None => Ok(()),
                            }
                        }
                        Incoming::Ping(payload) => ws.pong(&payload).await,
                        Incoming::Close(c) => {
                            // answer it, as the closing handshake asks
                            ws.close().await;
                            return End::Dropped(format!(
                                "the mediator closed the socket{}",
                                c.map(|(code, reason)| format!(" ({code} {reason})")).unwrap_or_default()
                            ));
                        }
                    };
                    if let Err(why) = written {
                        return End::Dropped(why);
                    }
                }
            }
            msg = out.next() => match msg {
                Some(text) => {
                    if let Err(why) = ws.send_text(&text).await {
                        return End::Dropped(why);
                    }
                }
                None => {
                    // the agent is done with it: close cleanly
                    ws.close().await;
                    return End::Closed("the socket was closed by the agent".to_string());
                }
            }
        }
    }
}

/// Reopens the socket with Credo's backoff (100 ms, doubling, no cap) until it is open, then
/// makes the mediator associate it with the agent's keys the way Credo's implicit pickup does:
/// a trust ping without response, `return_route: all`, authcrypted from the agent's key on
/// the mediator connection (ACA-Py 1.7 gives a new socket no reply keys until a message
/// arrives on it; that message also lets one queued message out). Each reconnect is a
/// sample of [`RECONNECTED`], from the drop to the ping written; an agent that stops while
/// still down is a failure of it. `None`: the agent stopped.
async fn reconnect(
    url: &str,
    shared: &Arc<Shared>,
    hub: &Arc<EdgeHub>,
    out: &mut UnboundedReceiver<String>,
    dropped: Instant,
) -> Option<Wire> {
    let mut backoff = Backoff::default();
    let give_up = |shared: &Shared| {
        let detail = shared
            .link
            .lock()
            .ok()
            .and_then(|l| l.down().map(|o| o.describe(Instant::now())))
            .unwrap_or_default();
        record(
            hub,
            dropped,
            Some(("not reconnected before the agent stopped", detail)),
        );
    };
    loop {
        let wait = tokio::time::sleep(backoff.next_delay());
        tokio::pin!(wait);
        loop {
            tokio::select! {
                _ = &mut wait => break,
                msg = out.next() => if msg.is_none() {
                    give_up(shared);
                    return None;
                },
                // a message that raced the drop: its sender's wait counts it
            }
        }
        let opening = tokio::time::timeout(OPEN_TIMEOUT, open(hub, url));
        tokio::pin!(opening);
        let attempt = loop {
            tokio::select! {
                r = &mut opening => break r.unwrap_or_else(|_| Err(format!(
                    "WebSocket {url}: not open within {}",
                    crate::plan::duration::format(OPEN_TIMEOUT)
                ))),
                msg = out.next() => if msg.is_none() {
                    give_up(shared);
                    return None;
                },
            }
        };
        let associated = match attempt {
            Ok(ws) => associate(ws, shared, hub).await,
            Err(e) => Err(e),
        };
        match associated {
            Ok(ws) => {
                let back = Instant::now();
                if let Ok(mut link) = shared.link.lock() {
                    link.back(back);
                }
                record(hub, dropped, None);
                return Some(ws);
            }
            Err(e) => {
                if let Ok(mut link) = shared.link.lock() {
                    link.attempt_failed(e);
                }
            }
        }
    }
}

/// Makes the mediator take a new socket as the agent's: Credo's implicit strategy sends a
/// trust ping; its Pickup 2.0 ones collect what queued meanwhile (`v2_live` also turns live
/// mode on again), which also associates the socket.
async fn associate(mut ws: Wire, shared: &Arc<Shared>, hub: &Arc<EdgeHub>) -> Result<Wire, String> {
    let messages: Vec<String> = match shared.pickup.lock().ok().and_then(|p| p.mode) {
        Some(mode) if mode != super::pickup::Pickup::Implicit => {
            super::pickup::reopening(shared, mode)
                .into_iter()
                .filter_map(|(m, socket_only)| {
                    if socket_only {
                        Some(m)
                    } else {
                        reply(shared, hub, m)
                    }
                })
                .collect()
        }
        _ => vec![
            super::pickup::for_mediator(shared, &TrustPing::new(false))
                .ok_or("cannot pack the association ping")?,
        ],
    };
    for m in messages {
        ws.send_text(&m).await?;
    }
    Ok(ws)
}

/// A sample of [`RECONNECTED`] timed from the drop (a failure when the agent gave up).
fn record(hub: &EdgeHub, dropped: Instant, failure: Option<(&str, String)>) {
    hub.recorder.send(Event::Sample {
        phase: Phase::Tasks,
        kind: StatKind::Poll,
        name: Arc::from(RECONNECTED),
        method: None,
        micros: dropped.elapsed().as_micros() as u64,
        at: dropped,
        failure: failure.map(|(reason, detail)| Failure {
            reason: reason.into(),
            detail,
        }),
    });
}

/// Sends a pickup message to the mediator the agent's way: POSTed (in a task of its own, its
/// answer read as if the socket had read it, and so on) when it sends as Credo, else
/// returned for the socket to write.
pub fn reply(shared: &Arc<Shared>, hub: &Arc<EdgeHub>, envelope: String) -> Option<String> {
    let Some(endpoint) = shared.pickup.lock().ok()?.http.clone() else {
        return Some(envelope);
    };
    let (shared, hub) = (shared.clone(), hub.clone());
    tokio::spawn(async move {
        // a failed POST shows as the messages it would have brought, lost
        if let Ok((_, body)) = hub.post_reply(&endpoint, envelope).await
            && !body.is_empty()
            && let Some(answer) = take_in(&body, Instant::now(), &shared, &hub)
        {
            let _ = reply(&shared, &hub, answer);
        }
    });
    None
}

/// Asks for the queue's status every `every` until aborted, as Credo's `v2` strategy: by HTTP
/// (Credo's way, which opens no socket), or on the socket `socket` writes to.
pub fn poller(
    shared: Arc<Shared>,
    hub: Arc<EdgeHub>,
    every: Duration,
    socket: Option<UnboundedSender<String>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at((Instant::now() + every).into(), every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let request = super::pickup::for_mediator(&shared, &StatusRequest::new());
            if let Some(on_socket) = request.and_then(|r| reply(&shared, &hub, r))
                && let Some(socket) = &socket
            {
                // a closed socket: the agent is closing, and aborts this task
                let _ = socket.unbounded_send(on_socket);
            }
        }
    })
}

/// Unpacks and routes one frame; returns what to write back (a drain ping, when the agent
/// drains; a pickup request or acknowledgement).
pub(super) fn take_in(
    bytes: &[u8],
    at: Instant,
    shared: &Arc<Shared>,
    hub: &Arc<EdgeHub>,
) -> Option<String> {
    match read(bytes, at, shared, hub) {
        Ok(reply) => reply,
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
            None
        }
    }
}

/// [`take_in`] of one envelope; `Err` when it cannot be unpacked or parsed.
fn read(
    bytes: &[u8],
    at: Instant,
    shared: &Arc<Shared>,
    hub: &Arc<EdgeHub>,
) -> Result<Option<String>, String> {
    hub.received.fetch_add(1, Ordering::Relaxed);
    let unpacked = {
        let keys = shared
            .keys
            .lock()
            .map_err(|_| "keys poisoned".to_string())?;
        unpack(bytes, &*keys)
    };
    let (unpacked, (header, message)) = unpacked.map_err(|e| e.to_string()).and_then(|u| {
        Message::parse(&u.plaintext)
            .map(|m| (u, m))
            .map_err(|e| e.to_string())
    })?;
    Ok(route(
        unpacked.sender_verkey.as_deref(),
        header,
        message,
        at,
        shared,
        hub,
    ))
}

/// Routes a read message to the inbox (answering pings and pickup messages on the way).
fn route(
    sender: Option<&str>,
    header: crate::didcomm::incoming::Header,
    message: Message,
    at: Instant,
    shared: &Arc<Shared>,
    hub: &Arc<EdgeHub>,
) -> Option<String> {
    match &message {
        Message::PickupDelivery(d) => {
            // each envelope as if it were a frame; their replies (drain pings) are not needed
            let each = |b: &[u8]| read(b, at, shared, hub).map(|_| ());
            let ack = super::pickup::delivery(shared, hub, d, at, each)?;
            return reply(shared, hub, ack);
        }
        Message::PickupStatus(s) => {
            let request = super::pickup::status(shared, hub, s).and_then(|r| reply(shared, hub, r));
            // one answers the status request that starts pickup; the rest are not kept
            shared.inbox.hand_over(Arrival {
                at,
                header,
                message,
            });
            return request;
        }
        Message::TrustPing(p) => {
            // answered here; no step waits for one, so it is not kept
            if p.response_requested {
                answer_peer_ping(shared, hub, &header.id, sender);
            }
            return drain_ping(shared);
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
    });
    drain_ping(shared)
}

/// A trust ping (no response wanted) to the mediator, when the agent drains.
fn drain_ping(shared: &Shared) -> Option<String> {
    if !shared.drain.load(Ordering::Relaxed) {
        return None;
    }
    super::pickup::for_mediator(shared, &TrustPing::new(false))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::didcomm::keys::KeyPair;

    /// A mediator stand-in drops the agent's first socket; the agent is back after Credo's
    /// first delay, and the first thing on its new socket is the association ping: authcrypted
    /// from its mediator-connection key, no response wanted, `return_route: all`.
    #[tokio::test]
    async fn a_dropped_socket_is_reopened_after_100ms_and_associated_by_a_ping() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}", listener.local_addr().unwrap());
        let (k0, mediator) = (KeyPair::generate().unwrap(), KeyPair::generate().unwrap());
        let server_key = mediator.clone();
        let server = tokio::spawn(async move {
            let (first, _) = listener.accept().await.unwrap();
            let first = tokio_tungstenite::accept_async(first).await.unwrap();
            drop(first);
            let dropped = Instant::now();
            let (second, _) = listener.accept().await.unwrap();
            let waited = dropped.elapsed();
            let mut second = tokio_tungstenite::accept_async(second).await.unwrap();
            let Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) =
                futures_util::StreamExt::next(&mut second).await
            else {
                panic!("no frame on the new socket");
            };
            let u = unpack(t.as_bytes(), &server_key).unwrap();
            (waited, u, second)
        });
        let (recorder, _live, aggregate) = crate::measure::metrics::start(Instant::now());
        let hub = Arc::new(EdgeHub::new(
            recorder,
            (Duration::from_secs(5), Duration::from_secs(5)),
            &crate::engine::http::tls::Tls::new(false, None),
            None,
        ));
        let shared = Arc::new(Shared::default());
        shared.add_key(&k0);
        *shared.mediator.lock().unwrap() = Some((k0.clone(), mediator.public_key()));
        let (tx, rx) = futures_channel::mpsc::unbounded();
        let ws = open(&hub, &url).await.unwrap();
        let task = tokio::spawn(run(ws, url, shared.clone(), hub.clone(), rx));

        let (waited, ping, _socket) = server.await.unwrap();
        assert!(
            waited >= Duration::from_millis(100),
            "back after {waited:?}"
        );
        assert_eq!(ping.sender_verkey.as_deref(), Some(k0.verkey()));
        let ping: serde_json::Value = serde_json::from_slice(&ping.plaintext).unwrap();
        assert_eq!(ping["@type"], mt::TRUST_PING);
        assert_eq!(ping["response_requested"], false);
        assert_eq!(ping["~transport"]["return_route"], "all");
        let since = Instant::now() - Duration::from_secs(5);
        assert!(shared.down().is_none(), "the link is up again");
        assert!(shared.down_during(since, Instant::now()).is_some());

        drop(tx);
        task.await.unwrap();
        assert_eq!(
            shared.inbox.closed().as_deref(),
            Some("the socket was closed by the agent")
        );
        drop(hub);
        let agg = aggregate.await.unwrap();
        let finished = agg.finish(Duration::from_secs(1));
        let row = finished
            .stats
            .iter()
            .find(|s| s.name == RECONNECTED)
            .expect("a reconnect row");
        assert_eq!((row.count, row.failures), (1, 0));
    }
}
