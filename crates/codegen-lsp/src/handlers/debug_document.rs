//! `codegen/debugDocument` (registered only with `debug_methods`): the
//! server's copy of a document, to test edits and encodings.

use std::sync::Arc;

use serde_json::{json, Value};
use tower_lsp_server::jsonrpc::{Error, Result};
use tower_lsp_server::ls_types::TextDocumentIdentifier;

use crate::state::{lock, ServerState};

pub(crate) async fn handle(
    state: &Arc<ServerState>,
    params: TextDocumentIdentifier,
) -> Result<Value> {
    let documents = lock(&state.documents);
    let doc = documents
        .get(&params.uri)
        .ok_or_else(|| Error::invalid_params("document is not open"))?;
    Ok(json!({
        "text": doc.doc.text(),
        "version": doc.version,
        "languageId": doc.language_id,
    }))
}
