//! `acaload explain`: the resolved shape as a timeline and the steps as the first user
//! would send them, rendered with placeholders. Sends nothing; secrets show as `***`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use minijinja::Value;

use crate::plan::compile::{CompiledPlan, CompiledRequest, CompiledStep, StepKind};
use crate::plan::resolve::{Resolved, describe_shape};
use crate::plan::scope::{RngCell, Scope};
use crate::plan::shape::Shape;
use crate::plan::template::Text;

/// Renders the explanation of a resolved plan.
pub fn explain(plan: &CompiledPlan, resolved: &Resolved, defined: &[String]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "plan: {}", plan.plan.name);
    if let Some(d) = &plan.plan.description {
        let _ = writeln!(out, "  {}", d.trim().replace('\n', "\n  "));
    }
    let _ = writeln!(out, "target: {}", resolved.base_url);
    for (k, _) in &resolved.headers {
        let _ = writeln!(out, "  header {k}: ***");
    }
    let _ = writeln!(out, "\nshape: {}", describe_shape(&resolved.shape));
    out.push_str(&timeline(&resolved.shape));
    let vars: BTreeMap<String, Value> = defined
        .iter()
        .map(|n| (n.clone(), Value::from(format!("<{n}>"))))
        .collect();
    let scope = Value::from_object(Scope {
        globals: resolved.globals.clone(),
        user: crate::plan::scope::to_value(serde_json::json!({"index": 0, "id": "<user.id>"})),
        vars: Arc::new(vars),
        response: None,
        event: None,
        rng: Value::from_object(RngCell(Mutex::new(fastrand::Rng::with_seed(0)))),
    });
    let phases: Vec<(String, &[CompiledStep])> =
        std::iter::once(("setup (once per user)".to_string(), plan.setup.as_slice()))
            .chain(plan.tasks.iter().map(|t| {
                let label = if plan.tasks.len() == 1 {
                    "tasks (loop)".to_string()
                } else {
                    format!("task `{}` (weight {})", t.name, t.weight)
                };
                (label, t.steps.as_slice())
            }))
            .chain(std::iter::once((
                "teardown (once, also on stop)".to_string(),
                plan.teardown.as_slice(),
            )))
            .collect();
    if let Some((lo, hi)) = resolved.think {
        let _ = writeln!(
            out,
            "\nthink time between iterations: {}..{}",
            crate::plan::duration::format(lo),
            crate::plan::duration::format(hi)
        );
    }
    for (label, steps) in phases {
        let _ = writeln!(out, "\n{label}:");
        if steps.is_empty() {
            let _ = writeln!(out, "  (none)");
        }
        for (i, step) in steps.iter().enumerate() {
            step_lines(&mut out, plan, resolved, &scope, i + 1, step);
        }
    }
    out
}

fn timeline(shape: &Shape) -> String {
    let mut out = String::new();
    let open = shape.is_open();
    let points = shape.timeline();
    let _ = writeln!(
        out,
        "  {:>8}  {}",
        "time",
        if open { "iterations/s" } else { "target users" }
    );
    for (i, (t, v)) in points.iter().enumerate() {
        let last = i + 1 == points.len();
        let label = crate::plan::duration::format(*t);
        if last && !open {
            let _ = writeln!(out, "  {label:>8}  end");
        } else {
            let _ = writeln!(out, "  {label:>8}  {v}");
        }
    }
    if open {
        let _ = writeln!(
            out,
            "  total iterations: {:.0}, at most {} users at once",
            shape.arrivals_by(shape.duration()),
            shape.peak_users()
        );
    } else {
        let _ = writeln!(out, "  peak users: {}", shape.peak_users());
    }
    out
}

fn render(plan: &CompiledPlan, scope: &Value, t: &Text) -> String {
    plan.templates
        .render(t, scope)
        .unwrap_or_else(|e| format!("<{}>", crate::plan::template::describe(&e)))
}

fn step_lines(
    out: &mut String,
    plan: &CompiledPlan,
    resolved: &Resolved,
    scope: &Value,
    n: usize,
    step: &CompiledStep,
) {
    let _ = write!(out, "  {n}. {}", step.name);
    if let Some(w) = step.when {
        let _ = write!(out, "  [when {}]", plan.templates.source(w));
    }
    out.push('\n');
    match &step.kind {
        StepKind::Request(r) => request_lines(out, plan, resolved, scope, r),
        StepKind::Sleep(d) => {
            let _ = writeln!(
                out,
                "       sleep {}",
                crate::plan::duration::format(resolved.durations.get(*d))
            );
        }
        StepKind::Set(vals) => {
            for (k, v) in vals {
                let val = plan.templates.render_json(v, scope).map_or_else(
                    |e| format!("<{}>", crate::plan::template::describe(&e)),
                    |v| v.to_string(),
                );
                let _ = writeln!(out, "       {k} = {val}");
            }
        }
        StepKind::Offer { pool, .. } => {
            let _ = writeln!(out, "       offer a value to pool `{pool}`");
        }
        StepKind::WaitEvent(w) => {
            let wallet = render(plan, scope, &w.wallet);
            let cond = w.until.map_or("any".to_string(), |u| {
                format!("`{}`", plan.templates.source(u))
            });
            let _ = writeln!(
                out,
                "       wait for a `{}` event of wallet {wallet} with {cond} (give up after {})",
                w.topic,
                crate::plan::duration::format(resolved.durations.get(w.timeout))
            );
            if let Some(c) = &w.clock {
                let _ = writeln!(out, "       latency measured from the send of `{c}`");
            }
        }
        StepKind::Didcomm(d) => {
            let _ = writeln!(out, "       {}", didcomm_line(plan, resolved, scope, d));
        }
        StepKind::Take {
            pool,
            into,
            timeout,
            ..
        } => {
            let _ = writeln!(
                out,
                "       take a value from pool `{pool}` into `{into}` (wait up to {})",
                crate::plan::duration::format(resolved.durations.get(*timeout))
            );
        }
    }
}

