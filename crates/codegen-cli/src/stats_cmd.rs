//! `codegen stats`: acceptance rate and latency percentiles per model and
//! language, from the local telemetry log the language server writes.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use codegen_lsp::telemetry::{now_ms, read_events, summarize};

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Only events of the last DURATION (e.g. 90s, 30m, 24h, 7d, 2w).
    #[arg(long, value_name = "DURATION")]
    pub since: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Telemetry file (default: <cache>/telemetry.jsonl).
    #[arg(long)]
    pub file: Option<PathBuf>,
}

pub fn parse_duration(text: &str) -> Result<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .with_context(|| format!("--since {text:?}: expected a number and a unit, like 7d"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" | "" => 86_400,
        "w" => 7 * 86_400,
        _ => bail!("--since {text:?}: unknown unit {unit:?} (use s, m, h, d or w)"),
    };
    Ok(Duration::from_secs(n.saturating_mul(secs)))
}

fn ms(value: Option<f64>) -> String {
    value.map_or("-".into(), |v| format!("{v:.0}"))
}

pub fn run(args: StatsArgs) -> Result<()> {
    let since_ms = match &args.since {
        Some(text) => Some(now_ms().saturating_sub(parse_duration(text)?.as_millis() as u64)),
        None => None,
    };
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
            "since": args.since,
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
    writeln!(
        out,
        "{:<28} {:<12} {:>7} {:>8} {:>7} {:>7} {:>8} {:>8} {:>8} {:>9}",
        "MODEL",
        "LANGUAGE",
        "SHOWN",
        "ACCEPTED",
        "PARTIAL",
        "RATE",
        "P50 MS",
        "P95 MS",
        "RANK P50",
        "EXAMPLES"
    )?;
    for g in &stats {
        writeln!(
            out,
            "{:<28} {:<12} {:>7} {:>8} {:>7} {:>6.1}% {:>8} {:>8} {:>8} {:>9}",
            g.model,
            g.language,
            g.shown,
            g.accepted,
            g.partially_accepted,
            g.acceptance_rate * 100.0,
            ms(g.latency_p50_ms),
            ms(g.latency_p95_ms),
            ms(g.rank_p50_ms),
            format!("{}/{}", g.passed_examples, g.ranked_by_examples)
        )?;
    }
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
        for bad in ["", "d", "7y", "-1d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
