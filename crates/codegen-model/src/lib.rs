//! Qwen2 code-model inference on candle: GGUF weights, the tokenizer read
//! from GGUF metadata, the forward pass, per-request [`Session`]s (KV cache,
//! truncate, fork, prefill at any position), the sampler and the generation
//! loop.
//!
//! Weights ([`Model`]) are immutable and meant to be shared behind an `Arc`;
//! all mutable state is in a [`Session`]. This crate never touches the
//! network, never picks model files by name and never prints.

mod config;
mod device;
mod error;
mod generate;
mod host;
mod linear;
mod model;
mod runtime;
mod sampler;
mod session;
pub mod testing;
mod tokenizer;
mod vecmath;

pub use config::ModelConfig;
pub use device::DeviceKind;
pub use error::{ModelError, Result};
pub use generate::{
    generate, generate_batch, generate_batch_with, incomplete_tail_len, prefill_reusing,
    DraftModel, FinishReason, GenerateConfig, Generation, DEFAULT_DRAFT_CONTEXT_TOKENS,
    DEFAULT_DRAFT_MODEL_TOKENS,
};
pub use model::{load, load_with, Backend, LoadOptions, Model, PREFILL_CHUNK};
pub use runtime::{
    forward_path, lookup_draft_tokens, ForwardPath, RuntimeConfig, RuntimeReport,
    DEFAULT_LOOKUP_DRAFT_TOKENS,
};
pub use sampler::{log_prob, Sampler, SamplingConfig};
pub use session::Session;
pub use tokenizer::{PromptPiece, SpecialTokens, Tokenizer};

#[cfg(test)]
mod tests;
