//! The sampling loop: prefix reuse, prefill, decode, stop tokens, stop
//! strings, max tokens, cancellation and streaming.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::error::Result;
use crate::model::{Model, PREFILL_CHUNK};
use crate::sampler::{Sampler, SamplingConfig};
use crate::session::Session;
use crate::tokenizer::Tokenizer;

#[derive(Debug, Clone, PartialEq)]
pub struct GenerateConfig {
    pub max_tokens: usize,
    pub sampling: SamplingConfig,
    /// Generation ends before any of these tokens (it is not part of the text).
    pub stop_tokens: Vec<u32>,
    /// Generation ends at the first occurrence of any of these; the text is
    /// cut exactly before it.
    pub stop_strings: Vec<String>,
    /// Greedy decoding only: guess up to this many next tokens from earlier
    /// text (the longest recent n-gram match in the prompt and output, as in
    /// prompt-lookup decoding) and check them all in one forward pass,
    /// keeping those the model agrees with. The output is the model's own
    /// greedy output; only the number of passes changes. 0 turns it off.
    pub draft_tokens: usize,
    /// Speculative decoding with a smaller model of the same tokenizer: it
    /// proposes up to `max_tokens` tokens (fewer while its proposals are
    /// being rejected), the model checks them in one forward pass. Greedy
    /// output is the model's own greedy output; sampled output follows the
    /// model's own distribution exactly (the speculative sampling rule).
    /// Used by [`generate`]; the samples of [`generate_batch`] decode
    /// together without it. Takes precedence over `draft_tokens`.
    pub draft: Option<DraftModel>,
}

/// The draft model of speculative decoding: anything that holds a
/// [`Model`] (the model itself, or an engine's loaded model).
#[derive(Clone)]
pub struct DraftModel {
    pub model: Arc<dyn AsRef<Model> + Send + Sync>,
    /// Most tokens proposed per check (the adaptive length starts at half).
    pub max_tokens: usize,
    /// Tokens of context the draft sees: the end of the text, from a start
    /// kept while requests extend the same text. Short, because a fresh
    /// request pays for the draft's prefill of it; the model itself always
    /// sees everything, so this changes speed, never the output.
    pub context_tokens: usize,
}

impl PartialEq for DraftModel {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(
            Arc::as_ptr(&self.model) as *const u8,
            Arc::as_ptr(&other.model) as *const u8,
        ) && self.max_tokens == other.max_tokens
            && self.context_tokens == other.context_tokens
    }
}

impl std::fmt::Debug for DraftModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let config = (*self.model).as_ref().config();
        f.debug_struct("DraftModel")
            .field("layers", &config.n_layers)
            .field("hidden_size", &config.hidden_size)
            .field("max_tokens", &self.max_tokens)
            .field("context_tokens", &self.context_tokens)
            .finish()
    }
}

/// Default most draft tokens per check. On the 2-core reference machine a
/// 0.5B draft step costs about 0.4 of a 1.5B step, so long drafts cost more
/// than they save; 4 measured best (see benches/README.md).
pub const DEFAULT_DRAFT_MODEL_TOKENS: usize = 4;

/// Default context of the draft model ([`DraftModel::context_tokens`]).
pub const DEFAULT_DRAFT_CONTEXT_TOKENS: usize = 64;

/// After a stretch of refused proposals at the shortest draft length,
/// decode this many tokens without drafting before trying again.
const DRAFT_PAUSE_TOKENS: usize = 16;

