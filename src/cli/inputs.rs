//! What a command reads from the command line besides its flags: the plan file, compiled,
//! and the variable sources (`--set`, the environment, the env file).

use std::collections::HashMap;

use super::args::VarArgs;
use super::exit::EXIT_ERROR;
use crate::plan::compile::{self, CompiledPlan};

/// Loads and compiles a plan file; prints its diagnostics when it cannot.
pub(super) fn load(path: &std::path::Path) -> Result<CompiledPlan, u8> {
    compile::load_file(path).map_err(|f| {
        crate::errln!("{}", f.render());
        EXIT_ERROR
    })
}

/// Collects variable sources: `--set`, the process environment and the env file.
pub(super) fn sources(vars: &VarArgs) -> Result<crate::plan::env::EnvSources, String> {
    let mut set = HashMap::new();
    for kv in &vars.set {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("--set {kv}: expected NAME=VALUE"))?;
        set.insert(k.to_string(), v.to_string());
    }
    let dotenv = match &vars.env_file {
        Some(p) => crate::plan::env::read_dotenv(p)?,
        None if std::path::Path::new(".env").is_file() => {
            crate::plan::env::read_dotenv(std::path::Path::new(".env"))?
        }
        None => HashMap::new(),
    };
    Ok(crate::plan::env::EnvSources {
        set,
        process: std::env::vars().collect(),
        dotenv,
    })
}
