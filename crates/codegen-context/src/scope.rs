//! The cursor's scope: enclosing function and class, signature, docstring,
//! imports, and where on its line the cursor sits.

use crate::document::ParsedDocument;
use crate::language::Language;
use crate::text::{floor_char_boundary, indent_width, line_end, line_start};
use tree_sitter::Node;

/// An enclosing function, method, closure or class-like item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeItem {
    /// Tree-sitter node kind, e.g. `function_definition`, `impl_item`.
    pub kind: String,
    pub name: Option<String>,
    /// Start of the item with its decorators, attributes and doc comment.
    pub header_start: usize,
    /// Start of the item's own node (`def`, `fn`, `function`, ...).
    pub start_byte: usize,
    pub end_byte: usize,
    /// Where the body starts (after `:` or at `{`), if the item has one.
    pub body_start: Option<usize>,
    /// Text from the item's node start to its body, trimmed.
    pub signature: String,
    /// Docstring (Python) or the doc comment before the item.
    pub docstring: Option<String>,
    /// Byte range of the docstring or doc comment.
    pub docstring_range: Option<(usize, usize)>,
}

/// An import (or Go `package`) at the top level of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    pub text: String,
    pub start_byte: usize,
    pub end_byte: usize,
}

/// Where the cursor sits on its line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CursorPlace {
    /// Non-whitespace text follows the cursor on its line.
    pub mid_line: bool,
    /// The cursor's line holds only whitespace.
    pub at_empty_line: bool,
    /// Only whitespace precedes the cursor on its line.
    pub at_line_start: bool,
    pub in_string: bool,
    pub in_comment: bool,
}

/// Everything known about the cursor's surroundings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorScope {
    pub language: Language,
    /// The cursor after clamping to the text and to a char boundary.
    pub cursor: usize,
    /// Innermost function, method or closure holding the cursor.
    pub function: Option<ScopeItem>,
    /// Names of the functions holding the cursor, innermost first (closures
    /// inside methods...); anonymous ones as `<node kind>`.
    pub enclosing_functions: Vec<String>,
    /// Every function and class holding the cursor, outermost first: their
    /// signatures make the header kept when the prefix is cut.
    pub enclosing: Vec<ScopeItem>,
    /// Innermost class, impl, trait, struct or interface holding the cursor.
    pub class: Option<ScopeItem>,
    pub imports: Vec<Import>,
    pub place: CursorPlace,
    /// The enclosing function (or file, outside functions) has syntax errors.
    pub has_errors: bool,
    /// What could not be done, for logs.
    pub notes: Vec<String>,
}

impl CursorScope {
    /// Byte range of the innermost scope holding the cursor: the function,
    /// else the class, else the whole file.
    pub fn scope_range(&self, text_len: usize) -> (usize, usize) {
        if let Some(f) = &self.function {
            (f.header_start, f.end_byte.max(self.cursor))
        } else if let Some(c) = &self.class {
            (c.header_start, c.end_byte.max(self.cursor))
        } else {
            (0, text_len)
        }
    }
}

/// Clamp a cursor to the text and a char boundary, noting what was changed.
pub(crate) fn clamp_cursor(text: &str, cursor: usize, notes: &mut Vec<String>) -> usize {
    let clamped = floor_char_boundary(text, cursor);
    if clamped != cursor {
        if cursor > text.len() {
            notes.push(format!(
                "cursor {cursor} is past the end of the text ({} bytes); clamped to {clamped}",
                text.len()
            ));
        } else {
            notes.push(format!(
                "cursor {cursor} is not on a char boundary; moved back to {clamped}"
            ));
        }
    }
    clamped
}

