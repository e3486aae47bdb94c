//! Code-aware context for completion: everything between an editor buffer and
//! the model that needs to understand source code.
//!
//! From a document (kept parsed with tree-sitter, re-parsed incrementally on
//! edits) and a cursor byte offset this crate finds the cursor's scope
//! (enclosing function and class, signature, docstring, imports, whether the
//! cursor sits mid-line, on an empty line, in a string or a comment), cuts a
//! fill-in-the-middle prefix and suffix to a token budget at syntactic
//! boundaries, picks snippets from other open documents by identifier
//! similarity, post-processes raw model output into the text to insert, and
//! counts syntax errors for ranking. It also converts LSP positions (UTF-8,
//! UTF-16, chars) to byte offsets.
//!
//! Languages: Python, Rust, JavaScript, TypeScript, TSX and Go.
//!
//! ```
//! use codegen_context::*;
//! let doc = ParsedDocument::new("def add(a, b):\n    \n".to_string(), Language::Python);
//! let cursor = 19; // on the empty body line, after the indentation
//! let cfg = PromptConfig::default();
//! let prompt = build_prompt(&doc, cursor, "m.py", &[], &cfg, &ApproxTokenCounter);
//! assert_eq!(prompt.mode, CompletionMode::MultiLine);
//! assert_eq!(prompt.scope.function.as_ref().and_then(|f| f.name.as_deref()), Some("add"));
//! // The engine wraps prefix and suffix in FIM tokens and samples; then:
//! let raw = "return a + b\n\n\ndef sub(a, b):\n    return a - b\n";
//! assert_eq!(postprocess(&doc, cursor, raw, prompt.mode), "return a + b");
//! assert!(syntax_check(&doc, cursor, "return a +").is_worse());
//! ```
//!
//! What it never does: I/O of any kind (no files, no network, no printing),
//! tokenizing with the model's tokenizer (the caller passes a [`TokenCounter`]),
//! knowing the model's special tokens (the engine renders FIM and
//! file-separator tokens and cuts raw output at them),
//! and failing on broken code or bad offsets: every entry point returns its
//! best answer and says what it could not do in `notes`.

mod document;
mod language;
pub mod position;
mod postprocess;
mod prompt;
mod scope;
mod syntax;
mod text;

pub use document::ParsedDocument;
pub use language::Language;
pub use postprocess::postprocess;
pub use prompt::{
    build_prompt, render_repo_context, ApproxTokenCounter, CompletionMode, Neighbour, Prompt,
    PromptConfig, Snippet, TokenCounter,
};
pub use scope::{cursor_scope, CursorPlace, CursorScope, Import, ScopeItem};
pub use syntax::{syntax_check, SyntaxCheck};
pub use text::indent_step;

#[cfg(test)]
mod tests;
