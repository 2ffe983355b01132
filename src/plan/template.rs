//! Templates and conditions: one minijinja environment per plan, every template and
//! expression compiled once at load time and referred to by index on the hot path.

use minijinja::value::Value;
use minijinja::{Environment, Error, ErrorKind, Expression, State, Template, UndefinedBehavior};

use super::plain::{Interpolation, Plain};
use super::scope::{RngCell, to_value};
use crate::didcomm::oob;

/// Names every template may use without defining them.
pub const BUILTINS: &[&str] = &[
    "env",
    "user",
    "run",
    "shard",
    "webhook_url",
    "loop",
    "range",
    "true",
    "false",
    "none",
];
/// Names only response conditions (`check.that`, `poll.until`, `wait_event.until`) may use.
pub const RESPONSE_VARS: &[&str] = &["status", "body", "text", "headers", "event"];
/// Functions registered in the environment.
pub const FUNCTIONS: &[&str] = &["uuid", "random_word", "random_key", "now"];

/// A plan's compiled templates and expressions; steps refer to them by id.
pub struct Templates {
    texts: Vec<(Template<'static, 'static>, Option<Interpolation>)>,
    exprs: Vec<(Expression<'static, 'static>, String, Option<Plain>)>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Templates({} texts, {} expressions)",
            self.texts.len(),
            self.exprs.len()
        )
    }
}

/// A string from the plan: literal, or a compiled template.
#[derive(Debug, Clone)]
pub enum Text {
    Literal(String),
    Template(usize),
}

/// A compiled condition or value expression.
#[derive(Debug, Clone, Copy)]
pub struct Expr(usize);

/// A JSON value whose string leaves may be templates; a leaf that is exactly one
/// `{{ expression }}` keeps the expression's JSON type.
#[derive(Debug, Clone)]
pub enum JsonTemplate {
    Literal(serde_json::Value),
    Text(Text),
    Expr(Expr),
    Array(Vec<JsonTemplate>),
    Object(Vec<(String, JsonTemplate)>),
}

/// A template problem found at load time, with the template's JSON pointer.
#[derive(Debug, Clone)]
pub struct TemplateIssue {
    pub pointer: String,
    pub message: String,
}

/// Collects a plan's templates, checks them, and builds [`Templates`].
pub struct Compiler {
    env: Environment<'static>,
    texts: Vec<String>,
    exprs: Vec<String>,
    /// Undeclared variable names per pointer, e.g. `env.FOO`, `wallet_id`.
    pub references: Vec<(String, Vec<String>, bool)>,
    pub issues: Vec<TemplateIssue>,
}

impl Default for Compiler {
    fn default() -> Self {
        Self::new()
    }
}

impl Compiler {
    pub fn new() -> Self {
        Compiler {
            env: environment(),
            texts: Vec::new(),
            exprs: Vec::new(),
            references: Vec::new(),
            issues: Vec::new(),
        }
    }

    /// A string that may hold `{{ … }}`; `response` allows `status`/`body`/… in it.
    pub fn text(&mut self, pointer: &str, source: &str, response: bool) -> Text {
        if !is_template(source) {
            return Text::Literal(source.to_string());
        }
        match self
            .env
            .add_template_owned(pointer.to_string(), source.to_string())
        {
            Ok(()) => {
                let vars = self
                    .env
                    .get_template(pointer)
                    .map(|t| t.undeclared_variables(true))
                    .unwrap_or_default();
                self.references
                    .push((pointer.to_string(), vars.into_iter().collect(), response));
                self.texts.push(pointer.to_string());
                Text::Template(self.texts.len() - 1)
            }
            Err(e) => {
                self.issues.push(TemplateIssue {
                    pointer: pointer.to_string(),
                    message: describe(&e),
                });
                Text::Literal(String::new())
            }
        }
    }

    /// A bare expression such as `body.state == 'active'`.
    pub fn expr(&mut self, pointer: &str, source: &str, response: bool) -> Expr {
        match self.env.compile_expression(source) {
            Ok(e) => {
                let vars = e.undeclared_variables(true);
                self.references
                    .push((pointer.to_string(), vars.into_iter().collect(), response));
            }
            Err(e) => self.issues.push(TemplateIssue {
                pointer: pointer.to_string(),
                message: describe(&e),
            }),
        }
        self.exprs.push(source.to_string());
        Expr(self.exprs.len() - 1)
    }

