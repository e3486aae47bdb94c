//! `codegen stats`: acceptance rate and latency percentiles per model and
//! language, from the local telemetry log the language server writes.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use codegen_lsp::telemetry::{now_ms, read_events, summarize};

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
    let since_ms = args
        .since
        .map(|since| now_ms().saturating_sub(since.as_millis() as u64));
    let path = args
        .file
        .clone()
        .unwrap_or_else(|| crate::cache_hint().join("telemetry.jsonl"));
    let (events, n_bad) =
        read_events(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let stats = summarize(&events, since_ms);
    let mut out = std::io::stdout().lock();
    if args.json {
        let value = serde_json::json!({
            "file": path,
            "since": args.since.map(|d| humantime::format_duration(d).to_string()),
            "unreadable_lines": n_bad,
            "groups": stats,
        });
        writeln!(out, "{value}")?;
        return Ok(());
    }
    if stats.is_empty() {
        writeln!(out, "no suggestions recorded in {}", path.display())?;
        return Ok(());
    }
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
    for column in 2..10 {
        if let Some(column) = table.column_mut(column) {
            column.set_cell_alignment(comfy_table::CellAlignment::Right);
        }
    }
    writeln!(out, "{table}")?;
    writeln!(
        out,
        "RANK P50: ranking time of shown suggestions; EXAMPLES: shown suggestions that passed all \
         their docstring's examples / those ranked with examples run"
    )?;
    if n_bad > 0 {
        writeln!(out, "({n_bad} unreadable lines skipped)")?;
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
