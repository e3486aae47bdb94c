//! HumanEval-Infilling tasks for `codegen bench infill`, built like OpenAI's
//! benchmark (Bavarian et al. 2022, "Efficient Training of Language Models to
//! Fill in the Middle") from the 164 HumanEval problems, plus the samples
//! file (`--resume`) and the report of a run.
//!
//! The document of a problem is `prompt + canonical_solution`. A task removes
//! a span of the canonical solution (the *middle*) and puts the editor's
//! cursor where it was: *prefix* is the document before the cursor, *suffix*
//! the document after the span. Spans never reach into the prompt, so
//! [`InfillTask::completion`] turns an insertion into a HumanEval completion
//! that [`crate::check_program`] runs against the problem's tests, and the
//! canonical middle gives back the canonical solution exactly.
//!
//! Lines are the pieces of the canonical solution split on `'\n'`; a line is
//! *blank* when it holds only whitespace. The empty piece after a solution's
//! final newline is a blank line like any other. Over `HumanEval.jsonl.gz`:
//!
//! - **single-line** (1,033 tasks, as HumanEval-SingleLineInfilling): one
//!   task per non-blank line. Counting lines that are merely non-empty gives
//!   1,049: 16 lines hold only spaces. The cursor sits after the line's
//!   indentation (spaces and tabs), where an editor user's would; the middle
//!   is the rest of the line without its newline, which stays in the suffix.
//! - **multi-line** (5,815 tasks, as HumanEval-MultiLineInfilling): one task
//!   per span of consecutive lines whose first and last lines are non-blank
//!   (blank lines may lie inside). The published count includes the 1,033
//!   one-line spans: spans of two lines or more number 4,782, and spans of
//!   two lines or more whose ends may be blank number 5,725.
//!   Cursor after the first line's indentation, middle up to the end of the
//!   last line, its newline in the suffix.
//! - **random-span** (1,640 tasks = 10 per problem, as
//!   HumanEval-RandomSpanInfilling in size; the published spans cannot be
//!   regenerated, ours are seeded): two distinct character positions drawn
//!   uniformly in the canonical solution without its trailing whitespace
//!   bound the span; spans that are whitespace only, or already drawn for
//!   the problem, are drawn again. The cursor is at the span's start exactly.
//!
//! Randomness is a local splitmix64 seeded from the seed and the task or
//! problem id, so results do not depend on the order or number of problems.

use std::collections::{HashMap, HashSet};
use std::fmt::{self, Write as _};
use std::io::{Read, Seek, SeekFrom, Write as _};
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::report::{markdown_table, md_cell};
use crate::{EvalError, Problem, RunOutputs};

/// Random spans per problem in HumanEval-RandomSpanInfilling (164 × 10 = 1,640).
pub const RANDOM_SPANS_PER_PROBLEM: usize = 10;

/// Failures listed in `report.md` for each (mode, policy).
pub const FAILURES_SHOWN: usize = 50;

/// Draws allowed per wanted random span before a problem gives up (only a
/// tiny solution runs out of distinct non-blank spans).
const DRAWS_PER_SPAN: usize = 100;

/// Which spans a task masks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InfillMode {
    /// One non-blank line, from after its indentation to its end.
    SingleLine,
    /// Consecutive lines whose first and last are non-blank.
    MultiLine,
    /// A seeded random character span.
    RandomSpan,
}

impl InfillMode {
    /// All modes, in the order reports list them.
    pub const ALL: [InfillMode; 3] = [
        InfillMode::SingleLine,
        InfillMode::MultiLine,
        InfillMode::RandomSpan,
    ];

    /// `single-line`, `multi-line` or `random-span` (the CLI's and the files' name).
    pub fn as_str(self) -> &'static str {
        match self {
            InfillMode::SingleLine => "single-line",
            InfillMode::MultiLine => "multi-line",
            InfillMode::RandomSpan => "random-span",
        }
    }

    /// First component of task ids.
    fn id_prefix(self) -> &'static str {
        match self {
            InfillMode::SingleLine => "SingleLine",
            InfillMode::MultiLine => "MultiLine",
            InfillMode::RandomSpan => "RandomSpan",
        }
    }
}

