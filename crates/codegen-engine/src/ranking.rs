//! Ranking inside the engine: every front end gets its candidates in this
//! order and none orders them itself. Policies and features are
//! `codegen-rank`'s; this module picks the function whose examples count,
//! runs the examples under the request's time budget (the reply never waits
//! longer; late results are cached for the next request) and drops blank
//! candidates.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use codegen_context::{cursor_scope, Language, ParsedDocument};
use codegen_rank::{
    analysis_without_code, analyze_many_cached, order, RankConfig, RankMode, RankRequest,
    RankedCandidate, RawCandidate, RunCache,
};
use codegen_sandbox::{Isolation, Sandbox, SandboxConfig};

use crate::complete::{CompletionRequest, ExampleRuns, RankPolicy, Sample};
use crate::document::Document;

/// What ranking did for one request.
#[derive(Debug, Clone, Default)]
pub struct RankOutcome {
    /// Best first; blank samples dropped; identical samples merged
    /// (`sample_indices` index into the request's samples).
    pub suggestions: Vec<RankedCandidate>,
    pub policy: &'static str,
    pub secs: f64,
    /// The docstring's examples ran (or came from the cache) for this reply.
    pub ran_code: bool,
    /// The examples were still running when the budget ran out; their
    /// results go to the cache.
    pub code_pending: bool,
    /// Examples that counted (the same for every candidate).
    pub n_examples: usize,
    pub notes: Vec<String>,
}

/// Ranks samples; holds the sandbox (made on first use) and the cache of
/// sandbox results.
pub struct Ranker {
    sandbox_config: Option<SandboxConfig>,
    sandbox: OnceLock<Result<Arc<Sandbox>, String>>,
    cache: Arc<RunCache>,
    /// A budgeted run is still going on in the background.
    in_flight: Arc<AtomicBool>,
    /// Sandbox programs run at once.
    workers: usize,
}

impl Ranker {
    /// `sandbox`: how examples run; `None` never runs them.
    pub fn new(sandbox: Option<SandboxConfig>) -> Ranker {
        Ranker {
            sandbox_config: sandbox,
            sandbox: OnceLock::new(),
            cache: Arc::new(RunCache::new()),
            in_flight: Arc::new(AtomicBool::new(false)),
            workers: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
                .clamp(2, 8),
        }
    }

    fn sandbox(&self) -> Result<Arc<Sandbox>, String> {
        self.sandbox
            .get_or_init(|| {
                let Some(config) = self.sandbox_config.clone() else {
                    return Err("examples are not run (no sandbox configured)".into());
                };
                let sandbox = Sandbox::new(config).map_err(|e| format!("no sandbox: {e}"))?;
                if let Isolation::Unsandboxed { reason } = sandbox.isolation() {
                    tracing::warn!("ranking runs examples WITHOUT a sandbox ({reason})");
                }
                Ok(Arc::new(sandbox))
            })
            .clone()
    }

    /// Programs whose sandbox results are cached.
    pub fn cached_runs(&self) -> usize {
        self.cache.len()
    }

    /// Orders `samples` of `req` under its ranking settings.
    pub fn rank(&self, req: &CompletionRequest, samples: &[Sample]) -> RankOutcome {
        let _span = tracing::debug_span!("rank", n = samples.len()).entered();
        let started = Instant::now();
        let settings = req.settings.rank;
        let mut cfg = match settings.policy {
            RankPolicy::Combined => RankConfig::combined(),
            RankPolicy::Logprob => RankConfig::logprob(),
            RankPolicy::None => RankConfig {
                name: "none".into(),
                use_logprob: false,
                ..RankConfig::logprob()
            },
        };
        cfg.workers = self.workers;
        // Blank samples are never suggested, so they are not ranked (nor run).
        let kept: Vec<usize> = (0..samples.len())
            .filter(|&i| !samples[i].text.trim().is_empty())
            .collect();
        let raw: Vec<RawCandidate> = kept
            .iter()
            .map(|&i| RawCandidate {
                text: samples[i].text.clone(),
                mean_logprob: samples[i].mean_logprob,
                n_tokens: samples[i].n_tokens,
            })
            .collect();
        let mut outcome = match &*req.doc {
            // One candidate: nothing to order, and nothing worth its cost
            // on every keystroke.
            _ if raw.len() <= 1 => RankOutcome {
                suggestions: order(&analysis_without_code(&raw), &cfg),
                ..RankOutcome::default()
            },
            Document::Parsed(doc) => self.rank_parsed(req, doc, raw, &cfg, settings.examples),
            Document::Plain(_) => RankOutcome {
                suggestions: order(&analysis_without_code(&raw), &cfg),
                ..RankOutcome::default()
            },
        };
        for candidate in &mut outcome.suggestions {
            for idx in &mut candidate.sample_indices {
                *idx = kept[*idx];
            }
        }
        outcome.policy = settings.policy.as_str();
        outcome.secs = started.elapsed().as_secs_f64();
        outcome
    }

