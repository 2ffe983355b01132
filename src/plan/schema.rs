//! The plan's JSON Schema, generated from the model (and checked in under `schemas/`), and
//! validation of a parsed plan against it with errors mapped to lines.

use std::sync::LazyLock;

use jsonschema::error::ValidationErrorKind;
use jsonschema::{ValidationError, Validator};
use serde_json::Value;

use crate::plan::diagnostic::Diagnostic;
use crate::plan::source::SpanIndex;

/// The plan schema as pretty JSON (the bytes of `schemas/plan.schema.json`).
pub fn plan_schema() -> String {
    pretty(schemars::schema_for!(crate::plan::Plan).as_value())
}

/// A schema as the pretty JSON checked in under `schemas/` (with a final newline).
pub fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

static PLAN_SCHEMA: LazyLock<Value> = LazyLock::new(|| {
    serde_json::to_value(schemars::schema_for!(crate::plan::Plan)).unwrap_or(Value::Null)
});
static PLAN_VALIDATOR: LazyLock<Option<Validator>> =
    LazyLock::new(|| jsonschema::validator_for(&PLAN_SCHEMA).ok());

/// Checks a parsed plan against the schema; every error is located through `spans`.
pub fn validate(file: &str, plan: &Value, spans: &SpanIndex) -> Vec<Diagnostic> {
    let Some(validator) = PLAN_VALIDATOR.as_ref() else {
        return vec![Diagnostic::whole_file(
            file,
            "internal error: the plan schema does not compile",
        )];
    };
    let mut out = Vec::new();
    for error in validator.iter_errors(plan) {
        describe(file, &error, spans, &mut out);
    }
    out.dedup();
    out
}

fn describe(file: &str, error: &ValidationError<'_>, spans: &SpanIndex, out: &mut Vec<Diagnostic>) {
    let at = error.instance_path().as_str().to_string();
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let known = allowed_properties(error.schema_path().as_str());
            for key in unexpected {
                let child = format!("{at}/{}", crate::plan::source::escape(key));
                out.push(Diagnostic::new(
                    file,
                    spans.key(&child),
                    unknown_key(key, &known),
                ));
            }
        }
        ValidationErrorKind::OneOfNotValid { context } | ValidationErrorKind::AnyOf { context } => {
            describe_alternatives(file, &at, error, context, spans, out)
        }
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            out.push(Diagnostic::new(
                file,
                spans.value(&at),
                format!("missing required key `{name}`{}", place(&at)),
            ));
        }
        _ => out.push(Diagnostic::new(
            file,
            spans.value(&at),
            format!("{}{}", plain(error), place(&at)),
        )),
    }
}

/// For `oneOf`/`anyOf` (tagged shapes, "number or template", `Option<T>`), report the
/// branch that got furthest: the one whose errors lie deepest in the document, else the
/// only branch whose type fits the value (so `request: {headrs: …}` is reported as an
/// unknown key of `request`, not as "not valid here" because it is not `null` either).
fn describe_alternatives(
    file: &str,
    at: &str,
    error: &ValidationError<'_>,
    context: &[Vec<ValidationError<'static>>],
    spans: &SpanIndex,
    out: &mut Vec<Diagnostic>,
) {
    let depth = |branch: &Vec<ValidationError<'static>>| {
        branch
            .iter()
            .map(|e| e.instance_path().as_str().matches('/').count())
            .max()
            .unwrap_or(0)
    };
    let here = at.matches('/').count();
    let best = context
        .iter()
        .filter(|b| !b.is_empty())
        .max_by_key(|b| (depth(b), usize::MAX - b.len()));
    if let Some(branch) = best
        && depth(branch) > here
    {
        for e in branch {
            describe(file, e, spans, out);
        }
        return;
    }
    // Branches the value's type fits; when exactly one does, its errors are the real ones.
    let fitting: Vec<&Vec<ValidationError<'static>>> = context
        .iter()
        .filter(|b| !b.is_empty() && !b.iter().any(|e| wrong_type(e, at)))
        .collect();
    if let [branch] = fitting.as_slice() {
        for e in branch.iter() {
            describe(file, e, spans, out);
        }
        return;
    }
    let msg = no_branch_fits(at, error, context, fitting.len());
    out.push(Diagnostic::new(file, spans.value(at), msg));
}

