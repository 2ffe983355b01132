//! Resolving a compiled plan against its variables: the load shape, the target, every
//! templated setting (durations, think time, threshold limits, watched agents) and the
//! values shared by all users. Each templated value is rendered once, here, and held to
//! the rule its literal form is; the engine gets concrete values. Pure: no I/O; errors
//! point at the plan's lines.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use minijinja::Value;

use crate::plan::bounds::Rule;
use crate::plan::compile::{CompiledPlan, Dur, TemplatedDuration, Think};
use crate::plan::diagnostic::Diagnostic;
use crate::plan::env::ResolvedEnv;
use crate::plan::scope::{Globals, RngCell, Scope, to_value};
use crate::plan::shape::{Segment, Shape};
use crate::plan::template::{Text, describe};
use crate::plan::{Load, Num, Threshold};

/// A plan with its variables filled in.
#[derive(Debug)]
pub struct Resolved {
    pub shape: Shape,
    pub globals: Arc<Globals>,
    pub base_url: String,
    pub headers: Vec<(String, String)>,
    pub target: TargetSettings,
    /// Every duration of the plan's steps, templated ones rendered.
    pub durations: Durations,
    /// Pause between iterations, from..to.
    pub think: Option<(Duration, Duration)>,
    /// The plan's thresholds, templated limits rendered (as checked duration literals).
    pub thresholds: Vec<Threshold>,
    /// The agents to watch, settings rendered.
    pub watch: Vec<WatchSettings>,
}

/// How requests reach the target.
#[derive(Debug, Clone)]
pub struct TargetSettings {
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub insecure: bool,
    pub max_connections: Option<usize>,
    /// CA certificates trusted beside the system's (`target.ca_file`, left out when it
    /// renders empty; `--ca-file` replaces it). Read and checked by the caller.
    pub ca_file: Option<std::path::PathBuf>,
    /// The header naming the instance behind a proxy that answered (`target.instance_header`,
    /// left out when it renders empty).
    pub instance_header: Option<http::HeaderName>,
}

/// A watched agent with its settings rendered.
#[derive(Debug, Clone)]
pub struct WatchSettings {
    pub name: String,
    /// Its admin API (`GET /status`); `None` when it renders empty (a process watched by its
    /// `pid_file` alone, e.g. a Credo mediator, which has no admin API).
    pub url: Option<String>,
    /// Left out when it renders empty.
    pub api_key: Option<String>,
    pub interval: Duration,
    /// The agent's pid file, when it is local (left out when it renders empty).
    pub pid_file: Option<std::path::PathBuf>,
}

/// The values of a plan's templated durations for one run; literals pass through.
#[derive(Debug, Clone, Default)]
pub struct Durations(Vec<Duration>);

impl Durations {
    /// The value of `d` in this run. A templated `d` indexes the plan this was resolved
    /// from, which rendered every one of its templates.
    pub fn get(&self, d: Dur) -> Duration {
        match d {
            Dur::Literal(d) => d,
            Dur::Templated(i) => self.0[i],
        }
    }
}

/// Values that identify a run, visible to templates as `run.*` and `shard.*`.
#[derive(Debug, Clone)]
pub struct RunIdentity {
    pub id: String,
    pub seed: u64,
    pub shard_index: u32,
    pub shard_count: u32,
    pub webhook_url: String,
}

/// A scope with only plan-level values, for evaluating load parameters and the target.
pub fn plan_scope(globals: &Arc<Globals>, seed: u64) -> Value {
    Value::from_object(Scope {
        globals: globals.clone(),
        user: Value::from(()),
        vars: Arc::new(BTreeMap::new()),
        response: None,
        event: None,
        rng: Value::from_object(RngCell(Mutex::new(fastrand::Rng::with_seed(seed)))),
    })
}

