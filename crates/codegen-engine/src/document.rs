//! An open document as the engine sees it: parsed with tree-sitter when its
//! language is supported, plain text otherwise.

use codegen_context::position::clamp_offset;
use codegen_context::{Language, ParsedDocument};

/// A document's text, kept parsed where the language allows. Cheap to
/// snapshot behind an `Arc`: editors keep one and clone on write.
#[derive(Debug, Clone)]
pub enum Document {
    Parsed(ParsedDocument),
    Plain(String),
}

impl Document {
    pub fn new(text: String, language: Option<Language>) -> Document {
        match language {
            Some(lang) => Document::Parsed(ParsedDocument::new(text, lang)),
            None => Document::Plain(text),
        }
    }

    pub fn text(&self) -> &str {
        match self {
            Document::Parsed(doc) => doc.text(),
            Document::Plain(text) => text,
        }
    }

    pub fn language(&self) -> Option<Language> {
        match self {
            Document::Parsed(doc) => Some(doc.language()),
            Document::Plain(_) => None,
        }
    }

    /// Replaces `start_byte..old_end_byte` by `new_text`. Offsets past the
    /// end or inside a character are clamped to the char boundary at or
    /// before them; a reversed range is empty at `start_byte`.
    pub fn apply_edit(&mut self, start_byte: usize, old_end_byte: usize, new_text: &str) {
        match self {
            Document::Parsed(doc) => doc.apply_edit(start_byte, old_end_byte, new_text),
            Document::Plain(text) => {
                let start = clamp_offset(text, start_byte);
                let old_end = clamp_offset(text, old_end_byte).max(start);
                text.replace_range(start..old_end, new_text);
            }
        }
    }
}
