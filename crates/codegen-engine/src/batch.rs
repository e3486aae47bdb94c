//! Prompts from trusted templates and several samples from one prefill.

use std::sync::atomic::AtomicBool;

use codegen_model::{generate_batch, GenerateConfig, Generation, PromptPiece, Session, Tokenizer};

use crate::registry::LoadedModel;
use crate::EngineError;

/// Special-token strings: recognised in templates, and the end of a
/// completion when the model writes one out as text.
pub(crate) const MODEL_MARKERS: [&str; 9] = [
    "<|im_start|>",
    "<|im_end|>",
    "<|endoftext|>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
];

/// Encodes a prompt written by this program (e.g. a chat template), where
/// `<|im_start|>` and friends are special tokens. Never use it for user
/// text: there, special-token text must stay text.
pub fn encode_template(tokenizer: &Tokenizer, template: &str) -> Result<Vec<u32>, EngineError> {
    let mut pieces = Vec::new();
    let mut rest = template;
    while !rest.is_empty() {
        let next = MODEL_MARKERS
            .iter()
            .filter_map(|t| rest.find(t).map(|i| (i, *t)))
            .filter(|(_, t)| tokenizer.special_id(t).is_some())
            .min_by_key(|(i, _)| *i);
        match next {
            Some((idx, token)) => {
                if idx > 0 {
                    pieces.push(PromptPiece::Text(rest[..idx].to_string()));
                }
                if let Some(id) = tokenizer.special_id(token) {
                    pieces.push(PromptPiece::Token(id));
                }
                rest = &rest[idx + token.len()..];
            }
            None => {
                pieces.push(PromptPiece::Text(rest.to_string()));
                rest = "";
            }
        }
    }
    Ok(tokenizer.encode_pieces(&pieces)?)
}

/// Generates one continuation of `prompt` per config: the prompt is
/// prefilled once (reusing `session`'s cached prefix) and the samples are
/// decoded together, one forward pass per step for all live samples.
pub fn generate_samples(
    model: &LoadedModel,
    session: &mut Session,
    prompt: &[u32],
    configs: &[GenerateConfig],
    cancel: Option<&AtomicBool>,
) -> Result<Vec<Generation>, EngineError> {
    Ok(generate_batch(
        &model.model,
        &model.tokenizer,
        session,
        prompt,
        configs,
        cancel,
    )?)
}
