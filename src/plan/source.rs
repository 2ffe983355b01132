//! Reading a plan's YAML into JSON while remembering where every node came from.
//! saphyr keeps a span on every node; we record them under JSON pointers so schema and
//! compile errors found on the JSON can be reported at `file:line:col`.

use std::collections::HashMap;

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};
use serde_json::{Map, Number, Value};

/// A 1-based line and column in the plan file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// JSON pointer → where the value (and, for mapping entries, the key) starts.
#[derive(Debug, Default)]
pub struct SpanIndex {
    values: HashMap<String, Position>,
    keys: HashMap<String, Position>,
}

impl SpanIndex {
    /// Where the value at `pointer` starts; falls back to the nearest parent that is known.
    pub fn value(&self, pointer: &str) -> Position {
        let mut p = pointer;
        loop {
            if let Some(pos) = self.values.get(p) {
                return *pos;
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return Position { line: 1, column: 1 },
            }
        }
    }

    /// Where the key of the mapping entry at `pointer` starts (the value's place if unknown).
    pub fn key(&self, pointer: &str) -> Position {
        self.keys
            .get(pointer)
            .copied()
            .unwrap_or_else(|| self.value(pointer))
    }
}

/// A YAML document that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub position: Position,
    pub message: String,
}

/// Parses one YAML document into JSON plus its span index.
pub fn parse(text: &str) -> Result<(Value, SpanIndex), SyntaxError> {
    let docs = MarkedYaml::load_from_str(text).map_err(|e| SyntaxError {
        position: Position {
            line: e.marker().line(),
            column: e.marker().col() + 1,
        },
        message: e.info().to_string(),
    })?;
    let mut docs = docs.into_iter();
    let Some(doc) = docs.next() else {
        return Err(SyntaxError {
            position: Position { line: 1, column: 1 },
            message: "the file holds no YAML document (it is empty or only comments)".into(),
        });
    };
    if let Some(extra) = docs.next() {
        return Err(SyntaxError {
            position: position(&extra),
            message: "a plan is one YAML document; remove the second `---` document".into(),
        });
    }
    let mut index = SpanIndex::default();
    let value = convert(&doc, String::new(), &mut index)?;
    Ok((value, index))
}

fn position(node: &MarkedYaml<'_>) -> Position {
    Position {
        line: node.span.start.line(),
        column: node.span.start.col() + 1,
    }
}

/// Escapes one JSON-pointer segment (RFC 6901).
pub fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

fn convert(
    node: &MarkedYaml<'_>,
    pointer: String,
    index: &mut SpanIndex,
) -> Result<Value, SyntaxError> {
    let pos = position(node);
    let unsupported = |what: &str| SyntaxError {
        position: pos,
        message: format!("{what} are not supported in plans"),
    };
    let value = match &node.data {
        YamlData::Value(scalar) => scalar_to_json(scalar),
        YamlData::Sequence(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                out.push(convert(item, format!("{pointer}/{i}"), index)?);
            }
            Value::Array(out)
        }
        YamlData::Mapping(map) => {
            let mut out = Map::new();
            for (key, item) in map {
                let name = match &key.data {
                    YamlData::Value(Scalar::String(s)) => s.to_string(),
                    YamlData::Value(s) => match scalar_to_json(s) {
                        Value::String(s) => s,
                        other => other.to_string(),
                    },
                    _ => {
                        return Err(SyntaxError {
                            position: position(key),
                            message: "mapping keys must be plain scalars".into(),
                        });
                    }
                };
                let child = format!("{pointer}/{}", escape(&name));
                index.keys.insert(child.clone(), position(key));
                let v = convert(item, child, index)?;
                out.insert(name, v);
            }
            Value::Object(out)
        }
        YamlData::Tagged(..) => return Err(unsupported("YAML tags")),
        YamlData::Representation(..) => return Err(unsupported("raw representations")),
        YamlData::Alias(_) => return Err(unsupported("unresolved aliases")),
        YamlData::BadValue => {
            return Err(SyntaxError {
                position: pos,
                message: "this value cannot be read".into(),
            });
        }
    };
    index.values.insert(pointer, pos);
    Ok(value)
}

fn scalar_to_json(scalar: &Scalar<'_>) -> Value {
    match scalar {
        Scalar::Null => Value::Null,
        Scalar::Boolean(b) => Value::Bool(*b),
        Scalar::Integer(i) => Value::Number((*i).into()),
        Scalar::FloatingPoint(f) => {
            Number::from_f64(f.into_inner()).map_or(Value::Null, Value::Number)
        }
        Scalar::String(s) => Value::String(s.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_value_and_key_positions() {
        let (v, idx) =
            parse("name: x\nload:\n  steps:\n    users: 10\nlist:\n  - a\n  - b: 1\n").unwrap();
        assert_eq!(v["load"]["steps"]["users"], 10);
        assert_eq!(
            idx.value("/load/steps/users"),
            Position {
                line: 4,
                column: 12
            }
        );
        assert_eq!(
            idx.key("/load/steps/users"),
            Position { line: 4, column: 5 }
        );
        assert_eq!(idx.value("/list/1/b"), Position { line: 7, column: 8 });
        assert_eq!(idx.value("/list/1/b/nope"), Position { line: 7, column: 8 });
    }

    #[test]
    fn reports_syntax_errors_with_position() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.position.line >= 1, "{err:?}");
        assert!(parse("").is_err());
        assert!(parse("a: 1\n---\nb: 2\n").is_err());
    }

    #[test]
    fn escapes_pointer_segments() {
        let (_, idx) = parse("headers:\n  a/b~c: 1\n").unwrap();
        assert_eq!(
            idx.value("/headers/a~1b~0c"),
            Position {
                line: 2,
                column: 10
            }
        );
    }
}
