//! Continuous batching on one OS thread (never on the async runtime).
//!
//! Requests wait in a queue; at each step boundary the scheduler admits
//! waiting requests while the batch has room, advances one request's
//! prefill by a chunk (reusing the longest cached prompt prefix), then runs
//! one decode step in which every live sample of every active request is a
//! row of the same forward pass ([`Model::forward_batch`]). A request whose
//! client went away (its event receiver dropped) is dropped before the next
//! token.

use std::collections::VecDeque;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

use codegen_engine::LoadedModel;
use codegen_model::{log_prob, Model, Sampler, SamplingConfig, Session};
use tokio::sync::mpsc::UnboundedSender;

use crate::metrics::Metrics;
use crate::text::StopText;

/// Sizes of the batch and of the prompt cache.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Most samples decoding together; further requests wait in the queue.
    pub max_batch: usize,
    /// Prompt tokens prefilled per step (between two decode steps).
    pub prefill_chunk: usize,
    /// Idle sessions kept for prefix reuse.
    pub cached_sessions: usize,
    /// Most bytes of KV cache held by idle sessions.
    pub cached_bytes: usize,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            max_batch: 16,
            prefill_chunk: 128,
            cached_sessions: 32,
            cached_bytes: 1 << 30,
        }
    }
}

/// How one sample is drawn.
#[derive(Debug, Clone)]
pub struct SampleParams {
    pub max_tokens: usize,
    pub sampling: SamplingConfig,
    pub stop_strings: Vec<String>,
}

/// One request: a tokenized prompt and the samples to draw from it.
pub struct Job {
    pub prompt: Vec<u32>,
    pub samples: Vec<SampleParams>,
    /// Report log-probabilities with this many alternatives per token.
    pub logprobs: Option<usize>,
    pub events: UnboundedSender<Event>,
    pub enqueued: Instant,
}

/// Why a sample ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// A stop token (end of text, end of the middle).
    StopToken,
    /// One of the request's stop strings (cut before it).
    StopString,
    /// `max_tokens`, or the context is full.
    Length,
}

/// A generated token with its log-probability and the top alternatives.
#[derive(Debug, Clone)]
pub struct TokenLogprob {
    pub text: String,
    /// Bytes of the token (its text may have replacement characters).
    pub n_bytes: usize,
    pub logprob: f32,
    pub top: Vec<(String, f32)>,
}

/// What the scheduler tells a request's handler.
#[derive(Debug)]
pub enum Event {
    /// The prompt is in the cache; decoding starts.
    Started {
        n_prompt_tokens: usize,
        n_reused_tokens: usize,
    },
    /// Final text of sample `sample` (never taken back).
    Text {
        sample: usize,
        text: String,
        logprobs: Vec<TokenLogprob>,
    },
    Finished {
        sample: usize,
        finish: Finish,
        n_tokens: usize,
    },
    Failed(String),
}

/// The handle the server holds: submitting never blocks.
pub struct Scheduler {
    jobs: mpsc::Sender<Job>,
}

/// The scheduler thread is gone (it only stops when the server does).
#[derive(Debug, thiserror::Error)]
#[error("the scheduler has stopped")]
pub struct SchedulerGone;