    /// A JSON value with templated leaves.
    pub fn json(&mut self, pointer: &str, value: &serde_json::Value) -> JsonTemplate {
        match value {
            serde_json::Value::String(s) => match single_expression(s) {
                Some(inner) => JsonTemplate::Expr(self.expr(pointer, inner, false)),
                None => match self.text(pointer, s, false) {
                    Text::Literal(l) => JsonTemplate::Literal(serde_json::Value::String(l)),
                    t => JsonTemplate::Text(t),
                },
            },
            serde_json::Value::Array(items) => JsonTemplate::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| self.json(&format!("{pointer}/{i}"), v))
                    .collect(),
            ),
            serde_json::Value::Object(map) => JsonTemplate::Object(
                map.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            self.json(&format!("{pointer}/{}", crate::plan::source::escape(k)), v),
                        )
                    })
                    .collect(),
            ),
            other => JsonTemplate::Literal(other.clone()),
        }
    }

    /// Freezes the environment (leaked once per loaded plan: templates borrow it for the
    /// life of the process) and compiles the handles the runner uses.
    pub fn finish(self) -> Result<Templates, String> {
        if !self.issues.is_empty() {
            return Err("the plan's templates have errors".into());
        }
        let env: &'static Environment<'static> = Box::leak(Box::new(self.env));
        // Steps refer to templates by position: every one must compile, or none is used.
        let texts = self
            .texts
            .iter()
            .map(|name| {
                let t = env.get_template(name).map_err(|e| describe(&e))?;
                let simple = Interpolation::parse(t.source());
                Ok((t, simple))
            })
            .collect::<Result<_, String>>()?;
        let exprs = self
            .exprs
            .into_iter()
            .map(|src| {
                let plain = Plain::parse(&src);
                env.compile_expression_owned(src.clone())
                    .map(|e| (e, src, plain))
                    .map_err(|e| describe(&e))
            })
            .collect::<Result<_, _>>()?;
        Ok(Templates { texts, exprs })
    }
}

impl Templates {
    pub fn render(&self, text: &Text, ctx: &Value) -> Result<String, Error> {
        match text {
            Text::Literal(s) => Ok(s.clone()),
            Text::Template(i) => {
                let (template, simple) = &self.texts[*i];
                match simple.as_ref().and_then(|s| s.render(ctx)) {
                    Some(out) => Ok(out),
                    None => template.render(ctx),
                }
            }
        }
    }

    pub fn eval(&self, expr: Expr, ctx: &Value) -> Result<Value, Error> {
        let (expression, _, plain) = &self.exprs[expr.0];
        // Anything else, or an undefined variable (the engine says why), goes to the engine.
        match plain.as_ref().and_then(|p| p.eval(ctx)) {
            Some(v) => Ok(v),
            None => expression.eval(ctx),
        }
    }

    /// The expression's source, for failure messages.
    pub fn source(&self, expr: Expr) -> &str {
        &self.exprs[expr.0].1
    }

    /// True when the condition holds (jinja truthiness).
    pub fn holds(&self, expr: Expr, ctx: &Value) -> Result<bool, Error> {
        Ok(self.eval(expr, ctx)?.is_true())
    }

    pub fn render_json(&self, t: &JsonTemplate, ctx: &Value) -> Result<serde_json::Value, Error> {
        Ok(match t {
            JsonTemplate::Literal(v) => v.clone(),
            JsonTemplate::Text(text) => serde_json::Value::String(self.render(text, ctx)?),
            JsonTemplate::Expr(e) => to_json(&self.eval(*e, ctx)?)?,
            JsonTemplate::Array(items) => serde_json::Value::Array(
                items
                    .iter()
                    .map(|i| self.render_json(i, ctx))
                    .collect::<Result<_, _>>()?,
            ),
            JsonTemplate::Object(fields) => serde_json::Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), self.render_json(v, ctx)?)))
                    .collect::<Result<_, Error>>()?,
            ),
        })
    }
}

/// Converts a template value to JSON (undefined is an error, not `null`).
pub fn to_json(v: &Value) -> Result<serde_json::Value, Error> {
    if v.is_undefined() {
        return Err(Error::new(
            ErrorKind::UndefinedError,
            "the expression is undefined",
        ));
    }
    serde_json::to_value(v).map_err(|e| Error::new(ErrorKind::BadSerialization, e.to_string()))
}

pub fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%")
}

/// `"{{ expr }}"` → `Some("expr")` when the whole string is one expression.
fn single_expression(s: &str) -> Option<&str> {
    let inner = s.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    (!inner.contains("{{") && !inner.contains("}}") && !inner.contains("{%"))
        .then_some(inner.trim())
}

