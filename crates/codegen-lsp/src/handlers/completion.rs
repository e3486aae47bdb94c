//! `textDocument/completion`: the fallback for clients without inline
//! completion; the first line of each suggestion as an item.

use std::sync::Arc;

use tower_lsp_server::jsonrpc::Result;
use tower_lsp_server::ls_types::*;

use crate::state::ServerState;
use crate::suggest::{suggest, Trigger};

pub(crate) async fn handle(
    state: &Arc<ServerState>,
    params: CompletionParams,
) -> Result<Option<CompletionResponse>> {
    let position = params.text_document_position;
    let trigger = match params.context.map(|c| c.trigger_kind) {
        Some(CompletionTriggerKind::INVOKED) => Trigger::Explicit,
        _ => Trigger::Automatic,
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
        .filter_map(|s| {
            let first_line = s.text.split('\n').next().unwrap_or("");
            if first_line.trim().is_empty() {
                return None;
            }
            let label = format!("{}{}", s.line_prefix.trim_start(), first_line);
            Some(CompletionItem {
                label,
                kind: Some(CompletionItemKind::TEXT),
                detail: Some("codegen".into()),
                filter_text: Some(format!("{}{}", s.line_prefix.trim_start(), first_line)),
                text_edit: Some(CompletionTextEdit::Edit(TextEdit {
                    range: s.line_range,
                    new_text: format!("{}{}", s.line_prefix, first_line),
                })),
                command: Some(s.accept_command()),
                ..CompletionItem::default()
            })
        })
        .collect();
    Ok(Some(CompletionResponse::Array(items)))
}
