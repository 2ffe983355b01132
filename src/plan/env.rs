//! Typed plan variables: values from the process environment, `.env` and `--set`,
//! checked against the plan's declared types before anything is sent.

use std::collections::{BTreeMap, HashMap};

use minijinja::Value;

use crate::plan::{EnvType, EnvVar};

/// Where variable values come from, highest priority first: `--set`, process, `.env`.
#[derive(Debug, Default, Clone)]
pub struct EnvSources {
    pub set: HashMap<String, String>,
    pub process: HashMap<String, String>,
    pub dotenv: HashMap<String, String>,
}

impl EnvSources {
    fn get(&self, name: &str) -> Option<(&str, &'static str)> {
        self.set
            .get(name)
            .map(|v| (v.as_str(), "--set"))
            .or_else(|| {
                self.process
                    .get(name)
                    .map(|v| (v.as_str(), "the environment"))
            })
            .or_else(|| self.dotenv.get(name).map(|v| (v.as_str(), "the env file")))
    }
}

/// The resolved variables: for templates, and a copy with secrets masked for display.
#[derive(Debug, Clone)]
pub struct ResolvedEnv {
    pub values: BTreeMap<String, Value>,
    pub display: BTreeMap<String, Value>,
    /// Secret values, so output can be scrubbed of them.
    pub secrets: Vec<String>,
}

/// Resolves every declared variable; errors name the variable, the source and the type.
pub fn resolve(
    decl: &BTreeMap<String, EnvVar>,
    sources: &EnvSources,
) -> Result<ResolvedEnv, Vec<String>> {
    let mut values = BTreeMap::new();
    let mut display = BTreeMap::new();
    let mut secrets = Vec::new();
    let mut errors = Vec::new();
    for (name, var) in decl {
        let value = match sources.get(name) {
            Some((text, from)) => match parse(var.kind, text) {
                Ok(v) => v,
                Err(why) => {
                    let shown = if var.secret { "***" } else { text };
                    errors.push(format!(
                        "{name}={shown:?} from {from} is not a valid {}: {why}",
                        type_word(var.kind)
                    ));
                    continue;
                }
            },
            None => match &var.default {
                Some(d) => match default_value(var.kind, d) {
                    Ok(v) => v,
                    Err(why) => {
                        errors.push(format!(
                            "default of {name} is not a valid {}: {why}",
                            type_word(var.kind)
                        ));
                        continue;
                    }
                },
                None if var.required => {
                    errors.push(format!("{name} is required but not set (set it in the environment, .env or --set {name}=…)"));
                    continue;
                }
                None => Value::from(""),
            },
        };
        if var.secret {
            if let Some(s) = value.as_str().filter(|s| !s.is_empty()) {
                secrets.push(s.to_string());
            }
            display.insert(name.clone(), Value::from("***"));
        } else {
            display.insert(name.clone(), value.clone());
        }
        values.insert(name.clone(), value);
    }
    if errors.is_empty() {
        Ok(ResolvedEnv {
            values,
            display,
            secrets,
        })
    } else {
        Err(errors)
    }
}

fn type_word(kind: EnvType) -> &'static str {
    match kind {
        EnvType::String => "string",
        EnvType::Int => "integer",
        EnvType::Float => "number",
        EnvType::Bool => "boolean (true or false)",
        EnvType::Duration => "duration (e.g. 30s, 1m30s, 500ms)",
    }
}

/// Parses one text value by type. Booleans are `true`/`false` only (any case), so
/// `DEBUG=False` means false and `DEBUG=no thanks` is an error, never a truthy string.
pub fn parse(kind: EnvType, text: &str) -> Result<Value, String> {
    let t = text.trim();
    match kind {
        EnvType::String => Ok(Value::from(text)),
        EnvType::Int => t
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| "expected a whole number".into()),
        EnvType::Float => match t.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Value::from(f)),
            _ => Err("expected a number such as 0.5".into()),
        },
        EnvType::Bool => match t.to_ascii_lowercase().as_str() {
            "true" => Ok(Value::from(true)),
            "false" => Ok(Value::from(false)),
            _ => Err("expected true or false".into()),
        },
        EnvType::Duration => crate::plan::duration::parse(t)
            .map(|_| Value::from(t))
            .map_err(|e| e.to_string()),
    }
}

/// Checks a plan default (already typed by YAML) against the declared type.
pub fn default_value(kind: EnvType, v: &serde_json::Value) -> Result<Value, String> {
    match (kind, v) {
        (EnvType::String, serde_json::Value::String(s)) => Ok(Value::from(s.as_str())),
        (EnvType::Int, serde_json::Value::Number(n)) if n.is_i64() => Ok(Value::from(n.as_i64())),
        (EnvType::Float, serde_json::Value::Number(n)) => {
            Ok(Value::from(n.as_f64().unwrap_or_default()))
        }
        (EnvType::Bool, serde_json::Value::Bool(b)) => Ok(Value::from(*b)),
        (kind, serde_json::Value::String(s)) if kind != EnvType::String => parse(kind, s),
        (_, other) => Err(format!("got {other}")),
    }
}

/// Reads a `.env` file into a map without touching the process environment.
pub fn read_dotenv(path: &std::path::Path) -> Result<HashMap<String, String>, String> {
    let iter = dotenvy::from_path_iter(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = HashMap::new();
    for item in iter {
        let (k, v) = item.map_err(|e| format!("{}: {e}", path.display()))?;
        out.insert(k, v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(kind: EnvType, default: Option<serde_json::Value>) -> EnvVar {
        EnvVar {
            kind,
            default,
            required: true,
            secret: false,
            description: None,
        }
    }

    #[test]
    fn types_are_strict() {
        assert_eq!(parse(EnvType::Float, "0.5").unwrap(), Value::from(0.5));
        assert!(parse(EnvType::Float, "abc").is_err());
        assert_eq!(parse(EnvType::Bool, "False").unwrap(), Value::from(false));
        assert!(parse(EnvType::Bool, "0").is_err());
        assert!(parse(EnvType::Int, "1.5").is_err());
        assert!(parse(EnvType::Duration, "30").is_err());
    }

    #[test]
    fn priority_and_errors() {
        let decl: BTreeMap<String, EnvVar> = [
            (
                "A".to_string(),
                var(EnvType::Int, Some(serde_json::json!(1))),
            ),
            ("B".to_string(), var(EnvType::Float, None)),
            (
                "K".to_string(),
                EnvVar {
                    secret: true,
                    ..var(EnvType::String, None)
                },
            ),
        ]
        .into();
        let mut sources = EnvSources::default();
        sources.dotenv.insert("A".into(), "2".into());
        sources.process.insert("A".into(), "3".into());
        sources.set.insert("B".into(), "0.25".into());
        sources.dotenv.insert("K".into(), "s3cret".into());
        let r = resolve(&decl, &sources).unwrap();
        assert_eq!(r.values["A"], Value::from(3));
        assert_eq!(r.values["B"], Value::from(0.25));
        assert_eq!(r.display["K"], Value::from("***"));
        assert_eq!(r.secrets, vec!["s3cret".to_string()]);
        sources.set.insert("B".into(), "abc".into());
        sources.dotenv.remove("K");
        let errs = resolve(&decl, &sources).unwrap_err();
        assert_eq!(
            errs[0],
            "B=\"abc\" from --set is not a valid number: expected a number such as 0.5"
        );
        assert!(errs[1].starts_with("K is required but not set"));
    }
}
