//! `textDocument/didChange`: apply the edits in order, incrementally.

use std::sync::Arc;

use tower_lsp_server::ls_types::{DidChangeTextDocumentParams, MessageType};

use crate::state::{lock, ServerState};

pub(crate) async fn handle(state: &Arc<ServerState>, params: DidChangeTextDocumentParams) {
    let encoding = state.encoding();
    let uri = params.text_document.uri;
    let warnings = lock(&state.documents).change(
        &uri,
        params.text_document.version,
        params.content_changes,
        encoding,
    );
    let messages = match warnings {
        Some(warnings) => warnings,
        None => vec![format!(
            "didChange for {}, which is not open: ignored",
            uri.as_str()
        )],
    };
    for message in messages {
        state
            .client
            .log_message(MessageType::WARNING, format!("codegen: {message}"))
            .await;
    }
}
