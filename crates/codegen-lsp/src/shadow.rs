//! The candidate model (`shadowModel`): loading it beside the primary,
//! serving `rolloutPercent` of documents with it, running it in shadow on
//! `shadowPercent` of the primary's replies (in the engine's background
//! queue, so it never delays an editor request), and the drift watch over
//! the telemetry log (`window/showMessage`, at most once a day per kind).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use codegen_engine::{CompletionRequest, Document, JobOptions, RankedCompletion};
use tower_lsp_server::ls_types::MessageType;

use crate::monitor::{drift, DriftKind};
use crate::state::{lock, CandidateState, ServerState};
use crate::telemetry::{now_ms, read_events, EventKind, ShadowRecord, TelemetryEvent};

/// A stable bucket 0..100 of a document (FNV-1a of its URI), so a document
/// stays with one model while `rolloutPercent` is unchanged.
pub(crate) fn bucket(uri: &str) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in uri.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % 100) as u32
}

/// Whether reply number `n` (0, 1, ...) is in the shadow share: exactly
/// `percent` of every hundred consecutive replies, spread evenly.
pub(crate) fn in_share(n: u64, percent: u32) -> bool {
    let p = u64::from(percent.min(100));
    (n + 1) * p / 100 != n * p / 100
}

/// The candidate that serves this document, if the rollout gives it one.
pub(crate) fn rollout_model(state: &ServerState, uri: &str) -> Option<String> {
    let percent = state.settings().rollout_percent;
    if percent == 0 {
        return None;
    }
    match &*lock(&state.candidate) {
        CandidateState::Ready(name) if bucket(uri) < percent => Some(name.clone()),
        _ => None,
    }
}

/// Loads the `shadowModel` setting's model into the engine's registry (not
/// active), validated by the host's gate like any model; the previous
/// candidate leaves the registry. Nothing to load: the candidate is off.
pub(crate) fn start_loading_candidate(state: Arc<ServerState>) {
    let generation = state.candidate_generation.fetch_add(1, Ordering::SeqCst) + 1;
    let settings = state.settings();
    let previous = std::mem::replace(&mut *lock(&state.candidate), CandidateState::None);
    if let CandidateState::Ready(name) = previous {
        let active = state.engine.model().map(|m| m.name.clone());
        if active.as_deref() != Some(name.as_str()) {
            state.engine.registry().remove(&name);
        }
    }
    let Some(spec) = settings.shadow_model.clone() else {
        tokio::spawn(async move { state.send_status().await });
        return;
    };
    *lock(&state.candidate) = CandidateState::Loading(spec.clone());
    tokio::spawn(async move {
        state.send_status().await;
        let loader = state.clone();
        let load_spec = spec.clone();
        let result = tokio::task::spawn_blocking(move || {
            let settings = crate::settings::Settings {
                model: Some(load_spec),
                // A candidate is measured as it is, without a draft.
                draft_model: Some("none".into()),
                ..loader.settings()
            };
            let model = crate::load::load_model(
                &loader.options.resolve_model,
                &loader.options.default_draft,
                &settings,
                Arc::new(|_| {}),
            )?;
            if let Some(active) = loader.engine.model() {
                if active.name == model.name {
                    return Err(format!(
                        "the candidate {} is the model already serving",
                        model.name
                    ));
                }
            }
            if let Some(gate) = &loader.options.gate {
                gate(&model, &|| loader.engine.is_busy())?;
            }
            Ok(model)
        })
        .await
        .unwrap_or_else(|err| Err(format!("candidate loading failed: {err}")));
        if state.candidate_generation.load(Ordering::SeqCst) != generation {
            return;
        }
        match result {
            Ok(model) => {
                let name = model.name.clone();
                state.engine.registry().insert(model);
                *lock(&state.candidate) = CandidateState::Ready(name.clone());
                let s = state.settings();
                state
                    .client
                    .log_message(
                        MessageType::INFO,
                        format!(
                            "codegen: candidate {name} ready: shadow on {}% of replies, serving {}% of documents",
                            s.shadow_percent, s.rollout_percent
                        ),
                    )
                    .await;
            }
            Err(message) => {
                tracing::error!("candidate: {message}");
                *lock(&state.candidate) = CandidateState::Error {
                    spec,
                    message: message.clone(),
                };
                state
                    .client
                    .log_message(
                        MessageType::ERROR,
                        format!("codegen: shadow model: {message}; the primary serves alone"),
                    )
                    .await;
            }
        }
        state.send_status().await;
    });
}

