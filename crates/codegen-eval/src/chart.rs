//! Charts of run reports (`chart.svg`) and of `codegen stats --svg`, drawn
//! with plotters' SVG backend.
//! Drawing never fails a run: an error becomes a chart that says so.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Series colours, in order (colour-blind-safe Tableau hues).
const COLORS: [RGBColor; 4] = [
    RGBColor(0x4c, 0x78, 0xa8),
    RGBColor(0xf5, 0x85, 0x18),
    RGBColor(0x54, 0xa2, 0x4b),
    RGBColor(0xe4, 0x57, 0x56),
];
const PASSED: RGBColor = RGBColor(0x54, 0xa2, 0x4b);
const FAILED: RGBColor = RGBColor(0xe4, 0x57, 0x56);

pub type DrawResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Bars grouped along x (e.g. modes), one bar per series (e.g. policies)
/// in each group; `values[series][group]`, `None` where a series has no
/// value for a group. Values are labelled with 3 decimals.
pub(crate) struct GroupedBars<'a> {
    pub title: &'a str,
    pub y_label: &'a str,
    pub x_label: &'a str,
    pub groups: Vec<String>,
    pub series: Vec<String>,
    pub values: Vec<Vec<Option<f64>>>,
    /// The top of the y axis (values are clamped to it).
    pub y_max: f64,
}

/// Renders `draw` into an SVG document of `size` pixels; a drawing error
/// becomes a chart that says so.
pub fn svg(
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> DrawResult<()>,
) -> String {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        let drawn = root
            .fill(&WHITE)
            .map_err(Into::into)
            .and_then(|()| draw(&root));
        if let Err(err) = drawn {
            let _ = root.fill(&WHITE);
            let _ = root.draw(&Text::new(
                format!("chart unavailable: {err}"),
                (10, 20),
                ("sans-serif", 14),
            ));
        }
        let _ = root.present();
    }
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

pub(crate) fn grouped_bars_svg(chart: &GroupedBars, size: (u32, u32)) -> String {
    svg(size, |root| draw_grouped_bars(root, chart))
}

fn draw_grouped_bars(area: &DrawingArea<SVGBackend, Shift>, bars: &GroupedBars) -> DrawResult<()> {
    let n_groups = bars.groups.len().max(1);
    let y_max = if bars.y_max > 0.0 { bars.y_max } else { 1.0 };
    let mut chart = ChartBuilder::on(area)
        .caption(bars.title, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..n_groups as f64, 0f64..y_max)?;
    let mut mesh = chart.configure_mesh();
    mesh.disable_x_mesh()
        .light_line_style(TRANSPARENT)
        .x_labels(0)
        .y_desc(bars.y_label)
        .y_label_formatter(&|y| format!("{y:.2}"));
    if !bars.x_label.is_empty() {
        mesh.x_desc(bars.x_label);
    }
    mesh.draw()?;
    if bars.groups.is_empty() {
        chart.draw_series(std::iter::once(Text::new(
            "no results",
            (n_groups as f64 / 2.0, y_max / 2.0),
            TextStyle::from(("sans-serif", 14).into_font())
                .pos(Pos::new(HPos::Center, VPos::Center)),
        )))?;
    }
    let n_series = bars.series.len().max(1) as f64;
    let bar_w = 0.7 / n_series;
    for (s, name) in bars.series.iter().enumerate() {
        let color = COLORS[s % COLORS.len()];
        let values = bars.values.get(s).cloned().unwrap_or_default();
        let placed: Vec<(f64, f64)> = values
            .iter()
            .enumerate()
            .filter_map(|(g, v)| v.map(|v| (0.15 + g as f64 + bar_w * s as f64, v)))
            .collect();
        chart
            .draw_series(placed.iter().map(|&(x, v)| {
                Rectangle::new(
                    [(x, 0.0), (x + bar_w * 0.92, v.clamp(0.0, y_max))],
                    color.filled(),
                )
            }))?
            .label(name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
        chart.draw_series(placed.iter().map(|&(x, v)| {
            Text::new(
                format!("{v:.3}"),
                (x + bar_w * 0.46, v.clamp(0.0, y_max)),
                TextStyle::from(("sans-serif", 11).into_font())
                    .pos(Pos::new(HPos::Center, VPos::Bottom)),
            )
        }))?;
    }
    for (g, group) in bars.groups.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(g as f64 + 0.5, 0.0));
        area.draw(&Text::new(
            group.clone(),
            (x, y + 6),
            TextStyle::from(("sans-serif", 12).into_font()).pos(Pos::new(HPos::Center, VPos::Top)),
        ))?;
    }
    if bars.series.len() > 1 {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .draw()?;
    }
    Ok(())
}

/// One bar per task: its generation time, green when a sample passed.
pub(crate) struct TaskTimes<'a> {
    pub title: &'a str,
    /// (seconds, passed) per task, in order.
    pub tasks: Vec<(f64, bool)>,
}

/// Two panels: grouped bars on top, task times below.
pub(crate) fn bars_and_task_times_svg(
    bars: &GroupedBars,
    times: &TaskTimes,
    size: (u32, u32),
) -> String {
    svg(size, |root| {
        let (top, bottom) = root.split_vertically(size.1 / 2);
        draw_grouped_bars(&top, bars)?;
        draw_task_times(&bottom, times)
    })
}

fn draw_task_times(area: &DrawingArea<SVGBackend, Shift>, times: &TaskTimes) -> DrawResult<()> {
    let n = times.tasks.len().max(1);
    let max_s = times
        .tasks
        .iter()
        .map(|(s, _)| *s)
        .filter(|s| s.is_finite())
        .fold(0.0f64, f64::max);
    let y_max = if max_s > 0.0 { max_s * 1.05 } else { 1.0 };
    let mut chart = ChartBuilder::on(area)
        .caption(times.title, ("sans-serif", 14))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..n as f64, 0f64..y_max)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(TRANSPARENT)
        .x_labels(0)
        .x_desc(format!(
            "tasks ({}); green: a sample passed, red: none did",
            times.tasks.len()
        ))
        .y_desc("generation s")
        .y_label_formatter(&|y| format!("{y:.1}"))
        .draw()?;
    chart.draw_series(times.tasks.iter().enumerate().map(|(i, &(s, passed))| {
        let color = if passed { PASSED } else { FAILED };
        let top = if s.is_finite() {
            s.clamp(0.0, y_max)
        } else {
            0.0
        };
        Rectangle::new(
            [(i as f64 + 0.05, 0.0), (i as f64 + 0.95, top)],
            color.filled(),
        )
    }))?;
    Ok(())
}
