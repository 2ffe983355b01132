//! The compile context: findings so far, and compiling the plan's target, variables,
//! tasks, think time, load shape and templated run settings.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::{
    CompiledStep, CompiledTarget, Dur, TaskList, TemplatedDuration, Think, ThresholdLimit,
};
use crate::plan::bounds::{MAX_WEIGHT, Rule};
use crate::plan::diagnostic::Diagnostic;
use crate::plan::source::{self, SpanIndex};
use crate::plan::template::{self, Compiler, Expr, JsonTemplate, Text};
use crate::plan::{self, Phase, Plan, Tasks};

/// What [`Cx::plan`] compiles; [`CompiledPlan`](super::CompiledPlan) is made of it once the
/// templates are finished.
pub(super) struct Parts {
    pub(super) target: CompiledTarget,
    pub(super) vars: Vec<(String, JsonTemplate)>,
    pub(super) setup: Vec<CompiledStep>,
    pub(super) tasks: Vec<TaskList>,
    pub(super) teardown: Vec<CompiledStep>,
    pub(super) think: Option<Think>,
    pub(super) load_params: BTreeMap<String, Expr>,
    pub(super) load_texts: BTreeMap<String, Text>,
}

pub(super) struct Cx<'a> {
    pub(super) file: &'a str,
    pub(super) spans: &'a SpanIndex,
    pub(super) compiler: Compiler,
    pub(super) diags: Vec<Diagnostic>,
    pub(super) defined: BTreeSet<String>,
    pub(super) step_names: BTreeSet<String>,
    /// Durations written as templates ([`Dur::Templated`] indexes).
    pub(super) templated: Vec<TemplatedDuration>,
    pub(super) threshold_limits: Vec<ThresholdLimit>,
    pub(super) watch_intervals: Vec<Dur>,
}

