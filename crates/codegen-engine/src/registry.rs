use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use candle_core::Device;
use codegen_model::{Model, Tokenizer};

use crate::EngineError;

/// A model and its tokenizer, immutable and shared.
pub struct LoadedModel {
    pub name: String,
    pub path: PathBuf,
    pub model: Model,
    pub tokenizer: Tokenizer,
    pub load_secs: f64,
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
        })
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
