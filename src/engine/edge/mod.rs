//! Edge agents: virtual users that are DIDComm v1 agents themselves (phones, as Credo), with
//! their keys in memory and one WebSocket each to the mediator. The wire formats and crypto
//! are `didcomm/`; this folder owns the transport and the agent state: the run-wide [`EdgeHub`]
//! (HTTP client for forwards, which agent holds which key, counters), each agent's [`inbox`],
//! its [`socket`] task, and the protocol steps of an [`agent`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::didcomm::forward::ServiceTarget;
use crate::didcomm::keys::{KeyPair, PublicKey};
use crate::engine::http::HttpError;
use crate::measure::metrics::Recorder;

pub mod agent;
pub mod inbox;
pub mod link;
pub mod pickup;
mod reply;
pub mod socket;
pub mod wire;

pub use agent::EdgeAgent;

/// `Content-Type` of a DIDComm v1 envelope POSTed to an agent.
pub const ENVELOPE_CONTENT_TYPE: &str = "application/didcomm-envelope-enc";

/// What the edge agents of a run share.
pub struct EdgeHub {
    /// Connections for the forwards POSTed to mediators and peers.
    http: crate::engine::http::Pool,
    /// The run's TLS, for `wss://` sockets (the forwards' pool has it too).
    pub tls: crate::engine::http::tls::Tls,
    /// `target.timeout`: a POST's whole exchange.
    timeout: Duration,
    pub recorder: Recorder,
    /// Which agent holds a verkey: where a message to that key will be read.
    agents: Mutex<HashMap<String, Arc<Shared>>>,
    /// Messages the agents read: off their sockets, in HTTP answers, inside pickup deliveries.
    pub received: AtomicU64,
    /// Basic messages read a second time.
    pub duplicates: AtomicU64,
    /// A fresh ACA-Py 1.7.0 mediator makes its routing DID on the first grant and concurrent
    /// first grants race (all but one stay `request` for good): until one agent of this run
    /// has been granted, mediation requests go one at a time.
    granted_once: AtomicBool,
    first_grant: tokio::sync::Semaphore,
    /// Socket opens in flight (connects and reconnects), at most [`OPENS_IN_FLIGHT`].
    pub opening: tokio::sync::Semaphore,
    /// The header by which a proxy names the instance that answered (`target.instance_header`).
    pub instance_header: Option<http::HeaderName>,
    /// The agents' pickup queue depths, summed.
    pub queue: pickup::QueueGauge,
}

/// Most WebSocket opens in flight at once. ACA-Py's aiohttp listens with a backlog of 128:
/// a step of the shape that starts hundreds of agents, or hundreds of agents reconnecting at
/// the same backoff step after a mediator restart, would overflow it, and the kernel would
/// drop their SYNs (retried only after a second or more). Half the backlog leaves room for
/// other clients; an open that waits for its turn counts in its step's time.
pub const OPENS_IN_FLIGHT: usize = 64;

impl EdgeHub {
    /// `timeout` bounds a forward's whole POST, `connect_timeout` its connect; `tls` checks
    /// the certificates of `https://` endpoints and `wss://` sockets; `instance_header` is read
    /// off POSTs' and upgrades' responses.
    pub fn new(
        recorder: Recorder,
        (timeout, connect_timeout): (Duration, Duration),
        tls: &crate::engine::http::tls::Tls,
        instance_header: Option<http::HeaderName>,
    ) -> Self {
        EdgeHub {
            http: crate::engine::http::Pool::new(tls, connect_timeout, None),
            tls: tls.clone(),
            timeout,
            recorder,
            agents: Mutex::default(),
            received: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            granted_once: AtomicBool::new(false),
            first_grant: tokio::sync::Semaphore::new(1),
            opening: tokio::sync::Semaphore::new(OPENS_IN_FLIGHT),
            instance_header,
            queue: pickup::QueueGauge::default(),
        }
    }

    /// Notes that `verkey` is read by `agent`.
    pub fn register(&self, verkey: &str, agent: &Arc<Shared>) {
        if let Ok(mut a) = self.agents.lock() {
            a.insert(verkey.to_owned(), agent.clone());
        }
    }

    /// Forgets `verkey`.
    pub fn unregister(&self, verkey: &str) {
        if let Ok(mut a) = self.agents.lock() {
            a.remove(verkey);
        }
    }

    /// The agent of this run that reads messages for `verkey`.
    pub fn agent_of(&self, verkey: &str) -> Option<Arc<Shared>> {
        self.agents.lock().ok()?.get(verkey).cloned()
    }

    /// POSTs an envelope; any 2xx is success (ACA-Py answers 200 with an empty body, which says
    /// nothing about delivery), with the instance a proxy says took it (`instance_header`). A
    /// failure is (what went wrong, to group by; the example).
    pub async fn post(
        &self,
        endpoint: &str,
        envelope: String,
    ) -> Result<Option<String>, (String, String)> {
        self.post_reply(endpoint, envelope).await.map(|(i, _)| i)
    }

