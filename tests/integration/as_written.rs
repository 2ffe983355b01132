//! A plan that validates runs exactly as written (issue 11, points 1 and 2): every templated
//! setting is rendered once the variables are known and held to the rule of its literal
//! form, numbers have real bounds that `validate` knows, and no plan that loads makes the
//! run panic — checked on generated plans, run for a moment against the local stub.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{RngAlgorithm, TestRng, TestRunner};
use serde_json::Value;

use super::engine::stub;

/// A folder of its own for each test (and case), removed at the end.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let dir =
            std::env::temp_dir().join(format!("acaload-as-written-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }

    fn plan(&self, text: &str) -> PathBuf {
        let p = self.0.join("p.yaml");
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Run {
    code: Option<i32>,
    stderr: String,
    results: Option<Value>,
}

fn acaload(args: &[&str], sets: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_acaload"));
    cmd.args(args);
    for (k, v) in sets {
        cmd.arg("--set").arg(format!("{k}={v}"));
    }
    cmd
}

/// `acaload run PLAN -q --out R --set …` to the end.
fn run(dir: &Dir, plan: &Path, sets: &[(&str, &str)]) -> Run {
    let out = dir.0.join("r.json");
    let _ = std::fs::remove_file(&out);
    let p = plan.to_str().unwrap();
    let o = acaload(&["run", p, "-q", "--out", out.to_str().unwrap()], sets)
        .output()
        .unwrap();
    Run {
        code: o.status.code(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        results: read_results(&out),
    }
}

fn read_results(path: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(serde_json::from_str(&text).expect("the results file is JSON"))
}

/// The line (1-based) of the first line of `text` that contains `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("`{needle}` is in the plan"))
        + 1
}

/// `LINE:COL` of `value` on the first line of `text` that contains `needle`.
fn place(text: &str, needle: &str, value: &str) -> String {
    let line = line_of(text, needle);
    let col = text.lines().nth(line - 1).unwrap().find(value).unwrap() + 1;
    format!("{line}:{col}")
}

fn stat<'a>(results: &'a Value, name: &str, kind: &str) -> Option<&'a Value> {
    results["stats"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == name && s["kind"] == kind)
}

/// Every duration outside the load shape, and a threshold limit, as templates.
const TEMPLATED: &str = r#"name: as-written
env:
  U: { type: string }
  T: { type: string }
  POLL: { type: string }
  SLEEP: { type: string }
  THINK: { type: string }
  P95: { type: string }
target:
  base_url: "{{ env.U }}"
  timeout: "{{ env.T }}"
  connect_timeout: "{{ env.T }}"
load: { constant: { users: 2, duration: 2s } }
user:
  setup:
    - name: wait granted
      request: { method: GET, path: /state }
      poll: { until: "body.state == 'granted'", interval: "{{ env.POLL }}", timeout: "{{ env.T }}" }
  tasks:
    - name: ping
      request: { method: GET, path: /delay, timeout: "{{ env.T }}" }
    - sleep: "{{ env.SLEEP }}"
  think: "{{ env.THINK }}"
thresholds:
  - { step: ping, p95: "{{ env.P95 }}" }
"#;

/// Before: every templated duration here was 0 s — each request failed at once, polls gave
/// up at once, users looped without pause — and the templated threshold was dropped, so
/// the run exited 0. Now the stub's 200 ms answers fit the 1 s timeout, the pauses bound
/// the iterations, and the threshold is judged (and fails when it cannot hold).
#[test]
fn templated_durations_and_thresholds_hold_at_run_time() {
    let (url, counts) = stub();
    let dir = Dir::new("templated");
    let plan = dir.plan(TEMPLATED);
    let sets = |p95| {
        [
            ("U", url.as_str()),
            ("T", "1s"),
            ("POLL", "50ms"),
            ("SLEEP", "300ms"),
            ("THINK", "300ms"),
            ("P95", p95),
        ]
    };
    let r = run(&dir, &plan, &sets("5s"));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let results = r.results.unwrap();
    assert_eq!(results["total"]["failures"], 0, "{:#}", results["failures"]);
    // Each iteration takes at least 200 ms + 300 ms sleep + 300 ms think: at most 3 per
    // user in 2 s (without the pauses it was hundreds).
    let pings = stat(&results, "ping", "http").unwrap()["count"]
        .as_u64()
        .unwrap();
    assert!((2..=6).contains(&pings), "{pings} pings");
    assert_eq!(counts.lock().unwrap()["GET /delay"] as u64, pings);
    let state = stat(&results, "wait granted", "poll").unwrap();
    assert_eq!(
        (state["count"].as_u64(), state["failures"].as_u64()),
        (Some(2), Some(0))
    );
    let verdicts = results["thresholds"].as_array().unwrap();
    assert_eq!(verdicts.len(), 1, "{verdicts:#?}");
    assert_eq!(verdicts[0]["label"], "ping p95");
    assert_eq!(verdicts[0]["limit"], "<= 5s");
    assert_eq!(verdicts[0]["passed"], true);

    // The same plan with a limit no 200 ms answer can meet: judged, failed, exit 1.
    let r = run(&dir, &plan, &sets("1ms"));
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    let verdicts = r.results.unwrap()["thresholds"].clone();
    assert_eq!(verdicts[0]["label"], "ping p95");
    assert_eq!(verdicts[0]["limit"], "<= 1ms");
    assert_eq!(verdicts[0]["passed"], false);
}

/// A templated value that is not what its literal form must be is refused like the
/// literal: exit 2, every problem at its `file:line:col`, before anything is sent.
#[test]
fn a_bad_templated_value_is_refused_at_its_place_before_anything_is_sent() {
    let (url, counts) = stub();
    let dir = Dir::new("refused");
    let plan = dir.plan(TEMPLATED);
    let file = plan.to_str().unwrap();
    let at = |needle: &str, value: &str| format!("{file}:{}: ", place(TEMPLATED, needle, value));
    let t = "\"{{ env.T }}\"";
    // Each: the variables, and every finding expected.
    type Case<'a> = ([(&'a str, &'a str); 5], Vec<String>);
    let cases: Vec<Case> = vec![
        (
            [
                ("T", "abc"),
                ("POLL", "50ms"),
                ("SLEEP", "1s"),
                ("THINK", "1s"),
                ("P95", "1s"),
            ],
            vec![
                format!(
                    "{}timeout `{{{{ env.T }}}}` is `abc`, not a duration",
                    at("  timeout:", t)
                ),
                format!(
                    "{}connect_timeout `{{{{ env.T }}}}` is `abc`, not a duration",
                    at("connect_timeout", t)
                ),
                format!(
                    "{}timeout `{{{{ env.T }}}}` is `abc`, not a duration",
                    at("interval:", t)
                ),
                format!(
                    "{}timeout `{{{{ env.T }}}}` is `abc`, not a duration",
                    at("path: /delay", t)
                ),
            ],
        ),
        (
            [
                ("T", "0s"),
                ("POLL", "0s"),
                ("SLEEP", "1s"),
                ("THINK", "1s"),
                ("P95", "1s"),
            ],
            [
                ("  timeout:", "timeout", t),
                ("connect_timeout", "connect_timeout", t),
                ("interval:", "interval", "\"{{ env.POLL"),
                ("interval:", "timeout", t),
                ("path: /delay", "timeout", t),
            ]
            .iter()
            .map(|(line, key, value)| {
                let var = if *key == "interval" { "POLL" } else { "T" };
                format!(
                    "{}{key} `{{{{ env.{var} }}}}` is `0s`, which must be longer than zero",
                    at(line, value)
                )
            })
            .collect(),
        ),
        (
            [
                ("T", "1s"),
                ("POLL", "1s"),
                ("SLEEP", "soon"),
                ("THINK", "2s..1s"),
                ("P95", "fast"),
            ],
            vec![
                format!(
                    "{}sleep `{{{{ env.SLEEP }}}}` is `soon`, not a duration",
                    at("sleep:", "\"")
                ),
                format!(
                    "{}think `{{{{ env.THINK }}}}` is `2s..1s`: think range `2s..1s` goes backwards",
                    at("think:", "\"")
                ),
                format!(
                    "{}p95 `{{{{ env.P95 }}}}` is `fast`, not a duration",
                    at("p95:", "\"{{")
                ),
            ],
        ),
    ];
    for (values, expected) in cases {
        let mut sets = vec![("U", url.as_str())];
        sets.extend(values);
        let r = run(&dir, &plan, &sets);
        assert_eq!(r.code, Some(2), "{values:?}: {}", r.stderr);
        for e in &expected {
            assert!(
                r.stderr.contains(e.as_str()),
                "{values:?}: expected `{e}` in:\n{}",
                r.stderr
            );
        }
        let located = r.stderr.lines().filter(|l| l.starts_with(file)).count();
        assert_eq!(located, expected.len(), "{values:?}:\n{}", r.stderr);
        assert!(r.results.is_none(), "a refused plan does not run");
    }
    assert!(
        counts.lock().unwrap().is_empty(),
        "nothing was sent: {:?}",
        counts.lock().unwrap()
    );
}

/// Plans `validate` accepted and that then panicked at run time (exit 101, no results):
/// their literal forms are now refused by `validate`, their templated forms by `run`, each
/// at its place.
#[test]
fn numbers_out_of_their_real_bounds_are_refused_at_their_place() {
    let dir = Dir::new("bounds");
    let base = "name: bounds\nenv:\n  V: { type: float }\n  D: { type: string }\ntarget:\n  base_url: http://127.0.0.1:9\n";
    let tasks = "user:\n  tasks:\n    - request: { method: GET, path: /x }\n";
    let cases: Vec<(String, &str, &str)> = vec![
        (
            format!(
                "{base}load: {{ steps: {{ step_time: 1s, users_per_step: 1, user_limit: 2, time_limit: 1s, spawn_pct: 1e-30 }} }}\n{tasks}"
            ),
            "spawn_pct: 1e-30",
            "1e-30 is less than the minimum of 1e-6",
        ),
        (
            format!(
                "{base}  max_connections: 3000000000000000000\nload: {{ constant: {{ users: 1, duration: 1s }} }}\n{tasks}"
            ),
            "3000000000000000000",
            "3000000000000000000 is greater than the maximum of 1000000",
        ),
        (
            format!(
                "{base}load: {{ constant: {{ users: 1, duration: 1s }} }}\nwatch:\n  - {{ name: agent, url: http://127.0.0.1:9, interval: 0s }}\n{tasks}"
            ),
            "interval: 0s",
            "interval `0s` must be longer than zero",
        ),
        (
            format!("{base}load: {{ constant: {{ users: 1.5, duration: 1s }} }}\n{tasks}"),
            "users: 1.5",
            "users must be a whole number of users from 0 to 1000000, got 1.5",
        ),
        (
            format!(
                "{base}load: {{ constant: {{ users: 1, duration: 1s }} }}\nuser:\n  tasks:\n    choose:\n      - {{ name: a, weight: 4294967295, steps: [{{ sleep: 1s }}] }}\n      - {{ name: b, weight: 4294967295, steps: [{{ sleep: 1s }}] }}\n"
            ),
            "name: a",
            "4294967295 is greater than the maximum of 1000000",
        ),
    ];
    for (text, needle, message) in &cases {
        let plan = dir.plan(text);
        let file = plan.to_str().unwrap();
        let o = acaload(&["validate", file], &[]).output().unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{text}\n{stderr}");
        let prefix = format!("{file}:{}:", line_of(text, needle));
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with(&prefix) && l.contains(message)),
            "expected `{prefix}…{message}` in:\n{stderr}"
        );
    }
    // The same numbers from variables: refused by `run` at the same places, nothing sent.
    let templated = [
        (
            format!(
                "{base}load: {{ steps: {{ step_time: 1s, users_per_step: 1, user_limit: 2, time_limit: 1s, spawn_pct: \"{{{{ env.V }}}}\" }} }}\n{tasks}"
            ),
            ("V", "1e-30"),
            "spawn_pct: \"",
            "spawn_pct must be from 0.000001 to 1000000, got 1e-30",
        ),
        (
            format!(
                "{base}load: {{ constant: {{ users: 1, duration: 1s }} }}\nwatch:\n  - {{ name: agent, url: http://127.0.0.1:9, interval: \"{{{{ env.D }}}}\" }}\n{tasks}"
            ),
            ("D", "0s"),
            "interval: \"",
            "interval `{{ env.D }}` is `0s`, which must be longer than zero",
        ),
    ];
    for (text, set, needle, message) in &templated {
        let plan = dir.plan(text);
        let file = plan.to_str().unwrap();
        let other = if set.0 == "V" {
            ("D", "1s")
        } else {
            ("V", "1")
        };
        let r = run(&dir, &plan, &[*set, other]);
        assert_eq!(r.code, Some(2), "{text}\n{}", r.stderr);
        let prefix = format!("{file}:{}:", line_of(text, needle));
        assert!(
            r.stderr
                .lines()
                .any(|l| l.starts_with(&prefix) && l.contains(message)),
            "expected `{prefix}…{message}` in:\n{}",
            r.stderr
        );
    }
}

