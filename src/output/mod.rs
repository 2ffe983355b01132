//! The output layer: everything a person or another program reads from a run: the
//! terminal report, the live terminal view, the HTML report, CSV files, and the live
//! HTTP endpoints (Prometheus metrics, the live page).
//!
//! It may import the plan, results and measure layers; it never runs anything (no engine).

pub mod csv;
pub mod html;
pub mod live;
pub mod report;
pub mod serve;
