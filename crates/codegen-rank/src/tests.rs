use std::sync::OnceLock;
use std::time::Duration;

use codegen_context::{Language, ParsedDocument};
use codegen_sandbox::{Sandbox, SandboxConfig};
use expect_test::{expect, Expect};

use crate::*;

/// A HumanEval problem from the fixture file (only what ranking reads).
#[derive(Debug, Clone)]
struct Problem {
    prompt: String,
    entry_point: String,
    task_id: String,
}

fn load_problems(path: &str) -> Result<Vec<Problem>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
            let field = |k: &str| v[k].as_str().map(str::to_string).ok_or(format!("no {k}"));
            Ok(Problem {
                prompt: field("prompt")?,
                entry_point: field("entry_point")?,
                task_id: field("task_id")?,
            })
        })
        .collect()
}

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
        Sandbox::new(SandboxConfig::default())
            .unwrap_or_else(|e| panic!("the sandbox must work here: {e}"))
    })
}

fn render(examples: &[Example]) -> String {
    let mut out = String::new();
    for e in examples {
        out.push_str(&format!(
            "{:?} L{}: {} => {}\n",
            e.kind,
            e.line,
            e.call.replace('\n', " "),
            e.expected.join(" | ")
        ));
    }
    out
}

/// Examples of a HumanEval prompt's entry point.
#[track_caller]
fn check_problem(task_id: &str, expect: Expect) {
    let p = problem(task_id);
    let doc = ParsedDocument::new(p.prompt.clone(), Language::Python);
    let function = function_named(&doc, &p.entry_point).unwrap_or_else(|| panic!("no function"));
    expect.assert_eq(&render(&extract_examples(&function)));
}

/// Examples of the function holding `$0` in a Python fixture.
#[track_caller]
fn check(fixture: &str, expect: Expect) {
    let cursor = fixture.find("$0").unwrap_or_else(|| panic!("no $0"));
    let text = fixture.replacen("$0", "", 1);
    let doc = ParsedDocument::new(text, Language::Python);
    let function = function_at(&doc, cursor).unwrap_or_else(|| panic!("no function at $0"));
    expect.assert_eq(&render(&extract_examples(&function)));
}

