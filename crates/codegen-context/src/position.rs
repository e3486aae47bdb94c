//! Conversions between byte offsets and (line, character) positions, with the
//! character counted in UTF-8 code units, UTF-16 code units (the LSP default)
//! or chars (Unicode scalar values).
//!
//! Lines end at `\n`, `\r\n` or a lone `\r`, as LSP says. The character of a
//! position never points into a line ending: strict conversions reject it,
//! clamped ones move it to the end of the line's content.

use thiserror::Error;

/// How the `character` of a [`Position`] is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PositionEncoding {
    /// UTF-8 code units (bytes).
    Utf8,
    /// UTF-16 code units (LSP's default).
    Utf16,
    /// Unicode scalar values (Rust `char`s, LSP's `utf-32`).
    Chars,
}

/// A zero-based (line, character) position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub line: u32,
    pub character: u32,
}

impl Position {
    pub fn new(line: u32, character: u32) -> Position {
        Position { line, character }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PositionError {
    #[error("line {line} is out of range (the text has {n_lines} lines)")]
    LineOutOfRange { line: u32, n_lines: u32 },
    #[error("character {character} is past the end of line {line} ({line_len} code units)")]
    CharacterOutOfRange {
        line: u32,
        character: u32,
        line_len: u32,
    },
    #[error("character {character} of line {line} falls inside a character")]
    InsideCharacter { line: u32, character: u32 },
    #[error("byte offset {offset} is past the end of the text ({len} bytes)")]
    OffsetOutOfRange { offset: usize, len: usize },
    #[error("byte offset {offset} is not on a char boundary")]
    NotCharBoundary { offset: usize },
}

/// Line starts of a text, built once and reused for many conversions with
/// that same text (rebuild it after an edit).
#[derive(Debug, Clone)]
pub struct LineIndex {
    /// Byte offset where each line starts.
    line_starts: Vec<usize>,
    len: usize,
}

impl LineIndex {
    pub fn new(text: &str) -> LineIndex {
        let bytes = text.as_bytes();
        let mut line_starts = vec![0];
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\n' => line_starts.push(i + 1),
                b'\r' => {
                    if bytes.get(i + 1) == Some(&b'\n') {
                        i += 1;
                    }
                    line_starts.push(i + 1);
                }
                _ => {}
            }
            i += 1;
        }
        LineIndex {
            line_starts,
            len: text.len(),
        }
    }

    pub fn n_lines(&self) -> usize {
        self.line_starts.len()
    }

    /// Byte range of a line's content, without its line ending.
    fn content_range(&self, text: &str, line: usize) -> (usize, usize) {
        // Clamped so that an index used with another text cannot panic.
        let start = crate::text::floor_char_boundary(text, self.line_starts[line]);
        let end = self.line_starts.get(line + 1).copied().unwrap_or(self.len);
        let mut end = crate::text::floor_char_boundary(text, end).max(start);
        let bytes = text.as_bytes();
        if end > start && bytes[end - 1] == b'\n' {
            end -= 1;
        }
        if end > start && bytes[end - 1] == b'\r' {
            end -= 1;
        }
        (start, end)
    }

    /// Position of a byte offset. Errors if the offset is past the end or
    /// not on a char boundary. An offset inside a `\r\n` maps to the line end.
    pub fn position(
        &self,
        text: &str,
        offset: usize,
        encoding: PositionEncoding,
    ) -> Result<Position, PositionError> {
        if offset > text.len() {
            return Err(PositionError::OffsetOutOfRange {
                offset,
                len: text.len(),
            });
        }
        if !text.is_char_boundary(offset) {
            return Err(PositionError::NotCharBoundary { offset });
        }
        let line = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let (start, end) = self.content_range(text, line);
        let character = count_units(&text[start..offset.clamp(start, end)], encoding);
        Ok(Position {
            line: line as u32,
            character: character as u32,
        })
    }