impl fmt::Display for InfillMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for InfillMode {
    type Err = EvalError;

    fn from_str(s: &str) -> Result<InfillMode, EvalError> {
        InfillMode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                EvalError::InvalidConfig(format!(
                    "unknown infill mode {s:?}: expected single-line, multi-line or random-span"
                ))
            })
    }
}

/// One infilling task: the document with a span removed and the cursor where
/// the span was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InfillTask {
    /// Unique and stable: `SingleLine/HumanEval/0/3` (line 3 of the canonical
    /// solution, 0-based), `MultiLine/HumanEval/0/3-5` (lines 3 to 5),
    /// `RandomSpan/HumanEval/0/7` (the problem's 8th span for the seed).
    pub task_id: String,
    /// The HumanEval problem, e.g. `HumanEval/0`.
    pub problem_id: String,
    pub mode: InfillMode,
    /// The document before the cursor (starts with the problem's prompt).
    pub prefix: String,
    /// The document after the masked span.
    pub suffix: String,
    /// The masked span: what restores the canonical program.
    pub middle: String,
}

impl InfillTask {
    /// What the editor holds: prefix + suffix.
    pub fn document(&self) -> String {
        format!("{}{}", self.prefix, self.suffix)
    }

    /// Byte offset of the cursor in [`InfillTask::document`], which is also
    /// where the masked span starts in `prompt + canonical_solution`.
    pub fn cursor(&self) -> usize {
        self.prefix.len()
    }

    /// The document with `insertion` typed at the cursor.
    pub fn filled(&self, insertion: &str) -> String {
        format!("{}{insertion}{}", self.prefix, self.suffix)
    }

    /// The HumanEval completion for the harness: the filled document minus
    /// `problem.prompt`, so `check_program(problem, &completion)` runs the
    /// problem's tests on the filled program. With the task's own problem
    /// and the canonical middle this is the canonical solution. Given another
    /// problem (whose prompt does not start the prefix) it returns the whole
    /// filled document, which repeats the prompt and so never passes by
    /// accident.
    pub fn completion(&self, problem: &Problem, insertion: &str) -> String {
        let before = self
            .prefix
            .strip_prefix(problem.prompt.as_str())
            .unwrap_or(&self.prefix);
        format!("{before}{insertion}{}", self.suffix)
    }

    /// Whether `insertion` equals the middle once both are normalized:
    /// trailing whitespace removed from every line (`'\n'`-separated, so a
    /// `'\r'` before a newline goes too), then from the whole text. Leading
    /// whitespace and blank lines inside count.
    pub fn exact_match(&self, insertion: &str) -> bool {
        normalize_for_match(insertion) == normalize_for_match(&self.middle)
    }

    /// Number of lines the middle touches (1 for single-line tasks).
    pub fn middle_lines(&self) -> usize {
        self.middle.split('\n').count()
    }
}

fn normalize_for_match(text: &str) -> String {
    let lines: Vec<&str> = text.split('\n').map(str::trim_end).collect();
    lines.join("\n").trim_end().to_string()
}

/// A line of a canonical solution, as byte offsets into it.
struct SolutionLine {
    /// After the indentation (spaces and tabs).
    content_start: usize,
    /// Before the newline (or the end of the solution).
    end: usize,
    blank: bool,
}

fn solution_lines(solution: &str) -> Vec<SolutionLine> {
    let mut lines = Vec::new();
    let mut line_start = 0;
    for text in solution.split('\n') {
        let indent = text.len() - text.trim_start_matches([' ', '\t']).len();
        lines.push(SolutionLine {
            content_start: line_start + indent,
            end: line_start + text.len(),
            blank: text.trim().is_empty(),
        });
        line_start += text.len() + 1;
    }
    lines
}

