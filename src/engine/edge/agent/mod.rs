//! One edge agent and its protocol steps, as the walkthrough verified them against ACA-Py 1.7:
//! connect (DID Exchange over the own socket), mediation, keylist updates, invitations, DID
//! Exchange with a peer through the mediator, messages, pings, and the teardown.
//! Every failure is an [`EdgeError`] with a stable reason to group by; nothing panics on what
//! the network sends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_channel::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

use super::inbox::{Arrival, Match, Waiter};
mod peer;

use super::pickup::Pickup;
pub use super::reply::EdgeError;
use super::reply::{self, answer, err, unexpected};
use super::{EdgeHub, PeerLink, Sent, Shared};
use crate::didcomm::decorators::Thread;
use crate::didcomm::did_doc::{PeerInputDoc, QUEUE_ENDPOINT};
use crate::didcomm::envelope::pack_authcrypt;
use crate::didcomm::forward::{ServiceTarget, pack_for_service};
use crate::didcomm::incoming::Message;
use crate::didcomm::keys::{KeyPair, PublicKey};
use crate::didcomm::message_type::MessageType;
use crate::didcomm::messages::{
    BasicMessage, DidexComplete, DidexRequest, KeylistAction, KeylistUpdate, KeylistUpdateRule,
    MediateRequest, TrustPing, to_plaintext,
};
use crate::didcomm::oob::Invitation;
use crate::didcomm::pickup::{LiveDeliveryChange, StatusRequest};

/// What the mediator granted.
#[derive(Debug, Clone)]
pub struct Grant {
    pub endpoint: String,
    /// `did:key:…#…`, as the grant lists them (and invitations and DID docs carry them).
    pub routing_keys: Vec<String>,
}