/// Find the cursor's scope. Never fails; on a document whose parse failed the
/// result has only the cursor place and a note.
pub fn cursor_scope(doc: &ParsedDocument, cursor: usize) -> CursorScope {
    let text = doc.text();
    let lang = doc.language();
    let mut notes = Vec::new();
    let cursor = clamp_cursor(text, cursor, &mut notes);
    let mut scope = CursorScope {
        language: lang,
        cursor,
        function: None,
        enclosing_functions: Vec::new(),
        enclosing: Vec::new(),
        class: None,
        imports: Vec::new(),
        place: line_place(text, cursor),
        has_errors: false,
        notes,
    };
    let Some(tree) = doc.tree() else {
        scope.notes.push("document could not be parsed".to_string());
        return scope;
    };
    let root = tree.root_node();
    scope.imports = imports(root, text, lang);

    let candidates = ancestor_candidates(root, text, cursor);
    let mut functions: Vec<Node> = candidates
        .iter()
        .copied()
        .filter(|n| lang.is_function_kind(n.kind()) && contains_cursor(*n, text, cursor, lang))
        .collect();
    functions.sort_by_key(|n| std::cmp::Reverse(n.start_byte()));
    let class = candidates
        .iter()
        .copied()
        .filter(|n| lang.is_class_kind(n.kind()) && contains_cursor(*n, text, cursor, lang))
        .max_by_key(|n| n.start_byte());
    scope.enclosing_functions = functions
        .iter()
        .map(|f| name_of(*f, text).unwrap_or_else(|| format!("<{}>", f.kind())))
        .collect();
    let mut enclosing: Vec<Node> = candidates
        .iter()
        .copied()
        .filter(|n| {
            (lang.is_function_kind(n.kind()) || lang.is_class_kind(n.kind()))
                && contains_cursor(*n, text, cursor, lang)
        })
        .collect();
    enclosing.sort_by_key(|n| n.start_byte());
    scope.enclosing = enclosing
        .iter()
        .map(|n| scope_item(*n, text, lang))
        .collect();
    let item_of = |node: Node| {
        scope
            .enclosing
            .iter()
            .find(|i| i.start_byte == node.start_byte())
            .cloned()
    };
    scope.function = functions.first().and_then(|f| item_of(*f));
    scope.class = class.and_then(item_of);
    scope.has_errors = match functions.first() {
        Some(f) => f.has_error(),
        None => root.has_error(),
    };
    if scope.function.is_none() && root.has_error() {
        let recovered = if lang == Language::Python {
            python_fallback_function(text, cursor)
        } else {
            brace_fallback_function(text, cursor, lang)
        };
        if let Some(item) = recovered {
            scope
                .notes
                .push("enclosing function recovered from text (syntax errors)".to_string());
            scope.enclosing.push(item.clone());
            scope.enclosing.sort_by_key(|i| i.start_byte);
            scope.function = Some(item);
        }
    }
    let (in_string, in_comment) = string_or_comment(root, text, cursor, lang);
    scope.place.in_string = in_string;
    scope.place.in_comment = in_comment;
    scope
}

/// The functions and classes (outermost first) that hold `offset` and
/// start before it: where code cut at `offset` starts inside of.
pub(crate) fn items_spanning(doc: &ParsedDocument, offset: usize) -> Vec<ScopeItem> {
    let (text, lang) = (doc.text(), doc.language());
    let Some(tree) = doc.tree() else {
        return Vec::new();
    };
    let mut node = tree.root_node().descendant_for_byte_range(offset, offset);
    let mut out = Vec::new();
    while let Some(n) = node {
        if (lang.is_function_kind(n.kind()) || lang.is_class_kind(n.kind()))
            && n.start_byte() < offset
            && offset < n.end_byte()
        {
            out.push(scope_item(n, text, lang));
        }
        node = n.parent();
    }
    out.reverse();
    out
}

fn line_place(text: &str, cursor: usize) -> CursorPlace {
    let before = &text[line_start(text, cursor)..cursor];
    let after = &text[cursor..line_end(text, cursor)];
    CursorPlace {
        mid_line: !after.trim().is_empty(),
        at_empty_line: before.trim().is_empty() && after.trim().is_empty(),
        at_line_start: before.trim().is_empty(),
        in_string: false,
        in_comment: false,
    }
}

