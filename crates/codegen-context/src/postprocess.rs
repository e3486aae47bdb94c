//! Post-processing of raw model output into the text to insert at the cursor.

use crate::document::ParsedDocument;
use crate::language::Language;
use crate::prompt::CompletionMode;
use crate::scope::{clamp_cursor, cursor_scope, CursorScope};
use crate::text::{
    detect_indent, detect_line_ending, indent_width, is_ident_char, leading_ws, line_end,
    line_start, next_line_start, IndentStyle,
};
use tree_sitter::Node;

/// Turn raw model output into the text to insert at `cursor` (the engine
/// has already cut it at any model marker such as an end-of-text token): cut at the end
/// of the enclosing block, keep one line in single-line mode, drop a tail
/// that repeats the code after the cursor and looping repeated lines, close
/// brackets the completion opened, and follow the file's indentation and
/// line endings.
pub fn postprocess(doc: &ParsedDocument, cursor: usize, raw: &str, mode: CompletionMode) -> String {
    let text = doc.text();
    let lang = doc.language();
    let cursor = clamp_cursor(text, cursor, &mut Vec::new());
    let scope = cursor_scope(doc, cursor);
    let ctx = Ctx::new(doc, &scope);

    let mut s = raw.replace("\r\n", "\n");
    s = ctx.fix_indentation(&s);
    let out = match mode {
        CompletionMode::SingleLine => ctx.single_line(&s),
        CompletionMode::MultiLine => {
            let mut s = if lang.uses_indentation_blocks() {
                ctx.cut_python_block(&s)
            } else {
                ctx.cut_brace_block(&s)
            };
            if let Some(header_only) = ctx.code_continues_at_cursor_level() {
                s = ctx.first_statement(&s, header_only);
            }
            s = ctx.cut_suffix_repeat(&s);
            s = cut_repeated_lines(&s);
            s.truncate(s.trim_end().len());
            if !ctx.line_suffix.trim().is_empty() {
                s = ctx.strip_line_suffix_dup(&s);
            }
            ctx.close_brackets(&s, true)
        }
    };
    if ctx.line_ending == "\r\n" {
        out.replace('\n', "\r\n")
    } else {
        out
    }
}

struct Ctx<'a> {
    lang: Language,
    text: &'a str,
    cursor: usize,
    line_prefix: &'a str,
    line_suffix: &'a str,
    style: Option<IndentStyle>,
    tab_width: usize,
    line_ending: &'static str,
    /// Indentation (in columns) of the statement the cursor is in.
    base_indent: usize,
    /// The enclosing `{`/`(`/`[` around the cursor already has its closer.
    enclosing_closed: bool,
    in_function: bool,
}

