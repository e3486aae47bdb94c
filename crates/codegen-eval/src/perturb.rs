//! Perturbed HumanEval, in the spirit of ReCode (Wang et al., 2022): each
//! problem's prompt is rewritten in a way that keeps its meaning, and a
//! model is robust on a task when it passes every one of S perturbed
//! variants (seeds). Four kinds:
//!
//! - `docstring`: typos, case changes and synonym swaps (a small built-in
//!   list) in the docstring's prose; examples (`>>>` lines and their
//!   outputs), identifiers and code-like lines are left alone;
//! - `function-name`: the entry point renamed consistently (definition,
//!   calls, docstring examples, the tests' entry point);
//! - `syntax`: dead code inserted above the function, parameters and
//!   local variables renamed, `range(n)` written `range(0, n)`;
//! - `format`: indentation width changed (2, 3, 8 spaces or tabs), the
//!   signature's parameters split over lines, a blank line after the docstring.
//!
//! Every perturbation is deterministic per (kind, seed, task id), and is
//! applied to the prompt and the canonical solution together, so that the
//! perturbed canonical program still passes the tests (checked in the
//! sandbox over all 164 problems by the tests).

use codegen_context::Language;
use tree_sitter::Node;

use crate::infill::{fnv1a, SplitMix64};
use crate::transform::{
    apply_edits, descendants, node_text, parse, python_quotes, rename_locals_with, replace_words,
    word_occurrences, Edit, Fixture,
};
use crate::Problem;

/// A kind of perturbation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Perturbation {
    Docstring,
    FunctionName,
    Syntax,
    Format,
}

impl Perturbation {
    pub const ALL: [Perturbation; 4] = [
        Perturbation::Docstring,
        Perturbation::FunctionName,
        Perturbation::Syntax,
        Perturbation::Format,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Perturbation::Docstring => "docstring",
            Perturbation::FunctionName => "function-name",
            Perturbation::Syntax => "syntax",
            Perturbation::Format => "format",
        }
    }

    pub fn from_name(name: &str) -> Option<Perturbation> {
        Perturbation::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

/// The perturbations' random stream: infill's splitmix64, seeded by the
/// task, the kind and the seed.
struct Rng(SplitMix64);

impl Rng {
    fn new(kind: Perturbation, seed: u64, task_id: &str) -> Rng {
        // FNV-1a of the task id followed by the kind, mixed with the seed.
        let h = fnv1a(&format!("{task_id}{}", kind.as_str()));
        Rng(SplitMix64::new(
            h ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        ))
    }

    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// The problem under perturbation `kind` with `seed`: prompt, canonical
/// solution, entry point and (for renames) tests rewritten together. The
/// task id stays. Where nothing applies, the problem comes back unchanged.
pub fn perturb(problem: &Problem, kind: Perturbation, seed: u64) -> Problem {
    let mut rng = Rng::new(kind, seed, &problem.task_id);
    let program = Fixture {
        language: Language::Python,
        document: format!("{}{}", problem.prompt, problem.canonical_solution),
        cursor: problem.prompt.len(),
        asserts: None,
        check: None,
    };
    let mut entry_point = problem.entry_point.clone();
    let mut test = problem.test.clone();
    let out = match kind {
        Perturbation::Docstring => docstring(&program, &problem.entry_point, &mut rng),
        Perturbation::FunctionName => {
            let (out, new) = function_name(&program, problem, &mut rng);
            if let Some(new) = new {
                test = replace_words(&test, &problem.entry_point, &new);
                entry_point = new;
            }
            out
        }
        Perturbation::Syntax => syntax(&program, &problem.entry_point, &mut rng),
        Perturbation::Format => format(&program, &problem.entry_point, &mut rng),
    };
    Problem {
        task_id: problem.task_id.clone(),
        prompt: out.document[..out.cursor].to_string(),
        canonical_solution: out.document[out.cursor..].to_string(),
        test,
        entry_point,
    }
}

fn entry_function<'t>(tree: &'t tree_sitter::Tree, text: &str, entry: &str) -> Option<Node<'t>> {
    descendants(tree.root_node()).into_iter().find(|n| {
        n.kind() == "function_definition"
            && n.child_by_field_name("name")
                .is_some_and(|name| node_text(name, text) == entry)
    })
}