/// Ancestors of the nodes at the cursor and at the last non-whitespace byte
/// before it (a cursor after a Python body lies past the function's end).
fn ancestor_candidates<'t>(root: Node<'t>, text: &str, cursor: usize) -> Vec<Node<'t>> {
    let mut out: Vec<Node<'t>> = Vec::new();
    let mut starts = Vec::new();
    if let Some(n) = root.descendant_for_byte_range(cursor, cursor) {
        starts.push(n);
    }
    let before = text[..cursor].trim_end();
    if !before.is_empty() {
        let p = before.len() - 1;
        if let Some(n) = root.descendant_for_byte_range(p, p + 1) {
            starts.push(n);
        }
    }
    for start in starts {
        let mut node = Some(start);
        while let Some(n) = node {
            if !out.iter().any(|o| o.id() == n.id()) {
                out.push(n);
            }
            node = n.parent();
        }
    }
    out
}

fn contains_cursor(node: Node, text: &str, cursor: usize, lang: Language) -> bool {
    let (start, end) = (node.start_byte(), node.end_byte());
    if cursor <= start {
        return false;
    }
    if cursor < end {
        return true;
    }
    if lang.uses_indentation_blocks() {
        // Python nodes end at their last statement; the block goes on while
        // the lines after it are blank or indented deeper than the header.
        let header_indent = indent_width(&text[line_start(text, start)..], 4);
        let gap = &text[end..cursor];
        let mut lines = gap.split('\n').skip(1).peekable();
        if lines.peek().is_none() {
            // Cursor on the node's last line, right after it.
            return cursor == end;
        }
        for line in lines {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            if indent_width(line, 4) <= header_indent {
                return false;
            }
        }
        let cursor_line = &text[line_start(text, cursor)..cursor];
        let cursor_indent = indent_width(cursor_line, 4);
        return cursor_indent > header_indent;
    }
    // Brace languages: right after a closing `}` or `;` the item is over; an
    // item that ends without one (arrow function with an expression body,
    // unterminated item) still holds a cursor at its end.
    cursor == end && !text[..end].trim_end().ends_with(['}', ';', ')'])
}

/// The node whose doc comment and decorators belong to `node`.
fn outer_wrapper(node: Node) -> Node {
    let mut outer = node;
    while let Some(parent) = outer.parent() {
        let kind = parent.kind();
        if matches!(
            kind,
            "decorated_definition"
                | "export_statement"
                | "variable_declarator"
                | "lexical_declaration"
                | "variable_declaration"
        ) {
            outer = parent;
        } else {
            break;
        }
    }
    outer
}

fn name_of(node: Node, text: &str) -> Option<String> {
    let field = |n: Node, f: &str| {
        n.child_by_field_name(f)
            .map(|c| text[c.byte_range()].to_string())
    };
    if let Some(name) = field(node, "name") {
        return Some(name);
    }
    match node.kind() {
        "impl_item" => {
            let ty = field(node, "type")?;
            Some(match field(node, "trait") {
                Some(tr) => format!("{tr} for {ty}"),
                None => ty,
            })
        }
        "type_declaration" => {
            let mut cursor = node.walk();
            let spec = node
                .named_children(&mut cursor)
                .find(|c| c.kind() == "type_spec" || c.kind() == "type_alias")?;
            field(spec, "name")
        }
        _ => {
            let parent = node.parent()?;
            match parent.kind() {
                "variable_declarator" | "assignment" | "assignment_expression" => {
                    field(parent, "name").or_else(|| field(parent, "left"))
                }
                "pair" => field(parent, "key"),
                "public_field_definition" | "field_definition" => {
                    field(parent, "name").or_else(|| field(parent, "property"))
                }
                "let_declaration" => field(parent, "pattern"),
                "short_var_declaration" | "assignment_statement" => {
                    let left = parent.child_by_field_name("left")?;
                    Some(text[left.byte_range()].to_string())
                }
                _ => None,
            }
        }
    }
}

