//! One edge agent's inbox: what its socket read, routed to whoever waits for it — by thread id,
//! parent thread (a DID Exchange request answering an invitation), or type (ACA-Py's unthreaded
//! `mediate-grant`). Nothing waits yet: kept (bounded) for a waiter that comes later.
//!
//! A std mutex guards it, held only to look up or insert, never across an await.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::oneshot;

use crate::didcomm::incoming::{Header, Message};
use crate::didcomm::message_type::MessageType;

// Bounded per agent, so that thousands of agents fit in one process; message ids are kept
// as 64-bit hashes.
/// Messages kept for a later waiter; older ones are dropped.
const PENDING: usize = 16;
/// How long a kept message waits for a waiter (an answer that came after its wait gave up
/// would otherwise sit here all run).
const KEEP: std::time::Duration = std::time::Duration::from_secs(60);
/// Basic-message ids remembered to spot a duplicate delivery.
const SEEN: usize = 64;
/// Timed-out messages remembered to report a late ("held") arrival.
const LATE: usize = 64;

/// A message id as the inbox remembers it.
pub(super) fn key(id: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(id)
}

/// A message as it came off the socket.
#[derive(Debug)]
pub struct Arrival {
    /// When the socket read the frame.
    pub at: Instant,
    pub header: Header,
    pub message: Message,
}

/// What a waiter waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// `~thread.thid` (or the message's own `@id` when unthreaded).
    Thread(String),
    /// `~thread.pthid`.
    Parent(String),
    /// The message type (with no thread to match on).
    Kind(MessageType),
}

impl Match {
    fn matches(&self, a: &Arrival) -> bool {
        match self {
            Match::Thread(t) => a.header.thid() == t,
            Match::Parent(p) => a.header.pthid() == Some(p.as_str()),
            Match::Kind(k) => a.header.kind() == Some(*k),
        }
    }
}

/// What happened to a delivery that arrived after its wait gave up.
#[derive(Debug, Clone)]
pub struct Late {
    /// When the sender sent it.
    pub sent: Instant,
    /// The step that counted it lost.
    pub step: Arc<str>,
}

/// How a basic message was taken in.
#[derive(Debug)]
pub enum Taken {
    /// First delivery: routed or kept.
    New,
    /// Already received once.
    Duplicate,
    /// Its wait had given up; it was held this long.
    Late(Late),
}

#[derive(Default)]
struct State {
    waiters: Vec<(Vec<Match>, oneshot::Sender<Arrival>)>,
    pending: VecDeque<Arrival>,
    seen: VecDeque<u64>,
    late: HashMap<u64, Late>,
    late_order: VecDeque<u64>,
    closed: Option<String>,
}

/// The inbox of one agent.
#[derive(Default)]
pub struct Inbox {
    state: Mutex<State>,
}

/// A wait registered before the message that answers it is sent.
pub type Waiter = oneshot::Receiver<Arrival>;

impl Inbox {
    /// Registers a wait for the first message matching any of `matches` (a kept one answers
    /// at once). Fails with the reason when the socket has closed.
    pub fn expect(&self, matches: Vec<Match>) -> Result<Waiter, String> {
        let (tx, rx) = oneshot::channel();
        let Ok(mut s) = self.state.lock() else {
            return Err("inbox poisoned".into());
        };
        if let Some(pos) = s
            .pending
            .iter()
            .position(|a| matches.iter().any(|m| m.matches(a)))
            && let Some(a) = s.pending.remove(pos)
        {
            if s.pending.is_empty() {
                // an idle agent keeps no buffer
                s.pending = VecDeque::new();
            }
            let _ = tx.send(a);
            return Ok(rx);
        }
        if let Some(why) = &s.closed {
            return Err(why.clone());
        }
        s.waiters.retain(|(_, w)| !w.is_closed());
        s.waiters.push((matches, tx));
        Ok(rx)
    }

    /// Routes a message to its waiter, or keeps it.
    pub fn deliver(&self, a: Arrival) {
        self.route(a, true);
    }

    /// Routes a message to its waiter; one nobody waits for is dropped (a status the mediator
    /// sends after every acknowledgement would otherwise crowd the kept messages out).
    pub fn hand_over(&self, a: Arrival) {
        self.route(a, false);
    }

