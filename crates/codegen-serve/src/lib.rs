//! `codegen serve`: an HTTP server in front of one loaded model. It speaks
//! OpenAI's completions API (`POST /v1/completions`, streamed as
//! server-sent events on request, `GET /v1/models`), llama-server's
//! `POST /infill`, `GET /health` and Prometheus `GET /metrics`.
//!
//! Requests are batched continuously on one scheduler thread
//! ([`scheduler`]): every active sample decodes in the same forward pass,
//! new requests join at step boundaries, prompts reuse the KV cache of the
//! longest cached prefix, and a request whose client went away stops at the
//! next token. API keys are kept as sha256 hashes in a file that is read
//! again when it changes ([`keys`]), with per-key rates and sizes.
//!
//! It never builds editor context, ranks candidates or touches the network
//! beyond its own listener: clients render their prompts (the engine's
//! remote backend does), the store fetches models.

pub mod keys;
pub mod metrics;
pub mod scheduler;
mod server;
mod text;

pub use keys::{hash_key, Grant, KeyEntry, KeyError, KeyStore, Refusal};
pub use metrics::Metrics;
pub use scheduler::{Event, Finish, Job, SampleParams, Scheduler, SchedulerConfig, TokenLogprob};
pub use server::{listen_addr, router, serve, ApiError, App, Limits, ServeConfig};

/// Errors of the server crate.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error("cannot start the server: {0}")]
    Io(#[from] std::io::Error),
}

#[cfg(test)]
mod tests;
