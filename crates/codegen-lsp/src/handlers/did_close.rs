//! `textDocument/didClose`: forget the document and its cached session.

use std::sync::Arc;

use tower_lsp_server::ls_types::DidCloseTextDocumentParams;

use crate::state::{lock, ServerState};

pub(crate) async fn handle(state: &Arc<ServerState>, params: DidCloseTextDocumentParams) {
    let uri = params.text_document.uri;
    lock(&state.documents).close(&uri);
    lock(&state.typed_through).forget(uri.as_str());
    state.engine.forget(uri.as_str());
}