// ---------------------------------------------------------------------------------------
// Generated plans: whatever numbers and durations a plan holds, literal or from variables,
// it is refused at its place or it runs without a panic and writes its results.

/// A value of the plan: written as it is, or read from a variable set to the same text.
#[derive(Debug, Clone)]
struct Slot {
    text: &'static str,
    templated: bool,
}

/// Mostly values inside the bounds, so that most plans run. A value outside them is rare
/// when written (it only stops `validate`) and less rare from a variable: that is the
/// value `run` must refuse at its place as `validate` refuses its literal form.
fn slot(
    inside: &'static [&'static str],
    outside: &'static [&'static str],
) -> impl Strategy<Value = Slot> {
    any::<bool>().prop_flat_map(move |templated| {
        let odds = if templated { 20 } else { 80 };
        (pick((inside, outside), odds), Just(templated))
            .prop_map(|(text, templated)| Slot { text, templated })
    })
}

/// One of `inside`, or one of `outside` once in `odds`.
fn pick(
    (inside, outside): (&'static [&'static str], &'static [&'static str]),
    odds: u32,
) -> impl Strategy<Value = &'static str> {
    prop_oneof![odds - 1 => prop::sample::select(inside), 1 => prop::sample::select(outside)]
}

/// Users: small (the stub is a thread per connection); past the bounds, anything.
const USERS: (&[&str], &[&str]) = (
    &["0", "1", "2", "3"],
    &["1.5", "-1", "2000000", "3000000000000000000", "1e300"],
);
/// Rates and spawn rates (0 is inside for some, outside for others).
const RATES: (&[&str], &[&str]) = (
    &["0.000001", "0.5", "20", "1000", "1000000"],
    &["0", "1e-30", "-1", "2000000", "1e300"],
);
/// Durations (zero is outside for timeouts and intervals, inside for the rest).
const DURATIONS: (&[&str], &[&str]) = (
    &["1ms", "100ms", "1s", "30s", "1000000000s"],
    &["0s", "abc", "-1s", "2000000000s"],
);
const CONNECTIONS: (&[&str], &[&str]) = (&["1", "2", "1000000"], &["0", "3000000000000000000"]);
const WEIGHTS: (&[&str], &[&str]) = (&["0", "1", "1000000"], &["4294967295"]);
const THINKS: (&[&str], &[&str]) = (
    &["0s", "10ms", "0s..20ms", "1000000000s"],
    &["1s..1ms", "x"],
);