/// Syntax problems `text` adds at `cursor` (`None`: a language without a
/// parser). The ranker computes it too, but not under every policy.
pub(crate) fn syntax_delta(doc: &Document, cursor: usize, text: &str) -> Option<i64> {
    match doc {
        Document::Parsed(parsed) => {
            Some(codegen_context::syntax_check(parsed, cursor, text).delta())
        }
        Document::Plain(_) => None,
    }
}

/// The context kind of a reply, for telemetry (`fim/single_line`).
pub(crate) fn context_kind(outcome: &RankedCompletion) -> String {
    format!(
        "{}/{}",
        outcome.prompt_mode.as_str(),
        outcome.completion_mode.as_str()
    )
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("").trim_end()
}

/// Runs `request` on the candidate in the background when this reply is in
/// the shadow share, and records how the candidate compares.
pub(crate) fn maybe_shadow(
    state: &Arc<ServerState>,
    request: CompletionRequest,
    primary: &RankedCompletion,
    shown_id: String,
    language: String,
) {
    let settings = state.settings();
    let candidate = match &*lock(&state.candidate) {
        CandidateState::Ready(name) => name.clone(),
        _ => return,
    };
    if candidate == primary.model || settings.shadow_percent == 0 {
        return;
    }
    let n = state.shadow_counter.fetch_add(1, Ordering::Relaxed);
    if !in_share(n, settings.shadow_percent) {
        return;
    }
    let primary_best = primary.suggestions.first();
    let primary_text = primary_best.map(|c| c.text.clone()).unwrap_or_default();
    let primary_logprob = primary_best.map(|c| c.features.mean_logprob);
    let primary_name = primary.model.clone();
    let primary_ms = primary.run_secs * 1000.0;
    let (doc, cursor) = (request.doc.clone(), request.cursor);
    let (tx, rx) = tokio::sync::oneshot::channel();
    state.engine.submit_with(
        request,
        JobOptions {
            model: Some(candidate.clone()),
            background: true,
        },
        Box::new(move |result| {
            let _ = tx.send(result);
        }),
    );
    let state = state.clone();
    tokio::spawn(async move {
        // Cancelled (an editor request came first) or failed: nothing to
        // compare, nothing recorded.
        let Ok(Ok(outcome)) = rx.await else {
            return;
        };
        let best = outcome.suggestions.first();
        let text = best.map(|c| c.text.as_str()).unwrap_or("");
        let record = ShadowRecord {
            primary: primary_name,
            agree_exact: best.is_some() && text == primary_text,
            agree_first_line: best.is_some() && first_line(text) == first_line(&primary_text),
            syntax_ok: best
                .and_then(|c| {
                    c.features
                        .syntax_delta
                        .or_else(|| syntax_delta(&doc, cursor, &c.text))
                })
                .map(|d| d <= 0),
            mean_logprob: best
                .map(|c| c.features.mean_logprob)
                .filter(|x| x.is_finite()),
            primary_mean_logprob: primary_logprob.filter(|x| x.is_finite()),
            latency_ms: outcome.run_secs * 1000.0,
            primary_latency_ms: primary_ms,
            empty: best.is_none(),
        };
        let event = TelemetryEvent {
            ts_ms: now_ms(),
            event: EventKind::Shadow,
            id: shown_id,
            model: outcome.model.clone(),
            language,
            latency_ms: Some(outcome.run_secs * 1000.0),
            length: text.len(),
            accepted_length: None,
            rank: None,
            prompt_tokens: Some(outcome.n_prompt_tokens),
            context: Some(context_kind(&outcome)),
            shadow: Some(record),
        };
        if let Err(err) = state.telemetry.append(&event) {
            tracing::warn!("cannot write telemetry: {err}");
        }
    });
}

