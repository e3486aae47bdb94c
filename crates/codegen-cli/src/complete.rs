use std::io::Write;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use std::sync::Arc;

use codegen_context::Language;
use codegen_engine::{
    CompletionRequest, CompletionSettings, Document, Engine, EngineConfig, ExampleRuns,
    PromptFormat, RankPolicy, RankSettings,
};
use codegen_store::Store;

use crate::input::{cursor_offset, read_source};
use crate::{ModelArgs, SamplingArgs};

/// The languages `--language` accepts (LSP language ids).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LanguageArg {
    Python,
    Rust,
    Javascript,
    Typescript,
    Typescriptreact,
    Go,
}

impl LanguageArg {
    fn language(self) -> Language {
        match self {
            LanguageArg::Python => Language::Python,
            LanguageArg::Rust => Language::Rust,
            LanguageArg::Javascript => Language::JavaScript,
            LanguageArg::Typescript => Language::TypeScript,
            LanguageArg::Typescriptreact => Language::Tsx,
            LanguageArg::Go => Language::Go,
        }
    }
}

#[derive(Args, Debug)]
pub struct CompleteArgs {
    /// Source file to complete in (`-` reads standard input).
    pub file: String,
    /// Cursor as LINE:COL, 1-based, COL in characters (default: end of file).
    #[arg(long)]
    pub at: Option<String>,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Most tokens to generate per candidate.
    #[arg(long, default_value_t = 256)]
    pub max_tokens: usize,
    /// Language, when the file name does not tell.
    #[arg(long, value_enum)]
    pub language: Option<LanguageArg>,
    /// Rank the candidates (the docstring's examples run in the sandbox,
    /// syntax, agreement between samples, mean log-probability) and print
    /// the best; without it the highest mean log-probability wins. With
    /// --json, all candidates in order with their features. With --n above 1
    /// and no --temperature, the first sample is greedy and the others are
    /// drawn at temperature 0.8 (as in the editor).
    #[arg(long)]
    pub rank: bool,
    /// Print candidates with log-probabilities and timings as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: CompleteArgs) -> Result<()> {
    crate::configure_runtime(args.model.threads);
    let text = read_source(&args.file)?;
    let cursor = cursor_offset(&text, args.at.as_deref())?;
    let language = match args.language {
        Some(language) => Some(language.language()),
        None => Language::from_path(&args.file),
    };
    let device = args.model.device.kind().open()?;
    let store = Store::from_env();
    let model = crate::input::load_model(&store, &args.model, &device)?;
    let (name, path) = (model.name.clone(), model.path.clone());
    let draft_name = model.draft.as_ref().map(|d| d.name.clone());
    let load_secs = model.load_secs;
    let engine = Engine::spawn(EngineConfig::default()).context("cannot start the engine")?;
    engine.set_model(Some(Arc::new(model)));

    let n = args.sampling.n.max(1);
    let (temperature, first_greedy) = match args.sampling.temperature {
        Some(t) => (t, false),
        None if n > 1 => (0.8, true),
        None => (0.0, false),
    };
    let request = CompletionRequest {
        key: args.file.clone(),
        doc: Arc::new(Document::new(text, language)),
        cursor,
        path: args.file.clone(),
        neighbours: Vec::new(),
        format: PromptFormat::Editor,
        function_name: None,
        settings: CompletionSettings {
            n,
            max_tokens: args.max_tokens,
            temperature,
            first_greedy,
            top_p: args.sampling.top_p,
            top_k: args.sampling.top_k,
            seed: args.sampling.seed,
            rank: RankSettings {
                policy: if args.rank {
                    RankPolicy::Combined
                } else {
                    RankPolicy::Logprob
                },
                examples: if args.rank {
                    ExampleRuns::Always
                } else {
                    ExampleRuns::Never
                },
            },
            ..CompletionSettings::default()
        },
    };
    let completion = engine.complete(request)?;

    let mut stdout = std::io::stdout().lock();
    if args.json {
        let candidates: Vec<serde_json::Value> = completion
            .suggestions
            .iter()
            .map(|c| {
                let first = c
                    .sample_indices
                    .first()
                    .and_then(|&i| completion.samples.get(i));
                serde_json::json!({
                    "text": c.text,
                    "raw": first.map(|s| s.raw.as_str()),
                    "mean_logprob": c.features.mean_logprob,
                    "n_tokens": first.map(|s| s.n_tokens),
                    "finish": first.map(|s| s.finish.as_str()),
                    "count": c.count,
                    "score": c.score,
                    "features": c.features,
                    "sample_indices": c.sample_indices,
                })
            })
            .collect();
        let decode_tps = if completion.decode_secs > 0.0 {
            completion.n_generated_tokens as f64 / completion.decode_secs
        } else {
            0.0
        };
        let out = serde_json::json!({
            "model": name,
            "model_path": path,
            "draft_model": draft_name,
            "prompt_mode": completion.prompt_mode.as_str(),
            "completion_mode": completion.completion_mode.as_str(),
            "ranking": {
                "policy": completion.rank.policy,
                "ran_examples": completion.rank.ran_code,
                "examples": completion.rank.n_examples,
                "secs": completion.rank.secs,
                "notes": completion.rank.notes,
            },
            "candidates": candidates,
            "timings": {
                "load_secs": load_secs,
                "prefill_secs": completion.prefill_secs,
                "decode_secs": completion.decode_secs,
                "prompt_tokens": completion.n_prompt_tokens,
                "reused_tokens": completion.n_reused_tokens,
                "generated_tokens": completion.n_generated_tokens,
                "decode_tokens_per_s": decode_tps,
                "target_passes": completion.n_target_passes,
                "draft_tokens": completion.n_draft_tokens,
                "accepted_draft_tokens": completion.n_accepted_draft_tokens,
            },
            "notes": completion.notes,
        });
        writeln!(stdout, "{out}")?;
    } else if let Some(best) = completion.best() {
        write!(stdout, "{best}")?;
        if !best.ends_with('\n') {
            writeln!(stdout)?;
        }
    }
    stdout.flush()?;
    Ok(())
}
