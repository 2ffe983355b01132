//! Templates and conditions simple enough to evaluate without minijinja: text that is only
//! `{{ name.path }}` holes, bare variables, and comparisons of variables and string literals
//! joined by `and`. Each is recognised when the plan loads; at run time a value the shortcut
//! cannot give as the engine would (not a string in a text, undefined) sends the call back to
//! the engine, so output and error messages are always the engine's.

use minijinja::value::Value;

use super::scope::{Scope, to_value};

/// An expression simple enough to evaluate without the engine: a bare variable, or
/// comparisons of variables and string literals joined by `and` (most `until` and `that`
/// conditions: `event.state == 'active' and event.connection_id == conn_id`).
#[derive(Debug)]
pub(super) enum Plain {
    Var(VarPath),
    All(Vec<(Operand, bool, Operand)>),
}

#[derive(Debug)]
pub(super) enum Operand {
    Var(VarPath),
    Str(String),
}

impl Plain {
    pub(super) fn parse(source: &str) -> Option<Plain> {
        if let Some(path) = var_path(source) {
            return Some(Plain::Var(path));
        }
        let operand = |s: &str| {
            let s = s.trim_matches(' ');
            for q in ['\'', '"'] {
                if let Some(inner) = s.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
                    let plain = !inner.contains(q) && !inner.contains('\\');
                    return plain.then(|| Operand::Str(inner.to_string()));
                }
            }
            var_path(s).map(Operand::Var)
        };
        let mut all = Vec::new();
        for part in source.split(" and ") {
            let (l, eq, r) = match (part.split_once(" == "), part.split_once(" != ")) {
                (Some((l, r)), None) => (l, true, r),
                (None, Some((l, r))) => (l, false, r),
                _ => return None,
            };
            all.push((operand(l)?, eq, operand(r)?));
        }
        Some(Plain::All(all))
    }

    /// The value, as the engine would give it; `None` when a variable is undefined (the
    /// engine then says what is wrong).
    pub(super) fn eval(&self, ctx: &Value) -> Option<Value> {
        let value = |o: &Operand| match o {
            Operand::Var(p) => lookup(ctx, p),
            Operand::Str(s) => Some(Value::from(s.as_str())),
        };
        match self {
            Plain::Var(p) => lookup(ctx, p),
            Plain::All(all) => {
                for (l, eq, r) in all {
                    if (value(l)? == value(r)?) != *eq {
                        return Some(Value::from(false));
                    }
                }
                Some(Value::from(true))
            }
        }
    }
}

/// A variable, or an attribute path into one: `token`, `peer.wallet_id`.
pub(super) type VarPath = Vec<String>;

/// A template that is only literal text and `{{ variable }}` holes (most request paths,
/// bearer tokens and bodies). It is rendered by looking the variables up, without the
/// template engine; a value that is not a string goes to the engine, so that the output
/// and the errors are always the engine's.
#[derive(Debug)]
pub(super) struct Interpolation(Vec<Piece>);

#[derive(Debug)]
pub(super) enum Piece {
    Text(String),
    Var(VarPath),
}

impl Interpolation {
    /// `None` when `source` has anything but text and `{{ name(.name)* }}`: statements,
    /// comments, filters, whitespace control, or a final newline (which the engine drops).
    pub(super) fn parse(source: &str) -> Option<Interpolation> {
        if source.ends_with('\n') || source.contains("{%") || source.contains("{#") {
            return None;
        }
        let mut pieces = Vec::new();
        let mut rest = source;
        while let Some(open) = rest.find("{{") {
            let text = &rest[..open];
            if text.contains("}}") {
                return None;
            }
            if !text.is_empty() {
                pieces.push(Piece::Text(text.to_string()));
            }
            let after = &rest[open + 2..];
            let close = after.find("}}")?;
            pieces.push(Piece::Var(var_path(&after[..close])?));
            rest = &after[close + 2..];
        }
        if rest.contains("}}") {
            return None;
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Some(Interpolation(pieces))
    }

    /// The rendered text, when every variable holds a string.
    pub(super) fn render(&self, ctx: &Value) -> Option<String> {
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Var(path) => out.push_str(lookup(ctx, path)?.as_str()?),
            }
        }
        Some(out)
    }
}

/// `name(.name)*` with spaces around it, and not a name the engine itself defines.
fn var_path(inner: &str) -> Option<VarPath> {
    let inner = inner.trim_matches(' ');
    let path: VarPath = inner.split('.').map(str::to_string).collect();
    let ident = |s: &String| {
        s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let reserved = [
        "true", "false", "none", "True", "False", "None", "loop", "range",
    ];
    (path.iter().all(ident) && !reserved.contains(&path[0].as_str())).then_some(path)
}

/// The value at `path` in the scope; `None` when any part of it is undefined.
fn lookup(ctx: &Value, path: &[String]) -> Option<Value> {
    if let Some(found) = ctx
        .downcast_object_ref::<Scope>()
        .and_then(|scope| json_at(scope, path))
    {
        return found;
    }
    let mut v = ctx.get_attr(&path[0]).ok()?;
    for name in &path[1..] {
        if v.is_undefined() {
            return None;
        }
        v = v.get_attr(name).ok()?;
    }
    (!v.is_undefined()).then_some(v)
}

/// `event.…` and `body.…` read straight from the JSON, so only the value at the end of
/// the path is converted, not the whole payload. `None` when the path starts elsewhere;
/// `Some(None)` when a key on it is missing.
fn json_at(scope: &Scope, path: &[String]) -> Option<Option<Value>> {
    let root = match path[0].as_str() {
        "event" => scope.event.as_deref()?,
        "body" => scope.response.as_ref()?.json.as_ref()?,
        _ => return None,
    };
    let mut v = root;
    for key in &path[1..] {
        match v.get(key.as_str()) {
            Some(next) => v = next,
            None => return Some(None),
        }
    }
    Some(Some(to_value(v)))
}
