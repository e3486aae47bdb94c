//! A document kept parsed: the text and its tree-sitter tree, re-parsed
//! incrementally on each edit.

use crate::language::Language;
use crate::text::floor_char_boundary;
use tree_sitter::{InputEdit, Parser, Point, Tree};

/// A document's text with its syntax tree.
///
/// The LSP keeps one per open document and calls [`ParsedDocument::apply_edit`]
/// on each change, so a keystroke costs an incremental re-parse rather than a
/// copy and full parse of the whole document.
#[derive(Debug, Clone)]
pub struct ParsedDocument {
    text: String,
    lang: Language,
    tree: Option<Tree>,
}

impl ParsedDocument {
    /// Parse `text` from scratch.
    pub fn new(text: String, lang: Language) -> ParsedDocument {
        let tree = parse(&text, lang, None);
        ParsedDocument { text, lang, tree }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn language(&self) -> Language {
        self.lang
    }

    /// The syntax tree; `None` only if tree-sitter gave up (it does not on
    /// broken code, which yields ERROR and MISSING nodes instead).
    pub fn tree(&self) -> Option<&Tree> {
        self.tree.as_ref()
    }

    /// Replace `start_byte..old_end_byte` by `new_text` and re-parse
    /// incrementally. Offsets past the end or inside a character are clamped
    /// to the nearest char boundary at or before them; a reversed range is
    /// treated as empty at `start_byte`.
    pub fn apply_edit(&mut self, start_byte: usize, old_end_byte: usize, new_text: &str) {
        let start = floor_char_boundary(&self.text, start_byte);
        let old_end = floor_char_boundary(&self.text, old_end_byte).max(start);
        let start_position = point_at(&self.text, start);
        let old_end_position = advance_point(start_position, &self.text[start..old_end]);
        self.text.replace_range(start..old_end, new_text);
        let new_end = start + new_text.len();
        let new_end_position = advance_point(start_position, new_text);
        let old_tree = match self.tree.as_mut() {
            Some(tree) => {
                tree.edit(&InputEdit {
                    start_byte: start,
                    old_end_byte: old_end,
                    new_end_byte: new_end,
                    start_position,
                    old_end_position,
                    new_end_position,
                });
                Some(&*tree)
            }
            None => None,
        };
        self.tree = parse(&self.text, self.lang, old_tree);
    }

    /// A copy of this document with `insertion` inserted at `at` (a char
    /// boundary), re-parsed incrementally from this document's tree.
    pub(crate) fn with_insertion(&self, at: usize, insertion: &str) -> ParsedDocument {
        let mut copy = self.clone();
        copy.apply_edit(at, at, insertion);
        copy
    }
}

fn parse(text: &str, lang: Language, old_tree: Option<&Tree>) -> Option<Tree> {
    let mut parser = Parser::new();
    parser.set_language(&lang.ts_language()).ok()?;
    parser.parse(text, old_tree)
}

/// Tree-sitter point (row, byte column) of a byte offset.
pub(crate) fn point_at(text: &str, offset: usize) -> Point {
    advance_point(Point { row: 0, column: 0 }, &text[..offset])
}

fn advance_point(start: Point, inserted: &str) -> Point {
    let bytes = inserted.as_bytes();
    let n_newlines = bytes.iter().filter(|&&b| b == b'\n').count();
    if n_newlines == 0 {
        Point {
            row: start.row,
            column: start.column + bytes.len(),
        }
    } else {
        let last_nl = bytes.iter().rposition(|&b| b == b'\n').unwrap_or(0);
        Point {
            row: start.row + n_newlines,
            column: bytes.len() - last_nl - 1,
        }
    }
}
