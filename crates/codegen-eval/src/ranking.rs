//! Ranking studies of HumanEval runs (`codegen bench humaneval --rank`): features of every
//! task's samples, the chosen sample per policy, ranked pass@1, the ablation
//! table, the overlap between docstring examples and hidden tests, and
//! `ranked_samples.jsonl`.
//!
//! The hidden-test results are used only to score a choice after it is made:
//! no feature reads `test`, `canonical_solution` or the results.

use std::collections::HashMap;
use std::path::Path;

use codegen_context::{Language, ParsedDocument};
use codegen_rank::{
    analyze_many, order, splitmix, Analysis, ExampleKind, RankConfig, RankMode, RankRequest,
    RawCandidate,
};
use codegen_sandbox::Sandbox;
use serde::Serialize;

use crate::json::JsonValue;
use crate::{write_samples, EvalError, EvalReport, Problem, Sample};

/// Errors of the HumanEval ranking helpers.
#[derive(Debug, thiserror::Error)]
pub enum RankingError {
    #[error("{samples} samples but {results} hidden-test results")]
    Mismatch { samples: usize, results: usize },
    #[error("sample {sample_index} names task {task_id:?}, which is not among the problems")]
    UnknownTask {
        task_id: String,
        sample_index: usize,
    },
    #[error("no samples to rank")]
    NoSamples,
    #[error(transparent)]
    Eval(#[from] EvalError),
}

/// The samples.jsonl key holding a sample's mean token log-probability.
pub const MEAN_LOGPROB_KEY: &str = "mean_logprob";

/// A sample's mean log-probability (`NaN` when the key is missing or not a
/// number: the log-probability feature then adds nothing for it).
pub fn sample_mean_logprob(sample: &Sample) -> f32 {
    sample
        .extra()
        .find(|(k, _)| *k == MEAN_LOGPROB_KEY)
        .and_then(|(_, v)| match v {
            JsonValue::Float(f) => Some(*f as f32),
            JsonValue::Int(i) => Some(*i as f32),
            _ => None,
        })
        .unwrap_or(f32::NAN)
}

/// Hidden-test verdicts in sample order, from an evaluation report.
pub fn passed_from_report(report: &EvalReport) -> Vec<bool> {
    report.samples.iter().map(|s| s.passed).collect()
}

/// One task's samples and features (serialisable, e.g. for a per-task
/// features file beside the report).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskAnalysis {
    pub task_id: String,
    /// Indices into the samples given to [`rank_humaneval`], in file order.
    pub sample_indices: Vec<usize>,
    /// Candidates' `sample_indices` index into `sample_indices`.
    pub analysis: Analysis,
}

/// A policy's result over all tasks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyResult {
    pub name: String,
    /// Share of tasks whose chosen sample (ties: the earliest sample) passed
    /// the hidden tests. For the random policy, the seeded draw.
    pub pass_at_1: f64,
    /// The same with ties between top candidates averaged (by count): the
    /// expected value of a random tie-break; for the random policy, the mean
    /// of c/n.
    pub expected_pass_at_1: f64,
    /// Chosen sample per task (index into the samples), in task order.
    pub chosen: Vec<usize>,
}

/// How much the docstring examples overlap the hidden tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct OverlapReport {
    pub tasks: usize,
    /// Tasks with at least one example that parses.
    pub tasks_with_examples: usize,
    /// Examples that parse, in all.
    pub examples: usize,
    /// Of those, examples whose call (`candidate(args)`, whitespace and quote
    /// style ignored) appears in the task's hidden `test` code.
    pub examples_in_tests: usize,
    /// Tasks with at least one such example.
    pub tasks_with_examples_in_tests: usize,
}

/// Everything `bench humaneval --rank` reports.
#[derive(Debug, Clone, PartialEq)]
pub struct HumanEvalRanking {
    pub tasks: Vec<TaskAnalysis>,
    pub policies: Vec<PolicyResult>,
    pub overlap: OverlapReport,
    /// pass@1 of the raw samples (mean of c/n), for comparison.
    pub raw_pass_at_1: f64,
    /// Share of tasks with at least one passing sample: the ceiling of any
    /// ranking.
    pub oracle: f64,
}

impl HumanEvalRanking {
    pub fn policy(&self, name: &str) -> Option<&PolicyResult> {
        self.policies.iter().find(|p| p.name == name)
    }
}

