//! `codegen stats --svg`: the telemetry trends as four stacked line charts
//! (replies, acceptance rate, empty-suggestion rate, p95 latency), drawn
//! with plotters' SVG backend. A drawing error becomes a chart that says so.

use codegen_eval::chart::{svg, DrawResult};
use codegen_lsp::monitor::Series;
use plotters::prelude::*;

const BLUE: RGBColor = RGBColor(0x4c, 0x78, 0xa8);
const ORANGE: RGBColor = RGBColor(0xf5, 0x85, 0x18);
const GREEN: RGBColor = RGBColor(0x54, 0xa2, 0x4b);
const RED: RGBColor = RGBColor(0xe4, 0x57, 0x56);

/// The SVG document of `series`; `source` names the telemetry file.
pub fn trends_svg(series: &Series, source: &str) -> String {
    svg((900, 820), |root| draw(root, series, source))
}

fn draw(
    root: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    series: &Series,
    source: &str,
) -> DrawResult<()> {
    let hourly = series.bucket_ms == 3_600_000;
    let unit = if hourly { "hours" } else { "days" };
    let title = format!(
        "codegen suggestions over the last {} {unit} ({source})",
        series.replies.len()
    );
    let root = root.titled(&title, ("sans-serif", 18))?;
    let panels = root.split_evenly((4, 1));
    let replies: Vec<Option<f64>> = series.replies.iter().map(|n| Some(*n as f64)).collect();
    let percent = |v: &[Option<f64>]| v.iter().map(|x| x.map(|x| x * 100.0)).collect::<Vec<_>>();
    /// Title, values, colour, fixed top of the y axis.
    type Panel<'a> = (&'a str, Vec<Option<f64>>, RGBColor, Option<f64>);
    let charts: [Panel; 4] = [
        ("replies", replies, BLUE, None),
        (
            "acceptance rate (%)",
            percent(&series.acceptance_rate),
            GREEN,
            Some(100.0),
        ),
        (
            "empty suggestions (%)",
            percent(&series.empty_rate),
            ORANGE,
            Some(100.0),
        ),
        ("p95 latency (ms)", series.latency_p95_ms.clone(), RED, None),
    ];
    let n = series.replies.len().max(1);
    for (area, (name, values, color, top)) in panels.iter().zip(charts) {
        let max = values.iter().flatten().copied().fold(0.0f64, f64::max);
        let y_max = top.unwrap_or(if max > 0.0 { max * 1.1 } else { 1.0 });
        let mut chart = ChartBuilder::on(area)
            .caption(name, ("sans-serif", 14))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..n as f64, 0f64..y_max)?;
        chart
            .configure_mesh()
            .x_desc(format!("{unit} ago"))
            .x_label_formatter(&|x| format!("{:.0}", n as f64 - x))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        // Consecutive buckets with a value are joined; a gap breaks the line.
        let mut run: Vec<(f64, f64)> = Vec::new();
        let mut runs = Vec::new();
        for (i, v) in values.iter().enumerate() {
            match v {
                Some(v) if v.is_finite() => run.push((i as f64 + 0.5, *v)),
                _ => runs.push(std::mem::take(&mut run)),
            }
        }
        runs.push(run);
        for run in runs.into_iter().filter(|r| !r.is_empty()) {
            chart.draw_series(LineSeries::new(run.clone(), color.stroke_width(2)))?;
            chart.draw_series(run.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
        }
    }
    Ok(())
}
