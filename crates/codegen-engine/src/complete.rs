//! One request through the model: the prompt (built once per request), `n`
//! samples from one prefill, post-processing. Ranking is `ranking.rs`'s; the
//! worker ties the two together.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use codegen_context::{
    build_prompt, indent_step, postprocess, CompletionMode, Neighbour, PromptConfig, TokenCounter,
};
use codegen_model::{
    generate, generate_batch_with, FinishReason, GenerateConfig, PromptPiece, SamplingConfig,
    Session, Tokenizer,
};

use crate::batch::{encode_template, MODEL_MARKERS};
use crate::document::Document;
use crate::registry::LoadedModel;
use crate::remote::RemotePrompt;
use crate::EngineError;

/// How candidates are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RankPolicy {
    /// The docstring's examples (run in the sandbox), then syntax (the
    /// insertion adds no parse errors), agreement between samples on the
    /// examples' inputs, mean log-probability, and how often a text was drawn.
    Combined,
    /// Highest mean token log-probability first.
    Logprob,
    /// Sample order.
    None,
}

impl RankPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            RankPolicy::Combined => "combined",
            RankPolicy::Logprob => "logprob",
            RankPolicy::None => "none",
        }
    }
}

impl std::str::FromStr for RankPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "combined" | "auto" | "true" => Ok(RankPolicy::Combined),
            "logprob" => Ok(RankPolicy::Logprob),
            "none" | "false" => Ok(RankPolicy::None),
            other => Err(format!(
                "unknown ranking {other:?} (expected combined, logprob or none)"
            )),
        }
    }
}

/// When the docstring's examples may run for ranking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExampleRuns {
    Never,
    /// The reply waits at most this long for them; later results are cached
    /// for the next request (editors).
    WithinBudget(Duration),
    /// Always, however long they take (CLI, benchmarks).
    Always,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RankSettings {
    pub policy: RankPolicy,
    pub examples: ExampleRuns,
}

impl Default for RankSettings {
    fn default() -> Self {
        RankSettings {
            policy: RankPolicy::Combined,
            examples: ExampleRuns::Always,
        }
    }
}

/// Everything a request can set: sampling, prompt budgets, ranking, time.
/// Front ends translate their own settings into this once; it becomes
/// [`GenerateConfig`]s in one place ([`CompletionSettings::generate_configs`]).
#[derive(Debug, Clone, PartialEq)]
pub struct CompletionSettings {
    /// Number of samples, decoded together from one prefill.
    pub n: usize,
    pub max_tokens: usize,
    pub temperature: f32,
    /// The first sample is greedy whatever `temperature` says (the others
    /// are sampled): ranking then always has the model's own best guess.
    pub first_greedy: bool,
    pub top_p: f32,
    pub top_k: Option<usize>,
    pub seed: u64,
    pub prompt: PromptConfig,
    pub rank: RankSettings,
    /// After this long the best partial result is returned. At least a
    /// quarter of it is left for generation when the prompt took longer.
    pub time_budget: Option<Duration>,
    /// Tokens guessed from earlier text and checked in one pass during
    /// greedy decoding (prompt lookup; the output does not change).
    pub draft_tokens: usize,
}

/// Default of [`CompletionSettings::draft_tokens`]: the runtime
/// configuration's (`CODEGEN_DRAFT_TOKENS`, default 6).
fn default_draft_tokens() -> usize {
    codegen_model::lookup_draft_tokens()
}

impl Default for CompletionSettings {
    fn default() -> Self {
        Self {
            n: 1,
            max_tokens: 128,
            temperature: 0.0,
            first_greedy: false,
            top_p: 0.95,
            top_k: None,
            seed: 0,
            prompt: PromptConfig::default(),
            rank: RankSettings::default(),
            time_budget: None,
            draft_tokens: default_draft_tokens(),
        }
    }
}

impl CompletionSettings {
    /// One generation config per sample (seeds `seed`, `seed + 1`, ...).
    pub fn generate_configs(
        &self,
        tokenizer: &Tokenizer,
        stop_strings: &[String],
    ) -> Vec<GenerateConfig> {
        (0..self.n.max(1))
            .map(|sample_idx| GenerateConfig {
                max_tokens: self.max_tokens,
                sampling: SamplingConfig {
                    temperature: if sample_idx == 0 && self.first_greedy {
                        0.0
                    } else {
                        self.temperature
                    },
                    top_k: self.top_k,
                    top_p: self.top_p,
                    seed: self.seed.wrapping_add(sample_idx as u64),
                },
                stop_tokens: tokenizer.default_stop_tokens(),
                stop_strings: stop_strings.to_vec(),
                draft_tokens: self.draft_tokens,
                draft: None,
            })
            .collect()
    }
}

