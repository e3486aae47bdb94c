//! `textDocument/didOpen`: parse the document and keep it.

use std::sync::Arc;

use tower_lsp_server::ls_types::DidOpenTextDocumentParams;

use crate::state::{lock, ServerState};

pub(crate) async fn handle(state: &Arc<ServerState>, params: DidOpenTextDocumentParams) {
    let doc = params.text_document;
    lock(&state.documents).open(&doc.uri, &doc.language_id, doc.version, doc.text);
    lock(&state.typed_through).forget(doc.uri.as_str());
}