/// The task masking `canonical_solution[start..end]` (byte offsets at char
/// boundaries, found by the callers on the same string).
fn make_task(
    problem: &Problem,
    mode: InfillMode,
    key: &str,
    start: usize,
    end: usize,
) -> InfillTask {
    let solution = &problem.canonical_solution;
    InfillTask {
        task_id: format!("{}/{}/{key}", mode.id_prefix(), problem.task_id),
        problem_id: problem.task_id.clone(),
        mode,
        prefix: format!("{}{}", problem.prompt, &solution[..start]),
        suffix: solution[end..].to_string(),
        middle: solution[start..end].to_string(),
    }
}

/// One task per non-blank line of each canonical solution (1,033 over
/// HumanEval), in problem and line order.
pub fn single_line_tasks(problems: &[Problem]) -> Vec<InfillTask> {
    let mut tasks = Vec::new();
    for problem in problems {
        for (idx, line) in solution_lines(&problem.canonical_solution)
            .iter()
            .enumerate()
        {
            if !line.blank {
                let key = idx.to_string();
                tasks.push(make_task(
                    problem,
                    InfillMode::SingleLine,
                    &key,
                    line.content_start,
                    line.end,
                ));
            }
        }
    }
    tasks
}

/// One task per span of consecutive lines whose first and last lines are
/// non-blank, one-line spans included (5,815 over HumanEval, the count of
/// HumanEval-MultiLineInfilling; 4,782 of them span two lines or more, see
/// [`InfillTask::middle_lines`]). Ordered by problem, first line, last line.
pub fn multi_line_tasks(problems: &[Problem]) -> Vec<InfillTask> {
    let mut tasks = Vec::new();
    for problem in problems {
        let lines = solution_lines(&problem.canonical_solution);
        let non_blank: Vec<usize> = (0..lines.len()).filter(|i| !lines[*i].blank).collect();
        for (pos, &first) in non_blank.iter().enumerate() {
            for &last in &non_blank[pos..] {
                let key = format!("{first}-{last}");
                tasks.push(make_task(
                    problem,
                    InfillMode::MultiLine,
                    &key,
                    lines[first].content_start,
                    lines[last].end,
                ));
            }
        }
    }
    tasks
}

/// Up to `per_problem` distinct random spans per problem (exactly that many
/// unless a solution is too small to hold them), the same for the same seed
/// and problem whatever the other problems. See the module doc for the draw.
pub fn random_span_tasks(problems: &[Problem], per_problem: usize, seed: u64) -> Vec<InfillTask> {
    let mut tasks = Vec::new();
    for problem in problems {
        let solution = problem.canonical_solution.trim_end();
        let bounds: Vec<usize> = solution
            .char_indices()
            .map(|(i, _)| i)
            .chain([solution.len()])
            .collect();
        let mut rng = SplitMix64::new(seed ^ fnv1a(&problem.task_id));
        let mut seen = HashSet::new();
        let mut made = 0;
        for _ in 0..per_problem.saturating_mul(DRAWS_PER_SPAN) {
            if made == per_problem {
                break;
            }
            let (a, b) = (rng.below(bounds.len()), rng.below(bounds.len()));
            let (start, end) = (bounds[a.min(b)], bounds[a.max(b)]);
            if solution[start..end].trim().is_empty() || !seen.insert((start, end)) {
                continue;
            }
            let key = made.to_string();
            tasks.push(make_task(problem, InfillMode::RandomSpan, &key, start, end));
            made += 1;
        }
    }
    tasks
}

/// The tasks of a benchmark run: all tasks of `mode` (random spans:
/// [`RANDOM_SPANS_PER_PROBLEM`] per problem drawn with `seed`), or, with a
/// `limit`, the [`sample_tasks`] sample of that many.
pub fn tasks(
    problems: &[Problem],
    mode: InfillMode,
    limit: Option<usize>,
    seed: u64,
) -> Vec<InfillTask> {
    let all = match mode {
        InfillMode::SingleLine => single_line_tasks(problems),
        InfillMode::MultiLine => multi_line_tasks(problems),
        InfillMode::RandomSpan => random_span_tasks(problems, RANDOM_SPANS_PER_PROBLEM, seed),
    };
    match limit {
        Some(n) => sample_tasks(all, n, seed),
        None => all,
    }
}

