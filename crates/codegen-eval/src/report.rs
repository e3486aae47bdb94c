//! Benchmark run reports: `results.json`, `report.md` and an SVG chart, as
//! pure functions of the run's data.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::data::Sample;
use crate::evaluate::EvalReport;
use crate::json::JsonValue;
use crate::passk::mean_pass_at_k;
use crate::EvalError;

/// Extra key of a sample holding the seconds spent generating it. Kept in
/// `samples.jsonl` (the harness keeps extra keys), so timings survive `--resume`.
pub const GENERATION_SECONDS_KEY: &str = "generation_seconds";
/// Extra key of a sample holding the number of tokens generated for it.
pub const TOKENS_KEY: &str = "tokens";

/// Per-task records from evaluated samples: completions, passed flags and
/// results from `eval` (same order as `samples`), evaluation time from the
/// sandbox durations, generation time and tokens from the samples'
/// [`GENERATION_SECONDS_KEY`] and [`TOKENS_KEY`] extras (0 where absent).
/// Tasks are in order of first appearance.
pub fn task_records(samples: &[Sample], eval: &EvalReport) -> Vec<TaskRecord> {
    let mut records: Vec<TaskRecord> = Vec::new();
    for (sample, result) in samples.iter().zip(&eval.samples) {
        let idx = match records.iter().position(|r| r.task_id == sample.task_id) {
            Some(i) => i,
            None => {
                records.push(TaskRecord {
                    task_id: sample.task_id.clone(),
                    completions: Vec::new(),
                    passed: Vec::new(),
                    results: Vec::new(),
                    generation_seconds: 0.0,
                    eval_seconds: 0.0,
                    tokens: 0,
                });
                records.len() - 1
            }
        };
        let rec = &mut records[idx];
        rec.completions.push(sample.completion.clone());
        rec.passed.push(result.passed);
        rec.results.push(result.result.clone());
        rec.eval_seconds += result.duration.as_secs_f64();
        for (key, value) in sample.extra() {
            match (key, value) {
                (GENERATION_SECONDS_KEY, JsonValue::Float(s)) => rec.generation_seconds += s,
                (GENERATION_SECONDS_KEY, JsonValue::Int(s)) => rec.generation_seconds += *s as f64,
                (TOKENS_KEY, JsonValue::Int(t)) if *t >= 0 => rec.tokens += *t as u64,
                _ => {}
            }
        }
    }
    records
}

/// Settings of a benchmark run, recorded in the report.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSettings {
    /// Model name (and file, if useful), e.g. `qwen2.5-coder-0.5b-instruct q4_k_m`.
    pub model: String,
    /// `continuation` or `chat`.
    pub prompt_format: String,
    pub samples_per_task: usize,
    pub temperature: f64,
    pub top_p: f64,
    pub max_tokens: usize,
    pub seed: u64,
    /// In-program time limit per sample, seconds.
    pub timeout_s: f64,
    pub ks: Vec<u64>,
    pub workers: usize,
    /// Anything else worth recording (device, threads, git revision...).
    pub extra: Vec<(String, String)>,
}

/// Everything measured for one task.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRecord {
    pub task_id: String,
    pub completions: Vec<String>,
    pub passed: Vec<bool>,
    /// The harness's result strings, one per completion.
    pub results: Vec<String>,
    /// Time spent generating this task's completions.
    pub generation_seconds: f64,
    /// Time spent running them in the sandbox (sum over samples).
    pub eval_seconds: f64,
    /// Tokens generated for this task.
    pub tokens: u64,
}

impl TaskRecord {
    pub fn tokens_per_second(&self) -> f64 {
        rate(self.tokens, self.generation_seconds)
    }

    pub fn n_passed(&self) -> usize {
        self.passed.iter().filter(|p| **p).count()
    }
}