pub(crate) fn scope_item(node: Node, text: &str, lang: Language) -> ScopeItem {
    let body = node.child_by_field_name("body");
    let start = node.start_byte();
    let body_start = body.map(|b| b.start_byte()).filter(|&b| b >= start);
    let sig_end = match body {
        Some(body) => {
            let mut cursor = node.walk();
            node.children(&mut cursor)
                .filter(|c| !c.is_extra() && c.end_byte() <= body.start_byte())
                .map(|c| c.end_byte())
                .last()
                .unwrap_or(body.start_byte())
                .max(start)
        }
        None => line_end(text, start).min(node.end_byte()).max(start),
    };
    let mut signature = text[start..sig_end].trim_end().to_string();
    if node.has_error() {
        // Recovery may glue several lines into the header; keep the first.
        if let Some(i) = signature.find('\n') {
            signature.truncate(i);
            signature.truncate(signature.trim_end().len());
        }
    }
    let outer = outer_wrapper(node);
    let mut header_start = outer.start_byte();
    let mut docstring = None;
    let mut docstring_range = None;
    if lang == Language::Python {
        if let Some(body) = body {
            let mut cursor = body.walk();
            let first = body.named_children(&mut cursor).next();
            if let Some(stmt) = first.filter(|s| s.kind() == "expression_statement") {
                if let Some(s) = stmt.named_child(0).filter(|s| s.kind() == "string") {
                    docstring = Some(text[s.byte_range()].to_string());
                    docstring_range = Some((s.start_byte(), s.end_byte()));
                }
            }
        }
        if docstring.is_none()
            && node.has_error()
            && matches!(node.kind(), "function_definition" | "class_definition")
        {
            // The body's start lost to a syntax error further down (it went
            // into an ERROR node): read the docstring off the text.
            let after = crate::text::next_line_start(text, start + signature.len());
            docstring_range = python_docstring_after(text, after, node.end_byte());
            docstring = docstring_range.map(|(s, e)| text[s..e].to_string());
        }
    } else {
        // Contiguous comments (and Rust attributes) right before the item.
        let mut first_comment: Option<Node> = None;
        let mut last_comment: Option<Node> = None;
        let mut next_row = outer.start_position().row;
        let mut sibling = outer.prev_sibling();
        while let Some(s) = sibling {
            let kind = s.kind();
            let adjacent = s.end_position().row + 1 >= next_row;
            if !adjacent {
                break;
            }
            if kind.contains("comment") {
                if last_comment.is_none() {
                    last_comment = Some(s);
                }
                first_comment = Some(s);
            } else if kind != "attribute_item" {
                break;
            }
            header_start = s.start_byte();
            next_row = s.start_position().row;
            sibling = s.prev_sibling();
        }
        if let (Some(first), Some(last)) = (first_comment, last_comment) {
            docstring = Some(
                text[first.start_byte()..last.end_byte()]
                    .trim_end()
                    .to_string(),
            );
            docstring_range = Some((first.start_byte(), last.end_byte()));
        }
    }
    ScopeItem {
        kind: node.kind().to_string(),
        name: name_of(node, text),
        header_start,
        start_byte: start,
        end_byte: node.end_byte(),
        body_start,
        signature,
        docstring,
        docstring_range,
    }
}

fn imports(root: Node, text: &str, lang: Language) -> Vec<Import> {
    let mut cursor = root.walk();
    let mut out = Vec::new();
    for child in root.named_children(&mut cursor) {
        let kind = child.kind();
        let is_require = matches!(
            lang,
            Language::JavaScript | Language::TypeScript | Language::Tsx
        ) && matches!(kind, "lexical_declaration" | "variable_declaration")
            && text[child.byte_range()].contains("require(");
        if lang.is_import_kind(kind) || is_require {
            out.push(Import {
                text: text[child.byte_range()].to_string(),
                start_byte: child.start_byte(),
                end_byte: child.end_byte(),
            });
        }
    }
    out
}