/// The message when every branch of an alternative failed right at `at`: the choices it
/// offers (externally tagged enums: the key each branch requires, or the only key it
/// allows; unit enums: the constants), else the types it accepts.
fn no_branch_fits(
    at: &str,
    error: &ValidationError<'_>,
    context: &[Vec<ValidationError<'static>>],
    fitting: usize,
) -> String {
    let mut choices: Vec<String> = Vec::new();
    for e in context.iter().flatten() {
        let found = match e.kind() {
            ValidationErrorKind::Required { property } => {
                property.as_str().map(str::to_string).into_iter().collect()
            }
            ValidationErrorKind::AdditionalProperties { .. } => {
                allowed_properties(e.schema_path().as_str())
            }
            ValidationErrorKind::Enum { options } => vec![options.to_string()],
            ValidationErrorKind::Constant { expected_value } => vec![expected_value.to_string()],
            _ => Vec::new(),
        };
        for f in found {
            if !choices.contains(&f) {
                choices.push(f);
            }
        }
    }
    let mut types = Vec::new();
    for e in context.iter().flatten() {
        expected_types(e, at, &mut types);
    }
    if !choices.is_empty() && error.instance().is_object() {
        one_key_of(at, error, &choices)
    } else if let Some(given) = error.instance().as_str()
        && !choices.is_empty()
        && fitting == context.len()
    {
        // A string that is none of the allowed constants (documented unit enums).
        let mut msg = format!(
            "{} is not one of {}",
            short(error.instance()),
            choices.join(", ")
        );
        let names: Vec<String> = choices
            .iter()
            .map(|c| c.trim_matches('"').to_string())
            .collect();
        if let Some(s) = crate::plan::diagnostic::suggest(given, &names) {
            msg.push_str(&format!("; did you mean `{s}`?"));
        }
        format!("{msg}{}", place(at))
    } else if !types.is_empty() && fitting == 0 {
        // `Option<T>` allows null, but nobody means to write `null` there.
        if types.len() > 1 {
            types.retain(|t| t != "null");
        }
        format!(
            "{} is not of type {}{}",
            short(error.instance()),
            types.join(" or "),
            place(at)
        )
    } else {
        format!("{} is not valid here{}", short(error.instance()), place(at))
    }
}

/// A mapping that should hold exactly one of the `choices` keys: which it holds, and the
/// key it most likely meant when it holds one unknown key.
fn one_key_of(at: &str, error: &ValidationError<'_>, choices: &[String]) -> String {
    let given: Vec<String> = error
        .instance()
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let present: Vec<String> = given
        .iter()
        .filter(|k| choices.contains(k))
        .cloned()
        .collect();
    let found = if present.len() > 1 {
        format!(", found {}", list(&present).replace(", ", " and "))
    } else {
        String::new()
    };
    let msg = format!(
        "expected exactly one of {}{found}{}",
        list(choices),
        place(at)
    );
    if let [key] = given.as_slice()
        && let Some(s) = crate::plan::diagnostic::suggest(key, choices)
    {
        return format!("unknown key `{key}`; did you mean `{s}`? ({msg})");
    }
    msg
}

/// The types the branches of an alternative at `at` would have accepted, nested ones included.
fn expected_types(error: &ValidationError<'_>, at: &str, types: &mut Vec<String>) {
    if error.instance_path().as_str() != at {
        return;
    }
    match error.kind() {
        ValidationErrorKind::Type { kind } => {
            for t in type_name(kind).split(" or ") {
                if !types.iter().any(|known| known == t) {
                    types.push(t.to_string());
                }
            }
        }
        ValidationErrorKind::OneOfNotValid { context } | ValidationErrorKind::AnyOf { context } => {
            for e in context.iter().flatten() {
                expected_types(e, at, types);
            }
        }
        _ => {}
    }
}

/// Whether `error` says the value at `at` has the wrong type for its branch altogether.
fn wrong_type(error: &ValidationError<'_>, at: &str) -> bool {
    if error.instance_path().as_str() != at {
        return false;
    }
    match error.kind() {
        ValidationErrorKind::Type { .. } => true,
        ValidationErrorKind::OneOfNotValid { context } | ValidationErrorKind::AnyOf { context } => {
            context.iter().all(|b| b.iter().any(|e| wrong_type(e, at)))
        }
        _ => false,
    }
}

fn plain(error: &ValidationError<'_>) -> String {
    match error.kind() {
        ValidationErrorKind::Type { kind } => format!(
            "{} is not of type {}",
            short(error.instance()),
            type_name(kind)
        ),
        ValidationErrorKind::Enum { options } => {
            let opts: Vec<String> = options
                .as_array()
                .map(|a| a.iter().map(|o| o.to_string()).collect())
                .unwrap_or_default();
            let mut msg = format!(
                "{} is not one of {}",
                short(error.instance()),
                opts.join(", ")
            );
            if let Some(given) = error.instance().as_str() {
                let names: Vec<String> = opts
                    .iter()
                    .map(|o| o.trim_matches('"').to_string())
                    .collect();
                if let Some(s) = crate::plan::diagnostic::suggest(given, &names) {
                    msg.push_str(&format!("; did you mean `{s}`?"));
                }
            }
            msg
        }
        _ => error.to_string(),
    }
}

fn type_name(kind: &jsonschema::error::TypeKind) -> String {
    match kind {
        jsonschema::error::TypeKind::Single(t) => t.to_string(),
        jsonschema::error::TypeKind::Multiple(ts) => {
            let names: Vec<String> = (*ts).into_iter().map(|t| t.to_string()).collect();
            // `Option<T>` allows null, but nobody means to write `null` there.
            let shown: Vec<&str> = names
                .iter()
                .map(String::as_str)
                .filter(|n| *n != "null")
                .collect();
            if shown.is_empty() {
                names.join(" or ")
            } else {
                shown.join(" or ")
            }
        }
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(40).collect::<String>())
    } else {
        s
    }
}

