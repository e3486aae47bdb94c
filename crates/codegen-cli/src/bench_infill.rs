//! `codegen bench infill`: flags, progress and printing around
//! `codegen_eval::run` (the tasks, the engine calls and the scoring live
//! there).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use codegen_engine::{Engine, EngineConfig};
use codegen_eval::infill::{write_infill_outputs, InfillMode};
use codegen_eval::load_problems;
use codegen_eval::run::{evaluate_infill, generate_infill, infill_run_tasks, InfillRun, Sampling};
use codegen_store::Store;

use crate::bench_eval::{bar, eval_config, problems_path, samples_file, sandbox, EvalArgs};
use crate::{ModelArgs, SamplingArgs};

/// Infilling modes (the tasks each builds are in `codegen_eval::infill`).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModeArg {
    /// One whole line removed.
    SingleLine,
    /// Spans of consecutive lines removed.
    MultiLine,
    /// Seeded random character spans removed.
    RandomSpan,
}

impl ModeArg {
    fn mode(self) -> InfillMode {
        match self {
            ModeArg::SingleLine => InfillMode::SingleLine,
            ModeArg::MultiLine => InfillMode::MultiLine,
            ModeArg::RandomSpan => InfillMode::RandomSpan,
        }
    }
}

#[derive(Args, Debug)]
pub struct InfillArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Samples per task for the ranked policy (`--n 1` skips it). The first
    /// sample is greedy; the others are drawn at --temperature (default 0.8).
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Also run the ranked policy (n samples ranked by the engine, as the
    /// editor does); without it only greedy runs.
    #[arg(long)]
    pub rank: bool,
    /// Modes, comma separated: single-line (1,033 tasks), multi-line (5,815:
    /// spans of consecutive lines as in HumanEval-MultiLineInfilling),
    /// random-span (1,640 seeded character spans).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "single-line,multi-line,random-span"
    )]
    pub mode: Vec<ModeArg>,
    /// Tasks per mode: a seeded sample spread over the problems (default: all).
    #[arg(long, conflicts_with = "tasks")]
    pub limit: Option<usize>,
    /// Only these task ids (e.g. SingleLine/HumanEval/0/3), comma separated.
    #[arg(long, value_delimiter = ',')]
    pub tasks: Vec<String>,
    /// Seed of the task sample and of the random spans.
    #[arg(long, default_value_t = 0)]
    pub task_seed: u64,
    /// Generated tokens per suggestion (the editor's default).
    #[arg(long, default_value_t = 128)]
    pub max_tokens: usize,
    /// Prompt budget after the cursor, in tokens (default: the editor's).
    #[arg(long)]
    pub max_suffix_tokens: Option<usize>,
    /// Output folder (samples.jsonl, results.json, report.md, chart.svg).
    #[arg(long, default_value = "infill-run")]
    pub out: PathBuf,
    /// Continue an interrupted run in the same folder.
    #[arg(long)]
    pub resume: bool,
    #[command(flatten)]
    pub eval: EvalArgs,
}

