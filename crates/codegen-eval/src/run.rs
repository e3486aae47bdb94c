//! Benchmark runs through the engine's one entry point ([`Engine::complete`]):
//! HumanEval (whole functions) and infilling (the editor's path). The binary
//! only parses flags, shows progress and prints.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use codegen_context::Language;
use codegen_engine::{
    CompletionRequest, CompletionSettings, Document, Engine, ExampleRuns, JobError,
    PromptFormat as EnginePrompt, RankPolicy, RankSettings, RankedCompletion,
};
use codegen_sandbox::Sandbox;

use crate::infill::{
    append_infill_samples, read_infill_samples, tasks as infill_tasks, InfillFailure, InfillMode,
    InfillReport, InfillRow, InfillSample, InfillTask,
};
use crate::json::JsonValue;
use crate::ranking::MEAN_LOGPROB_KEY;
use crate::{
    append_samples, evaluate_with_progress, resume_state, EvalConfig, EvalError, EvalReport,
    Problem, PromptFormat, Sample, GENERATION_SECONDS_KEY, TOKENS_KEY,
};

/// Samples-file key: where the sample's text ranked among its task's
/// candidates (0: the engine's choice; -1: blank, never suggested).
pub const RANK_POSITION_KEY: &str = "rank_position";

/// Sampling and ranking of a benchmark run.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampling {
    /// Samples per task.
    pub n: usize,
    pub temperature: f32,
    /// The first sample is greedy whatever `temperature` says.
    pub first_greedy: bool,
    pub top_p: f32,
    pub top_k: Option<usize>,
    pub seed: u64,
    pub max_tokens: usize,
}

/// Progress of a run: tasks done, tasks in all.
pub type Progress<'a> = &'a (dyn Fn(usize, usize) + Sync);

fn engine_error(err: JobError) -> EvalError {
    EvalError::Engine(err.to_string())
}