/// One line saying what is wrong with a template, without minijinja's debug dump
/// (which would print variable values, tokens included).
pub fn describe(e: &Error) -> String {
    let mut msg = e
        .detail()
        .map_or_else(|| e.kind().to_string(), |d| format!("{}: {d}", e.kind()));
    if let Some(line) = e.line().filter(|l| *l > 1) {
        msg.push_str(&format!(" (template line {line})"));
    }
    msg
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_debug(false);
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.add_function("uuid", |state: &State| -> String {
        with_rng(state, random_uuid)
    });
    env.add_function("random_word", |state: &State| -> String {
        with_rng(state, |r| WORDS[r.usize(..WORDS.len())].to_string())
    });
    // Wallet keys come from the operating system's CSPRNG, never from the run's seed
    // (printed at the start and kept in the results): a seeded run repeats its uuids and
    // words, not its keys.
    env.add_function("random_key", || -> Result<String, Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| {
            Error::new(
                ErrorKind::InvalidOperation,
                format!("random_key(): the system's random source failed: {e}"),
            )
        })?;
        Ok(bs58::encode(bytes).into_string())
    });
    env.add_function("now", || -> String {
        humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
    });
    env.add_filter("invitation", |url: &str| -> Result<Value, Error> {
        oob::url_payload(url)
            .map(|(_, object)| to_value(&object))
            .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))
    });
    env
}

fn with_rng<T>(state: &State, f: impl FnOnce(&mut fastrand::Rng) -> T) -> T {
    if let Some(cell) = state
        .lookup("__rng")
        .and_then(|v| v.downcast_object::<RngCell>())
        && let Ok(mut rng) = cell.0.lock()
    {
        return f(&mut rng);
    }
    f(&mut fastrand::Rng::new())
}