/// Computes features for every task (code runs in `sandbox`, all tasks in one
/// pool of `features.workers`), then each policy's choice and ranked pass@1.
/// `passed[i]` is the hidden-test verdict of `samples[i]`. `features` says
/// which features to compute and the limits (normally
/// [`RankConfig::combined`], so that every policy can be scored from the
/// same runs).
pub fn rank_humaneval(
    problems: &[Problem],
    samples: &[Sample],
    passed: &[bool],
    policies: &[RankConfig],
    features: &RankConfig,
    sandbox: Option<&Sandbox>,
) -> Result<HumanEvalRanking, RankingError> {
    if samples.len() != passed.len() {
        return Err(RankingError::Mismatch {
            samples: samples.len(),
            results: passed.len(),
        });
    }
    let by_id: HashMap<&str, usize> = problems
        .iter()
        .enumerate()
        .map(|(i, p)| (p.task_id.as_str(), i))
        .collect();
    let mut per_task: Vec<Vec<usize>> = vec![Vec::new(); problems.len()];
    for (idx, sample) in samples.iter().enumerate() {
        let &task =
            by_id
                .get(sample.task_id.as_str())
                .ok_or_else(|| RankingError::UnknownTask {
                    task_id: sample.task_id.clone(),
                    sample_index: idx,
                })?;
        per_task[task].push(idx);
    }
    let attempted: Vec<usize> = (0..problems.len())
        .filter(|&t| !per_task[t].is_empty())
        .collect();
    if attempted.is_empty() {
        return Err(RankingError::NoSamples);
    }
    let docs: Vec<ParsedDocument> = attempted
        .iter()
        .map(|&t| ParsedDocument::new(problems[t].prompt.clone(), Language::Python))
        .collect();
    let raws: Vec<Vec<RawCandidate>> = attempted
        .iter()
        .map(|&t| {
            per_task[t]
                .iter()
                .map(|&i| RawCandidate {
                    text: samples[i].completion.clone(),
                    mean_logprob: sample_mean_logprob(&samples[i]),
                    n_tokens: 0,
                })
                .collect()
        })
        .collect();
    let requests: Vec<RankRequest> = docs
        .iter()
        .zip(&raws)
        .zip(&attempted)
        .map(|((doc, raw), &t)| RankRequest {
            doc,
            cursor: doc.text().len(),
            candidates: raw,
            function_name: Some(problems[t].entry_point.as_str()),
        })
        .collect();
    let analyses = analyze_many(&requests, features, RankMode::Batch, sandbox);
    let tasks: Vec<TaskAnalysis> = attempted
        .iter()
        .zip(analyses)
        .map(|(&t, analysis)| TaskAnalysis {
            task_id: problems[t].task_id.clone(),
            sample_indices: per_task[t].clone(),
            analysis,
        })
        .collect();
    let n_tasks = tasks.len() as f64;
    let mut results = Vec::new();
    for policy in policies {
        let mut hits = 0.0;
        let mut expected = 0.0;
        let mut chosen = Vec::with_capacity(tasks.len());
        for (task_idx, task) in tasks.iter().enumerate() {
            // A random policy draws independently for each task.
            let per_task;
            let policy_here = match policy.random_seed {
                Some(seed) => {
                    per_task = RankConfig {
                        random_seed: Some(seed ^ splitmix(task_idx as u64 + 1)),
                        ..policy.clone()
                    };
                    &per_task
                }
                None => policy,
            };
            let ranked = order(&task.analysis, policy_here);
            let Some(best) = ranked.first() else {
                continue;
            };
            let local = best.sample_indices.first().copied().unwrap_or(0);
            let global = task.sample_indices.get(local).copied().unwrap_or(0);
            chosen.push(global);
            if passed[global] {
                hits += 1.0;
            }
            expected += if policy.random_seed.is_some() {
                task_share(
                    task,
                    passed,
                    task.sample_indices.iter().enumerate().map(|(i, _)| i),
                )
            } else {
                let tied = ranked
                    .iter()
                    .filter(|r| r.score == best.score)
                    .flat_map(|r| r.sample_indices.iter().copied());
                task_share(task, passed, tied)
            };
        }
        results.push(PolicyResult {
            name: policy.name.clone(),
            pass_at_1: hits / n_tasks,
            expected_pass_at_1: expected / n_tasks,
            chosen,
        });
    }
    let raw_pass_at_1 = tasks
        .iter()
        .map(|t| task_share(t, passed, 0..t.sample_indices.len()))
        .sum::<f64>()
        / n_tasks;
    let oracle = tasks
        .iter()
        .filter(|t| t.sample_indices.iter().any(|&i| passed[i]))
        .count() as f64
        / n_tasks;
    let overlap = overlap_report(problems, &tasks);
    Ok(HumanEvalRanking {
        tasks,
        policies: results,
        overlap,
        raw_pass_at_1,
        oracle,
    })
}