fn string_or_comment(root: Node, text: &str, cursor: usize, lang: Language) -> (bool, bool) {
    let mut starts = Vec::new();
    if let Some(n) = root.descendant_for_byte_range(cursor, cursor) {
        starts.push(n);
    }
    if cursor > 0 {
        if let Some(n) = root.descendant_for_byte_range(cursor - 1, cursor) {
            starts.push(n);
        }
    }
    let mut in_string = false;
    let mut in_comment = false;
    let mut near_error = false;
    for start in starts {
        let mut node = Some(start);
        while let Some(n) = node {
            let (s, e) = (n.start_byte(), n.end_byte());
            let kind = n.kind();
            if n.is_error() || n.is_missing() {
                near_error = true;
            }
            if kind.contains("comment") && s < cursor {
                let block = text[s..e].ends_with("*/");
                if cursor < e || (cursor == e && !block) {
                    in_comment = true;
                }
            } else if lang.is_string_kind(kind) && s < cursor {
                let unterminated = n
                    .child(n.child_count().saturating_sub(1))
                    .is_some_and(|last| last.is_missing());
                if cursor < e || (cursor == e && unterminated) {
                    in_string = true;
                }
            }
            node = n.parent();
        }
    }
    if !in_string && !in_comment && (near_error || root.has_error()) {
        // Unterminated string on the cursor's line: tree-sitter's recovery
        // does not always keep a string node, so count quotes.
        let before = &text[line_start(text, cursor)..cursor];
        in_string = odd_quotes(before, lang);
    }
    (in_string, in_comment)
}

fn odd_quotes(line: &str, lang: Language) -> bool {
    let mut open: Option<char> = None;
    let mut chars = line.chars().peekable();
    let comment = lang.line_comment();
    let mut rest = line;
    while let Some(c) = chars.next() {
        let len = c.len_utf8();
        match open {
            Some(q) => {
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        rest = &rest[len + n.len_utf8()..];
                        continue;
                    }
                } else if c == q {
                    open = None;
                }
            }
            None => {
                if rest.starts_with(comment) {
                    return false;
                }
                let quote = c == '"' || c == '`' || (c == '\'' && lang != Language::Rust);
                if quote {
                    open = Some(c);
                }
            }
        }
        rest = &rest[len..];
    }
    open.is_some()
}

/// A Python function header found by indentation when the tree lost it.
fn python_fallback_function(text: &str, cursor: usize) -> Option<ScopeItem> {
    let cursor_line = &text[line_start(text, cursor)..line_end(text, cursor)];
    let mut max_indent = if cursor_line.trim().is_empty() {
        cursor - line_start(text, cursor)
    } else {
        indent_width(cursor_line, 4)
    };
    if max_indent == 0 && !cursor_line.trim().is_empty() {
        // Code at the top level (a new `def` being typed): in no function.
        return None;
    }
    let mut end = line_start(text, cursor);
    while end > 0 {
        let start = line_start(text, end - 1);
        let line = &text[start..end];
        end = start;
        if line.trim().is_empty() {
            continue;
        }
        let indent = indent_width(line, 4);
        if indent >= max_indent && !(max_indent == 0 && indent == 0) {
            continue;
        }
        let trimmed = line.trim();
        if let Some(rest) = trimmed
            .strip_prefix("def ")
            .or_else(|| trimmed.strip_prefix("async def "))
        {
            let name = rest.split('(').next().unwrap_or("").trim().to_string();
            let docstring_range = python_docstring_after(text, end + line.len(), cursor);
            return Some(ScopeItem {
                kind: "function_definition".to_string(),
                name: (!name.is_empty()).then_some(name),
                header_start: start + (line.len() - line.trim_start().len()),
                start_byte: start + (line.len() - line.trim_start().len()),
                end_byte: cursor,
                body_start: None,
                signature: trimmed.to_string(),
                docstring: docstring_range.map(|(s, e)| text[s..e].to_string()),
                docstring_range,
            });
        }
        max_indent = indent;
        if indent == 0 {
            break;
        }
    }
    None
}