/// Renders and checks everything templated in `plan` for one run; every error found, each
/// at its place in the plan.
pub fn resolve(
    plan: &CompiledPlan,
    env: &ResolvedEnv,
    id: &RunIdentity,
) -> Result<Resolved, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let globals = Arc::new(globals(plan, env, id, &mut errors));
    let scope = plan_scope(&globals, id.seed);
    let base_url = plan
        .templates
        .render(&plan.target.base_url, &scope)
        .unwrap_or_else(|e| {
            errors.push(at(plan, "/target/base_url", describe(&e)));
            String::new()
        });
    if !errors.is_empty() {
        return Err(errors);
    }
    if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
        let msg = format!("base_url `{base_url}` must start with http:// or https://");
        errors.push(at(plan, "/target/base_url", msg));
    }
    let headers = headers(plan, &scope, &mut errors);
    let shape = shape(plan, &scope, &mut errors);
    let mut settings = SettingsCx {
        plan,
        scope: &scope,
        errors: &mut errors,
    };
    let durations = Durations(
        plan.templated
            .iter()
            .map(|t| settings.duration(t))
            .collect(),
    );
    let think = plan.think.as_ref().map(|t| settings.think(t));
    let watch = settings.watch(&durations);
    let target = TargetSettings {
        instance_header: settings.header_name("/target/instance_header"),
        timeout: durations.get(plan.target.timeout),
        connect_timeout: durations.get(plan.target.connect_timeout),
        insecure: plan.target.insecure,
        max_connections: plan.target.max_connections,
        ca_file: Some(settings.text("/target/ca_file"))
            .filter(|f| !f.trim().is_empty())
            .map(|f| std::path::PathBuf::from(f.trim())),
    };
    settings.edge_behaviour();
    let thresholds = thresholds(plan, &durations);
    if errors.is_empty() {
        Ok(Resolved {
            shape,
            globals,
            base_url: base_url.trim_end_matches('/').to_string(),
            headers,
            target,
            durations,
            think,
            thresholds,
            watch,
        })
    } else {
        Err(errors)
    }
}

/// A finding at `pointer` in the plan.
fn at(plan: &CompiledPlan, pointer: &str, msg: String) -> Diagnostic {
    Diagnostic::new(&plan.file, plan.spans.value(pointer), msg)
}

/// The values shared by all users: env, run and shard identity, and the plan's vars, each
/// rendered with env and the vars before it.
fn globals(
    plan: &CompiledPlan,
    env: &ResolvedEnv,
    id: &RunIdentity,
    errors: &mut Vec<Diagnostic>,
) -> Globals {
    let mut globals = Globals {
        env: Value::from_object(env.values.clone()),
        run: to_value(serde_json::json!({"id": id.id, "seed": id.seed})),
        shard: to_value(serde_json::json!({"index": id.shard_index, "count": id.shard_count})),
        webhook_url: Value::from(id.webhook_url.as_str()),
        vars: BTreeMap::new(),
    };
    for (name, t) in &plan.vars {
        let scope = plan_scope(&Arc::new(clone_globals(&globals)), id.seed);
        match plan.templates.render_json(t, &scope) {
            Ok(v) => {
                globals.vars.insert(name.clone(), to_value(&v));
            }
            Err(e) => errors.push(at(plan, &format!("/vars/{name}"), describe(&e))),
        }
    }
    globals
}

/// The target's headers, rendered; one that renders empty is left out.
fn headers(
    plan: &CompiledPlan,
    scope: &Value,
    errors: &mut Vec<Diagnostic>,
) -> Vec<(String, String)> {
    let mut headers = Vec::new();
    for (k, t) in &plan.target.headers {
        match plan.templates.render(t, scope) {
            Ok(v) if v.is_empty() => {}
            Ok(v) => headers.push((k.clone(), v)),
            Err(e) => errors.push(at(plan, &format!("/target/headers/{k}"), describe(&e))),
        }
    }
    headers
}

/// The plan's thresholds with their templated limits rendered (as duration literals).
fn thresholds(plan: &CompiledPlan, durations: &Durations) -> Vec<Threshold> {
    let mut thresholds = plan.plan.thresholds.clone();
    for l in &plan.threshold_limits {
        if let Dur::Templated(_) = l.limit
            && let Some(th) = thresholds.get_mut(l.index)
        {
            let text = crate::plan::duration::format(durations.get(l.limit));
            match l.key {
                "p50" => th.p50 = Some(text),
                "p95" => th.p95 = Some(text),
                "p99" => th.p99 = Some(text),
                _ => th.max = Some(text),
            }
        }
    }
    thresholds
}

