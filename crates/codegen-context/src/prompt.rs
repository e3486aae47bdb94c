//! Fill-in-the-middle prompt assembly: prefix and suffix cut to a token budget
//! at syntactic boundaries, and snippets from other open documents.

use crate::document::ParsedDocument;
use crate::language::Language;
use crate::scope::{cursor_scope, items_spanning, CursorScope, ScopeItem};
use crate::text::{floor_char_boundary, is_ident_char, line_end, line_start, next_line_start};
use std::collections::{HashMap, HashSet};
use tree_sitter::Node;

/// Counts model tokens in a piece of text.
pub trait TokenCounter {
    fn count(&self, text: &str) -> usize;
}

/// About 3.5 bytes per token, rounded up: close enough for budgets in tests
/// and benchmarks; the engine passes a counter backed by the real tokenizer.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApproxTokenCounter;

impl TokenCounter for ApproxTokenCounter {
    fn count(&self, text: &str) -> usize {
        (text.len() * 2).div_ceil(7)
    }
}

/// Token budgets and snippet selection settings.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptConfig {
    pub max_prefix_tokens: usize,
    pub max_suffix_tokens: usize,
    /// Budget for all neighbour snippets together, file-separator headers included.
    pub max_snippet_tokens: usize,
    /// Lines per sliding window, for the query around the cursor and in neighbours.
    pub snippet_window_lines: usize,
    pub max_snippets: usize,
    /// Windows with a lower Jaccard similarity are not used.
    pub min_snippet_score: f32,
}

impl Default for PromptConfig {
    fn default() -> Self {
        PromptConfig {
            max_prefix_tokens: 1024,
            max_suffix_tokens: 256,
            max_snippet_tokens: 384,
            snippet_window_lines: 20,
            max_snippets: 3,
            min_snippet_score: 0.1,
        }
    }
}

/// Another open document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    pub path: String,
    pub text: String,
}

/// A window of a neighbour document chosen for the prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct Snippet {
    pub path: String,
    pub text: String,
    /// Jaccard similarity of its identifiers with those around the cursor.
    pub score: f32,
}

/// How much the model should write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompletionMode {
    /// Finish the current line only (code follows the cursor, or in a comment/string).
    SingleLine,
    /// A block: the cursor is on an empty line or after a block opener.
    MultiLine,
}

impl CompletionMode {
    /// `single_line` or `multi_line`.
    pub fn as_str(self) -> &'static str {
        match self {
            CompletionMode::SingleLine => "single_line",
            CompletionMode::MultiLine => "multi_line",
        }
    }
}

/// The pieces of a FIM prompt, without model special tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    pub prefix: String,
    pub suffix: String,
    /// In rendering order: least similar first, the most similar last (nearest the file).
    pub snippets: Vec<Snippet>,
    pub scope: CursorScope,
    pub mode: CompletionMode,
    /// What could not be done (cursor clamped, prefix cut, header dropped...).
    pub notes: Vec<String>,
}

/// Render snippets in the repository format, as literal text with
/// `separator` standing for the model's file-separator token:
/// `{separator}{path}\n{text}\n` per snippet, then `{separator}{current_path}\n`
/// (for previews and tests; the engine renders the real token).
pub fn render_repo_context(snippets: &[Snippet], current_path: &str, separator: &str) -> String {
    let mut out = String::new();
    for snippet in snippets {
        out.push_str(separator);
        out.push_str(&render_one(&snippet.path, &snippet.text));
    }
    out.push_str(separator);
    out.push_str(current_path);
    out.push('\n');
    out
}

/// One snippet's text as the prompt holds it, without the separator token
/// (whose single token the budget counts separately).
fn render_one(path: &str, text: &str) -> String {
    format!("{path}\n{text}\n")
}

/// Assemble the prompt for a cursor at byte offset `cursor`.
pub fn build_prompt(
    doc: &ParsedDocument,
    cursor: usize,
    path: &str,
    neighbours: &[Neighbour],
    cfg: &PromptConfig,
    counter: &dyn TokenCounter,
) -> Prompt {
    let scope = cursor_scope(doc, cursor);
    let mut notes = scope.notes.clone();
    let cursor = scope.cursor;
    let prefix = build_prefix(doc, &scope, cfg.max_prefix_tokens, counter, &mut notes);
    let suffix = build_suffix(doc, cursor, cfg.max_suffix_tokens, counter, &mut notes);
    let snippets = select_snippets(doc.text(), cursor, path, neighbours, cfg, counter);
    let mode = completion_mode(doc.text(), &scope);
    Prompt {
        prefix,
        suffix,
        snippets,
        scope,
        mode,
        notes,
    }
}

