//! codegen-eval: HumanEval benchmark runs and pass@k.
//!
//! - problems and samples files in the format of OpenAI's human-eval harness
//!   (`.jsonl` / `.jsonl.gz`; extra keys of samples are kept, in order);
//! - functional correctness exactly as the harness judges it: the same check
//!   program, `reliability_guard`, time limit and result strings ("passed",
//!   "timed out", "failed: <message>"), but every program runs inside
//!   `codegen-sandbox`;
//! - pass@k with the unbiased estimator in its numerically stable form, with
//!   numpy's reduction order, so the figures equal the harness's;
//! - `SAMPLES_results.jsonl` written byte for byte as the harness writes it
//!   (Python `json.dumps` formatting);
//! - HumanEval prompts (raw continuation with stop sequences, instruct chat
//!   format) and extraction of the completion from generated text;
//! - run reports (`results.json`, `report.md`, an SVG chart) and `--resume`
//!   support for `samples.jsonl`.
//! - behavioural tests ([`behavior`]: minimum functionality, invariance and
//!   directional tests over suites of case files, CheckList's summary), the
//!   language-aware source transformations they use ([`transform`]), and
//!   ReCode-style perturbed HumanEval with robust pass@1 ([`perturb`]).
//!
//! A `codegen bench humaneval` run, in outline (generation is the engine's):
//!
//! ```no_run
//! use codegen_eval::*;
//! use codegen_sandbox::{Sandbox, SandboxConfig};
//! # fn generate(prompt: &str, stops: &[&str]) -> (String, f64, u64) { unimplemented!() }
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = std::path::Path::new("run");
//! let problems = load_problems("HumanEval.jsonl.gz")?;
//! let samples_path = dir.join("samples.jsonl");
//! let resume = resume_state(&samples_path)?; // --resume
//! resume.prepare_for_append(&samples_path)?;
//! let format = PromptFormat::Continuation;
//! for problem in &problems {
//!     for _ in 0..resume.remaining(&problem.task_id, 1) {
//!         let (text, seconds, tokens) = generate(&format.prompt(problem), format.stop_sequences());
//!         let mut sample = Sample::new(problem.task_id.clone(), format.completion(&text));
//!         sample.set_extra(GENERATION_SECONDS_KEY, json::JsonValue::Float(seconds));
//!         sample.set_extra(TOKENS_KEY, json::JsonValue::Int(tokens.into()));
//!         append_samples(&samples_path, &[sample])?;
//!     }
//! }
//! let sandbox = Sandbox::new(SandboxConfig::default())?;
//! let cfg = EvalConfig::default();
//! let samples = read_samples(&samples_path)?;
//! let eval = evaluate(&samples, &problems, &cfg, &sandbox)?;
//! write_results(results_path(&samples_path), &samples, &eval)?;
//! let settings = RunSettings {
//!     model: "qwen2.5-coder-0.5b-instruct".into(),
//!     prompt_format: format.as_str().into(),
//!     samples_per_task: 1,
//!     temperature: 0.0,
//!     top_p: 1.0,
//!     max_tokens: 512,
//!     seed: 0,
//!     timeout_s: cfg.timeout_s,
//!     ks: cfg.ks.clone(),
//!     workers: cfg.workers,
//!     extra: vec![],
//! };
//! let report = RunReport::new(settings, task_records(&samples, &eval), 0.0);
//! write_run_outputs(dir, &report)?;
//! # Ok(()) }
//! ```
//!
//! What it never does: run untrusted code outside the sandbox (behavioural
//! checks of Rust, JavaScript, TypeScript and Go completions compile or
//! type-check them with the local toolchain and never run them), generate text
//! (the engine does), fetch the human-eval package (`codegen-store` does),
//! print to stdout (the CLI does).

pub mod behavior;
pub mod chart;
mod data;
mod evaluate;
pub mod infill;
pub mod json;
mod passk;
pub mod perturb;
mod prompts;
pub mod ranking;
mod report;
pub mod run;
pub mod transform;

use std::path::{Path, PathBuf};

pub use data::{
    append_samples, load_problems, read_samples, results_path, resume_state, write_samples,
    Problem, ResumeState, Sample,
};
pub use evaluate::{
    check_program, evaluate, evaluate_file, evaluate_with_progress, harness_program,
    limits_vs_reference, python_str_literal, result_from_outcome, results_lines, write_results,
    EvalConfig, EvalReport, SampleResult, TaskCount,
};
pub use passk::{mean_pass_at_k, numpy_mean, numpy_pairwise_sum, pass_at_k};
pub use prompts::{
    chat_prompt, continuation_prompt, extract_chat_completion, truncate_at_stops, PromptFormat,
    CHAT_STOP_SEQUENCES, STOP_SEQUENCES,
};
pub use report::{
    chart_svg, f32_setting, failure_reason, render_run_again, report_markdown, results_json,
    round_to, run_report_from_json, task_records, write_run_outputs, RunOutputs, RunReport,
    RunSettings, TaskRecord, GENERATION_SECONDS_KEY, TOKENS_KEY,
};

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}, line {line}: {message}")]
    BadLine {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{0}: no problems in the file")]
    Empty(PathBuf),
    #[error("no samples to evaluate")]
    NoSamples,
    #[error("sample {sample_index} names task {task_id:?}, which is not among the problems")]
    UnknownTask {
        task_id: String,
        sample_index: usize,
    },
    #[error(
        "some problems are not attempted ({} missing, e.g. {:?}); evaluate only the attempted ones with ignore_incomplete",
        missing.len(),
        missing.first().map(String::as_str).unwrap_or("")
    )]
    Incomplete { missing: Vec<String> },
    #[error("the sandbox could not run a program: {0}")]
    Sandbox(String),
    #[error("invalid evaluation settings: {0}")]
    InvalidConfig(String),
    #[error("the engine failed: {0}")]
    Engine(String),
}

impl EvalError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> EvalError {
        EvalError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

#[cfg(test)]
mod ranking_tests;
#[cfg(test)]
mod tests;