fn docstring_of(function: Node) -> Option<Node> {
    let body = function.child_by_field_name("body")?;
    let first = body.named_child(0)?;
    if first.kind() != "expression_statement" {
        return None;
    }
    let string = first.named_child(0)?;
    (string.kind() == "string").then_some(string)
}

const SYNONYMS: &[(&str, &str)] = &[
    ("given", "provided"),
    ("return", "output"),
    ("returns", "outputs"),
    ("find", "determine"),
    ("check", "verify"),
    ("largest", "biggest"),
    ("biggest", "largest"),
    ("smallest", "tiniest"),
    ("write", "implement"),
    ("function", "routine"),
    ("create", "build"),
    ("contains", "includes"),
    ("each", "every"),
    ("every", "each"),
    ("compute", "calculate"),
    ("calculate", "compute"),
    ("example", "instance"),
    ("total", "sum"),
    ("also", "additionally"),
    ("should", "must"),
    ("whether", "if"),
    ("numbers", "values"),
    ("list", "array"),
];

fn with_case_of(original: &str, new: &str) -> String {
    if original.chars().all(|c| c.is_ascii_uppercase()) && original.len() > 1 {
        return new.to_ascii_uppercase();
    }
    if original.starts_with(|c: char| c.is_ascii_uppercase()) {
        let mut chars = new.chars();
        return match chars.next() {
            Some(f) => f.to_ascii_uppercase().to_string() + chars.as_str(),
            None => String::new(),
        };
    }
    new.to_string()
}

/// One word-level change: a typo, a case change or a synonym.
fn perturb_word(word: &str, rng: &mut Rng) -> String {
    let lower = word.to_ascii_lowercase();
    if let Some((_, syn)) = SYNONYMS.iter().find(|(w, _)| *w == lower) {
        if rng.chance(70) {
            return with_case_of(word, syn);
        }
    }
    let bytes = word.as_bytes();
    match rng.below(5) {
        0 if bytes.len() >= 4 => {
            // Swap two neighbouring inner letters.
            let i = 1 + rng.below(bytes.len() - 3);
            let mut b = bytes.to_vec();
            b.swap(i, i + 1);
            String::from_utf8(b).unwrap_or_else(|_| word.to_string())
        }
        1 if bytes.len() >= 4 => {
            // Drop an inner letter.
            let i = 1 + rng.below(bytes.len() - 2);
            let mut b = bytes.to_vec();
            b.remove(i);
            String::from_utf8(b).unwrap_or_else(|_| word.to_string())
        }
        2 => word.to_ascii_uppercase(),
        3 => {
            let mut chars = word.chars();
            match chars.next() {
                Some(f) if f.is_ascii_lowercase() => {
                    f.to_ascii_uppercase().to_string() + chars.as_str()
                }
                Some(f) => f.to_ascii_lowercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        }
        _ => {
            // Double a letter.
            let i = rng.below(bytes.len());
            let mut b = bytes.to_vec();
            b.insert(i, bytes[i]);
            String::from_utf8(b).unwrap_or_else(|_| word.to_string())
        }
    }
}

/// Prose words of the entry point's docstring: outside example lines and
/// their outputs, not identifiers of the program.
fn docstring(program: &Fixture, entry: &str, rng: &mut Rng) -> Fixture {
    let text = &program.document;
    let Some(tree) = parse(text, Language::Python) else {
        return program.clone();
    };
    let Some(function) = entry_function(&tree, text, entry) else {
        return program.clone();
    };
    let Some(doc) = docstring_of(function) else {
        return program.clone();
    };
    let identifiers: std::collections::HashSet<&str> = descendants(tree.root_node())
        .into_iter()
        .filter(|n| n.kind() == "identifier")
        .map(|n| node_text(n, text))
        .collect();
    let raw = node_text(doc, text);
    let Some((open, _)) = python_quotes(raw) else {
        return program.clone();
    };
    let inner_start = doc.start_byte() + open;
    let inner = &raw[open..raw.len() - 3];
    // Candidate words: (offset in text, word).
    let mut words: Vec<(usize, &str)> = Vec::new();
    let mut in_example = false;
    let mut offset = inner_start;
    for line in inner.split_inclusive('\n') {
        let trimmed = line.trim();
        if trimmed.starts_with(">>>") {
            in_example = true;
        } else if trimmed.is_empty() {
            in_example = false;
        }
        let code_like = in_example || ["==", "->", "=>", "!="].iter().any(|m| trimmed.contains(m));
        if !code_like {
            let bytes = line.as_bytes();
            let mut quote: Option<u8> = None;
            let mut i = 0;
            while i < bytes.len() {
                let b = bytes[i];
                let between_letters = i > 0
                    && i + 1 < bytes.len()
                    && bytes[i - 1].is_ascii_alphabetic()
                    && bytes[i + 1].is_ascii_alphabetic();
                if matches!(b, b'"' | b'\'' | b'`') && !between_letters {
                    quote = match quote {
                        Some(q) if q == b => None,
                        None => Some(b),
                        other => other,
                    };
                    i += 1;
                } else if b.is_ascii_alphabetic() {
                    let start = i;
                    while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
                        i += 1;
                    }
                    let word = &line[start..i];
                    let code_edges = (start > 0
                        && matches!(bytes[start - 1], b'_' | b'.' | b'-' | b'0'..=b'9'))
                        || (i < bytes.len()
                            && matches!(bytes[i], b'_' | b'-' | b'(' | b'[' | b'.' | b'0'..=b'9')
                            && !(bytes[i] == b'.'
                                && (i + 1 == bytes.len() || bytes[i + 1].is_ascii_whitespace())));
                    if quote.is_none()
                        && word.len() >= 3
                        && !code_edges
                        && !identifiers.contains(word)
                    {
                        words.push((offset + start, word));
                    }
                } else {
                    i += 1;
                }
            }
        }
        offset += line.len();
    }
    if words.is_empty() {
        return program.clone();
    }
    // About one word in eight, at least one.
    let n_changes = (words.len() / 8).max(1);
    let mut chosen: Vec<usize> = Vec::new();
    while chosen.len() < n_changes.min(words.len()) {
        let i = rng.below(words.len());
        if !chosen.contains(&i) {
            chosen.push(i);
        }
    }
    let edits = chosen
        .into_iter()
        .map(|i| {
            let (at, word) = words[i];
            Edit::new(at, at + word.len(), perturb_word(word, rng))
        })
        .collect();
    apply_edits(program, edits)
}