/// A seeded sample of `n` tasks (all of them if there are no more than `n`),
/// in their original order. Spread over problems: every problem gives one
/// task before any gives two, and so on (problems and tasks within a problem
/// in an order drawn from the seed and their ids). The same seed, task ids
/// and `n` give the same sample, across runs and platforms.
pub fn sample_tasks(tasks: Vec<InfillTask>, n: usize, seed: u64) -> Vec<InfillTask> {
    if n >= tasks.len() {
        return tasks;
    }
    const PROBLEM_SALT: u64 = 0x5851_F42D_4C95_7F2D;
    // (problem rank, [(task rank, index)]) per problem.
    let mut groups: Vec<(u64, Vec<(u64, usize)>)> = Vec::new();
    let mut group_of: HashMap<&str, usize> = HashMap::new();
    for (idx, task) in tasks.iter().enumerate() {
        let group = *group_of.entry(task.problem_id.as_str()).or_insert_with(|| {
            groups.push((
                hash_with_seed(seed ^ PROBLEM_SALT, &task.problem_id),
                Vec::new(),
            ));
            groups.len() - 1
        });
        groups[group]
            .1
            .push((hash_with_seed(seed, &task.task_id), idx));
    }
    for (_, members) in &mut groups {
        members.sort_unstable();
    }
    groups.sort_by_key(|(rank, members)| (*rank, members.iter().map(|m| m.1).min()));
    let mut keep = vec![false; tasks.len()];
    let mut taken = 0;
    'rounds: for round in 0.. {
        for (_, members) in &groups {
            if taken == n {
                break 'rounds;
            }
            if let Some(&(_, idx)) = members.get(round) {
                keep[idx] = true;
                taken += 1;
            }
        }
    }
    tasks
        .into_iter()
        .zip(keep)
        .filter_map(|(task, kept)| kept.then_some(task))
        .collect()
}

/// splitmix64 (Steele, Lea, Flood 2014): small, fast, and the same everywhere.
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (multiply-shift; the bias is below 2^-40 for our n).
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

/// 64-bit FNV-1a of a string: a stable hash of ids (std's hasher is not
/// guaranteed stable across releases).
pub(crate) fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

fn hash_with_seed(seed: u64, id: &str) -> u64 {
    SplitMix64::new(seed ^ fnv1a(id)).next_u64()
}

// ---------------------------------------------------------------------------
// Samples file

/// One line of an infill run's `samples.jsonl`: what a policy inserted for a
/// task, plus extra fields (`latency_ms`, `n_tokens`, ...) kept in the line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InfillSample {
    pub task_id: String,
    pub problem_id: String,
    pub mode: InfillMode,
    /// `greedy` or `ranked`.
    pub policy: String,
    pub insertion: String,
    /// Any other keys of the line.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl InfillSample {
    /// A sample of `task` by `policy`, with no extra fields.
    pub fn new(task: &InfillTask, policy: &str, insertion: impl Into<String>) -> InfillSample {
        InfillSample {
            task_id: task.task_id.clone(),
            problem_id: task.problem_id.clone(),
            mode: task.mode,
            policy: policy.to_string(),
            insertion: insertion.into(),
            extra: serde_json::Map::new(),
        }
    }

    /// Sets an extra field (builder style).
    pub fn with_extra(mut self, key: &str, value: impl Into<serde_json::Value>) -> InfillSample {
        self.extra.insert(key.to_string(), value.into());
        self
    }

    /// An extra field as a number, if it is one.
    pub fn extra_f64(&self, key: &str) -> Option<f64> {
        self.extra.get(key).and_then(serde_json::Value::as_f64)
    }

    /// (task_id, policy): what `--resume` skips when it is already in the file.
    pub fn key(&self) -> (&str, &str) {
        (&self.task_id, &self.policy)
    }
}

