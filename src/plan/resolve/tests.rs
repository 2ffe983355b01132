//! Tests of `resolve`.
use super::*;
use crate::plan::compile::{StepKind, load_str};
use crate::plan::env::EnvSources;

/// Every duration setting of the plan, each from its own variable.
const PLAN: &str = r#"name: every-duration
env:
  A: { type: string }
  B: { type: duration }
  C: { type: string }
  D: { type: string }
  E: { type: string }
  F: { type: string }
  G: { type: string }
  H: { type: string }
  I: { type: string }
  J: { type: string }
  K: { type: string }
  L: { type: string }
target: { base_url: "http://127.0.0.1:9", timeout: "{{ env.A }}", connect_timeout: "{{ env.B }}" }
load: { constant: { users: 1, duration: 1s } }
pools: { p: {} }
events: { source: webhook }
watch: [{ name: w, url: "http://127.0.0.1:9", interval: "{{ env.C }}" }]
user:
  tasks:
    - request: { method: GET, path: /x, timeout: "{{ env.D }}" }
      poll: { until: "true", interval: "{{ env.E }}", timeout: "{{ env.F }}" }
      on_error: { retry: 1, delay: "{{ env.G }}" }
    - sleep: "{{ env.H }}"
    - take: { pool: p, as: v, timeout: "{{ env.I }}" }
    - wait_event: { topic: ping, wallet: w, timeout: "{{ env.J }}" }
  think: "{{ env.K }}"
thresholds:
  - { p99: "{{ env.L }}" }
"#;

fn resolved(values: &[(&str, &str)]) -> Result<(CompiledPlan, Resolved), Vec<Diagnostic>> {
    let plan = load_str("p.yaml", PLAN.to_string()).map_err(|f| f.diagnostics)?;
    let mut sources = EnvSources::default();
    for (k, v) in values {
        sources.set.insert(k.to_string(), v.to_string());
    }
    let env = crate::plan::env::resolve(&plan.plan.env, &sources).unwrap();
    let id = RunIdentity {
        id: "r".into(),
        seed: 0,
        shard_index: 0,
        shard_count: 1,
        webhook_url: String::new(),
    };
    let r = resolve(&plan, &env, &id)?;
    Ok((plan, r))
}

const GOOD: [(&str, &str); 12] = [
    ("A", "1s"),
    ("B", "2s"),
    ("C", "3s"),
    ("D", "4s"),
    ("E", "5s"),
    ("F", "6s"),
    ("G", "7s"),
    ("H", "8s"),
    ("I", "9s"),
    ("J", "10s"),
    ("K", "11s..12s"),
    ("L", "13s"),
];

#[test]
fn every_templated_duration_is_rendered_once_variables_are_known() {
    let (plan, r) = resolved(&GOOD).unwrap();
    let s = |n: u64| Duration::from_secs(n);
    let d = |x| r.durations.get(x);
    assert_eq!((r.target.timeout, r.target.connect_timeout), (s(1), s(2)));
    assert_eq!(r.watch[0].interval, s(3));
    let steps = &plan.tasks[0].steps;
    let StepKind::Request(rq) = &steps[0].kind else {
        panic!("a request")
    };
    let poll = rq.poll.as_ref().unwrap();
    assert_eq!(
        (rq.timeout.map(d), d(poll.interval), d(poll.timeout)),
        (Some(s(4)), s(5), s(6))
    );
    assert_eq!(d(steps[0].retry_delay), s(7));
    let StepKind::Sleep(sleep) = steps[1].kind else {
        panic!("a sleep")
    };
    let StepKind::Take { timeout: take, .. } = steps[2].kind else {
        panic!("a take")
    };
    let StepKind::WaitEvent(wait) = &steps[3].kind else {
        panic!("a wait")
    };
    assert_eq!((d(sleep), d(take), d(wait.timeout)), (s(8), s(9), s(10)));
    assert_eq!(r.think, Some((s(11), s(12))));
    assert_eq!(r.thresholds[0].p99.as_deref(), Some("13s"));
}

#[test]
fn a_bad_templated_duration_is_an_error_at_its_place() {
    // B is typed `duration`, so the env check refuses it before; the others are strings.
    for (var, bad, line, message) in [
        (
            "A",
            "0s",
            15,
            "timeout `{{ env.A }}` is `0s`, which must be longer than zero",
        ),
        (
            "C",
            "0s",
            19,
            "interval `{{ env.C }}` is `0s`, which must be longer than zero",
        ),
        (
            "D",
            "later",
            22,
            "timeout `{{ env.D }}` is `later`, not a duration",
        ),
        (
            "E",
            "0ms",
            23,
            "interval `{{ env.E }}` is `0ms`, which must be longer than zero",
        ),
        (
            "G",
            "1 s",
            24,
            "delay `{{ env.G }}` is `1 s`, not a duration",
        ),
        (
            "H",
            "-1s",
            25,
            "sleep `{{ env.H }}` is `-1s`, not a duration",
        ),
        (
            "I",
            "0s",
            26,
            "timeout `{{ env.I }}` is `0s`, which must be longer than zero",
        ),
        ("J", "x", 27, "timeout `{{ env.J }}` is `x`, not a duration"),
        ("K", "2s..1s", 28, "think range `2s..1s` goes backwards"),
        (
            "L",
            "fast",
            30,
            "p99 `{{ env.L }}` is `fast`, not a duration",
        ),
    ] {
        let mut values = GOOD.to_vec();
        values.retain(|(k, _)| *k != var);
        values.push((var, bad));
        let errors = resolved(&values).map(|_| ()).unwrap_err();
        assert_eq!(errors.len(), 1, "{var}={bad}: {errors:?}");
        assert_eq!(errors[0].line, line, "{var}={bad}: {errors:?}");
        assert!(
            errors[0].message.contains(message),
            "{var}={bad}: {}",
            errors[0].message
        );
    }
}
