//! The sandboxed program that runs one candidate on the docstring's examples
//! (and on probe inputs derived from them) and reports, per input, the repr
//! of the result or the exception type, as tagged JSON lines on stdout.
//!
//! The program first decides, without running the candidate, which examples
//! parse (a call whose argument names are all builtins, an expected value
//! made of constants and builtins), and derives the probe inputs from the
//! examples' literal arguments; both depend only on the examples, so every
//! candidate of a request sees the same inputs. Then it loads the module
//! (the document with the candidate inserted) and evaluates each input under
//! its own `SIGALRM` time limit, printing one line per input as it goes, so
//! a run killed by the sandbox still reports what it finished.

use std::time::Duration;

use codegen_sandbox::python_str_literal;
use codegen_sandbox::{Outcome, Status};
use serde::Deserialize;

use crate::examples::{Example, ExampleKind};

/// The old prefix of report lines on stdout. Reports are now verdicts
/// (`Sandbox::run_harness`); a line with this prefix is candidate noise.
pub const TAG: &str = "__codegen_rank__ ";

/// Time limits of one program.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HarnessLimits {
    pub load: Duration,
    pub example: Duration,
    pub probe: Duration,
    /// After this many timed-out inputs the rest are reported as timed out
    /// without running (a candidate that loops on one input usually loops
    /// on all).
    pub max_timeouts: usize,
}

/// The program text for one candidate.
/// `known_names`: names the document (before insertion) defines, allowed in
/// example arguments beside builtins.
pub(crate) fn program(
    source: &str,
    examples: &[Example],
    known_names: &[String],
    n_probes: usize,
    limits: &HarnessLimits,
) -> String {
    let spec = serde_json::json!({
        "source": source,
        "known_names": known_names,
        "examples": examples.iter().map(|e| serde_json::json!({
            "setup": e.kind == ExampleKind::Setup,
            "call": e.call,
            "expected": e.expected,
        })).collect::<Vec<_>>(),
        "probes": n_probes,
        "load_timeout": limits.load.as_secs_f64(),
        "example_timeout": limits.example.as_secs_f64(),
        "probe_timeout": limits.probe.as_secs_f64(),
        "max_timeouts": limits.max_timeouts,
    });
    TEMPLATE
        .replace("@ISOLATE@", codegen_sandbox::ISOLATE_PY)
        .replace("@SPEC@", &python_str_literal(&spec.to_string()))
}

/// Wall-clock limit for the whole program: every input at its full limit,
/// plus 2 s for the interpreter, at most 30 s. Only a candidate that is
/// slow without timing out comes near it.
pub(crate) fn wall_limit(n_examples: usize, n_probes: usize, limits: &HarnessLimits) -> Duration {
    let total = limits.load
        + limits.example * n_examples as u32
        + limits.probe * n_probes as u32
        + Duration::from_secs(2);
    total.min(Duration::from_secs(30))
}

/// What one run reported.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct RunReport {
    /// Per example (in the order given): whether it parses and counts.
    pub valid: Vec<bool>,
    /// Probe calls derived from the examples.
    pub probes: Vec<String>,
    /// The module failed to load: the exception type.
    pub load_error: Option<String>,
    /// Per input (examples, then probes): the output (`repr` of the result,
    /// `!ExceptionType`, `!Timeout`), `None` when not reported.
    pub outputs: Vec<Option<String>>,
    /// Per example: passed (`None` for invalid examples, setups, or when not
    /// reported).
    pub passed: Vec<Option<bool>>,
    /// The sandbox could not run the program.
    pub sandbox_error: Option<String>,
    pub timed_out: bool,
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Line {
    Inputs {
        valid: Vec<bool>,
        probes: Vec<String>,
    },
    Load {
        error: Option<String>,
    },
    Result {
        i: usize,
        out: String,
        pass: Option<bool>,
    },
}

