//! Reports people look at: `acaload report` on saved results, the self-contained HTML
//! report (sections, charts, escaping, no external requests, same bytes from `run` and
//! `report`), Locust-style CSV, and a real browser rendering it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use acaload::output::report::{kind_label, phase_name};
use acaload::results::{Results, StatKind};

const FIXTURE: &str = "tests/fixtures/results/mediator.json";
const LOST: &str = "tests/fixtures/results/lost-messages.json";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn acaload(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_acaload"))
        .current_dir(repo())
        .args(args)
        .output()
        .unwrap()
}

/// A fresh scratch directory per test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("acaload-report-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn results(path: &str) -> Results {
    serde_json::from_str(&std::fs::read_to_string(repo().join(path)).unwrap()).unwrap()
}

/// `acaload report FILE --html OUT`, checked to exit as the run did (`code`: 1 when it
/// had failures and no thresholds); returns the HTML and stdout.
fn report_html(fixture: &str, out: &Path, code: i32) -> (String, String) {
    let run = acaload(&["report", fixture, "--html", out.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    assert_eq!(
        run.status.code(),
        Some(code),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    (std::fs::read_to_string(out).unwrap(), stdout)
}

/// Text as minijinja's HTML auto-escaping writes it.
fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
        .replace('/', "&#x2f;")
}

#[test]
fn html_report_has_every_section_and_one_chart_each() {
    let dir = scratch("sections");
    let (html, stdout) = report_html(FIXTURE, &dir.join("report.html"), 0);
    let r = results(FIXTURE);
    assert!(
        stdout.contains("Aggregated (HTTP)"),
        "the terminal report is printed too:\n{stdout}"
    );
    for title in [
        "<h2>Thresholds</h2>",
        "<h2>Failures</h2>",
        "<h2>Requests and steps</h2>",
        "<h2>Load</h2>",
        "<h3>Users</h3>",
        "<h3>Throughput</h3>",
        "<h2>Delivery latency and time to state</h2>",
        "<h3>Delivery latency</h3>",
        "<h3>Time to state</h3>",
        "<h2>Agents</h2>",
        "<h3>mediator</h3>",
        "<h3>multitenant agent</h3>",
        "<h2>Latency per step</h2>",
        "<h2>Run</h2>",
    ] {
        assert!(html.contains(title), "missing {title}");
    }
    assert!(html.contains(">PASSED<"), "the verdict heads the page");
    for s in &r.stats {
        assert!(
            html.contains(&format!("<td>{}</td>", html_escape(&s.name))),
            "summary row for {}",
            s.name
        );
    }
    // Users, throughput, delivery latency, time to state, one per agent, two per step.
    let waits = [StatKind::Event, StatKind::Poll]
        .iter()
        .filter(|k| r.stats.iter().any(|s| s.kind == **k))
        .count();
    assert_eq!(waits, 2);
    assert_eq!(
        html.matches("<svg").count(),
        2 + waits + r.agents.len() + 2 * r.stats.len()
    );
    assert_eq!(html.matches("<svg").count(), html.matches("</svg>").count());
    // Self-contained: no scripts, nothing loaded from elsewhere; URLs only as text.
    let lower = html.to_lowercase();
    assert!(!lower.contains("<script"), "no scripts");
    assert!(!lower.contains("<link"), "no stylesheets from elsewhere");
    assert!(!lower.contains("@import") && !lower.contains("url("));
    for attr in ["src=", "href=", "srcset=", "xmlns"] {
        assert!(!lower.contains(attr), "no {attr} attributes");
    }
    // Metadata; secrets stay hidden.
    assert!(html.contains(&html_escape("plans/mediator.yaml")));
    assert!(html.contains(&r.run.id));
    assert!(html.contains("ACAPY_ADMIN_API_KEY</td><td class=\"mono\">***</td>"));
    assert!(html.contains(&format!("acaload {}", r.acaload_version)));
}

#[test]
fn failures_are_listed_with_reasons_and_escaped_examples() {
    let dir = scratch("failures");
    let (html, _) = report_html(LOST, &dir.join("lost.html"), 1);
    let r = results(LOST);
    assert!(html.contains(">FAILED<"));
    assert!(
        html.contains("4 failed steps"),
        "no thresholds: failures decide"
    );
    let f = &r.failures[0];
    assert_eq!(f.name, "message delivered through mediator");
    assert!(html.contains(&html_escape(&f.reason)));
    assert!(html.contains(&html_escape(&f.example)));
    // The lost-messages plan watches no agents: no agents section, no empty charts.
    assert!(!html.contains("<h2>Agents</h2>"));
}

/// The report of each fixed results file is its checked-in golden file
/// (`snapshots/integration__report__*_html.snap`), so any change in the HTML shows as a
/// diff to review (`cargo insta review`, or `INSTA_UPDATE=always` to accept). The fixtures
/// carry their own times and paths, and the report prints no time of its own: nothing to
/// redact.
#[test]
fn reports_of_fixed_results_match_their_golden_files() {
    let dir = scratch("golden");
    for (fixture, name, code) in [(FIXTURE, "mediator", 0), (LOST, "lost_messages", 1)] {
        let (html, _) = report_html(fixture, &dir.join(format!("{name}.html")), code);
        insta::assert_snapshot!(format!("{name}_html"), html);
        let lib = acaload::output::html::render(&results(fixture), &[]).unwrap();
        assert_eq!(html, lib, "the CLI writes what the library renders");
    }
}

/// `run --html` and `report results.json --html` give the same bytes for the same run,
/// and CSV too (a run against a local stub: names and bodies full of markup, a secret).
#[test]
fn run_and_report_write_the_same_files() {
    let dir = scratch("run-vs-report");
    let url = stub();
    let plan = dir.join("plan.yaml");
    std::fs::write(
        &plan,
        r#"name: report-stub
description: "Markup in names <b>must</b> be escaped & shown as text."
env:
  STUB_URL: { type: string }
  API_KEY: { type: string, secret: true }
target:
  base_url: "{{ env.STUB_URL }}"
  headers: { X-API-Key: "{{ env.API_KEY }}" }
  timeout: 2s
load:
  constant: { users: 2, duration: 2s }
user:
  tasks:
    - name: "fine <ok>"
      request: { method: GET, path: /ok }
      check: { status: 200 }
    - name: "broken & loud"
      request: { method: GET, path: /broken }
      check: { status: 200 }
      on_error: next_iteration
  think: 20ms..50ms
"#,
    )
    .unwrap();
    let p = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let run = Command::new(env!("CARGO_BIN_EXE_acaload"))
        .current_dir(repo())
        .args(["run", &p("plan.yaml"), "-q", "--seed", "3"])
        .args(["--out", &p("results.json"), "--html", &p("run.html")])
        .args(["--csv", &p("run")])
        .env("STUB_URL", &url)
        .env("API_KEY", "sekrit-api-key-42")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "failures exit 1: {stderr}");
    assert!(stderr.contains("HTML report written to"), "{stderr}");
    let report = acaload(&[
        "report",
        &p("results.json"),
        "--html",
        &p("report.html"),
        "--csv",
        &p("report"),
    ]);
    assert_eq!(
        report.status.code(),
        run.status.code(),
        "report exits as run did: {}",
        String::from_utf8_lossy(&report.stderr)
    );
    let from_run = std::fs::read_to_string(dir.join("run.html")).unwrap();
    let from_report = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert_eq!(from_run, from_report, "same results, same HTML");
    for suffix in [
        "_stats.csv",
        "_failures.csv",
        "_stats_history.csv",
        "_step_history.csv",
        "_levels.csv",
    ] {
        assert_eq!(
            std::fs::read(dir.join(format!("run{suffix}"))).unwrap(),
            std::fs::read(dir.join(format!("report{suffix}"))).unwrap(),
            "{suffix}"
        );
    }
    assert!(!from_run.contains("sekrit-api-key-42"), "the secret leaked");
    assert!(from_run.contains("fine &lt;ok&gt;") && !from_run.contains("fine <ok>"));
    assert!(from_run.contains("broken &amp; loud"));
    assert!(from_run.contains(&html_escape("<b>must</b>")));
    assert!(
        from_run.contains(&html_escape("<b>boom</b>")) && !from_run.contains("<b>boom"),
        "response excerpts are escaped"
    );
    assert!(!from_run.contains("<script>alert"));
}

#[test]
fn csv_files_have_locust_headers_and_match_the_results() {
    let dir = scratch("csv");
    let prefix = dir.join("mediator");
    let run = acaload(&["report", FIXTURE, "--csv", prefix.to_str().unwrap()]);
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let r = results(FIXTURE);
    let read = |suffix: &str| {
        let mut rd = csv::Reader::from_path(format!("{}{suffix}", prefix.display())).unwrap();
        let header: Vec<String> = rd.headers().unwrap().iter().map(String::from).collect();
        let rows: Vec<csv::StringRecord> = rd.records().map(Result::unwrap).collect();
        (header, rows)
    };
    let col = |header: &[String], name: &str| header.iter().position(|h| h == name).unwrap();

    let (header, rows) = read("_stats.csv");
    assert_eq!(
        header,
        [
            "Type",
            "Name",
            "Request Count",
            "Failure Count",
            "Median Response Time",
            "Average Response Time",
            "Min Response Time",
            "Max Response Time",
            "Requests/s",
            "Failures/s",
            "50%",
            "66%",
            "75%",
            "80%",
            "90%",
            "95%",
            "98%",
            "99%",
            "99.9%",
            "99.99%",
            "100%",
            "Phase"
        ]
    );
    assert_eq!(
        rows.len(),
        r.stats.len() + 1,
        "one row per step + Aggregated"
    );
    let count =
        |row: &csv::StringRecord| row[col(&header, "Request Count")].parse::<u64>().unwrap();
    let aggregated = rows.last().unwrap();
    assert_eq!(&aggregated[col(&header, "Name")], "Aggregated");
    assert_eq!(count(aggregated), r.total.requests);
    // Every step has its own row, found by name, type and phase (not by position: rows
    // zipped with the stats pass when either side is empty or shifted).
    assert!(r.stats.len() > 10, "the fixture has steps to compare");
    let mut http = 0;
    for s in &r.stats {
        let matching: Vec<&csv::StringRecord> = rows
            .iter()
            .filter(|row| {
                row[col(&header, "Name")] == s.name
                    && row[col(&header, "Type")] == kind_label(s)
                    && &row[col(&header, "Phase")] == phase_name(s.phase)
            })
            .collect();
        assert_eq!(matching.len(), 1, "one row for {} {:?}", s.name, s.kind);
        let row = matching[0];
        assert_eq!(count(row), s.count, "{}", s.name);
        let ms = |name: &str| row[col(&header, name)].parse::<f64>().unwrap();
        assert_eq!(ms("50%"), s.latency_ms.p50, "{}", s.name);
        assert_eq!(ms("95%"), s.latency_ms.p95, "{}", s.name);
        assert_eq!(ms("100%"), s.latency_ms.max, "{}", s.name);
        assert!(ms("66%") <= ms("90%") && ms("99.9%") <= ms("100%"));
        if s.kind == StatKind::Http {
            http += count(row);
        }
    }
    assert_eq!(http, r.total.requests, "HTTP rows add up to the aggregate");

    // Failures: the fixture above has none, so the lost-messages results are checked row
    // by row too.
    let lost = results(LOST);
    assert!(!lost.failures.is_empty());
    let lost_prefix = dir.join("lost");
    let run = acaload(&["report", LOST, "--csv", lost_prefix.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(1), "a run with failures");
    let mut rd = csv::Reader::from_path(format!("{}_failures.csv", lost_prefix.display())).unwrap();
    let header: Vec<String> = rd.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        header,
        ["Method", "Name", "Error", "Occurrences", "Phase", "Example"]
    );
    let rows: Vec<csv::StringRecord> = rd.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), lost.failures.len());
    for f in &lost.failures {
        assert!(
            rows.iter().any(|row| row[1] == f.name
                && row[2] == f.reason
                && row[3] == f.count.to_string()
                && &row[4] == phase_name(f.phase)
                && row[5] == f.example),
            "no row for {f:?} in {rows:?}"
        );
    }
    let (_, rows) = read("_failures.csv");
    assert_eq!(rows.len(), r.failures.len());

    let (header, rows) = read("_stats_history.csv");
    assert_eq!(
        header,
        [
            "Timestamp",
            "Elapsed",
            "User Count",
            "Target User Count",
            "Requests/s",
            "Failures/s",
            "Total Request Count",
            "Total Failure Count"
        ]
    );
    assert_eq!(rows.len(), r.timeline.len(), "one row per second");
    let last = rows.last().unwrap();
    assert_eq!(
        last[col(&header, "Total Request Count")]
            .parse::<u64>()
            .unwrap(),
        r.timeline.iter().map(|s| s.requests).sum::<u64>()
    );
    let t0: u64 = rows[0][0].parse().unwrap();
    let t1: u64 = rows[1][0].parse().unwrap();
    assert_eq!(t1, t0 + 1, "Unix seconds, one per row");

    let (header, rows) = read("_step_history.csv");
    assert_eq!(
        header,
        [
            "Timestamp",
            "Elapsed",
            "Phase",
            "Type",
            "Name",
            "Request Count",
            "Failure Count",
            "50%",
            "95%",
            "99%"
        ]
    );
    assert_eq!(rows.len(), r.series.len());
    let message_peer: u64 = rows
        .iter()
        .filter(|row| &row[col(&header, "Name")] == "message peer")
        .map(|row| row[col(&header, "Request Count")].parse::<u64>().unwrap())
        .sum();
    let stat = r
        .stats
        .iter()
        .find(|s| s.name == "message peer" && s.kind == StatKind::Http)
        .unwrap();
    assert_eq!(message_peer, stat.count, "per-second counts add up");
}

