//! The results file's JSON Schema, generated from the results model (and checked in as
//! `schemas/results.schema.json`).

/// The results schema as pretty JSON (the bytes of `schemas/results.schema.json`).
pub fn results_schema() -> String {
    crate::plan::schema::pretty(schemars::schema_for!(crate::results::Results).as_value())
}