/// Multi-line on an empty line or right after a block opener; single line otherwise.
pub(crate) fn completion_mode(text: &str, scope: &CursorScope) -> CompletionMode {
    let place = scope.place;
    if place.mid_line || place.in_comment || (place.in_string && !place.at_line_start) {
        return CompletionMode::SingleLine;
    }
    if place.at_empty_line {
        return CompletionMode::MultiLine;
    }
    let before = text[line_start(text, scope.cursor)..scope.cursor].trim_end();
    let opener = match scope.language {
        Language::Python => before.ends_with(':'),
        _ => before.ends_with(['{', '(', '[']) || before.ends_with("=>"),
    };
    if opener {
        CompletionMode::MultiLine
    } else {
        CompletionMode::SingleLine
    }
}

/// Lines counted together while walking back: the real tokenizer costs
/// per call, so whole chunks are counted and only the last one line by line.
const LINES_PER_CHUNK: usize = 16;

/// The earliest line start such that `text[start..cursor]` fits in `budget`
/// tokens (summing chunk counts), or `None` if not even the cursor's line does.
fn earliest_fitting_start(
    text: &str,
    cursor: usize,
    budget: usize,
    counter: &dyn TokenCounter,
) -> Option<usize> {
    let mut used = 0;
    let mut end = cursor;
    let mut best = None;
    loop {
        // A chunk of up to LINES_PER_CHUNK lines ending at `end`: the cursor's
        // (partial) line first, then whole lines before it.
        let last_line = if end == cursor {
            line_start(text, cursor)
        } else {
            line_start(text, end - 1)
        };
        let mut start = last_line;
        for _ in 1..LINES_PER_CHUNK {
            if start == 0 {
                break;
            }
            start = line_start(text, start - 1);
        }
        let n = counter.count(&text[start..end]);
        if used + n <= budget {
            used += n;
            best = Some(start);
            if start == 0 {
                return best;
            }
            end = start;
            continue;
        }
        // Refine inside this chunk, line by line from its end.
        let mut line = last_line;
        let mut line_end = end;
        loop {
            let n = counter.count(&text[line..line_end]);
            if used + n > budget {
                return best;
            }
            used += n;
            best = Some(line);
            if line <= start || line == 0 {
                return best;
            }
            line_end = line;
            line = line_start(text, line - 1);
        }
    }
}