/// Reads a run's tagged lines.
pub(crate) fn parse_outcome(outcome: &Outcome, n_examples: usize) -> RunReport {
    let mut report = RunReport {
        valid: vec![false; n_examples],
        passed: vec![None; n_examples],
        ..RunReport::default()
    };
    match &outcome.status {
        Status::Error { message } => report.sandbox_error = Some(message.clone()),
        Status::TimedOut => report.timed_out = true,
        _ => {}
    }
    // Only the harness's verdicts count: candidate code, in its own process,
    // can neither read the run's secret nor reach the harness's stdout.
    for json in &outcome.verdicts {
        let Ok(parsed) = serde_json::from_str::<Line>(json) else {
            continue;
        };
        match parsed {
            Line::Inputs { valid, probes } => {
                for (slot, v) in report.valid.iter_mut().zip(valid) {
                    *slot = v;
                }
                report.outputs = vec![None; n_examples + probes.len()];
                report.probes = probes;
            }
            Line::Load { error } => report.load_error = error,
            Line::Result { i, out, pass } => {
                if let Some(slot) = report.outputs.get_mut(i) {
                    *slot = Some(out);
                }
                if let Some(slot) = report.passed.get_mut(i) {
                    *slot = pass;
                }
            }
        }
    }
    report
}

const TEMPLATE: &str = r#"@ISOLATE@
import ast
import builtins
import json
import math
import os
import signal
import sys

# The candidate runs in its own process (ISOLATE_PY); this one only parses
# the examples, asks for results and writes verdicts.
codegen_protect()
_U = Untrusted()
codegen_read_secret()


def _emit(obj):
    codegen_verdict(json.dumps(obj))


class _Timeout(BaseException):
    pass


def _on_alarm(signum, frame):
    raise _Timeout()


signal.signal(signal.SIGALRM, _on_alarm)


def _limited(fn, seconds):
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _error_name(e):
    if isinstance(e, _IsoForeignError):
        return e.type_name.rsplit(".", 1)[-1]
    if isinstance(e, UntrustedTimeout):
        return "Timeout"
    if isinstance(e, UntrustedGone):
        return "Exit"
    if isinstance(e, UntrustedNotPlain):
        return "NotPlain"
    return type(e).__name__


SPEC = json.loads(@SPEC@)
_CONSTS = {"true": True, "false": False, "null": None, "none": None}
_ALLOWED = set(dir(builtins)) | set(_CONSTS)
_KNOWN = _ALLOWED | set(SPEC["known_names"])


def _parse(text, mode="eval"):
    try:
        return ast.parse(text.strip(), mode=mode)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None


def _names(tree):
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


def _arg_nodes(call):
    return list(call.args) + [k.value for k in call.keywords]


def _call_ok(tree):
    if tree is None:
        return False
    body = tree.body
    if isinstance(body, ast.Call):
        names = set()
        for a in _arg_nodes(body):
            names |= _names(a)
        return names <= _KNOWN
    return any(isinstance(n, ast.Call) for n in ast.walk(body))


def _expected(readings):
    for text in readings:
        tree = _parse(text)
        if tree is None or not _names(tree) <= _ALLOWED:
            continue
        if any(isinstance(n, (ast.Lambda, ast.NamedExpr, ast.Await, ast.Yield)) for n in ast.walk(tree)):
            continue
        try:
            env = {"__builtins__": builtins}
            env.update(_CONSTS)
            return True, _limited(lambda: eval(compile(tree, "<expected>", "eval"), env), 1.0)
        except BaseException:
            continue
    return False, None


examples = SPEC["examples"]
valid = []
expected = []
calls = []
for ex in examples:
    if ex["setup"]:
        ok = _parse(ex["call"], "exec") is not None
        valid.append(False)
        expected.append(None)
        calls.append(ex["call"] if ok else None)
        continue
    tree = _parse(ex["call"])
    ok = _call_ok(tree)
    has, value = _expected(ex["expected"]) if ok else (False, None)
    valid.append(bool(ok and has))
    expected.append(value)
    calls.append(ex["call"] if ok and has else None)


