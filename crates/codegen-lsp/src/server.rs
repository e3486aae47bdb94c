//! The one dispatch from LSP method to handler, with panic containment:
//! a panicking request handler becomes an internal-error reply, a
//! panicking notification handler a log message; the server keeps serving.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tower_lsp_server::jsonrpc::{Error, Result};
use tower_lsp_server::ls_types::*;
use tower_lsp_server::{Client, LanguageServer, LspService, Server};

use crate::handlers;
use crate::state::{ServerOptions, ServerState};
use crate::transport;

/// Concurrent requests in flight: completions wait on the engine, so the
/// default of 4 would hold up edits and cancellations behind them.
const MAX_CONCURRENT_REQUESTS: usize = 256;

/// Buffer of the pipes between the transport and the server.
const PIPE_BYTES: usize = 1 << 16;

/// How a served session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeOutcome {
    /// `shutdown` came before `exit` (the process should exit with 0).
    pub shutdown_requested: bool,
}

/// Serves LSP over `input`/`output` until `exit` or the end of input.
pub async fn serve<I, O>(
    input: I,
    output: O,
    options: ServerOptions,
) -> std::io::Result<ServeOutcome>
where
    I: AsyncRead + Unpin,
    O: AsyncWrite,
{
    let engine = codegen_engine::Engine::spawn(options.engine.clone())?;
    let debug_methods = options.debug_methods;
    let slot: Arc<Mutex<Option<Arc<ServerState>>>> = Arc::default();
    let init_slot = slot.clone();
    let mut builder = LspService::build(move |client| {
        let state = Arc::new(ServerState::new(client, options, engine));
        *crate::state::lock(&init_slot) = Some(state.clone());
        Backend { state }
    })
    .custom_method("textDocument/inlineCompletion", Backend::inline_completion)
    .custom_method(
        "textDocument/didShowCompletion",
        Backend::did_show_completion,
    )
    .custom_method("codegen/engineStats", Backend::engine_stats)
    .custom_method("codegen/selectModel", Backend::select_model);
    if debug_methods {
        builder = builder
            .custom_method("codegen/debugPanic", Backend::debug_panic)
            .custom_method("codegen/debugDocument", Backend::debug_document);
    }
    let (service, socket) = builder.finish();

    // The server reads checked messages from one pipe and writes to another;
    // its frames and the transport's error replies are written whole.
    let (server_input, to_server) = tokio::io::duplex(PIPE_BYTES);
    let (from_server, server_output) = tokio::io::duplex(PIPE_BYTES);
    let (frames_tx, mut frames_rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    let server = Server::new(server_input, server_output, socket)
        .concurrency_level(MAX_CONCURRENT_REQUESTS)
        .serve(service);
    let pump = transport::pump_input(input, to_server, frames_tx.clone());
    let relay = transport::relay_output(from_server, frames_tx);
    let write = async move {
        let mut output = Box::pin(output);
        while let Some(frame) = frames_rx.recv().await {
            output.write_all(&frame).await?;
            output.flush().await?;
        }
        std::io::Result::Ok(())
    };
    let run = async {
        // The end of input closes the server's input, which ends it; after
        // `exit` the server ends while the input may stay open.
        let pump = async {
            pump.await;
            std::future::pending::<()>().await
        };
        tokio::select! {
            () = server => {}
            () = pump => {}
        }
    };
    let ((), (), written) = tokio::join!(run, relay, write);
    if let Err(err) = written {
        tracing::warn!("cannot write output: {err}");
    }
    let state = crate::state::lock(&slot).take();
    Ok(ServeOutcome {
        shutdown_requested: state.is_some_and(|s| s.shutdown_requested.load(Ordering::SeqCst)),
    })
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

async fn request<T>(method: &str, work: impl Future<Output = Result<T>>) -> Result<T> {
    match AssertUnwindSafe(work).catch_unwind().await {
        Ok(result) => result,
        Err(payload) => {
            let message = panic_message(payload.as_ref());
            tracing::error!("handler of {method} panicked: {message}");
            let mut error = Error::internal_error();
            error.message = format!("codegen: the {method} handler failed: {message}").into();
            Err(error)
        }
    }
}

async fn notification(client: &Client, method: &str, work: impl Future<Output = ()>) {
    if let Err(payload) = AssertUnwindSafe(work).catch_unwind().await {
        let message = panic_message(payload.as_ref());
        tracing::error!("handler of {method} panicked: {message}");
        client
            .log_message(
                MessageType::ERROR,
                format!("codegen: the {method} handler failed: {message}"),
            )
            .await;
    }
}

pub(crate) struct Backend {
    state: Arc<ServerState>,
}

impl Backend {
    async fn inline_completion(
        &self,
        params: InlineCompletionParams,
    ) -> Result<Option<InlineCompletionResponse>> {
        request(
            "textDocument/inlineCompletion",
            handlers::inline_completion::handle(&self.state, params),
        )
        .await
    }

    async fn did_show_completion(&self, params: Value) {
        notification(
            &self.state.client,
            "textDocument/didShowCompletion",
            handlers::did_show_completion::handle(&self.state, params),
        )
        .await
    }

    async fn engine_stats(&self) -> Result<Value> {
        request(
            "codegen/engineStats",
            handlers::engine_stats::handle(&self.state),
        )
        .await
    }

    async fn select_model(&self, params: Value) -> Result<Value> {
        request(
            "codegen/selectModel",
            handlers::select_model::handle(&self.state, params),
        )
        .await
    }

    async fn debug_panic(&self) -> Result<Value> {
        request("codegen/debugPanic", handlers::debug_panic::handle()).await
    }

    async fn debug_document(&self, params: TextDocumentIdentifier) -> Result<Value> {
        request(
            "codegen/debugDocument",
            handlers::debug_document::handle(&self.state, params),
        )
        .await
    }
}

impl LanguageServer for Backend {
    async fn initialize(&self, params: InitializeParams) -> Result<InitializeResult> {
        request(
            "initialize",
            handlers::initialize::handle(&self.state, params),
        )
        .await
    }

    async fn initialized(&self, _: InitializedParams) {
        notification(
            &self.state.client,
            "initialized",
            handlers::initialized::handle(&self.state),
        )
        .await
    }

    async fn shutdown(&self) -> Result<()> {
        request("shutdown", handlers::shutdown::handle(&self.state)).await
    }

    async fn did_open(&self, params: DidOpenTextDocumentParams) {
        notification(
            &self.state.client,
            "textDocument/didOpen",
            handlers::did_open::handle(&self.state, params),
        )
        .await
    }

    async fn did_change(&self, params: DidChangeTextDocumentParams) {
        notification(
            &self.state.client,
            "textDocument/didChange",
            handlers::did_change::handle(&self.state, params),
        )
        .await
    }

    async fn did_close(&self, params: DidCloseTextDocumentParams) {
        notification(
            &self.state.client,
            "textDocument/didClose",
            handlers::did_close::handle(&self.state, params),
        )
        .await
    }

    async fn did_change_configuration(&self, params: DidChangeConfigurationParams) {
        notification(
            &self.state.client,
            "workspace/didChangeConfiguration",
            handlers::did_change_configuration::handle(&self.state, params),
        )
        .await
    }

    async fn completion(&self, params: CompletionParams) -> Result<Option<CompletionResponse>> {
        request(
            "textDocument/completion",
            handlers::completion::handle(&self.state, params),
        )
        .await
    }

    async fn execute_command(&self, params: ExecuteCommandParams) -> Result<Option<LSPAny>> {
        request(
            "workspace/executeCommand",
            handlers::execute_command::handle(&self.state, params),
        )
        .await
    }
}