fn camel_case(name: &str) -> String {
    let mut out = String::new();
    for (i, part) in name.split('_').filter(|p| !p.is_empty()).enumerate() {
        if i == 0 {
            out.push_str(part);
        } else {
            let mut chars = part.chars();
            if let Some(f) = chars.next() {
                out.push(f.to_ascii_uppercase());
                out.push_str(chars.as_str());
            }
        }
    }
    out
}

/// A new name for the entry point, ReCode style: camel case, a butter-finger
/// typo, a verb prefix or a suffix.
fn new_function_name(name: &str, rng: &mut Rng) -> String {
    let camel = camel_case(name);
    let mut styles: Vec<String> = Vec::new();
    if camel != name {
        styles.push(camel);
    }
    let bytes = name.as_bytes();
    if bytes.len() >= 4 {
        let i = 1 + rng.below(bytes.len() - 3);
        let mut b = bytes.to_vec();
        if b[i].is_ascii_alphabetic() && b[i + 1].is_ascii_alphabetic() && b[i] != b[i + 1] {
            b.swap(i, i + 1);
            if let Ok(s) = String::from_utf8(b) {
                styles.push(s);
            }
        }
    }
    let prefixes = ["get_", "compute_", "do_", "find_", "calc_"];
    styles.push(format!("{}{name}", prefixes[rng.below(prefixes.len())]));
    let suffixes = ["_fn", "_func", "_v2", "_impl", "_helper"];
    styles.push(format!("{name}{}", suffixes[rng.below(suffixes.len())]));
    styles.swap_remove(rng.below(styles.len()))
}

fn function_name(program: &Fixture, problem: &Problem, rng: &mut Rng) -> (Fixture, Option<String>) {
    let text = &program.document;
    let entry = &problem.entry_point;
    let Some(tree) = parse(text, Language::Python) else {
        return (program.clone(), None);
    };
    let taken = |name: &str| {
        !word_occurrences(text, name).is_empty()
            || !word_occurrences(&problem.test, name).is_empty()
    };
    let mut new = new_function_name(entry, rng);
    while taken(&new) {
        new.push('_');
    }
    let mut edits: Vec<Edit> = descendants(tree.root_node())
        .into_iter()
        .filter(|n| n.kind() == "identifier" && node_text(*n, text) == entry)
        .map(|n| Edit::new(n.start_byte(), n.end_byte(), new.clone()))
        .collect();
    for start in word_occurrences(text, entry) {
        let end = start + entry.len();
        if text[end..].starts_with('(') && !edits.iter().any(|e| e.start == start) {
            edits.push(Edit::new(start, end, new.clone()));
        }
    }
    if edits.is_empty() {
        return (program.clone(), None);
    }
    (apply_edits(program, edits), Some(new))
}

