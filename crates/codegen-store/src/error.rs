use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unknown model `{name}` (known: {known})")]
    UnknownModel { name: String, known: String },
    #[error("bad manifest {origin}: {reason}")]
    Manifest { origin: String, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("checksum mismatch for {what}: expected sha256 {expected}, got {actual}")]
    ChecksumMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("size mismatch for {what}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },
    #[error("{source_label}: {reason}")]
    Source {
        source_label: String,
        reason: String,
    },
    #[error("could not fetch `{name}`: {}", attempts.join("; "))]
    AllSourcesFailed { name: String, attempts: Vec<String> },
    #[error("bad model reference `{reference}`: {reason}")]
    BadReference { reference: String, reason: String },
    #[error(
        "cannot get {reference}: {reason}; download the file yourself and pass its local path \
         as the model instead (e.g. --model /path/to/FILE.gguf)"
    )]
    HubUnavailable { reference: String, reason: String },
    #[error("model file {} does not exist or is not a file", path.display())]
    NoSuchFile { path: PathBuf },
    #[error("`{name}` is not cached: {path} does not exist (run `codegen model fetch {name}`)")]
    NotCached { name: String, path: PathBuf },
}

impl StoreError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.into();
        move |source| StoreError::Io { path, source }
    }
}
