//! The HumanEval ranking study on fixture problems.

use std::sync::OnceLock;

use codegen_rank::RankConfig;
use codegen_sandbox::{Sandbox, SandboxConfig};

use crate::ranking::{
    ablation_markdown, normalize_code, rank_humaneval, write_ranked_samples, RankingError,
    MEAN_LOGPROB_KEY,
};
use crate::{load_problems, read_samples, Problem, Sample};

fn fixtures() -> &'static [Problem] {
    static PROBLEMS: OnceLock<Vec<Problem>> = OnceLock::new();
    PROBLEMS.get_or_init(|| {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/testdata/humaneval_subset.jsonl"
        );
        load_problems(path).unwrap_or_else(|e| panic!("fixture: {e}"))
    })
}

fn problem(task_id: &str) -> &'static Problem {
    fixtures()
        .iter()
        .find(|p| p.task_id == task_id)
        .unwrap_or_else(|| panic!("no fixture {task_id}"))
}

fn sandbox() -> &'static Sandbox {
    static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
    SANDBOX.get_or_init(|| {
        Sandbox::new(SandboxConfig::default()).unwrap_or_else(|e| panic!("sandbox: {e}"))
    })
}

fn sample(task: &str, completion: &str, lp: f64) -> Sample {
    let mut s = Sample::new(task, completion);
    s.set_extra(MEAN_LOGPROB_KEY, crate::json::JsonValue::Float(lp));
    s
}

#[test]
fn humaneval_policies_overlap_and_ranked_samples() {
    let problems: Vec<Problem> = ["HumanEval/0", "HumanEval/12"]
        .iter()
        .map(|t| problem(t).clone())
        .collect();
    let longest_ok = "    if not strings:\n        return None\n    m = max(len(s) for s in strings)\n    return next(s for s in strings if len(s) == m)\n";
    let longest_bad = "    return max(strings, key=len) if strings else ''\n";
    let close_ok = "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n";
    let close_bad = "    return False\n";
    let samples = vec![
        sample("HumanEval/0", close_bad, -0.1),
        sample("HumanEval/12", longest_bad, -0.1),
        sample("HumanEval/0", close_ok, -0.4),
        sample("HumanEval/12", longest_ok, -0.5),
        sample("HumanEval/0", close_bad, -0.1),
    ];
    // What the hidden tests would say.
    let passed = vec![false, false, true, true, false];
    let policies = RankConfig::ablation_presets(1);
    let result = rank_humaneval(
        &problems,
        &samples,
        &passed,
        &policies,
        &RankConfig::combined(),
        Some(sandbox()),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let combined = result
        .policy("combined")
        .unwrap_or_else(|| panic!("combined"));
    assert_eq!(combined.chosen, vec![2, 3]);
    assert_eq!(combined.pass_at_1, 1.0);
    let logprob = result
        .policy("logprob")
        .unwrap_or_else(|| panic!("logprob"));
    assert_eq!(logprob.pass_at_1, 0.0);
    let frequent = result
        .policy("most_frequent")
        .unwrap_or_else(|| panic!("most_frequent"));
    assert_eq!(frequent.chosen[0], 0);
    let random = result.policy("random").unwrap_or_else(|| panic!("random"));
    // Mean of c/n: (1/3 + 1/2) / 2.
    assert!((random.expected_pass_at_1 - 5.0 / 12.0).abs() < 1e-9);
    assert!((result.raw_pass_at_1 - 5.0 / 12.0).abs() < 1e-9);
    assert_eq!(result.oracle, 1.0);
    // Of the 5 doctests only `longest([])` is also a hidden test
    // (HumanEval/0's tests use other lists).
    let o = result.overlap;
    assert_eq!((o.tasks, o.tasks_with_examples, o.examples), (2, 2, 5));
    assert_eq!(
        (o.examples_in_tests, o.tasks_with_examples_in_tests),
        (1, 1)
    );
    let table = ablation_markdown(&result);
    let combined_row: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with("| combined "))
        .unwrap_or_else(|| panic!("{table}"))
        .split('|')
        .map(str::trim)
        .collect();
    assert_eq!(combined_row[1..3], ["combined", "1.000"], "{table}");

    let dir =
        std::env::temp_dir().join(format!("codegen-eval-ranking-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let path = dir.join("ranked_samples.jsonl");
    write_ranked_samples(&path, &samples, &combined.chosen).unwrap_or_else(|e| panic!("{e}"));
    let back = read_samples(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back.len(), 2);
    assert_eq!(back[0].completion, close_ok);
    assert_eq!(back[1].task_id, "HumanEval/12");
    let _ = std::fs::remove_dir_all(&dir);

    assert!(matches!(
        rank_humaneval(
            &problems,
            &samples,
            &passed[..2],
            &policies,
            &RankConfig::combined(),
            None
        ),
        Err(RankingError::Mismatch { .. })
    ));
}

#[test]
fn normalized_code_ignores_spaces_and_quote_style() {
    assert_eq!(normalize_code("f( \"a\",\n 1 )"), "f('a',1)");
}
