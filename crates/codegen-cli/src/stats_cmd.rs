//! `codegen stats`: acceptance rate and latency percentiles per model and
//! language (or models side by side, with confidence intervals, shadow
//! agreement and a significance test: `--by model`), trends as sparklines
//! (`--svg` for a chart) and input drift, from the local telemetry log the
//! language server writes.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use codegen_lsp::monitor::{self, DriftConfig};
use codegen_lsp::telemetry::{now_ms, read_events, summarize, TelemetryEvent};

/// How `codegen stats` groups suggestions.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupBy {
    /// One row per model and language.
    ModelLanguage,
    /// Models side by side: acceptance with its 95% interval, shadow runs,
    /// and whether the difference from the most-shown model is significant.
    Model,
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Only events of the last DURATION (e.g. 90s, 30m, 24h, 7d, 2w, "1h 30m").
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub since: Option<Duration>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Telemetry file (default: <cache>/telemetry.jsonl).
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// How rows are grouped.
    #[arg(long, value_enum, default_value = "model-language")]
    pub by: GroupBy,
    /// Write the trends (replies, acceptance, empty rate, p95 latency) as an
    /// SVG chart to FILE.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// Drift check: the recent window, compared with the baseline before it.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "1d")]
    pub window: Duration,
    /// Drift check: the baseline window, which ends where the recent one starts.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "7d")]
    pub baseline: Duration,
}

/// A duration such as `7d` or `1h 30m` (humantime's syntax).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("{e} (expected a number and a unit, like 90s, 30m, 24h, 7d or 2w)"))
}

fn ms(value: Option<f64>) -> String {
    value.map_or("-".into(), |v| format!("{v:.0}"))
}