impl<'a> Ctx<'a> {
    fn new(doc: &'a ParsedDocument, scope: &CursorScope) -> Ctx<'a> {
        let text = doc.text();
        let cursor = scope.cursor;
        let ls = line_start(text, cursor);
        let line_prefix = &text[ls..cursor];
        let line_suffix = &text[cursor..line_end(text, cursor)];
        let style = detect_indent(text);
        let tab_width = style.map_or(4, |s| s.width());
        // Whitespace-only prefix: the cursor column; else the line's indentation.
        let base_indent = indent_width(line_prefix, tab_width);
        let enclosing_closed = doc
            .tree()
            .is_some_and(|t| enclosing_bracket_closed(t.root_node(), cursor));
        Ctx {
            lang: doc.language(),
            text,
            cursor,
            line_prefix,
            line_suffix,
            style,
            tab_width,
            line_ending: detect_line_ending(text),
            base_indent,
            enclosing_closed,
            in_function: scope.function.is_some()
                && scope.class.as_ref().is_none_or(|c| {
                    scope
                        .function
                        .as_ref()
                        .is_some_and(|f| f.start_byte > c.start_byte)
                }),
        }
    }

    /// Indentation of completion line `i` in columns (line 0 continues the cursor's line).
    fn indent_of(&self, i: usize, line: &str) -> usize {
        if i == 0 {
            if self.line_prefix.trim().is_empty() {
                self.base_indent + indent_width(line, self.tab_width)
            } else {
                self.base_indent
            }
        } else {
            indent_width(line, self.tab_width)
        }
    }

    /// Re-indent lines after the first to the file's style: tabs vs spaces,
    /// and the file's width when the model used another one.
    fn fix_indentation(&self, s: &str) -> String {
        let Some(style) = self.style else {
            return s.to_string();
        };
        let lines: Vec<&str> = s.split('\n').collect();
        if lines.len() < 2 {
            return s.to_string();
        }
        let model_uses_spaces = lines[1..].iter().any(|l| leading_ws(l).contains(' '));
        let model_uses_tabs = lines[1..].iter().any(|l| leading_ws(l).contains('\t'));
        // Model's indent unit: smallest positive step between consecutive lines.
        let mut prev = self.indent_of(0, lines[0]);
        let mut unit = usize::MAX;
        for line in &lines[1..] {
            if line.trim().is_empty() {
                continue;
            }
            let ind = indent_width(line, self.tab_width);
            if ind > prev {
                unit = unit.min(ind - prev);
            }
            prev = ind;
        }
        let base = self.base_indent as isize;
        let rescale = match style {
            IndentStyle::Spaces(w) if model_uses_spaces && unit != usize::MAX && unit != w => {
                // Lines dedented below the cursor's block are cut later.
                lines[1..].iter().filter(|l| !l.trim().is_empty()).all(|l| {
                    let rel = indent_width(l, self.tab_width) as isize - base;
                    rel < 0 || rel % unit as isize == 0
                })
            }
            IndentStyle::Tabs => model_uses_spaces,
            _ => false,
        };
        let tabs_to_spaces = model_uses_tabs && matches!(style, IndentStyle::Spaces(_));
        if !rescale && !tabs_to_spaces {
            return s.to_string();
        }
        let model_unit = if unit == usize::MAX { 4 } else { unit };
        let mut out = String::with_capacity(s.len());
        for (i, line) in lines.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            if i == 0 || line.trim().is_empty() {
                out.push_str(if i == 0 {
                    line
                } else {
                    line.trim_end_matches([' ', '\t'])
                });
                continue;
            }
            let body = &line[leading_ws(line).len()..];
            match style {
                IndentStyle::Tabs => {
                    let (tabs, spaces) = split_ws(leading_ws(line));
                    let levels = tabs + spaces / model_unit;
                    out.push_str(&"\t".repeat(levels));
                    out.push_str(&" ".repeat(spaces % model_unit));
                }
                IndentStyle::Spaces(w) => {
                    let (tabs, spaces) = split_ws(leading_ws(line));
                    let mut cols = tabs * w + spaces;
                    if rescale {
                        let rel = cols as isize - base;
                        let new = base + rel / model_unit as isize * w as isize;
                        cols = new.max(0) as usize;
                    }
                    out.push_str(&" ".repeat(cols));
                }
            }
            out.push_str(body);
        }
        out
    }

    fn single_line(&self, s: &str) -> String {
        let first = s.split('\n').next().unwrap_or("");
        let mut out = if self.line_suffix.trim().is_empty() {
            first.trim_end().to_string()
        } else {
            self.strip_line_suffix_dup(first)
        };
        if self.line_prefix.trim().is_empty() && self.line_suffix.trim().is_empty() {
            // Nothing else on the line: fine to close what the completion opened.
            out = self.close_brackets(&out, false);
        } else if line_balanced(self.line_prefix, self.line_suffix, self.lang) {
            out = self.close_brackets(&out, false);
        }
        out
    }

    /// Drop the tail of a single line that repeats the code after the cursor
    /// (`)`, `);`, `]`, or the whole rest of the line).
    fn strip_line_suffix_dup(&self, s: &str) -> String {
        let suffix = self.line_suffix.trim();
        if suffix.is_empty() {
            return s.to_string();
        }
        // Work on the last line of `s`.
        let last_start = s.rfind('\n').map_or(0, |i| i + 1);
        let (head, last) = s.split_at(last_start);
        let keep = |candidate: &str| -> bool {
            let scan = scan(candidate, self.lang);
            scan.unmatched_closer.is_none() && scan.open.is_empty() && !scan.in_string
        };
        // The whole rest of the line appears in the completion.
        let mut from = 0;
        while let Some(i) = last[from..].find(suffix).map(|i| i + from) {
            let candidate = &last[..i];
            if token_boundary(candidate, suffix) && keep(candidate) {
                return format!("{head}{}", candidate.trim_end());
            }
            from = i + suffix.len().max(1);
            while from < last.len() && !last.is_char_boundary(from) {
                from += 1;
            }
            if from >= last.len() {
                break;
            }
        }
        // The completion ends with the start of the rest of the line.
        let trimmed = last.trim_end();
        for (k, _) in suffix.char_indices().rev() {
            let k = k + suffix[k..].chars().next().map_or(0, char::len_utf8);
            let part = &suffix[..k];
            if !trimmed.ends_with(part) {
                continue;
            }
            let at_boundary = k == suffix.len()
                || !suffix[k..].starts_with(is_ident_char)
                || !part.ends_with(is_ident_char);
            let candidate = &trimmed[..trimmed.len() - k];
            if at_boundary && token_boundary(candidate, part) && keep(candidate) {
                return format!("{head}{}", candidate.trim_end());
            }
        }
        format!("{head}{last}")
    }