/// The pieces of one generated plan.
#[derive(Debug, Clone)]
struct Generated {
    load: usize,
    n: [Slot; 4],
    d: [Slot; 10],
    think: Slot,
    max_connections: Option<&'static str>,
    weights: Option<(&'static str, &'static str)>,
}

fn generated() -> impl Strategy<Value = Generated> {
    let d = || slot(DURATIONS.0, DURATIONS.1);
    let n = [
        slot(USERS.0, USERS.1),
        slot(USERS.0, USERS.1),
        slot(RATES.0, RATES.1),
        slot(RATES.0, RATES.1),
    ];
    let d = [d(), d(), d(), d(), d(), d(), d(), d(), d(), d()];
    (
        0usize..5,
        n,
        d,
        slot(THINKS.0, THINKS.1),
        prop::option::of(pick(CONNECTIONS, 40)),
        prop::option::of((pick(WEIGHTS, 40), pick(WEIGHTS, 40))),
    )
        .prop_map(|(load, n, d, think, max_connections, weights)| Generated {
            load,
            n,
            d,
            think,
            max_connections,
            weights,
        })
}

impl Generated {
    /// The plan text, with every slot templated as generated (`literal`: none), and the
    /// variables it reads.
    fn render(&self, literal: bool) -> (String, Vec<(String, String)>) {
        let mut sets = Vec::new();
        let mut put = |name: String, s: &Slot, quoted_literal: bool| {
            if s.templated && !literal {
                sets.push((name.clone(), s.text.to_string()));
                format!("\"{{{{ env.{name} }}}}\"")
            } else if quoted_literal {
                format!("\"{}\"", s.text)
            } else {
                s.text.to_string()
            }
        };
        let n: Vec<String> = self
            .n
            .iter()
            .enumerate()
            .map(|(i, s)| put(format!("N{i}"), s, false))
            .collect();
        let d: Vec<String> = self
            .d
            .iter()
            .enumerate()
            .map(|(i, s)| put(format!("D{i}"), s, true))
            .collect();
        let think = put("THINK".into(), &self.think, true);
        let load = match self.load {
            0 => format!(
                "steps: {{ step_time: {}, users_per_step: {}, user_limit: {}, time_limit: {}, spawn_pct: {} }}",
                d[0], n[0], n[1], d[1], n[2]
            ),
            1 => format!(
                "constant: {{ users: {}, duration: {}, spawn_rate: {} }}",
                n[0], d[0], n[2]
            ),
            2 => format!(
                "stages: [{{ duration: {}, target: {} }}, {{ duration: {}, target: {} }}]",
                d[0], n[0], d[1], n[1]
            ),
            3 => format!(
                "arrival_rate: {{ rate: {}, duration: {}, max_users: {} }}",
                n[2], d[0], n[0]
            ),
            _ => format!(
                "arrival_rate: {{ start_rate: {}, stages: [{{ duration: {}, target: {} }}], max_users: {} }}",
                n[2], d[0], n[3], n[1]
            ),
        };
        let mut env = String::from("  U: { type: string }\n");
        for (name, _) in &sets {
            let kind = if name.starts_with('N') {
                "float"
            } else {
                "string"
            };
            env.push_str(&format!("  {name}: {{ type: {kind} }}\n"));
        }
        let max_connections = self
            .max_connections
            .map(|m| format!("  max_connections: {m}\n"))
            .unwrap_or_default();
        let steps = format!(
            "      - name: ping\n        request: {{ method: GET, path: /delay, timeout: {} }}\n        on_error: {{ retry: 1, delay: {}, then: continue }}\n      - name: poll\n        request: {{ method: GET, path: /state }}\n        poll: {{ until: \"body.state == 'granted'\", interval: {}, timeout: {} }}\n      - sleep: {}\n",
            d[2], d[3], d[4], d[5], d[6]
        );
        let tasks = match self.weights {
            None => format!("  tasks:\n{}", steps.replace("      ", "    ")),
            Some((a, b)) => format!(
                "  tasks:\n    choose:\n      - name: a\n        weight: {a}\n        steps:\n{}      - name: b\n        weight: {b}\n        steps:\n          - sleep: 1ms\n",
                steps.replace("      ", "          ")
            ),
        };
        let text = format!(
            "name: generated\nenv:\n{env}target:\n  base_url: \"{{{{ env.U }}}}\"\n  timeout: {}\n  connect_timeout: {}\n{max_connections}load:\n  {load}\nwatch:\n  - {{ name: stub, url: \"{{{{ env.U }}}}\", interval: {} }}\nuser:\n{tasks}  think: {think}\nthresholds:\n  - {{ step: ping, p95: {} }}\n  - error_rate: 1.0\n",
            d[7], d[8], d[9], d[2]
        );
        (text, sets)
    }
}

