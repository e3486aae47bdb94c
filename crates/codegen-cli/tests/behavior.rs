//! Real model (the default one, through the same fetch path and cache as
//! users): `codegen eval behavior` on a small suite and
//! `codegen bench humaneval --perturb` on one task. Each finishes in well
//! under a minute on two cores.

use std::process::{Command, Stdio};

fn codegen() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_codegen"));
    cmd.stdin(Stdio::null());
    cmd
}

fn run_json(cmd: &mut Command) -> serde_json::Value {
    let out = cmd.output().expect("the codegen binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}\n{stderr}", out.status);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"))
}

const ADD: &str = r#"language = "python"
capability = "arithmetic"
document = '''
def add(a, b):
    """Return the sum of a and b."""
    return $0
'''
asserts = '''
assert add(2, 3) == 5
'''
example = '''
>>> add(2, 3)
5'''
"#;

const ABS: &str = r#"language = "go"
capability = "conditionals"
document = '''
package main

// Abs returns the absolute value of x.
func Abs(x int) int {
	if x < 0 {
		$0
	}
	return x
}
'''
check = '''
var _ int = Abs(-3)
'''
"#;

#[test]
fn eval_behavior_reports_every_test_type() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("suite");
    std::fs::create_dir_all(suite.join("python")).unwrap();
    std::fs::create_dir_all(suite.join("go")).unwrap();
    std::fs::write(suite.join("python/add.toml"), ADD).unwrap();
    std::fs::write(suite.join("go/abs.toml"), ABS).unwrap();
    let out_dir = dir.path().join("out");
    let json = run_json(codegen().args([
        "eval",
        "behavior",
        "--suite",
        suite.to_str().unwrap(),
        "--json",
        "--out",
        out_dir.to_str().unwrap(),
    ]));
    assert_eq!(json["cases"], 2, "{json}");
    let totals = json["totals"].as_array().unwrap();
    let tests = |t: &str| {
        totals
            .iter()
            .find(|x| x["test_type"] == t)
            .map(|x| x["tests"].as_u64().unwrap())
            .unwrap()
    };
    assert_eq!(tests("MFT"), 2);
    // Seven transformations per case (each applies to both documents).
    assert_eq!(tests("INV"), 14, "{json}");
    // add: example + docstring removed; abs: comment removed.
    assert_eq!(tests("DIR"), 3, "{json}");
    // The default model completes `return $0` in add correctly.
    let runs = json["runs"].as_array().unwrap();
    let add = runs
        .iter()
        .find(|r| r["case"] == "python/add" && r["test"] == "mft")
        .unwrap();
    assert_eq!(add["passed"], true, "{add}");
    // A missing toolchain is visible, never silent.
    let go_compiled = runs
        .iter()
        .find(|r| r["case"] == "go/abs" && r["test"] == "mft")
        .unwrap()["compiled"]
        .clone();
    if go_compiled == "skipped" {
        assert!(
            json["compile_skipped"]["go"].as_u64().unwrap_or(0) >= 1,
            "{json}"
        );
    }
    let report = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(report.contains("| INV | arithmetic | crlf |"), "{report}");
    assert!(out_dir.join("behavior.json").is_file());
}

#[test]
fn bench_humaneval_perturb_reports_robust_pass() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("robust");
    let json = run_json(codegen().args([
        "bench",
        "humaneval",
        "--tasks",
        "HumanEval/0",
        "--perturb",
        "function-name",
        "--seeds",
        "2",
        "--max-tokens",
        "200",
        "--k",
        "1",
        "--json",
        "--out",
        out_dir.to_str().unwrap(),
    ]));
    assert_eq!(json["perturbation"], "function-name", "{json}");
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "greedy only without --rank: {json}");
    let row = &rows[0];
    assert_eq!(row["policy"], "greedy");
    let nominal = row["nominal_pass_at_1"].as_f64().unwrap();
    let robust = row["robust_pass_at_1"].as_f64().unwrap();
    assert!(
        (0.0..=1.0).contains(&nominal) && (0.0..=1.0).contains(&robust),
        "{row}"
    );
    assert_eq!(row["per_seed_pass_at_1"].as_array().unwrap().len(), 2);
    for variant in ["nominal", "function-name-seed0", "function-name-seed1"] {
        assert!(
            out_dir.join(variant).join("report.md").is_file(),
            "{variant}"
        );
    }
    // One greedy sample per task and variant.
    let samples =
        std::fs::read_to_string(out_dir.join("function-name-seed0/samples.jsonl")).unwrap();
    assert_eq!(samples.lines().count(), 1);
    assert!(out_dir.join("robust-function-name.md").is_file());
}
