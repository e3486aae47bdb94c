//! `codegen/selectModel` `{"model": NAME|PATH|hf:..|null, "draftModel"?}`:
//! switches the model without a restart, as a `model` setting change does.
//! The new model loads (and is validated) in the background while the
//! active one keeps serving; the reply is the status at once, and
//! `codegen/status` reports the outcome.

use std::sync::Arc;

use serde_json::Value;
use tower_lsp_server::jsonrpc::{Error, Result};

use crate::state::{lock, ServerState};

pub(crate) async fn handle(state: &Arc<ServerState>, params: Value) -> Result<Value> {
    let Some(object) = params.as_object() else {
        return Err(Error::invalid_params(
            "codegen/selectModel takes {\"model\": NAME|PATH|null}",
        ));
    };
    let model = match object.get("model") {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Some(Value::Null) | Some(Value::String(_)) => None,
        _ => {
            return Err(Error::invalid_params(
                "codegen/selectModel: `model` must be a string or null",
            ))
        }
    };
    let reload = {
        let mut settings = lock(&state.settings);
        let before = settings.clone();
        settings.model = model;
        if let Some(draft) = object.get("draftModel") {
            settings.draft_model = draft.as_str().filter(|s| !s.is_empty()).map(str::to_string);
        }
        settings.model_differs(&before)
    };
    if reload {
        crate::load::start_loading(state.clone());
    }
    serde_json::to_value(state.status()).map_err(|_| Error::internal_error())
}
