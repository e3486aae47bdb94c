//! `codegen serve`: the HTTP server (OpenAI-compatible completions,
//! `/infill`, `/health`, `/metrics`) over one model.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use codegen_serve::{App, KeyStore, Limits, SchedulerConfig, ServeConfig};
use codegen_store::Store;

use crate::ModelArgs;

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Address to listen on. Without --keys only loopback addresses are
    /// used (a non-loopback address is replaced by 127.0.0.1, same port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// API keys (TOML: [[keys]] name, sha256 of the key, optional
    /// requests_per_minute, max_request_bytes, max_tokens); read again
    /// when the file changes.
    #[arg(long, value_name = "FILE")]
    pub keys: Option<PathBuf>,
    /// The model id clients name (default: the model's name).
    #[arg(long)]
    pub model_id: Option<String>,
    /// Most samples decoding together; more requests wait in the queue.
    #[arg(long, default_value_t = 16)]
    pub max_batch: usize,
    /// Prompt tokens prefilled between two decode steps.
    #[arg(long, default_value_t = 128)]
    pub prefill_chunk: usize,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_request_bytes: usize,
    /// Most tokens per sample.
    #[arg(long, default_value_t = 1024)]
    pub max_tokens: usize,
    /// Most samples per request.
    #[arg(long, default_value_t = 8)]
    pub max_n: usize,
    /// Requests per minute per key, for keys that set none (default: no limit).
    #[arg(long)]
    pub requests_per_minute: Option<f64>,
}

pub fn run(args: ServeArgs) -> Result<()> {
    crate::configure_runtime(args.model.threads);
    let keys = args
        .keys
        .as_deref()
        .map(|path| KeyStore::open(path, args.requests_per_minute))
        .transpose()?;
    let device = args.model.device.kind().open()?;
    let store = Store::from_env();
    let mut model_args = args.model.clone();
    // Batches decode together; the draft model only serves single samples.
    model_args.draft = Some("none".into());
    let model = crate::input::load_model(&store, &model_args, &device)?;
    let (addr, note) = codegen_serve::listen_addr(args.listen, keys.is_some());
    let config = ServeConfig {
        model_id: args.model_id.clone(),
        limits: Limits {
            max_request_bytes: args.max_request_bytes,
            max_tokens: args.max_tokens,
            max_n: args.max_n,
            requests_per_minute: args.requests_per_minute,
        },
        scheduler: SchedulerConfig {
            max_batch: args.max_batch.max(1),
            prefill_chunk: args.prefill_chunk.max(1),
            ..SchedulerConfig::default()
        },
    };
    if let Some(keys) = &keys {
        eprintln!(
            "codegen: {} API key(s) from {}",
            keys.len(),
            args.keys
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
    }
    let app = App::new(Arc::new(model), keys, config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let bound = listener.local_addr().unwrap_or(addr);
        eprintln!("codegen: serving {} on http://{bound}", app.model_id());
        eprintln!("codegen: {note}");
        codegen_serve::serve(listener, app)
            .await
            .context("the server failed")
    })
}