    /// [`post`](Self::post), with the response's body: the answer a mediator writes there
    /// to a message that asked for `return_route: all` over HTTP.
    pub async fn post_reply(
        &self,
        endpoint: &str,
        envelope: String,
    ) -> Result<(Option<String>, bytes::Bytes), (String, String)> {
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err((
                "not http".into(),
                format!("cannot POST to endpoint `{endpoint}` (not http)"),
            ));
        }
        let uri: http::Uri = endpoint.parse().map_err(|e| {
            (
                "not a URL".to_string(),
                format!("cannot POST to endpoint `{endpoint}`: {e}"),
            )
        })?;
        let mut req = http::Request::new(http_body_util::Full::new(bytes::Bytes::from(envelope)));
        *req.method_mut() = http::Method::POST;
        *req.uri_mut() = uri.clone();
        let headers = req.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(ENVELOPE_CONTENT_TYPE),
        );
        headers.insert(http::header::ACCEPT, http::HeaderValue::from_static("*/*"));
        let (parts, body) = self
            .http
            .exchange(req, &uri, self.timeout, self.timeout)
            .await
            .map_err(|e| post_failure(endpoint, &e))?;
        if parts.status.is_success() {
            let instance = self.instance_header.as_ref().and_then(|h| {
                let v = parts.headers.get(h)?;
                Some(String::from_utf8_lossy(v.as_bytes()).trim().to_string())
            });
            return Ok((instance, body));
        }
        Err((
            format!("status {}", parts.status.as_u16()),
            format!(
                "POST {endpoint}: status {}: {}",
                parts.status.as_u16(),
                crate::engine::http::first_line(&String::from_utf8_lossy(&body))
            ),
        ))
    }

    /// Runs `request` (a mediation request and its grant) alone while no agent of this run has
    /// been granted yet; concurrently once one has.
    pub async fn first_grant_gate<T, E>(
        &self,
        request: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        if self.granted_once.load(Ordering::Acquire) {
            return request.await;
        }
        let permit = self.first_grant.acquire().await.ok();
        if self.granted_once.load(Ordering::Acquire) {
            drop(permit);
            return request.await;
        }
        let r = request.await;
        if r.is_ok() {
            self.granted_once.store(true, Ordering::Release);
        }
        drop(permit);
        r
    }
}

/// A POST that got no response: what kind of failure it was (a refused connection, the
/// mediator down, reads differently from a timeout, the mediator overloaded), and the example.
fn post_failure(endpoint: &str, e: &HttpError) -> (String, String) {
    use std::io::ErrorKind;
    let (kind, why) = match e {
        HttpError::Timeout { timeout, .. } => (
            "timeout",
            format!(
                "no response within {}",
                crate::plan::duration::format(*timeout)
            ),
        ),
        HttpError::Connect { why, io, .. } | HttpError::Other { why, io, .. } => {
            let kind = match (io, e) {
                (Some(ErrorKind::ConnectionRefused), _) => "connection refused",
                (Some(ErrorKind::ConnectionReset), _) => "connection reset",
                (Some(ErrorKind::TimedOut), _) => "timeout",
                (_, HttpError::Connect { .. }) => "cannot connect",
                _ => "no response",
            };
            (kind, why.clone())
        }
    };
    (kind.to_string(), format!("POST {endpoint}: {why}"))
}

/// The part of an agent its socket task also uses.
#[derive(Default)]
pub struct Shared {
    pub inbox: inbox::Inbox,
    /// Our key pairs by verkey: what the socket unpacks with.
    pub keys: Mutex<HashMap<String, KeyPair>>,
    /// The connection to the mediator (our key, its key for us), once known: drain pings.
    pub mediator: Mutex<Option<(KeyPair, PublicKey)>>,
    /// The peer connection, once made: answering the peer's pings.
    pub peer: Mutex<Option<PeerLink>>,
    /// Send a trust ping on the socket after each received message.
    pub drain: AtomicBool,
    /// Whether the socket is up, and its recent outages.
    pub link: Mutex<link::Link>,
    /// The instance holding the socket, as the proxy named it at the upgrade.
    pub instance: Mutex<Option<String>>,
    /// How messages are collected from the mediator, once granted.
    pub pickup: Mutex<pickup::State>,
    /// The socket was opened (the agent may work by HTTP alone until it needs one).
    pub opened: AtomicBool,
}

impl Shared {
    /// The instance holding the socket, as the proxy named it at the upgrade.
    pub fn instance(&self) -> Option<String> {
        self.instance.lock().ok().and_then(|i| i.clone())
    }

    /// The current outage, described, while the socket is down and being reopened.
    pub fn down(&self) -> Option<String> {
        let link = self.link.lock().ok()?;
        link.down().map(|o| o.describe(Instant::now()))
    }

    /// The outage that overlapped `[from, to]`, described, if the socket dropped then.
    pub fn down_during(&self, from: Instant, to: Instant) -> Option<String> {
        let link = self.link.lock().ok()?;
        link.down_during(from, to)
            .map(|o| o.describe(Instant::now()))
    }

