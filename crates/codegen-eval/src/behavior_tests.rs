use std::collections::HashMap;
use std::path::Path;

use super::*;
use codegen_sandbox::SandboxConfig;
use expect_test::expect;

fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/behavior")
}

fn shipped() -> Vec<Case> {
    load_suite(&suite_dir()).expect("the shipped suite loads")
}

fn checker() -> Checker {
    let sandbox = Sandbox::new(SandboxConfig::default()).expect("the sandbox is available");
    Checker::new(Some(sandbox), Toolchains::detect())
}

/// Answers each case with its reference solution, or with what `answers`
/// says for `case#test` keys.
struct Scripted {
    solutions: HashMap<String, String>,
    answers: HashMap<String, String>,
}

impl Completer for Scripted {
    fn complete(&self, key: &str, _fixture: &Fixture) -> Result<String, String> {
        if let Some(a) = self.answers.get(key) {
            return Ok(a.clone());
        }
        let case = key.split('#').next().unwrap_or(key);
        self.solutions
            .get(case)
            .cloned()
            .ok_or_else(|| format!("no solution for {case}"))
    }
}

#[test]
fn shipped_suite_covers_five_languages_and_every_transformation() {
    let cases = shipped();
    for language in ["python", "rust", "javascript", "typescript", "go"] {
        let of_language: Vec<&Case> = cases
            .iter()
            .filter(|c| language_name(c.fixture.language) == language)
            .collect();
        assert!(of_language.len() >= 15, "{language}: {}", of_language.len());
        for t in Invariance::ALL {
            let n = of_language
                .iter()
                .filter(|c| !c.skip.contains(&t) && t.apply(&c.fixture).is_some())
                .count();
            assert!(n >= 3, "{language}: {} applies to {n} cases", t.name());
        }
        assert!(of_language.iter().all(|c| c.solution.is_some()));
        assert!(of_language.iter().any(|c| c.example.is_some()));
        assert!(of_language
            .iter()
            .any(|c| remove_docstring(&c.fixture).is_some()));
    }
    assert!(cases.iter().any(|c| c.typed.is_some()));
}

/// Every case's reference solution passes, also under each invariance
/// transformation that leaves names alone; a wrong answer fails.
#[test]
fn reference_solutions_pass_and_transformations_keep_them_passing() {
    let cases = shipped();
    let checker = checker();
    let failures = std::sync::Mutex::new(Vec::new());
    let skipped = AtomicUsize::new(0);
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| loop {
                let idx = next.fetch_add(1, Ordering::Relaxed);
                let Some(case) = cases.get(idx) else { break };
                let solution = case.solution.as_deref().unwrap_or("");
                let mut fixtures = vec![("mft".to_string(), case.fixture.clone())];
                for t in Invariance::ALL {
                    if matches!(t, Invariance::RenameLocals | Invariance::RenameFunction) {
                        continue;
                    }
                    if let Some(f) = t.apply(&case.fixture) {
                        fixtures.push((t.name().to_string(), f));
                    }
                }
                if let Some(typed) = &case.typed {
                    fixtures.push(("typed".into(), typed.clone()));
                }
                if let Some(f) = case
                    .example
                    .as_deref()
                    .and_then(|e| add_example(&case.fixture, e))
                {
                    fixtures.push(("example".into(), f));
                }
                for (name, fixture) in fixtures {
                    let verdict = checker.check(&fixture, solution);
                    if verdict.compiled == Compiled::Skipped {
                        skipped.fetch_add(1, Ordering::Relaxed);
                    }
                    if !verdict.passed {
                        failures.lock().unwrap().push(format!(
                            "{} {name}: {}\n{}",
                            case.id,
                            verdict.detail,
                            fixture.completed(solution)
                        ));
                    }
                }
                // A completion that breaks the syntax fails.
                let broken = checker.check(&case.fixture, "(]");
                if broken.passed {
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("{}: \"(]\" passed", case.id));
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    eprintln!(
        "not compiled (toolchain missing): {}",
        skipped.load(Ordering::Relaxed)
    );
}

#[test]
fn wrong_answers_fail_the_checks() {
    let cases = shipped();
    let checker = checker();
    let case = |id: &str| cases.iter().find(|c| c.id == id).unwrap();
    // Python: parses, fails the asserts in the sandbox.
    let v = checker.check(&case("python/add").fixture, "a - b");
    assert!(!v.passed && v.detail.contains("asserts"), "{v:?}");
    // Compiled languages: parses, does not type-check.
    for (id, wrong) in [
        ("rust/sum_of_squares", "n.to_string()"),
        ("typescript/add", "\"a\" + b"),
        ("go/add", "a + \"b\""),
    ] {
        let v = checker.check(&case(id).fixture, wrong);
        if v.compiled == Compiled::Skipped {
            eprintln!("{id}: toolchain missing, not compiled");
            continue;
        }
        assert!(!v.passed && v.compiled == Compiled::Failed, "{id}: {v:?}");
    }
    let v = checker.check(&case("javascript/is_even").fixture, "n %");
    assert!(!v.passed, "{v:?}");
}

#[test]
fn a_malformed_case_names_its_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("python")).unwrap();
    let path = dir.path().join("python/bad.toml");
    std::fs::write(
        &path,
        "language = \"python\"\ndocument = \"def f(): pass\"\n",
    )
    .unwrap();
    let err = load_suite(dir.path()).unwrap_err().to_string();
    assert!(err.contains("bad.toml") && err.contains("no $0"), "{err}");
    std::fs::write(&path, "language = \"cobol\"\ndocument = \"$0\"\n").unwrap();
    let err = load_suite(dir.path()).unwrap_err().to_string();
    assert!(err.contains("bad.toml") && err.contains("cobol"), "{err}");
    std::fs::write(
        &path,
        "language = \"python\"\ndocument = \"$0\"\nskip = [\"crlf2\"]\n",
    )
    .unwrap();
    let err = load_suite(dir.path()).unwrap_err().to_string();
    assert!(err.contains("crlf2"), "{err}");
    std::fs::write(
        &path,
        "language = \"python\"\ndocument = \"$0\"\nasserts = [1]\n",
    )
    .unwrap();
    assert!(load_suite(dir.path()).is_err());
    std::fs::remove_file(&path).unwrap();
    let err = load_suite(dir.path()).unwrap_err().to_string();
    assert!(err.contains("no cases"), "{err}");
}