/// How the prompt is made.
#[derive(Debug, Clone, PartialEq)]
pub enum PromptFormat {
    /// What an editor sends: context from the document, fill-in-the-middle
    /// when code follows the cursor, a plain continuation otherwise; the
    /// output is post-processed to fit the cursor.
    Editor,
    /// A prompt the caller wrote (e.g. a chat template; special-token text in
    /// it becomes tokens). The output is cut at `stop_strings` and model
    /// markers and not post-processed; the document and cursor are used for
    /// ranking only.
    Template {
        text: String,
        stop_strings: Vec<String>,
    },
}

/// One completion to compute. Owns snapshots of everything it reads.
#[derive(Clone)]
pub struct CompletionRequest {
    /// Requests with the same key share a cached session and supersede each
    /// other (an editor's document URI; a benchmark's run).
    pub key: String,
    pub doc: Arc<Document>,
    /// Byte offset of the cursor in `doc`.
    pub cursor: usize,
    /// Path of the document as the user sees it (for repository context).
    pub path: String,
    pub neighbours: Vec<Neighbour>,
    pub format: PromptFormat,
    /// The function whose docstring examples rank the candidates; `None`:
    /// the one around the cursor (or ending just before it).
    pub function_name: Option<String>,
    pub settings: CompletionSettings,
}

impl CompletionRequest {
    /// An editor request at `cursor` with default settings.
    pub fn new(key: impl Into<String>, doc: Arc<Document>, cursor: usize) -> CompletionRequest {
        CompletionRequest {
            key: key.into(),
            doc,
            cursor,
            path: String::new(),
            neighbours: Vec::new(),
            format: PromptFormat::Editor,
            function_name: None,
            settings: CompletionSettings::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptMode {
    /// `<|fim_prefix|>…<|fim_suffix|>…<|fim_middle|>`: code follows the cursor.
    FillInTheMiddle,
    /// Plain continuation of the prefix: nothing but blank text follows.
    Continuation,
    /// The caller's template ([`PromptFormat::Template`]).
    Template,
}

impl PromptMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PromptMode::FillInTheMiddle => "fim",
            PromptMode::Continuation => "continuation",
            PromptMode::Template => "template",
        }
    }
}

/// One sample, in sample order.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Text to insert at the cursor (post-processed).
    pub text: String,
    /// What the model wrote.
    pub raw: String,
    pub mean_logprob: f32,
    pub n_tokens: usize,
    pub finish: FinishReason,
}

/// The prompt of a request, built once.
#[derive(Debug, Clone)]
pub struct BuiltPrompt {
    pub tokens: Vec<u32>,
    pub mode: PromptMode,
    pub completion_mode: CompletionMode,
    /// What the context could not do.
    pub notes: Vec<String>,
    pub(crate) healing: Healing,
    stop_strings: Vec<String>,
    /// The same prompt as text pieces, for a remote backend.
    pub remote: RemotePrompt,
}

/// The samples of a request and what they cost.
#[derive(Debug, Clone)]
pub struct Generated {
    pub samples: Vec<Sample>,
    pub n_reused_tokens: usize,
    pub prefill_secs: f64,
    pub decode_secs: f64,
    pub n_generated_tokens: usize,
    /// Speculative decoding: draft tokens proposed and kept, and the
    /// model's forward passes while decoding.
    pub n_draft_tokens: usize,
    pub n_accepted_draft_tokens: usize,
    pub n_target_passes: usize,
}

struct ModelTokens<'a>(&'a Tokenizer);

impl TokenCounter for ModelTokens<'_> {
    fn count(&self, text: &str) -> usize {
        self.0
            .encode(text)
            .map(|ids| ids.len())
            .unwrap_or(text.len() / 3)
    }
}

/// Cut `text` to about `max_tokens` tokens, keeping its end (for a prefix)
/// or its start (for a suffix), at a line boundary where possible.
fn cut_plain(text: &str, max_bytes: usize, keep_end: bool) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    if keep_end {
        // Start at a document-anchored point (a multiple of 30% of the
        // budget, at or after the earliest start that fits), so that while
        // the user types at the end the cut stays put and the cached prompt
        // prefix stays valid; at least 70% of the budget stays in use.
        let earliest = text.len() - max_bytes;
        let step = (max_bytes * 3 / 10).max(1);
        let mut start = earliest.next_multiple_of(step).min(text.len());
        while !text.is_char_boundary(start) {
            start += 1;
        }
        let slice = &text[start..];
        match slice.find('\n') {
            Some(i) if i + 1 < slice.len() => &slice[i + 1..],
            _ => slice,
        }
    } else {
        let mut end = max_bytes;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let slice = &text[..end];
        match slice.rfind('\n') {
            Some(i) if i > 0 => &slice[..=i],
            _ => slice,
        }
    }
}