/// Where a message goes: over the agent's socket, authcrypted from its mediator key to the
/// key given; or packed for a peer's service (authcrypted from the key given, wrapped in a
/// forward per routing key) and POSTed to its endpoint.
enum Via<'a> {
    Socket(&'a PublicKey),
    /// POSTed to the mediator's HTTP endpoint with `return_route: all`, authcrypted from our
    /// mediator key to the key given; the answer comes in the response's body.
    Http(&'a PublicKey),
    Routed(&'a ServiceTarget, &'a KeyPair),
}

/// How an agent behaves where Credo's wallet and acaload's first phone differed.
#[derive(Debug, Clone)]
pub struct Profile {
    pub label: String,
    /// A trust ping on the socket after every received message (ACA-Py's undelivered queue).
    pub drain: bool,
    pub pickup: super::pickup::Pickup,
    /// `transport: credo`: messages to the mediator go the way Credo 0.5 sends them
    /// (DID Exchange, keylist updates, pings and, unless pickup is implicit, the mediation
    /// request by HTTP POST; the socket opened for the first message that needs it; a trust
    /// ping on it after an implicit grant). `false` (`transport: socket`): all on the socket,
    /// opened first.
    pub credo_transport: bool,
    /// Connect to the mediator with a did:peer:1 and its signed doc, as Credo 0.5 (else a
    /// did:peer:4).
    pub did_peer_1: bool,
}

/// An invitation this agent handed out and has not seen answered yet.
struct OpenInvitation {
    id: String,
    key: KeyPair,
}

/// An edge agent: keys, the socket to the mediator, the peer connection.
pub struct EdgeAgent {
    hub: Arc<EdgeHub>,
    pub shared: Arc<Shared>,
    /// Envelopes for the socket task to write. Unbounded, but an agent runs one step at a
    /// time and each step sends a few messages; a futures channel holds no slot block (a
    /// bounded tokio channel preallocates 32 slots, ~1 KB an agent).
    out: Option<UnboundedSender<String>>,
    task: Option<JoinHandle<()>>,
    /// The poll of `pickup: v2`.
    poller: Option<JoinHandle<()>>,
    /// The socket's URL until it is opened (`None` once opened, or closed).
    websocket: Option<String>,
    /// The mediator's HTTP endpoint, for what goes by POST.
    mediator_http: String,
    profile: Profile,
    /// When the connect began (onboarding time runs from here to the grant).
    pub started: Instant,
    /// Our key on the mediator connection, and the mediator's key for us.
    mediator: (KeyPair, PublicKey),
    pub grant: Option<Grant>,
    /// Verkeys this agent added to the mediator's keylist.
    registered: Vec<String>,
    invitation: Option<OpenInvitation>,
    peer: Option<PeerLink>,
    /// Messages sent to the peer that no `delivered` step has waited for yet.
    pub unconfirmed: Vec<Sent>,
    /// The last ping to the peer, when the proxy said it went to another instance than the
    /// one holding the peer's socket: (took it, held the socket).
    ping_across: Option<(String, String)>,
}

impl EdgeAgent {
    /// Connects to the mediator with DID Exchange 1.1 (over its socket, or by HTTP as Credo).
    pub async fn connect(
        hub: Arc<EdgeHub>,
        invitation: &Invitation,
        websocket: &str,
        profile: Profile,
        timeout: Duration,
    ) -> Result<EdgeAgent, EdgeError> {
        let started = Instant::now();
        let deadline = started + timeout;
        let service = invitation.inline_service().ok_or_else(|| {
            EdgeError::new(
                "mediator invitation has no inline service",
                invitation.id.clone(),
            )
        })?;
        let target = service.target().map_err(err("bad mediator invitation"))?;
        let invitation_key = target
            .recipient_keys
            .first()
            .cloned()
            .ok_or_else(|| EdgeError::new("mediator invitation has no recipient key", ""))?;
        let k0 = KeyPair::generate().map_err(err("key generation failed"))?;
        let shared = Arc::new(Shared::default());
        shared.add_key(&k0);
        shared
            .drain
            .store(profile.drain, std::sync::atomic::Ordering::Relaxed);
        let mut agent = EdgeAgent {
            hub,
            shared,
            out: None,
            task: None,
            poller: None,
            websocket: Some(websocket.to_owned()),
            mediator_http: target.service_endpoint.clone(),
            profile,
            started,
            mediator: (k0, invitation_key),
            grant: None,
            registered: Vec::new(),
            invitation: None,
            peer: None,
            unconfirmed: Vec::new(),
            ping_across: None,
        };
        if !agent.profile.credo_transport {
            agent.open(deadline).await?;
        }
        agent.exchange_with_mediator(invitation, deadline).await?;
        Ok(agent)
    }

    /// Opens the agent's socket (by `deadline`) and starts its task, once.
    async fn open(&mut self, deadline: Instant) -> Result<(), EdgeError> {
        let Some(websocket) = self.websocket.take() else {
            return Ok(());
        };
        let opening = super::socket::open(&self.hub, &websocket);
        let ws = match tokio::time::timeout_at(deadline.into(), opening).await {
            Ok(Ok(ws)) => ws,
            Ok(Err(e)) => return Err(EdgeError::new("cannot open the WebSocket", e)),
            Err(_) => {
                return Err(EdgeError::new(
                    "cannot open the WebSocket",
                    format!("{websocket}: timeout"),
                ));
            }
        };
        let (tx, rx) = futures_channel::mpsc::unbounded();
        self.task = Some(tokio::spawn(super::socket::run(
            ws,
            websocket,
            self.shared.clone(),
            self.hub.clone(),
            rx,
        )));
        self.out = Some(tx);
        Ok(())
    }

    /// Where a message to the mediator's `key` goes: by HTTP when the agent sends as Credo,
    /// else on the socket.
    fn to_mediator<'k>(&self, key: &'k PublicKey) -> Via<'k> {
        if self.profile.credo_transport {
            Via::Http(key)
        } else {
            Via::Socket(key)
        }
    }

    /// DID Exchange 1.1 with the mediator: our did:peer:1 (with its signed doc) or did:peer:4
    /// in a request with return_route all, by HTTP or on the socket; the response authcrypted
    /// from the invitation key, which names the mediator's key for us; complete.
    async fn exchange_with_mediator(
        &mut self,
        invitation: &Invitation,
        deadline: Instant,
    ) -> Result<(), EdgeError> {
        let (k0, invitation_key) = self.mediator.clone();
        let (did, did_doc_attach) = if self.profile.did_peer_1 {
            let p = crate::didcomm::did_peer_1::encode(&k0, QUEUE_ENDPOINT, &[])
                .map_err(err("cannot encode did:peer:1"))?;
            (p.did, Some(p.attach))
        } else {
            let p4 = PeerInputDoc::credo(&k0.public_key(), QUEUE_ENDPOINT, &[])
                .to_did_peer_4()
                .map_err(err("cannot encode did:peer:4"))?;
            (p4.long, None)
        };
        let mut request = DidexRequest::new(did, self.profile.label.clone(), &invitation.id);
        request.did_doc_attach = did_doc_attach;
        request.goal_code = Some("aries.vc.mediate".into());
        request.goal = Some("Request mediation".into());
        let thid = request.id.clone();
        let to = self.to_mediator(&invitation_key);
        let a = self
            .ask(
                &request,
                vec![Match::Thread(thid.clone())],
                to,
                deadline,
                "DID Exchange response",
            )
            .await?;
        let Message::DidexResponse(response) = &a.message else {
            return Err(unexpected("the DID Exchange response", &a));
        };
        let mediator_key = reply::responder_service(response, invitation_key.verkey())?
            .target()
            .map_err(err("bad mediator DID"))?
            .recipient_keys
            .first()
            .cloned()
            .ok_or_else(|| EdgeError::new("mediator DID has no recipient key", ""))?;
        self.mediator.1 = mediator_key;
        if let Ok(mut m) = self.shared.mediator.lock() {
            *m = Some(self.mediator.clone());
        }
        let mut complete = DidexComplete::new(Thread {
            thid: Some(thid),
            pthid: Some(invitation.id.clone()),
        });
        complete.transport = Some(crate::didcomm::decorators::Transport::all());
        let mediator = self.mediator.1.clone();
        self.send(&complete, self.to_mediator(&mediator)).await?;
        Ok(())
    }

    /// Sends `message` and waits until `deadline` for the answer `expected` picks out (`what`
    /// names it in failures). The wait is registered before the send, so an answer that comes
    /// at once is not missed.
    async fn ask(
        &mut self,
        message: &impl serde::Serialize,
        expected: Vec<Match>,
        to: Via<'_>,
        deadline: Instant,
        what: &str,
    ) -> Result<Arrival, EdgeError> {
        let waiter = self.expect(expected)?;
        self.send(message, to).await?;
        answer(&self.shared, waiter, deadline, what).await
    }

    /// Sends `message`; returns when it went out (for a routed one, after the packing).
    async fn send(
        &mut self,
        message: &impl serde::Serialize,
        to: Via<'_>,
    ) -> Result<Instant, EdgeError> {
        let plaintext = to_plaintext(message).map_err(err("cannot build the message"))?;
        match to {
            Via::Socket(key) => {
                self.open(Instant::now() + super::socket::OPEN_TIMEOUT)
                    .await?;
                let at = Instant::now();
                self.send_socket(&plaintext, key).await?;
                Ok(at)
            }
            Via::Http(key) => self.send_http(&plaintext, key).await,
            Via::Routed(service, key) => Ok(self.send_routed(&plaintext, service, key).await?.0),
        }
    }

    /// POSTs `plaintext` to the mediator, authcrypted from our mediator key to `to`, and
    /// reads the answer in the response's body as if the socket had read it.
    async fn send_http(&self, plaintext: &[u8], to: &PublicKey) -> Result<Instant, EdgeError> {
        let envelope = pack_authcrypt(plaintext, std::slice::from_ref(to), &self.mediator.0)
            .map_err(err("cannot pack"))?;
        let at = Instant::now();
        let (_, body) = self
            .hub
            .post_reply(&self.mediator_http, envelope)
            .await
            .map_err(|(kind, detail)| {
                EdgeError::new(format!("POST to the mediator failed: {kind}"), detail)
            })?;
        if !body.is_empty() {
            // what a drain would write back is not needed: this is no socket
            let _ = super::socket::take_in(&body, Instant::now(), &self.shared, &self.hub);
        }
        Ok(at)
    }

    /// Packs `plaintext` for a peer's service (authcrypt from `key`, wrapped in a forward per
    /// routing key) and POSTs it to the service's endpoint. Returns when the POST began, after
    /// the packing: where a delivery or round trip is timed from; and the instance a proxy
    /// says took it.
    async fn send_routed(
        &self,
        plaintext: &[u8],
        target: &ServiceTarget,
        key: &KeyPair,
    ) -> Result<(Instant, Option<String>), EdgeError> {
        let envelope = pack_for_service(plaintext, target, key).map_err(err("cannot pack"))?;
        let at = Instant::now();
        let instance = self
            .hub
            .post(&target.service_endpoint, envelope)
            .await
            .map_err(|(kind, detail)| {
                EdgeError::new(format!("forward POST failed: {kind}"), detail)
            })?;
        Ok((at, instance))
    }

    fn expect(&self, matches: Vec<Match>) -> Result<Waiter, EdgeError> {
        self.shared
            .inbox
            .expect(matches)
            .map_err(|why| EdgeError::new("socket closed", why))
    }

    /// Authcrypts `plaintext` from our mediator key to `to` and writes it on the socket. While
    /// the socket is down (being reopened) that fails at once, as Credo's send does.
    async fn send_socket(&self, plaintext: &[u8], to: &PublicKey) -> Result<(), EdgeError> {
        if let Some(outage) = self.shared.down() {
            return Err(EdgeError::new(
                "socket to the mediator down (reconnecting)",
                outage,
            ));
        }
        let envelope = pack_authcrypt(plaintext, std::slice::from_ref(to), &self.mediator.0)
            .map_err(err("cannot pack"))?;
        let out = self
            .out
            .as_ref()
            .ok_or_else(|| EdgeError::new("socket closed", "the agent disconnected"))?;
        out.unbounded_send(envelope).map_err(|_| {
            EdgeError::new(
                "socket closed",
                self.shared
                    .inbox
                    .closed()
                    .unwrap_or_else(|| "the socket task ended".into()),
            )
        })
    }

    /// `mediate-request` → `mediate-grant` (matched by type: ACA-Py's grant has no `~thread`).
    pub async fn request_mediation(&mut self, timeout: Duration) -> Result<(), EdgeError> {
        let hub = self.hub.clone();
        hub.first_grant_gate(self.mediation(timeout)).await
    }

    async fn mediation(&mut self, timeout: Duration) -> Result<(), EdgeError> {
        let deadline = Instant::now() + timeout;
        let request = MediateRequest::new();
        let expected = vec![
            Match::Kind(MessageType::MediateGrant),
            Match::Kind(MessageType::MediateDeny),
            Match::Thread(request.id.clone()),
        ];
        // Credo asks on the socket when it picks up implicitly, else by HTTP
        let key = self.mediator.1.clone();
        let to = match self.profile.pickup {
            Pickup::Implicit => Via::Socket(&key),
            _ => self.to_mediator(&key),
        };
        let a = self
            .ask(&request, expected, to, deadline, "mediate-grant")
            .await?;
        match a.message {
            Message::MediateGrant(g) => {
                self.grant = Some(Grant {
                    endpoint: g.endpoint,
                    routing_keys: g.routing_keys,
                });
                self.start_pickup(deadline).await
            }
            Message::MediateDeny(_) => Err(EdgeError::new("mediation denied", "")),
            _ => Err(unexpected("the grant", &a)),
        }
    }

    /// Starts collecting messages as Credo does once granted: implicit, a trust ping on the
    /// socket (with `transport: credo`); Pickup 2.0, a `status-request` whose answer says the
    /// mediator speaks it (then a `delivery-request` while messages wait), and for live mode
    /// `live-delivery-change` after it.
    async fn start_pickup(&mut self, deadline: Instant) -> Result<(), EdgeError> {
        let mode = self.profile.pickup;
        if let Ok(mut p) = self.shared.pickup.lock() {
            p.mode = Some(mode);
            p.http = Some(self.mediator_http.clone()).filter(|_| self.profile.credo_transport);
        }
        let key = self.mediator.1.clone();
        if mode == Pickup::Implicit {
            if self.profile.credo_transport {
                self.send(&TrustPing::new(false), Via::Socket(&key)).await?;
            }
            return Ok(());
        }
        let request = StatusRequest::new();
        let expected = vec![
            Match::Thread(request.id.clone()),
            Match::Kind(MessageType::ProblemReport),
        ];
        let a = self
            .ask(
                &request,
                expected,
                self.to_mediator(&key),
                deadline,
                "pickup status",
            )
            .await?;
        match &a.message {
            Message::PickupStatus(_) => {}
            Message::ProblemReport(p) => {
                let refused = reply::problem(p);
                return Err(EdgeError::new(
                    "the mediator refused Message Pickup 2.0",
                    refused.detail,
                ));
            }
            _ => return Err(unexpected("the pickup status", &a)),
        }
        match mode {
            Pickup::V2Live => {
                self.send(&LiveDeliveryChange::new(true), Via::Socket(&key))
                    .await?;
            }
            // Credo polls by HTTP and opens no socket; `transport: socket` polls on it
            Pickup::V2(every) => {
                let (shared, hub) = (self.shared.clone(), self.hub.clone());
                let socket = self.out.clone();
                self.poller = Some(super::socket::poller(shared, hub, every, socket));
            }
            Pickup::Implicit => {}
        }
        Ok(())
    }

    fn grant(&self) -> Result<&Grant, EdgeError> {
        self.grant.as_ref().ok_or_else(|| {
            EdgeError::new(
                "no mediation yet",
                "`request_mediation` must come before this step",
            )
        })
    }

    /// `keylist-update` for one key, awaiting the response (a key must be routed before it is
    /// handed out: ACA-Py drops forwards to unknown keys silently).
    pub async fn keylist_update(
        &mut self,
        verkey: &str,
        action: KeylistAction,
        timeout: Duration,
    ) -> Result<(), EdgeError> {
        let deadline = Instant::now() + timeout;
        let update = KeylistUpdate::new(vec![KeylistUpdateRule {
            recipient_key: verkey.to_owned(),
            action,
        }]);
        let expected = vec![Match::Thread(update.id.clone())];
        let key = self.mediator.1.clone();
        let to = self.to_mediator(&key);
        let a = self
            .ask(&update, expected, to, deadline, "keylist-update-response")
            .await?;
        let Message::KeylistUpdateResponse(r) = &a.message else {
            return Err(unexpected("keylist-update-response", &a));
        };
        // ACA-Py echoes the key as did:key whatever form was sent: only the result matters.
        match r.updated.first().map(|u| u.result.as_str()) {
            Some("success") => {}
            Some("no_change") if action == KeylistAction::Remove => {}
            Some(other) => {
                return Err(EdgeError::new(
                    format!("keylist-update {other}"),
                    verkey.to_owned(),
                ));
            }
            None => return Err(EdgeError::new("keylist-update answered nothing", "")),
        }
        match action {
            KeylistAction::Add => self.registered.push(verkey.to_owned()),
            KeylistAction::Remove => self.registered.retain(|k| k != verkey),
        }
        Ok(())
    }

    fn peer(&self) -> Result<&PeerLink, EdgeError> {
        self.peer.as_ref().ok_or_else(|| {
            EdgeError::new(
                "no peer connection",
                "`accept_invitation` or `await_connection` must come first",
            )
        })
    }

    /// A basic message to the peer, POSTed to the mediator; the wait for its arrival at the
    /// peer's socket is registered first. Returns when the POST was answered, with the send time.
    pub async fn message(&mut self, content: String) -> Result<Instant, EdgeError> {
        let link = self.peer()?.clone();
        let to = self.peer_agent().ok_or_else(|| {
            EdgeError::new(
                "the peer is not an agent of this run",
                "its arrival cannot be seen",
            )
        })?;
        let message = BasicMessage::new(content, None);
        let waiter = to
            .inbox
            .expect(vec![Match::Thread(message.id.clone())])
            .map_err(|why| EdgeError::new("the peer's socket is closed", why))?;
        let plaintext = to_plaintext(&message).map_err(err("cannot build the message"))?;
        let peer_instance = to.instance();
        let (at, instance) = self
            .send_routed(&plaintext, &link.their, &link.my_key)
            .await?;
        // Bounded: a plan that never waits keeps only the latest.
        if self.unconfirmed.len() >= 1024 {
            self.unconfirmed.remove(0);
        }
        self.unconfirmed.push(Sent {
            id: message.id,
            at,
            instance,
            peer_instance,
            to,
            waiter,
        });
        Ok(at)
    }

    /// The peer's agent in this run (where a message to it is read), once connected.
    fn peer_agent(&self) -> Option<Arc<Shared>> {
        let key = self.peer.as_ref()?.their.recipient_keys.first()?;
        self.hub.agent_of(key.verkey())
    }

    /// Trust ping with a response: to the peer through the mediator, or to the mediator over
    /// the socket. Returns when the ping was sent and the waiter for its response.
    pub async fn ping(&mut self, to_peer: bool) -> Result<(Instant, Waiter), EdgeError> {
        let mut ping = TrustPing::new(true);
        if !to_peer {
            let waiter = self.expect(vec![Match::Thread(ping.id.clone())])?;
            let key = self.mediator.1.clone();
            let at = self.send(&ping, self.to_mediator(&key)).await?;
            return Ok((at, waiter));
        }
        ping.transport = None;
        let link = self.peer()?.clone();
        let waiter = self.expect(vec![Match::Thread(ping.id.clone())])?;
        let plaintext = to_plaintext(&ping).map_err(err("cannot build the message"))?;
        let holds = self.peer_agent().and_then(|p| p.instance());
        let (at, took) = self
            .send_routed(&plaintext, &link.their, &link.my_key)
            .await?;
        self.ping_across = took.zip(holds).filter(|(took, holds)| took != holds);
        Ok((at, waiter))
    }

    /// Waits for a ping response. A ping to the peer that got none while the peer's socket
    /// was down says so.
    pub async fn pong(
        &self,
        waiter: Waiter,
        deadline: Instant,
        to_peer: bool,
    ) -> Result<Instant, EdgeError> {
        let since = Instant::now();
        let a = match answer(&self.shared, waiter, deadline, "ping response").await {
            Ok(a) => a,
            Err(e) if to_peer && e.reason.ends_with("in time") => {
                return Err(
                    match self
                        .peer_agent()
                        .and_then(|p| p.down_during(since, Instant::now()))
                    {
                        Some(outage) => EdgeError::new(
                            "no ping response: the peer's socket to the mediator dropped",
                            outage,
                        ),
                        None => match &self.ping_across {
                            Some((took, holds)) => EdgeError::new(
                                "no ping response: the mediator instance that took the ping holds no socket for the peer",
                                format!(
                                    "taken by instance {took}; the peer's socket was on instance {holds}"
                                ),
                            ),
                            None => e,
                        },
                    },
                );
            }
            Err(e) => return Err(e),
        };
        match a.message {
            Message::TrustPingResponse(_) => Ok(a.at),
            _ => Err(unexpected("the ping response", &a)),
        }
    }

    /// Removes every registered key, then closes the socket. The first failure is returned
    /// after the socket is closed anyway.
    pub async fn disconnect(&mut self, timeout: Duration) -> Result<(), EdgeError> {
        let mut result = Ok(());
        for key in self.registered.clone() {
            let r = self
                .keylist_update(&key, KeylistAction::Remove, timeout)
                .await;
            if result.is_ok() {
                result = r;
            }
        }
        self.close(timeout).await;
        result
    }

    /// Closes the socket and forgets the agent's keys.
    pub async fn close(&mut self, timeout: Duration) {
        if let Some(p) = self.poller.take() {
            p.abort();
        }
        self.websocket = None;
        self.out = None;
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(timeout, task).await;
        }
        self.forget_keys();
    }

    fn forget_keys(&self) {
        if let Ok(keys) = self.shared.keys.lock() {
            keys.keys().for_each(|k| self.hub.unregister(k));
        }
    }
}

impl Drop for EdgeAgent {
    fn drop(&mut self) {
        // the socket task ends when its sender is gone; keys must not outlive the agent
        if let Some(p) = self.poller.take() {
            p.abort();
        }
        self.forget_keys();
    }
}