    /// Python: stop at the first line indented less than the completion's
    /// first statement (the cursor's block), and after a new definition when
    /// the next one starts.
    fn cut_python_block(&self, s: &str) -> String {
        let lines: Vec<&str> = s.split('\n').collect();
        let mut first_stmt: Option<(usize, bool)> = None;
        let mut seen_deeper = false;
        let mut cut = lines.len();
        for (i, line) in lines.iter().enumerate() {
            let content = if i == 0 {
                format!("{}{}", self.line_prefix, line)
            } else {
                line.to_string()
            };
            let trimmed = content.trim();
            if trimmed.is_empty() {
                continue;
            }
            let ind = self.indent_of(i, line);
            match first_stmt {
                None => {
                    let defining = ["def ", "async def ", "class ", "@"]
                        .iter()
                        .any(|k| trimmed.starts_with(k));
                    first_stmt = Some((ind, defining));
                    continue;
                }
                Some((first_indent, defining)) => {
                    // Dedented below the first statement (the cursor's block,
                    // or deeper when the model indented an unindented line).
                    if i > 0 && ind < first_indent && !trimmed.starts_with([')', ']', '}']) {
                        cut = i;
                        break;
                    }
                    if ind > first_indent {
                        seen_deeper = true;
                    } else if defining && seen_deeper && !is_python_continuation(trimmed) {
                        cut = i;
                        break;
                    }
                }
            }
        }
        lines[..cut].join("\n")
    }

    /// Brace languages: stop before a closer of the block around the cursor
    /// (or after it when the file lacks it), and after a top-level item.
    fn cut_brace_block(&self, s: &str) -> String {
        let mut depth: Vec<char> = Vec::new();
        let mut opened_brace = false;
        for (pos, c) in scan(s, self.lang).brackets {
            match c {
                '(' | '[' | '{' => {
                    depth.push(c);
                    opened_brace |= c == '{';
                }
                _ => {
                    if depth.pop().is_none() {
                        // Closes the block around the cursor.
                        if self.enclosing_closed {
                            let ls = s[..pos].rfind('\n').map_or(0, |i| i + 1);
                            let cut = if s[ls..pos].trim().is_empty() && ls > 0 {
                                ls - 1
                            } else {
                                pos
                            };
                            return s[..cut].trim_end().to_string();
                        }
                        let end = s[pos..].find('\n').map_or(s.len(), |i| pos + i);
                        return s[..end].to_string();
                    }
                    if depth.is_empty() && opened_brace && !self.in_function && c == '}' {
                        // A whole item at file or class level: stop at its line's end.
                        let end = s[pos..].find('\n').map_or(s.len(), |i| pos + i);
                        return s[..end].to_string();
                    }
                }
            }
        }
        s.to_string()
    }

    /// Cut the completion where it starts repeating the lines after the cursor.
    /// The cursor opens an empty line inside code: its line holds only
    /// indentation, and the next non-blank line after it is at the cursor's
    /// indentation or deeper (the block goes on below the cursor). There the
    /// user is inserting into existing code, so one statement is suggested,
    /// not a run of statements that the code below probably already holds.
    /// `Some(true)` when the next line is deeper (it is the body of a header
    /// the cursor's line is missing: one line is suggested).
    fn code_continues_at_cursor_level(&self) -> Option<bool> {
        if !self.line_prefix.trim().is_empty() || !self.line_suffix.trim().is_empty() {
            return None;
        }
        let after = &self.text[next_line_start(self.text, self.cursor).min(self.text.len())..];
        let next = after.lines().find(|l| !l.trim().is_empty())?;
        if next.trim_start().starts_with([')', ']', '}']) {
            return None;
        }
        let indent = indent_width(leading_ws(next), self.tab_width);
        (indent >= self.base_indent).then_some(indent > self.base_indent)
    }

