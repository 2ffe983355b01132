//! A small SVG line chart: axes, grid, polylines. Hand-written to keep the report a
//! single dependency-free file.

use serde::Serialize;

/// A chart as the template shows it: the SVG and its legend.
#[derive(Serialize)]
pub(super) struct ChartView {
    pub(super) title: String,
    pub(super) caption: String,
    pub(super) svg: String,
    pub(super) legend: Vec<Legend>,
}

#[derive(Serialize)]
pub(super) struct Legend {
    pub(super) label: String,
    pub(super) color: &'static str,
    pub(super) dash: bool,
}

pub(super) struct Line {
    pub(super) label: String,
    pub(super) color: &'static str,
    pub(super) dash: bool,
    pub(super) points: Vec<(f64, f64)>,
    /// Points further apart than this on x are not joined.
    pub(super) max_gap: f64,
}

impl Line {
    pub(super) fn new(
        label: impl Into<String>,
        color: &'static str,
        points: impl IntoIterator<Item = (f64, f64)>,
    ) -> Line {
        Line {
            label: label.into(),
            color,
            dash: false,
            points: points.into_iter().collect(),
            max_gap: 1.5,
        }
    }

    pub(super) fn dashed(mut self) -> Line {
        self.dash = true;
        self
    }

    pub(super) fn gap(mut self, max_gap: f64) -> Line {
        self.max_gap = max_gap;
        self
    }
}

#[derive(Clone, Copy)]
pub(super) enum XScale {
    /// Seconds since the start, 0..max.
    Time(f64),
    /// Percentiles on the nines scale, 0..3.
    Nines,
}

#[derive(Clone, Copy)]
pub(super) struct Spec {
    pub(super) x: XScale,
    pub(super) unit: &'static str,
    /// Whole numbers only (users, counters): no fractional ticks.
    pub(super) integer: bool,
    pub(super) width: f64,
    pub(super) height: f64,
}

impl Spec {
    pub(super) fn time(max: f64, unit: &'static str, integer: bool) -> Spec {
        Spec {
            x: XScale::Time(max),
            unit,
            integer,
            width: 270.0,
            height: 170.0,
        }
    }

    pub(super) fn nines() -> Spec {
        Spec {
            x: XScale::Nines,
            unit: "ms",
            integer: false,
            width: 270.0,
            height: 170.0,
        }
    }

    pub(super) fn size(mut self, width: f64, height: f64) -> Spec {
        self.width = width;
        self.height = height;
        self
    }
}

pub(super) fn chart(title: &str, caption: &str, spec: Spec, lines: Vec<Line>) -> ChartView {
    ChartView {
        title: title.to_string(),
        caption: caption.to_string(),
        svg: svg(title, &spec, &lines),
        legend: lines
            .iter()
            .map(|l| Legend {
                label: l.label.clone(),
                color: l.color,
                dash: l.dash,
            })
            .collect(),
    }
}

/// Where a chart draws: the whole picture (`w` × `h`), the plot inside its margins, and the
/// data ranges its axes span.
struct Frame {
    w: f64,
    left: f64,
    right: f64,
    top: f64,
    /// The plot's width and height.
    pw: f64,
    ph: f64,
    x_max: f64,
    y_max: f64,
}

impl Frame {
    fn sx(&self, x: f64) -> f64 {
        self.left + x.clamp(0.0, self.x_max) / self.x_max * self.pw
    }

    fn sy(&self, y: f64) -> f64 {
        self.top + self.ph - y.clamp(0.0, self.y_max) / self.y_max * self.ph
    }
}

pub(super) fn svg(title: &str, spec: &Spec, lines: &[Line]) -> String {
    use std::fmt::Write as _;
    let (left, right, top, bottom) = (46.0, 16.0, 24.0, 22.0);
    let (w, h) = (spec.width, spec.height);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let data_max = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    let (y_step, y_max) = y_axis(data_max, spec.integer);
    let (x_max, x_ticks) = x_ticks(spec.x, pw, w);
    let f = Frame {
        w,
        left,
        right,
        top,
        pw,
        ph,
        x_max,
        y_max,
    };
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-label="{}">"#,
        esc(title)
    );
    y_grid(&mut s, &f, y_step, spec.unit);
    x_axis(&mut s, &f, &x_ticks);
    if lines.iter().all(|l| l.points.is_empty()) {
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" class="empty">no samples</text>"#,
            left + pw / 2.0,
            top + ph / 2.0
        );
    }
    for line in lines {
        polyline(&mut s, &f, line);
    }
    s.push_str("</svg>");
    s
}

