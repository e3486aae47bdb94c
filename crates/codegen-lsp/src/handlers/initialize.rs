//! `initialize`: position encoding, settings from `initializationOptions`,
//! capabilities.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use codegen_context::position::PositionEncoding;
use tower_lsp_server::jsonrpc::Result;
use tower_lsp_server::ls_types::*;

use crate::state::{lock, ServerState};
use crate::suggest::ACCEPT_COMMAND;

pub(crate) async fn handle(
    state: &Arc<ServerState>,
    params: InitializeParams,
) -> Result<InitializeResult> {
    let offered = params
        .capabilities
        .general
        .as_ref()
        .and_then(|general| general.position_encodings.clone())
        .unwrap_or_default();
    let (kind, encoding) = if offered.contains(&PositionEncodingKind::UTF8) {
        (PositionEncodingKind::UTF8, PositionEncoding::Utf8)
    } else {
        (PositionEncodingKind::UTF16, PositionEncoding::Utf16)
    };
    *lock(&state.encoding) = encoding;
    let progress = params
        .capabilities
        .window
        .as_ref()
        .and_then(|window| window.work_done_progress)
        .unwrap_or(false);
    state
        .client_supports_progress
        .store(progress, Ordering::Relaxed);
    if let Some(options) = &params.initialization_options {
        let warnings = lock(&state.settings).merge_json(options);
        lock(&state.pending_log).extend(warnings);
    }

    Ok(InitializeResult {
        capabilities: ServerCapabilities {
            position_encoding: Some(kind),
            text_document_sync: Some(TextDocumentSyncCapability::Options(
                TextDocumentSyncOptions {
                    open_close: Some(true),
                    change: Some(TextDocumentSyncKind::INCREMENTAL),
                    ..TextDocumentSyncOptions::default()
                },
            )),
            completion_provider: Some(CompletionOptions::default()),
            inline_completion_provider: Some(OneOf::Left(true)),
            execute_command_provider: Some(ExecuteCommandOptions {
                commands: vec![ACCEPT_COMMAND.to_string()],
                ..ExecuteCommandOptions::default()
            }),
            ..ServerCapabilities::default()
        },
        server_info: Some(ServerInfo {
            name: "codegen".into(),
            version: Some(env!("CARGO_PKG_VERSION").into()),
        }),
        offset_encoding: None,
    })
}
