//! One integration-test binary: plan diagnostics, the engine against a local stub,
//! and end to end against real ACA-Py agents.

mod aggregate;
mod as_written;
mod credo;
mod deploy;
mod didcomm;
mod e2e;
mod edge;
mod edge_faults;
mod engine;
mod explain;
mod failover;
mod faults;
mod fidelity;
mod layers;
mod prod;
mod proxy;
mod report;
mod stack;
mod tls;
mod validate;
