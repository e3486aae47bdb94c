//! The completion pipeline shared by the LSP server, the CLI and the
//! benchmarks: [`Engine`] takes `document + cursor (+ settings)` and returns
//! ranked suggestions ([`Engine::complete`], [`Engine::submit`]). It holds
//! the registry of loaded models, builds each request's prompt once (context
//! crate plus the model's FIM and repository tokens), samples one or more
//! candidates from one prefill with prefix-KV reuse, post-processes them and
//! ranks them (`codegen-rank`: syntax, the docstring's examples run through
//! the sandbox under a time budget, agreement, mean log-probability).
//!
//! It never speaks LSP, JSON-RPC or HTTP, never fetches files (the store
//! does) and never runs generated code itself (the sandbox does, through
//! `codegen-rank`).

mod batch;
mod cache;
mod complete;
mod document;
mod ranking;
mod registry;
mod remote;
mod typed_through;
mod worker;

pub use batch::{encode_template, generate_samples};
pub use cache::{SessionCache, SessionCacheConfig};
pub use codegen_rank::{Features, RankedCandidate};
pub use complete::{
    build_prompt_tokens, generate_candidates, BuiltPrompt, CompletionRequest, CompletionSettings,
    ExampleRuns, Generated, PromptFormat, PromptMode, RankPolicy, RankSettings, Sample,
};
pub use document::Document;
pub use ranking::{function_being_written, RankOutcome, Ranker};
pub use registry::{LoadedModel, ModelRegistry};
pub use remote::{RemoteBackend, RemoteConfig, RemoteHealth, RemoteKind, RemotePrompt};
pub use typed_through::{TypedThrough, TypedThroughCache};
pub use worker::{
    CounterSnapshot, Counters, Engine, EngineConfig, JobError, JobHandle, JobOptions,
    RankedCompletion, Reply,
};

/// Errors of the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Model(#[from] codegen_model::ModelError),
    #[error("cursor at byte {cursor} is outside the document ({len} bytes)")]
    CursorOutOfRange { cursor: usize, len: usize },
    #[error("the model has no `{0}` token, needed for fill-in-the-middle")]
    MissingSpecialToken(&'static str),
    #[error("the draft model does not share the model's tokenizer: {0}")]
    DraftMismatch(String),
    /// The remote backend failed (down, timed out, refused the request).
    #[error("{0}")]
    Remote(String),
}

#[cfg(test)]
mod ranking_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod worker_tests;