    fn route(&self, a: Arrival, keep: bool) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        let mut a = a;
        while let Some(i) = s
            .waiters
            .iter()
            .position(|(ms, _)| ms.iter().any(|m| m.matches(&a)))
        {
            let (_, tx) = s.waiters.swap_remove(i);
            if s.waiters.is_empty() {
                s.waiters = Vec::new();
            }
            match tx.send(a) {
                Ok(()) => return,
                // the waiter gave up meanwhile: try the next one
                Err(back) => a = back,
            }
        }
        if !keep {
            return;
        }
        while s
            .pending
            .front()
            .is_some_and(|old| s.pending.len() >= PENDING || a.at.duration_since(old.at) > KEEP)
        {
            s.pending.pop_front();
        }
        s.pending.push_back(a);
    }

    /// Notes a basic message's id before it is routed: a second delivery, or one whose wait
    /// had already given up, is reported instead.
    pub fn take_in(&self, id: &str) -> Taken {
        let Ok(mut s) = self.state.lock() else {
            return Taken::New;
        };
        let id = key(id);
        if s.seen.contains(&id) {
            return Taken::Duplicate;
        }
        if s.seen.len() >= SEEN {
            s.seen.pop_front();
        }
        s.seen.push_back(id);
        match s.late.remove(&id) {
            Some(l) => Taken::Late(l),
            None => Taken::New,
        }
    }

    /// Remembers a message whose wait gave up, so a late arrival is reported as held.
    pub fn gave_up(&self, id: &str, late: Late) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        if s.late_order.len() >= LATE
            && let Some(old) = s.late_order.pop_front()
        {
            s.late.remove(&old);
        }
        let id = key(id);
        s.late_order.push_back(id);
        s.late.insert(id, late);
    }

    /// The socket closed: every waiter (now and later) fails with `why`.
    pub fn close(&self, why: String) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        s.closed = Some(why);
        s.waiters.clear();
    }

    /// Why the socket closed, if it has.
    pub fn closed(&self) -> Option<String> {
        self.state.lock().ok().and_then(|s| s.closed.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrival(raw: &str) -> Arrival {
        let (header, message) = Message::parse(raw.as_bytes()).unwrap();
        Arrival {
            at: Instant::now(),
            header,
            message,
        }
    }

    const GRANT: &str = r#"{"@type":"https://didcomm.org/coordinate-mediation/1.0/mediate-grant","@id":"g1","endpoint":"http://m","routing_keys":[]}"#;

    #[test]
    fn routes_by_thread_parent_and_type_or_keeps() {
        let inbox = Inbox::default();
        let mut by_type = inbox
            .expect(vec![Match::Kind(MessageType::MediateGrant)])
            .unwrap();
        inbox.deliver(arrival(GRANT));
        assert_eq!(by_type.try_recv().unwrap().header.id, "g1");
        // nobody waits yet: kept for the waiter that comes later
        inbox.deliver(arrival(
            r#"{"@type":"https://didcomm.org/didexchange/1.1/request","@id":"r1","~thread":{"thid":"r1","pthid":"inv"},"did":"did:peer:4x"}"#,
        ));
        let mut by_parent = inbox.expect(vec![Match::Parent("inv".into())]).unwrap();
        assert_eq!(by_parent.try_recv().unwrap().header.id, "r1");
        let mut by_thread = inbox.expect(vec![Match::Thread("m1".into())]).unwrap();
        inbox.deliver(arrival(
            r#"{"@type":"https://didcomm.org/basicmessage/1.0/message","@id":"m1","content":"x"}"#,
        ));
        assert_eq!(by_thread.try_recv().unwrap().header.id, "m1");
    }

    #[test]
    fn duplicates_late_arrivals_and_close() {
        let inbox = Inbox::default();
        assert!(matches!(inbox.take_in("a"), Taken::New));
        assert!(matches!(inbox.take_in("a"), Taken::Duplicate));
        inbox.gave_up(
            "b",
            Late {
                sent: Instant::now(),
                step: Arc::from("delivered"),
            },
        );
        assert!(matches!(inbox.take_in("b"), Taken::Late(l) if &*l.step == "delivered"));
        let mut waiting = inbox.expect(vec![Match::Thread("t".into())]).unwrap();
        inbox.close("gone".into());
        assert!(waiting.try_recv().is_err());
        assert_eq!(inbox.expect(vec![]).unwrap_err(), "gone");
        assert_eq!(inbox.closed().as_deref(), Some("gone"));
    }

    #[test]
    fn kept_messages_are_bounded_in_number_and_age() {
        let inbox = Inbox::default();
        let grant = |id: &str, at: Instant| Arrival {
            at,
            ..arrival(&GRANT.replace("\"g1\"", &format!("\"{id}\"")))
        };
        let now = Instant::now();
        // (skipped only on a machine up for less than a minute: no older instant exists)
        if let Some(old) = now.checked_sub(KEEP + std::time::Duration::from_secs(1)) {
            inbox.deliver(grant("stale", old));
            inbox.deliver(grant("fresh", now));
            let mut w = inbox
                .expect(vec![Match::Kind(MessageType::MediateGrant)])
                .unwrap();
            assert_eq!(
                w.try_recv().unwrap().header.id,
                "fresh",
                "the stale one was dropped"
            );
        }
        for i in 0..PENDING + 5 {
            inbox.deliver(grant(&format!("g{i}"), now));
        }
        let mut first = inbox
            .expect(vec![Match::Kind(MessageType::MediateGrant)])
            .unwrap();
        assert_eq!(
            first.try_recv().unwrap().header.id,
            "g5",
            "the oldest five were dropped"
        );
        // Duplicates are spotted among the last SEEN ids, no further back.
        for i in 0..SEEN {
            assert!(matches!(inbox.take_in(&format!("m{i}")), Taken::New));
        }
        assert!(matches!(inbox.take_in("m0"), Taken::Duplicate));
        assert!(matches!(inbox.take_in("new"), Taken::New));
        assert!(
            matches!(inbox.take_in("m0"), Taken::New),
            "m0 has left the window"
        );
    }
}
