//! acaload: declarative load tests for ACA-Py agents and DIDComm mediators.
//! The binary is a thin shell over [`cli::main`]; the engine never sees clap.

pub mod capture;
pub mod cli;
pub mod compile;
pub mod diagnostic;
pub mod duration;
pub mod env;
pub mod explain;
pub mod plan;
pub mod results;
pub mod schema;
pub mod shape;
pub mod source;
pub mod template;
pub mod redact;
pub mod resolve;
