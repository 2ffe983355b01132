//! `acaload validate` and `acaload schema`, as a user meets them.
//!
//! Every invalid fixture under `tests/fixtures/invalid/` shows one kind of mistake. For
//! each, validation exits 2 and prints `FILE:LINE:COL: message` with a snippet; the
//! snapshots pin the whole text, and the explicit location checks make a drift in
//! LINE:COL fail with a readable message even when snapshots are being updated.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use proptest::prelude::*;
use serde_json::Value;

const INVALID: &str = "tests/fixtures/invalid";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `acaload ARGS…` run from the crate root, so fixture paths in the output are relative.
fn acaload(args: &[&str]) -> Command {
    let mut cmd = Command::cargo_bin("acaload").expect("the acaload binary is built");
    cmd.current_dir(root()).args(args);
    cmd
}

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str]) -> Outcome {
    let out = acaload(args).output().expect("acaload runs");
    Outcome {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Validates `tests/fixtures/invalid/{fixture}.yaml` and checks that it is rejected with
/// exactly the findings in `expected`: each a `LINE:COL` and a fragment of the message.
/// Returns stderr for the snapshot.
fn rejects(fixture: &str, expected: &[(&str, &str)]) -> String {
    let file = format!("{INVALID}/{fixture}.yaml");
    let out = run(&["validate", &file]);
    assert_eq!(
        out.code,
        Some(2),
        "{file} should be rejected with exit code 2\nstderr:\n{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("panicked"),
        "validate panicked on {file}:\n{}",
        out.stderr
    );
    assert!(
        out.stdout.is_empty(),
        "nothing goes to stdout: {}",
        out.stdout
    );
    let findings: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with(&format!("{file}:")))
        .collect();
    for (at, fragment) in expected {
        let prefix = format!("{file}:{at}: ");
        assert!(
            findings
                .iter()
                .any(|l| l.starts_with(&prefix) && l.contains(fragment)),
            "expected a finding `{prefix}…{fragment}…`; got:\n{}",
            findings.join("\n")
        );
    }
    assert_eq!(
        findings.len(),
        expected.len(),
        "{file}: expected exactly {} finding(s), got:\n{}",
        expected.len(),
        findings.join("\n")
    );
    let n = expected.len();
    let summary = format!("{n} problem{} found", if n == 1 { "" } else { "s" });
    assert_eq!(out.stderr.lines().last(), Some(summary.as_str()));
    out.stderr
}

macro_rules! invalid_fixture {
    ($(#[$doc:meta])* $name:ident => [$(($at:literal, $fragment:literal)),+ $(,)?]) => {
        $(#[$doc])*
        #[test]
        fn $name() {
            let stderr = rejects(stringify!($name), &[$(($at, $fragment)),+]);
            insta::assert_snapshot!(concat!("invalid_", stringify!($name)), stderr);
        }
    };
}

invalid_fixture!(
    /// A mis-indented key is a YAML syntax error on its own line.
    yaml_syntax => [("4:11", "YAML syntax: mapping values are not allowed in this context")]
);

invalid_fixture!(
    /// A misspelt step key is reported at the key, with the key it was meant to be.
    unknown_key => [("13:7", "unknown key `requst`; did you mean `request`?")]
);

invalid_fixture!(
    /// `users_per_step` is a number or a `{{ template }}`, not a list.
    wrong_type => [("8:21", "[10] is not of type number or string")]
);

invalid_fixture!(
    /// A plan without `target` says which key is missing.
    missing_required => [("1:1", "missing required key `target`")]
);

invalid_fixture!(
    /// HTTP methods are a closed set.
    bad_enum => [("14:17", r#""FETCH" is not one of "GET", "POST", "PUT", "PATCH", "DELETE""#)]
);

invalid_fixture!(
    /// An edge agent's settings chosen by name are checked when written literally.
    bad_edge_choice => [
        ("13:19", "pickup `v3` is none of implicit, v2 or v2_live"),
        ("14:22", "transport `http` is neither credo nor socket")
    ]
);

invalid_fixture!(
    /// Durations are strict literals: `30s`, not `30 seconds`.
    bad_duration => [("6:16", "invalid duration `30 seconds`: unknown unit")]
);

invalid_fixture!(
    /// `{{ token }` is caught at load time, at the string that holds it.
    template_syntax => [("21:17", "template: syntax error: unexpected `}`")]
);

invalid_fixture!(
    /// A variable nothing defines, with the captured name it was probably meant to be.
    undefined_variable => [(
        "20:15",
        "variable `conn_idd` is not defined by any `vars`, `capture`, `set` or `take`; did you mean `conn_id`?"
    )]
);

invalid_fixture!(
    /// A JSONPath that does not parse is reported at the capture.
    bad_jsonpath => [("15:27", "invalid JSONPath `$.results[?(@.a==`")]
);

invalid_fixture!(
    /// Every `env.NAME` a template reads must be declared under `env:`.
    undeclared_env => [(
        "18:15",
        "`env.MEDIATOR_URL` is used but not declared under `env:`; did you mean `env.MEDIATOR_INVITATION_URL`?"
    )]
);

invalid_fixture!(
    /// A step does exactly one thing.
    two_step_kinds => [("12:7", "a step does one thing; this one has `request` and `sleep`")]
);

invalid_fixture!(
    /// `take` and `offer` name a pool declared under `pools:`.
    undeclared_pool => [(
        "15:21",
        "pool `invitation` is not declared under `pools:`; did you mean `invitations`?"
    )]
);

invalid_fixture!(
    /// A load shape is exactly one kind.
    two_load_kinds => [(
        "5:3",
        "expected exactly one of `steps`, `constant`, `stages`, `arrival_rate`, found `constant` and `stages`"
    )]
);

invalid_fixture!(
    /// `on_error` is `stop`, `next_iteration`, `continue` or a retry mapping.
    bad_on_error => [("12:17", r#""stopp" is not one of "stop", "next_iteration", "continue"; did you mean `stop`?"#)]
);

invalid_fixture!(
    /// All problems are reported at once, in file order, each at its own line — including
    /// an unknown key inside an optional mapping (`request`), which must not be blamed on
    /// the mapping as a whole.
    several_errors => [
        ("4:3", "unknown key `timout`; did you mean `timeout`?"),
        ("15:17", r#""FETCH" is not one of"#),
        ("21:9", "unknown key `headrs`; did you mean `headers`?"),
    ]
);

invalid_fixture!(
    /// Past the schema, every template, duration, pool and variable problem in the plan is
    /// reported in one run, in file order. (Schema errors come first: a plan whose shape is
    /// wrong reports only those, as the later checks need the shape.)
    several_late_errors => [
        ("5:13", "`env.ACAPY_ADMIN_ULR` is used but not declared under `env:`; did you mean `env.ACAPY_ADMIN_URL`?"),
        ("6:12", "invalid duration `30 s`"),
        ("22:22", "pool `invitation` is not declared under `pools:`; did you mean `invitations`?"),
        ("22:41", "variable `tokn` is not defined by any `vars`, `capture`, `set` or `take`; did you mean `token`?"),
        ("28:17", "template: syntax error"),
        ("29:58", "invalid duration `1sec`"),
        ("30:10", "think range `2s..1s` goes backwards"),
    ]
);

#[test]
fn every_invalid_fixture_has_a_test() {
    let source = include_str!("validate.rs");
    for path in yaml_files(&root().join(INVALID)) {
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        assert!(
            source.contains(&format!("    {stem} => [")),
            "{} has no `invalid_fixture!` test",
            path.display()
        );
    }
}

// ---------------------------------------------------------------------------------------
// Whole-file problems: one line naming the file, exit 2, never a panic.

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("acaload-validate-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).expect("write temp file");
        path.display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Checks the one-line verdict on `file` and returns stderr with the temp dir redacted.
fn whole_file_problem(file: &str, dir: &Path) -> String {
    let out = run(&["validate", file]);
    assert_eq!(out.code, Some(2), "{file}: stderr:\n{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert!(!out.stdout.contains("panicked"), "{}", out.stdout);
    let naming: Vec<&str> = out.stderr.lines().filter(|l| l.contains(file)).collect();
    assert_eq!(
        naming.len(),
        1,
        "exactly one line names {file}:\n{}",
        out.stderr
    );
    assert!(
        out.stderr.starts_with(&format!("{file}:")),
        "the finding comes first and starts with the file name:\n{}",
        out.stderr
    );
    assert_eq!(out.stderr.lines().last(), Some("1 problem found"));
    out.stderr.replace(&dir.display().to_string(), "[TMP]")
}

/// An insta filter that replaces `dir` by `[TMP]`.
fn tmp_filter(dir: &Path) -> (String, &'static str) {
    let escaped: String = dir
        .display()
        .to_string()
        .chars()
        .flat_map(|c| {
            let special = "\\.+*?()|[]{}^$#&-~".contains(c);
            special.then_some('\\').into_iter().chain([c])
        })
        .collect();
    (escaped, "[TMP]")
}

#[test]
fn missing_file_is_one_line() {
    let dir = TempDir::new("missing");
    let file = dir.0.join("nope.yaml").display().to_string();
    let stderr = whole_file_problem(&file, &dir.0);
    assert_eq!(stderr, "[TMP]/nope.yaml: no such file\n1 problem found\n");
}

#[test]
fn directory_is_one_line() {
    let dir = TempDir::new("dir");
    let sub = dir.0.join("plans.yaml");
    std::fs::create_dir(&sub).unwrap();
    let stderr = whole_file_problem(&sub.display().to_string(), &dir.0);
    assert_eq!(
        stderr,
        "[TMP]/plans.yaml: is a directory, not a plan file\n1 problem found\n"
    );
}

#[test]
fn empty_file_is_one_line() {
    let dir = TempDir::new("empty");
    let file = dir.write("empty.yaml", b"\n  \n");
    let stderr = whole_file_problem(&file, &dir.0);
    assert_eq!(
        stderr,
        "[TMP]/empty.yaml: is empty; a plan needs at least `name`, `target`, `load` and `user`\n1 problem found\n"
    );
}

#[test]
fn binary_garbage_is_one_line() {
    let dir = TempDir::new("binary");
    let bytes: Vec<u8> = (0..=255u8).collect();
    let file = dir.write("garbage.yaml", &bytes);
    let stderr = whole_file_problem(&file, &dir.0);
    assert_eq!(
        stderr,
        "[TMP]/garbage.yaml: is not a text file (not UTF-8); a plan is YAML text\n1 problem found\n"
    );
}

#[test]
fn text_with_nul_bytes_is_one_line() {
    let dir = TempDir::new("nul");
    let file = dir.write("nul.yaml", b"name: x\0\n");
    let stderr = whole_file_problem(&file, &dir.0);
    assert_eq!(
        stderr,
        "[TMP]/nul.yaml: is not a text file (contains NUL bytes); a plan is YAML text\n1 problem found\n"
    );
}

#[test]
fn yaml_scalar_is_one_finding() {
    let dir = TempDir::new("scalar");
    let file = dir.write("scalar.yaml", b"just some words\n");
    let stderr = whole_file_problem(&file, &dir.0);
    let raw = run(&["validate", &file]).stderr;
    let (from, to) = tmp_filter(&dir.0);
    insta::with_settings!({ filters => vec![(from.as_str(), to)] }, {
        insta::assert_snapshot!("whole_file_yaml_scalar", raw);
    });
    assert!(
        stderr.starts_with("[TMP]/scalar.yaml:1:1: a plan must be a YAML mapping"),
        "{stderr}"
    );
}

// ---------------------------------------------------------------------------------------
// Machine-readable findings.

#[test]
fn json_format_lists_every_finding() {
    let file = format!("{INVALID}/several_errors.yaml");
    let out = run(&["validate", "--format", "json", &file]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.is_empty(),
        "json mode writes only JSON: {}",
        out.stderr
    );
    let findings: Value = serde_json::from_str(&out.stdout).expect("stdout is JSON");
    let findings = findings.as_array().expect("a JSON array");
    let got: Vec<(String, u64, u64, String)> = findings
        .iter()
        .map(|f| {
            (
                f["file"].as_str().expect("file").to_string(),
                f["line"].as_u64().expect("line"),
                f["column"].as_u64().expect("column"),
                f["message"].as_str().expect("message").to_string(),
            )
        })
        .collect();
    assert_eq!(got.len(), 3, "{got:#?}");
    let places: Vec<(u64, u64)> = got.iter().map(|(_, l, c, _)| (*l, *c)).collect();
    assert_eq!(places, [(4, 3), (15, 17), (21, 9)]);
    assert!(got.iter().all(|(f, ..)| f == &file));
    assert_eq!(got[0].3, "unknown key `timout`; did you mean `timeout`?");
    assert!(
        got[1].3.starts_with(r#""FETCH" is not one of"#),
        "{}",
        got[1].3
    );
    assert_eq!(got[2].3, "unknown key `headrs`; did you mean `headers`?");
}

#[test]
fn json_format_for_valid_and_missing_files() {
    let ok = run(&["validate", "--format", "json", "plans/mediator.yaml"]);
    assert_eq!(ok.code, Some(0), "{}", ok.stderr);
    assert_eq!(
        serde_json::from_str::<Value>(&ok.stdout).unwrap(),
        Value::Array(vec![])
    );

    let missing = run(&["validate", "--format", "json", "does/not/exist.yaml"]);
    assert_eq!(missing.code, Some(2));
    let findings: Value = serde_json::from_str(&missing.stdout).expect("stdout is JSON");
    assert_eq!(
        findings,
        serde_json::json!([{
            "file": "does/not/exist.yaml",
            "line": 0,
            "column": 0,
            "message": "no such file",
        }])
    );
}

// ---------------------------------------------------------------------------------------
// Shipped plans and valid fixtures.

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    files
}

fn validates(dir: &str) {
    let files: Vec<String> = yaml_files(&root().join(dir))
        .iter()
        .map(|p| format!("{dir}/{}", p.file_name().unwrap().to_string_lossy()))
        .collect();
    assert!(!files.is_empty(), "no plans under {dir}/");
    let mut args = vec!["validate"];
    args.extend(files.iter().map(String::as_str));
    let out = run(&args);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stderr.is_empty(), "{}", out.stderr);
    let expected: String = files.iter().map(|f| format!("{f}: ok\n")).collect();
    assert_eq!(out.stdout, expected);
}

#[test]
fn all_shipped_plans_validate() {
    validates("plans");
}

#[test]
fn all_valid_fixtures_validate() {
    validates("tests/fixtures/valid");
}

#[test]
fn one_bad_file_among_good_ones_fails_the_run() {
    let out = run(&[
        "validate",
        "plans/mediator.yaml",
        "tests/fixtures/invalid/unknown_key.yaml",
    ]);
    assert_eq!(out.code, Some(2));
    assert_eq!(out.stdout, "plans/mediator.yaml: ok\n");
    assert!(
        out.stderr
            .starts_with("tests/fixtures/invalid/unknown_key.yaml:13:7: unknown key `requst`")
    );
}

// ---------------------------------------------------------------------------------------
// Checked-in schemas match the model. `ACALOAD_UPDATE_SCHEMA=1` rewrites them.

fn schema_matches(args: &[&str], file: &str) {
    let out = run(args);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let path = root().join(file);
    if std::env::var_os("ACALOAD_UPDATE_SCHEMA").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &out.stdout).unwrap();
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("{file}: {e}; run `ACALOAD_UPDATE_SCHEMA=1 cargo test --test integration schema`")
    });
    assert!(
        checked_in == out.stdout,
        "{file} is out of date with the model; run \
         `ACALOAD_UPDATE_SCHEMA=1 cargo test --test integration schema` and commit the result"
    );
}

#[test]
fn plan_schema_is_checked_in() {
    schema_matches(&["schema"], "schemas/plan.schema.json");
}

#[test]
fn results_schema_is_checked_in() {
    schema_matches(
        &["schema", "--kind", "results"],
        "schemas/results.schema.json",
    );
}

// ---------------------------------------------------------------------------------------
// The loader never panics, whatever it is fed.

const KEYS: &[&str] = &[
    "name",
    "target",
    "base_url",
    "load",
    "steps",
    "step_time",
    "users_per_step",
    "user_limit",
    "time_limit",
    "user",
    "setup",
    "tasks",
    "choose",
    "weight",
    "request",
    "method",
    "path",
    "json",
    "check",
    "status",
    "that",
    "capture",
    "poll",
    "until",
    "sleep",
    "set",
    "offer",
    "take",
    "pool",
    "as",
    "pools",
    "env",
    "type",
    "default",
    "vars",
    "thresholds",
    "on_error",
    "retry",
    "when",
    "think",
    "bearer",
    "query",
    "headers",
    "timeout",
];

const VALUES: &[&str] = &[
    "",
    "x",
    "GET",
    "POST",
    "FETCH",
    "30s",
    "30",
    "0",
    "-1",
    "1.5",
    "true",
    "null",
    "~",
    "500ms..1s",
    "2s..1s",
    "[]",
    "{}",
    "[1, 2]",
    "{ a: 1 }",
    "\"{{ env.X }}\"",
    "\"{{ token }\"",
    "\"{{ user.index % 2 == 0 }}\"",
    "/connections/{{ conn_id }}",
    "$.results[0]",
    "\"$.results[?(@.a==\"",
    "body.state == 'active'",
    "stop",
    "&a x",
    "*a",
    "!!str 1",
    "|",
    ">",
    "\"unterminated",
    "'",
    "- x",
    ": ",
    "{{",
    "}}",
    "\t",
];

fn yamlish() -> impl Strategy<Value = String> {
    let line = (
        0usize..5,
        prop::sample::select(KEYS),
        prop::sample::select(VALUES),
        any::<bool>(),
    )
        .prop_map(|(indent, key, value, dash)| {
            let dash = if dash { "- " } else { "" };
            format!("{}{dash}{key}: {value}", "  ".repeat(indent))
        });
    prop::collection::vec(line, 0..30).prop_map(|lines| lines.join("\n"))
}

/// One edit to a line of the mediator plan.
#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize),
    Duplicate(usize),
    Indent(usize),
    Dedent(usize),
    Truncate(usize, usize),
}

fn mutate(text: &str, mutations: &[Mutation]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for m in mutations {
        if lines.is_empty() {
            break;
        }
        let at = |i: usize| i % lines.len();
        match *m {
            Mutation::Delete(i) => {
                lines.remove(at(i));
            }
            Mutation::Duplicate(i) => {
                let i = at(i);
                lines.insert(i, lines[i].clone());
            }
            Mutation::Indent(i) => {
                let i = at(i);
                lines[i].insert(0, ' ');
            }
            Mutation::Dedent(i) => {
                let i = at(i);
                if lines[i].starts_with(' ') {
                    lines[i].remove(0);
                }
            }
            Mutation::Truncate(i, keep) => {
                let i = at(i);
                let cut: String = lines[i].chars().take(keep).collect();
                lines[i] = cut;
            }
        }
    }
    lines.join("\n")
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Delete),
        any::<usize>().prop_map(Mutation::Duplicate),
        any::<usize>().prop_map(Mutation::Indent),
        any::<usize>().prop_map(Mutation::Dedent),
        (any::<usize>(), 0usize..40).prop_map(|(i, k)| Mutation::Truncate(i, k)),
    ]
}

/// Loads `text`; on failure every finding is placed inside the text or is whole-file.
fn load_is_sound(text: String) -> Result<(), TestCaseError> {
    // YAML counts `\r\n`, `\r` and `\n` as line breaks.
    let lines = text
        .replace("\r\n", "\n")
        .replace('\r', "\n")
        .lines()
        .count();
    if let Err(failure) = acaload::plan::compile::load_str("fuzz.yaml", text) {
        prop_assert!(!failure.diagnostics.is_empty(), "a failure says why");
        for d in &failure.diagnostics {
            prop_assert_eq!(&d.file, "fuzz.yaml");
            if d.line == 0 {
                prop_assert_eq!(d.column, 0, "whole-file findings have no column: {:?}", d);
            } else {
                prop_assert!(d.column >= 1, "columns are 1-based: {:?}", d);
                prop_assert!(
                    d.line <= lines + 1,
                    "line past the end ({lines} lines): {:?}",
                    d
                );
            }
        }
        // Rendering (snippet and caret) must not panic either.
        let _ = failure.render();
    }
    Ok(())
}

fn config() -> ProptestConfig {
    ProptestConfig {
        // PROPTEST_CASES=N for a longer hunt.
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(256),
        // Do not write regression files next to the sources.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        load_is_sound(String::from_utf8_lossy(&bytes).into_owned())?;
    }

    #[test]
    fn yamlish_text_never_panics(text in yamlish()) {
        load_is_sound(text)?;
    }

    #[test]
    fn mutated_mediator_plan_never_panics(
        mutations in prop::collection::vec(mutation(), 1..4)
    ) {
        let plan = include_str!("../../plans/mediator.yaml");
        load_is_sound(mutate(plan, &mutations))?;
    }
}

/// A pipe whose reader is already gone: every write to it fails with EPIPE.
fn closed_pipe() -> std::io::PipeWriter {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    writer
}

#[test]
fn a_closed_stdout_or_stderr_is_not_a_panic() {
    // `acaload schema | head -1` after head has exited: the output is lost, the exit is clean.
    let bin = || {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_acaload"));
        c.current_dir(root());
        c
    };
    let out = bin().arg("schema").stdout(closed_pipe()).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    // The diagnostics of a bad plan go to stderr; with it closed the verdict still stands.
    let out = bin()
        .args(["validate", "tests/fixtures/invalid/bad_enum.yaml"])
        .stderr(closed_pipe())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
