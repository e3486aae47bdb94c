//! `codegen eval behavior`: behavioural tests (minimum functionality,
//! invariance, directional) over a suite of case files, through the
//! engine's editor path; the library (`codegen_eval::behavior`) does the work.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use codegen_engine::{Engine, EngineConfig};
use codegen_eval::behavior::{
    language_name, load_suite, run_behavior, BehaviorConfig, BehaviorReport, Checker,
    EngineCompleter, Toolchains,
};
use codegen_sandbox::{Isolation, Sandbox, SandboxConfig};
use codegen_store::Store;

use crate::ModelArgs;

#[derive(Args, Debug)]
pub struct BehaviorArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Suite folder: one TOML file per case, sub-folders per language
    /// (default: `models/behavior` in the current folder, else the one in
    /// the source tree this binary was built from).
    #[arg(long, value_name = "DIR")]
    pub suite: Option<PathBuf>,
    /// Only these languages (comma separated: python,rust,javascript,typescript,go).
    #[arg(long, value_delimiter = ',')]
    pub languages: Vec<String>,
    /// Only the first N cases of each language.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Minimum functionality only (no invariance transformations).
    #[arg(long)]
    pub no_invariance: bool,
    /// No directional variants.
    #[arg(long)]
    pub no_directional: bool,
    /// Most tokens per completion.
    #[arg(long, default_value_t = 96)]
    pub max_tokens: usize,
    /// Output folder (behavior.json, report.md).
    #[arg(long, default_value = "behavior-run")]
    pub out: PathBuf,
    /// Run Python checks without namespaces when the kernel refuses them.
    #[arg(long)]
    pub unsafe_no_sandbox: bool,
    /// Print the report as JSON on stdout and nothing else.
    #[arg(long)]
    pub json: bool,
    /// Write DIR/report.md again from a finished run's DIR/behavior.json
    /// (after the report format changed); runs nothing.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["suite", "languages", "limit"])]
    pub render: Option<PathBuf>,
}

/// The report's markdown: the tables and how the run was made.
fn markdown(report: &BehaviorReport, json: &serde_json::Value) -> String {
    let model = json["model"].as_str().unwrap_or("?");
    let max_tokens = json["max_tokens"].as_u64().unwrap_or(0);
    let mut md = report.markdown(&format!("Behavioural tests: {model}"));
    let mut again = format!("codegen eval behavior --model {model} --max-tokens {max_tokens}");
    for (key, flag) in [("filter_languages", "languages"), ("filter_limit", "limit")] {
        match &json[key] {
            serde_json::Value::Null => {}
            serde_json::Value::Array(a) if a.is_empty() => {}
            serde_json::Value::Array(a) => {
                let items: Vec<String> = a
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect();
                again.push_str(&format!(" --{flag} {}", items.join(",")));
            }
            v => again.push_str(&format!(" --{flag} {v}")),
        }
    }
    md.push_str(&format!(
        "\nSettings: greedy, one sample, max tokens {max_tokens}, the editor's FIM prompt, no ranking; suite {}; wall {} s.\n\nRun again: `{again}`\n",
        json["suite"].as_str().unwrap_or("?"),
        json["wall_seconds"],
    ));
    md
}

fn render(dir: &std::path::Path, print_json: bool) -> Result<()> {
    let json_path = dir.join("behavior.json");
    let text = std::fs::read_to_string(&json_path)
        .with_context(|| format!("cannot read {}", json_path.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON", json_path.display()))?;
    let report = BehaviorReport::from_json(&json)
        .map_err(|e| anyhow::anyhow!("{}: {e}", json_path.display()))?;
    let md = markdown(&report, &json);
    let md_path = dir.join("report.md");
    std::fs::write(&md_path, &md).with_context(|| format!("cannot write {}", md_path.display()))?;
    eprintln!("codegen: wrote {}", md_path.display());
    if print_json {
        println!("{json}");
    } else {
        println!("{md}");
    }
    Ok(())
}

fn default_suite() -> PathBuf {
    let local = PathBuf::from("models/behavior");
    if local.is_dir() {
        return local;
    }
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../models/behavior"
    ))
}

