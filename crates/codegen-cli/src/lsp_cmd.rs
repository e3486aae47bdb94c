//! `codegen lsp`: the language server on stdin/stdout.

use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use codegen_lsp::{DownloadProgress, ProgressSink, ServerOptions, Settings};
use codegen_store::{Store, StoreConfig, TransferProgress, TransferStage};

use crate::input::resolve_model;
use crate::ModelArgs;

#[derive(Args, Debug)]
pub struct LspArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Serve on stdin/stdout (the only transport; accepted for clients that pass it).
    #[arg(long)]
    pub stdio: bool,
    /// Do not append acceptance telemetry to <cache>/telemetry.jsonl.
    #[arg(long)]
    pub no_telemetry: bool,
    /// Serve models that have not passed `codegen model validate` (for
    /// experiments): without it, a model with no passing record for its
    /// file is validated before it serves, and one that fails never serves.
    #[arg(long)]
    pub force: bool,
    /// Draw samples from a remote engine instead of the local model:
    /// `http://HOST:PORT` (OpenAI-compatible: vLLM, TGI, `codegen serve`),
    /// `llama-server+http://HOST:PORT` (its /infill) or
    /// `ollama+http://HOST:PORT`. Context, post-processing and ranking stay
    /// local; the local --model gives the tokenizer. The key, if any, comes
    /// from CODEGEN_BACKEND_KEY.
    #[arg(long, value_name = "URL")]
    pub backend: Option<String>,
    /// The model to ask the remote engine for (default: the server's first
    /// model; Ollama needs one).
    #[arg(long, value_name = "NAME")]
    pub backend_model: Option<String>,
}

/// Serves until `exit`; the process exits with 0 after `shutdown` then
/// `exit`, with 1 after an `exit` without `shutdown` or the end of input.
pub fn run(args: LspArgs) -> Result<()> {
    crate::configure_runtime(args.model.threads);
    let mut options = ServerOptions::with_paths_only();
    options.settings = Settings {
        model: args.model.model.clone(),
        draft_model: args.model.draft.clone(),
        device: args.model.device.as_str().to_string(),
        threads: args.model.threads,
        backend: args.backend.clone(),
        backend_model: args.backend_model.clone(),
        ..Settings::default()
    };
    if let Some(backend) = &args.backend {
        codegen_engine::RemoteConfig::parse(backend)?;
        // All model work is remote: nothing is prefilled here.
        options.engine.prefill_chunk = usize::MAX;
    }
    options.resolve_model = Arc::new(|spec, progress: ProgressSink| {
        // The editor shows the download; a bar on stderr would only fill the log.
        let mut config = StoreConfig::from_env();
        config.progress = false;
        let store = Store::new(config).with_observer(Arc::new(move |p: TransferProgress| {
            progress(DownloadProgress {
                done: p.done,
                total: p.total,
                verifying: p.stage == TransferStage::Verifying,
            })
        }));
        resolve_model(&store, spec).map_err(|e| format!("{e:#}"))
    });
    options.default_draft = Arc::new(|name: &str| {
        crate::input::default_draft(&Store::new(StoreConfig::from_env()), name)
    });
    // With a backend the local file only tokenizes; it is not validated.
    if !args.force && args.backend.is_none() {
        options.gate = Some(Arc::new(crate::validate_cmd::gate_for_serving));
    }
    // A user manifest that changes (or appears) reloads the model: the
    // file that defines it, and the conventional `<name>.toml`.
    options.watch_files = Arc::new(|name: &str| {
        let store = Store::new(StoreConfig::from_env());
        let mut files = vec![store.manifest_dir().join(format!("{name}.toml"))];
        if let Some(file) = store.manifest_file(name) {
            if !files.iter().any(|f| f == file) {
                files.push(file.to_path_buf());
            }
        }
        files
    });
    options.telemetry_path =
        (!args.no_telemetry).then(|| crate::cache_hint().join("telemetry.jsonl"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let outcome = runtime
        .block_on(codegen_lsp::serve(
            tokio::io::stdin(),
            tokio::io::stdout(),
            options,
        ))
        .context("the language server failed")?;
    // Exit now: a model still loading in the background need not finish.
    std::process::exit(if outcome.shutdown_requested { 0 } else { 1 });
}
