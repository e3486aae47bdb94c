use std::sync::atomic::AtomicBool;

use codegen_context::{
    build_prompt, postprocess, CompletionMode, Neighbour, ParsedDocument, PromptConfig,
    TokenCounter,
};
use codegen_model::{
    generate, generate_batch_with, FinishReason, GenerateConfig, PromptPiece, SamplingConfig,
    Session, Tokenizer,
};

use crate::registry::LoadedModel;
use crate::EngineError;

/// The document being completed: parsed (a supported language) or plain.
pub enum SourceText<'a> {
    Parsed(&'a ParsedDocument),
    Plain(&'a str),
}

impl SourceText<'_> {
    pub fn text(&self) -> &str {
        match self {
            SourceText::Parsed(doc) => doc.text(),
            SourceText::Plain(text) => text,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CompletionSettings {
    /// Number of samples.
    pub n: usize,
    pub max_tokens: usize,
    pub temperature: f32,
    pub top_p: f32,
    pub top_k: Option<usize>,
    pub seed: u64,
    pub prompt: PromptConfig,
}

impl Default for CompletionSettings {
    fn default() -> Self {
        Self {
            n: 1,
            max_tokens: 128,
            temperature: 0.0,
            top_p: 0.95,
            top_k: None,
            seed: 0,
            prompt: PromptConfig::default(),
        }
    }
}

pub struct CompletionRequest<'a> {
    pub source: SourceText<'a>,
    /// Byte offset of the cursor.
    pub cursor: usize,
    /// Path of the document as the user sees it (for repository context).
    pub path: String,
    pub neighbours: Vec<Neighbour>,
    pub settings: CompletionSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptMode {
    /// `<|fim_prefix|>…<|fim_suffix|>…<|fim_middle|>`: code follows the cursor.
    FillInTheMiddle,
    /// Plain continuation of the prefix: nothing but blank text follows.
    Continuation,
}

#[derive(Debug, Clone)]
pub struct Candidate {
    /// Text to insert at the cursor (post-processed).
    pub text: String,
    /// What the model wrote.
    pub raw: String,
    pub mean_logprob: f32,
    pub n_tokens: usize,
    pub finish: FinishReason,
}

#[derive(Debug, Clone)]
pub struct Completion {
    pub candidates: Vec<Candidate>,
    pub prompt_mode: PromptMode,
    pub completion_mode: CompletionMode,
    pub n_prompt_tokens: usize,
    pub n_reused_tokens: usize,
    pub prefill_secs: f64,
    pub decode_secs: f64,
    pub n_generated_tokens: usize,
    /// What the context could not do.
    pub notes: Vec<String>,
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

/// Tokens of the prompt for a request, its mode, the completion mode and
/// the context notes.
pub fn build_prompt_tokens(
    tokenizer: &Tokenizer,
    req: &CompletionRequest<'_>,
) -> Result<(Vec<u32>, PromptMode, CompletionMode, Vec<String>), EngineError> {
    let (tokens, mode, completion_mode, notes, _) = build_prompt_healed(tokenizer, req)?;
    Ok((tokens, mode, completion_mode, notes))
}

/// What to do about whitespace the prompt ends with. Byte-level BPE puts a
/// word's leading space in the word's token (` return`), so a prompt ending
/// in spaces makes the model write one more.
#[derive(Debug, Clone, PartialEq)]
enum Healing {
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

/// Like [`build_prompt_tokens`], and also says how to treat whitespace at
/// the end of the prefix ([`Healing`]).
fn build_prompt_healed(
    tokenizer: &Tokenizer,
    req: &CompletionRequest<'_>,
) -> Result<(Vec<u32>, PromptMode, CompletionMode, Vec<String>, Healing), EngineError> {
    let text = req.source.text();
    if req.cursor > text.len() || !text.is_char_boundary(req.cursor) {
        return Err(EngineError::CursorOutOfRange {
            cursor: req.cursor,
            len: text.len(),
        });
    }
    let cfg = &req.settings.prompt;
    let (prefix, suffix, snippets, completion_mode, notes) = match &req.source {
        SourceText::Parsed(doc) => {
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
        SourceText::Plain(text) => {
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
    let healing = if kept == prefix.len() {
        Healing::None
    } else if fim {
        Healing::StripLeading
    } else {
        Healing::Healed(prefix.split_off(kept))
    };
    let special = tokenizer.special();
    let mut pieces = Vec::new();
    if fim || !snippets.is_empty() {
        let need = |id: Option<u32>, name| id.ok_or(EngineError::MissingSpecialToken(name));
        let file_sep = special.file_sep;
        if let (Some(file_sep), false) = (file_sep, snippets.is_empty()) {
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
    Ok((tokens, mode, completion_mode, notes, healing))
}

fn finish_text(req: &CompletionRequest<'_>, raw: &str, mode: CompletionMode) -> String {
    match &req.source {
        SourceText::Parsed(doc) => postprocess(doc, req.cursor, raw, mode),
        SourceText::Plain(_) => match mode {
            CompletionMode::SingleLine => raw.split('\n').next().unwrap_or("").to_string(),
            CompletionMode::MultiLine => raw.trim_end().to_string(),
        },
    }
}

/// Tokens guessed from earlier text and checked in one pass during greedy
/// decoding (prompt lookup; the output is unchanged, see
/// `GenerateConfig::draft_tokens`). `CODEGEN_DRAFT_TOKENS=0` turns it off.
const DRAFT_TOKENS: usize = 6;

fn draft_tokens() -> usize {
    std::env::var("CODEGEN_DRAFT_TOKENS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DRAFT_TOKENS)
}

/// Completes at the request's cursor: builds the prompt, reuses the
/// session's cached prefix, prefills once, then samples `n` candidates (each
/// from a fork of the prefilled session) and post-processes them.
pub fn complete(
    model: &LoadedModel,
    session: &mut Session,
    req: &CompletionRequest<'_>,
    cancel: Option<&AtomicBool>,
) -> Result<Completion, EngineError> {
    let tokenizer = &model.tokenizer;
    let (prompt, prompt_mode, completion_mode, notes, healing) =
        build_prompt_healed(tokenizer, req)?;
    let settings = &req.settings;
    let mut stop_strings = Vec::new();
    if completion_mode == CompletionMode::SingleLine {
        stop_strings.push("\n".to_string());
    }
    let n = settings.n.max(1);
    let configs: Vec<GenerateConfig> = (0..n)
        .map(|sample_idx| GenerateConfig {
            max_tokens: settings.max_tokens,
            sampling: SamplingConfig {
                temperature: settings.temperature,
                top_k: settings.top_k,
                top_p: settings.top_p,
                seed: settings.seed.wrapping_add(sample_idx as u64),
            },
            stop_tokens: tokenizer.default_stop_tokens(),
            stop_strings: stop_strings.clone(),
            draft_tokens: draft_tokens(),
        })
        .collect();
    // Stop a sample as soon as its block is done: post-processing of the
    // text so far stops growing when a new line falls outside the block.
    let early_stop = completion_mode == CompletionMode::MultiLine;
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
        let kept = finish_text(
            req,
            apply_healing(complete_lines, &healing),
            completion_mode,
        );
        n_lines[idx] += 1;
        let stalled = n_lines[idx] > 1 && !last_line.trim().is_empty() && kept == last_kept[idx];
        last_kept[idx] = kept;
        stalled
    };
    let generations = if n == 1 {
        // One sample streams from the session itself.
        let mut text_so_far = String::new();
        vec![generate(
            &model.model,
            tokenizer,
            session,
            &prompt,
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
            &prompt,
            &configs,
            cancel,
            &mut block_done,
        )?
    };
    let (n_reused, prefill_secs, decode_secs) = generations
        .first()
        .map(|g| (g.n_reused_tokens, g.prefill_secs, g.decode_secs))
        .unwrap_or_default();
    let n_generated = generations.iter().map(|g| g.tokens.len()).sum();
    let candidates = generations
        .into_iter()
        .map(|generation| Candidate {
            text: finish_text(
                req,
                apply_healing(&generation.text, &healing),
                completion_mode,
            ),
            mean_logprob: generation.mean_logprob(),
            n_tokens: generation.tokens.len(),
            finish: generation.finish,
            raw: generation.text,
        })
        .collect();
    Ok(Completion {
        candidates,
        prompt_mode,
        completion_mode,
        n_prompt_tokens: prompt.len(),
        n_reused_tokens: n_reused,
        prefill_secs,
        decode_secs,
        n_generated_tokens: n_generated,
        notes,
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