fn build_prefix(
    doc: &ParsedDocument,
    scope: &CursorScope,
    budget: usize,
    counter: &dyn TokenCounter,
    notes: &mut Vec<String>,
) -> String {
    let text = doc.text();
    let cursor = scope.cursor;
    let Some(earliest) = earliest_fitting_start(text, cursor, budget, counter) else {
        // One huge line (minified code): keep its end, from a word boundary.
        notes.push("prefix: the cursor's line alone is over budget; cut inside it".to_string());
        let ls = line_start(text, cursor);
        let mut start = floor_char_boundary(text, cursor.saturating_sub(budget * 3)).max(ls);
        while start < cursor && counter.count(&text[start..cursor]) > budget {
            start = floor_char_boundary(text, start + (cursor - start) / 4 + 1);
        }
        return text[word_boundary_after(text, start, cursor)..cursor].to_string();
    };
    if earliest == 0 {
        return text[..cursor].to_string();
    }

    // The prefix is cut: keep a header of imports and the enclosing
    // signatures, then the code right before the cursor.
    let mut imports: Vec<(usize, usize)> = Vec::new();
    for import in &scope.imports {
        imports.push((line_start(text, import.start_byte), import.end_byte));
    }
    let signatures = scope
        .enclosing
        .iter()
        .map(|item| signature_range(text, item))
        .collect();
    let parts = HeaderParts {
        imports,
        signatures,
    };
    let cursor_line = line_start(text, cursor);
    let step = prefix_step(budget);
    let snap = |c: usize| {
        // Skip at most half a step (or two lines) to reach a whole statement:
        // the start depends on the cursor only when the cursor is that close,
        // and the next jump still frees at least about half a step.
        let two_lines = next_line_start(text, next_line_start(text, c));
        let limit = (c + step / 2).max(two_lines).min(cursor_line);
        let snapped = doc
            .tree()
            .map_or(c, |t| boundary_at_or_after(t.root_node(), text, c, limit));
        snapped.min(cursor_line).max(c)
    };
    let fit = |start: usize| {
        // Also the items the kept code starts inside of, when the cursor is
        // no longer in them (or the tree lost them around the cursor).
        let spanning: Vec<_> = items_spanning(doc, start)
            .iter()
            .map(|item| signature_range(text, item))
            .collect();
        let header = parts.render(text, start, &spanning, budget, counter);
        let fits = header.tokens + counter.count(&text[start..cursor]) <= budget;
        (fits, header)
    };
    // The earliest candidate whose code, with the header it needs, fits;
    // `earliest` (from summed chunk counts) tells where to look.
    let mut c = candidate_at(text, earliest / step, step);
    while c > 0 {
        let prev = previous_candidate(text, c, step);
        if !fit(snap(prev)).0 {
            break;
        }
        c = prev;
    }
    let (tail_start, header) = loop {
        if c >= cursor_line {
            let mut header = fit(cursor_line).1;
            if header.tokens + counter.count(&text[cursor_line..cursor]) > budget {
                header = RenderedHeader::default();
                header
                    .notes
                    .push("prefix: header left out (too long for the budget)");
            }
            break (cursor_line, header);
        }
        let start = snap(c);
        let (fits, header) = fit(start);
        if fits {
            break (start, header);
        }
        c = next_candidate(text, c, step);
    };
    notes.extend(header.notes.iter().map(|n| n.to_string()));
    let mut prefix = header.text;
    notes.push(format!(
        "prefix cut: kept {} of {} bytes before the cursor, plus a {}-byte header",
        cursor - tail_start,
        cursor,
        prefix.len()
    ));
    prefix.push_str(&text[tail_start..cursor]);
    prefix
}

/// Bytes between the anchors of the prefix's candidate starts: about a
/// fifth of the budget, at some 3.5 bytes a token.
///
/// The kept code starts at a candidate, the first line start at or after a
/// multiple of this many bytes in the document. Typing at the cursor moves
/// no candidate before it, so the start (and with it the header and every
/// byte before the cursor's line) stays put until the code no longer fits;
/// then it jumps to the next candidate, which frees about a fifth of the
/// budget. On average about a tenth of the budget goes unused to this.
pub(crate) fn prefix_step(budget: usize) -> usize {
    (budget * 7 / 10).max(1)
}

/// The candidate start with index `m`: the first line start at or after
/// `m * step` (or the text's end).
fn candidate_at(text: &str, m: usize, step: usize) -> usize {
    let at = m.saturating_mul(step).min(text.len());
    if at == 0 || text.as_bytes()[at - 1] == b'\n' {
        at
    } else {
        next_line_start(text, at)
    }
}

/// The first candidate after the line start `c`.
fn next_candidate(text: &str, c: usize, step: usize) -> usize {
    candidate_at(text, c / step + 1, step)
}

/// The last candidate before the line start `c` (> 0).
fn previous_candidate(text: &str, c: usize, step: usize) -> usize {
    let mut m = (c - 1) / step;
    loop {
        let p = candidate_at(text, m, step);
        if p < c || m == 0 {
            return p.min(c);
        }
        m -= 1;
    }
}

/// An item's piece of the header: (start of its header line, end with its
/// docstring, end of its signature).
fn signature_range(text: &str, item: &ScopeItem) -> (usize, usize, usize) {
    let sig_end = item.start_byte + item.signature.len();
    let end = match item.docstring_range {
        Some((_, doc_end)) if doc_end > sig_end => doc_end,
        _ => sig_end,
    };
    (line_start(text, item.header_start), end, sig_end)
}

/// What the prefix's header can hold: import ranges, and per item enclosing
/// the cursor its [`signature_range`].
struct HeaderParts {
    imports: Vec<(usize, usize)>,
    signatures: Vec<(usize, usize, usize)>,
}