/// Names for renamed variables, ReCode's "naive" renamer: plain, unrelated
/// names.
const VARIABLE_NAMES: &[&str] = &[
    "var_a", "var_b", "var_c", "tmp", "val", "arg0", "arg1", "elem", "item0", "obj", "data0", "p0",
    "p1", "z0", "q",
];

fn syntax(program: &Fixture, entry: &str, rng: &mut Rng) -> Fixture {
    let mut out = program.clone();
    let mut applied = false;
    let pick = rng.below(7) + 1; // a non-empty subset of three changes
    if pick & 1 != 0 {
        let mut used: Vec<String> = Vec::new();
        let mut namer = |_: &str| {
            let mut name = VARIABLE_NAMES[rng.below(VARIABLE_NAMES.len())].to_string();
            while used.contains(&name) {
                name.push('_');
            }
            used.push(name.clone());
            name
        };
        if let Some(renamed) = rename_locals_with(&out, &mut namer) {
            out = renamed;
            applied = true;
        }
    }
    if pick & 2 != 0 {
        if let Some(changed) = explicit_range_start(&out) {
            out = changed;
            applied = true;
        }
    }
    let prompt_unchanged = out.document[..out.cursor] == program.document[..program.cursor];
    if pick & 4 != 0 || !applied || prompt_unchanged {
        out = dead_code(&out, entry, rng);
    }
    out
}

/// Dead code right above the entry point's definition. (Inside the body,
/// after the docstring, it would make the function look finished: models
/// then stop at once, which measures the prompt's meaning, not robustness.)
fn dead_code(program: &Fixture, entry: &str, rng: &mut Rng) -> Fixture {
    let k = rng.below(10);
    let block = match rng.below(4) {
        0 => format!("for _i_{k} in range(0):\n    pass\n\n\n"),
        1 => "while False:\n    break\n\n\n".to_string(),
        2 => format!("if False:\n    _unused_{k} = 0\n\n\n"),
        _ => format!("_unused_{k} = None\n\n\n"),
    };
    let text = &program.document;
    let at = parse(text, Language::Python).and_then(|tree| {
        let function = entry_function(&tree, text, entry)?;
        // Above its decorators too, at the start of its line.
        let top = match function.parent() {
            Some(p) if p.kind() == "decorated_definition" => p,
            _ => function,
        };
        (top.start_position().column == 0).then_some(top.start_byte())
    });
    match at {
        Some(at) => apply_edits(program, vec![Edit::new(at, at, block)]),
        None => program.clone(),
    }
}

/// `range(n)` with one argument becomes `range(0, n)`.
fn explicit_range_start(program: &Fixture) -> Option<Fixture> {
    let text = &program.document;
    let tree = parse(text, Language::Python)?;
    let mut edits = Vec::new();
    for node in descendants(tree.root_node()) {
        if node.kind() != "call" {
            continue;
        }
        let Some(function) = node.child_by_field_name("function") else {
            continue;
        };
        if node_text(function, text) != "range" {
            continue;
        }
        let Some(args) = node.child_by_field_name("arguments") else {
            continue;
        };
        if args.named_child_count() == 1 {
            if let Some(arg) = args.named_child(0) {
                if arg.kind() != "keyword_argument" && arg.kind() != "list_splat" {
                    edits.push(Edit::new(arg.start_byte(), arg.start_byte(), "0, "));
                }
            }
        }
    }
    if edits.is_empty() {
        return None;
    }
    Some(apply_edits(program, edits))
}

/// Line starts that lie inside a multi-line string (their leading
/// whitespace belongs to the string's value).
fn lines_inside_strings(text: &str) -> Vec<usize> {
    let Some(tree) = parse(text, Language::Python) else {
        return Vec::new();
    };
    let mut inside = Vec::new();
    for node in descendants(tree.root_node()) {
        if node.kind() == "string" {
            let s = node_text(node, text);
            for (i, _) in s.match_indices('\n') {
                inside.push(node.start_byte() + i + 1);
            }
        }
    }
    inside
}

