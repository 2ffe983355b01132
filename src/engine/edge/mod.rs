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
use crate::measure::metrics::Recorder;

pub mod agent;
pub mod inbox;
pub mod link;
pub mod socket;
pub mod wire;

pub use agent::EdgeAgent;

/// `Content-Type` of a DIDComm v1 envelope POSTed to an agent.
pub const ENVELOPE_CONTENT_TYPE: &str = "application/didcomm-envelope-enc";

/// What the edge agents of a run share.
pub struct EdgeHub {
    http: reqwest::Client,
    pub recorder: Recorder,
    /// Which agent holds a verkey: where a message to that key will be read.
    agents: Mutex<HashMap<String, Arc<Shared>>>,
    /// Messages read off the agents' sockets.
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
}

/// Most WebSocket opens in flight at once. ACA-Py's aiohttp listens with a backlog of 128:
/// a step of the shape that starts hundreds of agents, or hundreds of agents reconnecting at
/// the same backoff step after a mediator restart, would overflow it, and the kernel would
/// drop their SYNs (retried only after a second or more). Half the backlog leaves room for
/// other clients; an open that waits for its turn counts in its step's time.
pub const OPENS_IN_FLIGHT: usize = 64;

impl EdgeHub {
    pub fn new(
        recorder: Recorder,
        timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<Self, String> {
        // reqwest has no crypto provider of its own here: it uses rustls's process default.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| format!("cannot build the HTTP client for forwards: {e}"))?;
        Ok(EdgeHub {
            http,
            recorder,
            agents: Mutex::default(),
            received: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            granted_once: AtomicBool::new(false),
            first_grant: tokio::sync::Semaphore::new(1),
            opening: tokio::sync::Semaphore::new(OPENS_IN_FLIGHT),
        })
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
    /// nothing about delivery). A failure is (what went wrong, to group by; the example).
    pub async fn post(&self, endpoint: &str, envelope: String) -> Result<(), (String, String)> {
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err((
                "not http".into(),
                format!("cannot POST to endpoint `{endpoint}` (not http)"),
            ));
        }
        let r = self
            .http
            .post(endpoint)
            .header(reqwest::header::CONTENT_TYPE, ENVELOPE_CONTENT_TYPE)
            .body(envelope)
            .send()
            .await
            .map_err(|e| {
                (
                    post_error_kind(&e).into(),
                    format!("POST {endpoint}: {}", crate::engine::http::root_cause(&e)),
                )
            })?;
        let status = r.status();
        if status.is_success() {
            Ok(())
        } else {
            let body = r.text().await.unwrap_or_default();
            Err((
                format!("status {}", status.as_u16()),
                format!(
                    "POST {endpoint}: status {}: {}",
                    status.as_u16(),
                    crate::engine::http::first_line(&body)
                ),
            ))
        }
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

/// What kind of failure a POST that got no response had: a refused connection (the mediator
/// is down) reads differently from a timeout (it is overloaded).
fn post_error_kind(e: &reqwest::Error) -> &'static str {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return "connection refused",
                std::io::ErrorKind::ConnectionReset => return "connection reset",
                _ => {}
            }
        }
        source = s.source();
    }
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "no response"
    }
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
}

impl Shared {
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
    /// The peer's inbox.
    pub to: Arc<Shared>,
    pub waiter: inbox::Waiter,
}