impl Default for GenerateConfig {
    fn default() -> Self {
        Self {
            max_tokens: 128,
            sampling: SamplingConfig::default(),
            stop_tokens: Vec::new(),
            stop_strings: Vec::new(),
            draft_tokens: 0,
            draft: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    StopToken,
    StopString,
    MaxTokens,
    Cancelled,
    /// The streaming callback asked to stop.
    Stopped,
    ContextFull,
}

impl FinishReason {
    /// The reason as a word for JSON output (`stop_token`, `max_tokens`...).
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::StopToken => "stop_token",
            FinishReason::StopString => "stop_string",
            FinishReason::MaxTokens => "max_tokens",
            FinishReason::Cancelled => "cancelled",
            FinishReason::Stopped => "stopped",
            FinishReason::ContextFull => "context_full",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Generation {
    pub text: String,
    /// Generated tokens (the stop token excluded).
    pub tokens: Vec<u32>,
    /// Log-probability of each generated token under the model.
    pub logprobs: Vec<f32>,
    pub finish: FinishReason,
    pub n_prompt_tokens: usize,
    /// Prompt tokens whose KV cache was reused from the session.
    pub n_reused_tokens: usize,
    pub prefill_secs: f64,
    pub decode_secs: f64,
    /// Draft tokens checked and accepted (see [`GenerateConfig::draft_tokens`]
    /// and [`GenerateConfig::draft`]).
    pub n_draft_tokens: usize,
    pub n_accepted_draft_tokens: usize,
    /// Forward passes of the model during decoding (each checks one token
    /// and any drafts); with a draft model, tokens per pass is the speedup's
    /// upper bound.
    pub n_target_passes: usize,
}

impl Generation {
    /// Mean token log-probability (0 for an empty generation).
    pub fn mean_logprob(&self) -> f32 {
        if self.logprobs.is_empty() {
            0.0
        } else {
            self.logprobs.iter().sum::<f32>() / self.logprobs.len() as f32
        }
    }

    pub fn n_prefilled_tokens(&self) -> usize {
        self.n_prompt_tokens - self.n_reused_tokens
    }
}

/// Bring `session` to hold exactly `prompt`, reusing the longest common
/// prefix already cached, and return the next-token logits and the number
/// of reused tokens.
pub fn prefill_reusing(
    model: &Model,
    session: &mut Session,
    prompt: &[u32],
) -> Result<(Vec<f32>, usize)> {
    let mut reuse = session.common_prefix_len(prompt);
    if reuse == prompt.len() {
        // Logits are needed for the last prompt token: recompute it.
        reuse = reuse.saturating_sub(1);
    }
    session.truncate(reuse);
    let logits = model.prefill(session, &prompt[reuse..])?;
    Ok((logits, reuse))
}

/// Number of bytes at the end of `bytes` that start a UTF-8 sequence the
/// next token may still complete.
pub fn incomplete_tail_len(bytes: &[u8]) -> usize {
    for back in 1..=bytes.len().min(3) {
        let b = bytes[bytes.len() - back];
        if b & 0xC0 == 0x80 {
            continue; // continuation byte: look further back
        }
        let expected = match b {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => return 0,
        };
        return if back < expected { back } else { 0 };
    }
    0
}

/// Tracks generated text, finds stop strings and releases text that can no
/// longer become part of one. Invalid UTF-8 becomes U+FFFD; a multi-byte
/// character split across tokens waits for its last byte.
pub(crate) struct TextTracker<'a> {
    text: String,
    pending: Vec<u8>,
    stop_strings: &'a [String],
    emitted: usize,
    max_stop_len: usize,
}

impl<'a> TextTracker<'a> {
    pub(crate) fn new(stop_strings: &'a [String]) -> Self {
        let max_stop_len = stop_strings.iter().map(String::len).max().unwrap_or(0);
        Self {
            text: String::new(),
            pending: Vec::new(),
            stop_strings,
            emitted: 0,
            max_stop_len,
        }
    }

    /// Adds bytes; returns `(new text to stream, stop found)`.
    pub(crate) fn push(&mut self, piece: &[u8]) -> (String, bool) {
        self.pending.extend_from_slice(piece);
        let complete = self.pending.len() - incomplete_tail_len(&self.pending);
        self.text
            .push_str(&String::from_utf8_lossy(&self.pending[..complete]));
        self.pending.drain(..complete);
        let text = self.text.as_str();
        let search_from = self.emitted.saturating_sub(self.max_stop_len);
        let search_from = (0..=search_from)
            .rev()
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        let found = self
            .stop_strings
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| {
                text[search_from..]
                    .find(s.as_str())
                    .map(|i| i + search_from)
            })
            .min();
        if let Some(cut) = found {
            let out = text[self.emitted.min(cut)..cut].to_string();
            self.text.truncate(cut);
            self.pending.clear();
            self.emitted = cut;
            return (out, true);
        }
        // Hold back a tail that could still grow into a stop string.
        let mut safe = text.len();
        for stop in self.stop_strings {
            for n in (1..stop.len()).rev() {
                if stop.is_char_boundary(n) && text.ends_with(&stop[..n]) {
                    safe = safe.min(text.len() - n);
                    break;
                }
            }
        }
        let safe = safe.max(self.emitted);
        let out = text[self.emitted..safe].to_string();
        self.emitted = safe;
        (out, false)
    }

    /// Everything not yet streamed (at the end of generation).
    pub(crate) fn flush(&mut self) -> String {
        if !self.pending.is_empty() {
            self.text.push_str(&String::from_utf8_lossy(&self.pending));
            self.pending.clear();
        }
        let out = self.text[self.emitted..].to_string();
        self.emitted = self.text.len();
        out
    }

    pub(crate) fn text(&self) -> String {
        self.text.clone()
    }
}

/// Generates a continuation of `prompt`. The session is reused: its longest
/// common prefix with `prompt` is kept and only the rest is prefilled.
/// `cancel` is checked before every token; `on_text` receives text as it
/// becomes final and may return `false` to stop.
pub fn generate(
    model: &Model,
    tokenizer: &Tokenizer,
    session: &mut Session,
    prompt: &[u32],
    config: &GenerateConfig,
    cancel: Option<&AtomicBool>,
    on_text: &mut dyn FnMut(&str) -> bool,
) -> Result<Generation> {
    if let Some(draft) = &config.draft {
        return generate_speculative(
            model, tokenizer, session, prompt, config, draft, cancel, on_text,
        );
    }
    let cancelled = || cancel.is_some_and(|c| c.load(Ordering::Relaxed));
    let start = Instant::now();
    let (mut logits, n_reused) = prefill_reusing(model, session, prompt)?;
    let prefill_secs = start.elapsed().as_secs_f64();

    let decode_start = Instant::now();
    let mut sampler = Sampler::new(config.sampling.clone());
    let mut tracker = TextTracker::new(&config.stop_strings);
    let mut tokens = Vec::new();
    let mut logprobs = Vec::new();
    let context_length = model.config().context_length;
    let speculate = config.draft_tokens > 0 && config.sampling.is_greedy();
    let mut history: Vec<u32> = if speculate {
        prompt.to_vec()
    } else {
        Vec::new()
    };
    // Logits rows still to sample from. When more than one is queued, the
    // tokens they yield (accepted drafts) are already in the session.
    let mut queue: VecDeque<Vec<f32>> = VecDeque::new();
    queue.push_back(std::mem::take(&mut logits));
    let (mut n_drafted, mut n_accepted, mut n_passes) = (0, 0, 0);
    let finish = loop {
        if cancelled() {
            break FinishReason::Cancelled;
        }
        if tokens.len() >= config.max_tokens {
            break FinishReason::MaxTokens;
        }
        // Never empty here: every path through the loop queues the next row.
        let Some(row) = queue.pop_front() else {
            break FinishReason::Cancelled;
        };
        let (token, logprob) = sampler.sample(&row);
        if queue.is_empty() {
            logits = row;
        }
        if config.stop_tokens.contains(&token) {
            break FinishReason::StopToken;
        }
        tokens.push(token);
        logprobs.push(logprob);
        let (fresh, stop) = tracker.push(tokenizer.token_bytes(token));
        if !fresh.is_empty() && !on_text(&fresh) {
            break FinishReason::Stopped;
        }
        if stop {
            break FinishReason::StopString;
        }
        if tokens.len() >= config.max_tokens {
            break FinishReason::MaxTokens;
        }
        if !queue.is_empty() {
            // An accepted draft token: its successor's logits are queued.
            if speculate {
                history.push(token);
            }
            continue;
        }
        if session.len() + 1 > context_length {
            break FinishReason::ContextFull;
        }
        if cancelled() {
            break FinishReason::Cancelled;
        }
        if speculate {
            history.push(token);
            let room = (config.max_tokens - tokens.len())
                .min(context_length - session.len())
                .min(PREFILL_CHUNK)
                .saturating_sub(1);
            let draft = lookup_draft(&history, config.draft_tokens.min(room));
            if !draft.is_empty() {
                let base = session.len();
                let mut step = Vec::with_capacity(draft.len() + 1);
                step.push(token);
                step.extend_from_slice(draft);
                let rows = model.forward_all(session, &step)?;
                n_passes += 1;
                let agreed = draft
                    .iter()
                    .zip(&rows)
                    .take_while(|(d, r)| sampler.greedy_token(r) == **d)
                    .count();
                n_drafted += draft.len();
                n_accepted += agreed;
                session.truncate(base + 1 + agreed);
                queue.extend(rows.into_iter().take(agreed + 1));
                continue;
            }
        }
        model.forward_into(session, &[token], &mut logits)?;
        n_passes += 1;
        queue.push_back(std::mem::take(&mut logits));
    };
    if finish != FinishReason::StopString && finish != FinishReason::Stopped {
        let rest = tracker.flush();
        if !rest.is_empty() {
            on_text(&rest);
        }
    }
    Ok(Generation {
        text: tracker.text(),
        tokens,
        logprobs,
        finish,
        n_prompt_tokens: prompt.len(),
        n_reused_tokens: n_reused,
        prefill_secs,
        decode_secs: decode_start.elapsed().as_secs_f64(),
        n_draft_tokens: n_drafted,
        n_accepted_draft_tokens: n_accepted,
        n_target_passes: n_passes,
    })
}

/// [`generate`] with a draft model: speculative decoding.
///
/// Each round the draft model (its session kept beside the target's, synced
/// to the text so far by common prefix) proposes `k` tokens; the model runs
/// the last chosen token and the `k` proposals in one pass. Greedy: the
/// proposals the model's argmax agrees with are kept, then the model's own
/// token. Sampling: proposal `d` is kept with probability
/// `min(1, p(d) / q(d))` (`p`, `q`: the model's and the draft's sampling
/// distributions after temperature, top-k and top-p); at the first refusal
/// the token is drawn from `max(0, p - q)`, normalized; when all are kept
/// the next token is drawn from `p`. This keeps the model's distribution
/// exactly. `k` adapts: one more after a round that kept everything, one
/// less after one that kept under half.
#[allow(clippy::too_many_arguments)]
fn generate_speculative(
    model: &Model,
    tokenizer: &Tokenizer,
    session: &mut Session,
    prompt: &[u32],
    config: &GenerateConfig,
    draft: &DraftModel,
    cancel: Option<&AtomicBool>,
    on_text: &mut dyn FnMut(&str) -> bool,
) -> Result<Generation> {
    let cancelled = || cancel.is_some_and(|c| c.load(Ordering::Relaxed));
    let draft_model: &Model = (*draft.model).as_ref();
    let start = Instant::now();
    let (first, n_reused) = prefill_reusing(model, session, prompt)?;
    let prefill_secs = start.elapsed().as_secs_f64();
    let decode_start = Instant::now();
    let mut sampler = Sampler::new(config.sampling.clone());
    let greedy = config.sampling.is_greedy();
    let mut tracker = TextTracker::new(&config.stop_strings);
    let mut tokens = Vec::new();
    let mut logprobs = Vec::new();
    let context_length = model
        .config()
        .context_length
        .min(draft_model.config().context_length);
    let max_k = draft.max_tokens.max(1);
    let mut k = max_k.div_ceil(2).max(1);
    // Recent share of kept proposals (exponential average over rounds), and
    // the token count before which drafting pauses.
    let mut recent = 0.5f32;
    let mut paused_until = 0usize;
    let window = draft.context_tokens.max(8);
    // The text the target session will hold once the last chosen token runs.
    let mut history = prompt.to_vec();
    // Decisions to make, in order: a logits row and, for a token already
    // chosen by the acceptance rule, that token. All but the last are for
    // tokens already in the session.
    let mut queue: VecDeque<(Vec<f32>, Option<u32>)> = VecDeque::new();
    queue.push_back((first, None));
    let (mut n_drafted, mut n_accepted, mut n_passes) = (0, 0, 0);
    let mut logits = Vec::new();
    let finish = loop {
        if cancelled() {
            break FinishReason::Cancelled;
        }
        if tokens.len() >= config.max_tokens {
            break FinishReason::MaxTokens;
        }
        let Some((row, chosen)) = queue.pop_front() else {
            break FinishReason::Cancelled;
        };
        let (token, logprob) = match chosen {
            Some(t) => (t, crate::sampler::log_prob(&row, t)),
            None => sampler.sample(&row),
        };
        if config.stop_tokens.contains(&token) {
            break FinishReason::StopToken;
        }
        tokens.push(token);
        logprobs.push(logprob);
        history.push(token);
        let (fresh, stop) = tracker.push(tokenizer.token_bytes(token));
        if !fresh.is_empty() && !on_text(&fresh) {
            break FinishReason::Stopped;
        }
        if stop {
            break FinishReason::StopString;
        }
        if tokens.len() >= config.max_tokens {
            break FinishReason::MaxTokens;
        }
        if !queue.is_empty() {
            continue;
        }
        if session.len() + 1 > context_length {
            break FinishReason::ContextFull;
        }
        if cancelled() {
            break FinishReason::Cancelled;
        }
        let room = (config.max_tokens - tokens.len())
            .min(context_length - session.len())
            .min(PREFILL_CHUNK)
            .saturating_sub(1);
        let want = if tokens.len() < paused_until {
            0
        } else {
            k.min(room)
        };
        if want == 0 {
            model.forward_into(session, &[token], &mut logits)?;
            n_passes += 1;
            queue.push_back((std::mem::take(&mut logits), None));
            continue;
        }
        // The draft proposes `want` tokens after `history`.
        let mut drafts = Vec::with_capacity(want);
        let mut draft_dists: Vec<Vec<f32>> = Vec::new();
        {
            let (dsession, offset) = session.draft_session(draft_model)?;
            // Keep the window's start while the text only grows; start a
            // new window when the text changed before it, or the draft is
            // far behind, or its window has grown to four times the size.
            let common = if *offset < history.len() {
                dsession.common_prefix_len(&history[*offset..])
            } else {
                0
            };
            let behind = history.len() - (*offset + common).min(history.len());
            if common == 0 || behind > window || history.len() - *offset > 4 * window {
                *offset = history.len().saturating_sub(window);
                dsession.truncate(0);
            }
            let (mut drow, _) = prefill_reusing(draft_model, dsession, &history[*offset..])?;
            loop {
                let d = if greedy {
                    sampler.greedy_token(&drow)
                } else {
                    let q = sampler.distribution(&drow);
                    let d = sampler.draw_from(&q);
                    draft_dists.push(q);
                    d
                };
                drafts.push(d);
                if drafts.len() == want || config.stop_tokens.contains(&d) {
                    break;
                }
                draft_model.forward_into(dsession, &[d], &mut drow)?;
            }
        }
        // The model checks them all in one pass: rows[i] follows step[i].
        let base = session.len();
        let mut step = Vec::with_capacity(drafts.len() + 1);
        step.push(token);
        step.extend_from_slice(&drafts);
        let mut rows = model.forward_all(session, &step)?;
        n_passes += 1;
        let mut kept = 0;
        let mut correction = None;
        for (i, &d) in drafts.iter().enumerate() {
            if greedy {
                if sampler.greedy_token(&rows[i]) != d {
                    break;
                }
            } else {
                let p = sampler.distribution(&rows[i]);
                // A draft with a limited vocabulary gives no weight to the rest.
                draft_dists[i].resize(p.len(), 0.0);
                let q = &draft_dists[i];
                let (pd, qd) = (p[d as usize], q[d as usize]);
                if !(qd > 0.0 && sampler.uniform() < (pd / qd).min(1.0)) {
                    let residual: Vec<f32> =
                        p.iter().zip(q).map(|(p, q)| (p - q).max(0.0)).collect();
                    let token = if residual.iter().any(|w| *w > 0.0) {
                        sampler.draw_from(&residual)
                    } else {
                        sampler.draw_from(&p)
                    };
                    correction = Some(token);
                    break;
                }
            }
            kept += 1;
        }
        n_drafted += drafts.len();
        n_accepted += kept;
        session.truncate(base + 1 + kept);
        recent = 0.7 * recent + 0.3 * kept as f32 / drafts.len() as f32;
        if kept == drafts.len() {
            k = (k + 1).min(max_k);
        } else if kept * 2 < drafts.len() {
            if k == 1 && recent < 0.35 {
                paused_until = tokens.len() + kept + 1 + DRAFT_PAUSE_TOKENS;
                recent = 0.5;
                k = 2.min(max_k);
            } else {
                k = k.saturating_sub(1).max(1);
            }
        }
        let next = rows.swap_remove(kept);
        rows.truncate(kept);
        for (row, d) in rows.into_iter().zip(&drafts) {
            queue.push_back((row, Some(*d)));
        }
        queue.push_back((next, correction));
    };
    if finish != FinishReason::StopString && finish != FinishReason::Stopped {
        let rest = tracker.flush();
        if !rest.is_empty() {
            on_text(&rest);
        }
    }
    Ok(Generation {
        text: tracker.text(),
        tokens,
        logprobs,
        finish,
        n_prompt_tokens: prompt.len(),
        n_reused_tokens: n_reused,
        prefill_secs,
        decode_secs: decode_start.elapsed().as_secs_f64(),
        n_draft_tokens: n_drafted,
        n_accepted_draft_tokens: n_accepted,
        n_target_passes: n_passes,
    })
}

/// Prompt-lookup drafting: the tokens that followed the most recent earlier
/// occurrence of the last few tokens of `history` (the longest of a 3-, then
/// 2-token match), at most `max` of them.
fn lookup_draft(history: &[u32], max: usize) -> &[u32] {
    if max == 0 {
        return &[];
    }
    for n in [3usize, 2] {
        if history.len() <= n {
            continue;
        }
        let tail = &history[history.len() - n..];
        // Latest match first; a match must leave at least one token after it.
        for start in (0..history.len() - n).rev() {
            if &history[start..start + n] == tail {
                let from = start + n;
                let to = (from + max).min(history.len());
                return &history[from..to];
            }
        }
    }
    &[]
}

struct Lane<'a> {
    session: Session,
    sampler: Sampler,
    tracker: TextTracker<'a>,
    tokens: Vec<u32>,
    logprobs: Vec<f32>,
    finish: Option<FinishReason>,
    config: &'a GenerateConfig,
}

