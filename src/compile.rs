//! Loading a plan: YAML → JSON with spans → schema → typed model → compiled steps.
//! Every template, condition and JSONPath is compiled here, once; the runner only renders.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use crate::capture::Capture;
use crate::diagnostic::{self, Diagnostic};
use crate::plan::{self, CaptureSpec, ErrorAction, Method, OnError, Plan, Step, Tasks};
use crate::source::{self, Position, SpanIndex};
use crate::template::{self, Compiler, Expr, JsonTemplate, Templates, Text};

/// A plan that passed every check, ready to explain or run.
#[derive(Debug)]
pub struct CompiledPlan {
    pub file: String,
    pub source: String,
    pub spans: SpanIndex,
    pub plan: Plan,
    pub templates: Arc<Templates>,
    pub target: CompiledTarget,
    pub vars: Vec<(String, JsonTemplate)>,
    pub setup: Vec<CompiledStep>,
    pub tasks: Vec<TaskList>,
    pub teardown: Vec<CompiledStep>,
    pub think: Option<(Duration, Duration)>,
    /// Load-shape parameters that are templates, compiled for resolution once env is known.
    pub load_params: BTreeMap<String, Expr>,
    pub load_texts: BTreeMap<String, Text>,
    /// Templated run settings (`events`, `watch`) by JSON pointer.
    pub settings: BTreeMap<String, Text>,
}

impl CompiledPlan {
    /// Renders the run setting at `pointer` (compiled at load) with a plan-level scope.
    pub fn setting(&self, pointer: &str, scope: &minijinja::Value) -> Result<String, String> {
        let text = self
            .settings
            .get(pointer)
            .ok_or_else(|| format!("no setting at {pointer}"))?;
        self.templates.render(text, scope).map_err(|e| {
            let at = self.spans.value(pointer);
            format!(
                "{}:{}:{}: {}",
                self.file,
                at.line,
                at.column,
                template::describe(&e)
            )
        })
    }
}

/// Target settings with templated parts compiled.
#[derive(Debug)]
pub struct CompiledTarget {
    pub base_url: Text,
    pub headers: Vec<(String, Text)>,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub insecure: bool,
    pub max_connections: Option<usize>,
}

/// One of the task lists a user picks from each iteration (one list when sequential).
#[derive(Debug)]
pub struct TaskList {
    pub name: String,
    pub weight: u32,
    pub steps: Vec<CompiledStep>,
}

/// Which part of a user's life a step belongs to; stats keep them apart.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Setup,
    Tasks,
    Teardown,
}

/// A compiled step.
#[derive(Debug)]
pub struct CompiledStep {
    /// Name in the statistics.
    pub name: Arc<str>,
    pub phase: Phase,
    pub line: usize,
    pub when: Option<Expr>,
    pub kind: StepKind,
    pub retries: u32,
    pub retry_delay: Duration,
    pub on_error: ErrorAction,
}

#[derive(Debug)]
pub enum StepKind {
    Request(Box<CompiledRequest>),
    Sleep(Duration),
    Set(Vec<(String, JsonTemplate)>),
    Offer {
        pool: String,
        key: Option<Text>,
        value: JsonTemplate,
    },
    Take {
        pool: String,
        key: Option<Text>,
        into: String,
        timeout: Duration,
    },
    WaitEvent(Box<CompiledWait>),
}

/// A compiled `wait_event`.
#[derive(Debug)]
pub struct CompiledWait {
    pub topic: String,
    pub wallet: Text,
    pub until: Option<Expr>,
    pub timeout: Duration,
    pub clock: Option<Arc<str>>,
    pub captures: Vec<Capture>,
}

#[derive(Debug)]
pub struct CompiledRequest {
    pub method: Method,
    pub path: Text,
    pub query: Vec<(String, Text)>,
    pub headers: Vec<(String, Text)>,
    pub bearer: Option<Text>,
    pub json: Option<JsonTemplate>,
    pub timeout: Option<Duration>,
    pub status: Option<Vec<u16>>,
    pub that: Vec<Expr>,
    pub captures: Vec<Capture>,
    pub poll: Option<CompiledPoll>,
}

