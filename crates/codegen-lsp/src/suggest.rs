//! The completion pipeline shared by `textDocument/inlineCompletion` and
//! `textDocument/completion`: snapshot, typed-through cache, debounce, the
//! engine (which builds the prompt, generates and ranks), telemetry. The
//! server never reorders what the engine ranked.

use std::sync::Arc;
use std::time::{Duration, Instant};

use codegen_context::position::{LineIndex, Position as ContextPosition};
use codegen_engine::{
    CompletionRequest, Document, JobError, JobHandle, JobOptions, PromptFormat, RankedCompletion,
};
use serde_json::json;
use tower_lsp_server::jsonrpc::{Error, Result};
use tower_lsp_server::ls_types::{Command, Position, Range, Uri};

use crate::documents::{language_of, to_context};
use crate::state::{lock, ModelState, ServerState, ShownSuggestion};
use crate::telemetry::{now_ms, EventKind, RankRecord, TelemetryEvent};

pub(crate) const ACCEPT_COMMAND: &str = "codegen.accepted";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trigger {
    /// While typing: debounced.
    Automatic,
    /// Asked for by the user: at once.
    Explicit,
}

/// One suggestion at the cursor.
pub(crate) struct Suggestion {
    pub id: String,
    /// Text to insert at the cursor.
    pub text: String,
    /// The line's text before the cursor.
    pub line_prefix: String,
    /// From the start of the line to the cursor, in the client's encoding.
    pub line_range: Range,
    /// The model that wrote it (also in the accept command's arguments).
    pub model: String,
}

impl Suggestion {
    pub fn accept_command(&self) -> Command {
        Command {
            title: "codegen: suggestion accepted".into(),
            command: ACCEPT_COMMAND.into(),
            arguments: Some(vec![
                json!({"id": self.id, "kind": "full", "model": self.model}),
            ]),
        }
    }
}

/// Cancels the engine job when the request's future is dropped (the client
/// sent `$/cancelRequest`, or the server is going away).
struct CancelOnDrop(JobHandle);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// Counts a request as in flight until it is answered or dropped.
struct InFlight<'a>(&'a ServerState);

