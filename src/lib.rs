//! acaload: declarative load tests for ACA-Py agents and DIDComm mediators.
//! The binary is a thin shell over [`cli::main`]; the engine never sees clap.

pub mod capture;
pub mod cli;
pub mod compile;
pub mod csv_out;
pub mod diagnostic;
pub mod duration;
pub mod env;
pub mod events;
pub mod explain;
pub mod gauges;
pub mod html;
pub mod http;
pub mod live;
pub mod merge;
pub mod metrics;
pub mod pairing;
pub mod plan;
pub mod redact;
pub mod report;
pub mod resolve;
pub mod results;
pub mod run;
pub mod schema;
pub mod serve;
pub mod shape;
pub mod shard;
pub mod source;
pub mod template;
pub mod trace_sink;
pub mod user;