#[derive(Default)]
struct RenderedHeader {
    text: String,
    tokens: usize,
    notes: Vec<&'static str>,
}

impl HeaderParts {
    /// The header above code kept from `tail_start`: the pieces that lie
    /// before it. Over half the budget, docstrings go, then imports.
    fn render(
        &self,
        text: &str,
        tail_start: usize,
        spanning: &[(usize, usize, usize)],
        budget: usize,
        counter: &dyn TokenCounter,
    ) -> RenderedHeader {
        let mut signatures = self.signatures.clone();
        for r in spanning {
            // The same item from the tree and from recovery: the most of it.
            match signatures.iter_mut().find(|s| s.0 == r.0) {
                Some(s) => *s = (s.0, s.1.max(r.1), s.2.max(r.2)),
                None => signatures.push(*r),
            }
        }
        let mut imports: &[(usize, usize)] = &self.imports;
        let mut notes = Vec::new();
        loop {
            let text = render_header(text, imports, &signatures, tail_start);
            let tokens = counter.count(&text);
            if tokens * 2 > budget {
                if signatures.iter().any(|r| r.1 != r.2) {
                    for r in &mut signatures {
                        r.1 = r.2;
                    }
                    notes.push("prefix: docstring left out of the kept header");
                    continue;
                }
                if !imports.is_empty() {
                    imports = &[];
                    notes.push("prefix: imports left out (too long for the budget)");
                    continue;
                }
            }
            return RenderedHeader {
                text,
                tokens,
                notes,
            };
        }
    }
}

/// First offset in `start..=limit` that does not split a word or token:
/// right after a space, or `start` itself when it already is at one.
fn word_boundary_after(text: &str, start: usize, limit: usize) -> usize {
    if start == 0 || text[..start].ends_with(char::is_whitespace) {
        return start;
    }
    match text[start..limit].find(char::is_whitespace) {
        Some(i) => {
            let ws = start + i;
            ws + text[ws..].chars().next().map_or(0, char::len_utf8)
        }
        None => start,
    }
}

/// Last offset in `limit..=end` that does not split a word or token: at a space.
fn word_boundary_before(text: &str, limit: usize, end: usize) -> usize {
    if end == text.len() || text[end..].starts_with(char::is_whitespace) {
        return end;
    }
    text[limit..end]
        .rfind(char::is_whitespace)
        .map_or(end, |i| limit + i)
}

/// Document slices (each extended to whole lines) that lie before `tail_start`.
fn render_header(
    text: &str,
    imports: &[(usize, usize)],
    signatures: &[(usize, usize, usize)],
    tail_start: usize,
) -> String {
    let mut ranges: Vec<(usize, usize)> = imports
        .iter()
        .copied()
        .chain(signatures.iter().map(|&(s, e, _)| (s, e)))
        .map(|(s, e)| (s, next_line_start(text, line_end(text, e.max(s)))))
        .filter(|&(_, e)| e <= tail_start)
        .collect();
    ranges.sort_unstable();
    let mut out = String::new();
    let mut covered = 0;
    for (s, e) in ranges {
        let s = s.max(covered);
        if s < e {
            out.push_str(&text[s..e]);
            if !out.ends_with('\n') {
                out.push('\n');
            }
            covered = e;
        }
    }
    out
}

/// First line start at or after `offset` where a syntax node starts, going
/// into the node that spans `offset`.
fn boundary_at_or_after(root: Node, text: &str, offset: usize, limit: usize) -> usize {
    let mut node = root;
    'descend: loop {
        let mut cursor = node.walk();
        if cursor.goto_first_child_for_byte(offset).is_none() {
            break;
        }
        loop {
            let child = cursor.node();
            let start = child.start_byte();
            if start >= offset {
                let ls = line_start(text, start);
                if text[ls..start].trim().is_empty() && ls >= offset {
                    return ls;
                }
            } else if child.end_byte() > offset && child.child_count() > 0 {
                // Prefer the next whole statement at this level when it still
                // lies before the cursor's line; else cut inside this one.
                let mut next = child.next_sibling();
                while let Some(n) = next {
                    let ls = line_start(text, n.start_byte());
                    if n.start_byte() > limit {
                        break;
                    }
                    if text[ls..n.start_byte()].trim().is_empty() {
                        return ls;
                    }
                    next = n.next_sibling();
                }
                node = child;
                continue 'descend;
            } else if child.end_byte() > offset {
                // A leaf spanning the cut (a long string): go past it.
                return next_line_start(text, child.end_byte());
            }
            if !cursor.goto_next_sibling() {
                break 'descend;
            }
        }
    }
    if text[..offset].ends_with('\n') || offset == 0 {
        offset
    } else {
        next_line_start(text, offset)
    }
}