/// Runs a plan for a moment: a graceful stop after `moment`, a hard stop 3 s later; it
/// must end within 5 s of that.
fn run_for_a_moment(plan: &Path, out: &Path, sets: &[(String, String)], moment: Duration) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_acaload"));
    cmd.args([
        "run",
        plan.to_str().unwrap(),
        "-q",
        "--out",
        out.to_str().unwrap(),
    ]);
    for (k, v) in sets {
        cmd.arg("--set").arg(format!("{k}={v}"));
    }
    let stderr_path = out.with_extension("stderr");
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut signals = 0;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        let due = match signals {
            0 => moment,
            1 => moment + Duration::from_secs(3),
            _ => moment + Duration::from_secs(8),
        };
        if started.elapsed() >= due {
            if signals == 2 {
                let _ = child.kill();
                panic!("the run did not stop within 5 s of its second signal");
            }
            Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .unwrap();
            signals += 1;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        code: status.code(),
        stderr: std::fs::read_to_string(&stderr_path).unwrap_or_default(),
        results: read_results(out),
    }
}

/// `acaload explain` of a plan that runs ends at once, without a panic.
fn explain_ends(plan: &Path, sets: &[(String, String)]) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_acaload"));
    cmd.args(["explain", plan.to_str().unwrap()]);
    for (k, v) in sets {
        cmd.arg("--set").arg(format!("{k}={v}"));
    }
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(5) {
            let _ = child.kill();
            panic!("explain {} did not end within 5 s", plan.display());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn config() -> ProptestConfig {
    ProptestConfig {
        // Each case runs the binary for a moment; PROPTEST_CASES=N for a longer hunt.
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(24),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A generated plan is refused at its place (exit 2, `file:line:col`) or runs without a
/// panic and writes its results; and its templated form is refused exactly when its
/// literal form is: a value read from a variable is checked like the literal.
#[test]
fn generated_plans_are_refused_at_their_place_or_run_and_write_results() {
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    let (ran, refused_at_load, refused_at_run) = (
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    );
    let (url, _) = stub();
    // A fixed seed: the counts checked at the end are those of the same cases on every run.
    let rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
    let mut runner = TestRunner::new_with_rng(config(), rng);
    let outcome = runner.run(&generated(), |g| {
        let dir = Dir::new("generated");
        let (literal, _) = g.render(true);
        let literal_loads = acaload::plan::compile::load_str("literal.yaml", literal).is_ok();
        let (text, mut sets) = g.render(false);
        let plan = dir.plan(&text);
        if let Err(failure) = acaload::plan::compile::load_str("p.yaml", text.clone()) {
            // Only literals fail to load, and they are the same in both forms.
            prop_assert!(
                !literal_loads,
                "the templated form failed to load:\n{text}\n{}",
                failure.render()
            );
            refused_at_load.fetch_add(1, Relaxed);
            return Ok(());
        }
        sets.push(("U".into(), url.clone()));
        let r = run_for_a_moment(
            &plan,
            &dir.0.join("r.json"),
            &sets,
            Duration::from_millis(400),
        );
        let file = plan.to_str().unwrap();
        prop_assert!(
            r.code != Some(101) && !r.stderr.contains("panicked"),
            "{text}\n{}",
            r.stderr
        );
        let refused = r.code == Some(2)
            && r.stderr
                .lines()
                .next()
                .is_some_and(|l| l.starts_with(&format!("{file}:")));
        prop_assert_eq!(
            refused,
            !literal_loads,
            "refused at run vs its literal form refused by validate:\n{}\n{:?}\n{}",
            text,
            sets,
            r.stderr
        );
        if refused {
            refused_at_run.fetch_add(1, Relaxed);
        } else {
            prop_assert!(
                matches!(r.code, Some(0 | 1 | 130)),
                "exit {:?}:\n{text}\n{}",
                r.code,
                r.stderr
            );
            prop_assert!(
                r.results.is_some(),
                "no results file:\n{text}\n{}",
                r.stderr
            );
            explain_ends(&plan, &sets);
            ran.fetch_add(1, Relaxed);
        }
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
    let (ran, at_load, at_run) = (
        ran.into_inner(),
        refused_at_load.into_inner(),
        refused_at_run.into_inner(),
    );
    eprintln!("generated plans: {ran} ran, {at_load} refused at load, {at_run} refused at run");
    // Every path is exercised: many plans run, some are refused by `run`.
    assert!(
        ran * 3 >= ran + at_load + at_run,
        "{ran} of {} ran",
        ran + at_load + at_run
    );
    assert!(at_run > 0, "no generated plan was refused by `run`");
}