/// A copy of the shared values (cheap: template values are reference counted).
pub fn clone_globals(g: &Globals) -> Globals {
    Globals {
        env: g.env.clone(),
        run: g.run.clone(),
        shard: g.shard.clone(),
        webhook_url: g.webhook_url.clone(),
        vars: g.vars.clone(),
    }
}

fn shape(plan: &CompiledPlan, scope: &Value, errors: &mut Vec<Diagnostic>) -> Shape {
    let mut cx = ShapeCx {
        plan,
        scope,
        errors,
    };
    match &plan.plan.load {
        Load::Steps(s) => Shape::Steps {
            step_time: cx.dur("/load/steps/step_time", &s.step_time),
            users_per_step: cx.count("/load/steps/users_per_step", &s.users_per_step),
            user_limit: cx.count("/load/steps/user_limit", &s.user_limit),
            time_limit: cx.dur("/load/steps/time_limit", &s.time_limit),
            spawn_pct: s
                .spawn_pct
                .as_ref()
                .map_or(0.5, |p| cx.ruled("/load/steps/spawn_pct", p, Rule::Spawn)),
        },
        Load::Constant(c) => Shape::Constant {
            users: cx.count("/load/constant/users", &c.users),
            duration: cx.dur("/load/constant/duration", &c.duration),
            spawn_rate: c
                .spawn_rate
                .as_ref()
                .map(|r| cx.ruled("/load/constant/spawn_rate", r, Rule::Spawn)),
        },
        Load::Stages(stages) => Shape::Stages(
            stages
                .iter()
                .enumerate()
                .map(|(i, s)| Segment {
                    duration: cx.dur(&format!("/load/stages/{i}/duration"), &s.duration),
                    target: cx.count(&format!("/load/stages/{i}/target"), &s.target) as f64,
                })
                .collect(),
        ),
        Load::ArrivalRate(a) => {
            let stages = match (&a.rate, &a.duration, &a.stages) {
                (Some(r), Some(d), _) => {
                    let rate = cx.ruled("/load/arrival_rate/rate", r, Rule::PositiveRate);
                    vec![Segment {
                        duration: cx.dur("/load/arrival_rate/duration", d),
                        target: rate,
                    }]
                }
                (_, _, Some(stages)) => stages
                    .iter()
                    .enumerate()
                    .map(|(i, s)| Segment {
                        duration: cx.dur(
                            &format!("/load/arrival_rate/stages/{i}/duration"),
                            &s.duration,
                        ),
                        target: cx.ruled(
                            &format!("/load/arrival_rate/stages/{i}/target"),
                            &s.target,
                            Rule::Rate,
                        ),
                    })
                    .collect(),
                _ => Vec::new(),
            };
            let start_rate = match (&a.rate, &a.start_rate) {
                (Some(_), _) => stages.first().map_or(0.0, |s| s.target),
                (None, Some(s)) => cx.ruled("/load/arrival_rate/start_rate", s, Rule::Rate),
                (None, None) => 0.0,
            };
            Shape::ArrivalRate {
                start_rate,
                stages,
                max_users: cx.count("/load/arrival_rate/max_users", &a.max_users),
            }
        }
    }
}

struct ShapeCx<'a> {
    plan: &'a CompiledPlan,
    scope: &'a Value,
    errors: &'a mut Vec<Diagnostic>,
}