/// Appends samples, one JSON line each, and syncs the file. A last line left
/// without its newline by a killed run is repaired first: completed with a
/// newline if it parses, cut off if it does not (it is the half-written
/// line that [`read_infill_samples`] drops).
pub fn append_infill_samples(path: &Path, samples: &[InfillSample]) -> Result<(), EvalError> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
        .map_err(|e| EvalError::io(path, e))?;
    let mut text = repair_last_line(path, &mut file)?;
    for sample in samples {
        let line = serde_json::to_string(sample)
            .map_err(|e| EvalError::InvalidConfig(format!("serializing an infill sample: {e}")))?;
        text.push_str(&line);
        text.push('\n');
    }
    file.write_all(text.as_bytes())
        .and_then(|_| file.sync_data())
        .map_err(|e| EvalError::io(path, e))
}

/// Cuts an unparsable unterminated last line; returns `"\n"` when a complete
/// last line only lacks its newline, `""` otherwise.
fn repair_last_line(path: &Path, file: &mut std::fs::File) -> Result<String, EvalError> {
    let io = |e| EvalError::io(path, e);
    let len = file.metadata().map_err(io)?.len();
    if len == 0 {
        return Ok(String::new());
    }
    let mut last = [0u8; 1];
    file.seek(SeekFrom::Start(len - 1)).map_err(io)?;
    file.read_exact(&mut last).map_err(io)?;
    if last[0] == b'\n' {
        return Ok(String::new());
    }
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    file.read_to_end(&mut bytes).map_err(io)?;
    let tail_start = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
    let tail = String::from_utf8_lossy(&bytes[tail_start..]);
    if tail.trim().is_empty() || serde_json::from_str::<InfillSample>(&tail).is_ok() {
        return Ok("\n".to_string());
    }
    file.set_len(tail_start as u64)
        .map_err(io)
        .map(|_| String::new())
}

/// Reads an infill samples file (a missing file holds no samples). A
/// malformed line is an error, except a malformed last line without a
/// newline: the trace of a killed run, dropped (as
/// [`crate::resume_state`] does for HumanEval samples).
pub fn read_infill_samples(path: &Path) -> Result<Vec<InfillSample>, EvalError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(EvalError::io(path, e)),
    };
    let mut samples = Vec::new();
    let mut pieces = bytes.split(|b| *b == b'\n').peekable();
    let mut line_no = 0;
    while let Some(piece) = pieces.next() {
        line_no += 1;
        // The piece after the last newline is the only unterminated one.
        let terminated = pieces.peek().is_some();
        let text = String::from_utf8_lossy(piece);
        if text.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<InfillSample>(&text) {
            Ok(sample) => samples.push(sample),
            Err(_) if !terminated => {}
            Err(e) => {
                return Err(EvalError::BadLine {
                    path: path.to_path_buf(),
                    line: line_no,
                    message: format!("not an infill sample: {e}"),
                })
            }
        }
    }
    Ok(samples)
}

// ---------------------------------------------------------------------------
// Report

/// Results of one (mode, policy) pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfillRow {
    pub mode: InfillMode,
    /// `greedy` or `ranked`.
    pub policy: String,
    pub tasks: usize,
    /// Tasks whose filled program passed the problem's tests.
    pub passed: usize,
    /// Tasks whose insertion was an [`InfillTask::exact_match`].
    pub exact: usize,
}

impl InfillRow {
    /// An empty row.
    pub fn new(mode: InfillMode, policy: &str) -> InfillRow {
        InfillRow {
            mode,
            policy: policy.to_string(),
            tasks: 0,
            passed: 0,
            exact: 0,
        }
    }

    /// Counts one task.
    pub fn record(&mut self, passed: bool, exact: bool) {
        self.tasks += 1;
        self.passed += usize::from(passed);
        self.exact += usize::from(exact);
    }

    /// Share of tasks passed (one insertion per task, so pass@1); 0 without tasks.
    pub fn pass_at_1(&self) -> f64 {
        share(self.passed, self.tasks)
    }

    /// Share of tasks whose insertion matched the middle; 0 without tasks.
    pub fn exact_match_rate(&self) -> f64 {
        share(self.exact, self.tasks)
    }
}