pub fn run(args: InfillArgs) -> Result<()> {
    crate::configure_runtime(args.model.threads);
    let modes: Vec<InfillMode> = args.mode.iter().map(|m| m.mode()).collect();
    if modes.is_empty() {
        bail!("--mode: no mode given");
    }
    let store = Store::from_env();
    let problems_file = problems_path(&store, &args.eval)?;
    let problems = load_problems(&problems_file)?;
    let sandbox = sandbox(&args.eval)?;
    let device = args.model.device.kind().open()?;
    let model = crate::input::load_model(&store, &args.model, &device)?;
    let (name, path) = (model.name.clone(), model.path.clone());
    let draft_name = model.draft.as_ref().map(|d| d.name.clone());
    let samples_path = samples_file(&args.out, args.resume)?;
    let n = if args.rank { args.sampling.n.max(1) } else { 1 };
    let temperature = args.sampling.temperature.unwrap_or(0.8);
    let mut policies = vec!["greedy".to_string()];
    if args.rank && n > 1 {
        policies.push("ranked".to_string());
    }
    // Exactly what the language server asks of the engine by default.
    let mut lsp_settings = codegen_lsp::Settings::default();
    if let Some(n) = args.max_suffix_tokens {
        lsp_settings.max_suffix_tokens = n;
    }
    let editor = lsp_settings.completion_settings();
    let run = InfillRun {
        modes: modes.clone(),
        limit: args.limit,
        task_ids: args.tasks.clone(),
        task_seed: args.task_seed,
        policies: policies.clone(),
        sampling: Sampling {
            n,
            temperature,
            first_greedy: true,
            top_p: args.sampling.top_p,
            top_k: args.sampling.top_k,
            seed: args.sampling.seed,
            max_tokens: args.max_tokens,
        },
        editor,
        samples_path: samples_path.clone(),
    };
    let tasks = infill_run_tasks(&run, &problems);
    if tasks.is_empty() {
        bail!("no tasks selected");
    }
    let engine = Engine::spawn(EngineConfig::default()).context("cannot start the engine")?;
    engine.set_model(Some(Arc::new(model)));
    let wall = Instant::now();
    let progress = bar((tasks.len() * policies.len()) as u64, "generating");
    generate_infill(&run, &tasks, &engine, &|done, _| {
        progress.set_position(done as u64)
    })?;
    progress.finish_and_clear();
    drop(engine);

    let cfg = eval_config(&args.eval, true);
    let eval_bar = bar((tasks.len() * policies.len()) as u64, "evaluating");
    let mut report = evaluate_infill(&run, &tasks, &problems, &sandbox, &cfg, &|done, _| {
        eval_bar.set_position(done as u64)
    })?;
    eval_bar.finish_and_clear();
    report.wall_seconds = wall.elapsed().as_secs_f64();
    report.settings = vec![
        ("model".into(), format!("{name} ({})", path.display())),
        (
            "draft model (single samples)".into(),
            draft_name.clone().unwrap_or_else(|| "none".into()),
        ),
        (
            "modes".into(),
            modes.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", "),
        ),
        ("tasks".into(), tasks.len().to_string()),
        ("task sample".into(), match args.limit {
            Some(limit) => format!("{limit} per mode, seed {}", args.task_seed),
            None => "all".into(),
        }),
        ("policies".into(), policies.join(", ")),
        (
            "greedy".into(),
            "1 sample, temperature 0, the editor's ranking".into(),
        ),
        (
            "ranked".into(),
            if policies.len() > 1 {
                format!(
                    "{n} samples (the first greedy, the others at temperature {temperature}, top-p {}), ranked by the engine with the docstring's examples always run",
                    args.sampling.top_p
                )
            } else {
                "not run".into()
            },
        ),
        (
            "editor settings".into(),
            format!(
                "the language server's defaults (prompt budgets {} tokens before and {} after the cursor)",
                lsp_settings.max_prefix_tokens, lsp_settings.max_suffix_tokens
            ),
        ),
        ("max tokens".into(), args.max_tokens.to_string()),
        ("seed".into(), args.sampling.seed.to_string()),
        (
            "threads".into(),
            args.model
                .threads
                .map(|t| t.to_string())
                .unwrap_or_else(|| "all".into()),
        ),
        ("test timeout".into(), format!("{} s", cfg.timeout_s)),
    ];
    let outputs = write_infill_outputs(&args.out, &report)?;
    eprintln!(
        "codegen: wrote {}, {}, {} and {}",
        samples_path.display(),
        outputs.results_json.display(),
        outputs.report_md.display(),
        outputs.chart_svg.display()
    );
    if args.eval.json {
        println!("{}", codegen_eval::infill::infill_results_json(&report));
    } else {
        let mut table = crate::table(["MODE", "POLICY", "TASKS", "PASS@1", "EXACT"]);
        for row in &report.rows {
            table.add_row(vec![
                row.mode.as_str().to_string(),
                row.policy.clone(),
                row.tasks.to_string(),
                format!("{:.3}", row.pass_at_1()),
                format!("{:.3}", row.exact_match_rate()),
            ]);
        }
        println!("{table}");
        println!("wall {:.0} s", report.wall_seconds);
    }
    Ok(())
}