/// The x axis' end and its labelled ticks, for a plot `pw` wide in a chart `w` wide.
fn x_ticks(x: XScale, pw: f64, w: f64) -> (f64, Vec<(f64, String)>) {
    match x {
        XScale::Time(max) => {
            // A label ("1m30s") needs about 45 px.
            let step = time_step(max, (pw / 45.0).floor().max(2.0));
            let ticks = (0..)
                .map(|i| f64::from(i) * step)
                .take_while(|t| *t <= max + 1e-9)
                .map(|t| (t, seconds(t)))
                .collect::<Vec<_>>();
            (max, ticks)
        }
        XScale::Nines => (
            3.0,
            vec![
                (0.0, "0%".to_string()),
                // Too close to 0% to label on a small chart.
                (2f64.log10(), if w >= 400.0 { "50%" } else { "" }.into()),
                (1.0, "90%".into()),
                (2.0, "99%".into()),
                (3.0, "99.9%".into()),
            ],
        ),
    }
}

/// Horizontal grid lines every `y_step` with their labels, and the unit above them.
fn y_grid(s: &mut String, f: &Frame, y_step: f64, unit: &str) {
    use std::fmt::Write as _;
    let decimals = if y_step >= 1.0 {
        0
    } else {
        (-y_step.log10().floor()) as usize
    };
    let intervals = (f.y_max / y_step).round() as u32;
    for i in 0..=intervals {
        let y = f64::from(i) * y_step;
        let py = f.sy(y);
        let _ = write!(
            s,
            r##"<line x1="{}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="{}"/><text x="{:.1}" y="{:.1}" text-anchor="end" class="tick">{y:.decimals$}</text>"##,
            f.left,
            f.left + f.pw,
            if i == 0 { "#9ca3af" } else { "#e5e7eb" },
            f.left - 5.0,
            py + 3.5,
        );
    }
    let _ = write!(
        s,
        r#"<text x="{:.1}" y="11" text-anchor="end" class="unit">{}</text>"#,
        f.left - 5.0,
        esc(unit)
    );
}

/// Tick marks and labels under the plot.
fn x_axis(s: &mut String, f: &Frame, ticks: &[(f64, String)]) {
    use std::fmt::Write as _;
    let bottom = f.top + f.ph;
    for (x, label) in ticks {
        let px = f.sx(*x);
        // The last label ends at its tick instead of running off the chart.
        let anchor = if px > f.w - f.right - 1.0 {
            "end"
        } else {
            "middle"
        };
        let _ = write!(
            s,
            r##"<line x1="{px:.1}" y1="{:.1}" x2="{px:.1}" y2="{:.1}" stroke="#9ca3af"/><text x="{px:.1}" y="{:.1}" text-anchor="{anchor}" class="tick">{}</text>"##,
            bottom,
            bottom + 4.0,
            bottom + 16.0,
            esc(label)
        );
    }
}

/// A line's segments: a polyline each, or a dot for a lone point.
fn polyline(s: &mut String, f: &Frame, line: &Line) {
    use std::fmt::Write as _;
    let dash = if line.dash {
        r#" stroke-dasharray="5 3""#
    } else {
        ""
    };
    for seg in segments(&line.points, line.max_gap) {
        if let [(x, y)] = seg {
            let _ = write!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{}"/>"#,
                f.sx(*x),
                f.sy(*y),
                line.color
            );
        } else {
            let pts: Vec<String> = seg
                .iter()
                .map(|(x, y)| format!("{:.1},{:.1}", f.sx(*x), f.sy(*y)))
                .collect();
            let _ = write!(
                s,
                r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="1.8" stroke-linejoin="round"{dash}/>"#,
                pts.join(" "),
                line.color
            );
        }
    }
}

/// Splits points where consecutive x values are more than `max_gap` apart.
pub(super) fn segments(points: &[(f64, f64)], max_gap: f64) -> Vec<&[(f64, f64)]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=points.len() {
        if i == points.len() || points[i].0 - points[i - 1].0 > max_gap {
            if i > start {
                out.push(&points[start..i]);
            }
            start = i;
        }
    }
    out
}

/// A 1-2-5 tick step giving about four intervals, and the axis top (a whole number of steps).
pub(super) fn y_axis(data_max: f64, integer: bool) -> (f64, f64) {
    let max = if data_max > 0.0 { data_max } else { 1.0 };
    let raw = max / 4.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let mut step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    if integer {
        step = step.max(1.0).round();
    }
    (step, (max / step).ceil() * step)
}

/// Time ticks at round numbers of seconds or minutes, at most `intervals` of them.
pub(super) fn time_step(max: f64, intervals: f64) -> f64 {
    [
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0,
    ]
    .into_iter()
    .find(|s| max / s <= intervals)
    .unwrap_or(7200.0)
}

pub(super) fn seconds(t: f64) -> String {
    let t = t.round() as u64;
    match (t / 3600, t / 60 % 60, t % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, _) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m}m"),
    }
}

/// HTML/SVG text escaping for the few labels the charts print themselves.
pub(super) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