fn share(count: usize, total: usize) -> f64 {
    if total == 0 {
        0.0
    } else {
        count as f64 / total as f64
    }
}

/// A task whose filled program did not pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InfillFailure {
    pub task_id: String,
    pub mode: InfillMode,
    pub policy: String,
    /// The harness's result string, e.g. `failed: AssertionError`.
    pub result: String,
    pub insertion: String,
    /// The task's middle.
    pub expected: String,
}

/// Everything `codegen bench infill` reports.
#[derive(Debug, Clone, PartialEq)]
pub struct InfillReport {
    /// (name, value) in display order: model, seed, limit, ...
    pub settings: Vec<(String, String)>,
    pub rows: Vec<InfillRow>,
    pub failures: Vec<InfillFailure>,
    /// Wall-clock time of the whole run.
    pub wall_seconds: f64,
}

/// The content of `report.md`: settings, results per mode and policy
/// (pass@1 and exact match with 3 decimals), the chart, and the first
/// [`FAILURES_SHOWN`] failures of each mode and policy.
pub fn infill_report_markdown(r: &InfillReport) -> String {
    let mut md = String::from("# HumanEval-Infilling\n\n## Settings\n\n");
    md.push_str(&markdown_table(
        &["setting", "value"],
        r.settings
            .iter()
            .map(|(name, value)| [md_cell(name), md_cell(value)]),
    ));
    md.push_str("\n## Results\n\n");
    md.push_str(&markdown_table(
        &["mode", "policy", "tasks", "pass@1", "exact match"],
        r.rows.iter().map(|row| {
            [
                row.mode.to_string(),
                md_cell(&row.policy),
                row.tasks.to_string(),
                format!("{:.3}", row.pass_at_1()),
                format!("{:.3}", row.exact_match_rate()),
            ]
        }),
    ));
    let _ = writeln!(md, "\nWall clock: {:.1} s\n", r.wall_seconds);
    md.push_str("![pass@1 per mode, greedy vs ranked](chart.svg)\n\n## Failures\n");
    let groups = failure_groups(r);
    if groups.is_empty() {
        md.push_str("\nNone.\n");
    }
    for ((mode, policy), failures) in groups {
        let _ = write!(
            md,
            "\n### {mode}, {}: {} failed",
            md_cell(policy),
            failures.len()
        );
        if failures.len() > FAILURES_SHOWN {
            let _ = write!(md, " (first {FAILURES_SHOWN} shown)");
        }
        md.push_str("\n\n");
        md.push_str(&markdown_table(
            &["task", "result", "insertion", "expected"],
            failures.iter().take(FAILURES_SHOWN).map(|f| {
                [
                    md_cell(&f.task_id),
                    md_cell(&crate::report::failure_reason(&f.result)),
                    md_code(&f.insertion),
                    md_code(&f.expected),
                ]
            }),
        ));
    }
    md
}

/// Failures grouped by (mode, policy): the rows' order first, then any
/// other pair in order of appearance.
fn failure_groups(r: &InfillReport) -> Vec<((InfillMode, &str), Vec<&InfillFailure>)> {
    let mut groups: Vec<((InfillMode, &str), Vec<&InfillFailure>)> = r
        .rows
        .iter()
        .map(|row| ((row.mode, row.policy.as_str()), Vec::new()))
        .collect();
    for failure in &r.failures {
        let key = (failure.mode, failure.policy.as_str());
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(failure),
            None => groups.push((key, vec![failure])),
        }
    }
    groups.retain(|(_, members)| !members.is_empty());
    groups
}

/// A table cell showing text exactly: a code span of its escaped form
/// (`"return x\n"`), cut after 120 characters.
fn md_code(s: &str) -> String {
    const MAX_CHARS: usize = 120;
    let mut shown: String = s.chars().take(MAX_CHARS).collect();
    let cut = shown.len() < s.len();
    shown = format!("{shown:?}");
    if cut {
        shown.push('…');
    }
    let longest_run = shown.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest_run + 1);
    format!("{fence} {} {fence}", shown.replace('|', "\\|"))
}