fn format(program: &Fixture, entry: &str, rng: &mut Rng) -> Fixture {
    let mut out = program.clone();
    // Signature split over lines, and a blank line after the docstring,
    // each half of the time.
    if rng.chance(50) {
        if let Some(split) = split_signature(&out, entry) {
            out = split;
        }
    }
    if rng.chance(50) && out.document[..out.cursor].ends_with("\"\"\"\n") {
        // An insertion at the cursor lands before it: in the prompt.
        out = apply_edits(&out, vec![Edit::new(out.cursor, out.cursor, "\n")]);
    }
    let widths = ["  ", "   ", "        ", "\t"];
    let unit = widths[rng.below(widths.len())];
    reindent(&out, unit)
}

fn split_signature(program: &Fixture, entry: &str) -> Option<Fixture> {
    let text = &program.document;
    let tree = parse(text, Language::Python)?;
    let function = entry_function(&tree, text, entry)?;
    let params = function.child_by_field_name("parameters")?;
    if params.named_child_count() < 2 {
        return None;
    }
    let indent = "    ".repeat(1 + function.start_position().column / 4);
    let mut edits = Vec::new();
    let mut c = params.walk();
    for child in params.children(&mut c) {
        if child.kind() == "," {
            let next = child.next_sibling()?;
            edits.push(Edit::new(
                child.end_byte(),
                next.start_byte(),
                format!("\n{indent}"),
            ));
        }
    }
    Some(apply_edits(program, edits))
}

/// Re-indents code lines (not lines inside strings) by structure: each
/// deeper indentation than the enclosing one is one more level, written as
/// `unit` per level (so 2-space blocks inside 4-space ones stay distinct).
fn reindent(program: &Fixture, unit: &str) -> Fixture {
    let text = &program.document;
    let inside = lines_inside_strings(text);
    let mut edits = Vec::new();
    let mut widths: Vec<usize> = vec![0];
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if !inside.contains(&offset) && !line.trim().is_empty() {
            let n_ws = line.len() - line.trim_start_matches([' ', '\t']).len();
            let width: usize = line[..n_ws]
                .chars()
                .map(|c| if c == '\t' { 8 } else { 1 })
                .sum();
            while widths.len() > 1 && width < widths[widths.len() - 1] {
                widths.pop();
            }
            if width > widths[widths.len() - 1] {
                widths.push(width);
            }
            let level = widths.len() - 1;
            edits.push(Edit::new(offset, offset + n_ws, unit.repeat(level)));
        }
        offset += line.len();
    }
    apply_edits(program, edits)
}

/// Per task, whether a variant of the problem set was solved: by the greedy
/// sample and, for ranked runs, by the sample the engine put first.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VariantOutcome {
    /// `nominal` or `KIND-seedS`.
    pub name: String,
    pub greedy: std::collections::BTreeMap<String, bool>,
    pub ranked: Option<std::collections::BTreeMap<String, bool>>,
}

impl VariantOutcome {
    /// From an evaluated samples file: the task's first sample is its
    /// greedy one (runs draw it greedy), the engine's choice is the ranked
    /// one (when samples carry rank positions).
    pub fn from_samples(
        name: impl Into<String>,
        samples: &[crate::Sample],
        report: &crate::EvalReport,
        ranked: bool,
    ) -> VariantOutcome {
        let mut greedy = std::collections::BTreeMap::new();
        for (sample, result) in samples.iter().zip(&report.samples) {
            greedy
                .entry(sample.task_id.clone())
                .or_insert(result.passed);
        }
        let ranked = ranked.then(|| {
            crate::run::engine_choices(samples)
                .into_iter()
                .filter_map(|idx| {
                    Some((
                        samples.get(idx)?.task_id.clone(),
                        report.samples.get(idx)?.passed,
                    ))
                })
                .collect()
        });
        VariantOutcome {
            name: name.into(),
            greedy,
            ranked,
        }
    }
}