impl<'a> InFlight<'a> {
    fn new(state: &'a ServerState) -> Self {
        state
            .requests_in_flight
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        InFlight(state)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0
            .requests_in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

pub(crate) fn debounce(base_ms: u64, typing_interval_ms: Option<f64>) -> Duration {
    if base_ms == 0 {
        return Duration::ZERO;
    }
    let base = base_ms as f64;
    // Fast typists wait a little longer than their rhythm, slow ones less
    // than the base: the request starts when a pause is likely.
    let ms = match typing_interval_ms {
        Some(interval) => (interval * 1.5).clamp(base / 2.0, base * 3.0),
        None => base,
    };
    Duration::from_secs_f64(ms / 1000.0)
}

pub(crate) async fn suggest(
    state: &Arc<ServerState>,
    uri: &Uri,
    position: Position,
    trigger: Trigger,
) -> Result<Vec<Suggestion>> {
    let started = Instant::now();
    let settings = state.settings();
    let encoding = state.encoding();
    let (doc, language_id, path, seq, typing_interval) = {
        let mut documents = lock(&state.documents);
        let Some(entry) = documents.get_mut(uri) else {
            return Err(Error::invalid_params(format!(
                "document {} is not open (send textDocument/didOpen first)",
                uri.as_str()
            )));
        };
        entry.request_seq += 1;
        (
            entry.doc.clone(),
            entry.language_id.clone(),
            entry.path.clone(),
            entry.request_seq,
            entry.typing_interval_ms,
        )
    };
    let text = doc.text();
    let index = LineIndex::new(text);
    let cursor = index
        .offset(text, to_context(position), encoding)
        .map_err(|e| {
            Error::invalid_params(format!(
                "position {}:{} is not in the document: {e}",
                position.line, position.character
            ))
        })?;
    if !settings.enabled || !settings.language_enabled(&language_id) {
        return Ok(Vec::new());
    }
    let line_start = index
        .offset(text, ContextPosition::new(position.line, 0), encoding)
        .unwrap_or(cursor);
    let line_prefix = text.get(line_start..cursor).unwrap_or("").to_string();
    let line_range = Range::new(Position::new(position.line, 0), position);

    *lock(&state.last_request) = std::time::Instant::now();
    let hit = lock(&state.typed_through).lookup(uri.as_str(), &doc, cursor);
    // Released while idle: the user is back, so load it again (a suggestion
    // still on screen answers this request meanwhile).
    let retired = matches!(&*lock(&state.model_state), ModelState::Retired { .. });
    if retired {
        crate::load::start_loading(state.clone());
    }
    if let Some(hit) = hit {
        state.counters.record_typed_through_hit();
        let model = lock(&state.shown)
            .get(&hit.id)
            .map(|s| s.model.clone())
            .unwrap_or_default();
        return Ok(vec![Suggestion {
            id: hit.id,
            text: hit.rest,
            line_prefix,
            line_range,
            model,
        }]);
    }
    if retired {
        // This request gets nothing; the next one is served by the model.
        return Ok(Vec::new());
    }
    // While another model loads (or failed to load), the active one keeps
    // serving; requests already running finish on the model they started on.
    if state.engine.model().is_none() {
        return Ok(Vec::new());
    }
    if trigger == Trigger::Automatic {
        let delay = debounce(settings.debounce_ms, typing_interval);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
            let latest = lock(&state.documents).get(uri).map(|d| d.request_seq);
            if latest != Some(seq) {
                return Ok(Vec::new()); // a newer request for this document
            }
        }
    }

    let neighbours = lock(&state.documents).neighbours(uri);
    let request = CompletionRequest {
        key: uri.as_str().to_string(),
        doc: doc.clone(),
        cursor,
        path,
        neighbours,
        format: PromptFormat::Editor,
        function_name: None,
        settings: settings.completion_settings_for(trigger == Trigger::Automatic),
    };
    // A rollout gives this document to the candidate.
    let rollout = crate::shadow::rollout_model(state, uri.as_str());
    let served_by_primary = rollout.is_none();
    let (reply_tx, reply_rx) = tokio::sync::oneshot::channel();
    let handle = state.engine.submit_with(
        request.clone(),
        JobOptions {
            model: rollout,
            background: false,
        },
        Box::new(move |result| {
            let _ = reply_tx.send(result);
        }),
    );
    let _cancel_on_drop = CancelOnDrop(handle);
    let _in_flight = InFlight::new(state);
    let result = reply_rx.await.map_err(|_| Error::internal_error())?;
    // A long request is activity until it ends, not idle time.
    *lock(&state.last_request) = std::time::Instant::now();
    let outcome = match result {
        Ok(outcome) => outcome,
        // No model, or the candidate left between the choice and the run.
        Err(JobError::Cancelled | JobError::NoModel | JobError::ModelNotLoaded(_)) => {
            return Ok(Vec::new())
        }
        Err(err @ JobError::Engine(codegen_engine::EngineError::CursorOutOfRange { .. })) => {
            return Err(Error::invalid_params(err.to_string()))
        }
        Err(err) => {
            if matches!(
                err,
                JobError::Engine(codegen_engine::EngineError::Remote(_))
            ) {
                // The editor shows the backend as down.
                state.send_status().await;
            }
            let mut error = Error::internal_error();
            error.message = format!("codegen: {err}").into();
            return Err(error);
        }
    };
    let rank = rank_record(&outcome, &doc, cursor);
    *lock(&state.last_ranking) = Some(last_ranking_json(&outcome));
    // In the engine's order: cycling shows the next best.
    let texts: Vec<String> = outcome.suggestions.iter().map(|s| s.text.clone()).collect();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    *lock(&state.last_latency_ms) = Some(latency_ms);
    let language = language_of(&language_id, "")
        .map(|l| format!("{l:?}").to_lowercase())
        .unwrap_or_else(|| language_id.clone());
    let suggestions: Vec<Suggestion> = texts
        .into_iter()
        .map(|text| Suggestion {
            id: state.new_suggestion_id(),
            text,
            line_prefix: line_prefix.clone(),
            line_range,
            model: outcome.model.clone(),
        })
        .collect();
    {
        let mut shown = lock(&state.shown);
        for suggestion in &suggestions {
            shown.insert(
                suggestion.id.clone(),
                ShownSuggestion {
                    model: outcome.model.clone(),
                    language: language.clone(),
                    latency_ms,
                    length: suggestion.text.len(),
                },
            );
        }
    }
    match suggestions.first() {
        Some(best) => {
            lock(&state.typed_through).remember(uri.as_str(), doc, cursor, &best.text, &best.id);
            let event = TelemetryEvent {
                ts_ms: now_ms(),
                event: EventKind::Shown,
                id: best.id.clone(),
                model: outcome.model.clone(),
                language: language.clone(),
                latency_ms: Some(latency_ms),
                length: best.text.len(),
                accepted_length: None,
                rank: Some(rank),
                prompt_tokens: Some(outcome.n_prompt_tokens),
                context: Some(crate::shadow::context_kind(&outcome)),
                shadow: None,
            };
            if let Err(err) = state.telemetry.append(&event) {
                tracing::warn!("cannot write telemetry: {err}");
            }
        }
        None => {
            lock(&state.typed_through).forget(uri.as_str());
            let event = TelemetryEvent {
                ts_ms: now_ms(),
                event: EventKind::Empty,
                id: String::new(),
                model: outcome.model.clone(),
                language: language.clone(),
                latency_ms: Some(latency_ms),
                length: 0,
                accepted_length: None,
                rank: None,
                prompt_tokens: Some(outcome.n_prompt_tokens),
                context: Some(crate::shadow::context_kind(&outcome)),
                shadow: None,
            };
            if let Err(err) = state.telemetry.append(&event) {
                tracing::warn!("cannot write telemetry: {err}");
            }
        }
    }
    if served_by_primary {
        let shown_id = suggestions
            .first()
            .map(|s| s.id.clone())
            .unwrap_or_default();
        crate::shadow::maybe_shadow(state, request, &outcome, shown_id, language);
    }
    crate::shadow::maybe_check_drift(state);
    state.send_status().await;
    Ok(suggestions)
}

/// How the shown (first) suggestion was chosen, for telemetry.
fn rank_record(outcome: &RankedCompletion, doc: &Document, cursor: usize) -> RankRecord {
    let chosen = outcome.suggestions.first();
    RankRecord {
        policy: outcome.rank.policy.to_string(),
        ms: outcome.rank.secs * 1000.0,
        candidates: outcome.suggestions.len(),
        ran_examples: outcome.rank.ran_code,
        examples_passed: chosen.map_or(0, |c| c.features.examples_passed),
        examples_total: chosen.map_or(0, |c| c.features.examples_total),
        syntax_delta: chosen.and_then(|c| {
            c.features
                .syntax_delta
                .or_else(|| crate::shadow::syntax_delta(doc, cursor, &c.text))
        }),
        mean_logprob: chosen.map_or(f32::NAN, |c| c.features.mean_logprob),
    }
}

/// The last reply's ranking, for `codegen/engineStats`.
fn last_ranking_json(outcome: &RankedCompletion) -> serde_json::Value {
    json!({
        "policy": outcome.rank.policy,
        "ms": outcome.rank.secs * 1000.0,
        "samples": outcome.samples.len(),
        "candidates": outcome.suggestions.len(),
        "order": outcome.suggestions.iter().map(|c| c.text.as_str()).collect::<Vec<_>>(),
        "ranExamples": outcome.rank.ran_code,
        "examplesPending": outcome.rank.code_pending,
        "notes": outcome.rank.notes,
        "chosen": outcome.suggestions.first().map(|c| json!({
            "score": c.score,
            "count": c.count,
            "features": c.features,
        })),
        "decodeMs": outcome.decode_secs * 1000.0,
        "prefillMs": outcome.prefill_secs * 1000.0,
        "runMs": outcome.run_secs * 1000.0,
    })
}