/// A function header found by brace matching when the tree lost it: the
/// innermost unmatched `{` before the cursor on a line that declares a function.
fn brace_fallback_function(text: &str, cursor: usize, lang: Language) -> Option<ScopeItem> {
    let keywords: &[&str] = match lang {
        Language::Rust => &["fn "],
        Language::Go => &["func "],
        _ => &["function", "=>"],
    };
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let floor = cursor.saturating_sub(200_000);
    let mut i = cursor;
    while i > floor {
        i -= 1;
        match bytes[i] {
            b'}' => depth += 1,
            b'{' if depth > 0 => depth -= 1,
            b'{' => {
                let start = line_start(text, i);
                let header = text[start..i].trim();
                if keywords.iter().any(|k| header.contains(k)) {
                    let offset = start + (text[start..i].len() - text[start..i].trim_start().len());
                    let name = keywords
                        .iter()
                        .filter_map(|k| header.split_once(k))
                        .map(|(_, rest)| {
                            rest.trim_start()
                                .split(|c: char| !crate::text::is_ident_char(c))
                                .next()
                                .unwrap_or("")
                                .to_string()
                        })
                        .find(|n| !n.is_empty());
                    let (header_start, docstring_range) = comments_above(text, start, lang);
                    return Some(ScopeItem {
                        kind: "function (recovered)".to_string(),
                        name,
                        header_start: header_start.unwrap_or(offset),
                        start_byte: offset,
                        end_byte: cursor,
                        body_start: Some(i),
                        signature: header.to_string(),
                        docstring: docstring_range.map(|(s, e)| text[s..e].trim_end().to_string()),
                        docstring_range,
                    });
                }
            }
            _ => {}
        }
    }
    None
}

/// The docstring of a Python function whose body the tree lost: a string
/// literal alone on the first non-blank line at or after `body` (the line
/// after the `def`), complete before `cursor`. As the tree gives it, so that
/// the prompt's header does not change while an edit breaks the parse.
fn python_docstring_after(text: &str, body: usize, cursor: usize) -> Option<(usize, usize)> {
    let mut start = body;
    while start < cursor {
        let end = line_end(text, start);
        if !text[start..end].trim().is_empty() {
            break;
        }
        start = crate::text::next_line_start(text, end);
    }
    if start >= cursor {
        return None;
    }
    let line = &text[start..line_end(text, start)];
    let trimmed = line.trim_start();
    let open = start + (line.len() - trimmed.len());
    let quote = ["\"\"\"", "\'\'\'", "\"", "\'"]
        .into_iter()
        .find(|q| trimmed.starts_with(q))?;
    if open + quote.len() > cursor {
        return None;
    }
    let close = if quote.len() == 3 {
        open + 3 + text[open + 3..cursor].find(quote)? + 3
    } else {
        let inner = &trimmed[1..];
        let rest = inner.find(quote)?;
        if !inner[rest + 1..].trim().is_empty() {
            return None;
        }
        open + 1 + rest + 1
    };
    (close <= cursor).then_some((open, close))
}

/// Comment (and Rust attribute) lines right above the line at `line`, as the
/// tree path finds them: (start of the first one, the comments' range).
fn comments_above(
    text: &str,
    line: usize,
    lang: Language,
) -> (Option<usize>, Option<(usize, usize)>) {
    let mut header_start = None;
    let mut first_comment = None;
    let mut last_comment_end = None;
    let mut in_block = false;
    let mut at = line;
    while at > 0 {
        let start = line_start(text, at - 1);
        let content = &text[start..line_end(text, start)];
        let trimmed = content.trim_start();
        let offset = start + (content.len() - trimmed.len());
        // Walking up: a block comment is entered at its `*/`, left at `/*`.
        if trimmed.trim_end().ends_with("*/") {
            in_block = true;
        }
        let comment = in_block || trimmed.starts_with("//");
        if trimmed.starts_with("/*") {
            in_block = false;
        }
        if comment {
            first_comment = Some(offset);
            if last_comment_end.is_none() {
                last_comment_end = Some(start + content.len());
            }
        } else if !(lang == Language::Rust && trimmed.starts_with("#[")) {
            break;
        }
        header_start = Some(offset);
        at = start;
    }
    let range = first_comment.zip(last_comment_end);
    (header_start, range)
}
