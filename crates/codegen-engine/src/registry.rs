use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use candle_core::Device;
use codegen_model::{Model, Tokenizer};

use crate::remote::RemoteBackend;
use crate::EngineError;

/// A model and its tokenizer, immutable and shared.
pub struct LoadedModel {
    pub name: String,
    pub path: PathBuf,
    pub model: Model,
    pub tokenizer: Tokenizer,
    pub load_secs: f64,
    /// The draft model for speculative decoding (same tokenizer), used when
    /// one sample is drawn; see [`LoadedModel::with_draft`].
    pub draft: Option<Arc<LoadedModel>>,
    /// Most tokens the draft proposes per check.
    pub draft_tokens: usize,
    /// Tokens of context the draft sees.
    pub draft_context_tokens: usize,
    /// Samples come from this remote engine instead of the local weights
    /// (which then only give the tokenizer and the context length for
    /// prompt budgets); see [`LoadedModel::with_remote`].
    pub remote: Option<Arc<RemoteBackend>>,
}

impl AsRef<Model> for LoadedModel {
    fn as_ref(&self) -> &Model {
        &self.model
    }
}

impl LoadedModel {
    pub fn load(name: &str, path: &Path, device: &Device) -> Result<Self, EngineError> {
        let start = Instant::now();
        let (model, tokenizer) = codegen_model::load(path, device)?;
        Ok(Self {
            name: name.to_string(),
            path: path.to_path_buf(),
            model,
            tokenizer,
            load_secs: start.elapsed().as_secs_f64(),
            draft: None,
            draft_tokens: codegen_model::DEFAULT_DRAFT_MODEL_TOKENS,
            draft_context_tokens: codegen_model::DEFAULT_DRAFT_CONTEXT_TOKENS,
            remote: None,
        })
    }

    /// Draws samples from `backend` instead of the local weights: prompts,
    /// post-processing and ranking stay local. The engine that serves it
    /// must not prefill locally (`EngineConfig::prefill_chunk = usize::MAX`).
    pub fn with_remote(mut self, backend: Arc<RemoteBackend>) -> Self {
        self.remote = Some(backend);
        self
    }

    /// Pairs this model with a draft for speculative decoding. The two must
    /// share a tokenizer (same vocabulary, same bytes per token); a draft
    /// that does not is refused with the first token that differs.
    pub fn with_draft(mut self, draft: Arc<LoadedModel>) -> Result<Self, EngineError> {
        let (a, b) = (&self.tokenizer, &draft.tokenizer);
        if a.vocab_size() != b.vocab_size() {
            return Err(EngineError::DraftMismatch(format!(
                "{} has {} tokens, {} has {}",
                self.name,
                a.vocab_size(),
                draft.name,
                b.vocab_size()
            )));
        }
        if let Some(id) = (0..a.vocab_size() as u32).find(|&id| {
            a.token_bytes(id) != b.token_bytes(id) || a.is_special(id) != b.is_special(id)
        }) {
            return Err(EngineError::DraftMismatch(format!(
                "token {id} is {:?} in {} and {:?} in {}",
                String::from_utf8_lossy(a.token_bytes(id)),
                self.name,
                String::from_utf8_lossy(b.token_bytes(id)),
                draft.name
            )));
        }
        self.draft = Some(draft);
        Ok(self)
    }

    /// `name` or `name+draft` for replies and logs.
    pub fn display_name(&self) -> String {
        if let Some(remote) = &self.remote {
            return format!("{} via {}", self.name, remote.describe());
        }
        match &self.draft {
            Some(d) => format!("{} (draft {})", self.name, d.name),
            None => self.name.clone(),
        }
    }
}

/// Loaded models by name, behind `Arc`s: requests hold their model while
/// the registry may swap or retire it.
#[derive(Default)]
pub struct ModelRegistry {
    models: Mutex<HashMap<String, Arc<LoadedModel>>>,
}

impl ModelRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<LoadedModel>>> {
        // A panic while holding the lock cannot leave the map inconsistent.
        self.models.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, name: &str) -> Option<Arc<LoadedModel>> {
        self.lock().get(name).cloned()
    }

    /// The model called `name`, loading it from `path` if needed.
    pub fn get_or_load(
        &self,
        name: &str,
        path: &Path,
        device: &Device,
    ) -> Result<Arc<LoadedModel>, EngineError> {
        if let Some(model) = self.get(name) {
            return Ok(model);
        }
        let loaded = Arc::new(LoadedModel::load(name, path, device)?);
        self.lock().insert(name.to_string(), loaded.clone());
        Ok(loaded)
    }

    /// Puts `model` under its name, returning what it replaced.
    pub fn insert(&self, model: Arc<LoadedModel>) -> Option<Arc<LoadedModel>> {
        self.lock().insert(model.name.clone(), model)
    }

    pub fn remove(&self, name: &str) -> Option<Arc<LoadedModel>> {
        self.lock().remove(name)
    }

    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.lock().keys().cloned().collect();
        names.sort();
        names
    }
}
