//! `textDocument/didShowCompletion` (sent by some clients, not in LSP
//! 3.18): the client displayed a suggestion. Params: `{id}` or
//! `{item}` with the item's `codegen.accepted` command.

use std::sync::Arc;

use serde_json::Value;

use crate::state::{lock, ServerState};
use crate::telemetry::{now_ms, EventKind, TelemetryEvent};

fn suggestion_id(params: &Value) -> Option<&str> {
    params.get("id").and_then(Value::as_str).or_else(|| {
        params
            .pointer("/item/command/arguments/0/id")
            .and_then(Value::as_str)
    })
}

pub(crate) async fn handle(state: &Arc<ServerState>, params: Value) {
    let Some(id) = suggestion_id(&params) else {
        tracing::debug!("didShowCompletion without a suggestion id: {params}");
        return;
    };
    let Some(shown) = lock(&state.shown).get(id).cloned() else {
        return;
    };
    let record = TelemetryEvent {
        ts_ms: now_ms(),
        event: EventKind::Displayed,
        id: id.to_string(),
        model: shown.model,
        language: shown.language,
        latency_ms: None,
        length: shown.length,
        accepted_length: None,
        rank: None,
        prompt_tokens: None,
        context: None,
        shadow: None,
    };
    if let Err(err) = state.telemetry.append(&record) {
        tracing::warn!("cannot write telemetry: {err}");
    }
}