pub fn run(args: StatsArgs) -> Result<()> {
    let now = now_ms();
    let since_ms = args
        .since
        .map(|since| now.saturating_sub(since.as_millis() as u64));
    let path = args
        .file
        .clone()
        .unwrap_or_else(|| crate::cache_hint().join("telemetry.jsonl"));
    let (events, n_bad) =
        read_events(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let drift_config = DriftConfig {
        recent_ms: args.window.as_millis() as u64,
        baseline_ms: args.baseline.as_millis() as u64,
        ..DriftConfig::default()
    };
    let drift = monitor::drift(&events, now, &drift_config);
    let (start, end) = series_span(&events, since_ms, now);
    let series = monitor::series(&events, start, end);
    if let Some(svg) = &args.svg {
        let chart = crate::stats_chart::trends_svg(&series, &path.display().to_string());
        std::fs::write(svg, chart).with_context(|| format!("cannot write {}", svg.display()))?;
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        let mut value = serde_json::json!({
            "file": path,
            "since": args.since.map(|d| humantime::format_duration(d).to_string()),
            "unreadable_lines": n_bad,
            "drift": drift,
            "drift_config": drift_config,
            "series": series,
        });
        match args.by {
            GroupBy::ModelLanguage => {
                value["groups"] = serde_json::json!(summarize(&events, since_ms))
            }
            GroupBy::Model => {
                let models = monitor::by_model(&events, since_ms);
                let comparisons: Vec<serde_json::Value> = monitor::compare_to_first(&models)
                    .into_iter()
                    .map(
                        |(a, b, test)| serde_json::json!({"baseline": a, "model": b, "test": test}),
                    )
                    .collect();
                value["models"] = serde_json::json!(models);
                value["comparisons"] = serde_json::json!(comparisons);
            }
        }
        writeln!(out, "{value}")?;
        return Ok(());
    }
    let has_replies = events.iter().any(|e| since_ms.is_none_or(|s| e.ts_ms >= s));
    if !has_replies {
        writeln!(out, "no suggestions recorded in {}", path.display())?;
        if n_bad > 0 {
            writeln!(out, "({n_bad} unreadable lines skipped)")?;
        }
        return Ok(());
    }
    match args.by {
        GroupBy::ModelLanguage => print_groups(&mut out, &events, since_ms)?,
        GroupBy::Model => print_models(&mut out, &events, since_ms)?,
    }
    print_trends(&mut out, &series)?;
    print_drift(&mut out, &drift, &drift_config)?;
    if let Some(svg) = &args.svg {
        writeln!(out, "chart written to {}", svg.display())?;
    }
    if n_bad > 0 {
        writeln!(out, "({n_bad} unreadable lines skipped)")?;
    }
    Ok(())
}

/// The span the trends cover: `--since` (or the first event) to now, at
/// most 30 days.
fn series_span(events: &[TelemetryEvent], since_ms: Option<u64>, now: u64) -> (u64, u64) {
    let first = events.iter().map(|e| e.ts_ms).min().unwrap_or(now);
    let start = since_ms
        .unwrap_or(first)
        .max(now.saturating_sub(30 * 86_400_000));
    (start.min(now), now)
}

fn right_align(table: &mut comfy_table::Table, columns: std::ops::Range<usize>) {
    for column in columns {
        if let Some(column) = table.column_mut(column) {
            column.set_cell_alignment(comfy_table::CellAlignment::Right);
        }
    }
}

fn print_groups(
    out: &mut impl Write,
    events: &[TelemetryEvent],
    since_ms: Option<u64>,
) -> Result<()> {
    let stats = summarize(events, since_ms);
    let mut table = crate::table([
        "MODEL", "LANGUAGE", "SHOWN", "ACCEPTED", "PARTIAL", "RATE", "P50 MS", "P95 MS",
        "RANK P50", "EXAMPLES",
    ]);
    for g in &stats {
        table.add_row(vec![
            g.model.clone(),
            g.language.clone(),
            g.shown.to_string(),
            g.accepted.to_string(),
            g.partially_accepted.to_string(),
            format!("{:.1}%", g.acceptance_rate * 100.0),
            ms(g.latency_p50_ms),
            ms(g.latency_p95_ms),
            ms(g.rank_p50_ms),
            format!("{}/{}", g.passed_examples, g.ranked_by_examples),
        ]);
    }
    right_align(&mut table, 2..10);
    writeln!(out, "{table}")?;
    writeln!(
        out,
        "RANK P50: ranking time of shown suggestions; EXAMPLES: shown suggestions that passed all \
         their docstring's examples / those ranked with examples run"
    )?;
    Ok(())
}

fn pct(value: Option<f64>) -> String {
    value.map_or("-".into(), |v| format!("{:.1}%", v * 100.0))
}

fn print_models(
    out: &mut impl Write,
    events: &[TelemetryEvent],
    since_ms: Option<u64>,
) -> Result<()> {
    let models = monitor::by_model(events, since_ms);
    let mut table = crate::table([
        "MODEL",
        "SHOWN",
        "ACCEPTED",
        "RATE",
        "95% CI",
        "EMPTY",
        "SYNTAX OK",
        "LOGPROB",
        "P50 MS",
        "P95 MS",
    ]);
    for m in &models {
        table.add_row(vec![
            m.model.clone(),
            m.shown.to_string(),
            m.accepted.to_string(),
            format!("{:.1}%", m.acceptance_rate * 100.0),
            if m.shown > 0 {
                format!(
                    "{:.1}-{:.1}%",
                    m.acceptance_ci.0 * 100.0,
                    m.acceptance_ci.1 * 100.0
                )
            } else {
                "-".into()
            },
            pct((m.shown + m.empty > 0).then_some(m.empty_rate)),
            pct(m.syntax_ok_rate),
            m.mean_logprob.map_or("-".into(), |v| format!("{v:.3}")),
            ms(m.latency_p50_ms),
            ms(m.latency_p95_ms),
        ]);
    }
    right_align(&mut table, 1..10);
    writeln!(out, "{table}")?;
    let shadows: Vec<_> = models
        .iter()
        .filter_map(|m| m.shadow.as_ref().map(|s| (m, s)))
        .collect();
    if !shadows.is_empty() {
        writeln!(
            out,
            "\nShadow runs (the candidate on the primary's requests, never shown):"
        )?;
        let mut table = crate::table([
            "CANDIDATE",
            "RUNS",
            "SAME TEXT",
            "SAME 1ST LINE",
            "SYNTAX OK",
            "LOGPROB",
            "PRIMARY LOGPROB",
            "P50 MS",
            "PRIMARY P50",
        ]);
        for (m, s) in shadows {
            table.add_row(vec![
                m.model.clone(),
                s.runs.to_string(),
                pct(Some(s.agree_exact_rate)),
                pct(Some(s.agree_first_line_rate)),
                pct(s.syntax_ok_rate),
                s.mean_logprob.map_or("-".into(), |v| format!("{v:.3}")),
                s.primary_mean_logprob
                    .map_or("-".into(), |v| format!("{v:.3}")),
                ms(s.latency_p50_ms),
                ms(s.primary_latency_p50_ms),
            ]);
        }
        right_align(&mut table, 1..9);
        writeln!(out, "{table}")?;
    }
    for (a, b, test) in monitor::compare_to_first(&models) {
        let verdict = if test.significant {
            "significant at the 5% level"
        } else if test.p_value < 0.05 {
            "not conclusive: fewer than 30 shown suggestions in a group"
        } else {
            "not significant"
        };
        writeln!(
            out,
            "{b} vs {a}: acceptance {:+.1} points (z = {:.2}, p = {:.3}): {verdict}",
            test.difference * 100.0,
            test.z,
            test.p_value
        )?;
    }
    writeln!(
        out,
        "RATE: accepted whole or in part / shown; 95% CI: Wilson interval; EMPTY: requests \
         answered with no suggestion; SYNTAX OK: shown suggestions that add no syntax error; \
         LOGPROB: mean token log-probability of the shown suggestion"
    )?;
    Ok(())
}

fn print_trends(out: &mut impl Write, series: &monitor::Series) -> Result<()> {
    let unit = if series.bucket_ms == 3_600_000 {
        "hour"
    } else {
        "day"
    };
    let replies: Vec<Option<f64>> = series.replies.iter().map(|n| Some(*n as f64)).collect();
    let last = |v: &[Option<f64>], f: &dyn Fn(f64) -> String| {
        v.iter()
            .rev()
            .flatten()
            .next()
            .map_or("-".to_string(), |x| f(*x))
    };
    writeln!(
        out,
        "\nTrends, one character per {unit} ({} {unit}s):",
        series.replies.len()
    )?;
    type Row<'a> = (&'a str, &'a [Option<f64>], &'a dyn Fn(f64) -> String);
    let rows: [Row; 4] = [
        ("replies", &replies, &|x| format!("{x:.0}")),
        ("acceptance", &series.acceptance_rate, &|x| {
            format!("{:.0}%", x * 100.0)
        }),
        ("empty", &series.empty_rate, &|x| {
            format!("{:.0}%", x * 100.0)
        }),
        ("p95 latency", &series.latency_p95_ms, &|x| {
            format!("{x:.0} ms")
        }),
    ];
    for (name, values, fmt) in rows {
        writeln!(
            out,
            "  {name:<12} {}  last {}",
            monitor::sparkline(values),
            last(values, fmt)
        )?;
    }
    Ok(())
}