/// Last line end at or before `offset` where a syntax node ends.
fn boundary_at_or_before(root: Node, text: &str, offset: usize) -> usize {
    let mut node = root;
    let mut best = None;
    'descend: loop {
        let mut cursor = node.walk();
        if !cursor.goto_first_child() {
            break;
        }
        let mut last_complete = None;
        loop {
            let child = cursor.node();
            if child.start_byte() >= offset {
                break;
            }
            if child.end_byte() <= offset {
                last_complete = Some(child.end_byte());
            } else if child.child_count() > 0 {
                if let Some(end) = last_complete {
                    best = Some(end);
                }
                node = child;
                continue 'descend;
            } else {
                best = last_complete.or(best);
                break 'descend;
            }
            if !cursor.goto_next_sibling() {
                break;
            }
        }
        best = last_complete.or(best);
        break;
    }
    match best {
        Some(end) => next_line_start(text, line_end(text, end)).min(offset),
        None => offset,
    }
}

fn build_suffix(
    doc: &ParsedDocument,
    cursor: usize,
    budget: usize,
    counter: &dyn TokenCounter,
    notes: &mut Vec<String>,
) -> String {
    let text = doc.text();
    let mut used = 0;
    let mut end = cursor;
    while end < text.len() {
        let next = next_line_start(text, end);
        let n = counter.count(&text[end..next]);
        if used + n > budget {
            break;
        }
        used += n;
        end = next;
    }
    if end == text.len() {
        return text[cursor..].to_string();
    }
    if end == cursor {
        // One huge line: keep its start, up to a word boundary.
        notes.push(
            "suffix: the rest of the cursor's line alone is over budget; cut inside it".to_string(),
        );
        let le = line_end(text, cursor);
        let mut end = floor_char_boundary(text, cursor + budget * 3).min(le);
        while end > cursor && counter.count(&text[cursor..end]) > budget {
            end = floor_char_boundary(text, end - (end - cursor) / 4 - 1);
        }
        return text[cursor..word_boundary_before(text, cursor, end)].to_string();
    }
    let first_line_end = next_line_start(text, cursor);
    let snapped = doc
        .tree()
        .map_or(end, |t| boundary_at_or_before(t.root_node(), text, end));
    let end = if snapped >= first_line_end {
        snapped
    } else {
        end
    };
    notes.push(format!(
        "suffix cut: kept {} of {} bytes after the cursor",
        end - cursor,
        text.len() - cursor
    ));
    text[cursor..end].to_string()
}

const STOPWORDS: &[&str] = &[
    "if",
    "else",
    "elif",
    "for",
    "while",
    "return",
    "def",
    "fn",
    "let",
    "const",
    "var",
    "function",
    "class",
    "import",
    "from",
    "in",
    "is",
    "not",
    "and",
    "or",
    "self",
    "this",
    "true",
    "false",
    "True",
    "False",
    "None",
    "null",
    "nil",
    "pub",
    "mut",
    "use",
    "struct",
    "impl",
    "func",
    "package",
    "type",
    "interface",
    "export",
    "async",
    "await",
    "new",
    "with",
    "as",
    "try",
    "except",
    "finally",
    "lambda",
    "pass",
    "break",
    "continue",
    "match",
    "case",
    "the",
    "of",
    "to",
    "string",
    "int",
    "str",
    "err",
    "Self",
    "crate",
    "super",
    "go",
    "range",
    "raise",
];

fn identifiers(line: &str) -> impl Iterator<Item = &str> {
    line.split(|c: char| !is_ident_char(c))
        .filter(|w| w.len() >= 2 && !w.starts_with(|c: char| c.is_ascii_digit()))
        .filter(|w| !STOPWORDS.contains(w))
}