/// What to do about whitespace the prompt ends with. Byte-level BPE puts a
/// word's leading space in the word's token (` return`), so a prompt ending
/// in spaces makes the model write one more.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Healing {
    None,
    /// Continuation: the prompt ends before these spaces and tabs, and the
    /// same whitespace is taken off the start of the output.
    Healed(String),
    /// Fill-in-the-middle keeps them (taking them off makes the model stop
    /// at once); leading spaces and tabs of the output are dropped instead.
    StripLeading,
}

/// Strips from the start of the model's output the whitespace that was
/// taken off the end of the prefix.
fn unheal<'a>(raw: &'a str, healed: &str) -> &'a str {
    let n = raw
        .bytes()
        .zip(healed.bytes())
        .take_while(|(a, b)| a == b)
        .count();
    &raw[n..]
}

fn apply_healing<'a>(raw: &'a str, healing: &Healing) -> &'a str {
    match healing {
        Healing::None => raw,
        Healing::Healed(healed) => unheal(raw, healed),
        Healing::StripLeading => raw.trim_start_matches([' ', '\t']),
    }
}

#[cfg(test)]
pub(crate) fn unheal_for_tests<'a>(raw: &'a str, healed: &str) -> &'a str {
    unheal(raw, healed)
}

/// The text before any model marker (an end-of-text or file-separator token
/// written out as text).
fn cut_at_markers(raw: &str) -> &str {
    let end = MODEL_MARKERS
        .iter()
        .filter_map(|m| raw.find(m))
        .min()
        .unwrap_or(raw.len());
    &raw[..end]
}

/// Builds the prompt of `req`: its tokens, mode, completion mode and notes.
pub fn build_prompt_tokens(
    tokenizer: &Tokenizer,
    req: &CompletionRequest,
) -> Result<BuiltPrompt, EngineError> {
    let text = req.doc.text();
    if req.cursor > text.len() || !text.is_char_boundary(req.cursor) {
        return Err(EngineError::CursorOutOfRange {
            cursor: req.cursor,
            len: text.len(),
        });
    }
    if let PromptFormat::Template { text, stop_strings } = &req.format {
        return Ok(BuiltPrompt {
            tokens: encode_template(tokenizer, text)?,
            mode: PromptMode::Template,
            completion_mode: CompletionMode::MultiLine,
            notes: Vec::new(),
            healing: Healing::None,
            stop_strings: stop_strings.clone(),
            remote: RemotePrompt {
                rendered: text.clone(),
                template: true,
                ..RemotePrompt::default()
            },
        });
    }
    let cfg = &req.settings.prompt;
    let (prefix, suffix, snippets, completion_mode, notes) = match &*req.doc {
        Document::Parsed(doc) => {
            let prompt = build_prompt(
                doc,
                req.cursor,
                &req.path,
                &req.neighbours,
                cfg,
                &ModelTokens(tokenizer),
            );
            (
                prompt.prefix,
                prompt.suffix,
                prompt.snippets,
                prompt.mode,
                prompt.notes,
            )
        }
        Document::Plain(text) => {
            let prefix = cut_plain(&text[..req.cursor], cfg.max_prefix_tokens * 3, true);
            let suffix = cut_plain(&text[req.cursor..], cfg.max_suffix_tokens * 3, false);
            let line_rest = text[req.cursor..].split('\n').next().unwrap_or("");
            let mode = if line_rest.trim().is_empty() {
                CompletionMode::MultiLine
            } else {
                CompletionMode::SingleLine
            };
            (
                prefix.to_string(),
                suffix.to_string(),
                Vec::new(),
                mode,
                Vec::new(),
            )
        }
    };
    let mut prefix = prefix;
    let fim = !suffix.trim().is_empty();
    let kept = prefix.trim_end_matches([' ', '\t']).len();
    // The cursor inside a line's indentation (3 of 4 spaces typed): the
    // model's leading spaces complete it and are kept.
    let line_prefix = &text[text[..req.cursor].rfind('\n').map_or(0, |i| i + 1)..req.cursor];
    let inside_indent = !line_prefix.is_empty()
        && line_prefix.bytes().all(|b| b == b' ')
        && !line_prefix.len().is_multiple_of(indent_step(text));
    let healing = if kept == prefix.len() || (fim && inside_indent) {
        Healing::None
    } else if fim {
        Healing::StripLeading
    } else {
        Healing::Healed(prefix.split_off(kept))
    };
    let special = tokenizer.special();
    let remote = remote_prompt(
        &prefix,
        &suffix,
        &snippets,
        &req.path,
        fim,
        special.file_sep.is_some(),
    );
    let mut pieces = Vec::new();
    if fim || !snippets.is_empty() {
        let need = |id: Option<u32>, name| id.ok_or(EngineError::MissingSpecialToken(name));
        if let (Some(file_sep), false) = (special.file_sep, snippets.is_empty()) {
            for snippet in &snippets {
                pieces.push(PromptPiece::Token(file_sep));
                pieces.push(PromptPiece::Text(format!(
                    "{}\n{}\n",
                    snippet.path, snippet.text
                )));
            }
            pieces.push(PromptPiece::Token(file_sep));
            pieces.push(PromptPiece::Text(format!("{}\n", req.path)));
        }
        if fim {
            pieces.push(PromptPiece::Token(need(
                special.fim_prefix,
                "<|fim_prefix|>",
            )?));
            pieces.push(PromptPiece::Text(prefix));
            pieces.push(PromptPiece::Token(need(
                special.fim_suffix,
                "<|fim_suffix|>",
            )?));
            pieces.push(PromptPiece::Text(suffix));
            pieces.push(PromptPiece::Token(need(
                special.fim_middle,
                "<|fim_middle|>",
            )?));
        } else {
            pieces.push(PromptPiece::Text(prefix));
        }
    } else {
        pieces.push(PromptPiece::Text(prefix));
    }
    let mut tokens = tokenizer.encode_pieces(&pieces)?;
    if tokens.is_empty() {
        // An empty document: start from end-of-text so the model has a
        // position to predict from.
        if let Some(eot) = special.endoftext {
            tokens.push(eot);
        }
    }
    let mode = if fim {
        PromptMode::FillInTheMiddle
    } else {
        PromptMode::Continuation
    };
    let stop_strings = if completion_mode == CompletionMode::SingleLine {
        vec!["\n".to_string()]
    } else {
        Vec::new()
    };
    Ok(BuiltPrompt {
        tokens,
        mode,
        completion_mode,
        notes,
        healing,
        stop_strings,
        remote,
    })
}

