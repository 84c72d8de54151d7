//! Line charts as standalone SVG files, for `workly-bench all`'s report.
//!
//! The report needs a few plain charts (speed by thread count, time to first
//! token by turn, memory over turns, latency distributions); SVG is text, so
//! writing it directly keeps the charts readable in any browser or Markdown
//! viewer and adds no font or image dependency.

use std::fmt::Write as _;

/// Width of a chart in pixels.
const WIDTH: f64 = 640.0;
/// Height of a chart in pixels.
const HEIGHT: f64 = 360.0;
/// Margins around the plot area: left, right, top, bottom.
const MARGIN: (f64, f64, f64, f64) = (64.0, 150.0, 40.0, 48.0);
/// Line colours, one per series in order (colour-blind-safe Okabe-Ito).
const COLOURS: &[&str] = &["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9"];
/// Ticks on each axis, about.
const TICKS: usize = 5;

/// One named line of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Points, in the order they are joined.
    pub points: Vec<(f64, f64)>,
}

/// A line chart: series over shared axes.
#[derive(Debug, Clone, PartialEq)]
pub struct LineChart {
    /// Title above the plot.
    pub title: String,
    /// Label of the horizontal axis.
    pub x_label: String,
    /// Label of the vertical axis.
    pub y_label: String,
    /// The lines.
    pub series: Vec<Series>,
    /// Whether the vertical axis starts at zero (speeds, memory) rather than
    /// at the data's lowest value.
    pub y_from_zero: bool,
}

impl LineChart {
    /// The chart as a complete SVG document.
    pub fn to_svg(&self) -> String {
        let points = self.series.iter().flat_map(|series| series.points.iter().copied());
        let (x_range, y_range) = bounds(points, self.y_from_zero);
        // The vertical axis ends on round values, so its top has a label.
        let step = tick_step(y_range);
        let y_range = ((y_range.0 / step).floor() * step, (y_range.1 / step).ceil() * step);
        let (left, right, top, bottom) = MARGIN;
        let (plot_w, plot_h) = (WIDTH - left - right, HEIGHT - top - bottom);
        let x_at = |x: f64| left + (x - x_range.0) / (x_range.1 - x_range.0) * plot_w;
        let y_at = |y: f64| top + plot_h - (y - y_range.0) / (y_range.1 - y_range.0) * plot_h;

        let mut svg = String::new();
        let _ = writeln!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(svg, r#"<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#);
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="24" text-anchor="middle" font-size="15">{}</text>"#,
            left + plot_w / 2.0,
            escape(&self.title)
        );
        for tick in ticks(x_range) {
            let x = x_at(tick);
            let _ = writeln!(
                svg,
                r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                top + plot_h,
                top + plot_h + 16.0,
                label(tick)
            );
        }
        for tick in ticks(y_range) {
            let y = y_at(tick);
            let _ = writeln!(
                svg,
                r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                left + plot_w,
                left - 6.0,
                y + 4.0,
                label(tick)
            );
        }
        let _ = writeln!(
            svg,
            r##"<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#444"/>"##
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            left + plot_w / 2.0,
            HEIGHT - 10.0,
            escape(&self.x_label)
        );
        let _ = writeln!(
            svg,
            r#"<text transform="translate(16 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            top + plot_h / 2.0,
            escape(&self.y_label)
        );
        for (index, series) in self.series.iter().enumerate() {
            let colour = COLOURS[index % COLOURS.len()];
            let finite: Vec<(f64, f64)> =
                series.points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
            let path: Vec<String> = finite.iter().map(|&(x, y)| format!("{:.1},{:.1}", x_at(x), y_at(y))).collect();
            let _ = writeln!(
                svg,
                r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"><title>{}</title></polyline>"#,
                path.join(" "),
                escape(&series.name)
            );
            for &(x, y) in &finite {
                let _ = writeln!(svg, r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{colour}"/>"#, x_at(x), y_at(y));
            }
            let legend_y = top + 8.0 + index as f64 * 18.0;
            let legend_x = left + plot_w + 12.0;
            let _ = writeln!(
                svg,
                r#"<line x1="{legend_x}" y1="{legend_y}" x2="{:.1}" y2="{legend_y}" stroke="{colour}" stroke-width="3"/><text x="{:.1}" y="{:.1}">{}</text>"#,
                legend_x + 16.0,
                legend_x + 22.0,
                legend_y + 4.0,
                escape(&series.name)
            );
        }
        svg.push_str("</svg>\n");
        svg
    }
}

/// The ranges both axes show: the data's, widened when flat so every point
/// has a place, and from zero when asked.
fn bounds(points: impl Iterator<Item = (f64, f64)>, y_from_zero: bool) -> ((f64, f64), (f64, f64)) {
    let widen = |(low, high): (f64, f64)| {
        if !low.is_finite() || !high.is_finite() {
            (0.0, 1.0)
        } else if high - low < f64::EPSILON * high.abs().max(1.0) {
            (low - 1.0, high + 1.0)
        } else {
            (low, high)
        }
    };
    let (mut x, mut y) = ((f64::INFINITY, f64::NEG_INFINITY), (f64::INFINITY, f64::NEG_INFINITY));
    for (px, py) in points.filter(|(px, py)| px.is_finite() && py.is_finite()) {
        x = (x.0.min(px), x.1.max(px));
        y = (y.0.min(py), y.1.max(py));
    }
    if y_from_zero && y.0.is_finite() {
        y = (y.0.min(0.0), y.1.max(0.0));
    }
    (widen(x), widen(y))
}

/// The distance between ticks over `range`: 1, 2 or 5 times a power of ten,
/// for about [`TICKS`] ticks.
fn tick_step((low, high): (f64, f64)) -> f64 {
    let rough = (high - low) / TICKS as f64;
    let magnitude = 10f64.powf(rough.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|step| *step >= rough).unwrap_or(magnitude)
}

/// Round tick values spanning `range`.
fn ticks((low, high): (f64, f64)) -> Vec<f64> {
    let step = tick_step((low, high));
    let first = (low / step).ceil() as i64;
    let last = (high / step).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

/// A tick label: integers plainly, others with what precision they need.
fn label(value: f64) -> String {
    if value.fract().abs() < 1e-9 {
        format!("{value:.0}")
    } else {
        let text = format!("{value:.3}");
        text.trim_end_matches('0').to_owned()
    }
}

/// Text made safe for SVG.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(series: Vec<Series>) -> LineChart {
        LineChart {
            title: "Speed <by> threads".to_owned(),
            x_label: "threads".to_owned(),
            y_label: "tokens/s".to_owned(),
            series,
            y_from_zero: true,
        }
    }

