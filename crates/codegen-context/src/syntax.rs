//! Syntax check for ranking: error and missing-node counts in the cursor's
//! scope with and without a candidate inserted.

use crate::document::ParsedDocument;
use crate::scope::{clamp_cursor, cursor_scope};
use tree_sitter::Node;

/// Error and missing-node counts of the enclosing scope before and after
/// inserting a candidate. A comparison for ranking, not a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SyntaxCheck {
    pub errors_before: usize,
    pub missing_before: usize,
    pub errors_after: usize,
    pub missing_after: usize,
}

impl SyntaxCheck {
    /// Problems added by the insertion (negative when it fixes some).
    pub fn delta(&self) -> i64 {
        (self.errors_after + self.missing_after) as i64
            - (self.errors_before + self.missing_before) as i64
    }

    /// The insertion made the scope's syntax worse.
    pub fn is_worse(&self) -> bool {
        self.delta() > 0
    }
}

/// Count ERROR and MISSING nodes in the cursor's scope (enclosing function,
/// else class, else file) before and after inserting `insertion` at `cursor`.
pub fn syntax_check(doc: &ParsedDocument, cursor: usize, insertion: &str) -> SyntaxCheck {
    let mut notes = Vec::new();
    let cursor = clamp_cursor(doc.text(), cursor, &mut notes);
    let scope = cursor_scope(doc, cursor);
    let (start, end) = scope.scope_range(doc.text().len());
    let (errors_before, missing_before) = doc
        .tree()
        .map_or((0, 0), |t| count_problems(t.root_node(), start, end));
    let after = doc.with_insertion(cursor, insertion);
    // The scope may grow in the new tree (a brace the insertion left open
    // swallows what follows): count over both ranges.
    let (new_start, new_end) = cursor_scope(&after, cursor).scope_range(after.text().len());
    let (errors_after, missing_after) = after.tree().map_or((0, 0), |t| {
        count_problems(
            t.root_node(),
            start.min(new_start),
            (end + insertion.len()).max(new_end),
        )
    });
    SyntaxCheck {
        errors_before,
        missing_before,
        errors_after,
        missing_after,
    }
}

/// (ERROR nodes, MISSING nodes) overlapping `start..end`; only subtrees that
/// contain errors are walked.
fn count_problems(root: Node, start: usize, end: usize) -> (usize, usize) {
    let mut errors = 0;
    let mut missing = 0;
    let mut stack = vec![root];
    while let Some(node) = stack.pop() {
        let overlaps = node.start_byte() <= end && node.end_byte() >= start;
        if !overlaps {
            continue;
        }
        if node.is_error() {
            errors += 1;
        }
        if node.is_missing() {
            missing += 1;
        }
        if !node.has_error() {
            continue;
        }
        let mut cursor = node.walk();
        for child in node.children(&mut cursor) {
            stack.push(child);
        }
    }
    (errors, missing)
}