impl ShapeCx<'_> {
    fn fail(&mut self, pointer: &str, msg: String) {
        self.errors.push(Diagnostic::new(
            &self.plan.file,
            self.plan.spans.value(pointer),
            msg,
        ));
    }

    fn number(&mut self, pointer: &str, n: &Num) -> f64 {
        match n {
            Num::Literal(f) => *f,
            Num::Template(src) => {
                let Some(expr) = self.plan.load_params.get(pointer) else {
                    return 0.0;
                };
                match self.plan.templates.eval(*expr, self.scope) {
                    Ok(v) => match f64::try_from(v.clone()) {
                        Ok(f) if f.is_finite() => f,
                        _ => {
                            self.fail(pointer, format!("`{src}` gave {v}, not a number"));
                            0.0
                        }
                    },
                    Err(e) => {
                        self.fail(pointer, describe(&e));
                        0.0
                    }
                }
            }
        }
    }

    /// A number held to its rule; a value outside it is an error, never clamped.
    fn ruled(&mut self, pointer: &str, n: &Num, rule: Rule) -> f64 {
        let v = self.number(pointer, n);
        rule.check(v).unwrap_or_else(|e| {
            let key = pointer.rsplit('/').next().unwrap_or_default();
            self.fail(pointer, format!("{key} {e}"));
            0.0
        })
    }

    fn count(&mut self, pointer: &str, n: &Num) -> u64 {
        self.ruled(pointer, n, Rule::Users) as u64
    }

    fn dur(&mut self, pointer: &str, text: &str) -> Duration {
        let rendered = match self.plan.load_texts.get(pointer) {
            Some(t) => match self.plan.templates.render(t, self.scope) {
                Ok(s) => s,
                Err(e) => {
                    self.fail(pointer, describe(&e));
                    return Duration::ZERO;
                }
            },
            None => text.to_string(),
        };
        match crate::plan::duration::parse(rendered.trim()) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                self.fail(pointer, format!("`{rendered}` must be longer than zero"));
                Duration::ZERO
            }
            Err(e) => {
                self.fail(pointer, e.to_string());
                Duration::ZERO
            }
        }
    }
}

/// Renders the plan's templated settings outside the load shape.
struct SettingsCx<'a> {
    plan: &'a CompiledPlan,
    scope: &'a Value,
    errors: &'a mut Vec<Diagnostic>,
}