/// Share of the given task-local samples that passed.
fn task_share(task: &TaskAnalysis, passed: &[bool], local: impl Iterator<Item = usize>) -> f64 {
    let (mut n, mut c) = (0usize, 0usize);
    for i in local {
        if let Some(&global) = task.sample_indices.get(i) {
            n += 1;
            c += usize::from(passed[global]);
        }
    }
    if n == 0 {
        0.0
    } else {
        c as f64 / n as f64
    }
}

/// Removes whitespace and unifies quotes, for finding an example's call in
/// test code.
pub fn normalize_code(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| if c == '"' { '\'' } else { c })
        .collect()
}

/// The overlap between each task's examples (those that parsed, or all
/// extracted ones when no code ran) and its hidden tests.
pub fn overlap_report(problems: &[Problem], tasks: &[TaskAnalysis]) -> OverlapReport {
    let by_id: HashMap<&str, &Problem> = problems.iter().map(|p| (p.task_id.as_str(), p)).collect();
    let mut report = OverlapReport {
        tasks: tasks.len(),
        ..OverlapReport::default()
    };
    for task in tasks {
        let Some(problem) = by_id.get(task.task_id.as_str()) else {
            continue;
        };
        let test = normalize_code(&problem.test);
        let a = &task.analysis;
        let mut n = 0;
        let mut in_tests = 0;
        for (idx, example) in a.examples.iter().enumerate() {
            let counted = if a.ran_code {
                a.valid_examples.get(idx).copied().unwrap_or(false)
            } else {
                example.kind != ExampleKind::Setup
            };
            if !counted {
                continue;
            }
            n += 1;
            let found = example.args.as_ref().is_some_and(|args| {
                let args = normalize_code(args);
                test.contains(&format!("candidate({args})"))
                    || test.contains(&format!("{}({args})", problem.entry_point))
            });
            in_tests += usize::from(found);
        }
        if n > 0 {
            report.tasks_with_examples += 1;
            report.examples += n;
        }
        if in_tests > 0 {
            report.tasks_with_examples_in_tests += 1;
            report.examples_in_tests += in_tests;
        }
    }
    report
}

/// The chosen samples, one per task, as they are (all keys kept).
pub fn ranked_samples(samples: &[Sample], chosen: &[usize]) -> Vec<Sample> {
    chosen
        .iter()
        .filter_map(|&i| samples.get(i).cloned())
        .collect()
}

/// Writes `ranked_samples.jsonl` (the official samples format).
pub fn write_ranked_samples(
    path: impl AsRef<Path>,
    samples: &[Sample],
    chosen: &[usize],
) -> Result<(), RankingError> {
    write_samples(path, &ranked_samples(samples, chosen))?;
    Ok(())
}

/// The ablation table and the overlap figures as Markdown.
pub fn ablation_markdown(ranking: &HumanEvalRanking) -> String {
    let mut out = String::new();
    let rows = ranking
        .policies
        .iter()
        .map(|p| {
            [
                crate::report::md_cell(&p.name),
                format!("{:.3}", p.pass_at_1),
                format!("{:.3}", p.expected_pass_at_1),
            ]
        })
        .chain([
            [
                "raw samples (pass@1)".into(),
                format!("{:.3}", ranking.raw_pass_at_1),
                String::new(),
            ],
            [
                "any sample passes (ceiling)".into(),
                format!("{:.3}", ranking.oracle),
                String::new(),
            ],
        ]);
    out.push_str(&crate::report::markdown_table(
        &["policy", "ranked pass@1", "expected (ties averaged)"],
        rows,
    ));
    let o = &ranking.overlap;
    out.push_str(&format!(
        "\nDocstring examples: {} of {} tasks have examples, {} examples in all; \
         {} of those examples ({} tasks) also appear in the hidden tests.\n",
        o.tasks_with_examples,
        o.tasks,
        o.examples,
        o.examples_in_tests,
        o.tasks_with_examples_in_tests
    ));
    out
}
