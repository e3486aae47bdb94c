//! Orchestration shared by the CLI, the LSP server and the benchmarks: a
//! registry of loaded models, prompt assembly (context crate plus the
//! model's FIM and repository tokens), sampling of one or more candidates
//! with prefix-KV reuse, and post-processing.
//!
//! It never speaks LSP or JSON-RPC, never fetches files (the store does) and
//! never runs generated code (the sandbox does).

mod batch;
mod cache;
mod complete;
mod document;
mod registry;
mod typed_through;
mod worker;

pub use batch::{encode_template, generate_samples};
pub use cache::{SessionCache, SessionCacheConfig};
pub use complete::{
    build_prompt_tokens, complete, Candidate, Completion, CompletionRequest, CompletionSettings,
    PromptMode, SourceText,
};
pub use document::Document;
pub use registry::{LoadedModel, ModelRegistry};
pub use typed_through::{TypedThrough, TypedThroughCache};
pub use worker::{
    CounterSnapshot, Counters, EngineWorker, Job, JobError, JobHandle, JobOutcome, Reply,
    WorkerConfig,
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
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod worker_tests;