fn rate(tokens: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        tokens as f64 / seconds
    } else {
        0.0
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunReport {
    pub settings: RunSettings,
    pub tasks: Vec<TaskRecord>,
    /// (k, pass@k) computed as the harness does, for the ks every task has
    /// enough samples for.
    pub pass_at_k: Vec<(u64, f64)>,
    /// Wall-clock time of the whole run.
    pub wall_seconds: f64,
}

impl RunReport {
    pub fn new(settings: RunSettings, tasks: Vec<TaskRecord>, wall_seconds: f64) -> RunReport {
        let counts: Vec<(u64, u64)> = tasks
            .iter()
            .map(|t| (t.passed.len() as u64, t.n_passed() as u64))
            .collect();
        let pass_at_k = if counts.is_empty() {
            Vec::new()
        } else {
            mean_pass_at_k(&counts, &settings.ks)
        };
        RunReport {
            settings,
            tasks,
            pass_at_k,
            wall_seconds,
        }
    }

    pub fn total_tokens(&self) -> u64 {
        self.tasks.iter().map(|t| t.tokens).sum()
    }

    pub fn generation_seconds(&self) -> f64 {
        self.tasks.iter().map(|t| t.generation_seconds).sum()
    }

    pub fn eval_seconds(&self) -> f64 {
        self.tasks.iter().map(|t| t.eval_seconds).sum()
    }

    pub fn tokens_per_second(&self) -> f64 {
        rate(self.total_tokens(), self.generation_seconds())
    }

    fn n_samples(&self) -> usize {
        self.tasks.iter().map(|t| t.passed.len()).sum()
    }

    fn n_passed(&self) -> usize {
        self.tasks.iter().map(TaskRecord::n_passed).sum()
    }
}

/// The content of `results.json`.
pub fn results_json(report: &RunReport) -> serde_json::Value {
    let s = &report.settings;
    let extra: serde_json::Map<String, serde_json::Value> =
        s.extra.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    let mut pass_at_k = serde_json::Map::new();
    for (k, v) in &report.pass_at_k {
        pass_at_k.insert(format!("pass@{k}"), json!(v));
    }
    let tasks: Vec<serde_json::Value> = report
        .tasks
        .iter()
        .map(|t| {
            json!({
                "task_id": t.task_id,
                "n": t.passed.len(),
                "c": t.n_passed(),
                "passed": t.passed,
                "results": t.results,
                "generation_seconds": t.generation_seconds,
                "eval_seconds": t.eval_seconds,
                "tokens": t.tokens,
                "tokens_per_second": t.tokens_per_second(),
            })
        })
        .collect();
    json!({
        "model": s.model,
        "settings": {
            "model": s.model,
            "prompt_format": s.prompt_format,
            "samples_per_task": s.samples_per_task,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "max_tokens": s.max_tokens,
            "seed": s.seed,
            "timeout_s": s.timeout_s,
            "ks": s.ks,
            "workers": s.workers,
            "extra": extra,
        },
        "pass_at_k": pass_at_k,
        "totals": {
            "tasks": report.tasks.len(),
            "samples": report.n_samples(),
            "passed_samples": report.n_passed(),
            "tokens": report.total_tokens(),
            "generation_seconds": report.generation_seconds(),
            "eval_seconds": report.eval_seconds(),
            "wall_seconds": report.wall_seconds,
            "tokens_per_second": report.tokens_per_second(),
        },
        "tasks": tasks,
    })
}

/// The content of `report.md`.
pub fn report_markdown(report: &RunReport) -> String {
    let s = &report.settings;
    let mut md = String::new();
    let _ = writeln!(md, "# HumanEval: {}\n", s.model);
    let _ = writeln!(md, "| pass@k | value |\n|---|---|");
    for (k, v) in &report.pass_at_k {
        let _ = writeln!(md, "| pass@{k} | {:.2}% |", v * 100.0);
    }
    if report.pass_at_k.is_empty() {
        let _ = writeln!(md, "| (none: too few samples per task) | |");
    }
    let _ = writeln!(md, "\n## Settings\n\n| setting | value |\n|---|---|");
    let rows = [
        ("model", s.model.clone()),
        ("prompt format", s.prompt_format.clone()),
        ("samples per task", s.samples_per_task.to_string()),
        ("temperature", s.temperature.to_string()),
        ("top_p", s.top_p.to_string()),
        ("max tokens", s.max_tokens.to_string()),
        ("seed", s.seed.to_string()),
        ("timeout per sample", format!("{} s", s.timeout_s)),
        ("eval workers", s.workers.to_string()),
    ];
    for (k, v) in rows
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .chain(s.extra.iter().cloned())
    {
        let _ = writeln!(md, "| {k} | {} |", md_cell(&v));
    }
    let _ = writeln!(md, "\n## Totals\n");
    let _ = writeln!(
        md,
        "- tasks: {}, samples: {}, passed samples: {}",
        report.tasks.len(),
        report.n_samples(),
        report.n_passed()
    );
    let _ = writeln!(
        md,
        "- generation: {:.1} s, {} tokens, {:.2} tokens/s",
        report.generation_seconds(),
        report.total_tokens(),
        report.tokens_per_second()
    );
    let _ = writeln!(md, "- sandboxed evaluation: {:.1} s", report.eval_seconds());
    let _ = writeln!(md, "- wall clock: {:.1} s", report.wall_seconds);
    let _ = writeln!(md, "\n![pass@k and time per task](chart.svg)\n");
    let mut slowest: Vec<&TaskRecord> = report.tasks.iter().collect();
    slowest.sort_by(|a, b| b.generation_seconds.total_cmp(&a.generation_seconds));
    let _ = writeln!(
        md,
        "## Slowest tasks\n\n| task | generation s | tokens | tokens/s | passed |\n|---|---|---|---|---|"
    );
    for t in slowest.iter().take(10) {
        let _ = writeln!(
            md,
            "| {} | {:.2} | {} | {:.2} | {}/{} |",
            md_cell(&t.task_id),
            t.generation_seconds,
            t.tokens,
            t.tokens_per_second(),
            t.n_passed(),
            t.passed.len()
        );
    }
    let failing: Vec<&TaskRecord> = report.tasks.iter().filter(|t| t.n_passed() == 0).collect();
    let _ = writeln!(
        md,
        "\n## Tasks with no passing sample ({})\n",
        failing.len()
    );
    for t in failing {
        let first = t.results.first().map(String::as_str).unwrap_or("");
        let _ = writeln!(md, "- {}: {}", md_cell(&t.task_id), md_cell(first));
    }
    md
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

pub(crate) fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The SVG chart: bars of pass@k (top) and generation time per task
/// (bottom; green when some sample passed, red otherwise).
pub fn chart_svg(report: &RunReport) -> String {
    const W: f64 = 800.0;
    const H: f64 = 520.0;
    const LEFT: f64 = 60.0;
    const RIGHT: f64 = 20.0;
    let plot_w = W - LEFT - RIGHT;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="20" text-anchor="middle" font-size="14">HumanEval: {}</text>"#,
        W / 2.0,
        xml_escape(&report.settings.model)
    );
    // pass@k panel: y from 40 to 220, scale 0..1.
    let (top, bottom) = (40.0, 220.0);
    let panel_h = bottom - top;
    let _ = writeln!(
        svg,
        r#"<line x1="{LEFT}" y1="{bottom}" x2="{}" y2="{bottom}" stroke="black"/>"#,
        W - RIGHT
    );
    for tick in [0.0, 0.5, 1.0] {
        let y = bottom - tick * panel_h;
        let _ = writeln!(
            svg,
            r##"<text x="{}" y="{:.1}" text-anchor="end">{:.0}%</text><line x1="{LEFT}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/>"##,
            LEFT - 5.0,
            y + 4.0,
            tick * 100.0,
            W - RIGHT
        );
    }
    let n_k = report.pass_at_k.len().max(1) as f64;
    let slot = plot_w / n_k;
    for (i, (k, v)) in report.pass_at_k.iter().enumerate() {
        let bar_w = (slot * 0.6).min(120.0);
        let x = LEFT + slot * i as f64 + (slot - bar_w) / 2.0;
        let h = v.clamp(0.0, 1.0) * panel_h;
        let _ = writeln!(
            svg,
            r##"<rect class="passk" x="{x:.1}" y="{:.1}" width="{bar_w:.1}" height="{h:.1}" fill="#4c78a8"><title>pass@{k}: {:.4}</title></rect>"##,
            bottom - h,
            v
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">pass@{k} {:.1}%</text>"#,
            x + bar_w / 2.0,
            (bottom - h - 5.0).max(top + 10.0),
            v * 100.0
        );
    }
    // Time-per-task panel: y from 270 to 490.
    let (top, bottom) = (270.0, 490.0);
    let panel_h = bottom - top;
    let max_s = report
        .tasks
        .iter()
        .map(|t| t.generation_seconds)
        .fold(0.0f64, f64::max);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">generation time per task (max {:.2} s)</text>"#,
        W / 2.0,
        top - 12.0,
        max_s
    );
    let _ = writeln!(
        svg,
        r#"<line x1="{LEFT}" y1="{bottom}" x2="{}" y2="{bottom}" stroke="black"/>"#,
        W - RIGHT
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="end">{:.1} s</text><text x="{}" y="{}" text-anchor="end">0 s</text>"#,
        LEFT - 5.0,
        top + 4.0,
        max_s,
        LEFT - 5.0,
        bottom + 4.0
    );
    let n_tasks = report.tasks.len().max(1) as f64;
    let bar_w = plot_w / n_tasks;
    for (i, t) in report.tasks.iter().enumerate() {
        let h = if max_s > 0.0 {
            t.generation_seconds / max_s * panel_h
        } else {
            0.0
        };
        let color = if t.n_passed() > 0 {
            "#54a24b"
        } else {
            "#e45756"
        };
        let _ = writeln!(
            svg,
            r#"<rect class="task" x="{:.2}" y="{:.2}" width="{:.2}" height="{h:.2}" fill="{color}"><title>{}: {:.2} s, {}/{} passed</title></rect>"#,
            LEFT + bar_w * i as f64,
            bottom - h,
            (bar_w * 0.9).max(0.5),
            xml_escape(&t.task_id),
            t.generation_seconds,
            t.n_passed(),
            t.passed.len()
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">tasks ({})</text>"#,
        W / 2.0,
        bottom + 20.0,
        report.tasks.len()
    );
    svg.push_str("</svg>\n");
    svg
}

/// Paths written by [`write_run_outputs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutputs {
    pub results_json: PathBuf,
    pub report_md: PathBuf,
    pub chart_svg: PathBuf,
}

