//! The engine layer: running a resolved plan. It owns the run's shared context and stop
//! signals, the orchestration (driver, abort watcher), virtual users, the HTTP client (and the run's TLS, `http::tls`),
//! agent events (webhooks, admin websocket), edge agents (the users as DIDComm agents
//! themselves, on `didcomm/`), pairing pools, agent gauges and shard splitting. A run is
//! tokio's multi-threaded runtime ([`run::runtime`]) with one task per virtual user.
//!
//! It may import the plan, results and measure layers, never the reporters or the CLI:
//! whatever a run shows while it goes (live view, Prometheus, live page) is handed in by
//! the caller as an observer.

pub(crate) mod abort;
pub mod context;
pub(crate) mod driver;
pub(crate) mod edge;
pub(crate) mod events;
pub(crate) mod gauges;
pub(crate) mod http;
pub(crate) mod pairing;
pub mod run;
pub mod shard;
pub(crate) mod user;
