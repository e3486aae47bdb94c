//! The engine: the model registry, one queue, one OS thread (never an async
//! runtime's thread) that builds each request's prompt once, generates its
//! samples and ranks them ([`Engine::submit`], [`Engine::complete`]). A new job for a key cancels the running and queued
//! jobs for that key; a job's own handle cancels it too. Cancellation takes
//! effect between prefill chunks and before every generated token. Sessions
//! are cached per key, so a keystroke costs only the tokens after the
//! longest common prefix with the previous prompt.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

use codegen_context::CompletionMode;
use codegen_model::{prefill_reusing, FinishReason};
use codegen_rank::RankedCandidate;
use codegen_sandbox::SandboxConfig;

use crate::cache::{SessionCache, SessionCacheConfig};
use crate::complete::{
    build_prompt_tokens, generate_candidates, CompletionRequest, CompletionSettings, PromptMode,
    Sample,
};
use crate::ranking::{RankOutcome, Ranker};
use crate::registry::{LoadedModel, ModelRegistry};
use crate::EngineError;

/// Settings of an [`Engine`].
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    pub sessions: SessionCacheConfig,
    /// Prompt tokens prefilled between two looks at the cancel flag.
    pub prefill_chunk: usize,
    /// How the docstring's examples run for ranking; `None`: never.
    pub sandbox: Option<SandboxConfig>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            sessions: SessionCacheConfig::default(),
            prefill_chunk: 128,
            sandbox: Some(SandboxConfig::default()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("the request was cancelled")]
    Cancelled,
    #[error("no model is loaded yet")]
    NoModel,
    #[error("model {0} is not loaded")]
    ModelNotLoaded(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("the engine panicked: {0}")]
    Panicked(String),
    #[error("the engine worker has stopped")]
    WorkerGone,
}

/// A finished request: ranked suggestions, the samples they came from and
/// what it cost.
#[derive(Debug, Clone)]
pub struct RankedCompletion {
    /// The model that produced it.
    pub model: String,
    /// Best first: identical samples merged, blank ones dropped.
    pub suggestions: Vec<RankedCandidate>,
    /// Every sample, in sample order (`suggestions[i].sample_indices` index
    /// into it).
    pub samples: Vec<Sample>,
    pub prompt_mode: PromptMode,
    pub completion_mode: CompletionMode,
    pub n_prompt_tokens: usize,
    /// Prompt tokens computed for this request.
    pub n_prefilled_tokens: usize,
    /// Prompt tokens whose KV cache came from the cached session.
    pub n_reused_tokens: usize,
    pub prefill_secs: f64,
    pub decode_secs: f64,
    pub n_generated_tokens: usize,
    /// Speculative decoding (a model with a draft, one sample): proposals
    /// made and kept, and the model's forward passes while decoding.
    pub n_draft_tokens: usize,
    pub n_accepted_draft_tokens: usize,
    pub n_target_passes: usize,
    pub rank: RankOutcome,
    /// Generation stopped at the time budget (the text is partial).
    pub budget_exhausted: bool,
    pub queue_secs: f64,
    pub run_secs: f64,
    /// What the context could not do.
    pub notes: Vec<String>,
}

impl RankedCompletion {
    /// The best suggestion's text.
    pub fn best(&self) -> Option<&str> {
        self.suggestions.first().map(|s| s.text.as_str())
    }
}

/// Totals since the worker started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    pub jobs_submitted: u64,
    pub jobs_completed: u64,
    pub jobs_cancelled: u64,
    pub jobs_failed: u64,
    pub tokens_prefilled: u64,
    pub tokens_reused: u64,
    pub tokens_generated: u64,
    pub typed_through_hits: u64,
    pub budget_exhausted: u64,
    /// Requests ranked, and those for which examples ran (or were cached).
    pub ranked: u64,
    pub ranked_with_examples: u64,
    /// Time spent ranking, in all.
    pub rank_micros: u64,
    /// Speculative decoding: draft proposals, those kept, and the model's
    /// decode passes in those jobs.
    pub draft_tokens: u64,
    pub accepted_draft_tokens: u64,
    pub target_passes: u64,
}