/// Nominal against robust pass@1 for one policy.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RobustRow {
    /// `greedy` or `ranked`.
    pub policy: String,
    pub tasks: usize,
    pub nominal_pass_at_1: f64,
    /// Tasks solved in every perturbed variant, over all tasks.
    pub robust_pass_at_1: f64,
    /// ReCode's robust drop: (nominal - robust) / nominal (0 when nominal is 0).
    pub robust_drop: f64,
    /// nominal - robust, in pass@1 points.
    pub absolute_drop: f64,
    /// pass@1 of each perturbed variant, in seed order.
    pub per_seed_pass_at_1: Vec<f64>,
    /// Tasks solved nominally but not in every variant.
    pub lost: Vec<String>,
}

fn row(
    policy: &str,
    nominal: &std::collections::BTreeMap<String, bool>,
    variants: &[&std::collections::BTreeMap<String, bool>],
) -> RobustRow {
    let tasks = nominal.len();
    let share = |n: usize| {
        if tasks == 0 {
            0.0
        } else {
            n as f64 / tasks as f64
        }
    };
    let nominal_passed = nominal.values().filter(|p| **p).count();
    let robust: Vec<&String> = nominal
        .keys()
        .filter(|t| variants.iter().all(|v| v.get(*t).copied().unwrap_or(false)))
        .collect();
    let lost = nominal
        .iter()
        .filter(|(t, p)| **p && !robust.contains(t))
        .map(|(t, _)| t.clone())
        .collect();
    let nominal_rate = share(nominal_passed);
    let robust_rate = share(robust.len());
    RobustRow {
        policy: policy.into(),
        tasks,
        nominal_pass_at_1: crate::round_to(nominal_rate, 4),
        robust_pass_at_1: crate::round_to(robust_rate, 4),
        robust_drop: if nominal_rate > 0.0 {
            crate::round_to((nominal_rate - robust_rate) / nominal_rate, 4)
        } else {
            0.0
        },
        absolute_drop: crate::round_to(nominal_rate - robust_rate, 4),
        per_seed_pass_at_1: variants
            .iter()
            .map(|v| {
                crate::round_to(
                    share(
                        nominal
                            .keys()
                            .filter(|t| v.get(*t).copied().unwrap_or(false))
                            .count(),
                    ),
                    4,
                )
            })
            .collect(),
        lost,
    }
}

/// The robustness rows (greedy, and ranked when every variant has it) of
/// a nominal run and its perturbed variants.
pub fn robust_rows(nominal: &VariantOutcome, perturbed: &[VariantOutcome]) -> Vec<RobustRow> {
    let greedy: Vec<_> = perturbed.iter().map(|v| &v.greedy).collect();
    let mut rows = vec![row("greedy", &nominal.greedy, &greedy)];
    if let Some(nominal_ranked) = &nominal.ranked {
        let ranked: Option<Vec<_>> = perturbed.iter().map(|v| v.ranked.as_ref()).collect();
        if let Some(ranked) = ranked {
            rows.push(row("ranked", nominal_ranked, &ranked));
        }
    }
    rows
}

/// The robustness table in markdown.
pub fn robust_markdown(kind: Perturbation, seeds: u64, rows: &[RobustRow]) -> String {
    let mut md = format!(
        "## Robustness: {} perturbation, {seeds} seeds\n\nA task counts for robust pass@1 only if every one of its {seeds} perturbed variants passes; robust drop = (nominal - robust) / nominal (ReCode).\n\n| Policy | Tasks | Nominal pass@1 | Robust pass@1 | Robust drop | Per seed |\n|---|---:|---:|---:|---:|---|\n",
        kind.as_str()
    );
    for r in rows {
        let per_seed: Vec<String> = r
            .per_seed_pass_at_1
            .iter()
            .map(|p| format!("{p:.3}"))
            .collect();
        md.push_str(&format!(
            "| {} | {} | {:.3} | {:.3} | {:.1}% | {} |\n",
            r.policy,
            r.tasks,
            r.nominal_pass_at_1,
            r.robust_pass_at_1,
            100.0 * r.robust_drop,
            per_seed.join(", ")
        ));
    }
    for r in rows.iter().filter(|r| !r.lost.is_empty()) {
        md.push_str(&format!(
            "\n{}: solved nominally, lost under perturbation: {}\n",
            r.policy,
            r.lost.join(", ")
        ));
    }
    md
}

#[cfg(test)]
#[path = "perturb_tests.rs"]
mod tests;
