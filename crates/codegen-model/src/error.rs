use std::path::PathBuf;

/// Everything that can go wrong while loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read model file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid GGUF file: {reason}")]
    InvalidGguf { path: PathBuf, reason: String },
    #[error("unsupported model architecture `{0}` (supported: qwen2)")]
    UnsupportedArchitecture(String),
    #[error("GGUF metadata key `{0}` is missing or has the wrong type")]
    MissingMetadata(String),
    #[error("GGUF tensor `{name}` is missing or unreadable: {reason}")]
    BadTensor { name: String, reason: String },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("device `{0}` is not compiled into this build (rebuild with `--features {0}`)")]
    DeviceNotCompiled(String),
    #[error("unknown device `{0}` (expected cpu, cuda or metal)")]
    UnknownDevice(String),
    #[error("the prompt needs {needed} positions but the model's context is {limit}")]
    ContextOverflow { needed: usize, limit: usize },
    #[error("token id {0} is outside the vocabulary")]
    BadToken(u32),
    #[error("empty prompt: at least one token is needed")]
    EmptyPrompt,
    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;