    #[test]
    fn each_series_is_a_polyline_with_a_legend() {
        let svg = chart(vec![
            Series { name: "prefill".to_owned(), points: vec![(1.0, 150.0), (2.0, 290.0)] },
            Series { name: "decode".to_owned(), points: vec![(1.0, 60.0), (2.0, 100.0)] },
        ])
        .to_svg();
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 4);
        assert!(svg.contains("<title>prefill</title>") && svg.contains(">decode</text>"));
        assert!(svg.contains("Speed &lt;by&gt; threads"), "titles are escaped");
        // The y axis starts at 0 and ends on the round value above 290.
        assert!(svg.contains(">0</text>") && svg.contains(">300</text>"), "{svg}");
    }

    #[test]
    fn points_map_into_the_plot_area() {
        let svg = chart(vec![Series { name: "a".to_owned(), points: vec![(0.0, 0.0), (10.0, 100.0)] }]).to_svg();
        // 100 is a round value already: it is the top.
        let (left, right, top, bottom) = MARGIN;
        // The first point is the bottom-left corner, the last the top-right one.
        assert!(svg.contains(&format!("points=\"{left:.1},{:.1} {:.1},{top:.1}\"", HEIGHT - bottom, WIDTH - right)));
    }

    #[test]
    fn flat_empty_and_odd_data_still_draw() {
        let flat = chart(vec![Series { name: "flat".to_owned(), points: vec![(1.0, 5.0), (1.0, 5.0)] }]);
        assert!(!flat.to_svg().contains("NaN"));
        assert!(!chart(Vec::new()).to_svg().contains("NaN"));
        let odd = chart(vec![Series { name: "nan".to_owned(), points: vec![(f64::NAN, 1.0), (2.0, 3.0)] }]);
        let svg = odd.to_svg();
        assert!(svg.contains("<polyline") && !svg.contains("NaN"), "{svg}");
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(ticks((0.0, 100.0)), [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        let labels: Vec<String> = ticks((1.0, 2.0)).into_iter().map(label).collect();
        assert_eq!(labels, ["1", "1.2", "1.4", "1.6", "1.8", "2"]);
        assert_eq!(label(0.2), "0.2");
        assert_eq!(label(250.0), "250");
    }
}