/// Engine counters, shared by the worker and whoever answers from caches.
#[derive(Default)]
pub struct Counters {
    jobs_submitted: AtomicU64,
    jobs_completed: AtomicU64,
    jobs_cancelled: AtomicU64,
    jobs_failed: AtomicU64,
    tokens_prefilled: AtomicU64,
    tokens_reused: AtomicU64,
    tokens_generated: AtomicU64,
    typed_through_hits: AtomicU64,
    budget_exhausted: AtomicU64,
    ranked: AtomicU64,
    ranked_with_examples: AtomicU64,
    rank_micros: AtomicU64,
    draft_tokens: AtomicU64,
    accepted_draft_tokens: AtomicU64,
    target_passes: AtomicU64,
}

fn bump(counter: &AtomicU64, n: usize) {
    counter.fetch_add(n as u64, Ordering::Relaxed);
}

impl Counters {
    pub fn record_typed_through_hit(&self) {
        bump(&self.typed_through_hits, 1);
    }

    pub fn snapshot(&self) -> CounterSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CounterSnapshot {
            jobs_submitted: get(&self.jobs_submitted),
            jobs_completed: get(&self.jobs_completed),
            jobs_cancelled: get(&self.jobs_cancelled),
            jobs_failed: get(&self.jobs_failed),
            tokens_prefilled: get(&self.tokens_prefilled),
            tokens_reused: get(&self.tokens_reused),
            tokens_generated: get(&self.tokens_generated),
            typed_through_hits: get(&self.typed_through_hits),
            budget_exhausted: get(&self.budget_exhausted),
            ranked: get(&self.ranked),
            ranked_with_examples: get(&self.ranked_with_examples),
            rank_micros: get(&self.rank_micros),
            draft_tokens: get(&self.draft_tokens),
            accepted_draft_tokens: get(&self.accepted_draft_tokens),
            target_passes: get(&self.target_passes),
        }
    }
}

/// Stop flags of one job: `stop` is what the generation loop reads; it is
/// set by a cancel and by the time budget, `cancelled` only by a cancel.
#[derive(Default)]
struct StopFlags {
    stop: AtomicBool,
    cancelled: AtomicBool,
}

impl StopFlags {
    fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
        self.stop.store(true, Ordering::Relaxed);
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }
}

/// Cancels its job (queued or running). Dropping it does nothing.
#[derive(Clone)]
pub struct JobHandle {
    flags: Arc<StopFlags>,
}

impl JobHandle {
    pub fn cancel(&self) {
        self.flags.cancel();
    }
}

/// Receives the result of a request, exactly once, on the worker thread.
pub type Reply = Box<dyn FnOnce(Result<RankedCompletion, JobError>) + Send>;

/// How a request is scheduled ([`Engine::submit_with`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobOptions {
    /// Run on this model of the registry instead of the active one (a
    /// candidate in shadow or rollout); it fails with
    /// [`JobError::ModelNotLoaded`] when the registry does not hold it.
    pub model: Option<String>,
    /// Runs only while no foreground request is queued or running: a
    /// foreground request that arrives cancels it (it gets
    /// [`JobError::Cancelled`]), so it never delays one.
    pub background: bool,
}

struct Queued {
    job: CompletionRequest,
    options: JobOptions,
    flags: Arc<StopFlags>,
    reply: Reply,
    enqueued: Instant,
}