#[test]
fn report_explains_unreadable_results_in_one_line() {
    let dir = scratch("errors");
    let not_json = dir.join("not.json");
    std::fs::write(&not_json, "plan: yaml?\n").unwrap();
    let wrong = dir.join("wrong.json");
    std::fs::write(&wrong, r#"{"hello": "world"}"#).unwrap();
    let mut broken: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join(FIXTURE)).unwrap()).unwrap();
    broken["stats"][1]["count"] = "many".into();
    let bad_field = dir.join("bad-field.json");
    std::fs::write(&bad_field, broken.to_string()).unwrap();
    for (file, expected) in [
        (dir.join("missing.json"), "cannot read "),
        (
            not_json.clone(),
            "is not JSON: expected value at line 1 column 1",
        ),
        (
            wrong.clone(),
            "is not an acaload results file (no schema_version",
        ),
        (
            bad_field.clone(),
            "is not an acaload results file: at stats[1].count: invalid type: string \"many\"",
        ),
    ] {
        let out = acaload(&["report", file.to_str().unwrap(), "--html", "/dev/null"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.starts_with("error: "), "{err}");
        assert!(err.contains(expected), "{err}");
        assert!(out.stdout.is_empty());
    }
}

/// Headless Chromium renders the report at 1280x800 with no console errors and no
/// network requests. Needs Chromium (`scripts/install-test-deps.sh` installs it).
#[test]
#[ignore = "runs headless Chromium (scripts/test.sh runs it)"]
fn chromium_renders_the_report() {
    let dir = scratch("chromium");
    let html = dir.join("report.html");
    report_html(FIXTURE, &html, 0);
    let png = dir.join("report.png");
    let shot = Command::new(repo().join("scripts/screenshot.sh"))
        .args([&html, &png])
        .output()
        .unwrap();
    assert_eq!(
        shot.status.code(),
        Some(0),
        "scripts/screenshot.sh failed (Debian: apt-get install -y chromium):\n{}{}",
        String::from_utf8_lossy(&shot.stdout),
        String::from_utf8_lossy(&shot.stderr)
    );
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!((width, height), (1280, 800));
    // A blank page compresses to about 5 KB, a line of text to about 11 KB.
    assert!(
        bytes.len() > 40_000,
        "blank screenshot? {} bytes",
        bytes.len()
    );
    let distinct = bytes.iter().collect::<std::collections::HashSet<_>>().len();
    assert!(
        distinct > 200,
        "blank screenshot? {distinct} distinct bytes"
    );

    // The checks catch what they are for.
    for (name, page, why) in [
        (
            "external.html",
            r#"<!DOCTYPE html><html><body><img src="https://example.com/a.png"></body></html>"#,
            "references resources outside itself",
        ),
        (
            "fetch.html",
            r#"<!DOCTYPE html><html><body><script>new Image().src = "http:" + "//example.org/p.png";</script></body></html>"#,
            "made network requests",
        ),
        (
            "console.html",
            r#"<!DOCTYPE html><html><body><script>throw new Error("boom")</script></body></html>"#,
            "logged to the console",
        ),
    ] {
        let page_path = dir.join(name);
        std::fs::write(&page_path, page).unwrap();
        let out = Command::new(repo().join("scripts/screenshot.sh"))
            .args([&page_path, &dir.join("bad.png")])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(err.contains(why), "{name}: {err}");
    }
}

/// A loopback HTTP stub: `/ok` answers 200, anything else 500 with markup in the body
/// and the API key echoed (the report must not show it).
fn stub() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || serve(conn));
        }
    });
    url
}

fn serve(conn: TcpStream) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut out = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let (mut length, mut key) = (0, String::new());
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            if h.to_ascii_lowercase().starts_with("x-api-key:") {
                key = h["x-api-key:".len()..].trim().to_string();
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let (status, text) = if path == "/ok" {
            (200, r#"{"ok":true}"#.to_string())
        } else {
            (
                500,
                format!("500: <b>boom</b> & <script>alert(1)</script> key {key}"),
            )
        };
        let resp = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{text}",
            text.len()
        );
        if out.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}
