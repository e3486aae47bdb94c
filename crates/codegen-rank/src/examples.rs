//! Examples the user wrote in a docstring, turned into calls with expected
//! values: `>>>` doctests, `f(1, 2) == 3` / `➞` / `=>` / `->` / `returns` /
//! `should return` lines, `For x = 1 the output should be 2` and
//! `Input: ... Output: ...` blocks.
//!
//! Extraction is textual and lenient: it proposes the call and several
//! readings of the expected value; the sandboxed program decides which of them
//! parse as Python (see `harness.rs`) and drops the rest.

use codegen_context::{cursor_scope, ParsedDocument};
use serde::Serialize;

/// How an example was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExampleKind {
    /// `>>> call` followed by the expected output.
    Doctest,
    /// A `>>>` statement without output (an assignment...): run before the
    /// examples that follow it, never counted.
    Setup,
    /// `f(args) == value`, `➞`, `=>`, `->`, `returns`, `should return`...
    Inline,
    /// `For x = 1, y = 2 the output should be value`.
    ForAssignment,
    /// `Input: ...` then `Output: ...` on the next line.
    InputOutput,
}

/// One example: a Python expression (normally a call of the function) and
/// readings of its expected value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Example {
    pub kind: ExampleKind,
    /// The expression (or, for [`ExampleKind::Setup`], the statement) to run.
    pub call: String,
    /// The arguments as written positionally, when known (for the overlap
    /// report: hidden tests call `candidate(args)`).
    pub args: Option<String>,
    /// Readings of the expected value, best first; the sandboxed program uses
    /// the first that parses as an expression of constants and builtins.
    pub expected: Vec<String>,
    /// 1-based line in the docstring where the example starts.
    pub line: usize,
}

/// The function whose docstring gives the examples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionInfo {
    pub name: String,
    /// Parameter names in order (`self`, `cls`, `*`, `/` left out).
    pub params: Vec<String>,
    /// The docstring's text without its quotes.
    pub docstring: String,
    /// The function's body holds nothing but its docstring and whitespace
    /// outside the cursor position: a completion there is a whole body.
    pub body_is_empty: bool,
    /// Names defined by `def`/`class` anywhere in the document.
    pub defined_names: Vec<String>,
}

/// The innermost function holding `cursor`, if it is a Python function.
pub fn function_at(doc: &ParsedDocument, cursor: usize) -> Option<FunctionInfo> {
    let scope = cursor_scope(doc, cursor);
    let function = scope.function?;
    let name = function.name.clone()?;
    let text = doc.text();
    let docstring = function
        .docstring
        .as_deref()
        .map(strip_quotes)
        .unwrap_or_default();
    let body_is_empty = match function.body_start {
        Some(body_start) => {
            let end = function.end_byte.min(text.len());
            let body = text.get(body_start.min(end)..end).unwrap_or("");
            let rest = match function.docstring_range {
                Some((s, e)) if s >= body_start && e <= end => {
                    format!("{}{}", &text[body_start..s], &text[e..end])
                }
                _ => body.to_string(),
            };
            rest.trim().trim_start_matches(':').trim().is_empty()
        }
        None => false,
    };
    Some(FunctionInfo {
        params: parse_params(&function.signature),
        name,
        docstring,
        body_is_empty,
        defined_names: defined_names(text),
    })
}

