//! `codegen/engineStats`: the engine's counters and the server's state,
//! for benchmarks, tests and curious users.

use std::sync::Arc;

use serde_json::{json, Value};
use tower_lsp_server::jsonrpc::Result;

use crate::state::{lock, ServerState};

pub(crate) async fn handle(state: &Arc<ServerState>) -> Result<Value> {
    let c = state.counters.snapshot();
    let runtime = codegen_model::RuntimeConfig::current();
    let model = state.engine.model();
    let rss_mib = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
            let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib / 1024.0)
        });
    Ok(json!({
        "model": model.as_ref().map(|m| m.name.clone()),
        "modelLoaded": model.is_some(),
        "rssMib": rss_mib,
        "draftModel": model.as_ref().and_then(|m| m.draft.as_ref().map(|d| d.name.clone())),
        "runtime": {
            "threads": runtime.threads,
            "simd": runtime.simd,
            "forward": runtime.forward,
            "kernels": runtime.kernels,
            "lookupDraftTokens": runtime.lookup_draft_tokens,
        },
        "draftTokens": c.draft_tokens,
        "acceptedDraftTokens": c.accepted_draft_tokens,
        "draftAcceptance": if c.draft_tokens > 0 { c.accepted_draft_tokens as f64 / c.draft_tokens as f64 } else { 0.0 },
        "targetPasses": c.target_passes,
        "status": state.status(),
        "openDocuments": lock(&state.documents).len(),
        "jobsSubmitted": c.jobs_submitted,
        "jobsCompleted": c.jobs_completed,
        "jobsCancelled": c.jobs_cancelled,
        "jobsFailed": c.jobs_failed,
        "tokensPrefilled": c.tokens_prefilled,
        "tokensReused": c.tokens_reused,
        "tokensGenerated": c.tokens_generated,
        "typedThroughHits": c.typed_through_hits,
        "budgetExhausted": c.budget_exhausted,
        "ranked": c.ranked,
        "rankedWithExamples": c.ranked_with_examples,
        "rankMsTotal": c.rank_micros as f64 / 1000.0,
        "rankMsMean": if c.ranked > 0 { c.rank_micros as f64 / 1000.0 / c.ranked as f64 } else { 0.0 },
        "cachedExampleRuns": state.engine.cached_example_runs(),
        "lastRanking": lock(&state.last_ranking).clone(),
    }))
}