pub fn run(args: BehaviorArgs) -> Result<()> {
    if let Some(dir) = &args.render {
        return render(dir, args.json);
    }
    crate::configure_runtime(args.model.threads);
    let suite = args.suite.clone().unwrap_or_else(default_suite);
    let mut cases = load_suite(&suite)?;
    if !args.languages.is_empty() {
        for l in &args.languages {
            if codegen_eval::behavior::language_named(l).is_none() {
                bail!("--languages: unknown language {l:?} (python, rust, javascript, typescript, go)");
            }
        }
        cases.retain(|c| {
            args.languages
                .iter()
                .any(|l| l == language_name(c.fixture.language))
        });
    }
    if let Some(limit) = args.limit {
        let mut seen: std::collections::HashMap<&'static str, usize> = Default::default();
        cases.retain(|c| {
            let n = seen.entry(language_name(c.fixture.language)).or_default();
            *n += 1;
            *n <= limit
        });
    }
    if cases.is_empty() {
        bail!(
            "no cases left in {} after --languages/--limit",
            suite.display()
        );
    }
    let sandbox = match Sandbox::new(SandboxConfig {
        allow_unsandboxed: args.unsafe_no_sandbox,
        ..SandboxConfig::default()
    }) {
        Ok(s) => {
            if let Isolation::Unsandboxed { reason } = s.isolation() {
                eprintln!("codegen: warning: running generated code WITHOUT a sandbox ({reason})");
            }
            Some(s)
        }
        Err(e) => {
            eprintln!("codegen: warning: no sandbox ({e}); Python cases with asserts fail");
            None
        }
    };
    let toolchains = Toolchains::detect();
    for t in [
        &toolchains.rust,
        &toolchains.javascript,
        &toolchains.typescript,
        &toolchains.go,
    ] {
        if t.version.is_none() {
            eprintln!(
                "codegen: warning: {} not found: {} completions are checked for syntax only (counted as not compiled)",
                t.program, t.language
            );
        }
    }
    let checker = Checker::new(sandbox, toolchains);

    let store = Store::from_env();
    let device = args.model.device.kind().open()?;
    let model = crate::input::load_model(&store, &args.model, &device)?;
    let model_name = model.name.clone();
    let engine = Engine::spawn(EngineConfig::default()).context("cannot start the engine")?;
    engine.set_model(Some(Arc::new(model)));
    let completer = EngineCompleter::new(&engine, args.max_tokens);
    let cfg = BehaviorConfig {
        invariance: !args.no_invariance,
        directional: !args.no_directional,
    };
    let wall = Instant::now();
    let progress = crate::bench_eval::bar(0, "completing");
    // Without a terminal the bar is hidden: a line now and then instead.
    let log_lines = !std::io::stderr().is_terminal();
    let report = run_behavior(&cases, &completer, &checker, &cfg, &|done, total| {
        progress.set_length(total as u64);
        progress.set_position(done as u64);
        if log_lines && (done % 50 == 0 || done == total) {
            eprintln!(
                "codegen: {done}/{total} completions, {:.0} s",
                wall.elapsed().as_secs_f64()
            );
        }
    });
    progress.finish_and_clear();
    drop(engine);

    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut json = report.json();
    json["model"] = serde_json::json!(model_name);
    json["suite"] = serde_json::json!(suite);
    json["max_tokens"] = serde_json::json!(args.max_tokens);
    json["wall_seconds"] =
        serde_json::json!(codegen_eval::round_to(wall.elapsed().as_secs_f64(), 1));
    json["filter_languages"] = serde_json::json!(args.languages);
    json["filter_limit"] = serde_json::json!(args.limit);
    let json_path = args.out.join("behavior.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&json)? + "\n")
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    let md = markdown(&report, &json);
    let md_path = args.out.join("report.md");
    std::fs::write(&md_path, &md).with_context(|| format!("cannot write {}", md_path.display()))?;
    eprintln!(
        "codegen: wrote {} and {}",
        json_path.display(),
        md_path.display()
    );
    if args.json {
        println!("{json}");
    } else {
        println!("{md}");
    }
    Ok(())
}
