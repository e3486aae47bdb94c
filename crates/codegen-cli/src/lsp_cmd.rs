//! `codegen lsp`: the language server on stdin/stdout.

use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use codegen_lsp::{ServerOptions, Settings};
use codegen_store::Store;

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
}

/// Serves until `exit`; the process exits with 0 after `shutdown` then
/// `exit`, with 1 after an `exit` without `shutdown` or the end of input.
pub fn run(args: LspArgs) -> Result<()> {
    crate::set_threads(args.model.threads);
    let mut options = ServerOptions::with_paths_only();
    options.settings = Settings {
        model: args.model.model.clone(),
        device: args.model.device.clone(),
        threads: args.model.threads,
        ..Settings::default()
    };
    options.resolve_model = Arc::new(|spec| {
        let store = Store::from_env();
        resolve_model(&store, spec).map_err(|e| format!("{e:#}"))
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