    fn rank_parsed(
        &self,
        req: &CompletionRequest,
        doc: &ParsedDocument,
        raw: Vec<RawCandidate>,
        cfg: &RankConfig,
        examples: ExampleRuns,
    ) -> RankOutcome {
        let function_name = req
            .function_name
            .clone()
            .or_else(|| function_being_written(doc, req.cursor));
        let wants_code = cfg.use_examples
            && doc.language() == Language::Python
            && examples != ExampleRuns::Never
            && function_name.is_some();
        let no_code = RankMode::Inline {
            run_code: false,
            time_budget: Duration::ZERO,
        };
        // Ranking without running code (syntax, log-probability), with a
        // note on why.
        let without_code = |note: Option<String>| {
            let mut outcome = analyze_one(
                doc,
                req.cursor,
                &raw,
                &function_name,
                cfg,
                no_code,
                None,
                None,
            );
            outcome.notes.extend(note);
            outcome
        };
        let sandbox = if wants_code {
            match self.sandbox() {
                Ok(sandbox) => Some(sandbox),
                Err(note) => return without_code(Some(note)),
            }
        } else {
            None
        };
        match (sandbox, examples) {
            (Some(sandbox), ExampleRuns::Always) => analyze_one(
                doc,
                req.cursor,
                &raw,
                &function_name,
                cfg,
                RankMode::Batch,
                Some(&sandbox),
                Some(&self.cache),
            ),
            (Some(sandbox), ExampleRuns::WithinBudget(budget)) => {
                if self.in_flight.swap(true, Ordering::AcqRel) {
                    return without_code(Some(
                        "examples not run: an earlier run is still going".into(),
                    ));
                }
                let (tx, rx) = mpsc::channel();
                let doc_arc = req.doc.clone();
                let cursor = req.cursor;
                let raw_bg = raw.clone();
                let name = function_name.clone();
                let cfg_bg = cfg.clone();
                let cache = self.cache.clone();
                let in_flight = self.in_flight.clone();
                let spawned = std::thread::Builder::new()
                    .name("codegen-rank".into())
                    .spawn(move || {
                        if let Document::Parsed(doc) = &*doc_arc {
                            let outcome = analyze_one(
                                doc,
                                cursor,
                                &raw_bg,
                                &name,
                                &cfg_bg,
                                RankMode::Batch,
                                Some(&sandbox),
                                Some(&cache),
                            );
                            let _ = tx.send(outcome);
                        }
                        in_flight.store(false, Ordering::Release);
                    });
                if spawned.is_err() {
                    self.in_flight.store(false, Ordering::Release);
                }
                match rx.recv_timeout(budget) {
                    Ok(outcome) => outcome,
                    Err(_) => {
                        let mut outcome = without_code(Some(format!(
                            "examples still running after {} ms (cached for the next request)",
                            budget.as_millis()
                        )));
                        outcome.code_pending = true;
                        outcome
                    }
                }
            }
            _ => without_code(None),
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn analyze_one(
    doc: &ParsedDocument,
    cursor: usize,
    raw: &[RawCandidate],
    function_name: &Option<String>,
    cfg: &RankConfig,
    mode: RankMode,
    sandbox: Option<&Sandbox>,
    cache: Option<&RunCache>,
) -> RankOutcome {
    let request = RankRequest {
        doc,
        cursor,
        candidates: raw,
        function_name: function_name.as_deref(),
    };
    let analysis = analyze_many_cached(&[request], cfg, mode, sandbox, cache)
        .pop()
        .unwrap_or_else(|| analysis_without_code(raw));
    RankOutcome {
        suggestions: order(&analysis, cfg),
        ran_code: analysis.ran_code,
        n_examples: analysis.n_valid_examples(),
        notes: analysis.notes.clone(),
        ..RankOutcome::default()
    }
}

/// The function being written: the one around the cursor, or the one that
/// ends just before it (a signature and docstring with the cursor on the
/// line after).
pub fn function_being_written(doc: &ParsedDocument, cursor: usize) -> Option<String> {
    let text = doc.text();
    let cursor = cursor.min(text.len());
    let before = text[..cursor].trim_end().len();
    [cursor, before.saturating_sub(1)]
        .iter()
        .find_map(|at| cursor_scope(doc, *at).function?.name)
}