    /// The completion's first statement: leading comment lines, its first
    /// line of code, then (unless `header_only`) the lines deeper than the
    /// cursor's indentation that follow (its block) and lines inside
    /// brackets it left open; it ends at the first line back at the cursor's
    /// indentation or above.
    fn first_statement(&self, s: &str, header_only: bool) -> String {
        let lines: Vec<&str> = s.split('\n').collect();
        let comment = match self.lang {
            Language::Python => "#",
            _ => "//",
        };
        let mut depth = 0i64;
        let mut seen_code = false;
        // Python: the first line of code opens a block (ends with `:`).
        let mut opens_block = false;
        let mut end = lines.len();
        for (i, line) in lines.iter().enumerate() {
            let trimmed = line.trim();
            if !trimmed.is_empty() {
                let ind = if i == 0 {
                    self.base_indent
                } else {
                    indent_width(leading_ws(line), self.tab_width)
                };
                let closer = trimmed.starts_with([')', ']', '}']);
                // Out of the cursor's block (even before any code).
                let dedented = i > 0 && ind < self.base_indent && !closer;
                let python_simple = self.lang.uses_indentation_blocks() && !opens_block;
                let done = seen_code
                    && depth <= 0
                    && (header_only || python_simple || (ind <= self.base_indent && !closer));
                if dedented || done {
                    end = i;
                    break;
                }
            }
            if trimmed.is_empty() || trimmed.starts_with(comment) {
                continue;
            }
            if !seen_code {
                let code = trimmed.split(" #").next().unwrap_or(trimmed).trim_end();
                opens_block = code.ends_with(':');
            }
            seen_code = true;
            for (_, c) in scan(line, self.lang).brackets {
                depth += if matches!(c, '(' | '[' | '{') { 1 } else { -1 };
            }
        }
        lines[..end].join("\n").trim_end().to_string()
    }

    fn cut_suffix_repeat(&self, s: &str) -> String {
        let after = &self.text[next_line_start(self.text, self.cursor).min(self.text.len())..];
        // Compared with their indentation, so that an inner `return x` does
        // not match the function's own `return x` below the cursor.
        let next: Vec<&str> = after
            .lines()
            .map(str::trim_end)
            .filter(|l| !l.trim().is_empty())
            .take(2)
            .collect();
        let Some(&first) = next.first() else {
            return s.to_string();
        };
        let distinctive = |l: &str| l.chars().filter(|c| c.is_alphanumeric()).count() >= 2;
        let lines: Vec<&str> = s.split('\n').collect();
        for i in 1..lines.len() {
            if lines[i].trim_end() != first {
                continue;
            }
            let following = lines[i + 1..]
                .iter()
                .map(|l| l.trim_end())
                .find(|l| !l.trim().is_empty());
            let confirmed = match (next.get(1), following) {
                (Some(n), Some(f)) => *n == f,
                _ => false,
            };
            if distinctive(first) || confirmed {
                return lines[..i].join("\n").trim_end().to_string();
            }
        }
        s.to_string()
    }

    /// Append closers for brackets the completion opened and left open.
    fn close_brackets(&self, s: &str, multi_line: bool) -> String {
        let scan = scan(s, self.lang);
        if scan.in_string || scan.open.is_empty() {
            return s.to_string();
        }
        let mut out = s.to_string();
        for &(pos, c) in scan.open.iter().rev() {
            let closer = match c {
                '(' => ')',
                '[' => ']',
                _ => '}',
            };
            if c == '{' && multi_line && !self.lang.uses_indentation_blocks() {
                let ls = s[..pos].rfind('\n').map_or(0, |i| i + 1);
                let indent = if ls == 0 {
                    leading_ws(self.line_prefix).to_string()
                } else {
                    leading_ws(&s[ls..]).to_string()
                };
                out.push('\n');
                out.push_str(&indent);
            }
            out.push(closer);
        }
        out
    }
}

fn is_python_continuation(trimmed: &str) -> bool {
    ["elif", "else", "except", "finally", "case"]
        .iter()
        .any(|k| trimmed.starts_with(k) && !trimmed[k.len()..].starts_with(is_ident_char))
}

fn split_ws(ws: &str) -> (usize, usize) {
    let tabs = ws.chars().filter(|&c| c == '\t').count();
    (tabs, ws.len() - tabs)
}

/// `candidate` followed by `next` does not glue two identifier pieces together
/// in a way that splits a token.
fn token_boundary(candidate: &str, next: &str) -> bool {
    !(candidate.ends_with(is_ident_char) && next.starts_with(is_ident_char))
}

/// The line without the completion has balanced brackets, so whatever the
/// completion opens it must close itself.
fn line_balanced(prefix: &str, suffix: &str, lang: Language) -> bool {
    let joined = format!("{prefix}{suffix}");
    let scan = scan(&joined, lang);
    scan.open.is_empty() && scan.unmatched_closer.is_none()
}

