//! The load pipeline: file → text → YAML with spans → schema → model → compiled plan, and
//! the check that every template variable is defined somewhere.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::cx::{Cx, Parts};
use super::{CompiledPlan, LoadFailure};
use crate::plan::Plan;
use crate::plan::diagnostic::{self, Diagnostic};
use crate::plan::source::{self, Position, SpanIndex};
use crate::plan::template::{self, Compiler};

/// Reads and compiles a plan file. Missing files, directories and non-text give one line.
pub fn load_file(path: &std::path::Path) -> Result<CompiledPlan, LoadFailure> {
    let file = path.display().to_string();
    let whole = |msg: String| LoadFailure {
        diagnostics: vec![Diagnostic::whole_file(&file, msg)],
        source: None,
    };
    if path.is_dir() {
        return Err(whole("is a directory, not a plan file".into()));
    }
    let bytes = std::fs::read(path).map_err(|e| {
        whole(match e.kind() {
            std::io::ErrorKind::NotFound => "no such file".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            _ => format!("cannot be read: {e}"),
        })
    })?;
    let text = String::from_utf8(bytes)
        .map_err(|_| whole("is not a text file (not UTF-8); a plan is YAML text".into()))?;
    if text.contains('\0') {
        return Err(whole(
            "is not a text file (contains NUL bytes); a plan is YAML text".into(),
        ));
    }
    load_str(&file, text)
}

/// Compiles plan text; `file` names it in findings.
pub fn load_str(file: &str, text: String) -> Result<CompiledPlan, LoadFailure> {
    match read(file, &text) {
        Ok((plan, spans)) => compile(file, text, spans, plan),
        Err(diagnostics) => Err(failure(diagnostics, text)),
    }
}

fn failure(mut diagnostics: Vec<Diagnostic>, text: String) -> LoadFailure {
    diagnostic::sort(&mut diagnostics);
    LoadFailure {
        diagnostics,
        source: Some(text),
    }
}

/// Text → YAML with spans → schema check → typed model.
fn read(file: &str, text: &str) -> Result<(Plan, SpanIndex), Vec<Diagnostic>> {
    if text.trim().is_empty() {
        return Err(vec![Diagnostic::whole_file(
            file,
            "is empty; a plan needs at least `name`, `target`, `load` and `user`",
        )]);
    }
    let (json, spans) = source::parse(text).map_err(|e| {
        vec![Diagnostic::new(
            file,
            e.position,
            format!("YAML syntax: {}", e.message),
        )]
    })?;
    if !json.is_object() {
        return Err(vec![Diagnostic::new(
            file,
            Position { line: 1, column: 1 },
            "a plan must be a YAML mapping (`name: …`, `target: …`)",
        )]);
    }
    let schema_errors = crate::plan::schema::validate(file, &json, &spans);
    if !schema_errors.is_empty() {
        return Err(schema_errors);
    }
    match serde_path_to_error::deserialize(&json) {
        Ok(plan) => Ok((plan, spans)),
        Err(e) => {
            let pointer = format!("/{}", e.path().to_string().replace('.', "/"));
            Err(vec![Diagnostic::new(
                file,
                spans.value(&pointer),
                e.inner().to_string(),
            )])
        }
    }
}

/// Compiles every template, condition and JSONPath of a plan that passed the schema, and
/// checks that every variable a template uses is defined somewhere.
fn compile(
    file: &str,
    text: String,
    spans: SpanIndex,
    plan: Plan,
) -> Result<CompiledPlan, LoadFailure> {
    let mut cx = Cx {
        file,
        spans: &spans,
        compiler: Compiler::new(),
        diags: Vec::new(),
        defined: BTreeSet::new(),
        step_names: BTreeSet::new(),
        templated: Vec::new(),
        threshold_limits: Vec::new(),
        watch_intervals: Vec::new(),
    };
    let compiled = cx.plan(&plan);
    let settings = cx.settings(&plan);
    let Cx {
        compiler,
        mut diags,
        defined,
        templated,
        threshold_limits,
        watch_intervals,
        ..
    } = cx;
    // Template syntax, then variables nothing defines, then undeclared env names.
    for issue in &compiler.issues {
        diags.push(Diagnostic::new(
            file,
            spans.value(&issue.pointer),
            format!("template: {}", issue.message),
        ));
    }
    for (pointer, names, response) in &compiler.references {
        for name in names {
            if let Some(msg) = check_reference(name, *response, &plan, &defined) {
                diags.push(Diagnostic::new(file, spans.value(pointer), msg));
            }
        }
    }
    if !diags.is_empty() {
        diags.dedup();
        return Err(failure(diags, text));
    }
    let templates = match compiler.finish() {
        Ok(t) => Arc::new(t),
        Err(e) => {
            let whole = Diagnostic::whole_file(file, format!("template: {e}"));
            return Err(failure(vec![whole], text));
        }
    };
    let Parts {
        target,
        vars,
        setup,
        tasks,
        teardown,
        think,
        load_params,
        load_texts,
    } = compiled;
    Ok(CompiledPlan {
        file: file.to_string(),
        source: text,
        spans,
        plan,
        templates,
        target,
        vars,
        setup,
        tasks,
        teardown,
        think,
        templated,
        threshold_limits,
        watch_intervals,
        load_params,
        load_texts,
        settings,
    })
}

fn check_reference(
    name: &str,
    response: bool,
    plan: &Plan,
    defined: &BTreeSet<String>,
) -> Option<String> {
    let mut parts = name.splitn(2, '.');
    let root = parts.next().unwrap_or_default();
    if root == "env" {
        let var = parts.next()?;
        if plan.env.contains_key(var) {
            return None;
        }
        let names: Vec<String> = plan.env.keys().cloned().collect();
        let hint = crate::plan::diagnostic::suggest(var, &names)
            .map(|s| format!("; did you mean `env.{s}`?"))
            .unwrap_or_default();
        return Some(format!(
            "`env.{var}` is used but not declared under `env:`{hint}"
        ));
    }
    if template::BUILTINS.contains(&root)
        || template::FUNCTIONS.contains(&root)
        || defined.contains(root)
    {
        return None;
    }
    if template::RESPONSE_VARS.contains(&root) {
        return (!response).then(|| {
            format!(
                "`{root}` is only available in `check.that` and `poll.until` (after the response)"
            )
        });
    }
    let names: Vec<String> = defined.iter().cloned().collect();
    let hint = crate::plan::diagnostic::suggest(root, &names)
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default();
    Some(format!(
        "variable `{root}` is not defined by any `vars`, `capture`, `set` or `take`{hint}"
    ))
}
