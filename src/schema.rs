//! JSON Schemas: the plan schema generated from the model (and checked in under
//! `schemas/`), and validation of a parsed plan against it with errors mapped to lines.

use std::sync::LazyLock;

use jsonschema::error::ValidationErrorKind;
use jsonschema::{ValidationError, Validator};
use serde_json::Value;

use crate::diagnostic::Diagnostic;
use crate::source::SpanIndex;

/// The plan schema as pretty JSON (the bytes of `schemas/plan.schema.json`).
pub fn plan_schema() -> String {
    pretty(schemars::schema_for!(crate::plan::Plan).as_value())
}

/// The results schema as pretty JSON (the bytes of `schemas/results.schema.json`).
pub fn results_schema() -> String {
    pretty(schemars::schema_for!(crate::results::Results).as_value())
}

fn pretty(v: &Value) -> String {
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
                let child = format!("{at}/{}", crate::source::escape(key));
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

/// For `oneOf`/`anyOf` (tagged shapes, "number or template"), report the branch that got
/// furthest: the one whose errors lie deepest in the document.
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
    match best {
        Some(branch) if depth(branch) > here => {
            for e in branch {
                describe(file, e, spans, out);
            }
        }
        _ => {
            // Every branch failed right here: name the choices (externally tagged enums).
            let choices: Vec<String> = context
                .iter()
                .flatten()
                .filter_map(|e| match e.kind() {
                    ValidationErrorKind::Required { property } => {
                        property.as_str().map(str::to_string)
                    }
                    ValidationErrorKind::Enum { options } => Some(options.to_string()),
                    ValidationErrorKind::Constant { expected_value } => {
                        Some(expected_value.to_string())
                    }
                    _ => None,
                })
                .collect();
            let given: Vec<String> = error
                .instance()
                .as_object()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            let msg = if !choices.is_empty() && error.instance().is_object() {
                let mut msg = format!("expected exactly one of {}{}", list(&choices), place(at));
                if let [key] = given.as_slice()
                    && let Some(s) = suggest(key, &choices)
                {
                    msg = format!("unknown key `{key}`; did you mean `{s}`? ({msg})");
                }
                msg
            } else {
                format!("{} is not valid here{}", short(error.instance()), place(at))
            };
            out.push(Diagnostic::new(file, spans.value(at), msg));
        }
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
                if let Some(s) = suggest(given, &names) {
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
            names.join(" or ")
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
    match suggest(key, known) {
        Some(s) => format!("unknown key `{key}`; did you mean `{s}`?"),
        None if !known.is_empty() => {
            format!("unknown key `{key}`; expected one of {}", list(known))
        }
        None => format!("unknown key `{key}`"),
    }
}

/// The closest name by Jaro–Winkler similarity, if it is close enough to be a typo.
pub fn suggest(given: &str, names: &[String]) -> Option<String> {
    names
        .iter()
        .map(|n| (strsim::jaro_winkler(given, n), n))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, n)| n.clone())
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