impl SettingsCx<'_> {
    fn fail(&mut self, pointer: &str, msg: String) {
        self.errors.push(Diagnostic::new(
            &self.plan.file,
            self.plan.spans.value(pointer),
            msg,
        ));
    }

    /// The watched agents, their settings rendered; an entry whose URL and pid file both
    /// render empty is left out.
    fn watch(&mut self, durations: &Durations) -> Vec<WatchSettings> {
        let plan = self.plan;
        let mut out = Vec::new();
        for (i, (w, interval)) in plan
            .plan
            .watch
            .iter()
            .zip(&plan.watch_intervals)
            .enumerate()
        {
            let url = self.url(&format!("/watch/{i}/url"));
            let pid_file = w
                .pid_file
                .as_ref()
                .map(|_| self.text(&format!("/watch/{i}/pid_file")))
                .filter(|f| !f.trim().is_empty())
                .map(|f| std::path::PathBuf::from(f.trim()));
            if url.is_none() && pid_file.is_none() {
                continue;
            }
            out.push(WatchSettings {
                name: w.name.clone(),
                url,
                api_key: w
                    .api_key
                    .as_ref()
                    .map(|_| self.text(&format!("/watch/{i}/api_key")))
                    .filter(|k| !k.is_empty()),
                interval: durations.get(*interval),
                pid_file,
            });
        }
        out
    }

    /// Every `connect` step's `pickup` and `transport`, rendered once the variables are known:
    /// a value the agents could not use is an error before the run, at its place.
    fn edge_behaviour(&mut self) {
        use crate::plan::compile::{CompiledDidcomm, StepKind};
        let plan = self.plan;
        let steps = plan
            .setup
            .iter()
            .chain(plan.tasks.iter().flat_map(|t| t.steps.iter()))
            .chain(plan.teardown.iter());
        for step in steps {
            let StepKind::Didcomm(d) = &step.kind else {
                continue;
            };
            let CompiledDidcomm::Connect { behaviour, .. } = &**d else {
                continue;
            };
            for (choice, written) in &behaviour.chosen {
                if let Some((pointer, text)) = written
                    && let Some(v) = self.render(pointer, text)
                    && let Err(why) = choice.check(&v)
                {
                    self.fail(pointer, why);
                }
            }
        }
    }

    /// The run setting at `pointer` (compiled at load), rendered.
    fn text(&mut self, pointer: &str) -> String {
        let Some(text) = self.plan.settings.get(pointer) else {
            return String::new();
        };
        self.render(pointer, text).unwrap_or_default()
    }

    /// A header name (left out when it renders empty); a name HTTP does not allow is an error.
    fn header_name(&mut self, pointer: &str) -> Option<http::HeaderName> {
        let name = self.text(pointer);
        let name = name.trim();
        if name.is_empty() {
            return None;
        }
        match http::HeaderName::from_bytes(name.as_bytes()) {
            Ok(h) => Some(h),
            Err(_) => {
                self.fail(pointer, format!("`{name}` is not an HTTP header name"));
                None
            }
        }
    }

    /// A watched agent's URL, held to `base_url`'s rule (http or https), without a trailing `/`;
    /// `None` when it renders empty (or not at all: the error is recorded).
    fn url(&mut self, pointer: &str) -> Option<String> {
        let text = self.plan.settings.get(pointer)?;
        let url = self.render(pointer, text)?;
        let url = url.trim().trim_end_matches('/').to_string();
        if url.is_empty() {
            return None;
        }
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            self.fail(
                pointer,
                format!("url `{url}` must start with http:// or https://"),
            );
        }
        Some(url)
    }

    fn render(&mut self, pointer: &str, text: &Text) -> Option<String> {
        self.plan
            .templates
            .render(text, self.scope)
            .map_err(|e| self.fail(pointer, describe(&e)))
            .ok()
    }

    /// The templated setting at `pointer` for messages: its key and what the plan wrote.
    fn what(pointer: &str, source: &str) -> String {
        let key = pointer.rsplit('/').next().unwrap_or(pointer);
        format!("{key} `{source}`")
    }

    /// A templated duration, held to the rule of its literal form.
    fn duration(&mut self, t: &TemplatedDuration) -> Duration {
        let (pointer, text, above_zero) = (t.pointer.as_str(), &t.text, t.above_zero);
        let Some(rendered) = self.render(pointer, text) else {
            return Duration::ZERO;
        };
        let rendered = rendered.trim();
        match crate::plan::duration::parse(rendered) {
            Ok(d) if above_zero && d.is_zero() => {
                let what = Self::what(pointer, &t.source);
                self.fail(
                    pointer,
                    format!("{what} is `{rendered}`, which must be longer than zero"),
                );
                Duration::ZERO
            }
            Ok(d) => d,
            Err(e) => {
                let what = Self::what(pointer, &t.source);
                self.fail(
                    pointer,
                    format!(
                        "{what} is `{rendered}`, not a duration: {} (write e.g. `500ms`, `30s`, `1m30s`)",
                        e.reason()
                    ),
                );
                Duration::ZERO
            }
        }
    }

    /// `user.think`, rendered whole when templated (a variable may hold a range).
    fn think(&mut self, think: &Think) -> (Duration, Duration) {
        let text = match think {
            Think::Literal(lo, hi) => return (*lo, *hi),
            Think::Templated(text) => text,
        };
        let Some(rendered) = self.render("/user/think", text) else {
            return (Duration::ZERO, Duration::ZERO);
        };
        crate::plan::compile::parse_think(rendered.trim()).unwrap_or_else(|e| {
            let source = self.plan.plan.user.think.as_deref().unwrap_or_default();
            let what = Self::what("/user/think", source);
            self.fail("/user/think", format!("{what} is `{rendered}`: {e}"));
            (Duration::ZERO, Duration::ZERO)
        })
    }
}

/// The shape in words, for reports.
pub fn describe_shape(shape: &Shape) -> String {
    use crate::plan::duration::format as d;
    match shape {
        Shape::Steps {
            step_time,
            users_per_step,
            user_limit,
            time_limit,
            spawn_pct,
        } => format!(
            "steps: +{users_per_step} users every {} up to {user_limit}, for {}, spawning {:.0}% of target per second",
            d(*step_time),
            d(*time_limit),
            spawn_pct * 100.0
        ),
        Shape::Constant {
            users, duration, ..
        } => format!("constant: {users} users for {}", d(*duration)),
        Shape::Stages(stages) => format!(
            "stages: {}",
            stages
                .iter()
                .map(|s| format!("{} users over {}", s.target, d(s.duration)))
                .collect::<Vec<_>>()
                .join(", then ")
        ),
        Shape::ArrivalRate {
            start_rate,
            stages,
            max_users,
        } => format!(
            "arrival rate: from {start_rate}/s, {} (max {max_users} users busy)",
            stages
                .iter()
                .map(|s| format!("to {}/s over {}", s.target, d(s.duration)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests;