/// The prompt as text for a remote engine: the same pieces as the tokens,
/// special tokens written out (what an OpenAI-compatible server parses).
fn remote_prompt(
    prefix: &str,
    suffix: &str,
    snippets: &[codegen_context::Snippet],
    path: &str,
    fim: bool,
    has_file_sep: bool,
) -> RemotePrompt {
    let mut rendered = String::new();
    if has_file_sep && !snippets.is_empty() {
        for snippet in snippets {
            rendered.push_str(&format!("<|file_sep|>{}\n{}\n", snippet.path, snippet.text));
        }
        rendered.push_str(&format!("<|file_sep|>{path}\n"));
    }
    if fim {
        rendered.push_str(&format!(
            "<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>"
        ));
    } else {
        rendered.push_str(prefix);
    }
    RemotePrompt {
        prefix: prefix.to_string(),
        suffix: if fim {
            suffix.to_string()
        } else {
            String::new()
        },
        snippets: snippets
            .iter()
            .map(|s| (s.path.clone(), s.text.clone()))
            .collect(),
        rendered,
        fim,
        template: false,
    }
}

/// The text to insert, from what the model wrote.
fn finish_text(req: &CompletionRequest, prompt: &BuiltPrompt, raw: &str) -> String {
    let raw = apply_healing(cut_at_markers(raw), &prompt.healing);
    if prompt.mode == PromptMode::Template {
        return raw.to_string();
    }
    match &*req.doc {
        Document::Parsed(doc) => postprocess(doc, req.cursor, raw, prompt.completion_mode),
        Document::Plain(_) => match prompt.completion_mode {
            CompletionMode::SingleLine => raw.split('\n').next().unwrap_or("").to_string(),
            CompletionMode::MultiLine => raw.trim_end().to_string(),
        },
    }
}