fn print_drift(
    out: &mut impl Write,
    drift: &monitor::DriftReport,
    config: &DriftConfig,
) -> Result<()> {
    let days = |ms: u64| humantime::format_duration(Duration::from_millis(ms)).to_string();
    if drift.checks.is_empty() {
        writeln!(
            out,
            "\nDrift: not checked: the last {} has {} replies and the {} before it {} (each needs {})",
            days(config.recent_ms),
            drift.recent_replies,
            days(config.baseline_ms),
            drift.baseline_replies,
            config.min_replies
        )?;
        return Ok(());
    }
    let drifted: Vec<_> = drift.drifted().collect();
    writeln!(
        out,
        "\nDrift (last {} vs the {} before: {} vs {} replies): {}",
        days(config.recent_ms),
        days(config.baseline_ms),
        drift.recent_replies,
        drift.baseline_replies,
        if drifted.is_empty() {
            "none"
        } else {
            "WARNING"
        }
    )?;
    for check in &drift.checks {
        writeln!(
            out,
            "  {} {:<16} {} (threshold {})",
            if check.drifted { "!" } else { " " },
            check.kind.as_str(),
            check.message,
            check.threshold
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86_400)
        );
        assert_eq!(
            parse_duration("2w").unwrap(),
            Duration::from_secs(14 * 86_400)
        );
        assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
        for bad in ["", "d", "7", "-1d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
