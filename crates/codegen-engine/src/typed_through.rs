//! The typed-through cache: while the user types characters that match the
//! suggestion on screen, the rest of that suggestion is the answer, with no
//! model work. The first character that diverges clears it.

use std::collections::HashMap;
use std::sync::Arc;

use crate::document::Document;

struct Shown {
    doc: Arc<Document>,
    cursor: usize,
    text: String,
    id: String,
}

/// What remains of a suggestion after the characters typed through it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypedThrough {
    /// The rest of the suggestion, to insert at the new cursor.
    pub rest: String,
    /// Bytes typed since the suggestion was shown.
    pub n_typed: usize,
    /// Identifier of the original suggestion.
    pub id: String,
}

/// The last suggestion shown per document.
#[derive(Default)]
pub struct TypedThroughCache {
    shown: HashMap<String, Shown>,
}

impl TypedThroughCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Remembers that `text` was suggested at byte `cursor` of `doc`.
    pub fn remember(&mut self, key: &str, doc: Arc<Document>, cursor: usize, text: &str, id: &str) {
        if text.is_empty() {
            self.shown.remove(key);
            return;
        }
        self.shown.insert(
            key.to_string(),
            Shown {
                doc,
                cursor,
                text: text.to_string(),
                id: id.to_string(),
            },
        );
    }

    pub fn forget(&mut self, key: &str) {
        self.shown.remove(key);
    }

    /// The rest of the suggestion shown for `key`, if `doc` is the document
    /// it was shown in plus a prefix of it typed at its cursor and `cursor`
    /// sits right after what was typed. Anything else clears the entry.
    pub fn lookup(&mut self, key: &str, doc: &Document, cursor: usize) -> Option<TypedThrough> {
        let shown = self.shown.get(key)?;
        let hit = typed_through(shown, doc.text(), cursor);
        if hit.is_none() {
            self.shown.remove(key);
        }
        hit
    }
}

fn typed_through(shown: &Shown, new: &str, cursor: usize) -> Option<TypedThrough> {
    let old = shown.doc.text();
    let n_typed = new.len().checked_sub(old.len())?;
    if cursor != shown.cursor + n_typed {
        return None;
    }
    let typed = new.get(shown.cursor..cursor)?;
    let same_before = new.get(..shown.cursor)? == old.get(..shown.cursor)?;
    let same_after = new.get(cursor..)? == old.get(shown.cursor..)?;
    if !same_before || !same_after {
        return None;
    }
    let rest = shown.text.strip_prefix(typed)?;
    if rest.is_empty() {
        return None;
    }
    Some(TypedThrough {
        rest: rest.to_string(),
        n_typed,
        id: shown.id.clone(),
    })
}