/// Samples one continuation of `prompt` per config, prefilling the prompt
/// once (reusing `session`'s cached prefix) and decoding all samples
/// together: each step is one forward pass for every live sample, so the
/// weights are read once per step rather than once per sample. `session`
/// keeps the prompt; the samples decode in forks of it.
pub fn generate_batch(
    model: &Model,
    tokenizer: &Tokenizer,
    session: &mut Session,
    prompt: &[u32],
    configs: &[GenerateConfig],
    cancel: Option<&AtomicBool>,
) -> Result<Vec<Generation>> {
    generate_batch_with(
        model,
        tokenizer,
        session,
        prompt,
        configs,
        cancel,
        &mut |_, _| false,
    )
}

/// [`generate_batch`] with a stop check: each time sample `i` completes a
/// line, `at_line_end(i, text_so_far)` may return `true` to finish it
/// (reported as [`FinishReason::Stopped`]).
pub fn generate_batch_with(
    model: &Model,
    tokenizer: &Tokenizer,
    session: &mut Session,
    prompt: &[u32],
    configs: &[GenerateConfig],
    cancel: Option<&AtomicBool>,
    at_line_end: &mut dyn FnMut(usize, &str) -> bool,
) -> Result<Vec<Generation>> {
    let cancelled = || cancel.is_some_and(|c| c.load(Ordering::Relaxed));
    let start = Instant::now();
    let (logits, n_reused) = prefill_reusing(model, session, prompt)?;
    let prefill_secs = start.elapsed().as_secs_f64();
    let decode_start = Instant::now();
    let context_length = model.config().context_length;

    let mut lanes = Vec::with_capacity(configs.len());
    for config in configs {
        lanes.push(Lane {
            session: session.fork()?,
            sampler: Sampler::new(config.sampling.clone()),
            tracker: TextTracker::new(&config.stop_strings),
            tokens: Vec::new(),
            logprobs: Vec::new(),
            finish: None,
            config,
        });
    }
    // Next-token logits of each lane (all share the prompt's at first).
    let mut pending: Vec<Option<Vec<f32>>> = vec![Some(logits); lanes.len()];
    loop {
        let mut step_lanes = Vec::new();
        let mut step_tokens = Vec::new();
        for (idx, lane) in lanes.iter_mut().enumerate() {
            let Some(logits) = pending[idx].take() else {
                continue;
            };
            if lane.finish.is_some() {
                continue;
            }
            if cancelled() {
                lane.finish = Some(FinishReason::Cancelled);
                continue;
            }
            if lane.tokens.len() >= lane.config.max_tokens {
                lane.finish = Some(FinishReason::MaxTokens);
                continue;
            }
            let (token, logprob) = lane.sampler.sample(&logits);
            if lane.config.stop_tokens.contains(&token) {
                lane.finish = Some(FinishReason::StopToken);
                continue;
            }
            lane.tokens.push(token);
            lane.logprobs.push(logprob);
            let (fresh, stop) = lane.tracker.push(tokenizer.token_bytes(token));
            if stop {
                lane.finish = Some(FinishReason::StopString);
            } else if fresh.contains('\n') && at_line_end(idx, &lane.tracker.text()) {
                lane.finish = Some(FinishReason::Stopped);
            } else if lane.tokens.len() >= lane.config.max_tokens {
                lane.finish = Some(FinishReason::MaxTokens);
            } else if lane.session.len() + 1 > context_length {
                lane.finish = Some(FinishReason::ContextFull);
            } else {
                step_lanes.push(idx);
                step_tokens.push(token);
            }
        }
        if step_lanes.is_empty() {
            break;
        }
        let mut sessions: Vec<&mut Session> = lanes
            .iter_mut()
            .enumerate()
            .filter(|(idx, _)| step_lanes.contains(idx))
            .map(|(_, lane)| &mut lane.session)
            .collect();
        let rows = model.forward_batch(&mut sessions, &step_tokens)?;
        for (idx, row) in step_lanes.into_iter().zip(rows) {
            pending[idx] = Some(row);
        }
    }
    let decode_secs = decode_start.elapsed().as_secs_f64();
    Ok(lanes
        .into_iter()
        .map(|mut lane| {
            let finish = lane.finish.unwrap_or(FinishReason::MaxTokens);
            if finish != FinishReason::StopString && finish != FinishReason::Stopped {
                lane.tracker.flush();
            }
            Generation {
                text: lane.tracker.text(),
                tokens: lane.tokens,
                logprobs: lane.logprobs,
                finish,
                n_prompt_tokens: prompt.len(),
                n_reused_tokens: n_reused,
                prefill_secs,
                decode_secs,
                n_draft_tokens: 0,
                n_accepted_draft_tokens: 0,
                n_target_passes: 0,
            }
        })
        .collect())
}