    pub fn add_key(&self, k: &KeyPair) {
        if let Ok(mut keys) = self.keys.lock() {
            keys.insert(k.verkey().to_owned(), k.clone());
        }
    }
}

/// A DID Exchange connection to another edge agent.
#[derive(Debug, Clone)]
pub struct PeerLink {
    /// Our key on this connection.
    pub my_key: KeyPair,
    /// The peer's keys, routing keys and endpoint.
    pub their: ServiceTarget,
}

/// A message sent to a peer whose arrival someone may wait for.
pub struct Sent {
    pub id: String,
    pub at: Instant,
    /// The instance that took the forward, as the proxy named it.
    pub instance: Option<String>,
    /// The instance that held the peer's socket when the forward was taken.
    pub peer_instance: Option<String>,
    /// The peer's inbox.
    pub to: Arc<Shared>,
    pub waiter: inbox::Waiter,
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A hub whose POSTs time out after `timeout`.
    fn hub(timeout: Duration) -> EdgeHub {
        let (recorder, _live, _aggregate) = crate::measure::metrics::start(Instant::now());
        let tls = crate::engine::http::tls::Tls::new(false, None);
        EdgeHub::new(recorder, (timeout, Duration::from_secs(5)), &tls, None)
    }

    /// Serves one connection: reads the request's head, then does what `answer` says with the
    /// socket. Returns the endpoint and the head read.
    async fn serve<F, Fut>(answer: F) -> (String, tokio::task::JoinHandle<String>)
    where
        F: FnOnce(tokio::net::TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}/", listener.local_addr().unwrap());
        let served = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                let mut b = [0u8; 1];
                if conn.read(&mut b).await.unwrap() == 0 {
                    break;
                }
                head.push(b[0]);
            }
            answer(conn).await;
            String::from_utf8(head).unwrap()
        });
        (endpoint, served)
    }

    #[tokio::test]
    async fn a_forward_is_posted_as_an_envelope_and_any_2xx_is_success() {
        let (endpoint, served) = serve(|mut conn| async move {
            conn.write_all(
                b"HTTP/1.1 202 Accepted\r\nx-mediator-instance: 2\r\ncontent-length: 0\r\n\r\n",
            )
            .await
            .unwrap();
        })
        .await;
        let (recorder, _live, _aggregate) = crate::measure::metrics::start(Instant::now());
        let tls = crate::engine::http::tls::Tls::new(false, None);
        let header = http::HeaderName::from_static("x-mediator-instance");
        let hub = EdgeHub::new(
            recorder,
            (Duration::from_secs(5), Duration::from_secs(5)),
            &tls,
            Some(header),
        );
        assert_eq!(
            hub.post(&endpoint, "{}".into()).await,
            Ok(Some("2".to_string())),
            "accepted, by the instance the proxy names"
        );
        let head = served.await.unwrap().to_ascii_lowercase();
        assert!(head.starts_with("post / http/1.1\r\n"), "{head}");
        assert!(
            head.contains("content-type: application/didcomm-envelope-enc\r\n"),
            "{head}"
        );
    }

    #[tokio::test]
    async fn a_failed_forward_says_what_kind_of_failure_it_was() {
        let hub = hub(Duration::from_millis(300));
        // an error status: its code, and the body's first line
        let (endpoint, _served) = serve(|mut conn| async move {
            let body = "mediator error\nsecond line";
            let head = format!(
                "HTTP/1.1 500 Oops\r\ncontent-length: {}\r\n\r\n",
                body.len()
            );
            conn.write_all((head + body).as_bytes()).await.unwrap();
        })
        .await;
        assert_eq!(
            hub.post(&endpoint, "{}".into()).await,
            Err((
                "status 500".into(),
                format!("POST {endpoint}: status 500: mediator error")
            ))
        );
        // nothing listens: refused
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}/", closed.local_addr().unwrap());
        drop(closed);
        let (kind, detail) = hub.post(&endpoint, "{}".into()).await.unwrap_err();
        assert_eq!(kind, "connection refused");
        assert!(
            detail.starts_with(&format!("POST {endpoint}: ")),
            "{detail}"
        );
        // the connection is reset under the request
        let (endpoint, _served) = serve(|conn| async move {
            conn.set_zero_linger().unwrap();
        })
        .await;
        let (kind, detail) = hub.post(&endpoint, "{}".into()).await.unwrap_err();
        assert_eq!(kind, "connection reset", "{detail}");
        // no answer at all: a timeout, named with the target's timeout
        let (endpoint, _served) = serve(|conn| async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(conn);
        })
        .await;
        assert_eq!(
            hub.post(&endpoint, "{}".into()).await,
            Err((
                "timeout".into(),
                format!("POST {endpoint}: no response within 300ms")
            ))
        );
        // not an http endpoint
        assert_eq!(
            hub.post("ws://127.0.0.1:1/", "{}".into())
                .await
                .unwrap_err()
                .0,
            "not http"
        );
    }
}
