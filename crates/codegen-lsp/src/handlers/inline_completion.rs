//! `textDocument/inlineCompletion` (LSP 3.18): ghost text at the cursor.
//! Each item replaces the line up to the cursor and reports acceptance
//! through its command.

use std::sync::Arc;

use tower_lsp_server::jsonrpc::Result;
use tower_lsp_server::ls_types::*;

use crate::state::ServerState;
use crate::suggest::{suggest, Trigger};

pub(crate) async fn handle(
    state: &Arc<ServerState>,
    params: InlineCompletionParams,
) -> Result<Option<InlineCompletionResponse>> {
    let position = params.text_document_position;
    let trigger = if params.context.trigger_kind == InlineCompletionTriggerKind::INVOKED {
        Trigger::Explicit
    } else {
        Trigger::Automatic
    };
    let suggestions = suggest(
        state,
        &position.text_document.uri,
        position.position,
        trigger,
    )
    .await?;
    let items = suggestions
        .iter()
        .map(|s| InlineCompletionItem {
            insert_text: format!("{}{}", s.line_prefix, s.text),
            filter_text: None,
            range: Some(s.line_range),
            command: Some(s.accept_command()),
            insert_text_format: None,
        })
        .collect();
    Ok(Some(InlineCompletionResponse::List(InlineCompletionList {
        items,
    })))
}
