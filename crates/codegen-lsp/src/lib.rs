//! codegen's language server: inline completions (`textDocument/
//! inlineCompletion`, LSP 3.18) with a `textDocument/completion` fallback,
//! over any byte stream (stdio in `codegen lsp`).
//!
//! It keeps the open documents (parsed incrementally, positions in the
//! negotiated UTF-8 or UTF-16 encoding), answers typed-through keystrokes
//! from the suggestion on screen, debounces automatic triggers, runs
//! completions on the engine's worker thread (cancelled by newer requests
//! and `$/cancelRequest`), loads the model in the background with
//! `$/progress` (with the download's percentage and bytes when the model
//! is fetched first) and `codegen/status`, reads settings from
//! `initializationOptions` and `workspace/didChangeConfiguration`, and
//! appends acceptance telemetry to a local JSONL file.
//!
//! It is the only crate that knows LSP types and JSON-RPC. It never writes
//! to stdout itself (the transport does), never touches the network, never
//! picks model files (the host's [`ModelResolver`] does) and never runs
//! generated code.

mod documents;
mod handlers;
mod load;
pub mod monitor;
mod server;
mod settings;
mod shadow;
mod state;
mod suggest;
pub mod telemetry;
mod transport;

pub use server::{serve, ServeOutcome};
pub use settings::{Rank, Settings};
pub use state::{
    CandidateStatus, DownloadProgress, DraftLookup, ModelGate, ModelResolver, ProgressSink,
    ServerOptions, StatusParams, WatchLookup, DRIFT_CHECK_INTERVAL,
};

#[cfg(test)]
mod tests;
