//! Prompts for HumanEval: raw continuation with stop sequences, and the
//! instruct chat format primed with the prompt inside a code fence.

use crate::data::Problem;

/// How the model is prompted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptFormat {
    /// The HumanEval prompt as is; the model continues the function body.
    Continuation,
    /// The instruct chat template, with the assistant turn primed by the
    /// prompt in a ```python fence.
    Chat,
}

impl PromptFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            PromptFormat::Continuation => "continuation",
            PromptFormat::Chat => "chat",
        }
    }

    pub fn prompt(self, problem: &Problem) -> String {
        match self {
            PromptFormat::Continuation => continuation_prompt(problem),
            PromptFormat::Chat => chat_prompt(problem),
        }
    }

    /// Stop strings for the generation loop.
    pub fn stop_sequences(self) -> &'static [&'static str] {
        match self {
            PromptFormat::Continuation => STOP_SEQUENCES,
            PromptFormat::Chat => CHAT_STOP_SEQUENCES,
        }
    }

    /// The completion (what follows the HumanEval prompt) from the text the
    /// model generated after the prompt.
    pub fn completion(self, generated: &str) -> String {
        match self {
            PromptFormat::Continuation => truncate_at_stops(generated).to_string(),
            PromptFormat::Chat => extract_chat_completion(generated).to_string(),
        }
    }
}

/// Stop sequences of the continuation format (those of the Codex paper and
/// the usual HumanEval harnesses).
pub const STOP_SEQUENCES: &[&str] = &[
    "\ndef ",
    "\nclass ",
    "\nif __name__",
    "\nprint(",
    "\n#",
    "\nassert ",
];

/// Stop strings of the chat format: the closing fence and the end-of-turn
/// markers (in case they are decoded as text).
pub const CHAT_STOP_SEQUENCES: &[&str] = &["```", "<|im_end|>", "<|endoftext|>"];

/// The HumanEval prompt itself.
pub fn continuation_prompt(problem: &Problem) -> String {
    problem.prompt.clone()
}

/// `<|im_start|>user\nComplete the following Python function:\n```python\n{prompt}```<|im_end|>\n<|im_start|>assistant\n```python\n{prompt}`
pub fn chat_prompt(problem: &Problem) -> String {
    let prompt = &problem.prompt;
    format!(
        "<|im_start|>user\nComplete the following Python function:\n```python\n{prompt}```<|im_end|>\n<|im_start|>assistant\n```python\n{prompt}"
    )
}

/// `text` up to the earliest stop sequence.
pub fn truncate_at_stops(text: &str) -> &str {
    cut_at(text, STOP_SEQUENCES)
}

/// The function body from what the model wrote after the primed chat prompt:
/// everything before the closing ``` fence (or an end-of-turn marker).
pub fn extract_chat_completion(generated: &str) -> &str {
    cut_at(generated, CHAT_STOP_SEQUENCES)
}

fn cut_at<'a>(text: &'a str, stops: &[&str]) -> &'a str {
    let end = stops
        .iter()
        .filter_map(|stop| text.find(stop))
        .min()
        .unwrap_or(text.len());
    &text[..end]
}