/// Drop everything from the point where the model starts looping: a line
/// written three times in a row (two copies can be real code), or a block of
/// 2-4 lines equal to the block before it. One copy is kept.
fn cut_repeated_lines(s: &str) -> String {
    let lines: Vec<&str> = s.split('\n').collect();
    let meaningful = |l: &str| l.chars().filter(|c| c.is_alphanumeric()).count() >= 2;
    for i in 1..lines.len() {
        if i + 1 < lines.len()
            && lines[i] == lines[i - 1]
            && lines[i + 1] == lines[i]
            && meaningful(lines[i])
        {
            return lines[..i].join("\n");
        }
        for period in 2..=4usize {
            if i < period || i + period > lines.len() {
                continue;
            }
            let block = &lines[i..i + period];
            if block == &lines[i - period..i] && block.iter().all(|l| meaningful(l)) {
                return lines[..i].join("\n");
            }
        }
    }
    s.to_string()
}

/// Brackets outside strings and comments.
struct Scan {
    /// Every bracket with its byte offset, in order.
    brackets: Vec<(usize, char)>,
    /// Openers left open at the end, in order.
    open: Vec<(usize, char)>,
    /// First closer with no opener in the text.
    unmatched_closer: Option<usize>,
    /// The text ends inside a string or block comment.
    in_string: bool,
}

fn scan(s: &str, lang: Language) -> Scan {
    let bytes = s.as_bytes();
    let mut brackets = Vec::new();
    let mut open: Vec<(usize, char)> = Vec::new();
    let mut unmatched_closer = None;
    let mut i = 0;
    let mut in_string = false;
    while i < bytes.len() {
        let b = bytes[i];
        let rest = &bytes[i..];
        let line_comment: &[u8] = if lang == Language::Python {
            b"#"
        } else {
            b"//"
        };
        if rest.starts_with(line_comment) {
            i += rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len());
            continue;
        }
        if lang != Language::Python && rest.starts_with(b"/*") {
            match s[i + 2..].find("*/") {
                Some(j) => i += 2 + j + 2,
                None => {
                    in_string = true;
                    break;
                }
            }
            continue;
        }
        let quote: Option<&[u8]> = match b {
            b'"' if lang == Language::Python && rest.starts_with(b"\"\"\"") => Some(b"\"\"\""),
            b'\'' if lang == Language::Python && rest.starts_with(b"'''") => Some(b"'''"),
            b'"' => Some(b"\""),
            b'`' if lang != Language::Python && lang != Language::Rust => Some(b"`"),
            b'\'' if lang != Language::Rust => Some(b"'"),
            b'\'' => {
                // Rust: a char literal 'x' or '\n'; otherwise a lifetime.
                let is_char =
                    rest.get(1) == Some(&b'\\') || s[i + 1..].chars().nth(1) == Some('\'');
                is_char.then_some(b"'".as_slice())
            }
            _ => None,
        };
        if let Some(q) = quote {
            let mut j = i + q.len();
            let mut closed = false;
            while j < bytes.len() {
                if bytes[j] == b'\\' {
                    j += 2;
                    continue;
                }
                if bytes[j..].starts_with(q) {
                    j += q.len();
                    closed = true;
                    break;
                }
                if bytes[j] == b'\n' && q.len() == 1 && q != b"`" {
                    break;
                }
                j += 1;
            }
            if !closed && (j >= bytes.len()) {
                in_string = true;
            }
            i = j.min(bytes.len());
            continue;
        }
        match b {
            b'(' | b'[' | b'{' => {
                brackets.push((i, b as char));
                open.push((i, b as char));
            }
            b')' | b']' | b'}' => {
                brackets.push((i, b as char));
                if open.pop().is_none() && unmatched_closer.is_none() {
                    unmatched_closer = Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    Scan {
        brackets,
        open,
        unmatched_closer,
        in_string,
    }
}

/// Whether the innermost bracketed node around the cursor already has its
/// closing bracket in the document.
fn enclosing_bracket_closed(root: Node, cursor: usize) -> bool {
    let mut node = root.descendant_for_byte_range(cursor, cursor);
    while let Some(n) = node {
        if n.start_byte() < cursor && n.child_count() >= 2 {
            let first = n.child(0);
            let opener = first
                .map(|f| f.kind())
                .filter(|k| matches!(*k, "{" | "(" | "["));
            if let (Some(open), Some(first)) = (opener, first) {
                if first.start_byte() < cursor {
                    let last = n.child(n.child_count() - 1);
                    let want = match open {
                        "{" => "}",
                        "(" => ")",
                        _ => "]",
                    };
                    return last.is_some_and(|l| {
                        l.kind() == want && !l.is_missing() && l.start_byte() >= cursor
                    });
                }
            }
        }
        node = n.parent();
    }
    false
}