/// The top-level or nested function `def name(` in the document (the first
/// one), e.g. a HumanEval problem's entry point.
pub fn function_named(doc: &ParsedDocument, name: &str) -> Option<FunctionInfo> {
    let text = doc.text();
    let needle = format!("def {name}(");
    let mut from = 0;
    while let Some(pos) = text[from..].find(&needle).map(|p| p + from) {
        let boundary_ok = pos == 0 || !is_ident_byte(text.as_bytes()[pos - 1]);
        if boundary_ok {
            // A cursor inside the parameter list lies within the def node.
            let info = function_at(doc, pos + needle.len())?;
            return (info.name == name).then_some(info);
        }
        from = pos + needle.len();
    }
    None
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn strip_quotes(raw: &str) -> String {
    let s = raw.trim();
    let s = s.trim_start_matches(['r', 'R', 'u', 'U', 'b', 'B']);
    for q in ["\"\"\"", "'''", "\"", "'"] {
        if s.len() >= 2 * q.len() && s.starts_with(q) && s.ends_with(q) {
            return s[q.len()..s.len() - q.len()].to_string();
        }
    }
    s.to_string()
}

/// Parameter names from a signature such as `def f(a: int, b=2, *args) -> int:`.
pub fn parse_params(signature: &str) -> Vec<String> {
    let Some(open) = signature.find('(') else {
        return Vec::new();
    };
    let Some(close) = balanced_end(signature, open) else {
        return Vec::new();
    };
    let inner = &signature[open + 1..close - 1];
    split_top_level(inner, ',')
        .into_iter()
        .filter_map(|p| {
            let p = p.trim();
            let p = p.trim_start_matches('*');
            let end = p.find([':', '=']).unwrap_or(p.len());
            let name = p[..end].trim();
            let ok = !name.is_empty()
                && name != "self"
                && name != "cls"
                && name.bytes().all(is_ident_byte);
            ok.then(|| name.to_string())
        })
        .collect()
}

fn defined_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in text.lines() {
        let t = line.trim_start();
        let rest = t
            .strip_prefix("def ")
            .or_else(|| t.strip_prefix("async def "))
            .or_else(|| t.strip_prefix("class "));
        if let Some(rest) = rest {
            let name: String = rest
                .trim_start()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
}

/// At most this many examples are taken from one docstring.
pub const MAX_EXAMPLES: usize = 24;

/// Examples in `function`'s docstring, in order of appearance, without
/// duplicates (same call).
pub fn extract_examples(function: &FunctionInfo) -> Vec<Example> {
    let doc = &function.docstring;
    let lines: Vec<&str> = doc.lines().collect();
    let mut consumed = vec![false; lines.len()];
    let mut found: Vec<Example> = Vec::new();
    doctests(&lines, &mut consumed, &mut found);
    input_output(function, &lines, &mut consumed, &mut found);
    for_assignments(function, &lines, &mut consumed, &mut found);
    inline(function, doc, &consumed, &mut found);
    found.sort_by_key(|e| e.line);
    let mut out: Vec<Example> = Vec::new();
    for example in found {
        if example.kind != ExampleKind::Setup && out.iter().any(|e| e.call == example.call) {
            continue;
        }
        out.push(example);
    }
    let mut counted = 0;
    out.retain(|e| {
        if e.kind == ExampleKind::Setup {
            return true;
        }
        counted += 1;
        counted <= MAX_EXAMPLES
    });
    out
}

fn doctests(lines: &[&str], consumed: &mut [bool], out: &mut Vec<Example>) {
    let mut i = 0;
    while i < lines.len() {
        let Some(src) = lines[i].trim_start().strip_prefix(">>>") else {
            i += 1;
            continue;
        };
        let start = i;
        consumed[i] = true;
        let mut source = src.strip_prefix(' ').unwrap_or(src).trim_end().to_string();
        i += 1;
        while i < lines.len() {
            let t = lines[i].trim_start();
            let Some(cont) = t.strip_prefix("...") else {
                break;
            };
            source.push('\n');
            source.push_str(cont.strip_prefix(' ').unwrap_or(cont).trim_end());
            consumed[i] = true;
            i += 1;
        }
        let mut expected_lines = Vec::new();
        while i < lines.len() {
            let t = lines[i].trim();
            if t.is_empty() || t.starts_with(">>>") {
                break;
            }
            expected_lines.push(t);
            consumed[i] = true;
            i += 1;
        }
        let source = cut_comment(&source).trim_end().to_string();
        let expected = expected_lines.join("\n");
        if expected.is_empty() {
            // `>>> f(x) == y` (or `f(x) y`) with no output line: the
            // expected value is on the same line; `>>> f(x)` alone expects
            // None, as doctest reads it; anything else is a setup statement.
            let bare = source.strip_prefix("assert ").unwrap_or(&source).trim();
            let call_end = bare
                .find('(')
                .filter(|&open| bare[..open].bytes().all(|b| is_ident_byte(b) || b == b'.'))
                .and_then(|open| balanced_end(bare, open));
            let example = call_end.and_then(|end| {
                let rest = bare[end..].trim();
                let expected = if rest.is_empty() {
                    "None"
                } else {
                    strip_separator(rest).unwrap_or(rest)
                };
                (!expected.is_empty()).then(|| Example {
                    kind: ExampleKind::Doctest,
                    call: bare[..end].to_string(),
                    args: call_args(&bare[..end]),
                    expected: expected_readings(expected),
                    line: start + 1,
                })
            });
            out.push(example.unwrap_or(Example {
                kind: ExampleKind::Setup,
                call: source,
                args: None,
                expected: Vec::new(),
                line: start + 1,
            }));
        } else {
            let args = call_args(&source);
            out.push(Example {
                kind: ExampleKind::Doctest,
                call: source,
                args,
                expected: expected_readings(&expected),
                line: start + 1,
            });
        }
    }
}

fn input_output(
    function: &FunctionInfo,
    lines: &[&str],
    consumed: &mut [bool],
    out: &mut Vec<Example>,
) {
    for i in 0..lines.len() {
        if consumed[i] {
            continue;
        }
        let Some(input) = strip_prefix_ci(lines[i].trim(), "input:") else {
            continue;
        };
        let input = input.trim();
        if input.is_empty() {
            continue;
        }
        let Some(j) = (i + 1..lines.len()).find(|&j| !lines[j].trim().is_empty()) else {
            continue;
        };
        let Some(output) = strip_prefix_ci(lines[j].trim(), "output:") else {
            continue;
        };
        let output = output.trim();
        if output.is_empty() {
            continue;
        }
        let (call, args) = match parse_assignments(input) {
            Some(assignments) if !assignments.is_empty() => {
                match call_from_assignments(function, &assignments) {
                    Some(c) => c,
                    None => continue,
                }
            }
            _ => (
                format!("{}({input})", function.name),
                Some(input.to_string()),
            ),
        };
        consumed[i] = true;
        consumed[j] = true;
        out.push(Example {
            kind: ExampleKind::InputOutput,
            call,
            args,
            expected: expected_readings(output),
            line: i + 1,
        });
    }
}

fn for_assignments(
    function: &FunctionInfo,
    lines: &[&str],
    consumed: &mut [bool],
    out: &mut Vec<Example>,
) {
    for (i, line) in lines.iter().enumerate() {
        if consumed[i] {
            continue;
        }
        let t = line.trim();
        let Some(rest) = strip_prefix_ci(t, "for ") else {
            continue;
        };
        let lower = rest.to_ascii_lowercase();
        let Some(should) = lower.find("should be") else {
            continue;
        };
        let expected = rest[should + "should be".len()..].trim();
        let Some(assignments) = parse_assignments(&rest[..should]) else {
            continue;
        };
        if assignments.is_empty() || expected.is_empty() {
            continue;
        }
        let Some((call, args)) = call_from_assignments(function, &assignments) else {
            continue;
        };
        consumed[i] = true;
        out.push(Example {
            kind: ExampleKind::ForAssignment,
            call,
            args,
            expected: expected_readings(expected),
            line: i + 1,
        });
    }
}

/// Separators between a call and its expected value, longest first.
const SEPARATORS: &[&str] = &[
    "should return",
    "# returns",
    "#returns",
    "returns",
    "==>",
    "==",
    "=>",
    "➞",
    "→",
    "->",
    "=",
];

fn inline(function: &FunctionInfo, doc: &str, consumed: &[bool], out: &mut Vec<Example>) {
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(doc.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let line_of = |pos: usize| line_starts.partition_point(|&start| start <= pos) - 1;
    // Callees: the function itself anywhere; another undefined, non-builtin
    // name only at the start of a line (a docstring that names the function
    // differently, e.g. `grade_equation(...)` for `numerical_letter_grade`).
    let bytes = doc.as_bytes();
    let mut pos = 0;
    while pos < bytes.len() {
        if !is_ident_byte(bytes[pos])
            || (pos > 0 && (is_ident_byte(bytes[pos - 1]) || bytes[pos - 1] == b'.'))
        {
            pos += 1;
            continue;
        }
        let ident_end = pos + doc[pos..].bytes().take_while(|b| is_ident_byte(*b)).count();
        let ident = &doc[pos..ident_end];
        let after = doc[ident_end..].trim_start_matches([' ', '\t']);
        let open = doc.len() - after.len();
        let line = line_of(pos);
        let at_line_start = {
            let line_start = doc[..pos].rfind('\n').map_or(0, |p| p + 1);
            let before = doc[line_start..pos].trim();
            let before = before.strip_prefix(">>>").unwrap_or(before).trim_start();
            let before = before.strip_prefix("assert").unwrap_or(before);
            before.trim_start_matches(['*', '-']).trim().is_empty()
        };
        let is_callee = ident == function.name
            || (at_line_start
                && !function.defined_names.iter().any(|n| n == ident)
                && !PY_BUILTINS.contains(&ident)
                && !ident.bytes().all(|b| b.is_ascii_digit()));
        if !after.starts_with('(') || !is_callee || consumed.get(line).copied().unwrap_or(false) {
            pos = ident_end;
            continue;
        }
        let Some(close) = balanced_end(doc, open) else {
            pos = ident_end;
            continue;
        };
        let args = doc[open + 1..close - 1].trim();
        let line_end = doc[close..].find('\n').map_or(doc.len(), |p| close + p);
        let rest = doc[close..line_end].trim();
        let Some(expected) = strip_separator(rest) else {
            pos = close;
            continue;
        };
        if expected.is_empty() || args.contains("\n\n") {
            pos = close;
            continue;
        }
        let call = format!("{}({})", function.name, args);
        out.push(Example {
            kind: ExampleKind::Inline,
            call,
            args: Some(args.to_string()),
            expected: expected_readings(expected),
            line: line + 1,
        });
        pos = close;
    }
}

fn strip_separator(rest: &str) -> Option<&str> {
    let rest = match rest.strip_prefix('#') {
        Some(r) if !r.trim_start().to_ascii_lowercase().starts_with("returns") => r.trim_start(),
        _ => rest,
    };
    let lower = rest.to_ascii_lowercase();
    for sep in SEPARATORS {
        if lower.starts_with(sep) {
            // `=` alone, not `==` (handled above) nor `=>`.
            return Some(rest[sep.len()..].trim());
        }
    }
    None
}

/// Readings of an expected value, best first, without duplicates: the text
/// without a trailing comment, without trailing punctuation, the part after
/// a last top-level `=` (`19 - 5 - 6 = 8`), and the first top-level word.
pub fn expected_readings(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |s: &str| {
        let s = s.trim();
        if !s.is_empty() && !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    };
    let no_comment = cut_comment(text).trim();
    push(no_comment);
    let no_punct = no_comment.trim_end_matches(['.', ',', ';']).trim_end();
    push(no_punct);
    if let Some(eq) = last_top_level(no_punct, '=') {
        let after = no_punct[eq + 1..].trim();
        if !after.is_empty() {
            push(after);
        }
    }
    if let Some(word_end) = first_top_level_space(no_punct) {
        push(no_punct[..word_end].trim_end_matches(['.', ',', ';']));
    }
    out
}

/// Positional arguments of `name(args)` when the text is exactly one call.
fn call_args(source: &str) -> Option<String> {
    let s = source.trim();
    let open = s.find('(')?;
    if !s[..open]
        .trim()
        .bytes()
        .all(|b| is_ident_byte(b) || b == b'.')
    {
        return None;
    }
    let close = balanced_end(s, open)?;
    (close == s.len()).then(|| s[open + 1..close - 1].trim().to_string())
}

/// `a = 1, b = [2, 3]` as (name, value) pairs; `None` when the text does not
/// start with an assignment. Stops at the first piece that is not one.
fn parse_assignments(text: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut rest = text.trim_start();
    loop {
        let name_len = rest.bytes().take_while(|b| is_ident_byte(*b)).count();
        if name_len == 0 || rest.as_bytes()[0].is_ascii_digit() {
            break;
        }
        let name = &rest[..name_len];
        let after = rest[name_len..].trim_start();
        if !after.starts_with('=') || after.starts_with("==") {
            break;
        }
        let value_text = after[1..].trim_start();
        let end = value_end(value_text);
        let value = value_text[..end].trim();
        if value.is_empty() {
            break;
        }
        out.push((name.to_string(), value.to_string()));
        rest = value_text[end..].trim_start();
        match rest.strip_prefix(',') {
            Some(r) => rest = r.trim_start(),
            None => break,
        }
    }
    if out.is_empty() {
        None
    } else {
        Some(out)
    }
}

/// End of a value: a top-level `,` or a top-level space.
fn value_end(text: &str) -> usize {
    let mut depth = 0i32;
    scan_unquoted(text, |i, c| {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            ',' | ' ' | '\t' | '\n' if depth <= 0 => return Some(i),
            _ => {}
        }
        None
    })
    .unwrap_or(text.len())
}

/// Calls `visit(byte_index, char)` for every character of `text` outside
/// Python string quotes (`'…'` / `"…"`, backslash escapes honoured) until it
/// returns `Some`.
fn scan_unquoted<T>(text: &str, mut visit: impl FnMut(usize, char) -> Option<T>) -> Option<T> {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        if c == '"' || c == '\'' {
            quote = Some(c);
            continue;
        }
        if let Some(found) = visit(i, c) {
            return Some(found);
        }
    }
    None
}

fn call_from_assignments(
    function: &FunctionInfo,
    assignments: &[(String, String)],
) -> Option<(String, Option<String>)> {
    let params = &function.params;
    let all_known = assignments.iter().all(|(n, _)| params.contains(n));
    if all_known {
        let kwargs: Vec<String> = assignments
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        let positional = (assignments.len() == params.len())
            .then(|| {
                params
                    .iter()
                    .map(|p| {
                        assignments
                            .iter()
                            .find(|(n, _)| n == p)
                            .map(|(_, v)| v.clone())
                    })
                    .collect::<Option<Vec<String>>>()
            })
            .flatten()
            .map(|v| v.join(", "));
        return Some((
            format!("{}({})", function.name, kwargs.join(", ")),
            positional,
        ));
    }
    if assignments.len() == params.len() {
        let values: Vec<&str> = assignments.iter().map(|(_, v)| v.as_str()).collect();
        let args = values.join(", ");
        return Some((format!("{}({args})", function.name), Some(args)));
    }
    None
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Byte index just past the bracket matching the one at `open`, skipping
/// string literals.
pub(crate) fn balanced_end(text: &str, open: usize) -> Option<usize> {
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in text[open..].char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q || c == '\n' && depth == 0 {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + i + c.len_utf8());
                }
                if depth < 0 {
                    return None;
                }
            }
            _ => {}
        }
    }
    None
}