impl Scheduler {
    pub fn spawn(
        model: Arc<LoadedModel>,
        config: SchedulerConfig,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Scheduler> {
        let (jobs, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("codegen-serve-scheduler".into())
            .spawn(move || Batcher::new(model, config, metrics).run(rx))?;
        Ok(Scheduler { jobs })
    }

    pub fn submit(&self, job: Job) -> Result<(), SchedulerGone> {
        self.jobs.send(job).map_err(|_| SchedulerGone)
    }
}

struct Lane {
    request: Arc<Active>,
    sample: usize,
    session: Session,
    sampler: Sampler,
    text: StopText,
    max_tokens: usize,
    n_tokens: usize,
    logits: Logits,
    /// Only one lane of a request gives its session back to the cache.
    keep_session: bool,
    prompt_len: usize,
}

/// Where a lane's next-token logits are.
enum Logits {
    /// Being computed (or the lane is done).
    Pending,
    /// Its own copy (after the prompt's prefill).
    Own(Vec<f32>),
    /// Row `i` of the last decode step's logits.
    Row(usize),
}

impl Logits {
    fn take(&mut self) -> Logits {
        std::mem::replace(self, Logits::Pending)
    }
}

struct Active {
    events: UnboundedSender<Event>,
    logprobs: Option<usize>,
}

struct Prefilling {
    job: Job,
    session: Session,
    n_done: usize,
    n_reused: usize,
    started: Instant,
}

struct Batcher {
    model: Arc<LoadedModel>,
    config: SchedulerConfig,
    metrics: Arc<Metrics>,
    waiting: VecDeque<Job>,
    prefilling: Option<Prefilling>,
    lanes: Vec<Lane>,
    /// Idle sessions and the length of the prompt each was made for, most
    /// recently used last.
    cache: Vec<(Session, usize)>,
    stop_tokens: Vec<u32>,
    /// The last decode step's logits (`rows x row_len`), reused every step.
    step_logits: Vec<f32>,
    step_row_len: usize,
}

impl Batcher {
    fn new(model: Arc<LoadedModel>, config: SchedulerConfig, metrics: Arc<Metrics>) -> Self {
        let stop_tokens = model.tokenizer.default_stop_tokens();
        Batcher {
            model,
            config,
            metrics,
            waiting: VecDeque::new(),
            prefilling: None,
            lanes: Vec::new(),
            cache: Vec::new(),
            stop_tokens,
            step_logits: Vec::new(),
            step_row_len: 0,
        }
    }

    fn model(&self) -> &Model {
        &self.model.model
    }

    fn run(mut self, jobs: mpsc::Receiver<Job>) {
        loop {
            if self.lanes.is_empty() && self.prefilling.is_none() && self.waiting.is_empty() {
                self.metrics.set_batch(0, 0);
                match jobs.recv() {
                    Ok(job) => self.waiting.push_back(job),
                    Err(_) => return,
                }
            }
            while let Ok(job) = jobs.try_recv() {
                self.waiting.push_back(job);
            }
            let metrics = self.metrics.clone();
            self.waiting.retain(|job| {
                let gone = job.events.is_closed();
                if gone {
                    metrics.cancelled();
                }
                !gone
            });
            self.admit();
            self.metrics.set_queue_depth(self.waiting.len());
            self.prefill_step();
            self.decode_step();
        }
    }

    /// Starts the next waiting request's prefill when the batch has room.
    fn admit(&mut self) {
        if self.prefilling.is_some() {
            return;
        }
        let fits = self.waiting.front().is_some_and(|job| {
            self.lanes.is_empty() || self.lanes.len() + job.samples.len() <= self.config.max_batch
        });
        if !fits {
            return;
        }
        let Some(job) = self.waiting.pop_front() else {
            return;
        };
        self.metrics
            .observe_queue_secs(job.enqueued.elapsed().as_secs_f64());
        let session = match self.session_for(&job.prompt) {
            Ok(session) => session,
            Err(e) => {
                let _ = job.events.send(Event::Failed(e.to_string()));
                return;
            }
        };
        // Logits are needed after the last prompt token: it is always run.
        let n_reused = session
            .common_prefix_len(&job.prompt)
            .min(job.prompt.len().saturating_sub(1));
        let mut session = session;
        session.truncate(n_reused);
        self.prefilling = Some(Prefilling {
            job,
            session,
            n_done: n_reused,
            n_reused,
            started: Instant::now(),
        });
    }

    /// The cached session sharing the longest prefix with `prompt`: taken
    /// when the prompt extends most of it (the same user typing on), copied
    /// when it is a shared start (another user's file header), or a fresh one.
    fn session_for(&mut self, prompt: &[u32]) -> codegen_model::Result<Session> {
        let best = self
            .cache
            .iter()
            .enumerate()
            .map(|(idx, (s, prompt_len))| (idx, s.common_prefix_len(prompt), *prompt_len))
            .max_by_key(|(_, common, _)| *common);
        match best {
            // Most of its prompt is this prompt's start: the same user typing on.
            Some((idx, common, prompt_len)) if common > 0 && common * 10 >= prompt_len * 8 => {
                Ok(self.cache.remove(idx).0)
            }
            Some((idx, common, _)) if common >= 16 => {
                let mut copy = self.cache[idx].0.fork()?;
                copy.truncate(common);
                // Most recently used.
                let shared = self.cache.remove(idx);
                self.cache.push(shared);
                Ok(copy)
            }
            _ => self.model().new_session(),
        }
    }

    fn give_back(&mut self, session: Session, prompt_len: usize) {
        if session.is_empty() {
            return;
        }
        self.cache.push((session, prompt_len));
        let mut bytes: usize = self.cache.iter().map(|(s, _)| s.memory_bytes()).sum();
        while self.cache.len() > self.config.cached_sessions
            || (bytes > self.config.cached_bytes && self.cache.len() > 1)
        {
            let (old, _) = self.cache.remove(0);
            bytes -= old.memory_bytes();
        }
    }

    fn prefill_step(&mut self) {
        let Some(mut p) = self.prefilling.take() else {
            return;
        };
        if p.job.events.is_closed() {
            self.metrics.cancelled();
            let n_done = p.n_done;
            self.give_back(p.session, n_done);
            return;
        }
        let end = (p.n_done + self.config.prefill_chunk.max(1)).min(p.job.prompt.len());
        let chunk_started = Instant::now();
        let logits = match self
            .model()
            .prefill(&mut p.session, &p.job.prompt[p.n_done..end])
        {
            Ok(logits) => logits,
            Err(e) => {
                let _ = p.job.events.send(Event::Failed(e.to_string()));
                return;
            }
        };
        self.metrics
            .observe_prefill_chunk(chunk_started.elapsed().as_secs_f64());
        self.metrics.prefilled(end - p.n_done);
        p.n_done = end;
        if p.n_done < p.job.prompt.len() {
            self.prefilling = Some(p);
            return;
        }
        self.metrics.reused(p.n_reused);
        self.metrics
            .observe_prefill_secs(p.started.elapsed().as_secs_f64());
        let _ = p.job.events.send(Event::Started {
            n_prompt_tokens: p.job.prompt.len(),
            n_reused_tokens: p.n_reused,
        });
        let request = Arc::new(Active {
            events: p.job.events.clone(),
            logprobs: p.job.logprobs,
        });
        let n = p.job.samples.len();
        let prompt_len = p.job.prompt.len();
        let mut prompt_session = Some(p.session);
        for (sample, params) in p.job.samples.into_iter().enumerate() {
            let session = if sample + 1 == n {
                prompt_session.take()
            } else {
                prompt_session
                    .as_ref()
                    .map(Session::fork)
                    .transpose()
                    .ok()
                    .flatten()
            };
            let Some(session) = session else {
                let _ = request
                    .events
                    .send(Event::Failed("cannot copy the prompt's cache".into()));
                continue;
            };
            self.lanes.push(Lane {
                request: request.clone(),
                sample,
                session,
                sampler: Sampler::new(params.sampling),
                text: StopText::new(params.stop_strings),
                max_tokens: params.max_tokens,
                n_tokens: 0,
                logits: Logits::Own(logits.clone()),
                keep_session: sample + 1 == n,
                prompt_len,
            });
        }
    }

    /// Samples the next token of every lane, finishes those that are done
    /// and runs one forward pass for all the others.
    fn decode_step(&mut self) {
        if self.lanes.is_empty() {
            return;
        }
        let context_length = self.model().config().context_length;
        let tokenizer = &self.model.tokenizer;
        let vocab = self.step_row_len;
        let mut step = std::mem::take(&mut self.step_logits);
        let mut step_tokens = Vec::with_capacity(self.lanes.len());
        let mut finished = Vec::new();
        let mut n_new_tokens = 0;
        for (idx, lane) in self.lanes.iter_mut().enumerate() {
            if lane.request.events.is_closed() {
                finished.push((idx, None));
                continue;
            }
            let own;
            let logits: &[f32] = match lane.logits.take() {
                Logits::Own(v) => {
                    own = v;
                    &own
                }
                Logits::Row(i) => &step[i * vocab..(i + 1) * vocab],
                Logits::Pending => continue,
            };
            if lane.n_tokens >= lane.max_tokens {
                finished.push((idx, Some(Finish::Length)));
                continue;
            }
            // The log-probability costs a pass over the vocabulary: only
            // when the client asked for it.
            let (token, logprob) = match lane.request.logprobs {
                Some(_) => lane.sampler.sample(logits),
                None => (lane.sampler.sample_token(logits), f32::NAN),
            };
            if self.stop_tokens.contains(&token) {
                finished.push((idx, Some(Finish::StopToken)));
                continue;
            }
            lane.n_tokens += 1;
            n_new_tokens += 1;
            let (fresh, stopped) = lane.text.push(tokenizer.token_bytes(token));
            let logprobs = match lane.request.logprobs {
                Some(k) => vec![token_logprob(tokenizer, logits, token, logprob, k)],
                None => Vec::new(),
            };
            if !fresh.is_empty() || !logprobs.is_empty() {
                let _ = lane.request.events.send(Event::Text {
                    sample: lane.sample,
                    text: fresh,
                    logprobs,
                });
            }
            if stopped {
                finished.push((idx, Some(Finish::StopString)));
            } else if lane.n_tokens >= lane.max_tokens || lane.session.len() + 1 > context_length {
                finished.push((idx, Some(Finish::Length)));
            } else {
                step_tokens.push((idx, token));
            }
        }
        self.metrics.generated(n_new_tokens);
        if !step_tokens.is_empty() {
            let tokens: Vec<u32> = step_tokens.iter().map(|(_, t)| *t).collect();
            let n_requests = self.requests();
            let done = {
                let mut sessions: Vec<&mut Session> = Vec::with_capacity(step_tokens.len());
                let mut wanted = step_tokens.iter().map(|(idx, _)| *idx).peekable();
                for (idx, lane) in self.lanes.iter_mut().enumerate() {
                    if wanted.peek() == Some(&idx) {
                        wanted.next();
                        sessions.push(&mut lane.session);
                    }
                }
                self.metrics.set_batch(sessions.len(), n_requests);
                let start = Instant::now();
                let done = self
                    .model
                    .model
                    .forward_batch_into(&mut sessions, &tokens, &mut step);
                self.metrics
                    .observe_step(sessions.len(), start.elapsed().as_secs_f64());
                done
            };
            match done {
                Ok(()) => {
                    self.step_row_len = step.len() / tokens.len();
                    for (row, (idx, _)) in step_tokens.iter().enumerate() {
                        self.lanes[*idx].logits = Logits::Row(row);
                    }
                }
                Err(e) => {
                    let message = e.to_string();
                    for (idx, _) in &step_tokens {
                        let _ = self.lanes[*idx]
                            .request
                            .events
                            .send(Event::Failed(message.clone()));
                        finished.push((*idx, None));
                    }
                }
            }
        }
        self.step_logits = step;
        finished.sort_by_key(|(idx, _)| std::cmp::Reverse(*idx));
        finished.dedup_by_key(|(idx, _)| *idx);
        for (idx, finish) in finished {
            let mut lane = self.lanes.remove(idx);
            match finish {
                Some(finish) => {
                    let rest = if finish == Finish::StopString {
                        String::new()
                    } else {
                        lane.text.flush()
                    };
                    if !rest.is_empty() {
                        let _ = lane.request.events.send(Event::Text {
                            sample: lane.sample,
                            text: rest,
                            logprobs: Vec::new(),
                        });
                    }
                    let _ = lane.request.events.send(Event::Finished {
                        sample: lane.sample,
                        finish,
                        n_tokens: lane.n_tokens,
                    });
                }
                None => self.metrics.cancelled(),
            }
            if lane.keep_session {
                self.give_back(lane.session, lane.prompt_len);
            }
        }
    }

    /// Requests with a live sample.
    fn requests(&self) -> usize {
        let mut seen: Vec<*const Active> =
            self.lanes.iter().map(|l| Arc::as_ptr(&l.request)).collect();
        seen.sort();
        seen.dedup();
        seen.len()
    }
}

fn token_logprob(
    tokenizer: &codegen_model::Tokenizer,
    logits: &[f32],
    token: u32,
    logprob: f32,
    k: usize,
) -> TokenLogprob {
    let text = |id: u32| String::from_utf8_lossy(tokenizer.token_bytes(id)).into_owned();
    let mut top = Vec::new();
    if k > 0 {
        let mut best: Vec<(u32, f32)> = Vec::with_capacity(k + 1);
        for (id, value) in logits.iter().enumerate() {
            if best.len() < k || *value > best[best.len() - 1].1 {
                let at = best.partition_point(|(_, v)| *v >= *value);
                best.insert(at, (id as u32, *value));
                best.truncate(k);
            }
        }
        top = best
            .into_iter()
            .map(|(id, _)| (text(id), log_prob(logits, id)))
            .collect();
    }
    TokenLogprob {
        text: text(token),
        n_bytes: tokenizer.token_bytes(token).len(),
        logprob,
        top,
    }
}