/// Samples `req.settings.n` candidates for a built prompt: reuses the
/// session's cached prefix, prefills once, decodes all samples together
/// (each from a fork of the prefilled session) and post-processes them.
pub fn generate_candidates(
    model: &LoadedModel,
    session: &mut Session,
    req: &CompletionRequest,
    prompt: &BuiltPrompt,
    cancel: Option<&AtomicBool>,
) -> Result<Generated, EngineError> {
    let tokenizer = &model.tokenizer;
    let mut configs = req
        .settings
        .generate_configs(tokenizer, &prompt.stop_strings);
    let n = configs.len();
    // One sample decodes speculatively when the model has a draft; several
    // decode together in one pass per step instead (faster than drafting
    // for each on CPU).
    if let (1, Some(draft)) = (n, &model.draft) {
        configs[0].draft = Some(codegen_model::DraftModel {
            model: draft.clone(),
            max_tokens: model.draft_tokens.max(1),
            context_tokens: model.draft_context_tokens.max(1),
        });
    }
    // Stop a sample as soon as its block is done: post-processing of the
    // text so far stops growing when a new line falls outside the block.
    let early_stop =
        prompt.completion_mode == CompletionMode::MultiLine && prompt.mode != PromptMode::Template;
    let mut last_kept = vec![String::new(); n];
    let mut n_lines = vec![0usize; n];
    let mut block_done = |idx: usize, text: &str| -> bool {
        if !early_stop {
            return false;
        }
        let complete_lines = match text.rfind('\n') {
            Some(i) => &text[..i],
            None => return false,
        };
        let last_line = complete_lines.rsplit('\n').next().unwrap_or("");
        let kept = finish_text(req, prompt, complete_lines);
        n_lines[idx] += 1;
        // A line of closers only (`}`, `)`) may be what post-processing had
        // already added to balance the text: that is not a stall.
        let only_closers = last_line
            .trim()
            .chars()
            .all(|c| matches!(c, ')' | ']' | '}' | ';' | ','));
        let stalled = n_lines[idx] > 1 && !only_closers && kept == last_kept[idx];
        last_kept[idx] = kept;
        stalled
    };
    let generations = if let Some(remote) = &model.remote {
        // A remote engine draws the samples; the rest stays here.
        remote.sample(&prompt.remote, &configs, cancel)?
    } else if n == 1 {
        // One sample streams from the session itself.
        let mut text_so_far = String::new();
        vec![generate(
            &model.model,
            tokenizer,
            session,
            &prompt.tokens,
            &configs[0],
            cancel,
            &mut |piece| {
                text_so_far.push_str(piece);
                !(piece.contains('\n') && block_done(0, &text_so_far))
            },
        )?]
    } else {
        generate_batch_with(
            &model.model,
            tokenizer,
            session,
            &prompt.tokens,
            &configs,
            cancel,
            &mut block_done,
        )?
    };
    let (n_reused_tokens, prefill_secs, decode_secs) = generations
        .first()
        .map(|g| (g.n_reused_tokens, g.prefill_secs, g.decode_secs))
        .unwrap_or_default();
    let n_generated_tokens = generations.iter().map(|g| g.tokens.len()).sum();
    let n_draft_tokens = generations.iter().map(|g| g.n_draft_tokens).sum();
    let n_accepted_draft_tokens = generations.iter().map(|g| g.n_accepted_draft_tokens).sum();
    let n_target_passes = generations.iter().map(|g| g.n_target_passes).sum();
    let samples = generations
        .into_iter()
        .map(|generation| Sample {
            text: finish_text(req, prompt, &generation.text),
            mean_logprob: generation.mean_logprob(),
            n_tokens: generation.tokens.len(),
            finish: generation.finish,
            raw: generation.text,
        })
        .collect();
    Ok(Generated {
        samples,
        n_reused_tokens,
        prefill_secs,
        decode_secs,
        n_generated_tokens,
        n_draft_tokens,
        n_accepted_draft_tokens,
        n_target_passes,
    })
}

#[cfg(test)]
mod cut_tests {
    use super::cut_plain;

    /// Typing at the end of a long plain-text prefix moves its start only
    /// in jumps, and the kept text always fits and uses most of the budget.
    #[test]
    fn plain_prefix_cut_is_stable_while_typing() {
        let line = "some plain text line with words 0123456789\n";
        let mut text: String = line.repeat(200);
        let max = 1000;
        let mut starts = Vec::new();
        for i in 0..600 {
            text.push(if i % 40 == 39 { '\n' } else { 'x' });
            let kept = cut_plain(&text, max, true);
            assert!(kept.len() <= max);
            assert!(kept.len() >= max * 6 / 10, "{} bytes kept", kept.len());
            starts.push(text.len() - kept.len());
        }
        let moves = starts.windows(2).filter(|w| w[0] != w[1]).count();
        // 600 bytes typed with a 300-byte step: at most 2-3 jumps.
        assert!(moves <= 3, "start moved {moves} times");
        assert!(starts.windows(2).all(|w| w[0] <= w[1]), "start moved back");
    }
}
