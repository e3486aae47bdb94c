//! Source transformations for behavioural tests, language aware (tree-sitter
//! through `codegen-context`'s grammars): the invariance transformations
//! (renamed locals and parameters, renamed function, reformatted docstring,
//! CRLF line endings, swapped indentation, an unrelated function above, a
//! non-ASCII identifier and string nearby) and the directional variants
//! (a docstring example added, the docstring removed).
//!
//! Every transformation takes a [`Fixture`] (document, cursor, the checks
//! that go with it) and returns the transformed fixture, or `None` where it
//! does not apply (no docstring to reformat, no local to rename). The cursor
//! moves with the text around it; the checks (asserts, compile checks)
//! follow a renamed function.

use codegen_context::Language;
use tree_sitter::{Node, Parser, Tree};

/// A document with its cursor and the checks that go with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fixture {
    pub language: Language,
    /// The document without the cursor marker.
    pub document: String,
    /// Byte offset of the cursor in `document`.
    pub cursor: usize,
    /// Python asserts appended to the completed document.
    pub asserts: Option<String>,
    /// Code appended to the completed document that must compile with it.
    pub check: Option<String>,
}

impl Fixture {
    /// From a document with `$0` at the cursor; `None` without one.
    pub fn from_marked(language: Language, marked: &str) -> Option<Fixture> {
        let cursor = marked.find("$0")?;
        Some(Fixture {
            language,
            document: marked.replacen("$0", "", 1),
            cursor,
            asserts: None,
            check: None,
        })
    }

    /// The document with `$0` at the cursor.
    pub fn marked(&self) -> String {
        let mut text = self.document.clone();
        text.insert_str(self.cursor, "$0");
        text
    }

    /// The document with `insertion` at the cursor.
    pub fn completed(&self, insertion: &str) -> String {
        let mut text = self.document.clone();
        text.insert_str(self.cursor, insertion);
        text
    }
}

/// Transformations that must not change whether a case passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Invariance {
    RenameLocals,
    RenameFunction,
    ReformatDocstring,
    CrlfLineEndings,
    SwapIndentation,
    UnrelatedFunctionAbove,
    NonAsciiNearby,
}

impl Invariance {
    pub const ALL: [Invariance; 7] = [
        Invariance::RenameLocals,
        Invariance::RenameFunction,
        Invariance::ReformatDocstring,
        Invariance::CrlfLineEndings,
        Invariance::SwapIndentation,
        Invariance::UnrelatedFunctionAbove,
        Invariance::NonAsciiNearby,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Invariance::RenameLocals => "rename-locals",
            Invariance::RenameFunction => "rename-function",
            Invariance::ReformatDocstring => "reformat-docstring",
            Invariance::CrlfLineEndings => "crlf",
            Invariance::SwapIndentation => "tabs-for-spaces",
            Invariance::UnrelatedFunctionAbove => "unrelated-function-above",
            Invariance::NonAsciiNearby => "non-ascii-nearby",
        }
    }

    pub fn from_name(name: &str) -> Option<Invariance> {
        Invariance::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The transformed fixture; `None` where the transformation does not apply.
    pub fn apply(self, fixture: &Fixture) -> Option<Fixture> {
        match self {
            Invariance::RenameLocals => rename_locals(fixture),
            Invariance::RenameFunction => rename_function(fixture),
            Invariance::ReformatDocstring => reformat_docstring(fixture),
            Invariance::CrlfLineEndings => crlf(fixture),
            Invariance::SwapIndentation => swap_indentation(fixture),
            Invariance::UnrelatedFunctionAbove => unrelated_function_above(fixture),
            Invariance::NonAsciiNearby => non_ascii_nearby(fixture),
        }
    }
}

/// A replacement of `start..end` by `text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Edit {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) text: String,
}

impl Edit {
    pub(crate) fn new(start: usize, end: usize, text: impl Into<String>) -> Edit {
        Edit {
            start,
            end,
            text: text.into(),
        }
    }
}