/// Where the last warning of each drift kind went out (ms since the
/// epoch), beside the telemetry log, so a restart does not repeat it.
fn warned_path(state: &ServerState) -> Option<PathBuf> {
    state
        .telemetry
        .path()
        .map(|p| p.with_file_name("drift-warnings.json"))
}

/// A day: the least time between two warnings of one kind.
const WARN_EVERY_MS: u64 = 86_400_000;

/// Checks the telemetry log for drift when the last check is older than the
/// interval; a drifted quantity raises `window/showMessage` unless that kind
/// was raised in the last day.
pub(crate) fn maybe_check_drift(state: &Arc<ServerState>) {
    let Some(interval) = state.options.drift_check_interval else {
        return;
    };
    let Some(log) = state.telemetry.path().map(|p| p.to_path_buf()) else {
        return;
    };
    {
        let mut checked = lock(&state.drift_checked);
        if checked.is_some_and(|at| at.elapsed() < interval) {
            return;
        }
        *checked = Some(Instant::now());
    }
    let state = state.clone();
    tokio::spawn(async move {
        let config = state.options.drift;
        let warned = warned_path(&state);
        let found = tokio::task::spawn_blocking(move || {
            let (events, _) = read_events(&log).ok()?;
            let now = now_ms();
            let report = drift(&events, now, &config);
            let mut last: BTreeMap<DriftKind, u64> = warned
                .as_ref()
                .and_then(|p| std::fs::read_to_string(p).ok())
                .and_then(|s| serde_json::from_str::<BTreeMap<String, u64>>(&s).ok())
                .map(|m| {
                    m.into_iter()
                        .filter_map(|(k, v)| kind_named(&k).map(|k| (k, v)))
                        .collect()
                })
                .unwrap_or_default();
            let mut messages = Vec::new();
            let mut quiet = Vec::new();
            for check in report.drifted() {
                if last
                    .get(&check.kind)
                    .is_some_and(|at| now.saturating_sub(*at) < WARN_EVERY_MS)
                {
                    quiet.push(check.kind.as_str());
                    continue;
                }
                last.insert(check.kind, now);
                messages.push(format!(
                    "codegen: input drift ({}): {}. See `codegen stats`.",
                    check.kind.as_str(),
                    check.message
                ));
            }
            if !messages.is_empty() {
                if let Some(path) = &warned {
                    let map: BTreeMap<&str, u64> =
                        last.iter().map(|(k, v)| (k.as_str(), *v)).collect();
                    if let Ok(text) = serde_json::to_string_pretty(&map) {
                        let _ = std::fs::write(path, text);
                    }
                }
            }
            let summary = format!(
                "codegen: drift check: {} recent and {} baseline replies; {} drifted{}",
                report.recent_replies,
                report.baseline_replies,
                report.drifted().count(),
                if quiet.is_empty() {
                    String::new()
                } else {
                    format!(" ({} already raised in the last day)", quiet.join(", "))
                }
            );
            Some((messages, summary))
        })
        .await
        .ok()
        .flatten();
        let Some((warnings, summary)) = found else {
            return;
        };
        for message in warnings {
            tracing::warn!("{message}");
            state
                .client
                .show_message(MessageType::WARNING, message)
                .await;
        }
        // After the warnings, on the same channel: a check has ended.
        state.client.log_message(MessageType::LOG, summary).await;
    });
}

fn kind_named(name: &str) -> Option<DriftKind> {
    [
        DriftKind::LanguageMix,
        DriftKind::PromptLength,
        DriftKind::ContextKind,
        DriftKind::EmptyRate,
        DriftKind::AcceptanceRate,
        DriftKind::LatencyP95,
    ]
    .into_iter()
    .find(|k| k.as_str() == name)
}
