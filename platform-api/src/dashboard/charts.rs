//! Charts drawn by the server as inline SVG: a line over a span, with deploy markers (green a
//! deployment that succeeded, red one that failed). Only numbers go into the markup, so there
//! is nothing to escape; the values also go into a `data-points` attribute, which the tests and
//! screen readers read instead of pixels.

use std::fmt::Write as _;

/// A deployment drawn on a chart: when (Unix seconds), and whether it succeeded.
#[derive(Debug, Clone, Copy)]
pub struct Marker {
    pub at: i64,
    pub good: bool,
}

/// `at:value` pairs, space-separated.
pub fn data(points: &[(i64, f64)]) -> String {
    let mut out = String::new();
    for (at, v) in points {
        let _ = write!(out, "{at}:{v} ");
    }
    out.trim_end().to_owned()
}

fn y_of(v: f64, max: f64, h: f64) -> f64 {
    h - 2.0 - (v / max) * (h - 4.0)
}

/// A small line of the last hour for the overview.
pub fn sparkline(points: &[(i64, f64)], from: i64, to: i64, label: &str) -> String {
    chart(points, from, to, &[], label, 160.0, 32.0)
}

/// A full chart with its markers, its top value and its span written beside it.
pub fn chart(
    points: &[(i64, f64)],
    from: i64,
    to: i64,
    markers: &[Marker],
    label: &str,
    w: f64,
    h: f64,
) -> String {
    let span = (to - from).max(1) as f64;
    let max = points
        .iter()
        .map(|(_, v)| *v)
        .fold(0.0_f64, f64::max)
        .max(1e-9);
    let x_of = |at: i64| ((at - from) as f64 / span * w).clamp(0.0, w);
    let mut line = String::new();
    for (at, v) in points {
        let _ = write!(line, "{:.1},{:.1} ", x_of(*at), y_of(*v, max, h));
    }
    let mut svg = format!(
        r#"<svg class="chart" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{}" preserveAspectRatio="none">"#,
        label.replace('"', "'").replace(['<', '>'], "")
    );
    for m in markers {
        if m.at < from || m.at > to {
            continue;
        }
        let x = x_of(m.at);
        let _ = write!(
            svg,
            r#"<line class="marker {}" x1="{x:.1}" x2="{x:.1}" y1="0" y2="{h}"/>"#,
            if m.good { "good" } else { "bad" }
        );
    }
    if points.len() == 1 {
        let (at, v) = points[0];
        let _ = write!(
            svg,
            r#"<circle cx="{:.1}" cy="{:.1}" r="2"/>"#,
            x_of(at),
            y_of(v, max, h)
        );
    } else if !points.is_empty() {
        let _ = write!(svg, r#"<polyline points="{}"/>"#, line.trim_end());
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_is_numbers_only_and_draws_markers_within_its_span() {
        let svg = chart(
            &[(0, 1.0), (60, 3.0)],
            0,
            120,
            &[
                Marker {
                    at: 30,
                    good: false,
                },
                Marker {
                    at: 500,
                    good: true,
                },
            ],
            "requests <script>",
            600.0,
            120.0,
        );
        assert!(
            svg.contains("polyline points=\"0.0,79.3 300.0,2.0\""),
            "{svg}"
        );
        assert!(svg.contains("marker bad"));
        assert!(!svg.contains("marker good"), "out of span");
        assert!(!svg.contains("<script>"));
        assert_eq!(data(&[(0, 1.0), (60, 3.5)]), "0:1 60:3.5");
    }
}