/// Applies non-overlapping edits (overlapping ones after the first are
/// dropped) and moves the cursor with the text before it: an insertion at
/// the cursor lands before it.
pub(crate) fn apply_edits(fixture: &Fixture, mut edits: Vec<Edit>) -> Fixture {
    edits.sort_by_key(|e| (e.start, e.end));
    let text = &fixture.document;
    let mut out = String::with_capacity(text.len() + 64);
    let mut last = 0;
    let mut cursor = None;
    for edit in edits {
        if edit.start < last || edit.end > text.len() {
            continue;
        }
        if cursor.is_none() && fixture.cursor < edit.start {
            cursor = Some(out.len() + fixture.cursor - last);
        }
        out.push_str(&text[last..edit.start]);
        if cursor.is_none() && fixture.cursor < edit.end {
            // The cursor sits inside the replaced text: keep it at the same
            // distance from the start, within the new text.
            cursor = Some(out.len() + (fixture.cursor - edit.start).min(edit.text.len()));
        }
        out.push_str(&edit.text);
        last = edit.end;
    }
    let cursor = cursor.unwrap_or(out.len() + fixture.cursor.saturating_sub(last));
    out.push_str(&text[last..]);
    Fixture {
        document: out,
        cursor,
        ..fixture.clone()
    }
}

pub(crate) fn parse(text: &str, language: Language) -> Option<Tree> {
    let mut parser = Parser::new();
    parser.set_language(&language.ts_language()).ok()?;
    parser.parse(text, None)
}

pub(crate) fn node_text<'a>(node: Node, text: &'a str) -> &'a str {
    &text[node.byte_range()]
}

fn is_named_function(language: Language, kind: &str) -> bool {
    match language {
        Language::Python => kind == "function_definition",
        Language::Rust => kind == "function_item",
        Language::JavaScript | Language::TypeScript | Language::Tsx => matches!(
            kind,
            "function_declaration" | "generator_function_declaration" | "method_definition"
        ),
        Language::Go => matches!(kind, "function_declaration" | "method_declaration"),
    }
}

fn is_comment(kind: &str) -> bool {
    matches!(kind, "comment" | "line_comment" | "block_comment")
}

/// The innermost named function around the cursor.
pub(crate) fn enclosing_function<'t>(
    tree: &'t Tree,
    language: Language,
    cursor: usize,
) -> Option<Node<'t>> {
    let mut node = tree.root_node().descendant_for_byte_range(cursor, cursor)?;
    // A cursor after the last token of a body (`return $0` in Python) lies
    // past the function's end: look from the last token before it instead.
    if !is_named_function(language, node.kind()) && node.parent().is_none() {
        let probe = probe_before(tree, cursor)?;
        node = tree.root_node().descendant_for_byte_range(probe, probe)?;
    }
    loop {
        if is_named_function(language, node.kind()) && node.start_byte() < cursor {
            return Some(node);
        }
        node = node.parent()?;
    }
}

/// Offset of the last byte of the last token ending at or before `cursor`.
fn probe_before(tree: &Tree, cursor: usize) -> Option<usize> {
    let root = tree.root_node();
    let mut best: Option<usize> = None;
    for node in descendants(root) {
        if node.child_count() == 0 && node.end_byte() <= cursor && node.end_byte() > 0 {
            best = Some(best.map_or(node.end_byte(), |b: usize| b.max(node.end_byte())));
        }
    }
    best.map(|end| end - 1)
}

/// The top-level item holding the cursor (the root's child); a cursor past
/// the end of an item's last token belongs to that item.
fn top_level_item(tree: &Tree, cursor: usize) -> Option<Node<'_>> {
    let root = tree.root_node();
    let find = |at: usize| {
        let mut walker = root.walk();
        let found = root.children(&mut walker).find(|c| {
            c.start_byte() <= at
                && at < c.end_byte().max(c.start_byte() + 1)
                && !is_comment(c.kind())
        });
        found
    };
    find(cursor).or_else(|| find(probe_before(tree, cursor)?))
}

/// The comments right above `item` (contiguous comment siblings).
fn leading_comments<'t>(item: Node<'t>) -> Vec<Node<'t>> {
    let mut comments = Vec::new();
    let mut prev = item.prev_sibling();
    let mut next_start_row = item.start_position().row;
    while let Some(node) = prev {
        if !is_comment(node.kind()) || node.end_position().row + 1 < next_start_row {
            break;
        }
        next_start_row = node.start_position().row;
        comments.push(node);
        prev = node.prev_sibling();
    }
    comments.reverse();
    comments
}

/// Start of the line where `item` and its leading comments begin.
fn item_start(text: &str, item: Node) -> usize {
    let start = leading_comments(item)
        .first()
        .map_or(item.start_byte(), |c| c.start_byte());
    line_start(text, start)
}

fn line_start(text: &str, offset: usize) -> usize {
    text[..offset].rfind('\n').map_or(0, |i| i + 1)
}

fn line_end(text: &str, offset: usize) -> usize {
    text[offset..]
        .find('\n')
        .map_or(text.len(), |i| offset + i + 1)
}