/// Writes `DIR/results.json`, `DIR/report.md` and `DIR/chart.svg`.
pub fn write_run_outputs(
    dir: impl AsRef<Path>,
    report: &RunReport,
) -> Result<RunOutputs, EvalError> {
    write_outputs(
        dir.as_ref(),
        &results_json(report),
        report_markdown(report),
        chart_svg(report),
    )
}

/// Writes a run's `results.json`, `report.md` and `chart.svg` into `dir`.
pub(crate) fn write_outputs(
    dir: &Path,
    results: &serde_json::Value,
    markdown: String,
    chart: String,
) -> Result<RunOutputs, EvalError> {
    std::fs::create_dir_all(dir).map_err(|e| EvalError::io(dir, e))?;
    let outputs = RunOutputs {
        results_json: dir.join("results.json"),
        report_md: dir.join("report.md"),
        chart_svg: dir.join("chart.svg"),
    };
    let json = serde_json::to_string_pretty(results)
        .map_err(|e| EvalError::InvalidConfig(format!("serializing results: {e}")))?;
    for (path, text) in [
        (&outputs.results_json, json + "\n"),
        (&outputs.report_md, markdown),
        (&outputs.chart_svg, chart),
    ] {
        std::fs::write(path, text).map_err(|e| EvalError::io(path, e))?;
    }
    Ok(outputs)
}