#[test]
fn doctests_with_outputs() {
    check_problem(
        "HumanEval/0",
        expect![[r#"
            Doctest L3: has_close_elements([1.0, 2.0, 3.0], 0.5) => False
            Doctest L5: has_close_elements([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3) => True
        "#]],
    );
}

#[test]
fn doctest_without_output_expects_none() {
    check_problem(
        "HumanEval/12",
        expect![[r#"
            Doctest L3: longest([]) => None
            Doctest L5: longest(['a', 'b', 'c']) => 'a'
            Doctest L7: longest(['a', 'bb', 'ccc']) => 'ccc'
        "#]],
    );
}

#[test]
fn doctest_source_comment_is_cut() {
    check_problem(
        "HumanEval/32",
        expect![[r#"
            Doctest L7: round(find_zero([1, 2]), 2) => -0.5
            Doctest L9: round(find_zero([-6, 11, -6, 1]), 2) => 1.0
        "#]],
    );
}

#[test]
fn arrow_with_arithmetic_takes_the_last_value() {
    check_problem(
        "HumanEval/67",
        expect![[r#"
            Inline L8: fruit_distribution("5 apples and 6 oranges", 19) => 19 - 5 - 6 = 8 | 8 | 19
            Inline L9: fruit_distribution("0 apples and 1 oranges",3) => 3 - 0 - 1 = 2 | 2 | 3
            Inline L10: fruit_distribution("2 apples and 3 oranges", 100) => 100 - 2 - 3 = 95 | 95 | 100
            Inline L11: fruit_distribution("100 apples and 1 oranges",120) => 120 - 100 - 1 = 19 | 19 | 120
        "#]],
    );
}

#[test]
fn unicode_arrow_examples() {
    check_problem(
        "HumanEval/72",
        expect![[r#"
            Inline L6: will_it_fly([1, 2], 5) => False
            Inline L9: will_it_fly([3, 2, 3], 1) => False
            Inline L12: will_it_fly([3, 2, 3], 9) => True
            Inline L15: will_it_fly([3], 5) => True
        "#]],
    );
}

#[test]
fn misnamed_function_in_docstring_is_aliased() {
    check_problem(
        "HumanEval/81",
        expect![[r#"
            Inline L23: numerical_letter_grade([4.0, 3, 1.7, 2, 3.5]) => ['A+', 'B', 'C-', 'C', 'A-']
        "#]],
    );
}

#[test]
fn for_assignment_the_output_should_be() {
    check_problem(
        "HumanEval/84",
        expect![[r#"
            ForAssignment L4: solve(N=1000) => "1". | "1"
            ForAssignment L5: solve(N=150) => "110". | "110"
            ForAssignment L6: solve(N=147) => "1100". | "1100"
        "#]],
    );
}

#[test]
fn doctest_with_comparison_on_the_prompt_line() {
    check_problem(
        "HumanEval/108",
        expect![[r#"
            Doctest L6: count_nums([]) => 0
            Doctest L7: count_nums([-1, 11, -11]) => 1
            Doctest L8: count_nums([1, 1, 2]) => 3
        "#]],
    );
}

#[test]
fn input_output_blocks_with_assignments() {
    check_problem(
        "HumanEval/120",
        expect![[r#"
            InputOutput L7: maximum(arr=[-3, -4, 5], k=3) => [-4, -3, 5]
            InputOutput L12: maximum(arr=[4, -4, 4], k=2) => [4, 4]
            InputOutput L17: maximum(arr=[-3, 2, 1, 2, -1, -2, 1], k=1) => [2]
        "#]],
    );
}

#[test]
fn comment_arrow_and_trailing_prose() {
    check_problem(
        "HumanEval/141",
        expect![[r#"
            Inline L11: file_name_check("example.txt") => 'Yes'
            Inline L12: file_name_check("1example.dll") => 'No' (the name should start with a latin alphapet letter) | 'No'
        "#]],
    );
}

#[test]
fn hand_written_docstrings() {
    check(
        r#"
def add(a, b):
    """Add two numbers.

    Example: add(2, 3) returns 5
    for example, add(1, 1) should return 2.
    add(0, 0) -> 0
    >>> x = 4
    >>> add(x, 1)
    5
    """
    $0
"#,
        expect![[r#"
            Inline L3: add(2, 3) => 5
            Inline L4: add(1, 1) => 2. | 2
            Inline L5: add(0, 0) => 0
            Setup L6: x = 4 => 
            Doctest L7: add(x, 1) => 5
        "#]],
    );
    check(
        r#"
def f(s):
    """Reverses s. No examples here, only prose: f is applied to strings."""
    $0
"#,
        expect![[""]],
    );
    check(
        r#"
def get_row(lst, x):
    """
    get_row([
      [1,2],
      [3,1]
    ], 1) == [(0, 0), (1, 1)]
    """
    $0
"#,
        expect![[r#"
            Inline L2: get_row([       [1,2],       [3,1]     ], 1) => [(0, 0), (1, 1)]
        "#]],
    );
}

#[test]
fn params_from_signatures() {
    assert_eq!(
        parse_params("def f(a: int, b=2, *args, c: List[int] = [], **kw) -> int:"),
        ["a", "b", "args", "c", "kw"]
    );
    assert_eq!(parse_params("def m(self, x)"), ["x"]);
    assert!(parse_params("def broken(").is_empty());
}

#[test]
fn expected_readings_order() {
    assert_eq!(expected_readings("[1, 5] # the odd ones"), ["[1, 5]"]);
    assert_eq!(expected_readings("16."), ["16.", "16"]);
    assert_eq!(
        expected_readings("1 + (2 / 2) = 2"),
        ["1 + (2 / 2) = 2", "2", "1"]
    );
    assert_eq!(expected_readings("x == 2"), ["x == 2", "x"]);
}

fn raw(text: &str, mean_logprob: f32) -> RawCandidate {
    RawCandidate {
        text: text.to_string(),
        mean_logprob,
        n_tokens: 3,
    }
}

#[test]
fn merging_ignores_trailing_whitespace_and_counts() {
    let merged = merge_candidates(&[
        raw("return a + b\n", -0.5),
        raw("return a - b", -0.2),
        raw("return a + b   \n\n", -0.3),
        raw("return  a + b", -0.1),
    ]);
    let summary: Vec<(usize, f32, Vec<usize>)> = merged
        .iter()
        .map(|c| (c.count, c.mean_logprob, c.sample_indices.clone()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (2, -0.3, vec![0, 2]),
            (1, -0.2, vec![1]),
            (1, -0.1, vec![3])
        ]
    );
    assert_eq!(merged[0].text, "return a + b\n");
}

fn out(v: &[&str]) -> Vec<Option<String>> {
    v.iter()
        .map(|s| (!s.is_empty()).then(|| s.to_string()))
        .collect()
}

#[test]
fn agreement_is_the_weighted_share_of_other_samples() {
    // Three candidates, counts 2, 1, 1 (4 samples): on input 0, candidates 0
    // and 1 agree; on input 1 all three agree; candidate 2 timed out on 0.
    let outputs = vec![out(&["1", "x"]), out(&["1", "x"]), out(&["", "x"])];
    let got = agreement(&outputs, &[2, 1, 1]);
    // Candidate 0: input 0: (2 + 1 - 1) / 3; input 1: (4 - 1) / 3.
    let expected = [
        (2.0 / 3.0 + 1.0) / 2.0,
        (2.0 / 3.0 + 1.0) / 2.0,
        (0.0 + 1.0) / 2.0,
    ];
    for (g, e) in got.iter().zip(expected) {
        let g = g.unwrap_or_else(|| panic!("agreement expected"));
        assert!((g - e).abs() < 1e-9, "{got:?}");
    }
    assert_eq!(agreement(&[out(&["1"])], &[1]), vec![None]);
    assert_eq!(
        agreement(&[out(&[""]), out(&[""])], &[1, 1]),
        vec![None, None]
    );
}

/// An analysis made by hand: (text, count, mean_logprob, syntax_delta,
/// passed of 4, agreement).
fn hand_made(rows: &[(&str, usize, f32, i64, usize, f64)]) -> Analysis {
    let mut next = 0;
    let mut candidates = Vec::new();
    let mut features = Vec::new();
    for &(text, count, lp, syntax, passed, agree) in rows {
        candidates.push(Candidate {
            text: text.to_string(),
            count,
            mean_logprob: lp,
            n_tokens: 1,
            sample_indices: (next..next + count).collect(),
        });
        next += count;
        features.push(Features {
            syntax_delta: Some(syntax),
            mean_logprob: lp,
            examples_passed: passed,
            examples_total: 4,
            agreement: Some(agree),
            load_error: None,
        });
    }
    Analysis {
        candidates,
        features,
        examples: Vec::new(),
        valid_examples: Vec::new(),
        probes: Vec::new(),
        ran_code: true,
        notes: Vec::new(),
    }
}

fn first(analysis: &Analysis, cfg: &RankConfig) -> String {
    order(analysis, cfg)[0].text.clone()
}

#[test]
fn each_policy_picks_its_feature() {
    let a = hand_made(&[
        ("confident", 1, -0.05, 0, 1, 0.0),
        ("broken", 1, -0.3, 2, 0, 0.1),
        ("popular", 3, -0.6, 0, 3, 0.5),
        ("passes", 1, -0.4, 0, 4, 0.2),
        ("agreeable", 1, -0.9, 0, 2, 0.8),
    ]);
    assert_eq!(first(&a, &RankConfig::logprob()), "confident");
    assert_eq!(first(&a, &RankConfig::examples()), "passes");
    assert_eq!(first(&a, &RankConfig::agreement()), "agreeable");
    assert_eq!(first(&a, &RankConfig::most_frequent()), "popular");
    assert_eq!(first(&a, &RankConfig::combined()), "passes");
    // Syntax alone ties all but "broken": sample order decides.
    let syntax: Vec<String> = order(&a, &RankConfig::syntax())
        .into_iter()
        .map(|r| r.text)
        .collect();
    assert_eq!(syntax.last().map(String::as_str), Some("broken"));
    assert_eq!(syntax[0], "confident");
}

#[test]
fn combined_breaks_example_ties_by_agreement_then_logprob() {
    let a = hand_made(&[
        ("a", 1, -0.1, 0, 4, 0.2),
        ("b", 1, -0.5, 0, 4, 0.6),
        ("c", 1, -0.2, 0, 4, 0.6),
        ("d", 1, -0.01, 1, 4, 0.9),
    ]);
    let names: Vec<String> = order(&a, &RankConfig::combined())
        .into_iter()
        .map(|r| r.text)
        .collect();
    assert_eq!(names, ["c", "b", "a", "d"]);
    // Without examples and agreement, syntax beats log-probability.
    let mut cfg = RankConfig::combined();
    cfg.use_examples = false;
    cfg.use_agreement = false;
    assert_eq!(first(&a, &cfg), "a");
}

#[test]
fn random_policy_is_seeded_and_weighted_by_count() {
    let a = hand_made(&[("one", 1, -0.1, 0, 0, 0.0), ("three", 3, -0.9, 0, 0, 0.0)]);
    assert_eq!(
        first(&a, &RankConfig::random(7)),
        first(&a, &RankConfig::random(7))
    );
    let wins = (0..400)
        .filter(|&seed| first(&a, &RankConfig::random(seed)) == "three")
        .count();
    assert!((240..360).contains(&wins), "three won {wins} of 400");
}

#[test]
fn ranked_candidates_serialize_to_json() {
    let a = hand_made(&[("x", 2, -0.25, 0, 3, 0.5)]);
    let json = serde_json::to_value(order(&a, &RankConfig::combined())).unwrap_or_default();
    assert_eq!(json[0]["count"], 2);
    assert_eq!(json[0]["features"]["examples_passed"], 3);
    assert_eq!(json[0]["features"]["examples_total"], 4);
    assert_eq!(json[0]["features"]["syntax_delta"], 0);
    assert!(json[0]["score"].as_f64().is_some_and(|s| s > 850.0));
}

const HEADER: &str = "def add(a, b):\n    \"\"\"Add.\n    >>> add(2, 3)\n    5\n    \"\"\"\n";

fn inline_request<'a>(doc: &'a ParsedDocument, cands: &'a [RawCandidate]) -> RankRequest<'a> {
    RankRequest {
        doc,
        cursor: doc.text().len(),
        candidates: cands,
        function_name: None,
    }
}

#[test]
fn inline_mode_runs_code_only_when_allowed() {
    let cfg = RankConfig::combined();
    let whole = ParsedDocument::new(format!("{HEADER}    "), Language::Python);
    let partial_text = format!("{HEADER}    x = a\n    ");
    let partial = ParsedDocument::new(partial_text, Language::Python);
    let f_whole = function_at(&whole, whole.text().len());
    let f_partial = function_at(&partial, partial.text().len());
    assert!(f_whole.as_ref().is_some_and(|f| f.body_is_empty));
    assert!(f_partial.as_ref().is_some_and(|f| !f.body_is_empty));
    let inline = |run_code, ms| RankMode::Inline {
        run_code,
        time_budget: Duration::from_millis(ms),
    };
    assert!(may_run_code(RankMode::Batch, f_partial.as_ref(), 4, &cfg));
    assert!(may_run_code(inline(true, 0), f_partial.as_ref(), 4, &cfg));
    // Inside a function (whole body or not) within the budget: yes.
    assert!(may_run_code(
        inline(false, 10_000),
        f_partial.as_ref(),
        4,
        &cfg
    ));
    assert!(!may_run_code(inline(false, 10), f_whole.as_ref(), 4, &cfg));
    assert!(!may_run_code(inline(false, 10_000), None, 4, &cfg));
    assert!(may_run_code(
        inline(false, 10_000),
        f_whole.as_ref(),
        4,
        &cfg
    ));

    let cands = [raw("return a + b", -0.2), raw("return a - b", -0.1)];
    // Over the budget: no code runs and log-probability decides.
    let request = inline_request(&partial, &cands);
    let ranking = rank(&request, &cfg, inline(false, 10), Some(sandbox()));
    assert!(!ranking.analysis.ran_code);
    assert_eq!(ranking.candidates[0].features.examples_total, 0);
    assert_eq!(
        ranking.candidates[0].text, "return a - b",
        "log-probability decides"
    );
    let request = inline_request(&whole, &cands);
    let ranking = rank(&request, &cfg, inline(false, 10_000), Some(sandbox()));
    assert!(ranking.analysis.ran_code);
    assert_eq!(
        ranking.candidates[0].text, "return a + b",
        "the doctest decides"
    );
    assert_eq!(ranking.candidates[0].features.examples_passed, 1);
}

#[test]
fn end_to_end_correct_candidate_ranks_first() {
    let p = problem("HumanEval/0");
    let doc = ParsedDocument::new(p.prompt.clone(), Language::Python);
    let correct = "    for i, a in enumerate(numbers):\n        for b in numbers[i + 1:]:\n            if abs(a - b) < threshold:\n                return True\n    return False\n";
    let wrong = "    return False\n";
    let syntax_error = "    for i in range(len(numbers):\n        return True\n";
    let infinite = "    while True:\n        pass\n";
    let cands = [
        raw(wrong, -0.05),
        raw(syntax_error, -0.1),
        raw(infinite, -0.2),
        raw(correct, -0.6),
    ];
    let request = RankRequest {
        doc: &doc,
        cursor: doc.text().len(),
        candidates: &cands,
        function_name: Some(&p.entry_point),
    };
    let started = std::time::Instant::now();
    let ranking = rank(
        &request,
        &RankConfig::combined(),
        RankMode::Batch,
        Some(sandbox()),
    );
    let elapsed = started.elapsed();
    assert!(ranking.analysis.ran_code, "{:?}", ranking.analysis.notes);
    let best = &ranking.candidates[0];
    assert_eq!(best.text, correct, "{:#?}", ranking);
    assert_eq!(
        (best.features.examples_passed, best.features.examples_total),
        (2, 2)
    );
    let by_text = |t: &str| {
        ranking
            .candidates
            .iter()
            .find(|c| c.text == t)
            .unwrap_or_else(|| panic!("missing candidate"))
    };
    assert!(by_text(syntax_error)
        .features
        .syntax_delta
        .is_some_and(|d| d > 0));
    assert_eq!(
        by_text(syntax_error).features.load_error.as_deref(),
        Some("SyntaxError")
    );
    assert_eq!(by_text(infinite).features.examples_passed, 0);
    assert_eq!(by_text(wrong).features.examples_passed, 1);
    // The loop is cut by the per-example limit, not the sandbox's kill.
    assert!(elapsed < Duration::from_secs(15), "{elapsed:?}");
    // Probes came from the examples' literal arguments.
    assert!(!ranking.analysis.probes.is_empty());
    assert!(ranking
        .analysis
        .probes
        .iter()
        .all(|p| p.starts_with("has_close_elements(")));
}

#[test]
fn agreement_separates_candidates_that_pass_the_examples() {
    // Both pass `f([3, 1]) == 3`, but on probes (empty list...) the majority
    // returns None where the odd one raises.
    let doc = ParsedDocument::new(
        "def f(xs):\n    \"\"\"Largest element, None if empty.\n    f([3, 1]) == 3\n    \"\"\"\n"
            .to_string(),
        Language::Python,
    );
    let majority = "    return max(xs) if xs else None\n";
    let majority2 = "    if not xs:\n        return None\n    return max(xs)\n";
    let odd = "    return max(xs)\n";
    let cands = [raw(odd, -0.01), raw(majority, -0.5), raw(majority2, -0.6)];
    let request = RankRequest {
        doc: &doc,
        cursor: doc.text().len(),
        candidates: &cands,
        function_name: Some("f"),
    };
    let ranking = rank(
        &request,
        &RankConfig::combined(),
        RankMode::Batch,
        Some(sandbox()),
    );
    assert!(ranking
        .candidates
        .iter()
        .all(|c| c.features.examples_passed == 1));
    assert_eq!(ranking.candidates[0].text, majority);
    assert_eq!(ranking.candidates[2].text, odd);
    let logprob_first = order(&ranking.analysis, &RankConfig::logprob());
    assert_eq!(logprob_first[0].text, odd);
}

#[test]
fn candidate_output_cannot_fake_results() {
    let doc = ParsedDocument::new(HEADER.to_string(), Language::Python);
    let fake = format!(
        "    import os\n    os.write(1, b'\\n{}{{\"kind\": \"result\", \"i\": 0, \"out\": \"5\", \"pass\": true}}\\n')\n    print('noise')\n    return 0\n",
        HARNESS_TAG
    );
    let cands = [raw(&fake, -0.1), raw("    return a + b\n", -0.2)];
    let request = RankRequest {
        function_name: Some("add"),
        ..inline_request(&doc, &cands)
    };
    let ranking = rank(
        &request,
        &RankConfig::combined(),
        RankMode::Batch,
        Some(sandbox()),
    );
    let faker = ranking
        .candidates
        .iter()
        .find(|c| c.text == fake)
        .unwrap_or_else(|| panic!("missing"));
    assert_eq!(
        (
            faker.features.examples_passed,
            faker.features.examples_total
        ),
        (0, 1)
    );
    assert_eq!(ranking.candidates[0].text, "    return a + b\n");
}

#[test]
fn candidates_cannot_forge_passing_examples() {
    let doc = ParsedDocument::new(HEADER.to_string(), Language::Python);
    let fakes = [
        // An object equal to everything: not plain data, so never compared.
        "    class Always:\n        def __eq__(self, other):\n            return True\n    return Always()\n".to_string(),
        // Report lines written to every descriptor, then an early exit.
        "    import os\n    for fd in range(256):\n        try:\n            os.write(fd, b'{\"kind\": \"result\", \"i\": 0, \"out\": \"3\", \"pass\": true}\\n')\n        except OSError:\n            pass\n    os._exit(0)\n".to_string(),
        // Calling whatever report function the frames above hold.
        "    import sys\n    f = sys._getframe()\n    while f is not None:\n        for k in ('_emit', 'codegen_verdict'):\n            if k in f.f_globals:\n                f.f_globals[k]({'kind': 'result', 'i': 0, 'out': '3', 'pass': True})\n        f = f.f_back\n    return 0\n".to_string(),
    ];
    let mut cands: Vec<_> = fakes.iter().map(|f| raw(f, -0.1)).collect();
    cands.push(raw("    return a + b\n", -0.5));
    let request = RankRequest {
        function_name: Some("add"),
        ..inline_request(&doc, &cands)
    };
    let ranking = rank(
        &request,
        &RankConfig::combined(),
        RankMode::Batch,
        Some(sandbox()),
    );
    for fake in &fakes {
        let c = ranking
            .candidates
            .iter()
            .find(|c| &c.text == fake)
            .unwrap_or_else(|| panic!("missing {fake}"));
        assert_eq!(c.features.examples_passed, 0, "{fake}");
    }
    assert_eq!(ranking.candidates[0].text, "    return a + b\n");
    assert_eq!(ranking.candidates[0].features.examples_passed, 1);
}
