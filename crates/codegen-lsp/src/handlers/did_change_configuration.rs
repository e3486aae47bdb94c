//! `workspace/didChangeConfiguration`: `{settings: {codegen: {...}}}`;
//! a new model, device or thread count reloads the model; a new
//! `shadowModel` loads the candidate.

use std::sync::Arc;

use tower_lsp_server::ls_types::{DidChangeConfigurationParams, MessageType};

use crate::state::{lock, ServerState};

pub(crate) async fn handle(state: &Arc<ServerState>, params: DidChangeConfigurationParams) {
    let (warnings, reload, reload_candidate) = {
        let mut settings = lock(&state.settings);
        let before = settings.clone();
        let warnings = settings.merge_json(&params.settings);
        (
            warnings,
            settings.model_differs(&before),
            settings.candidate_differs(&before),
        )
    };
    for message in warnings {
        state
            .client
            .log_message(MessageType::WARNING, format!("codegen: {message}"))
            .await;
    }
    if reload {
        crate::load::start_loading(state.clone());
    }
    if reload_candidate {
        crate::shadow::start_loading_candidate(state.clone());
    }
}