impl Cx<'_> {
    pub(super) fn error(&mut self, pointer: &str, msg: impl Into<String>) {
        self.diags
            .push(Diagnostic::new(self.file, self.spans.value(pointer), msg));
    }

    /// A duration literal, checked now, or a template, compiled now and rendered and
    /// checked by the same rule (`above_zero`: timeouts and intervals) when resolved.
    pub(super) fn duration(&mut self, pointer: &str, text: &str, above_zero: bool) -> Dur {
        if template::is_template(text) {
            let compiled = self.compiler.text(pointer, text, false);
            self.templated.push(TemplatedDuration {
                pointer: pointer.to_string(),
                source: text.to_string(),
                text: compiled,
                above_zero,
            });
            return Dur::Templated(self.templated.len() - 1);
        }
        match crate::plan::duration::parse(text) {
            Ok(d) if above_zero && d.is_zero() => {
                let key = pointer.rsplit('/').next().unwrap_or_default();
                self.error(pointer, format!("{key} `{text}` must be longer than zero"));
                Dur::Literal(d)
            }
            Ok(d) => Dur::Literal(d),
            Err(e) => {
                self.error(pointer, e.to_string());
                Dur::Literal(Duration::ZERO)
            }
        }
    }

    pub(super) fn opt_duration(
        &mut self,
        pointer: &str,
        text: Option<&String>,
        default: Duration,
        above_zero: bool,
    ) -> Dur {
        text.map_or(Dur::Literal(default), |t| {
            self.duration(pointer, t, above_zero)
        })
    }

    pub(super) fn plan(&mut self, plan: &Plan) -> Parts {
        self.collect_names(plan);
        let target = self.target(&plan.target);
        for (name, var) in &plan.env {
            if let Some(d) = &var.default
                && let Err(why) = crate::plan::env::default_value(var.kind, d)
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
        let tasks = self.tasks(plan);
        let teardown = self.steps("/user/teardown", &plan.user.teardown, Phase::Teardown, plan);
        let think = plan
            .user
            .think
            .as_ref()
            .map(|t| self.think("/user/think", t));
        self.thresholds(plan);
        Parts {
            target,
            vars,
            setup,
            tasks,
            teardown,
            think,
            load_params,
            load_texts,
        }
    }

    /// Names defined anywhere in the plan, and the names of its steps. A use before the
    /// definition is caught at run time, as undefined.
    fn collect_names(&mut self, plan: &Plan) {
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
            if let Some(plan::Didcomm::Invite(i)) = &step.didcomm {
                self.defined.insert(i.into.clone());
            }
        }
    }

    fn target(&mut self, t: &plan::Target) -> CompiledTarget {
        let base_url = self.compiler.text("/target/base_url", &t.base_url, false);
        let headers = self.texts("/target/headers", &t.headers);
        let timeout = self.opt_duration(
            "/target/timeout",
            t.timeout.as_ref(),
            Duration::from_secs(30),
            true,
        );
        let connect_timeout = self.opt_duration(
            "/target/connect_timeout",
            t.connect_timeout.as_ref(),
            Duration::from_secs(5),
            true,
        );
        CompiledTarget {
            base_url,
            headers,
            timeout,
            connect_timeout,
            insecure: t.insecure_skip_tls_verify,
            max_connections: t.max_connections,
        }
    }

    /// The task lists a user picks from: one for a sequence, one per weighted choice.
    fn tasks(&mut self, plan: &Plan) -> Vec<TaskList> {
        let w = match &plan.user.tasks {
            Tasks::Sequence(steps) => {
                return vec![TaskList {
                    name: "tasks".into(),
                    weight: 1,
                    steps: self.steps("/user/tasks", steps, Phase::Tasks, plan),
                }];
            }
            Tasks::Weighted(w) => w,
        };
        if w.choose.iter().all(|c| c.weight == 0) {
            self.error(
                "/user/tasks/choose",
                "at least one task needs a weight above 0",
            );
        }
        // Users pick a task by a draw below the sum, taken in `u32`.
        let total: u64 = w.choose.iter().map(|c| u64::from(c.weight)).sum();
        if total > u64::from(u32::MAX) {
            self.error(
                "/user/tasks/choose",
                format!(
                    "the weights add up to {total}, more than {}; each weight is at most {MAX_WEIGHT}",
                    u32::MAX
                ),
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

    /// Checks the thresholds and compiles their duration limits.
    fn thresholds(&mut self, plan: &Plan) {
        for (i, th) in plan.thresholds.iter().enumerate() {
            for (key, v) in [
                ("p50", &th.p50),
                ("p95", &th.p95),
                ("p99", &th.p99),
                ("max", &th.max),
            ] {
                if let Some(v) = v {
                    let limit = self.duration(&format!("/thresholds/{i}/{key}"), v, false);
                    self.threshold_limits.push(ThresholdLimit {
                        index: i,
                        key,
                        limit,
                    });
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
    }

    /// Compiles the templated run settings: event source, watched agents, the CA file, the
    /// instance header.
    pub(super) fn settings(&mut self, plan: &Plan) -> BTreeMap<String, Text> {
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
            } else if crate::plan::EventSource::parse(&ev.source).is_err() {
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
        add(self, "/target/ca_file".into(), plan.target.ca_file.as_ref());
        add(
            self,
            "/target/instance_header".into(),
            plan.target.instance_header.as_ref(),
        );
        for (i, w) in plan.watch.iter().enumerate() {
            add(self, format!("/watch/{i}/url"), Some(&w.url));
            add(self, format!("/watch/{i}/api_key"), w.api_key.as_ref());
            add(self, format!("/watch/{i}/pid_file"), w.pid_file.as_ref());
            let interval = self.opt_duration(
                &format!("/watch/{i}/interval"),
                w.interval.as_ref(),
                Duration::from_secs(1),
                true,
            );
            self.watch_intervals.push(interval);
        }
        out
    }

    /// A think time literal, checked now, or a template, rendered whole and checked when
    /// resolved (so a variable may hold a range).
    pub(super) fn think(&mut self, pointer: &str, text: &str) -> Think {
        if template::is_template(text) {
            return Think::Templated(self.compiler.text(pointer, text, false));
        }
        match super::parse_think(text) {
            Ok((lo, hi)) => Think::Literal(lo, hi),
            Err(e) => {
                self.error(pointer, e);
                Think::Literal(Duration::ZERO, Duration::ZERO)
            }
        }
    }

    /// Checks the load shape's literal parameters now and compiles its templated ones,
    /// which `resolve` evaluates once the variables are known.
    pub(super) fn load(
        &mut self,
        load: &plan::Load,
    ) -> (BTreeMap<String, Expr>, BTreeMap<String, Text>) {
        let mut out = ShapeParams::default();
        match load {
            plan::Load::Steps(s) => {
                self.shape_dur(&mut out, "/load/steps/step_time".into(), &s.step_time);
                self.shape_dur(&mut out, "/load/steps/time_limit".into(), &s.time_limit);
                self.shape_num(
                    &mut out,
                    "/load/steps/users_per_step".into(),
                    &s.users_per_step,
                    Rule::Users,
                );
                self.shape_num(
                    &mut out,
                    "/load/steps/user_limit".into(),
                    &s.user_limit,
                    Rule::Users,
                );
                if let Some(p) = &s.spawn_pct {
                    self.shape_num(&mut out, "/load/steps/spawn_pct".into(), p, Rule::Spawn);
                }
            }
            plan::Load::Constant(c) => {
                self.shape_dur(&mut out, "/load/constant/duration".into(), &c.duration);
                self.shape_num(
                    &mut out,
                    "/load/constant/users".into(),
                    &c.users,
                    Rule::Users,
                );
                if let Some(r) = &c.spawn_rate {
                    self.shape_num(&mut out, "/load/constant/spawn_rate".into(), r, Rule::Spawn);
                }
            }
            plan::Load::Stages(stages) => {
                if stages.is_empty() {
                    self.error("/load/stages", "`stages` needs at least one stage");
                }
                for (i, s) in stages.iter().enumerate() {
                    self.shape_dur(&mut out, format!("/load/stages/{i}/duration"), &s.duration);
                    let target = format!("/load/stages/{i}/target");
                    self.shape_num(&mut out, target, &s.target, Rule::Users);
                }
            }
            plan::Load::ArrivalRate(a) => self.arrival_rate(&mut out, a),
        }
        (out.nums, out.durs)
    }

    fn arrival_rate(&mut self, out: &mut ShapeParams, a: &plan::ArrivalRateLoad) {
        let at = "/load/arrival_rate";
        match (&a.rate, &a.duration, &a.stages) {
            (Some(r), Some(d), None) => {
                self.shape_num(out, format!("{at}/rate"), r, Rule::PositiveRate);
                self.shape_dur(out, format!("{at}/duration"), d);
            }
            (None, None, Some(stages)) if !stages.is_empty() => {
                for (i, s) in stages.iter().enumerate() {
                    self.shape_dur(out, format!("{at}/stages/{i}/duration"), &s.duration);
                    let target = format!("{at}/stages/{i}/target");
                    self.shape_num(out, target, &s.target, Rule::Rate);
                }
            }
            _ => self.error(
                at,
                "give either `rate` and `duration`, or a non-empty `stages` list",
            ),
        }
        self.shape_num(out, format!("{at}/max_users"), &a.max_users, Rule::Users);
        if let Some(s) = &a.start_rate {
            self.shape_num(out, format!("{at}/start_rate"), s, Rule::Rate);
        }
    }

    /// A load-shape number: a literal held to `rule` now, or a `{{ expression }}` compiled.
    fn shape_num(&mut self, out: &mut ShapeParams, pointer: String, n: &plan::Num, rule: Rule) {
        match n {
            plan::Num::Literal(v) => {
                if let Err(e) = rule.check(*v) {
                    let key = pointer.rsplit('/').next().unwrap_or_default();
                    self.error(&pointer, format!("{key} {e}"));
                }
            }
            plan::Num::Template(t) => {
                let inner = t
                    .trim()
                    .strip_prefix("{{")
                    .and_then(|s| s.strip_suffix("}}"))
                    .map(str::trim);
                match inner {
                    Some(expr) => {
                        let e = self.compiler.expr(&pointer, expr, false);
                        out.nums.insert(pointer, e);
                    }
                    None => self.error(
                        &pointer,
                        format!("`{t}` is neither a number nor a `{{{{ expression }}}}`"),
                    ),
                }
            }
        }
    }

    /// A load-shape duration: a literal checked now, or a template compiled.
    fn shape_dur(&mut self, out: &mut ShapeParams, pointer: String, d: &str) {
        if template::is_template(d) {
            let t = self.compiler.text(&pointer, d, false);
            out.durs.insert(pointer, t);
        } else {
            self.duration(&pointer, d, true);
        }
    }
}

/// The templated parameters of a load shape, by JSON pointer.
#[derive(Default)]
struct ShapeParams {
    nums: BTreeMap<String, Expr>,
    durs: BTreeMap<String, Text>,
}