    /// Byte offset of a position. Errors if the line or character is out of
    /// range or the character falls inside a character (half a surrogate pair,
    /// the middle of a UTF-8 sequence). A position one line past the last line
    /// at character 0 is the end of the text (LSP allows it).
    pub fn offset(
        &self,
        text: &str,
        pos: Position,
        encoding: PositionEncoding,
    ) -> Result<usize, PositionError> {
        let line = pos.line as usize;
        if line >= self.n_lines() {
            if line == self.n_lines() && pos.character == 0 {
                return Ok(text.len());
            }
            return Err(PositionError::LineOutOfRange {
                line: pos.line,
                n_lines: self.n_lines() as u32,
            });
        }
        let (start, end) = self.content_range(text, line);
        let content = &text[start..end];
        let mut units = 0usize;
        let target = pos.character as usize;
        for (i, c) in content.char_indices() {
            if units == target {
                return Ok(start + i);
            }
            units += char_units(c, encoding);
            if units > target {
                return Err(PositionError::InsideCharacter {
                    line: pos.line,
                    character: pos.character,
                });
            }
        }
        if units == target {
            return Ok(end);
        }
        Err(PositionError::CharacterOutOfRange {
            line: pos.line,
            character: pos.character,
            line_len: units as u32,
        })
    }

    /// Like [`LineIndex::offset`] but never fails: a line past the end gives
    /// the end of the text, a character past the line's end gives the end of
    /// its content, a character inside a character gives that character's start.
    pub fn offset_clamped(&self, text: &str, pos: Position, encoding: PositionEncoding) -> usize {
        let line = pos.line as usize;
        if line >= self.n_lines() {
            return text.len();
        }
        let (start, end) = self.content_range(text, line);
        let mut units = 0usize;
        for (i, c) in text[start..end].char_indices() {
            let next = units + char_units(c, encoding);
            if next > pos.character as usize {
                return start + i;
            }
            units = next;
        }
        end
    }

    /// Like [`LineIndex::position`] but never fails: the offset is first
    /// clamped to the text and moved back to a char boundary.
    pub fn position_clamped(
        &self,
        text: &str,
        offset: usize,
        encoding: PositionEncoding,
    ) -> Position {
        let offset = crate::text::floor_char_boundary(text, offset);
        match self.position(text, offset, encoding) {
            Ok(pos) => pos,
            // Unreachable after clamping; fall back to the start.
            Err(_) => Position::new(0, 0),
        }
    }
}

fn char_units(c: char, encoding: PositionEncoding) -> usize {
    match encoding {
        PositionEncoding::Utf8 => c.len_utf8(),
        PositionEncoding::Utf16 => c.len_utf16(),
        PositionEncoding::Chars => 1,
    }
}

fn count_units(s: &str, encoding: PositionEncoding) -> usize {
    match encoding {
        PositionEncoding::Utf8 => s.len(),
        PositionEncoding::Utf16 => s.chars().map(char::len_utf16).sum(),
        PositionEncoding::Chars => s.chars().count(),
    }
}

/// One-shot [`LineIndex::position`].
pub fn offset_to_position(
    text: &str,
    offset: usize,
    encoding: PositionEncoding,
) -> Result<Position, PositionError> {
    LineIndex::new(text).position(text, offset, encoding)
}

/// One-shot [`LineIndex::offset`].
pub fn position_to_offset(
    text: &str,
    pos: Position,
    encoding: PositionEncoding,
) -> Result<usize, PositionError> {
    LineIndex::new(text).offset(text, pos, encoding)
}

/// One-shot [`LineIndex::offset_clamped`].
pub fn position_to_offset_clamped(text: &str, pos: Position, encoding: PositionEncoding) -> usize {
    LineIndex::new(text).offset_clamped(text, pos, encoding)
}

/// Convert a character count between encodings on one line's content, e.g.
/// a UTF-16 column to a char column. Clamped to the line's content.
pub fn convert_position(
    text: &str,
    pos: Position,
    from: PositionEncoding,
    to: PositionEncoding,
) -> Position {
    let index = LineIndex::new(text);
    let offset = index.offset_clamped(text, pos, from);
    index.position_clamped(text, offset, to)
}

/// Clamp a byte offset to the text and back to a char boundary.
pub fn clamp_offset(text: &str, offset: usize) -> usize {
    crate::text::floor_char_boundary(text, offset)
}
