//! `genjit churn --plot FILE.svg`: memory over time for each engine, as a self-contained SVG.
//!
//! Three panels share the time axis: resident set size, live JIT bytes (see
//! [`Sample::jit_bytes`](crate::churn::Sample) for what each engine can report) and memory mappings. Written
//! by hand: a few polylines and labels do not justify a plotting dependency.

use crate::churn::{ChurnReport, Sample};
use std::fmt::Write;

const WIDTH: f64 = 760.0;
const PANEL: f64 = 190.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 56.0;
const GAP: f64 = 50.0;
const COLORS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

/// A "nice" axis maximum and tick step covering `max` with at most six steps.
fn ticks(max: f64) -> (f64, f64) {
    let max = if max > 0.0 { max } else { 1.0 };
    let mag = 10f64.powf((max / 6.0).log10().floor());
    // Steps needed at `step` (the epsilon keeps 1.0 / 0.2 from rounding up to 6).
    let steps = |step: f64| (max / step - 1e-9).ceil();
    let step =
        [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * mag).find(|&s| steps(s) <= 6.0).unwrap_or(mag * 10.0);
    (steps(step) * step, step)
}

fn label(v: f64) -> String {
    if v.fract().abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Draws `reports` (one line per engine in each panel).
pub fn svg(reports: &[ChurnReport]) -> String {
    type Metric = (&'static str, fn(&Sample) -> f64);
    let metrics: [Metric; 3] = [
        ("RSS (MiB)", |s| s.rss_bytes as f64 / 1048576.0),
        ("live JIT bytes (MiB)", |s| s.jit_bytes as f64 / 1048576.0),
        ("memory mappings", |s| s.mappings as f64),
    ];
    let height = TOP + metrics.len() as f64 * (PANEL + GAP) + 30.0;
    let t_max = reports.iter().flat_map(|r| r.series.iter().map(|s| s.t)).fold(0.0, f64::max);
    let (t_max, t_step) = ticks(t_max);
    let plot_w = WIDTH - LEFT - RIGHT;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>"
    );
    let title = reports
        .iter()
        .map(|r| format!("{} {:.0} cycles/s", r.engine.name(), r.cycles_per_sec))
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(out, "<text x=\"{LEFT}\" y=\"22\" font-size=\"14\">genjit churn: {title}</text>");
    for (p, (name, metric)) in metrics.iter().enumerate() {
        let top = TOP + p as f64 * (PANEL + GAP);
        let y_max = reports.iter().flat_map(|r| r.series.iter().map(metric)).fold(0.0, f64::max);
        let (y_max, y_step) = ticks(y_max);
        let x = |t: f64| LEFT + t / t_max * plot_w;
        let y = |v: f64| top + PANEL - v / y_max * PANEL;
        let _ = writeln!(
            out,
            "<rect x=\"{LEFT}\" y=\"{top}\" width=\"{plot_w}\" height=\"{PANEL}\" fill=\"none\" stroke=\"#888\"/>\n\
             <text x=\"{LEFT}\" y=\"{:.1}\">{name}</text>",
            top - 6.0
        );
        let mut v = 0.0;
        while v <= y_max + y_step / 2.0 {
            let _ = writeln!(
                out,
                "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#eee\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                LEFT + plot_w,
                LEFT - 6.0,
                y(v) + 4.0,
                label(v),
                yy = y(v)
            );
            v += y_step;
        }
        let mut t = 0.0;
        while t <= t_max + t_step / 2.0 {
            let _ = writeln!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                x(t),
                top + PANEL + 16.0,
                label(t)
            );
            t += t_step;
        }
        for (i, r) in reports.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let points: Vec<String> =
                r.series.iter().map(|s| format!("{:.1},{:.1}", x(s.t), y(metric(s)))).collect();
            let _ = writeln!(
                out,
                "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\"/>",
                points.join(" ")
            );
            let _ = writeln!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"{color}\" text-anchor=\"end\">{}</text>",
                LEFT + plot_w - 6.0,
                top + 16.0 + 14.0 * i as f64,
                match (p, r.engine) {
                    (1, crate::churn::Engine::Lljit) => "lljit (code pages only)",
                    _ => r.engine.name(),
                }
            );
        }
    }
    let _ = writeln!(
        out,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">seconds</text>\n</svg>",
        LEFT + plot_w / 2.0,
        height - 8.0
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_cover_the_maximum_with_round_steps() {
        assert_eq!(ticks(7.3), (8.0, 2.0));
        assert_eq!(ticks(100.0), (100.0, 20.0));
        assert_eq!(ticks(4.0001), (5.0, 1.0));
        assert_eq!(ticks(0.0), (1.0, 0.2));
        assert_eq!(ticks(3100.0), (4000.0, 1000.0));
    }
}
