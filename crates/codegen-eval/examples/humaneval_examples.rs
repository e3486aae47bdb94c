//! Extraction coverage over HumanEval: which tasks' docstrings yield
//! examples, how many parse, and how many appear in the hidden tests.
//!
//! `cargo run -p codegen-eval --example humaneval_examples -- PATH/HumanEval.jsonl.gz [-v]`
//!
//! Validity is decided by the same sandboxed program that ranking runs, with
//! the prompt itself (no completion) as the module.

use codegen_eval::ranking::{normalize_code, rank_humaneval};
use codegen_eval::{load_problems, Sample};
use codegen_rank::RankConfig;
use codegen_sandbox::{Sandbox, SandboxConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: humaneval_examples PATH/HumanEval.jsonl.gz [-v]")?;
    let verbose = args.next().is_some_and(|a| a == "-v");
    let problems = load_problems(&path)?;
    let sandbox = Sandbox::new(SandboxConfig::default())?;
    // One empty completion per task: the program loads the prompt only.
    let samples: Vec<Sample> = problems
        .iter()
        .map(|p| Sample::new(p.task_id.clone(), ""))
        .collect();
    let passed = vec![false; samples.len()];
    let mut cfg = RankConfig::combined();
    cfg.probe_inputs = 0;
    let ranking = rank_humaneval(&problems, &samples, &passed, &[], &cfg, Some(&sandbox))?;
    let mut extracted = 0;
    for task in &ranking.tasks {
        let a = &task.analysis;
        let n_valid = a.n_valid_examples();
        extracted += a.examples.len();
        if verbose {
            println!("{} valid {}/{}", task.task_id, n_valid, a.examples.len());
            let test = problems
                .iter()
                .find(|p| p.task_id == task.task_id)
                .map(|p| normalize_code(&p.test))
                .unwrap_or_default();
            for (e, v) in a.examples.iter().zip(&a.valid_examples) {
                let in_test = e.args.as_ref().is_some_and(|args| {
                    test.contains(&format!("candidate({})", normalize_code(args)))
                });
                println!(
                    "   {} {} {:?} {} => {:?}",
                    if *v { "ok " } else { "BAD" },
                    if in_test { "in-test" } else { "       " },
                    e.kind,
                    e.call.replace('\n', " "),
                    e.expected
                );
            }
        }
    }
    let o = &ranking.overlap;
    println!(
        "{} tasks; {} with examples; {} examples parse ({} extracted); {} examples in {} tasks appear in the hidden tests",
        o.tasks, o.tasks_with_examples, o.examples, extracted, o.examples_in_tests, o.tasks_with_examples_in_tests
    );
    Ok(())
}