fn random_uuid(rng: &mut fastrand::Rng) -> String {
    let mut bytes = [0u8; 16];
    rng.fill(&mut bytes);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

const WORDS: &[&str] = &[
    "amber", "birch", "cedar", "delta", "ember", "fjord", "grove", "harbor", "iris", "juniper",
    "kestrel", "lagoon", "maple", "nectar", "orchid", "pepper", "quartz", "raven", "sierra",
    "tundra", "umber", "violet", "willow", "xenon", "yarrow", "zephyr", "atlas", "breeze", "comet",
    "dune", "echo", "falcon",
];

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::plan::scope::{Globals, ResponseView, Scope};

    fn ctx(vars: &[(&str, Value)]) -> Value {
        Value::from_object(Scope {
            globals: Arc::new(Globals::default()),
            user: to_value(serde_json::json!({"index": 3})),
            vars: Arc::new(
                vars.iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect(),
            ),
            response: None,
            event: None,
            rng: Value::from_object(RngCell(Mutex::new(fastrand::Rng::with_seed(7)))),
        })
    }

    #[test]
    fn single_expression_leaves_keep_their_type() {
        let mut c = Compiler::new();
        let t = c.json("/b", &serde_json::json!({"n": "{{ user.index + 1 }}", "s": "u-{{ user.index }}", "k": 5, "o": "{{ inv }}"}));
        let tpl = c.finish().unwrap();
        let inv = to_value(serde_json::json!({"@type": "x", "services": [1]}));
        let out = tpl.render_json(&t, &ctx(&[("inv", inv)])).unwrap();
        assert_eq!(
            out,
            serde_json::json!({"n": 4, "s": "u-3", "k": 5, "o": {"@type": "x", "services": [1]}})
        );
    }

    #[test]
    fn strict_undefined_fails_render() {
        let mut c = Compiler::new();
        let t = c.text("/p", "/connections/{{ conn_id }}", false);
        assert_eq!(c.references[0].1, vec!["conn_id".to_string()]);
        let tpl = c.finish().unwrap();
        let err = tpl.render(&t, &ctx(&[])).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UndefinedError);
    }

    /// Each text compiled and rendered three ways: whether the shortcut recognised it, what
    /// the shortcut gave (`None`: it left the text to the engine), and what the engine alone
    /// gives. `Templates::render` must give the engine's answer in every case.
    #[allow(clippy::type_complexity)]
    fn texts_both_ways(
        sources: &[&str],
        scope: &Value,
    ) -> Vec<(bool, Option<String>, Result<String, ErrorKind>)> {
        let mut c = Compiler::new();
        let texts: Vec<Text> = sources
            .iter()
            .enumerate()
            .map(|(i, s)| c.text(&format!("/t/{i}"), s, false))
            .collect();
        let tpl = c.finish().unwrap();
        texts
            .iter()
            .zip(sources)
            .map(|(t, src)| {
                let Text::Template(k) = t else {
                    panic!("{src} is a template")
                };
                let (template, shortcut) = &tpl.texts[*k];
                let engine = template.render(scope).map_err(|e| e.kind());
                let ours = tpl.render(t, scope).map_err(|e| e.kind());
                assert_eq!(ours, engine, "{src}");
                let answered = shortcut.as_ref().and_then(|s| s.render(scope));
                (shortcut.is_some(), answered, engine)
            })
            .collect()
    }

    /// The same for expressions (`Templates::eval` against the engine's own evaluation).
    #[allow(clippy::type_complexity)]
    fn exprs_both_ways(
        sources: &[&str],
        scope: &Value,
    ) -> Vec<(bool, Option<Value>, Result<Value, ErrorKind>)> {
        let mut c = Compiler::new();
        let exprs: Vec<Expr> = sources
            .iter()
            .enumerate()
            .map(|(i, s)| c.expr(&format!("/e/{i}"), s, true))
            .collect();
        let tpl = c.finish().unwrap();
        exprs
            .into_iter()
            .zip(sources)
            .map(|(e, src)| {
                let (expression, _, shortcut) = &tpl.exprs[e.0];
                let engine = expression.eval(scope).map_err(|e| e.kind());
                let ours = tpl.eval(e, scope).map_err(|e| e.kind());
                assert_eq!(ours, engine, "{src}");
                let answered = shortcut.as_ref().and_then(|s| s.eval(scope));
                (shortcut.is_some(), answered, engine)
            })
            .collect()
    }

    /// Which cases the shortcut recognised and which it answered; every answer is the
    /// engine's.
    fn shortcut_flags<T: PartialEq + std::fmt::Debug>(
        results: &[(bool, Option<T>, Result<T, ErrorKind>)],
        sources: &[&str],
    ) -> (Vec<bool>, Vec<bool>) {
        for ((_, answered, engine), src) in results.iter().zip(sources) {
            if let Some(a) = answered {
                assert_eq!(Ok(a), engine.as_ref(), "{src}");
            }
        }
        (
            results.iter().map(|r| r.0).collect(),
            results.iter().map(|r| r.1.is_some()).collect(),
        )
    }

    #[test]
    fn plain_interpolations_render_as_the_engine_does() {
        let peer = to_value(serde_json::json!({"name": "bob", "n": 2}));
        let scope = ctx(&[
            ("conn_id", Value::from("c-1")),
            ("token", Value::from("t0k")),
            ("name", Value::from("alice")),
            ("n", Value::from(3)),
            ("peer", peer),
        ]);
        let sources = [
            "/connections/{{ conn_id }}/send-ping",
            "{{token}}",
            "ping from {{ name }} to {{  peer.name  }}!",
            "{{ n }} items",
            "{{ peer }}",
            "a }} b {{ conn_id }}",
            "{{ conn_id | upper }}",
            "{{- conn_id }}",
            "line {{ conn_id }}\n",
            "{{ true }}",
            "{{ missing }}",
            "{{ peer.missing }}",
        ];
        let texts = texts_both_ways(&sources, &scope);
        let (recognised, answered) = shortcut_flags(&texts, &sources);
        let (t, f) = (true, false);
        assert_eq!(recognised, [t, t, t, t, t, f, f, f, f, f, t, t]);
        // Numbers, objects and undefined variables are left to the engine.
        assert_eq!(answered, [t, t, t, f, f, f, f, f, f, f, f, f]);
        assert_eq!(texts[2].2, Ok("ping from alice to bob!".to_string()));
        assert_eq!(texts[10].2, Err(ErrorKind::UndefinedError));

        let sources = [
            "conn_id",
            "peer.name",
            "n",
            "missing",
            "none",
            "conn_id == 'c-1'",
            "conn_id != \"c-1\"",
            "peer.name == name and conn_id == 'c-1'",
            "peer.name == 'bob' and conn_id == 'c-2'",
            "peer.n == n",
            "conn_id == 'c-2' and missing == 'x'",
            "conn_id == 'c-1' and missing == 'x'",
            "conn_id == 'a and b'",
            "conn_id == 'c-1' or n",
            "user.index == 3",
        ];
        let exprs = exprs_both_ways(&sources, &scope);
        let (recognised, answered) = shortcut_flags(&exprs, &sources);
        assert_eq!(recognised, [t, t, t, t, f, t, t, t, t, t, t, t, f, f, f]);
        // `and` stops at the first false comparison, as the engine does; an undefined
        // variable it reaches goes to the engine, which says what is wrong.
        assert_eq!(answered, [t, t, t, f, f, t, t, t, t, t, t, f, f, f, f]);
    }

    #[test]
    fn conditions_on_events_and_bodies_agree_with_the_engine() {
        let event = serde_json::json!({"state": "active", "connection_id": "c-1", "n": 2, "nested": {"k": "v"}, "nothing": null});
        let scope = Value::from_object(Scope {
            globals: Arc::new(Globals::default()),
            user: to_value(serde_json::json!({"index": 3})),
            vars: Arc::new(BTreeMap::from([(
                "conn_id".to_string(),
                Value::from("c-1"),
            )])),
            response: Some(Arc::new(ResponseView {
                status: 200,
                body: bytes::Bytes::new(),
                json: Some(serde_json::json!({"state": "done", "results": [1]})),
                headers: http::HeaderMap::new(),
            })),
            event: Some(Arc::new(event)),
            rng: Value::from(()),
        });
        let sources = [
            "event.state == 'active' and event.connection_id == conn_id",
            "event.state == 'active' and event.connection_id == 'c-2'",
            "event.n == 2",
            "event.nested.k != 'v'",
            "event.nothing == none",
            "event.nothing",
            "event.missing == 'x'",
            "event.state.deeper == 'x'",
            "body.state == 'done'",
            "body.results",
            "body",
            "event",
        ];
        let exprs = exprs_both_ways(&sources, &scope);
        let (recognised, answered) = shortcut_flags(&exprs, &sources);
        let (t, f) = (true, false);
        assert_eq!(recognised, [t, t, f, t, f, t, t, t, t, t, t, t]);
        // A key missing on the path goes to the engine.
        assert_eq!(answered, [t, t, f, t, f, t, f, f, t, t, t, t]);
        let held = |i: usize| exprs[i].2.as_ref().unwrap().is_true();
        assert_eq!((held(0), held(1), held(8)), (true, false, true));
    }

    #[test]
    fn syntax_errors_are_collected() {
        let mut c = Compiler::new();
        c.text("/p", "{{ a + }}", false);
        c.expr("/w", "status ==", true);
        assert_eq!(c.issues.len(), 2, "{:?}", c.issues);
    }

    #[test]
    fn uuids_and_words_follow_the_seed_and_keys_do_not() {
        let mut c = Compiler::new();
        let t = c.text(
            "/k",
            "{{ uuid() }} {{ random_word() }} {{ uuid() }} {{ random_key() }}",
            false,
        );
        let tpl = c.finish().unwrap();
        let seeded = |seed: u64| {
            let scope = Value::from_object(Scope {
                globals: Arc::new(Globals::default()),
                user: Value::from(()),
                vars: Arc::new(BTreeMap::new()),
                response: None,
                event: None,
                rng: Value::from_object(RngCell(Mutex::new(fastrand::Rng::with_seed(seed)))),
            });
            let out = tpl.render(&t, &scope).unwrap();
            let parts: Vec<String> = out.split(' ').map(str::to_string).collect();
            (parts[..3].join(" "), parts[3].clone())
        };
        let (a, key_a) = seeded(7);
        let (b, key_b) = seeded(7);
        let (other, _) = seeded(8);
        assert_eq!(a, b, "the same seed repeats uuids and words");
        assert_ne!(a, other, "another seed gives other uuids and words");
        assert_ne!(
            key_a, key_b,
            "random_key() cannot be derived from the (printed) seed"
        );
        for key in [key_a, key_b] {
            assert_eq!(bs58::decode(key).into_vec().unwrap().len(), 32);
        }
    }

    #[test]
    fn the_invitation_filter_gives_the_object_of_an_oob_or_c_i_url() {
        use base64::Engine as _;
        let json = serde_json::json!({"@type": "https://didcomm.org/out-of-band/1.1/invitation", "label": "m", "extra": [1]});
        let raw = serde_json::to_vec(&json).unwrap();
        let padded = base64::engine::general_purpose::URL_SAFE.encode(&raw);
        let urls = [
            format!("http://127.0.0.1:3000?oob={padded}"),
            format!("http://x/?c_i={}", padded.trim_end_matches('=')),
            "http://x/?foo=1".to_string(),
        ];
        let mut c = Compiler::new();
        let t = c.json("/t", &serde_json::json!("{{ url | invitation }}"));
        let tpl = c.finish().unwrap();
        let render = |url: &str| {
            tpl.render_json(&t, &ctx(&[("url", Value::from(url))]))
                .map_err(|e| describe(&e))
        };
        assert_eq!(render(&urls[0]), Ok(json.clone()));
        assert_eq!(render(&urls[1]), Ok(json));
        assert_eq!(
            render(&urls[2]),
            Err(
                "invalid operation: not an invitation URL: it has no `oob=` or `c_i=` parameter"
                    .into()
            )
        );
    }
}