/// `codegen model validate`'s must-pass suite is the cases marked
/// `must_pass`: at least one per language, each with a reference solution
/// that passes.
#[test]
fn the_must_pass_cases_cover_every_language_and_their_solutions_pass() {
    let cases: Vec<Case> = shipped().into_iter().filter(|c| c.must_pass).collect();
    let mut languages: Vec<&str> = cases
        .iter()
        .map(|c| language_name(c.fixture.language))
        .collect();
    languages.sort();
    languages.dedup();
    assert_eq!(
        languages,
        vec!["go", "javascript", "python", "rust", "typescript"]
    );
    let checker = checker();
    for case in &cases {
        let solution = case
            .solution
            .as_ref()
            .expect("must-pass cases have a solution");
        let verdict = checker.check(&case.fixture, solution);
        assert!(verdict.passed, "{}: {}", case.id, verdict.detail);
    }
}

#[test]
fn report_counts_flips_per_test_type() {
    let text = |doc: &str, rest: &str| {
        format!("language = \"python\"\ncapability = \"arith\"\ndocument = '''\n{doc}'''\n{rest}")
    };
    let mut cases = vec![
        parse_case(
            "python/add",
            Path::new("add.toml"),
            &text(
                "def add(a, b):\n    \"\"\"Return the sum of a and b.\"\"\"\n    return $0\n",
                "asserts = \"assert add(2, 3) == 5\"\nexample = \">>> add(2, 3)\\n5\"\n",
            ),
        )
        .unwrap(),
        parse_case(
            "python/sub",
            Path::new("sub.toml"),
            &text(
                "def sub(a, b):\n    \"\"\"Return a minus b.\"\"\"\n    return $0\n",
                "asserts = \"assert sub(2, 3) == -1\"\n",
            ),
        )
        .unwrap(),
    ];
    cases[1].capability = "other".into();
    cases[1].group = "other".into();
    let completer = Scripted {
        solutions: [("python/add", "a + b"), ("python/sub", "a + b")]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
        answers: [
            ("python/add#crlf", "a +"),
            ("python/sub#remove-docstring", "a - b"),
            ("python/add#add-docstring-example", "0"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect(),
    };
    let report = run_behavior(
        &cases,
        &completer,
        &checker(),
        &BehaviorConfig::default(),
        &|_, _| {},
    );
    let md = report.markdown("behaviour");
    let table: String = md
        .lines()
        .skip_while(|l| !l.starts_with("| Test type | Capability"))
        .take_while(|l| l.starts_with('|'))
        .map(|l| format!("{l}\n"))
        .collect();
    expect![[r#"
        | Test type | Capability / group | Test | Tests | Failed | Failure rate | Failing cases |
        |---|---|---|---:|---:|---:|---|
        | MFT | arith | mft | 1 | 0 | 0.0% |  |
        | MFT | other | mft | 1 | 1 | 100.0% | python/sub |
        | INV | arith | crlf | 1 | 1 | 100.0% | python/add |
        | INV | arith | non-ascii-nearby | 1 | 0 | 0.0% |  |
        | INV | arith | reformat-docstring | 1 | 0 | 0.0% |  |
        | INV | arith | rename-function | 1 | 0 | 0.0% |  |
        | INV | arith | rename-locals | 1 | 1 | 100.0% | python/add |
        | INV | arith | tabs-for-spaces | 1 | 0 | 0.0% |  |
        | INV | arith | unrelated-function-above | 1 | 0 | 0.0% |  |
        | INV | other | crlf | 1 | 0 | 0.0% |  |
        | INV | other | non-ascii-nearby | 1 | 0 | 0.0% |  |
        | INV | other | reformat-docstring | 1 | 0 | 0.0% |  |
        | INV | other | rename-function | 1 | 0 | 0.0% |  |
        | INV | other | rename-locals | 1 | 0 | 0.0% |  |
        | INV | other | tabs-for-spaces | 1 | 0 | 0.0% |  |
        | INV | other | unrelated-function-above | 1 | 0 | 0.0% |  |
        | DIR | arith | add-docstring-example | 1 | 1 | 100.0% (pass 100% → 0%, **wrong way**) | python/add |
        | DIR | arith | remove-docstring | 1 | 0 | 0.0% (pass 100% → 100%) |  |
        | DIR | other | remove-docstring | 1 | 1 | 100.0% (pass 0% → 100%, **wrong way**) | python/sub |
    "#]]
    .assert_eq(&table);
    let totals: Vec<(usize, usize)> = report.totals.iter().map(|t| (t.tests, t.failed)).collect();
    assert_eq!(totals[0], (2, 1));
}
