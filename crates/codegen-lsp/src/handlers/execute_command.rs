//! `workspace/executeCommand`: `codegen.accepted` with
//! `[{"id", "kind": "full"|"partial", "acceptedLength"?, "model"?}]` records an
//! acceptance in the telemetry log.

use std::sync::Arc;

use serde::Deserialize;
use tower_lsp_server::jsonrpc::{Error, Result};
use tower_lsp_server::ls_types::{ExecuteCommandParams, LSPAny};

use crate::state::{lock, ServerState};
use crate::suggest::ACCEPT_COMMAND;
use crate::telemetry::{now_ms, EventKind, TelemetryEvent};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Accepted {
    id: String,
    kind: AcceptKind,
    accepted_length: Option<usize>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum AcceptKind {
    Full,
    Partial,
}

pub(crate) async fn handle(
    state: &Arc<ServerState>,
    params: ExecuteCommandParams,
) -> Result<Option<LSPAny>> {
    if params.command != ACCEPT_COMMAND {
        return Err(Error::invalid_params(format!(
            "unknown command {:?}; this server runs only {ACCEPT_COMMAND}",
            params.command
        )));
    }
    let argument = params.arguments.into_iter().next().ok_or_else(|| {
        Error::invalid_params(format!("{ACCEPT_COMMAND} needs one argument {{id, kind}}"))
    })?;
    let accepted: Accepted = serde_json::from_value(argument)
        .map_err(|e| Error::invalid_params(format!("{ACCEPT_COMMAND}: bad argument: {e}")))?;
    let Some(shown) = lock(&state.shown).get(&accepted.id).cloned() else {
        return Err(Error::invalid_params(format!(
            "{ACCEPT_COMMAND}: no suggestion with id {:?}",
            accepted.id
        )));
    };
    let (event, accepted_length) = match accepted.kind {
        AcceptKind::Full => (
            EventKind::Accepted,
            Some(accepted.accepted_length.unwrap_or(shown.length)),
        ),
        AcceptKind::Partial => (EventKind::Partial, accepted.accepted_length),
    };
    let record = TelemetryEvent {
        ts_ms: now_ms(),
        event,
        id: accepted.id,
        model: shown.model,
        language: shown.language,
        latency_ms: Some(shown.latency_ms),
        length: shown.length,
        accepted_length,
        rank: None,
        prompt_tokens: None,
        context: None,
        shadow: None,
    };
    if let Err(err) = state.telemetry.append(&record) {
        tracing::warn!("cannot write telemetry: {err}");
    }
    Ok(None)
}