fn place(pointer: &str) -> String {
    if pointer.is_empty() {
        " at the top level".into()
    } else {
        format!(" (at `{pointer}`)")
    }
}

fn list(items: &[String]) -> String {
    let mut v: Vec<String> = items.iter().map(|i| format!("`{i}`")).collect();
    v.dedup();
    v.join(", ")
}

fn unknown_key(key: &str, known: &[String]) -> String {
    match crate::plan::diagnostic::suggest(key, known) {
        Some(s) => format!("unknown key `{key}`; did you mean `{s}`?"),
        None if !known.is_empty() => {
            format!("unknown key `{key}`; expected one of {}", list(known))
        }
        None => format!("unknown key `{key}`"),
    }
}

/// The property names allowed by the schema object holding an `additionalProperties`
/// keyword, found by walking the error's schema path (following `$ref`s).
fn allowed_properties(schema_path: &str) -> Vec<String> {
    let mut node = &*PLAN_SCHEMA;
    let segments: Vec<&str> = schema_path.trim_start_matches('/').split('/').collect();
    for seg in &segments[..segments.len().saturating_sub(1)] {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        node = match node {
            Value::Object(map) if seg == "$ref" => match map.get("$ref").and_then(Value::as_str) {
                Some(r) => PLAN_SCHEMA
                    .pointer(r.trim_start_matches('#'))
                    .unwrap_or(node),
                None => node,
            },
            Value::Object(map) => match map.get(&seg) {
                Some(next) => next,
                None => return Vec::new(),
            },
            Value::Array(items) => match seg.parse::<usize>().ok().and_then(|i| items.get(i)) {
                Some(next) => next,
                None => return Vec::new(),
            },
            _ => return Vec::new(),
        };
        if let Some(r) = node.get("$ref").and_then(Value::as_str)
            && node.get("properties").is_none()
        {
            node = PLAN_SCHEMA
                .pointer(r.trim_start_matches('#'))
                .unwrap_or(node);
        }
    }
    node.get("properties")
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}