pub(crate) fn indentation_of_line(text: &str, offset: usize) -> &str {
    let start = line_start(text, offset);
    let rest = &text[start..];
    let n = rest.len() - rest.trim_start_matches([' ', '\t']).len();
    &rest[..n]
}

fn walk<'t>(node: Node<'t>, out: &mut Vec<Node<'t>>) {
    let mut stack = vec![node];
    while let Some(n) = stack.pop() {
        out.push(n);
        let mut c = n.walk();
        let children: Vec<Node> = n.children(&mut c).collect();
        for child in children.into_iter().rev() {
            stack.push(child);
        }
    }
}

pub(crate) fn descendants(node: Node<'_>) -> Vec<Node<'_>> {
    let mut out = Vec::new();
    walk(node, &mut out);
    out
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Whole-word occurrences of `word` in `text`.
pub(crate) fn word_occurrences(text: &str, word: &str) -> Vec<usize> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find(word) {
        let start = from + i;
        let end = start + word.len();
        let before_ok = start == 0 || !is_word_byte(bytes[start - 1]);
        let after_ok = end == bytes.len() || !is_word_byte(bytes[end]);
        if before_ok && after_ok {
            out.push(start);
        }
        from = end;
    }
    out
}

pub(crate) fn replace_words(text: &str, word: &str, new: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for start in word_occurrences(text, word) {
        out.push_str(&text[last..start]);
        out.push_str(new);
        last = start + word.len();
    }
    out.push_str(&text[last..]);
    out
}

fn contains_word(fixture: &Fixture, word: &str) -> bool {
    !word_occurrences(&fixture.document, word).is_empty()
        || fixture
            .asserts
            .as_deref()
            .is_some_and(|a| !word_occurrences(a, word).is_empty())
        || fixture
            .check
            .as_deref()
            .is_some_and(|c| !word_occurrences(c, word).is_empty())
}

/// Another name of the same meaning for common local names; other names get
/// a suffix in the language's style.
fn renamed_local(language: Language, name: &str) -> String {
    const TABLE: &[(&str, &str)] = &[
        ("numbers", "nums"),
        ("nums", "numbers"),
        ("n", "num"),
        ("num", "value"),
        ("x", "val"),
        ("s", "text"),
        ("text", "txt"),
        ("i", "idx"),
        ("j", "k"),
        ("result", "res"),
        ("total", "acc"),
        ("best", "top"),
        ("word", "token"),
        ("words", "tokens"),
        ("items", "elems"),
        ("item", "elem"),
        ("a", "lhs"),
        ("b", "rhs"),
        ("value", "val"),
        ("values", "vals"),
        ("count", "cnt"),
        ("name", "label"),
        ("user", "person"),
        ("sentence", "phrase"),
        ("left", "lo"),
        ("right", "hi"),
        ("key", "k"),
        ("list", "lst"),
        ("xs", "values"),
        ("c", "ch"),
        ("ch", "character"),
        ("line", "row"),
        ("lines", "rows"),
        ("data", "payload"),
    ];
    if let Some((_, new)) = TABLE.iter().find(|(old, _)| *old == name) {
        return (*new).to_string();
    }
    match language {
        Language::JavaScript | Language::TypeScript | Language::Tsx | Language::Go => {
            format!("{name}Val")
        }
        _ => format!("{name}_val"),
    }
}

/// Identifiers that declare a local (parameter or variable) inside `function`.
fn local_bindings<'t>(language: Language, function: Node<'t>, text: &str) -> Vec<Node<'t>> {
    let mut out = Vec::new();
    let nodes = descendants(function);
    let push_identifiers = |node: Node<'t>, out: &mut Vec<Node<'t>>| {
        for n in descendants(node) {
            if n.kind() == "identifier" {
                out.push(n);
            }
        }
    };
    for node in nodes {
        match (language, node.kind()) {
            (Language::Python, "parameters") | (Language::Python, "lambda_parameters") => {
                let mut c = node.walk();
                for param in node.named_children(&mut c) {
                    // Parameter names only, not their default values or types.
                    match param.kind() {
                        "identifier" => out.push(param),
                        "default_parameter" | "typed_default_parameter" => {
                            if let Some(name) = param.child_by_field_name("name") {
                                push_identifiers(name, &mut out);
                            }
                        }
                        "typed_parameter" | "list_splat_pattern" | "dictionary_splat_pattern" => {
                            if let Some(name) = param.named_child(0) {
                                if name.kind() == "identifier" {
                                    out.push(name);
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            (Language::Python, "assignment")
            | (Language::Python, "augmented_assignment")
            | (Language::Python, "for_statement")
            | (Language::Python, "for_in_clause") => {
                if let Some(left) = node.child_by_field_name("left") {
                    if matches!(
                        left.kind(),
                        "identifier" | "pattern_list" | "tuple_pattern" | "list_pattern"
                    ) {
                        push_identifiers(left, &mut out);
                    }
                }
            }
            (Language::Rust, "parameter") | (Language::Rust, "let_declaration") => {
                if let Some(pattern) = node.child_by_field_name("pattern") {
                    push_identifiers(pattern, &mut out);
                }
            }
            (Language::Rust, "for_expression") => {
                if let Some(pattern) = node.child_by_field_name("pattern") {
                    push_identifiers(pattern, &mut out);
                }
            }
            (Language::Rust, "closure_parameters") => {
                let mut c = node.walk();
                for param in node.named_children(&mut c) {
                    if param.kind() == "identifier" {
                        out.push(param);
                    } else if let Some(pattern) = param.child_by_field_name("pattern") {
                        push_identifiers(pattern, &mut out);
                    }
                }
            }
            (Language::JavaScript | Language::TypeScript | Language::Tsx, "formal_parameters") => {
                let mut c = node.walk();
                for param in node.named_children(&mut c) {
                    match param.kind() {
                        "identifier" => out.push(param),
                        "required_parameter" | "optional_parameter" => {
                            if let Some(p) = param.child_by_field_name("pattern") {
                                if p.kind() == "identifier" {
                                    out.push(p);
                                }
                            }
                        }
                        "assignment_pattern" => {
                            if let Some(p) = param.child_by_field_name("left") {
                                if p.kind() == "identifier" {
                                    out.push(p);
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            (Language::JavaScript | Language::TypeScript | Language::Tsx, "arrow_function") => {
                if let Some(p) = node.child_by_field_name("parameter") {
                    if p.kind() == "identifier" {
                        out.push(p);
                    }
                }
            }
            (
                Language::JavaScript | Language::TypeScript | Language::Tsx,
                "variable_declarator",
            ) => {
                if let Some(p) = node.child_by_field_name("name") {
                    if p.kind() == "identifier" {
                        out.push(p);
                    }
                }
            }
            (Language::JavaScript | Language::TypeScript | Language::Tsx, "for_in_statement") => {
                if let Some(p) = node.child_by_field_name("left") {
                    if p.kind() == "identifier" {
                        out.push(p);
                    }
                }
            }
            (Language::Go, "parameter_declaration") | (Language::Go, "var_spec") => {
                let mut c = node.walk();
                for name in node.children_by_field_name("name", &mut c) {
                    if name.kind() == "identifier" {
                        out.push(name);
                    }
                }
            }
            (Language::Go, "short_var_declaration") | (Language::Go, "range_clause") => {
                if let Some(left) = node.child_by_field_name("left") {
                    let mut c = left.walk();
                    for name in left.named_children(&mut c) {
                        if name.kind() == "identifier" {
                            out.push(name);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    out.retain(|n| !matches!(node_text(*n, text), "self" | "cls" | "_" | "this"));
    out
}

/// Names a rename must not touch: they also serve as keys or captured names
/// (object shorthand `{x}`, Rust field shorthand and inline format args).
fn rename_blocked(language: Language, function: Node, text: &str, name: &str) -> bool {
    for node in descendants(function) {
        match node.kind() {
            "shorthand_property_identifier"
            | "shorthand_property_identifier_pattern"
            | "shorthand_field_identifier"
                if node_text(node, text) == name =>
            {
                return true
            }
            "shorthand_field_initializer" if node_text(node, text).trim() == name => return true,
            "string_literal" | "raw_string_literal" if language == Language::Rust => {
                let s = node_text(node, text);
                if s.contains(&format!("{{{name}}}")) || s.contains(&format!("{{{name}:")) {
                    return true;
                }
            }
            _ => {}
        }
    }
    false
}

/// Identifier nodes in `scope` that name a variable `name` (not a field,
/// attribute or keyword argument).
fn variable_uses<'t>(scope: Node<'t>, text: &str, name: &str) -> Vec<Node<'t>> {
    descendants(scope)
        .into_iter()
        .filter(|n| n.kind() == "identifier" && node_text(*n, text) == name)
        .filter(|n| {
            let Some(parent) = n.parent() else {
                return true;
            };
            let field_of =
                |field: &str| parent.child_by_field_name(field).map(|c| c.id()) == Some(n.id());
            !((parent.kind() == "attribute" && field_of("attribute"))
                || (parent.kind() == "keyword_argument" && field_of("name")))
        })
        .collect()
}

fn rename_locals(fixture: &Fixture) -> Option<Fixture> {
    rename_locals_with(fixture, &mut |name| renamed_local(fixture.language, name))
}

/// Renames the parameters and local variables of the function around the
/// cursor, each to the name `namer` gives (made unique with `_`).
pub(crate) fn rename_locals_with(
    fixture: &Fixture,
    namer: &mut dyn FnMut(&str) -> String,
) -> Option<Fixture> {
    let text = &fixture.document;
    let tree = parse(text, fixture.language)?;
    let function = enclosing_function(&tree, fixture.language, fixture.cursor)?;
    let own_name = function
        .child_by_field_name("name")
        .map(|n| node_text(n, text).to_string());
    let mut names: Vec<String> = Vec::new();
    for binding in local_bindings(fixture.language, function, text) {
        let name = node_text(binding, text).to_string();
        if !names.contains(&name) && Some(&name) != own_name.as_ref() {
            names.push(name);
        }
    }
    let mut edits = Vec::new();
    let mut taken: Vec<String> = Vec::new();
    for name in names {
        if rename_blocked(fixture.language, function, text, &name)
            || fixture
                .asserts
                .as_deref()
                .is_some_and(|a| a.contains(&format!("{name}=")))
        {
            continue;
        }
        let mut new = namer(&name);
        while contains_word(fixture, &new) || taken.contains(&new) {
            new.push('_');
        }
        taken.push(new.clone());
        for node in variable_uses(function, text, &name) {
            // Leave a half-typed identifier at the cursor alone.
            if node.end_byte() == fixture.cursor && node.start_byte() < fixture.cursor {
                let whole = local_bindings(fixture.language, function, text)
                    .iter()
                    .any(|b| b.id() == node.id());
                if !whole {
                    continue;
                }
            }
            edits.push(Edit::new(node.start_byte(), node.end_byte(), new.clone()));
        }
    }
    if edits.is_empty() {
        return None;
    }
    Some(apply_edits(fixture, edits))
}

fn renamed_function(language: Language, name: &str) -> String {
    match language {
        Language::Python | Language::Rust => format!("{name}_impl"),
        _ => format!("{name}Impl"),
    }
}

fn rename_function(fixture: &Fixture) -> Option<Fixture> {
    let text = &fixture.document;
    let tree = parse(text, fixture.language)?;
    let function = enclosing_function(&tree, fixture.language, fixture.cursor)?;
    let name_node = function.child_by_field_name("name")?;
    if name_node.kind() != "identifier" {
        return None;
    }
    let name = node_text(name_node, text).to_string();
    let mut new = renamed_function(fixture.language, &name);
    while contains_word(fixture, &new) {
        new.push('_');
    }
    let mut edits: Vec<Edit> = descendants(tree.root_node())
        .into_iter()
        .filter(|n| n.kind() == "identifier" && node_text(*n, text) == name)
        .map(|n| Edit::new(n.start_byte(), n.end_byte(), new.clone()))
        .collect();
    // Calls in docstrings, comments and strings (`>>> name(1)`) follow.
    for start in word_occurrences(text, &name) {
        let end = start + name.len();
        if text[end..].starts_with('(') && !edits.iter().any(|e| e.start == start) {
            edits.push(Edit::new(start, end, new.clone()));
        }
    }
    // Go's doc comments start with the function's name.
    if fixture.language == Language::Go {
        for comment in doc_comments(&tree, fixture.cursor) {
            for start in word_occurrences(node_text(comment, text), &name) {
                let start = comment.start_byte() + start;
                edits.push(Edit::new(start, start + name.len(), new.clone()));
            }
        }
    }
    let mut out = apply_edits(fixture, edits);
    out.asserts = fixture
        .asserts
        .as_deref()
        .map(|a| replace_words(a, &name, &new));
    out.check = fixture
        .check
        .as_deref()
        .map(|c| replace_words(c, &name, &new));
    Some(out)
}

/// The docstring of the Python function around the cursor: the string
/// node of the body's first statement.
fn python_docstring<'t>(tree: &'t Tree, cursor: usize) -> Option<Node<'t>> {
    let function = enclosing_function(tree, Language::Python, cursor)?;
    let body = function.child_by_field_name("body")?;
    let first = body.named_child(0)?;
    if first.kind() != "expression_statement" {
        return None;
    }
    let string = first.named_child(0)?;
    (string.kind() == "string").then_some(string)
}

/// Opening quote of a Python string node (prefix included) and its length.
pub(crate) fn python_quotes(s: &str) -> Option<(usize, &'static str)> {
    let prefix = s.len()
        - s.trim_start_matches(|c: char| c.is_ascii_alphabetic())
            .len();
    let body = &s[prefix..];
    for q in ["\"\"\"", "'''"] {
        if body.starts_with(q) && body.ends_with(q) && body.len() >= 6 {
            return Some((prefix + 3, q));
        }
    }
    None
}

/// The comment block documenting the item around the cursor (non-Python).
fn doc_comments<'t>(tree: &'t Tree, cursor: usize) -> Vec<Node<'t>> {
    match top_level_item(tree, cursor) {
        Some(item) => leading_comments(item),
        None => Vec::new(),
    }
}

/// The lines of text inside a comment block, without comment markers.
fn comment_lines(text: &str, comments: &[Node]) -> Vec<String> {
    let mut lines = Vec::new();
    for c in comments {
        let raw = node_text(*c, text);
        if let Some(inner) = raw.strip_prefix("/*") {
            let inner = inner
                .trim_start_matches('*')
                .strip_suffix("*/")
                .unwrap_or(inner);
            for line in inner.lines() {
                let line = line.trim();
                let line = line.strip_prefix('*').unwrap_or(line).trim();
                if !line.is_empty() {
                    lines.push(line.to_string());
                }
            }
        } else {
            let line = raw
                .trim_start_matches('/')
                .trim_start_matches('!')
                .trim_end_matches(['\r', '\n']);
            lines.push(line.strip_prefix(' ').unwrap_or(line).to_string());
        }
    }
    lines
}

fn reformat_docstring(fixture: &Fixture) -> Option<Fixture> {
    let text = &fixture.document;
    let tree = parse(text, fixture.language)?;
    if fixture.language == Language::Python {
        let doc = python_docstring(&tree, fixture.cursor)?;
        let raw = node_text(doc, text);
        let (open_len, quote) = python_quotes(raw)?;
        let indent = indentation_of_line(text, doc.start_byte());
        let inner = &raw[open_len..raw.len() - 3];
        let new_inner = if inner.starts_with('\n') {
            // Summary on its own line: move it up to the quotes.
            let trimmed = inner.trim_start();
            let trimmed_end = trimmed.trim_end();
            if trimmed_end.contains('\n') {
                format!("{trimmed_end}\n{indent}")
            } else {
                trimmed_end.to_string()
            }
        } else if inner.contains('\n') {
            // Summary on the quotes' line: give it its own line.
            format!("\n{indent}{}", inner)
        } else {
            format!("\n{indent}{}\n{indent}", inner.trim())
        };
        let new = format!("{}{new_inner}{quote}", &raw[..open_len]);
        return Some(apply_edits(
            fixture,
            vec![Edit::new(doc.start_byte(), doc.end_byte(), new)],
        ));
    }
    let comments = doc_comments(&tree, fixture.cursor);
    let first = comments.first()?;
    let last = comments.last()?;
    let lines = comment_lines(text, &comments);
    let raw_first = node_text(*first, text);
    let new = if raw_first.starts_with("/*") {
        let prefix = if fixture.language == Language::Rust && raw_first.starts_with("/**") {
            "///"
        } else {
            "//"
        };
        lines
            .iter()
            .map(|l| format!("{prefix} {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    } else {
        let doc = fixture.language == Language::Rust && raw_first.starts_with("///")
            || fixture.language != Language::Rust && fixture.language != Language::Go;
        let open = if doc { "/**" } else { "/*" };
        let mut block = format!("{open}\n");
        for l in &lines {
            block.push_str(&format!(" * {l}\n"));
        }
        block.push_str(" */");
        block
    };
    // Line comments may include their newline (tree-sitter-rust does).
    let end = if node_text(*last, text).ends_with('\n') {
        last.end_byte() - 1
    } else {
        last.end_byte()
    };
    Some(apply_edits(
        fixture,
        vec![Edit::new(first.start_byte(), end, new)],
    ))
}

fn crlf(fixture: &Fixture) -> Option<Fixture> {
    let text = &fixture.document;
    if text.contains("\r\n") {
        return None;
    }
    let edits = text
        .match_indices('\n')
        .map(|(i, _)| Edit::new(i, i + 1, "\r\n"))
        .collect();
    Some(apply_edits(fixture, edits))
}

/// Indentation by tabs becomes spaces (4 per tab, Go's usual), indentation
/// by spaces becomes tabs (one per indent step).
fn swap_indentation(fixture: &Fixture) -> Option<Fixture> {
    let text = &fixture.document;
    let step = codegen_context::indent_step(text).max(1);
    let mut edits = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let n_tabs = line.len() - line.trim_start_matches('\t').len();
        let n_spaces = line.len() - line.trim_start_matches(' ').len();
        if n_tabs > 0 {
            edits.push(Edit::new(offset, offset + n_tabs, " ".repeat(4 * n_tabs)));
        } else if n_spaces >= step {
            let levels = n_spaces / step;
            let rest = n_spaces % step;
            edits.push(Edit::new(
                offset,
                offset + n_spaces,
                format!("{}{}", "\t".repeat(levels), " ".repeat(rest)),
            ));
        }
        offset += line.len();
    }
    if edits.is_empty() {
        return None;
    }
    Some(apply_edits(fixture, edits))
}

/// Where to insert a new top-level item above the one around the cursor
/// (above its comments); after Go's package clause and imports at least.
fn insertion_point(fixture: &Fixture, tree: &Tree) -> Option<usize> {
    let text = &fixture.document;
    let item = top_level_item(tree, fixture.cursor)?;
    if matches!(
        item.kind(),
        "package_clause"
            | "import_declaration"
            | "import_statement"
            | "import_from_statement"
            | "use_declaration"
    ) {
        return None;
    }
    Some(item_start(text, item))
}

fn unique_name(fixture: &Fixture, base: &str) -> String {
    let mut name = base.to_string();
    while contains_word(fixture, &name) {
        name.push('2');
    }
    name
}

fn unrelated_function_above(fixture: &Fixture) -> Option<Fixture> {
    let tree = parse(&fixture.document, fixture.language)?;
    let at = insertion_point(fixture, &tree)?;
    let function = match fixture.language {
        Language::Python => {
            let name = unique_name(fixture, "clamp_percent");
            format!(
                "def {name}(p):\n    \"\"\"Clamp p to 0..100.\"\"\"\n    if p < 0:\n        return 0\n    if p > 100:\n        return 100\n    return p\n\n\n"
            )
        }
        Language::Rust => {
            let name = unique_name(fixture, "clamp_percent");
            format!(
                "/// Clamp p to 0..100.\nfn {name}(p: i32) -> i32 {{\n    p.clamp(0, 100)\n}}\n\n"
            )
        }
        Language::JavaScript => {
            let name = unique_name(fixture, "clampPercent");
            format!(
                "// Clamp p to 0..100.\nfunction {name}(p) {{\n  return Math.min(100, Math.max(0, p));\n}}\n\n"
            )
        }
        Language::TypeScript | Language::Tsx => {
            let name = unique_name(fixture, "clampPercent");
            format!(
                "// Clamp p to 0..100.\nfunction {name}(p: number): number {{\n  return Math.min(100, Math.max(0, p));\n}}\n\n"
            )
        }
        Language::Go => {
            let name = unique_name(fixture, "clampPercent");
            format!(
                "// {name} clamps p to 0..100.\nfunc {name}(p int) int {{\n\tif p < 0 {{\n\t\treturn 0\n\t}}\n\tif p > 100 {{\n\t\treturn 100\n\t}}\n\treturn p\n}}\n\n"
            )
        }
    };
    Some(apply_edits(fixture, vec![Edit::new(at, at, function)]))
}

fn non_ascii_nearby(fixture: &Fixture) -> Option<Fixture> {
    let tree = parse(&fixture.document, fixture.language)?;
    let at = insertion_point(fixture, &tree)?;
    let line = match fixture.language {
        Language::Python => {
            let name = unique_name(fixture, "größe");
            format!("{name} = \"Grüße, 世界 ✓\"\n\n\n")
        }
        Language::Rust => {
            let name = unique_name(fixture, "GRÖSSE");
            format!("static {name}: &str = \"Grüße, 世界 ✓\";\n\n")
        }
        Language::JavaScript | Language::TypeScript | Language::Tsx => {
            let name = unique_name(fixture, "größe");
            format!("const {name} = \"Grüße, 世界 ✓\";\n\n")
        }
        Language::Go => {
            let name = unique_name(fixture, "größe");
            format!("var {name} = \"Grüße, 世界 ✓\"\n\n")
        }
    };
    Some(apply_edits(fixture, vec![Edit::new(at, at, line)]))
}

/// Directional variants: each must move the outcome one way only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Directional {
    /// A docstring example added: must not lower the group's pass rate.
    AddExample,
    /// Type annotations added: must not lower the group's pass rate.
    AddTypes,
    /// The docstring removed: must not raise the group's pass rate.
    RemoveDocstring,
}

impl Directional {
    pub const ALL: [Directional; 3] = [
        Directional::AddExample,
        Directional::AddTypes,
        Directional::RemoveDocstring,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Directional::AddExample => "add-docstring-example",
            Directional::AddTypes => "add-type-annotations",
            Directional::RemoveDocstring => "remove-docstring",
        }
    }

    /// The expected direction: +1 (must not go down) or -1 (must not go up).
    pub fn direction(self) -> i32 {
        match self {
            Directional::AddExample | Directional::AddTypes => 1,
            Directional::RemoveDocstring => -1,
        }
    }
}

/// The fixture with its docstring (Python) or documenting comment removed.
pub fn remove_docstring(fixture: &Fixture) -> Option<Fixture> {
    let text = &fixture.document;
    let tree = parse(text, fixture.language)?;
    if fixture.language == Language::Python {
        let doc = python_docstring(&tree, fixture.cursor)?;
        let start = line_start(text, doc.start_byte());
        let end = line_end(text, doc.end_byte());
        // A body of only the docstring keeps a statement.
        let body_rest = text[end..].trim_start();
        let cursor_after = fixture.cursor >= end;
        if !cursor_after && body_rest.is_empty() {
            return None;
        }
        return Some(apply_edits(fixture, vec![Edit::new(start, end, "")]));
    }
    let comments = doc_comments(&tree, fixture.cursor);
    let first = comments.first()?;
    let last = comments.last()?;
    let start = line_start(text, first.start_byte());
    let last_end = if node_text(*last, text).ends_with('\n') {
        last.end_byte()
    } else {
        line_end(text, last.end_byte())
    };
    Some(apply_edits(fixture, vec![Edit::new(start, last_end, "")]))
}

/// The fixture with `example` (lines, e.g. `>>> add(2, 3)` and `5`) added at
/// the end of its docstring, or as comment lines at the end of the
/// documenting comment.
pub fn add_example(fixture: &Fixture, example: &str) -> Option<Fixture> {
    let text = &fixture.document;
    let tree = parse(text, fixture.language)?;
    let example = example.trim_matches('\n');
    if example.trim().is_empty() {
        return None;
    }
    if fixture.language == Language::Python {
        let doc = python_docstring(&tree, fixture.cursor)?;
        let raw = node_text(doc, text);
        let (open_len, quote) = python_quotes(raw)?;
        let indent = indentation_of_line(text, doc.start_byte());
        let inner = &raw[open_len..raw.len() - 3];
        let body = inner.trim_end();
        let mut new = format!("{}{body}\n\n", &raw[..open_len]);
        for line in example.lines() {
            new.push_str(&format!("{indent}{}\n", line.trim_end()));
        }
        new.push_str(&format!("{indent}{quote}"));
        return Some(apply_edits(
            fixture,
            vec![Edit::new(doc.start_byte(), doc.end_byte(), new)],
        ));
    }
    let comments = doc_comments(&tree, fixture.cursor);
    let last = comments.last()?;
    let raw_last = node_text(*last, text);
    if raw_last.starts_with("/*") {
        if !raw_last.ends_with("*/") || raw_last.len() < 4 {
            return None;
        }
        let close = last.end_byte() - 2;
        let line_at = line_start(text, close);
        let mut new = String::new();
        let on_own_line = text[line_at..close].trim().is_empty();
        if !on_own_line {
            new.push('\n');
        }
        for line in example.lines() {
            new.push_str(&format!(" * {}\n", line.trim_end()));
        }
        let at = if on_own_line { line_at } else { close };
        if !on_own_line {
            new.push(' ');
        }
        return Some(apply_edits(fixture, vec![Edit::new(at, at, new)]));
    }
    let prefix = if raw_last.starts_with("///") {
        "///"
    } else {
        "//"
    };
    let end = if raw_last.ends_with('\n') {
        last.end_byte()
    } else {
        line_end(text, last.end_byte())
    };
    let indent = indentation_of_line(text, last.start_byte());
    let mut new = String::new();
    if !text[..end].ends_with('\n') {
        new.push('\n');
    }
    for line in example.lines() {
        new.push_str(&format!("{indent}{prefix} {}\n", line.trim_end()));
    }
    Some(apply_edits(fixture, vec![Edit::new(end, end, new)]))
}

#[cfg(test)]
#[path = "transform_tests.rs"]
mod tests;