impl CompiledRequest {
    /// True when the step looks at the response body (captures, conditions, polls).
    pub fn reads_body(&self) -> bool {
        !self.captures.is_empty() || self.poll.is_some() || !self.that.is_empty()
    }
}

#[derive(Debug)]
pub struct CompiledPoll {
    pub until: Expr,
    pub interval: Duration,
    pub timeout: Duration,
}

/// Why a file could not be loaded: its findings, and its text when it was readable.
#[derive(Debug)]
pub struct LoadFailure {
    pub diagnostics: Vec<Diagnostic>,
    pub source: Option<String>,
}

impl LoadFailure {
    /// Every finding rendered with its snippet.
    pub fn render(&self) -> String {
        self.diagnostics
            .iter()
            .map(|d| d.render(self.source.as_deref()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

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
    let fail = |diagnostics: Vec<Diagnostic>, text: String| {
        let mut diagnostics = diagnostics;
        diagnostic::sort(&mut diagnostics);
        Err(LoadFailure {
            diagnostics,
            source: Some(text),
        })
    };
    if text.trim().is_empty() {
        return fail(
            vec![Diagnostic::whole_file(
                file,
                "is empty; a plan needs at least `name`, `target`, `load` and `user`",
            )],
            text,
        );
    }
    let (json, spans) = match source::parse(&text) {
        Ok(x) => x,
        Err(e) => {
            return fail(
                vec![Diagnostic::new(
                    file,
                    e.position,
                    format!("YAML syntax: {}", e.message),
                )],
                text,
            );
        }
    };
    if !json.is_object() {
        return fail(
            vec![Diagnostic::new(
                file,
                Position { line: 1, column: 1 },
                "a plan must be a YAML mapping (`name: …`, `target: …`)",
            )],
            text,
        );
    }
    let schema_errors = crate::schema::validate(file, &json, &spans);
    if !schema_errors.is_empty() {
        return fail(schema_errors, text);
    }
    let plan: Plan = match serde_path_to_error::deserialize(&json) {
        Ok(p) => p,
        Err(e) => {
            let pointer = format!("/{}", e.path().to_string().replace('.', "/"));
            return fail(
                vec![Diagnostic::new(
                    file,
                    spans.value(&pointer),
                    e.inner().to_string(),
                )],
                text,
            );
        }
    };
    let mut cx = Cx {
        file,
        spans: &spans,
        compiler: Compiler::new(),
        diags: Vec::new(),
        defined: BTreeSet::new(),
        step_names: BTreeSet::new(),
    };
    let compiled = cx.plan(&plan);
    let settings = cx.settings(&plan);
    let Cx {
        compiler,
        mut diags,
        defined,
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
        return fail(diags, text);
    }
    let templates = match compiler.finish() {
        Ok(t) => Arc::new(t),
        Err(e) => {
            return fail(
                vec![Diagnostic::whole_file(file, format!("template: {e}"))],
                text,
            );
        }
    };
    let (target, vars, setup, tasks, teardown, think, load_params, load_texts) = compiled;
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
        let hint = crate::schema::suggest(var, &names)
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
    let hint = crate::schema::suggest(root, &names)
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default();
    Some(format!(
        "variable `{root}` is not defined by any `vars`, `capture`, `set` or `take`{hint}"
    ))
}

type Parts = (
    CompiledTarget,
    Vec<(String, JsonTemplate)>,
    Vec<CompiledStep>,
    Vec<TaskList>,
    Vec<CompiledStep>,
    Option<(Duration, Duration)>,
    BTreeMap<String, Expr>,
    BTreeMap<String, Text>,
);

struct Cx<'a> {
    file: &'a str,
    spans: &'a SpanIndex,
    compiler: Compiler,
    diags: Vec<Diagnostic>,
    defined: BTreeSet<String>,
    step_names: BTreeSet<String>,
}

impl Cx<'_> {
    fn error(&mut self, pointer: &str, msg: impl Into<String>) {
        self.diags
            .push(Diagnostic::new(self.file, self.spans.value(pointer), msg));
    }

    /// A duration literal (checked now) or template (checked when resolved).
    fn duration(&mut self, pointer: &str, text: &str) -> Duration {
        if template::is_template(text) {
            self.compiler.text(pointer, text, false);
            return Duration::ZERO;
        }
        crate::duration::parse(text).unwrap_or_else(|e| {
            self.error(pointer, e.to_string());
            Duration::ZERO
        })
    }

    fn opt_duration(
        &mut self,
        pointer: &str,
        text: Option<&String>,
        default: Duration,
    ) -> Duration {
        text.map_or(default, |t| self.duration(pointer, t))
    }

    fn plan(&mut self, plan: &Plan) -> Parts {
        // Names defined anywhere: a use before definition is caught at run time as undefined.
        self.defined.extend(plan.vars.keys().cloned());
        let all_steps = plan
            .user
            .setup
            .iter()
            .chain(match &plan.user.tasks {
                Tasks::Sequence(s) => s.iter().collect::<Vec<_>>(),
                Tasks::Weighted(w) => w.choose.iter().flat_map(|c| c.steps.iter()).collect(),
            })
            .chain(plan.user.teardown.iter());
        for step in all_steps {
            self.defined.extend(step.capture.keys().cloned());
            match (&step.name, &step.request) {
                (Some(n), _) => {
                    self.step_names.insert(n.clone());
                }
                (None, Some(r)) => {
                    self.step_names
                        .insert(format!("{} {}", r.method.as_str(), r.path));
                }
                _ => {}
            }
            if let Some(set) = &step.set {
                self.defined.extend(set.keys().cloned());
            }
            if let Some(take) = &step.take {
                self.defined.insert(take.into.clone());
            }
        }
        let t = &plan.target;
        let base_url = self.compiler.text("/target/base_url", &t.base_url, false);
        let headers = self.texts("/target/headers", &t.headers);
        let timeout = self.opt_duration(
            "/target/timeout",
            t.timeout.as_ref(),
            Duration::from_secs(30),
        );
        let connect_timeout = self.opt_duration(
            "/target/connect_timeout",
            t.connect_timeout.as_ref(),
            Duration::from_secs(5),
        );
        let target = CompiledTarget {
            base_url,
            headers,
            timeout,
            connect_timeout,
            insecure: t.insecure_skip_tls_verify,
            max_connections: t.max_connections,
        };
        for (name, var) in &plan.env {
            if let Some(d) = &var.default
                && let Err(why) = crate::env::default_value(var.kind, d)
            {
                self.error(
                    &format!("/env/{}/default", source::escape(name)),
                    format!("default does not match type {:?}: {why}", var.kind).to_lowercase(),
                );
            }
        }
        let vars = self.jsons("/vars", &plan.vars);
        let (load_params, load_texts) = self.load(&plan.load);
        for name in plan.pools.keys() {
            if name.is_empty() {
                self.error("/pools", "pool names must not be empty");
            }
        }
        let setup = self.steps("/user/setup", &plan.user.setup, Phase::Setup, plan);
        let tasks = match &plan.user.tasks {
            Tasks::Sequence(steps) => vec![TaskList {
                name: "tasks".into(),
                weight: 1,
                steps: self.steps("/user/tasks", steps, Phase::Tasks, plan),
            }],
            Tasks::Weighted(w) => {
                if w.choose.iter().all(|c| c.weight == 0) {
                    self.error(
                        "/user/tasks/choose",
                        "at least one task needs a weight above 0",
                    );
                }
                w.choose
                    .iter()
                    .enumerate()
                    .map(|(i, c)| TaskList {
                        name: c.name.clone(),
                        weight: c.weight,
                        steps: self.steps(
                            &format!("/user/tasks/choose/{i}/steps"),
                            &c.steps,
                            Phase::Tasks,
                            plan,
                        ),
                    })
                    .collect()
            }
        };
        let teardown = self.steps("/user/teardown", &plan.user.teardown, Phase::Teardown, plan);
        let think = plan
            .user
            .think
            .as_ref()
            .map(|t| self.think("/user/think", t));
        for (i, th) in plan.thresholds.iter().enumerate() {
            for (key, v) in [
                ("p50", &th.p50),
                ("p95", &th.p95),
                ("p99", &th.p99),
                ("max", &th.max),
            ] {
                if let Some(v) = v {
                    self.duration(&format!("/thresholds/{i}/{key}"), v);
                }
            }
            if let Some(r) = th.error_rate
                && !(0.0..=1.0).contains(&r)
            {
                self.error(
                    &format!("/thresholds/{i}/error_rate"),
                    "error_rate is a share between 0.0 and 1.0",
                );
            }
        }
        (
            target,
            vars,
            setup,
            tasks,
            teardown,
            think,
            load_params,
            load_texts,
        )
    }

    /// Compiles the templated run settings: event source and watched agents.
    fn settings(&mut self, plan: &Plan) -> BTreeMap<String, Text> {
        let mut out = BTreeMap::new();
        let mut add = |cx: &mut Self, pointer: String, value: Option<&String>| {
            if let Some(v) = value {
                let t = cx.compiler.text(&pointer, v, false);
                out.insert(pointer, t);
            }
        };
        if let Some(ev) = &plan.events {
            if template::is_template(&ev.source) {
                add(self, "/events/source".into(), Some(&ev.source));
            } else if crate::events::parse_source(&ev.source).is_err() {
                self.error(
                    "/events/source",
                    format!(
                        "event source `{}` is neither `webhook` nor `websocket`",
                        ev.source
                    ),
                );
            }
            add(self, "/events/listen".into(), ev.listen.as_ref());
            add(self, "/events/public_url".into(), ev.public_url.as_ref());
            add(
                self,
                "/events/websocket_url".into(),
                ev.websocket_url.as_ref(),
            );
            add(self, "/events/api_key".into(), ev.api_key.as_ref());
        }
        for (i, w) in plan.watch.iter().enumerate() {
            add(self, format!("/watch/{i}/url"), Some(&w.url));
            add(self, format!("/watch/{i}/api_key"), w.api_key.as_ref());
            if let Some(iv) = &w.interval {
                self.duration(&format!("/watch/{i}/interval"), iv);
            }
        }
        out
    }

    fn think(&mut self, pointer: &str, text: &str) -> (Duration, Duration) {
        match text.split_once("..") {
            Some((lo, hi)) => {
                let (lo, hi) = (
                    self.duration(pointer, lo.trim()),
                    self.duration(pointer, hi.trim()),
                );
                if lo > hi {
                    self.error(pointer, format!("think range `{text}` goes backwards"));
                }
                (lo, hi)
            }
            None => {
                let d = self.duration(pointer, text);
                (d, d)
            }
        }
    }

    fn load(&mut self, load: &plan::Load) -> (BTreeMap<String, Expr>, BTreeMap<String, Text>) {
        let mut nums = BTreeMap::new();
        let mut durs = BTreeMap::new();
        let mut num = |cx: &mut Self, pointer: String, n: &plan::Num| {
            if let plan::Num::Template(t) = n {
                let inner = t
                    .trim()
                    .strip_prefix("{{")
                    .and_then(|s| s.strip_suffix("}}"))
                    .map(str::trim);
                match inner {
                    Some(expr) => {
                        let e = cx.compiler.expr(&pointer, expr, false);
                        nums.insert(pointer, e);
                    }
                    None => cx.error(
                        &pointer,
                        format!("`{t}` is neither a number nor a `{{{{ expression }}}}`"),
                    ),
                }
            }
        };
        let mut dur = |cx: &mut Self, pointer: String, d: &str| {
            if template::is_template(d) {
                let t = cx.compiler.text(&pointer, d, false);
                durs.insert(pointer, t);
            } else {
                cx.duration(&pointer, d);
            }
        };
        match load {
            plan::Load::Steps(s) => {
                dur(self, "/load/steps/step_time".into(), &s.step_time);
                dur(self, "/load/steps/time_limit".into(), &s.time_limit);
                num(self, "/load/steps/users_per_step".into(), &s.users_per_step);
                num(self, "/load/steps/user_limit".into(), &s.user_limit);
                if let Some(p) = &s.spawn_pct {
                    num(self, "/load/steps/spawn_pct".into(), p);
                }
            }
            plan::Load::Constant(c) => {
                dur(self, "/load/constant/duration".into(), &c.duration);
                num(self, "/load/constant/users".into(), &c.users);
                if let Some(r) = &c.spawn_rate {
                    num(self, "/load/constant/spawn_rate".into(), r);
                }
            }
            plan::Load::Stages(stages) => {
                if stages.is_empty() {
                    self.error("/load/stages", "`stages` needs at least one stage");
                }
                for (i, s) in stages.iter().enumerate() {
                    dur(self, format!("/load/stages/{i}/duration"), &s.duration);
                    num(self, format!("/load/stages/{i}/target"), &s.target);
                }
            }
            plan::Load::ArrivalRate(a) => {
                match (&a.rate, &a.duration, &a.stages) {
                    (Some(r), Some(d), None) => {
                        num(self, "/load/arrival_rate/rate".into(), r);
                        dur(self, "/load/arrival_rate/duration".into(), d);
                    }
                    (None, None, Some(stages)) if !stages.is_empty() => {
                        for (i, s) in stages.iter().enumerate() {
                            dur(
                                self,
                                format!("/load/arrival_rate/stages/{i}/duration"),
                                &s.duration,
                            );
                            num(
                                self,
                                format!("/load/arrival_rate/stages/{i}/target"),
                                &s.target,
                            );
                        }
                    }
                    _ => self.error(
                        "/load/arrival_rate",
                        "give either `rate` and `duration`, or a non-empty `stages` list",
                    ),
                }
                num(self, "/load/arrival_rate/max_users".into(), &a.max_users);
                if let Some(s) = &a.start_rate {
                    num(self, "/load/arrival_rate/start_rate".into(), s);
                }
            }
        }
        (nums, durs)
    }

    fn steps(
        &mut self,
        pointer: &str,
        steps: &[Step],
        phase: Phase,
        plan: &Plan,
    ) -> Vec<CompiledStep> {
        steps
            .iter()
            .enumerate()
            .filter_map(|(i, s)| self.step(&format!("{pointer}/{i}"), s, phase, plan))
            .collect()
    }

    fn step(&mut self, p: &str, step: &Step, phase: Phase, plan: &Plan) -> Option<CompiledStep> {
        let kinds: Vec<&str> = [
            ("request", step.request.is_some()),
            ("sleep", step.sleep.is_some()),
            ("set", step.set.is_some()),
            ("offer", step.offer.is_some()),
            ("take", step.take.is_some()),
            ("wait_event", step.wait_event.is_some()),
        ]
        .iter()
        .filter(|(_, present)| *present)
        .map(|(k, _)| *k)
        .collect();
        if kinds.len() != 1 {
            let msg = if kinds.is_empty() {
                "a step needs one of `request`, `sleep`, `set`, `offer`, `take`, `wait_event`"
                    .to_string()
            } else {
                format!(
                    "a step does one thing; this one has {}",
                    kinds
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(" and ")
                )
            };
            self.error(p, msg);
            return None;
        }
        if step.request.is_none() {
            for (key, present) in [
                ("check", step.check.is_some()),
                (
                    "capture",
                    !step.capture.is_empty() && step.wait_event.is_none(),
                ),
                ("poll", step.poll.is_some()),
            ] {
                if present {
                    self.error(
                        &format!("{p}/{key}"),
                        format!("`{key}` only applies to `request` steps"),
                    );
                }
            }
        }
        let when = step
            .when
            .as_ref()
            .map(|w| self.compiler.expr(&format!("{p}/when"), w, false));
        let (retries, retry_delay, then) = match &step.on_error {
            None => (0, Duration::ZERO, None),
            Some(OnError::Action(a)) => (0, Duration::ZERO, Some(*a)),
            Some(OnError::Retry(r)) => (
                r.retry,
                self.opt_duration(
                    &format!("{p}/on_error/delay"),
                    r.delay.as_ref(),
                    Duration::from_secs(1),
                ),
                r.then,
            ),
        };
        let on_error = then.unwrap_or(match phase {
            Phase::Setup => ErrorAction::Stop,
            Phase::Tasks => ErrorAction::NextIteration,
            Phase::Teardown => ErrorAction::Continue,
        });
        let (kind, default_name) = if let Some(r) = &step.request {
            let rq = self.request(p, r, step);
            (
                StepKind::Request(Box::new(rq)),
                format!("{} {}", r.method.as_str(), r.path),
            )
        } else if let Some(s) = &step.sleep {
            (
                StepKind::Sleep(self.duration(&format!("{p}/sleep"), s)),
                format!("sleep {s}"),
            )
        } else if let Some(set) = &step.set {
            let vals = self.jsons(&format!("{p}/set"), set);
            (StepKind::Set(vals), "set".to_string())
        } else if let Some(o) = &step.offer {
            self.pool(&format!("{p}/offer/pool"), &o.pool, plan);
            let value = self.compiler.json(&format!("{p}/offer/value"), &o.value);
            let key = o
                .key
                .as_ref()
                .map(|k| self.compiler.text(&format!("{p}/offer/key"), k, false));
            (
                StepKind::Offer {
                    pool: o.pool.clone(),
                    key,
                    value,
                },
                format!("offer {}", o.pool),
            )
        } else if let Some(t) = &step.take {
            self.pool(&format!("{p}/take/pool"), &t.pool, plan);
            let timeout = self.opt_duration(
                &format!("{p}/take/timeout"),
                t.timeout.as_ref(),
                Duration::from_secs(30),
            );
            let key = t
                .key
                .as_ref()
                .map(|k| self.compiler.text(&format!("{p}/take/key"), k, false));
            (
                StepKind::Take {
                    pool: t.pool.clone(),
                    key,
                    into: t.into.clone(),
                    timeout,
                },
                format!("take {}", t.pool),
            )
        } else if let Some(w) = &step.wait_event {
            let wp = format!("{p}/wait_event");
            if plan.events.is_none() {
                self.error(
                    &wp,
                    "`wait_event` needs an `events:` section (source: webhook or websocket)",
                );
            }
            let wallet = self
                .compiler
                .text(&format!("{wp}/wallet"), &w.wallet, false);
            let until = w
                .until
                .as_ref()
                .map(|u| self.compiler.expr(&format!("{wp}/until"), u, true));
            let timeout = self.opt_duration(
                &format!("{wp}/timeout"),
                w.timeout.as_ref(),
                Duration::from_secs(30),
            );
            if let Some(c) = &w.clock
                && !self.step_names.contains(c)
            {
                let names: Vec<String> = self.step_names.iter().cloned().collect();
                let hint = crate::schema::suggest(c, &names)
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_default();
                self.error(
                    &format!("{wp}/clock"),
                    format!("`clock` names no step of this plan: `{c}`{hint}"),
                );
            }
            let captures = self.captures(p, step);
            (
                StepKind::WaitEvent(Box::new(CompiledWait {
                    topic: w.topic.clone(),
                    wallet,
                    until,
                    timeout,
                    clock: w.clock.as_deref().map(Arc::from),
                    captures,
                })),
                format!("event {}", w.topic),
            )
        } else {
            return None;
        };
        Some(CompiledStep {
            name: Arc::from(step.name.clone().unwrap_or(default_name)),
            phase,
            line: self.spans.value(p).line,
            when,
            kind,
            retries,
            retry_delay,
            on_error,
        })
    }

    fn captures(&mut self, p: &str, step: &Step) -> Vec<Capture> {
        let mut captures = Vec::new();
        for (name, spec) in &step.capture {
            let (path, select, secret) = match spec {
                CaptureSpec::Path(path) => (path.as_str(), plan::Select::First, false),
                CaptureSpec::Full(f) => (f.path.as_str(), f.select, f.secret),
            };
            let pointer = match spec {
                CaptureSpec::Path(_) => format!("{p}/capture/{}", source::escape(name)),
                CaptureSpec::Full(_) => format!("{p}/capture/{}/path", source::escape(name)),
            };
            match Capture::compile(name, path, select, secret) {
                Ok(c) => captures.push(c),
                Err(e) => self.error(&pointer, e),
            }
        }
        captures
    }

    fn pool(&mut self, pointer: &str, name: &str, plan: &Plan) {
        if !plan.pools.contains_key(name) {
            let names: Vec<String> = plan.pools.keys().cloned().collect();
            let hint = crate::schema::suggest(name, &names)
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            self.error(
                pointer,
                format!("pool `{name}` is not declared under `pools:`{hint}"),
            );
        }
    }

    /// A map of JSON values with templated leaves (plan `vars`, `set`) under `prefix`.
    fn jsons(
        &mut self,
        prefix: &str,
        map: &BTreeMap<String, serde_json::Value>,
    ) -> Vec<(String, JsonTemplate)> {
        map.iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    self.compiler
                        .json(&format!("{prefix}/{}", source::escape(k)), v),
                )
            })
            .collect()
    }

    /// A map of templated strings (query parameters, headers) under `prefix`.
    fn texts(&mut self, prefix: &str, map: &BTreeMap<String, String>) -> Vec<(String, Text)> {
        map.iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    self.compiler
                        .text(&format!("{prefix}/{}", source::escape(k)), v, false),
                )
            })
            .collect()
    }

    fn request(&mut self, p: &str, r: &plan::Request, step: &Step) -> CompiledRequest {
        let rp = format!("{p}/request");
        let path = self.compiler.text(&format!("{rp}/path"), &r.path, false);
        let query = self.texts(&format!("{rp}/query"), &r.query);
        let headers = self.texts(&format!("{rp}/headers"), &r.headers);
        let bearer = r
            .bearer
            .as_ref()
            .map(|b| self.compiler.text(&format!("{rp}/bearer"), b, false));
        let json = r
            .json
            .as_ref()
            .map(|j| self.compiler.json(&format!("{rp}/json"), j));
        let timeout = r
            .timeout
            .as_ref()
            .map(|t| self.duration(&format!("{rp}/timeout"), t));
        let status = step
            .check
            .as_ref()
            .and_then(|c| c.status.as_ref())
            .map(|s| s.to_vec());
        if let Some(codes) = &status {
            for c in codes {
                if !(100..=599).contains(c) {
                    self.error(
                        &format!("{p}/check/status"),
                        format!("{c} is not an HTTP status code"),
                    );
                }
            }
        }
        let that = step
            .check
            .iter()
            .flat_map(|c| c.that.iter().enumerate())
            .map(|(i, e)| self.compiler.expr(&format!("{p}/check/that/{i}"), e, true))
            .collect();
        let captures = self.captures(p, step);
        let poll = step.poll.as_ref().map(|poll| CompiledPoll {
            until: self
                .compiler
                .expr(&format!("{p}/poll/until"), &poll.until, true),
            interval: self.opt_duration(
                &format!("{p}/poll/interval"),
                poll.interval.as_ref(),
                Duration::from_millis(250),
            ),
            timeout: self.opt_duration(
                &format!("{p}/poll/timeout"),
                poll.timeout.as_ref(),
                Duration::from_secs(30),
            ),
        });
        CompiledRequest {
            method: r.method,
            path,
            query,
            headers,
            bearer,
            json,
            timeout,
            status,
            that,
            captures,
            poll,
        }
    }
}

/// Every variable name a plan defines (vars, captures, set, take), sorted.
pub fn defined_names(plan: &Plan) -> Vec<String> {
    let mut names: BTreeSet<String> = plan.vars.keys().cloned().collect();
    let tasks: Vec<&Step> = match &plan.user.tasks {
        Tasks::Sequence(s) => s.iter().collect(),
        Tasks::Weighted(w) => w.choose.iter().flat_map(|c| c.steps.iter()).collect(),
    };
    for step in plan
        .user
        .setup
        .iter()
        .chain(tasks)
        .chain(plan.user.teardown.iter())
    {
        names.extend(step.capture.keys().cloned());
        if let Some(set) = &step.set {
            names.extend(set.keys().cloned());
        }
        if let Some(take) = &step.take {
            names.insert(take.into.clone());
        }
    }
    names.into_iter().collect()
}
