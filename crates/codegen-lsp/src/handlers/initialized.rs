//! `initialized`: deferred warnings, then the model loads in the background.

use std::sync::Arc;

use tower_lsp_server::ls_types::MessageType;

use crate::state::{lock, ServerState};

pub(crate) async fn handle(state: &Arc<ServerState>) {
    let pending: Vec<String> = std::mem::take(&mut *lock(&state.pending_log));
    for message in pending {
        state
            .client
            .log_message(MessageType::WARNING, format!("codegen: {message}"))
            .await;
    }
    crate::load::start_loading(state.clone());
    if state.settings().shadow_model.is_some() {
        crate::shadow::start_loading_candidate(state.clone());
    }
    crate::load::watch_idle(state.clone());
    crate::load::watch_model_files(state.clone());
}
