//! The output layer: everything a person or another program reads from a run: the
//! terminal report, the live terminal view, the HTML report, CSV files, and the live
//! HTTP endpoints (Prometheus metrics, the live page).
//!
//! It may import the plan, results and measure layers; it never runs anything (no engine).

// The HTML and terminal reports are part of the library's surface (integration tests
// render them); the rest serves the CLI.
pub(crate) mod csv;
pub mod html;
pub(crate) mod live;
pub mod report;
pub(crate) mod serve;
