//! Loading the model in the background, with `$/progress`, `codegen/status`
//! and errors to `window/logMessage`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use codegen_engine::{LoadedModel, TypedThroughCache};
use codegen_model::DeviceKind;
use tower_lsp_server::ls_types::{MessageType, NumberOrString, ProgressToken};

use crate::settings::Settings;
use crate::state::{lock, ModelResolver, ModelState, ServerState};

/// Starts loading the model the settings name; requests meanwhile get no
/// suggestions. A later call supersedes an unfinished one.
pub(crate) fn start_loading(state: Arc<ServerState>) {
    let generation = state.load_generation.fetch_add(1, Ordering::SeqCst) + 1;
    *lock(&state.model_state) = ModelState::Loading;
    // Suggestions on screen came from the old model.
    *lock(&state.typed_through) = TypedThroughCache::new();
    tokio::spawn(async move {
        state.send_status().await;
        let settings = state.settings();
        let title = format!(
            "codegen: loading {}",
            settings.model.as_deref().unwrap_or("the default model")
        );
        let progress = if state.client_supports_progress.load(Ordering::Relaxed) {
            let token: ProgressToken = NumberOrString::String(format!("codegen/load/{generation}"));
            match state.client.create_work_done_progress(token.clone()).await {
                Ok(()) => Some(state.client.progress(token, title).begin().await),
                Err(_) => None,
            }
        } else {
            None
        };
        let resolver = state.options.resolve_model.clone();
        let result = tokio::task::spawn_blocking(move || load_model(&resolver, &settings))
            .await
            .unwrap_or_else(|err| Err(format!("model loading failed: {err}")));
        if state.load_generation.load(Ordering::SeqCst) != generation {
            if let Some(progress) = progress {
                progress.finish_with_message("superseded").await;
            }
            return;
        }
        let message = match result {
            Ok(model) => {
                let name = model.name.clone();
                let message = format!("codegen: model {name} ready ({:.1} s)", model.load_secs);
                state.engine.set_model(Some(model));
                *lock(&state.model_state) = ModelState::Ready(name);
                state.client.log_message(MessageType::INFO, &message).await;
                message
            }
            Err(message) => {
                tracing::error!("{message}");
                state.engine.set_model(None);
                *lock(&state.model_state) = ModelState::Error(message.clone());
                state
                    .client
                    .log_message(MessageType::ERROR, format!("codegen: {message}"))
                    .await;
                message
            }
        };
        if let Some(progress) = progress {
            progress.finish_with_message(message).await;
        }
        state.send_status().await;
    });
}

fn load_model(resolver: &ModelResolver, settings: &Settings) -> Result<Arc<LoadedModel>, String> {
    if let Some(n) = settings.threads {
        // Read by the thread pools when they start (before the first model).
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    let device: DeviceKind = settings
        .device
        .parse()
        .map_err(|e| format!("device {:?}: {e}", settings.device))?;
    let device = device
        .open()
        .map_err(|e| format!("cannot open device {}: {e}", settings.device))?;
    let (name, path) = resolver(settings.model.as_deref())?;
    LoadedModel::load(&name, &path, &device)
        .map(Arc::new)
        .map_err(|e| format!("cannot load model {}: {e}", path.display()))
}
