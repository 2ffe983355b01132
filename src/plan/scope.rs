//! The scope a template is rendered against: run-wide values, the user's variables, and the
//! response or event a condition looks at; and the conversion of JSON into template values.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use minijinja::value::{Enumerator, Object, Value};

/// Everything a template sees while one user runs one step. Lookups are lazy so a
/// request costs a few `Arc` clones, not a copy of the user's state.
#[derive(Debug)]
pub struct Scope {
    pub globals: Arc<Globals>,
    pub user: Value,
    pub vars: Arc<BTreeMap<String, Value>>,
    pub response: Option<Arc<ResponseView>>,
    /// The event a `wait_event` condition looks at.
    pub event: Option<Arc<serde_json::Value>>,
    pub rng: Value,
}

/// Values shared by all users of a run.
#[derive(Debug, Default)]
pub struct Globals {
    pub env: Value,
    pub run: Value,
    pub shard: Value,
    pub webhook_url: Value,
    pub vars: BTreeMap<String, Value>,
}

/// The response a condition looks at.
#[derive(Debug)]
pub struct ResponseView {
    pub status: u16,
    /// The body as received; `text` and `body` are made from it only when asked.
    pub body: bytes::Bytes,
    pub json: Option<serde_json::Value>,
    /// Kept as received; turned into a template value only when a condition asks.
    pub headers: http::HeaderMap,
}

impl ResponseView {
    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }
}

impl Object for Scope {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let key = key.as_str()?;
        match key {
            "env" => Some(self.globals.env.clone()),
            "user" => Some(self.user.clone()),
            "run" => Some(self.globals.run.clone()),
            "shard" => Some(self.globals.shard.clone()),
            "webhook_url" => Some(self.globals.webhook_url.clone()),
            "__rng" => Some(self.rng.clone()),
            "event" if self.event.is_some() => self.event.as_ref().map(|e| to_value(&**e)),
            _ => {
                if let Some(r) = &self.response {
                    match key {
                        "status" => return Some(Value::from(r.status)),
                        "text" => return Some(Value::from(r.text().as_ref())),
                        "headers" => {
                            let map: BTreeMap<String, String> = r
                                .headers
                                .iter()
                                .map(|(k, v)| {
                                    (
                                        k.as_str().to_string(),
                                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                                    )
                                })
                                .collect();
                            return Some(Value::from(map));
                        }
                        "body" => return Some(r.json.as_ref().map_or(Value::from(()), to_value)),
                        _ => {}
                    }
                }
                self.vars
                    .get(key)
                    .or_else(|| self.globals.vars.get(key))
                    .cloned()
            }
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::NonEnumerable
    }
}

/// Converts serializable data (JSON bodies, captures) into a template value.
pub fn to_value<T: serde::Serialize>(v: T) -> Value {
    Value::from(minijinja::value::Serde(v))
}

/// A user's random source, reachable from template functions as the `__rng` variable.
#[derive(Debug)]
pub struct RngCell(pub Mutex<fastrand::Rng>);

impl Object for RngCell {
    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::NonEnumerable
    }
}
