//! Open documents: text kept parsed and edited incrementally, positions in
//! the negotiated encoding, and the typing rhythm that drives the debounce.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use codegen_context::position::{LineIndex, Position as ContextPosition, PositionEncoding};
use codegen_context::{Language, Neighbour};
use codegen_engine::Document;
use tower_lsp_server::ls_types::{Position, Range, TextDocumentContentChangeEvent, Uri};

/// Documents larger than this are not offered as cross-file context.
const MAX_NEIGHBOUR_BYTES: usize = 256 << 10;

pub(crate) struct OpenDocument {
    pub doc: Arc<Document>,
    pub version: i32,
    pub language_id: String,
    /// The path shown to the model (from the URI).
    pub path: String,
    last_change: Option<Instant>,
    /// Smoothed time between edits, in milliseconds.
    pub typing_interval_ms: Option<f64>,
    /// Increases with every completion request; a request whose number is
    /// no longer the latest after its debounce is superseded.
    pub request_seq: u64,
}

#[derive(Default)]
pub(crate) struct Documents {
    open: HashMap<String, OpenDocument>,
}

pub(crate) fn to_context(pos: Position) -> ContextPosition {
    ContextPosition::new(pos.line, pos.character)
}

/// The file path of a URI, for prompts (its text after `file://`).
pub(crate) fn uri_path(uri: &Uri) -> String {
    let s = uri.as_str();
    s.strip_prefix("file://").unwrap_or(s).to_string()
}

pub(crate) fn language_of(language_id: &str, path: &str) -> Option<Language> {
    Language::from_lsp_id(language_id).or_else(|| Language::from_path(path))
}

impl Documents {
    pub fn open(&mut self, uri: &Uri, language_id: &str, version: i32, text: String) {
        let path = uri_path(uri);
        let language = language_of(language_id, &path);
        let request_seq = self.open.get(uri.as_str()).map_or(0, |d| d.request_seq);
        self.open.insert(
            uri.as_str().to_string(),
            OpenDocument {
                doc: Arc::new(Document::new(text, language)),
                version,
                language_id: language_id.to_string(),
                path,
                last_change: None,
                typing_interval_ms: None,
                request_seq,
            },
        );
    }

    pub fn close(&mut self, uri: &Uri) -> bool {
        self.open.remove(uri.as_str()).is_some()
    }

    pub fn get(&self, uri: &Uri) -> Option<&OpenDocument> {
        self.open.get(uri.as_str())
    }

    pub fn get_mut(&mut self, uri: &Uri) -> Option<&mut OpenDocument> {
        self.open.get_mut(uri.as_str())
    }

    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// Applies changes in order. Ranges outside the text are clamped to it
    /// and reversed ranges put in order; the returned messages say so.
    /// `None` when the document is not open.
    pub fn change(
        &mut self,
        uri: &Uri,
        version: i32,
        changes: Vec<TextDocumentContentChangeEvent>,
        encoding: PositionEncoding,
    ) -> Option<Vec<String>> {
        let entry = self.open.get_mut(uri.as_str())?;
        let mut warnings = Vec::new();
        // Copy-on-write: a request holding a snapshot keeps its version.
        let doc = Arc::make_mut(&mut entry.doc);
        for change in changes {
            match change.range {
                None => {
                    let language = doc.language();
                    *doc = Document::new(change.text, language);
                }
                Some(range) => {
                    let (start, end) = edit_range(doc.text(), range, encoding, &mut warnings);
                    doc.apply_edit(start, end, &change.text);
                }
            }
        }
        entry.version = version;
        let now = Instant::now();
        if let Some(last) = entry.last_change {
            let interval = now.duration_since(last).as_secs_f64() * 1000.0;
            if interval < 1500.0 {
                entry.typing_interval_ms = Some(match entry.typing_interval_ms {
                    Some(ema) => 0.7 * ema + 0.3 * interval,
                    None => interval,
                });
            }
        }
        entry.last_change = Some(now);
        Some(warnings)
    }

    /// The other open documents, as cross-file context.
    pub fn neighbours(&self, except: &Uri) -> Vec<Neighbour> {
        let mut out: Vec<Neighbour> = self
            .open
            .iter()
            .filter(|(uri, d)| {
                uri.as_str() != except.as_str() && d.doc.text().len() <= MAX_NEIGHBOUR_BYTES
            })
            .map(|(_, d)| Neighbour {
                path: d.path.clone(),
                text: d.doc.text().to_string(),
            })
            .collect();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }
}

fn edit_range(
    text: &str,
    range: Range,
    encoding: PositionEncoding,
    warnings: &mut Vec<String>,
) -> (usize, usize) {
    let index = LineIndex::new(text);
    let mut offset = |pos: Position| match index.offset(text, to_context(pos), encoding) {
        Ok(offset) => offset,
        Err(err) => {
            warnings.push(format!(
                "edit position {}:{}: {err}; clamped",
                pos.line, pos.character
            ));
            index.offset_clamped(text, to_context(pos), encoding)
        }
    };
    let start = offset(range.start);
    let end = offset(range.end);
    if start > end {
        warnings.push(format!(
            "edit range {}:{}-{}:{} ends before it starts; reordered",
            range.start.line, range.start.character, range.end.line, range.end.character
        ));
        (end, start)
    } else {
        (start, end)
    }
}
