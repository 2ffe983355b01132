//! Self-contained HTML report (`--html`): one file with inline CSS and inline SVG charts
//! drawn here, no scripts and no network. Reads only [`Results`] and the verdicts, and
//! prints no generation time, so the same results always give the same bytes.

use crate::results::{Results, Verdict};

mod charts;
use view::page;
mod svg;
mod view;

const TEMPLATE: &str = include_str!("report.html");

/// Renders the report. Text from the results (step names, failure examples, variables)
/// is HTML-escaped by the template; the SVG charts escape their own labels.
pub fn render(results: &Results, verdicts: &[Verdict]) -> Result<String, minijinja::Error> {
    let mut env = minijinja::Environment::new();
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()?,
    );
    // The `.html` name turns on HTML auto-escaping.
    env.add_template("report.html", TEMPLATE)?;
    let page = page(results, verdicts);
    env.get_template("report.html")?
        .render(minijinja::Value::from(minijinja::value::Serde(&page)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Phase;
    use charts::percentile_curve;
    use svg::{seconds, segments, time_step, y_axis};

    fn fixture() -> Results {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/results/mediator.json"
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn text_from_results_is_escaped() {
        let mut r = fixture();
        r.stats[0].name = "<script>alert('x')</script> & co".into();
        r.failures.push(crate::results::FailureGroup {
            phase: Phase::Tasks,
            name: "<b>step</b>".into(),
            reason: "status 500: <html>".into(),
            count: 2,
            example: "body \"<img src=x onerror=alert(1)>\"".into(),
        });
        let html = render(&r, &[]).unwrap();
        assert!(!html.contains("<script>"), "step names are escaped");
        assert!(!html.contains("<img"), "failure examples are escaped");
        assert!(!html.contains("<b>step"));
        assert!(html.contains("&lt;script&gt;alert("));
        assert!(html.contains("FAILED"));
    }

    #[test]
    fn axes_are_round() {
        assert_eq!(y_axis(0.0, true), (1.0, 1.0));
        assert_eq!(y_axis(6.0, true), (2.0, 6.0));
        assert_eq!(y_axis(52.6, false), (20.0, 60.0));
        assert_eq!(y_axis(0.012, false), (0.005, 0.015));
        assert_eq!(time_step(16.0, 8.0), 2.0);
        assert_eq!(time_step(16.0, 4.0), 5.0);
        assert_eq!(time_step(600.0, 8.0), 120.0);
        assert_eq!(seconds(90.0), "1m30s");
        assert_eq!(seconds(3600.0), "1h");
    }

    #[test]
    fn gaps_split_lines() {
        let pts = [(0.0, 1.0), (1.0, 1.0), (5.0, 2.0), (9.0, 1.0), (10.0, 1.0)];
        let segs = segments(&pts, 1.5);
        assert_eq!(segs.iter().map(|s| s.len()).collect::<Vec<_>>(), [2, 1, 2]);
    }

    #[test]
    fn percentile_curve_runs_from_min_to_the_three_nines() {
        let mut h = crate::measure::histogram::new_histogram();
        for v in 1..=10_000u64 {
            h.record(v * 10).unwrap();
        }
        let c = percentile_curve(&h);
        assert_eq!(c.first().unwrap().0, 0.0);
        assert!((c.last().unwrap().0 - 3.0).abs() < 1e-9);
        assert!((c.first().unwrap().1 - 0.01).abs() < 1e-3);
        assert!((c.last().unwrap().1 - 99.9).abs() < 0.2, "{:?}", c.last());
        assert!(c.windows(2).all(|w| w[0].1 <= w[1].1), "monotonic");
    }
}
