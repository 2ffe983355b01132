//! A TCP proxy a test can cut: between the edge agents and the mediator's WebSocket port, so a
//! test can drop every agent's socket at a moment it chooses and refuse new ones (a network
//! outage, or a mediator that is down behind it) while the mediator itself keeps running.

use std::io::ErrorKind;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

#[derive(Default)]
struct State {
    /// Accepting connections (otherwise the port is closed: connections are refused).
    open: AtomicBool,
    /// The accept loop's listener is bound (it follows `open`).
    listening: AtomicBool,
    stop: AtomicBool,
    /// Both ends of every proxied connection, to cut them.
    conns: Mutex<Vec<TcpStream>>,
}

pub struct Proxy {
    state: Arc<State>,
}

impl Proxy {
    /// Listens on `listen` and relays every connection to `upstream`; a connection whose
    /// upstream refuses is closed at once.
    pub fn start(listen: SocketAddr, upstream: SocketAddr) -> Proxy {
        let state = Arc::new(State::default());
        state.open.store(true, Ordering::SeqCst);
        let listener = bind(listen);
        state.listening.store(true, Ordering::SeqCst);
        let s = state.clone();
        thread::spawn(move || accept_loop(listen, Some(listener), upstream, &s));
        Proxy { state }
    }

    /// Drops every proxied connection and refuses new ones until [`Proxy::resume`].
    pub fn cut(&self) {
        self.shut();
        // the accept loop closes its listener within one poll
        while self.state.listening.load(Ordering::SeqCst) {
            thread::sleep(Duration::from_millis(1));
        }
    }

    fn shut(&self) {
        self.state.open.store(false, Ordering::SeqCst);
        for c in self.state.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    /// Accepts connections again.
    pub fn resume(&self) {
        self.state.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // not `cut`: the accept loop may already have ended, it does not wait for it
        self.state.stop.store(true, Ordering::SeqCst);
        self.shut();
    }
}

fn bind(addr: SocketAddr) -> TcpListener {
    // std sets SO_REUSEADDR: the port can be bound again right after it was closed
    let l = TcpListener::bind(addr).unwrap_or_else(|e| panic!("proxy cannot bind {addr}: {e}"));
    l.set_nonblocking(true).unwrap();
    l
}

fn accept_loop(
    listen: SocketAddr,
    mut listener: Option<TcpListener>,
    upstream: SocketAddr,
    state: &Arc<State>,
) {
    while !state.stop.load(Ordering::SeqCst) {
        if !state.open.load(Ordering::SeqCst) {
            listener = None;
            state.listening.store(false, Ordering::SeqCst);
            thread::sleep(Duration::from_millis(10));
            continue;
        }
        let l = listener.get_or_insert_with(|| bind(listen));
        state.listening.store(true, Ordering::SeqCst);
        match l.accept() {
            Ok((client, _)) => relay(client, upstream, state),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(10));
            }
            Err(_) => thread::sleep(Duration::from_millis(10)),
        }
    }
    state.listening.store(false, Ordering::SeqCst);
}

fn relay(client: TcpStream, upstream: SocketAddr, state: &Arc<State>) {
    let _ = client.set_nonblocking(false);
    let Ok(server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(2)) else {
        // nothing behind the proxy: close the client's connection
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    {
        let mut conns = state.conns.lock().unwrap();
        conns.push(client.try_clone().unwrap());
        conns.push(server.try_clone().unwrap());
    }
    for (mut from, mut to) in [
        (client.try_clone().unwrap(), server.try_clone().unwrap()),
        (server, client),
    ] {
        thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = from.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
        });
    }
}
