//! JSONPath captures: compiled once at load (jsonpath-rust, RFC 9535) and applied to
//! each response with `first`/`one`/`all` semantics.

use jsonpath_rust::parser::model::JpQuery;
use serde_json::Value;

use crate::plan::Select;

/// A compiled capture.
#[derive(Debug, Clone)]
pub struct Capture {
    pub name: String,
    pub path: String,
    pub select: Select,
    pub secret: bool,
    query: JpQuery,
}

impl Capture {
    /// Compiles `path`; the error is one readable line.
    pub fn compile(
        name: &str,
        path: &str,
        select: Select,
        secret: bool,
    ) -> Result<Capture, String> {
        if !path.starts_with('$') {
            return Err(format!("JSONPath `{path}` must start with `$`"));
        }
        let query = jsonpath_rust::parser::parse_json_path(path).map_err(|e| {
            let text = e.to_string();
            let first = text
                .lines()
                .find(|l| l.contains("expected"))
                .unwrap_or(text.lines().next().unwrap_or(""));
            format!(
                "invalid JSONPath `{path}`: {}",
                first.trim().trim_start_matches("= ")
            )
        })?;
        Ok(Capture {
            name: name.to_string(),
            path: path.to_string(),
            select,
            secret,
            query,
        })
    }

    /// Applies the capture to a response body.
    pub fn apply(&self, body: &Value) -> Result<Value, String> {
        let found =
            jsonpath_rust::query::js_path_process(&self.query, body).map_err(|e| format!("{e}"))?;
        match (self.select, found.len()) {
            (Select::All, _) => Ok(Value::Array(
                found.into_iter().map(|r| r.val().clone()).collect(),
            )),
            (_, 0) => Err(format!(
                "capture `{}`: `{}` matched nothing",
                self.name, self.path
            )),
            (Select::One, n) if n > 1 => Err(format!(
                "capture `{}`: `{}` matched {n} values, expected exactly one",
                self.name, self.path
            )),
            (_, _) => Ok(found
                .into_iter()
                .next()
                .map(|r| r.val().clone())
                .unwrap_or(Value::Null)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selects_by_filter_and_count() {
        let body = json!({"results": [{"alias": "peer", "connection_id": "c9"}, {"alias": "mediator", "connection_id": "c1"}]});
        let by_filter = Capture::compile(
            "m",
            "$.results[?@.alias=='mediator'].connection_id",
            Select::One,
            false,
        )
        .unwrap();
        assert_eq!(by_filter.apply(&body).unwrap(), json!("c1"));
        let all =
            Capture::compile("ids", "$.results[*].connection_id", Select::All, false).unwrap();
        assert_eq!(all.apply(&body).unwrap(), json!(["c9", "c1"]));
        let one =
            Capture::compile("ids", "$.results[*].connection_id", Select::One, false).unwrap();
        assert_eq!(
            one.apply(&body).unwrap_err(),
            "capture `ids`: `$.results[*].connection_id` matched 2 values, expected exactly one"
        );
        let none = Capture::compile("x", "$.nope", Select::First, false).unwrap();
        assert_eq!(
            none.apply(&body).unwrap_err(),
            "capture `x`: `$.nope` matched nothing"
        );
    }

    #[test]
    fn bad_paths_are_one_line() {
        let err = Capture::compile("x", "$.results[?(@.a==", Select::First, false).unwrap_err();
        assert!(
            err.starts_with("invalid JSONPath `$.results[?(@.a==`"),
            "{err}"
        );
        assert!(!err.contains('\n'));
        assert!(Capture::compile("x", "results", Select::First, false).is_err());
    }
}