def _mutations(v):
    if isinstance(v, bool):
        return [not v]
    if isinstance(v, int):
        return [0, 1, -v if v else -1, v + 1]
    if isinstance(v, float):
        return [0.0, -v, v + 1.5]
    if isinstance(v, str):
        return ["", v[::-1], v.upper(), v + v[:1], v[: len(v) // 2]]
    if isinstance(v, list):
        out = [[], v[::-1], v[: len(v) // 2], v + v[:1]]
        try:
            out.append(sorted(v))
        except Exception:
            pass
        return out
    if isinstance(v, tuple):
        return [tuple(reversed(v))]
    if isinstance(v, dict):
        return [{}]
    return []


def _probe_calls():
    per_example = []
    seen = set(c for c in calls if c)
    for ex, call, ok in zip(examples, calls, valid):
        if not ok:
            continue
        tree = _parse(call)
        if tree is None or not isinstance(tree.body, ast.Call):
            continue
        body = tree.body
        try:
            func = ast.unparse(body.func)
            args = [ast.literal_eval(a) for a in body.args]
            kwargs = [(k.arg, ast.literal_eval(k.value)) for k in body.keywords]
        except Exception:
            continue
        if any(k is None for k, _ in kwargs):
            continue
        mine = []
        values = args + [v for _, v in kwargs]
        for pos, value in enumerate(values):
            for m in _mutations(value):
                new = list(values)
                new[pos] = m
                parts = [repr(x) for x in new[: len(args)]]
                parts += [k + "=" + repr(x) for (k, _), x in zip(kwargs, new[len(args):])]
                text = func + "(" + ", ".join(parts) + ")"
                if text not in seen and len(text) < 2000:
                    seen.add(text)
                    mine.append(text)
        per_example.append(mine)
    out = []
    limit = SPEC["probes"]
    i = 0
    while len(out) < limit and any(i < len(m) for m in per_example):
        for m in per_example:
            if i < len(m) and len(out) < limit:
                out.append(m[i])
        i += 1
    return out


probes = _probe_calls() if SPEC["probes"] > 0 else []
_emit({"kind": "inputs", "valid": valid, "probes": probes})


def _norm(v, depth=0):
    if depth > 20:
        return v
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return v
        return round(v, 6)
    if isinstance(v, list):
        return [_norm(x, depth + 1) for x in v]
    if isinstance(v, tuple):
        return tuple(_norm(x, depth + 1) for x in v)
    if isinstance(v, dict):
        return {k: _norm(x, depth + 1) for k, x in v.items()}
    return v


def _same(a, b, depth=0):
    if depth > 20:
        return False
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y, depth + 1) for x, y in zip(a, b))
    try:
        return bool(a == b)
    except BaseException:
        return False


def _repr(v):
    try:
        text = repr(_norm(v))
    except BaseException as e:
        return "!repr:" + type(e).__name__
    if len(text) > 300:
        import hashlib
        text = text[:200] + "...#" + hashlib.sha1(text.encode("utf-8", "replace")).hexdigest()
    return text


load_error = None
try:
    _U.load(SPEC["source"], "<candidate>", {"__name__": "__codegen_rank__"}, None, SPEC["load_timeout"])
except BaseException as e:
    load_error = _error_name(e)
_emit({"kind": "load", "error": load_error})

timeouts = 0
inputs = [(i, c, SPEC["example_timeout"]) for i, c in enumerate(calls)]
inputs += [(len(examples) + j, c, SPEC["probe_timeout"]) for j, c in enumerate(probes)]
for i, call, seconds in inputs:
    if call is None:
        continue
    is_setup = i < len(examples) and examples[i]["setup"]
    if load_error is not None:
        out = "!" + load_error
        ok = False
    elif timeouts >= SPEC["max_timeouts"]:
        out = "!Timeout"
        ok = False
    else:
        try:
            if is_setup:
                _U.exec(call, "<setup>", seconds)
                continue
            value = _U.eval(call, "<example>", seconds)
            out = _repr(value)
            ok = _same(value, expected[i]) if i < len(examples) else None
        except BaseException as e:
            out = "!" + _error_name(e)
            if out == "!Timeout":
                timeouts += 1
            ok = False
    if is_setup:
        continue
    _emit({"kind": "result", "i": i, "out": out, "pass": ok if i < len(examples) and valid[i] else None})

_U.kill()
os._exit(0)
"#;