struct Running {
    key: String,
    background: bool,
    flags: Arc<StopFlags>,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Queued>,
    /// Background requests: taken only when `queue` is empty.
    background: VecDeque<Queued>,
    running: Option<Running>,
    /// Name of the active model in the registry.
    active: Option<String>,
    /// The model changed: cached sessions belong to the old one.
    model_changed: bool,
    forget: Vec<String>,
    shutdown: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    counters: Arc<Counters>,
    timer: Timer,
    registry: Arc<ModelRegistry>,
    ranker: Ranker,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Jobs run outside the lock, so a poisoned lock holds a whole state.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Sets a job's `stop` flag at its deadline, from its own thread.
struct Timer {
    armed: Mutex<Option<(Instant, Arc<StopFlags>)>>,
    wake: Condvar,
    shutdown: AtomicBool,
}

impl Timer {
    fn lock(&self) -> MutexGuard<'_, Option<(Instant, Arc<StopFlags>)>> {
        self.armed.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn arm(&self, deadline: Instant, flags: Arc<StopFlags>) {
        *self.lock() = Some((deadline, flags));
        self.wake.notify_all();
    }

    fn disarm(&self) {
        *self.lock() = None;
        self.wake.notify_all();
    }

    fn run(&self) {
        let mut armed = self.lock();
        while !self.shutdown.load(Ordering::Relaxed) {
            match armed.as_ref() {
                None => {
                    armed = self.wake.wait(armed).unwrap_or_else(|e| e.into_inner());
                }
                Some((deadline, flags)) => {
                    let now = Instant::now();
                    if now >= *deadline {
                        flags.stop.store(true, Ordering::Relaxed);
                        *armed = None;
                    } else {
                        let wait = *deadline - now;
                        armed = self
                            .wake
                            .wait_timeout(armed, wait)
                            .unwrap_or_else(|e| e.into_inner())
                            .0;
                    }
                }
            }
        }
    }
}

/// The one entry point of every front end: `document + cursor (+ settings)
/// -> ranked suggestions`. Holds the model registry, the worker thread and
/// its queue, and the ranker.
pub struct Engine {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Engine {
    pub fn spawn(config: EngineConfig) -> std::io::Result<Engine> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            counters: Arc::new(Counters::default()),
            timer: Timer {
                armed: Mutex::new(None),
                wake: Condvar::new(),
                shutdown: AtomicBool::new(false),
            },
            registry: Arc::new(ModelRegistry::new()),
            ranker: Ranker::new(config.sandbox.clone()),
        });
        let worker_shared = shared.clone();
        let worker = std::thread::Builder::new()
            .name("codegen-engine".into())
            .spawn(move || worker_loop(&worker_shared, config))?;
        let timer_shared = shared.clone();
        let timer = std::thread::Builder::new()
            .name("codegen-engine-timer".into())
            .spawn(move || timer_shared.timer.run())?;
        Ok(Engine {
            shared,
            threads: vec![worker, timer],
        })
    }

    /// The loaded models, by name.
    pub fn registry(&self) -> &Arc<ModelRegistry> {
        &self.shared.registry
    }

    /// Makes `model` the active one (putting it in the registry under its
    /// name), or deactivates the active model with `None` (it stays in the
    /// registry). Requests already queued run on the new one.
    pub fn set_model(&self, model: Option<Arc<LoadedModel>>) {
        let name = model.map(|model| {
            let name = model.name.clone();
            self.shared.registry.insert(model);
            name
        });
        let mut state = self.shared.lock();
        state.active = name;
        state.model_changed = true;
    }

    /// The active model.
    pub fn model(&self) -> Option<Arc<LoadedModel>> {
        let name = self.shared.lock().active.clone()?;
        self.shared.registry.get(&name)
    }

    /// Sandbox results cached for ranking.
    pub fn cached_example_runs(&self) -> usize {
        self.shared.ranker.cached_runs()
    }

    /// Runs `req` and waits for it (CLI, benchmarks).
    pub fn complete(&self, req: CompletionRequest) -> Result<RankedCompletion, JobError> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.submit(
            req,
            Box::new(move |result| {
                let _ = tx.send(result);
            }),
        );
        rx.recv().unwrap_or(Err(JobError::WorkerGone))
    }

    pub fn counters(&self) -> Arc<Counters> {
        self.shared.counters.clone()
    }

    /// Queues `job`; `reply` gets its result exactly once. The running and
    /// queued requests with the same key are cancelled first.
    pub fn submit(&self, job: CompletionRequest, reply: Reply) -> JobHandle {
        self.submit_with(job, JobOptions::default(), reply)
    }

    /// [`Engine::submit`] on a named model and/or in the background. A
    /// request supersedes the running and queued ones with the same key of
    /// its own kind (foreground or background); a foreground request also
    /// cancels a running background one.
    pub fn submit_with(
        &self,
        job: CompletionRequest,
        options: JobOptions,
        reply: Reply,
    ) -> JobHandle {
        let flags = Arc::new(StopFlags::default());
        bump(&self.shared.counters.jobs_submitted, 1);
        let background = options.background;
        let superseded: Vec<Queued> = {
            let mut state = self.shared.lock();
            if let Some(running) = &state.running {
                if (running.background == background && running.key == job.key)
                    || (running.background && !background)
                {
                    running.flags.cancel();
                }
            }
            let queue = if background {
                &mut state.background
            } else {
                &mut state.queue
            };
            let (same, other): (VecDeque<Queued>, VecDeque<Queued>) =
                queue.drain(..).partition(|q| q.job.key == job.key);
            *queue = other;
            queue.push_back(Queued {
                job,
                options,
                flags: flags.clone(),
                reply,
                enqueued: Instant::now(),
            });
            same.into_iter().collect()
        };
        self.shared.wake.notify_all();
        for queued in superseded {
            bump(&self.shared.counters.jobs_cancelled, 1);
            (queued.reply)(Err(JobError::Cancelled));
        }
        JobHandle { flags }
    }

    /// Releases the active model: it is no longer active, leaves the
    /// registry (its weights are freed when the last running request that
    /// holds it ends) and the cached sessions (KV caches) are dropped at
    /// once. Returns its name.
    pub fn retire_model(&self) -> Option<String> {
        let name = {
            let mut state = self.shared.lock();
            let name = state.active.take();
            state.model_changed = true;
            name
        };
        if let Some(name) = &name {
            self.shared.registry.remove(name);
        }
        self.shared.wake.notify_all();
        name
    }

    /// Whether a foreground request is running or queued (a model being
    /// measured now shares the machine with it).
    pub fn is_busy(&self) -> bool {
        let state = self.shared.lock();
        !state.queue.is_empty() || state.running.as_ref().is_some_and(|r| !r.background)
    }

    /// Whether the running request is a background one (`None`: idle).
    #[cfg(test)]
    pub(crate) fn running_background(&self) -> Option<bool> {
        self.shared.lock().running.as_ref().map(|r| r.background)
    }

    /// Drops the cached session of `key` (a closed document).
    pub fn forget(&self, key: &str) {
        self.shared.lock().forget.push(key.to_string());
        self.shared.wake.notify_all();
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        {
            let mut state = self.shared.lock();
            state.shutdown = true;
            if let Some(running) = &state.running {
                running.flags.cancel();
            }
        }
        self.shared.wake.notify_all();
        {
            // Under the timer's lock: its thread is either before its check
            // of `shutdown` or inside `wait`, so the notification is never
            // lost between the two (which left `join` waiting for ever).
            let _armed = self.shared.timer.lock();
            self.shared.timer.shutdown.store(true, Ordering::Relaxed);
        }
        self.shared.timer.wake.notify_all();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

fn worker_loop(shared: &Shared, config: EngineConfig) {
    let mut sessions = SessionCache::new(config.sessions);
    loop {
        let (queued, model) = {
            let mut state = shared.lock();
            loop {
                if state.shutdown {
                    let mut rest: Vec<Queued> = state.queue.drain(..).collect();
                    rest.extend(state.background.drain(..));
                    drop(state);
                    for queued in rest {
                        (queued.reply)(Err(JobError::WorkerGone));
                    }
                    return;
                }
                if state.model_changed {
                    state.model_changed = false;
                    sessions.clear();
                }
                for key in std::mem::take(&mut state.forget) {
                    sessions.remove_matching(|k| session_key_request(k) == key);
                }
                let next = match state.queue.pop_front() {
                    Some(queued) => Some(queued),
                    None => state.background.pop_front(),
                };
                if let Some(queued) = next {
                    state.running = Some(Running {
                        key: queued.job.key.clone(),
                        background: queued.options.background,
                        flags: queued.flags.clone(),
                    });
                    let model = match &queued.options.model {
                        Some(name) => shared
                            .registry
                            .get(name)
                            .ok_or_else(|| JobError::ModelNotLoaded(name.clone())),
                        None => state
                            .active
                            .as_deref()
                            .and_then(|n| shared.registry.get(n))
                            .ok_or(JobError::NoModel),
                    };
                    break (queued, model);
                }
                state = shared.wake.wait(state).unwrap_or_else(|e| e.into_inner());
            }
        };
        let Queued {
            job,
            flags,
            reply,
            enqueued,
            ..
        } = queued;
        let result = match model {
            _ if flags.is_cancelled() => Err(JobError::Cancelled),
            Err(err) => Err(err),
            Ok(model) => {
                let queue_secs = enqueued.elapsed().as_secs_f64();
                catch_unwind(AssertUnwindSafe(|| {
                    run_job(shared, &config, &mut sessions, &model, &job, &flags)
                }))
                .unwrap_or_else(|payload| {
                    // The session in use is gone with the panic; the others are intact.
                    Err(JobError::Panicked(panic_message(payload.as_ref())))
                })
                .map(|mut outcome| {
                    outcome.queue_secs = queue_secs;
                    outcome
                })
            }
        };
        shared.timer.disarm();
        shared.lock().running = None;
        let counters = &shared.counters;
        match &result {
            Ok(outcome) => {
                bump(&counters.jobs_completed, 1);
                bump(&counters.tokens_generated, outcome.n_generated_tokens);
                bump(&counters.draft_tokens, outcome.n_draft_tokens);
                bump(
                    &counters.accepted_draft_tokens,
                    outcome.n_accepted_draft_tokens,
                );
                bump(&counters.target_passes, outcome.n_target_passes);
                if outcome.budget_exhausted {
                    bump(&counters.budget_exhausted, 1);
                }
                bump(&counters.ranked, 1);
                if outcome.rank.ran_code {
                    bump(&counters.ranked_with_examples, 1);
                }
                bump(&counters.rank_micros, (outcome.rank.secs * 1e6) as usize);
            }
            Err(JobError::Cancelled) => bump(&counters.jobs_cancelled, 1),
            Err(_) => bump(&counters.jobs_failed, 1),
        }
        let _ = catch_unwind(AssertUnwindSafe(|| reply(result)));
    }
}

/// The session cache's key of a request's key on a model.
fn session_key(model: &str, key: &str) -> String {
    format!("{model}\u{0}{key}")
}

/// The request key inside a [`session_key`].
fn session_key_request(session_key: &str) -> &str {
    session_key
        .split_once('\u{0}')
        .map_or(session_key, |(_, key)| key)
}

/// Positions kept free beyond the budgets, for FIM and file-separator tokens.
const PROMPT_MARGIN: usize = 32;

/// Shrinks the prompt budgets (and if need be the generation) so the prompt
/// plus the generation fit in the model's context.
fn fit_prompt_to_context(settings: &mut CompletionSettings, context_length: usize) {
    settings.max_tokens = settings.max_tokens.min(context_length / 2).max(1);
    let available = context_length.saturating_sub(settings.max_tokens + PROMPT_MARGIN);
    let prompt = &mut settings.prompt;
    let total = prompt.max_prefix_tokens + prompt.max_suffix_tokens + prompt.max_snippet_tokens;
    if total > available && total > 0 {
        let scale = |n: usize| n * available / total;
        prompt.max_prefix_tokens = scale(prompt.max_prefix_tokens).max(1);
        prompt.max_suffix_tokens = scale(prompt.max_suffix_tokens);
        prompt.max_snippet_tokens = scale(prompt.max_snippet_tokens);
    }
}

fn run_job(
    shared: &Shared,
    config: &EngineConfig,
    sessions: &mut SessionCache,
    model: &LoadedModel,
    job: &CompletionRequest,
    flags: &Arc<StopFlags>,
) -> Result<RankedCompletion, JobError> {
    let started = Instant::now();
    // Sessions are per model: a document served by two models (a shadow
    // candidate, a rollout) keeps one KV cache for each.
    let session_key = session_key(&model.name, &job.key);
    let mut session = match sessions.take(&session_key) {
        Some(session) => session,
        None => model.model.new_session().map_err(EngineError::from)?,
    };
    let mut request = job.clone();
    fit_prompt_to_context(&mut request.settings, model.model.config().context_length);
    let prompt = {
        let _span = tracing::debug_span!("context").entered();
        build_prompt_tokens(&model.tokenizer, &request)?
    };
    let tokens = &prompt.tokens;
    let n_reused = session
        .common_prefix_len(tokens)
        .min(tokens.len().saturating_sub(1));
    let n_prefilled = tokens.len() - n_reused;
    let counters = &shared.counters;
    bump(&counters.tokens_reused, n_reused);

    // Prefill in chunks, looking at the cancel flag between them: what is
    // prefilled stays cached for the next request even when cancelled.
    let chunk = config.prefill_chunk.max(1);
    let mut n_done = n_reused;
    {
        let _span = tracing::debug_span!("prefill", n_prefilled).entered();
        while tokens.len() - n_done > chunk {
            if flags.is_cancelled() {
                bump(&counters.tokens_prefilled, n_done - n_reused);
                sessions.put(&session_key, session);
                return Err(JobError::Cancelled);
            }
            let end = n_done + chunk;
            prefill_reusing(&model.model, &mut session, &tokens[..end])
                .map_err(EngineError::from)?;
            n_done = end;
        }
    }
    bump(&counters.tokens_prefilled, n_prefilled);
    if flags.is_cancelled() {
        sessions.put(&session_key, session);
        return Err(JobError::Cancelled);
    }
    if let Some(budget) = request.settings.time_budget {
        let deadline = (started + budget).max(Instant::now() + budget / 4);
        if deadline <= Instant::now() {
            flags.stop.store(true, Ordering::Relaxed);
        } else {
            shared.timer.arm(deadline, flags.clone());
        }
    }
    let generated = {
        let _span = tracing::debug_span!("decode", n = request.settings.n).entered();
        generate_candidates(model, &mut session, &request, &prompt, Some(&flags.stop))
    };
    shared.timer.disarm();
    let generated = generated?;
    sessions.put(&session_key, session);
    if flags.is_cancelled() {
        return Err(JobError::Cancelled);
    }
    let budget_exhausted = generated
        .samples
        .iter()
        .any(|c| c.finish == FinishReason::Cancelled);
    let rank = shared.ranker.rank(&request, &generated.samples);
    Ok(RankedCompletion {
        model: model.name.clone(),
        suggestions: rank.suggestions.clone(),
        samples: generated.samples,
        prompt_mode: prompt.mode,
        completion_mode: prompt.completion_mode,
        n_prompt_tokens: tokens.len(),
        n_prefilled_tokens: n_prefilled,
        n_reused_tokens: n_reused,
        prefill_secs: generated.prefill_secs,
        decode_secs: generated.decode_secs,
        n_generated_tokens: generated.n_generated_tokens,
        n_draft_tokens: generated.n_draft_tokens,
        n_accepted_draft_tokens: generated.n_accepted_draft_tokens,
        n_target_passes: generated.n_target_passes,
        rank: RankOutcome {
            suggestions: Vec::new(),
            ..rank
        },
        budget_exhausted,
        queue_secs: 0.0,
        run_secs: started.elapsed().as_secs_f64(),
        notes: prompt.notes,
    })
}
