use std::io::Write;

use anyhow::{Context, Result};
use clap::Args;
use codegen_context::{Language, ParsedDocument};
use codegen_engine::{
    complete, CompletionRequest, CompletionSettings, LoadedModel, PromptMode, SourceText,
};
use codegen_model::DeviceKind;
use codegen_store::Store;

use crate::input::{cursor_offset, read_source, resolve_model};
use crate::{ModelArgs, SamplingArgs};

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
    #[arg(long, default_value_t = 256)]
    pub max_tokens: usize,
    /// Language, when the file name does not tell (python, rust, javascript,
    /// typescript, typescriptreact, go).
    #[arg(long)]
    pub language: Option<String>,
    /// Rank the candidates (syntax, the docstring's examples run in the
    /// sandbox, agreement between samples, mean log-probability) and print
    /// the best; with --json, all of them in order with their features.
    #[arg(long)]
    pub rank: bool,
    /// Print candidates with log-probabilities and timings as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: CompleteArgs) -> Result<()> {
    crate::set_threads(args.model.threads);
    let text = read_source(&args.file)?;
    let cursor = cursor_offset(&text, args.at.as_deref())?;
    let language = match &args.language {
        Some(id) => {
            Some(Language::from_lsp_id(id).with_context(|| format!("unknown language {id:?}"))?)
        }
        None => Language::from_path(&args.file),
    };
    let device: DeviceKind = args.model.device.parse()?;
    let device = device.open()?;
    let store = Store::from_env();
    let (name, path) = resolve_model(&store, args.model.model.as_deref())?;
    let model = LoadedModel::load(&name, &path, &device)
        .with_context(|| format!("cannot load model {}", path.display()))?;

    let doc = language.map(|lang| ParsedDocument::new(text.clone(), lang));
    let source = match &doc {
        Some(doc) => SourceText::Parsed(doc),
        None => SourceText::Plain(&text),
    };
    let request = CompletionRequest {
        source,
        cursor,
        path: args.file.clone(),
        neighbours: Vec::new(),
        settings: CompletionSettings {
            n: args.sampling.n.max(1),
            max_tokens: args.max_tokens,
            temperature: args.sampling.temperature,
            top_p: args.sampling.top_p,
            top_k: args.sampling.top_k,
            seed: args.sampling.seed,
            ..CompletionSettings::default()
        },
    };
    let mut session = model.model.new_session()?;
    let completion = complete(&model, &mut session, &request, None)?;

    let ranked = match (&doc, args.rank) {
        (Some(doc), true) => {
            let raw: Vec<codegen_rank::RawCandidate> = completion
                .candidates
                .iter()
                .map(|c| codegen_rank::RawCandidate {
                    text: c.text.clone(),
                    mean_logprob: c.mean_logprob,
                    n_tokens: c.n_tokens,
                })
                .collect();
            let sandbox =
                match codegen_sandbox::Sandbox::new(codegen_sandbox::SandboxConfig::default()) {
                    Ok(sandbox) => Some(sandbox),
                    Err(e) => {
                        eprintln!("codegen: warning: ranking without running examples: {e}");
                        None
                    }
                };
            // The function being written: the one around the cursor, or the
            // one that ends just before it (a signature and docstring with
            // the cursor on the line after).
            let before = text[..cursor].trim_end().len();
            let function_name = [cursor, before.saturating_sub(1)]
                .iter()
                .find_map(|at| codegen_context::cursor_scope(doc, *at).function?.name);
            let request = codegen_rank::RankRequest {
                doc,
                cursor,
                candidates: &raw,
                function_name: function_name.as_deref(),
            };
            let ranking = codegen_rank::rank(
                &request,
                &codegen_rank::RankConfig::combined(),
                codegen_rank::RankMode::Batch,
                sandbox.as_ref(),
            );
            Some(ranking.candidates)
        }
        _ => None,
    };

    let mut stdout = std::io::stdout().lock();
    if args.json {
        let candidates: Vec<serde_json::Value> = match &ranked {
            Some(ranked) => ranked
                .iter()
                .map(|c| serde_json::to_value(c).unwrap_or(serde_json::Value::Null))
                .collect(),
            None => completion
                .candidates
                .iter()
                .map(|c| {
                    serde_json::json!({
                        "text": c.text,
                        "raw": c.raw,
                        "mean_logprob": c.mean_logprob,
                        "n_tokens": c.n_tokens,
                        "finish": format!("{:?}", c.finish),
                    })
                })
                .collect(),
        };
        let decode_tps = if completion.decode_secs > 0.0 {
            completion.n_generated_tokens as f64 / completion.decode_secs
        } else {
            0.0
        };
        let out = serde_json::json!({
            "model": name,
            "model_path": path,
            "prompt_mode": match completion.prompt_mode {
                PromptMode::FillInTheMiddle => "fim",
                PromptMode::Continuation => "continuation",
            },
            "completion_mode": format!("{:?}", completion.completion_mode),
            "ranked": ranked.is_some(),
            "candidates": candidates,
            "timings": {
                "load_secs": model.load_secs,
                "prefill_secs": completion.prefill_secs,
                "decode_secs": completion.decode_secs,
                "prompt_tokens": completion.n_prompt_tokens,
                "reused_tokens": completion.n_reused_tokens,
                "generated_tokens": completion.n_generated_tokens,
                "decode_tokens_per_s": decode_tps,
            },
            "notes": completion.notes,
        });
        writeln!(stdout, "{out}")?;
    } else {
        let best = match &ranked {
            Some(ranked) => ranked.first().map(|c| c.text.clone()),
            // Without ranking: the highest mean log-probability.
            None => completion
                .candidates
                .iter()
                .filter(|c| !c.text.trim().is_empty())
                .max_by(|a, b| a.mean_logprob.total_cmp(&b.mean_logprob))
                .or(completion.candidates.first())
                .map(|c| c.text.clone()),
        };
        if let Some(best) = best {
            write!(stdout, "{best}")?;
            if !best.ends_with('\n') {
                writeln!(stdout)?;
            }
        }
    }
    stdout.flush()?;
    Ok(())
}
