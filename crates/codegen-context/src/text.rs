//! Small text helpers shared by the modules: lines, indentation, line endings.

/// Largest char boundary `<= offset`, clamped to the text's length.
pub(crate) fn floor_char_boundary(text: &str, offset: usize) -> usize {
    let mut offset = offset.min(text.len());
    while offset > 0 && !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// Byte offset of the start of the line holding `offset`.
pub(crate) fn line_start(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1)
}

/// Byte offset of the end of the line holding `offset`, before `\n` or `\r\n`.
pub(crate) fn line_end(text: &str, offset: usize) -> usize {
    let bytes = text.as_bytes();
    let end = bytes[offset..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(text.len(), |i| offset + i);
    if end > offset && bytes[end - 1] == b'\r' {
        end - 1
    } else {
        end
    }
}

/// Byte offset of the start of the next line, or the text's length.
pub(crate) fn next_line_start(text: &str, offset: usize) -> usize {
    text.as_bytes()[offset..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(text.len(), |i| offset + i + 1)
}

/// Leading whitespace of a line.
pub(crate) fn leading_ws(line: &str) -> &str {
    let n = line.len() - line.trim_start_matches([' ', '\t']).len();
    &line[..n]
}

/// Width of leading whitespace, tabs counted as `tab_width` columns.
pub(crate) fn indent_width(line: &str, tab_width: usize) -> usize {
    leading_ws(line)
        .chars()
        .map(|c| if c == '\t' { tab_width } else { 1 })
        .sum()
}

/// Whether the file indents with tabs or spaces, and how wide one level is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IndentStyle {
    Tabs,
    Spaces(usize),
}

impl IndentStyle {
    pub(crate) fn width(self) -> usize {
        match self {
            IndentStyle::Tabs => 4,
            IndentStyle::Spaces(n) => n,
        }
    }
}

/// Columns per indentation level of `text` (4 when it cannot tell).
pub fn indent_step(text: &str) -> usize {
    detect_indent(text).map_or(4, IndentStyle::width)
}

/// Detect the indentation style from the lines of `text` (first 2,000 lines at most).
/// Returns `None` when no line is indented.
pub(crate) fn detect_indent(text: &str) -> Option<IndentStyle> {
    let mut tab_lines = 0usize;
    let mut space_lines = 0usize;
    // Histogram of positive indentation changes between consecutive lines.
    let mut deltas = [0usize; 9];
    let mut prev_spaces = 0usize;
    for line in text.lines().take(2000) {
        if line.trim().is_empty() {
            continue;
        }
        let ws = leading_ws(line);
        if ws.starts_with('\t') {
            tab_lines += 1;
            continue;
        }
        let spaces = ws.len();
        if spaces > 0 {
            space_lines += 1;
        }
        if spaces > prev_spaces && spaces - prev_spaces <= 8 {
            deltas[spaces - prev_spaces] += 1;
        }
        prev_spaces = spaces;
    }
    if tab_lines == 0 && space_lines == 0 {
        return None;
    }
    if tab_lines > space_lines {
        return Some(IndentStyle::Tabs);
    }
    let width = (1..=8)
        .filter(|&w| deltas[w] > 0)
        .max_by_key(|&w| (deltas[w], std::cmp::Reverse(w)))
        .unwrap_or(4);
    Some(IndentStyle::Spaces(width))
}

/// `"\r\n"` when most of the file's line endings are CRLF, else `"\n"`.
pub(crate) fn detect_line_ending(text: &str) -> &'static str {
    // The first 64 KiB tell as well as the whole file.
    let text = &text[..floor_char_boundary(text, 64 * 1024)];
    let n_lf = text.matches('\n').count();
    let n_crlf = text.matches("\r\n").count();
    if n_crlf > 0 && n_crlf * 2 >= n_lf {
        "\r\n"
    } else {
        "\n"
    }
}

pub(crate) fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}