/// Splits at top-level `sep` (outside brackets and strings).
fn split_top_level(text: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            c if c == sep && depth == 0 => {
                out.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    out.push(&text[start..]);
    out
}

/// Index of the last top-level `c` that is a lone `=` (not `==`, `<=`...).
fn last_top_level(text: &str, c: char) -> Option<usize> {
    let mut found = None;
    let mut offset = 0;
    for piece in split_top_level(text, c) {
        offset += piece.len();
        if offset < text.len() {
            let before = text[..offset].chars().last();
            let after = text[offset + 1..].chars().next();
            let lone = !matches!(before, Some('=' | '<' | '>' | '!')) && after != Some('=');
            if lone {
                found = Some(offset);
            }
        }
        offset += c.len_utf8();
    }
    found
}

fn first_top_level_space(text: &str) -> Option<usize> {
    let end = value_end(text);
    (end < text.len()).then_some(end)
}

fn cut_comment(text: &str) -> &str {
    match scan_unquoted(text, |i, c| (c == '#').then_some(i)) {
        Some(i) => &text[..i],
        None => text,
    }
}

/// Builtins that are never taken for a misnamed function in an example.
const PY_BUILTINS: &[&str] = &[
    "abs",
    "all",
    "any",
    "bin",
    "bool",
    "chr",
    "dict",
    "divmod",
    "enumerate",
    "filter",
    "float",
    "format",
    "hex",
    "int",
    "isinstance",
    "len",
    "list",
    "map",
    "max",
    "min",
    "oct",
    "ord",
    "pow",
    "print",
    "range",
    "repr",
    "reversed",
    "round",
    "set",
    "sorted",
    "str",
    "sum",
    "tuple",
    "type",
    "zip",
    "Example",
    "Examples",
    "Note",
    "Input",
    "Output",
    "For",
    "for",
    "if",
    "and",
    "or",
    "not",
    "is",
    "in",
    "return",
    "returns",
    "e",
    "g",
    "i",
    "ie",
    "eg",
];