/// A request as the first user would send it, with what is checked and captured.
fn request_lines(
    out: &mut String,
    plan: &CompiledPlan,
    resolved: &Resolved,
    scope: &Value,
    r: &CompiledRequest,
) {
    let path = render(plan, scope, &r.path);
    let url = if path.starts_with("http") {
        path
    } else {
        format!("{}{}", resolved.base_url, path)
    };
    let query: Vec<String> = r
        .query
        .iter()
        .map(|(k, v)| format!("{k}={}", render(plan, scope, v)))
        .collect();
    let q = if query.is_empty() {
        String::new()
    } else {
        format!("?{}", query.join("&"))
    };
    let _ = writeln!(out, "       {} {url}{q}", r.method.as_str());
    if r.bearer.is_some() {
        let _ = writeln!(out, "       Authorization: Bearer ***");
    }
    for (k, v) in &r.headers {
        let _ = writeln!(out, "       {k}: {}", render(plan, scope, v));
    }
    if let Some(j) = &r.json {
        let body = plan.templates.render_json(j, scope).map_or_else(
            |e| format!("<{}>", crate::plan::template::describe(&e)),
            |v| v.to_string(),
        );
        let _ = writeln!(out, "       json: {}", redact_json_keys(&body));
    }
    if let Some(codes) = &r.status {
        let _ = writeln!(
            out,
            "       expect status {}",
            codes
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(" or ")
        );
    }
    for e in &r.that {
        let _ = writeln!(out, "       check {}", plan.templates.source(*e));
    }
    for c in &r.captures {
        let _ = writeln!(
            out,
            "       capture {} = {} ({:?})",
            c.name, c.path, c.select
        );
    }
    if let Some(p) = &r.poll {
        let _ = writeln!(
            out,
            "       poll every {} until {} (give up after {})",
            crate::plan::duration::format(resolved.durations.get(p.interval)),
            plan.templates.source(p.until),
            crate::plan::duration::format(resolved.durations.get(p.timeout))
        );
    }
}

/// What an edge-agent step does, in one line.
fn didcomm_line(
    plan: &CompiledPlan,
    resolved: &Resolved,
    scope: &Value,
    d: &crate::plan::compile::CompiledDidcomm,
) -> String {
    use crate::plan::compile::CompiledDidcomm as D;
    let t =
        |d: &crate::plan::compile::Dur| crate::plan::duration::format(resolved.durations.get(*d));
    match d {
        D::Connect {
            websocket, timeout, ..
        } => format!(
            "open a WebSocket to {} and connect to the mediator (DID Exchange 1.1, did:peer:4; give up after {})",
            render(plan, scope, websocket),
            t(timeout)
        ),
        D::RequestMediation { timeout } => format!(
            "mediate-request, wait for the grant (give up after {})",
            t(timeout)
        ),
        D::Invite { into, .. } => format!(
            "new invitation key, keylist-update add, invitation routed through the mediator into `{into}`"
        ),
        D::AcceptInvitation { timeout, .. } => format!(
            "new key, keylist-update add, DID Exchange with the inviter through the mediator (give up after {})",
            t(timeout)
        ),
        D::AwaitConnection { timeout } => format!(
            "wait for the invitee's DID Exchange request, respond, wait for complete (give up after {})",
            t(timeout)
        ),
        D::Message { .. } => {
            "basic message to the peer: authcrypt, forward, POST to the mediator".into()
        }
        D::Delivered { timeout } => format!(
            "wait until the messages sent since the last wait reached the peer's socket (lost after {})",
            t(timeout)
        ),
        D::Ping { to, timeout } => format!(
            "trust ping with a response to the {} (give up after {})",
            match to {
                crate::plan::PingTo::Peer => "peer, through the mediator",
                crate::plan::PingTo::Mediator => "mediator, over the own socket",
            },
            t(timeout)
        ),
        D::Disconnect { .. } => "keylist-update remove every key, close the socket".into(),
    }
}

/// Masks values of keys that hold secrets in ACA-Py request bodies.
pub fn redact_json_keys(body: &str) -> String {
    let Ok(mut v) = serde_json::from_str::<serde_json::Value>(body) else {
        return body.to_string();
    };
    crate::results::redact::mask_secret_keys(&mut v);
    v.to_string()
}