fn task_number(task_id: &str) -> u64 {
    task_id
        .rsplit('/')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A HumanEval run.
#[derive(Debug, Clone)]
pub struct HumanEvalRun {
    pub format: PromptFormat,
    pub sampling: Sampling,
    /// Rank each task's samples in the engine (combined policy, examples
    /// always run) and record the choice ([`RANK_POSITION_KEY`]).
    pub rank: bool,
    pub samples_path: PathBuf,
}

/// Generates the samples of `problems` still missing from the run's
/// samples file (appending as it goes, so a killed run resumes).
pub fn generate_humaneval(
    run: &HumanEvalRun,
    problems: &[&Problem],
    engine: &Engine,
    progress: Progress,
) -> Result<(), EvalError> {
    let resume = resume_state(&run.samples_path)?;
    resume.prepare_for_append(&run.samples_path)?;
    let n = run.sampling.n.max(1);
    let mut done = problems
        .iter()
        .filter(|p| resume.remaining(&p.task_id, n) == 0)
        .count();
    progress(done, problems.len());
    for problem in problems {
        let remaining = resume.remaining(&problem.task_id, n);
        if remaining == 0 {
            continue;
        }
        let first = n - remaining;
        let doc = Arc::new(Document::new(
            problem.prompt.clone(),
            Some(Language::Python),
        ));
        let request = CompletionRequest {
            key: "humaneval".into(),
            cursor: problem.prompt.len(),
            doc,
            path: format!("{}.py", problem.entry_point),
            neighbours: Vec::new(),
            format: EnginePrompt::Template {
                text: run.format.prompt(problem),
                stop_strings: run
                    .format
                    .stop_sequences()
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            },
            function_name: Some(problem.entry_point.clone()),
            settings: CompletionSettings {
                n: remaining,
                max_tokens: run.sampling.max_tokens,
                temperature: run.sampling.temperature,
                first_greedy: run.sampling.first_greedy && first == 0,
                top_p: run.sampling.top_p,
                top_k: run.sampling.top_k,
                seed: run
                    .sampling
                    .seed
                    .wrapping_mul(0x9E37_79B9)
                    .wrapping_add(task_number(&problem.task_id) * 1000)
                    .wrapping_add(first as u64),
                rank: RankSettings {
                    policy: if run.rank {
                        RankPolicy::Combined
                    } else {
                        RankPolicy::None
                    },
                    examples: if run.rank {
                        ExampleRuns::Always
                    } else {
                        ExampleRuns::Never
                    },
                },
                draft_tokens: 0,
                ..CompletionSettings::default()
            },
        };
        let start = Instant::now();
        let outcome = engine.complete(request).map_err(engine_error)?;
        let seconds = start.elapsed().as_secs_f64() / outcome.samples.len().max(1) as f64;
        let positions = rank_positions(&outcome);
        let samples: Vec<Sample> = outcome
            .samples
            .iter()
            .zip(positions)
            .map(|(s, position)| {
                let mut sample =
                    Sample::new(problem.task_id.clone(), run.format.completion(&s.text));
                sample.set_extra(GENERATION_SECONDS_KEY, JsonValue::Float(seconds));
                sample.set_extra(TOKENS_KEY, JsonValue::Int((s.n_tokens as i64).into()));
                sample.set_extra(
                    MEAN_LOGPROB_KEY,
                    JsonValue::Float(f64::from(s.mean_logprob)),
                );
                if run.rank {
                    sample.set_extra(RANK_POSITION_KEY, JsonValue::Int(position.into()));
                }
                sample
            })
            .collect();
        append_samples(&run.samples_path, &samples)?;
        done += 1;
        progress(done, problems.len());
    }
    Ok(())
}

/// Per sample (in sample order), the rank of its candidate; -1 for blank
/// samples.
fn rank_positions(outcome: &RankedCompletion) -> Vec<i64> {
    let mut positions = vec![-1i64; outcome.samples.len()];
    for (rank, candidate) in outcome.suggestions.iter().enumerate() {
        for &idx in &candidate.sample_indices {
            if let Some(slot) = positions.get_mut(idx) {
                *slot = rank as i64;
            }
        }
    }
    positions
}

/// Per task (in order of first appearance), the index of the sample the
/// engine ranked first; the task's first sample when none is marked.
pub fn engine_choices(samples: &[Sample]) -> Vec<usize> {
    let mut tasks: Vec<(&str, Option<usize>, usize)> = Vec::new();
    for (idx, sample) in samples.iter().enumerate() {
        let first = rank_position(sample) == Some(0);
        match tasks.iter_mut().find(|(t, _, _)| *t == sample.task_id) {
            Some(entry) => {
                if first && entry.1.is_none() {
                    entry.1 = Some(idx);
                }
            }
            None => tasks.push((&sample.task_id, first.then_some(idx), idx)),
        }
    }
    tasks
        .into_iter()
        .map(|(_, chosen, first)| chosen.unwrap_or(first))
        .collect()
}

fn rank_position(sample: &Sample) -> Option<i64> {
    sample
        .extra()
        .find(|(k, _)| *k == RANK_POSITION_KEY)
        .and_then(|(_, v)| match v {
            JsonValue::Int(i) => i64::try_from(*i).ok(),
            _ => None,
        })
}

/// The engine's ranked pass@1: per task, whether the sample the engine put
/// first passed (a task whose samples were all blank counts as failed).
/// `None` when no sample carries a rank position.
pub fn engine_ranked_pass_at_1(samples: &[Sample], report: &EvalReport) -> Option<f64> {
    let mut tasks: Vec<&str> = Vec::new();
    let mut passed: HashSet<&str> = HashSet::new();
    let mut any = false;
    for (sample, result) in samples.iter().zip(&report.samples) {
        if !tasks.contains(&sample.task_id.as_str()) {
            tasks.push(&sample.task_id);
        }
        let position = rank_position(sample);
        if position.is_some() {
            any = true;
        }
        if position == Some(0) && result.passed {
            passed.insert(&sample.task_id);
        }
    }
    (any && !tasks.is_empty()).then(|| passed.len() as f64 / tasks.len() as f64)
}

/// An infilling run: which tasks, and the two policies compared.
#[derive(Debug, Clone)]
pub struct InfillRun {
    pub modes: Vec<InfillMode>,
    /// Tasks per mode (a seeded sample; `None`: all).
    pub limit: Option<usize>,
    /// Only these task ids (any mode), when not empty.
    pub task_ids: Vec<String>,
    /// Seed of the task sample and of the random spans.
    pub task_seed: u64,
    /// `greedy`: one greedy sample. `ranked`: `sampling.n` samples (the
    /// first greedy), ranked by the engine.
    pub policies: Vec<String>,
    pub sampling: Sampling,
    /// The editor's settings for everything else (prompt budgets...).
    pub editor: CompletionSettings,
    pub samples_path: PathBuf,
}

/// The tasks of a run, in order.
pub fn infill_run_tasks(run: &InfillRun, problems: &[Problem]) -> Vec<InfillTask> {
    let mut all = Vec::new();
    for mode in &run.modes {
        let limit = if run.task_ids.is_empty() {
            run.limit
        } else {
            None
        };
        all.extend(infill_tasks(problems, *mode, limit, run.task_seed));
    }
    if !run.task_ids.is_empty() {
        all.retain(|t| run.task_ids.contains(&t.task_id));
    }
    all
}

impl InfillRun {
    /// The request for one task under one policy: exactly what the editor
    /// sends for a cursor in that document.
    pub fn request(&self, task: &InfillTask, policy: &str) -> CompletionRequest {
        let doc = Arc::new(Document::new(task.document(), Some(Language::Python)));
        let mut settings = self.editor.clone();
        settings.max_tokens = self.sampling.max_tokens;
        settings.top_p = self.sampling.top_p;
        settings.top_k = self.sampling.top_k;
        settings.seed = self.sampling.seed;
        settings.time_budget = None;
        settings.rank.examples = ExampleRuns::Always;
        if policy == "greedy" {
            settings.n = 1;
            settings.temperature = 0.0;
            settings.first_greedy = false;
        } else {
            settings.n = self.sampling.n.max(1);
            settings.temperature = self.sampling.temperature;
            settings.first_greedy = self.sampling.first_greedy;
        }
        CompletionRequest {
            key: "infill".into(),
            doc,
            cursor: task.cursor(),
            path: format!("{}.py", task.problem_id.replace('/', "_")),
            neighbours: Vec::new(),
            format: EnginePrompt::Editor,
            function_name: None,
            settings,
        }
    }
}

/// Generates what is missing from the run's samples file (one line per
/// task and policy, appended as it goes).
pub fn generate_infill(
    run: &InfillRun,
    tasks: &[InfillTask],
    engine: &Engine,
    progress: Progress,
) -> Result<(), EvalError> {
    let have: HashSet<(String, String)> = read_infill_samples(&run.samples_path)?
        .into_iter()
        .map(|s| (s.task_id, s.policy))
        .collect();
    let total = tasks.len() * run.policies.len();
    let mut done = 0;
    for task in tasks {
        for policy in &run.policies {
            if have.contains(&(task.task_id.clone(), policy.clone())) {
                done += 1;
                continue;
            }
            let start = Instant::now();
            let outcome = engine
                .complete(run.request(task, policy))
                .map_err(engine_error)?;
            let latency_ms = start.elapsed().as_secs_f64() * 1000.0;
            let insertion = outcome.best().unwrap_or("").to_string();
            let sample = InfillSample::new(task, policy, insertion)
                .with_extra("latency_ms", latency_ms)
                .with_extra("rank_ms", outcome.rank.secs * 1000.0)
                .with_extra("n_generated_tokens", outcome.n_generated_tokens as u64)
                .with_extra("candidates", outcome.suggestions.len() as u64)
                .with_extra("ran_examples", outcome.rank.ran_code);
            append_infill_samples(&run.samples_path, &[sample])?;
            done += 1;
            progress(done, total);
        }
    }
    Ok(())
}

/// Runs every sample's filled program against its task's tests in the
/// sandbox and tallies pass@1 and exact match per mode and policy.
pub fn evaluate_infill(
    run: &InfillRun,
    tasks: &[InfillTask],
    problems: &[Problem],
    sandbox: &Sandbox,
    cfg: &EvalConfig,
    progress: Progress,
) -> Result<InfillReport, EvalError> {
    let wanted: HashSet<&str> = tasks.iter().map(|t| t.task_id.as_str()).collect();
    let samples: Vec<InfillSample> = read_infill_samples(&run.samples_path)?
        .into_iter()
        .filter(|s| wanted.contains(s.task_id.as_str()) && run.policies.contains(&s.policy))
        .collect();
    if samples.is_empty() {
        return Err(EvalError::NoSamples);
    }
    let by_id: std::collections::HashMap<&str, &InfillTask> =
        tasks.iter().map(|t| (t.task_id.as_str(), t)).collect();
    let problem_of = |id: &str| problems.iter().find(|p| p.task_id == id);
    let mut harness_samples = Vec::with_capacity(samples.len());
    for s in &samples {
        let task = by_id[s.task_id.as_str()];
        let completion = match problem_of(&task.problem_id) {
            Some(problem) => task.completion(problem, &s.insertion),
            None => {
                return Err(EvalError::UnknownTask {
                    task_id: task.problem_id.clone(),
                    sample_index: 0,
                })
            }
        };
        harness_samples.push(Sample::new(task.problem_id.clone(), completion));
    }
    let cfg = EvalConfig {
        ignore_incomplete: true,
        ks: vec![1],
        ..cfg.clone()
    };
    let done = std::sync::atomic::AtomicUsize::new(0);
    let report = evaluate_with_progress(&harness_samples, problems, &cfg, sandbox, &|_, _| {
        let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        progress(d, harness_samples.len());
    })?;
    let mut rows: Vec<InfillRow> = Vec::new();
    let mut failures = Vec::new();
    for mode in &run.modes {
        for policy in &run.policies {
            rows.push(InfillRow::new(*mode, policy));
        }
    }
    for (s, result) in samples.iter().zip(&report.samples) {
        let task = by_id[s.task_id.as_str()];
        let exact = task.exact_match(&s.insertion);
        if let Some(row) = rows
            .iter_mut()
            .find(|r| r.mode == task.mode && r.policy == s.policy)
        {
            row.record(result.passed, exact);
        }
        if !result.passed {
            failures.push(InfillFailure {
                task_id: s.task_id.clone(),
                mode: task.mode,
                policy: s.policy.clone(),
                result: result.result.clone(),
                insertion: s.insertion.clone(),
                expected: task.middle.clone(),
            });
        }
    }
    rows.retain(|r| r.tasks > 0);
    Ok(InfillReport {
        settings: Vec::new(),
        rows,
        failures,
        wall_seconds: 0.0,
    })
}