/// `chart.svg`: grouped bars of pass@1 per mode, one bar per policy (greedy,
/// ranked, ...), with a 0–1 axis, value labels and a legend.
pub fn infill_chart_svg(r: &InfillReport) -> String {
    let mut modes: Vec<InfillMode> = Vec::new();
    let mut policies: Vec<&str> = Vec::new();
    for row in &r.rows {
        if !modes.contains(&row.mode) {
            modes.push(row.mode);
        }
        if !policies.contains(&row.policy.as_str()) {
            policies.push(&row.policy);
        }
    }
    let values = policies
        .iter()
        .map(|policy| {
            modes
                .iter()
                .map(|mode| {
                    r.rows
                        .iter()
                        .find(|row| row.mode == *mode && row.policy == *policy)
                        .map(InfillRow::pass_at_1)
                })
                .collect()
        })
        .collect();
    crate::chart::grouped_bars_svg(
        &crate::chart::GroupedBars {
            title: "HumanEval-Infilling: pass@1 per mode",
            y_label: "pass@1",
            x_label: "mode",
            groups: modes.iter().map(|m| m.as_str().to_string()).collect(),
            series: policies.iter().map(|p| p.to_string()).collect(),
            values,
            y_max: 1.0,
        },
        (720, 420),
    )
}

/// The content of `results.json`: settings (an object), rows with counts
/// and rates, all failures, wall-clock seconds.
pub fn infill_results_json(r: &InfillReport) -> serde_json::Value {
    let settings: serde_json::Map<String, serde_json::Value> = r
        .settings
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    let rows: Vec<serde_json::Value> = r
        .rows
        .iter()
        .map(|row| {
            json!({
                "mode": row.mode,
                "policy": row.policy,
                "tasks": row.tasks,
                "passed": row.passed,
                "exact": row.exact,
                "pass@1": row.pass_at_1(),
                "exact_match": row.exact_match_rate(),
            })
        })
        .collect();
    json!({
        "benchmark": "humaneval-infilling",
        "settings": settings,
        "rows": rows,
        "failures": r.failures,
        "wall_seconds": crate::report::round_to(r.wall_seconds, 3),
    })
}

/// The rows, failures and wall-clock time of an infilling run read back
/// from its `results.json` (settings are left out: that file does not keep
/// their order).
pub fn infill_report_from_json(value: &serde_json::Value) -> Result<InfillReport, EvalError> {
    let bad = |what: &str| EvalError::InvalidConfig(format!("infilling results.json: {what}"));
    let rows = value["rows"]
        .as_array()
        .ok_or_else(|| bad("no rows"))?
        .iter()
        .map(|row| {
            let count = |key: &str| {
                row[key]
                    .as_u64()
                    .map(|n| n as usize)
                    .ok_or_else(|| bad(&format!("a row without {key}")))
            };
            let mode = row["mode"]
                .as_str()
                .ok_or_else(|| bad("a row without mode"))?
                .parse::<InfillMode>()?;
            Ok(InfillRow {
                mode,
                policy: row["policy"].as_str().unwrap_or_default().to_string(),
                tasks: count("tasks")?,
                passed: count("passed")?,
                exact: count("exact")?,
            })
        })
        .collect::<Result<Vec<_>, EvalError>>()?;
    Ok(InfillReport {
        settings: Vec::new(),
        rows,
        failures: Vec::new(),
        wall_seconds: value["wall_seconds"].as_f64().unwrap_or(0.0),
    })
}

/// Writes `DIR/report.md`, `DIR/results.json` and `DIR/chart.svg`.
pub fn write_infill_outputs(dir: &Path, r: &InfillReport) -> Result<RunOutputs, EvalError> {
    crate::report::write_outputs(
        dir,
        &infill_results_json(r),
        infill_report_markdown(r),
        infill_chart_svg(r),
    )
}

#[cfg(test)]
#[path = "infill_tests.rs"]
mod infill_tests;
