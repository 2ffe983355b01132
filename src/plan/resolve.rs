//! Resolving a compiled plan against its variables: the load shape, the target and
//! the values shared by all users. Pure: no I/O; errors point at the plan's lines.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use minijinja::Value;

use crate::plan::compile::CompiledPlan;
use crate::plan::diagnostic::Diagnostic;
use crate::plan::env::ResolvedEnv;
use crate::plan::shape::{Segment, Shape};
use crate::plan::template::{Globals, RngCell, Scope};
use crate::plan::{Load, Num};

/// A plan with its variables filled in.
#[derive(Debug)]
pub struct Resolved {
    pub shape: Shape,
    pub globals: Arc<Globals>,
    pub base_url: String,
    pub headers: Vec<(String, String)>,
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

pub fn resolve(
    plan: &CompiledPlan,
    env: &ResolvedEnv,
    id: &RunIdentity,
) -> Result<Resolved, Vec<Diagnostic>> {
    let mut globals = Globals {
        env: Value::from_object(env.values.clone()),
        run: crate::plan::template::to_value(serde_json::json!({"id": id.id, "seed": id.seed})),
        shard: crate::plan::template::to_value(
            serde_json::json!({"index": id.shard_index, "count": id.shard_count}),
        ),
        webhook_url: Value::from(id.webhook_url.as_str()),
        vars: BTreeMap::new(),
    };
    let mut errors = Vec::new();
    let err = |errors: &mut Vec<Diagnostic>, pointer: &str, msg: String| {
        errors.push(Diagnostic::new(&plan.file, plan.spans.value(pointer), msg));
    };
    // Plan vars may use env and earlier vars.
    for (name, t) in &plan.vars {
        let scope = plan_scope(
            &Arc::new(Globals {
                vars: globals.vars.clone(),
                ..clone_globals(&globals)
            }),
            id.seed,
        );
        match plan.templates.render_json(t, &scope) {
            Ok(v) => {
                globals
                    .vars
                    .insert(name.clone(), crate::plan::template::to_value(&v));
            }
            Err(e) => err(
                &mut errors,
                &format!("/vars/{name}"),
                crate::plan::template::describe(&e),
            ),
        }
    }
    let globals = Arc::new(globals);
    let scope = plan_scope(&globals, id.seed);
    let base_url = plan
        .templates
        .render(&plan.target.base_url, &scope)
        .unwrap_or_else(|e| {
            err(
                &mut errors,
                "/target/base_url",
                crate::plan::template::describe(&e),
            );
            String::new()
        });
    if !errors.is_empty() {
        return Err(errors);
    }
    if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
        err(
            &mut errors,
            "/target/base_url",
            format!("base_url `{base_url}` must start with http:// or https://"),
        );
    }
    let mut headers = Vec::new();
    for (k, t) in &plan.target.headers {
        match plan.templates.render(t, &scope) {
            Ok(v) if v.is_empty() => {}
            Ok(v) => headers.push((k.clone(), v)),
            Err(e) => err(
                &mut errors,
                &format!("/target/headers/{k}"),
                crate::plan::template::describe(&e),
            ),
        }
    }
    let shape = shape(plan, &scope, &mut errors);
    if errors.is_empty() {
        Ok(Resolved {
            shape,
            globals,
            base_url: base_url.trim_end_matches('/').to_string(),
            headers,
        })
    } else {
        Err(errors)
    }
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
                .map_or(0.5, |p| cx.positive("/load/steps/spawn_pct", p)),
        },
        Load::Constant(c) => Shape::Constant {
            users: cx.count("/load/constant/users", &c.users),
            duration: cx.dur("/load/constant/duration", &c.duration),
            spawn_rate: c
                .spawn_rate
                .as_ref()
                .map(|r| cx.positive("/load/constant/spawn_rate", r)),
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
                    let rate = cx.positive("/load/arrival_rate/rate", r);
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
                        target: cx
                            .number(&format!("/load/arrival_rate/stages/{i}/target"), &s.target)
                            .max(0.0),
                    })
                    .collect(),
                _ => Vec::new(),
            };
            let start_rate = match (&a.rate, &a.start_rate) {
                (Some(_), _) => stages.first().map_or(0.0, |s| s.target),
                (None, Some(s)) => cx.number("/load/arrival_rate/start_rate", s).max(0.0),
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
                        self.fail(pointer, crate::plan::template::describe(&e));
                        0.0
                    }
                }
            }
        }
    }

    fn positive(&mut self, pointer: &str, n: &Num) -> f64 {
        let v = self.number(pointer, n);
        if v <= 0.0 {
            self.fail(pointer, format!("must be above 0, got {v}"));
        }
        v
    }

    fn count(&mut self, pointer: &str, n: &Num) -> u64 {
        let v = self.number(pointer, n);
        if v < 0.0 || v.fract() != 0.0 {
            self.fail(pointer, format!("must be a whole number of users, got {v}"));
            return 0;
        }
        v as u64
    }

    fn dur(&mut self, pointer: &str, text: &str) -> Duration {
        let rendered = match self.plan.load_texts.get(pointer) {
            Some(t) => match self.plan.templates.render(t, self.scope) {
                Ok(s) => s,
                Err(e) => {
                    self.fail(pointer, crate::plan::template::describe(&e));
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