/// Pick the most similar window of each neighbour (Jaccard over identifier
/// sets, as in Copilot's neighbouring-tab context) within the snippet budget.
fn select_snippets(
    text: &str,
    cursor: usize,
    path: &str,
    neighbours: &[Neighbour],
    cfg: &PromptConfig,
    counter: &dyn TokenCounter,
) -> Vec<Snippet> {
    if neighbours.is_empty() || cfg.max_snippets == 0 || cfg.max_snippet_tokens == 0 {
        return Vec::new();
    }
    let window = cfg.snippet_window_lines.max(1);
    // Query: the lines before the cursor's line, the rest of its line after
    // the cursor, and a few lines after. Not what is being typed on the
    // cursor's line: the snippets come first in the prompt, and a change
    // there would make the model read the whole prompt again.
    let cursor_line = line_start(text, cursor);
    let mut start = cursor_line;
    for _ in 0..window {
        if start == 0 {
            break;
        }
        start = line_start(text, start - 1);
    }
    let mut end = line_end(text, cursor);
    for _ in 0..window / 4 {
        if end >= text.len() {
            break;
        }
        end = line_end(text, next_line_start(text, end));
    }
    let query: HashSet<&str> = identifiers(&text[start..cursor_line])
        .chain(identifiers(&text[cursor..end]))
        .collect();
    if query.is_empty() {
        return Vec::new();
    }

    let mut candidates: Vec<(f32, &Neighbour, Vec<&str>, usize, usize)> = Vec::new();
    for neighbour in neighbours {
        if neighbour.path == path || neighbour.text.trim().is_empty() {
            continue;
        }
        // Windows of non-blank lines; blank lines are dropped from snippets.
        let lines: Vec<&str> = neighbour
            .text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        if let Some((score, first, last)) = best_window(&lines, &query, window) {
            if score >= cfg.min_snippet_score {
                candidates.push((score, neighbour, lines, first, last));
            }
        }
    }
    candidates.sort_by(|a, b| b.0.total_cmp(&a.0));

    let mut chosen = Vec::new();
    let mut remaining = cfg.max_snippet_tokens;
    for (score, neighbour, lines, first, mut last) in candidates {
        if chosen.len() == cfg.max_snippets {
            break;
        }
        while last > first {
            let body = lines[first..last].join("\n");
            let cost = counter.count(&render_one(&neighbour.path, &body)) + 1;
            if cost <= remaining {
                remaining -= cost;
                chosen.push(Snippet {
                    path: neighbour.path.clone(),
                    text: body,
                    score,
                });
                break;
            }
            last -= 1;
        }
    }
    chosen.reverse();
    chosen
}

/// Best window `[first, last)` of `window` lines by Jaccard similarity.
fn best_window(
    lines: &[&str],
    query: &HashSet<&str>,
    window: usize,
) -> Option<(f32, usize, usize)> {
    let per_line: Vec<Vec<&str>> = lines.iter().map(|l| identifiers(l).collect()).collect();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    let mut shared = 0usize;
    let mut best: Option<(f32, usize, usize)> = None;
    let n = lines.len();
    let window = window.min(n.max(1));
    for (i, ids) in per_line.iter().enumerate() {
        for w in ids {
            add(&mut counts, &mut shared, query, w, 1);
        }
        if i >= window {
            for w in &per_line[i - window] {
                add(&mut counts, &mut shared, query, w, -1);
            }
        }
        if i + 1 >= window || i + 1 == n {
            let union = counts.len() + query.len() - shared;
            let score = if union == 0 {
                0.0
            } else {
                shared as f32 / union as f32
            };
            let first = (i + 1).saturating_sub(window);
            if best.is_none_or(|b| score > b.0) {
                best = Some((score, first, i + 1));
            }
        }
    }
    best
}

fn add<'a>(
    counts: &mut HashMap<&'a str, usize>,
    shared: &mut usize,
    query: &HashSet<&str>,
    w: &'a str,
    delta: isize,
) {
    let entry = counts.entry(w).or_insert(0);
    let before = *entry;
    *entry = (before as isize + delta).max(0) as usize;
    let after = *entry;
    if query.contains(w) {
        if before == 0 && after > 0 {
            *shared += 1;
        } else if before > 0 && after == 0 {
            *shared -= 1;
        }
    }
    if after == 0 {
        counts.remove(w);
    }
}
