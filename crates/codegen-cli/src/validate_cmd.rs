//! `codegen model validate`: checks a model before it serves. The file's
//! checksum (against its manifest when it has one), its GGUF structure (it
//! loads), a tokenizer round trip, and the must-pass suite in
//! `models/validation/` (one TOML file per case: a document with `$0` at the
//! cursor, its language, and optional Python asserts): each completion must
//! leave the document free of syntax errors and, with asserts, pass them in
//! the sandbox. The record (model sha256, suite version, results, date) is
//! written to `<cache>/validation/<sha256>.json`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use codegen_context::{Language, ParsedDocument};
use codegen_engine::{
    CompletionRequest, CompletionSettings, Document, Engine, EngineConfig, LoadedModel,
    PromptFormat, RankPolicy, RankSettings,
};
use codegen_sandbox::{Sandbox, SandboxConfig};
use codegen_store::Store;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

mod suite {
    include!(concat!(env!("OUT_DIR"), "/validation_suite.rs"));
}

#[derive(Deserialize)]
struct Case {
    language: String,
    document: String,
    #[serde(default)]
    asserts: Option<String>,
}

#[derive(Serialize)]
struct Check {
    name: String,
    passed: bool,
    detail: String,
}

/// The suite's version: a hash of its cases, so a record made with another
/// suite does not count.
pub fn suite_version() -> String {
    let mut h = Sha256::new();
    for (name, text) in suite::SUITE {
        h.update(name.as_bytes());
        h.update([0]);
        h.update(text.as_bytes());
        h.update([0]);
    }
    format!("{}-{}", suite::SUITE.len(), &hex(&h.finalize())[..12])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn language(name: &str) -> Option<Language> {
    match name {
        "python" => Some(Language::Python),
        "rust" => Some(Language::Rust),
        "javascript" => Some(Language::JavaScript),
        "typescript" => Some(Language::TypeScript),
        "go" => Some(Language::Go),
        _ => None,
    }
}

fn run_case(name: &str, text: &str, engine: &Engine, sandbox: Option<&Sandbox>) -> Check {
    let fail = |detail: String| Check {
        name: name.to_string(),
        passed: false,
        detail,
    };
    let case: Case = match toml::from_str(text) {
        Ok(c) => c,
        Err(e) => return fail(format!("bad case file: {e}")),
    };
    let Some(lang) = language(&case.language) else {
        return fail(format!("unknown language {:?}", case.language));
    };
    let Some(cursor) = case.document.find("$0") else {
        return fail("the document has no $0 cursor".into());
    };
    let document = case.document.replacen("$0", "", 1);
    let mut request = CompletionRequest::new(
        format!("validate/{name}"),
        Arc::new(Document::new(document.clone(), Some(lang))),
        cursor,
    );
    let extension = match lang {
        Language::Python => "py",
        Language::Rust => "rs",
        Language::JavaScript => "js",
        Language::TypeScript => "ts",
        Language::Tsx => "tsx",
        Language::Go => "go",
    };
    request.path = format!("validate/{name}.{extension}");
    request.format = PromptFormat::Editor;
    request.settings = CompletionSettings {
        n: 1,
        max_tokens: 96,
        temperature: 0.0,
        rank: RankSettings {
            policy: RankPolicy::None,
            ..RankSettings::default()
        },
        time_budget: None,
        ..CompletionSettings::default()
    };
    let completion = match engine.complete(request) {
        Ok(c) => c,
        Err(e) => return fail(format!("completion failed: {e}")),
    };
    let Some(text) = completion.best().map(str::to_string) else {
        return fail("the model suggested nothing".into());
    };
    let parsed = ParsedDocument::new(document.clone(), lang);
    let syntax = codegen_context::syntax_check(&parsed, cursor, &text);
    if syntax.errors_after + syntax.missing_after > 0 {
        return fail(format!("{text:?} leaves syntax errors"));
    }
    if let Some(asserts) = &case.asserts {
        let Some(sandbox) = sandbox else {
            return fail("the sandbox is unavailable for the asserts".into());
        };
        let mut program = document.clone();
        program.insert_str(cursor, &text);
        program.push('\n');
        program.push_str(asserts);
        let outcome = sandbox.run_python(&program);
        if !outcome.passed() {
            return fail(format!("{text:?} fails the asserts: {:?}", outcome.status));
        }
    }
    Check {
        name: name.to_string(),
        passed: true,
        detail: format!("{text:?}"),
    }
}

/// Where the record of a model file with this sha256 lives.
pub fn record_path(cache: &Path, sha256: &str) -> PathBuf {
    cache.join("validation").join(format!("{sha256}.json"))
}

pub fn run(spec: Option<String>, json: bool) -> Result<bool> {
    let store = Store::from_env();
    let (name, path) = crate::input::resolve_model(&store, spec.as_deref())?;
    let sha256 = codegen_store::sha256_file(
        &path,
        codegen_store::Progress::new(!json, std::fs::metadata(&path)?.len(), "sha256"),
    )?;
    let mut checks = vec![checksum_check(&store, &name, &sha256)];
    let device = candle_core::Device::Cpu;
    match LoadedModel::load(&name, &path, &device) {
        Ok(model) => checks.extend(model_checks(Arc::new(model), !json)?),
        Err(e) => checks.push(Check {
            name: "gguf".into(),
            passed: false,
            detail: format!("{e}"),
        }),
    }
    let (passed, record, record_file) = write_record(&store, &name, &path, &sha256, &checks)?;
    if json {
        println!("{record}");
    } else {
        let n_passed = checks.iter().filter(|c| c.passed).count();
        println!(
            "{name}: {} ({n_passed} of {} checks passed); record: {}",
            if passed { "valid" } else { "NOT valid" },
            checks.len(),
            record_file.display()
        );
        for c in checks.iter().filter(|c| !c.passed) {
            println!("  failed {}: {}", c.name, c.detail);
        }
    }
    Ok(passed)
}

/// For `codegen lsp`: a model serves only with a passing record for its
/// file's sha256 and the current suite; without one it is validated now
/// (the record is written either way). `Err` says which checks failed.
pub fn gate_for_serving(model: &Arc<LoadedModel>) -> Result<(), String> {
    let store = Store::from_env();
    let sha256 = codegen_store::sha256_file(
        &model.path,
        codegen_store::Progress::new(false, 0, "sha256"),
    )
    .map_err(|e| format!("cannot hash {}: {e}", model.path.display()))?;
    let record_file = record_path(store.root(), &sha256);
    if let Ok(text) = std::fs::read_to_string(&record_file) {
        if let Ok(record) = serde_json::from_str::<serde_json::Value>(&text) {
            if record["passed"] == true && record["suite_version"] == suite_version().as_str() {
                return Ok(());
            }
        }
    }
    let mut checks = vec![checksum_check(&store, &model.name, &sha256)];
    checks.extend(model_checks(model.clone(), false).map_err(|e| format!("{e:#}"))?);
    let (passed, _, record_file) = write_record(&store, &model.name, &model.path, &sha256, &checks)
        .map_err(|e| format!("{e:#}"))?;
    if passed {
        return Ok(());
    }
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect();
    Err(format!(
        "model {} failed validation ({}; record {}), so it does not serve; `codegen lsp --force` serves it anyway",
        model.name,
        failed.join("; "),
        record_file.display()
    ))
}

fn checksum_check(store: &Store, name: &str, sha256: &str) -> Check {
    let expected = store
        .find_or_default(Some(name))
        .ok()
        .filter(|m| m.name == name)
        .and_then(|m| {
            m.sources.iter().find_map(|s| match s {
                codegen_store::Source::Pip { sha256, .. } => Some(sha256.clone()),
                codegen_store::Source::Hub { sha256, .. } => sha256.clone(),
            })
        });
    match &expected {
        Some(e) if e == sha256 => Check {
            name: "checksum".into(),
            passed: true,
            detail: format!("sha256 {sha256} matches the manifest"),
        },
        Some(e) => Check {
            name: "checksum".into(),
            passed: false,
            detail: format!("sha256 {sha256}, the manifest says {e}"),
        },
        None => Check {
            name: "checksum".into(),
            passed: true,
            detail: format!("sha256 {sha256} (no manifest checksum to compare with)"),
        },
    }
}

/// The checks that need the loaded model: its structure, the tokenizer
/// round trip and the must-pass suite.
fn model_checks(model: Arc<LoadedModel>, verbose: bool) -> Result<Vec<Check>> {
    let mut checks = Vec::new();
    let cfg = model.model.config();
    checks.push(Check {
        name: "gguf".into(),
        passed: true,
        detail: format!(
            "{} layers, hidden {}, {} tokens, context {}",
            cfg.n_layers,
            cfg.hidden_size,
            model.tokenizer.vocab_size(),
            cfg.context_length
        ),
    });
    let samples = [
        "def f(x):\n    return x + 1\n",
        "fn main() { println!(\"héllo 😀\"); }",
        "  \t\n\r\n  mixed   whitespace  ",
    ];
    let mut broken = Vec::new();
    for s in samples {
        match model.tokenizer.encode(s) {
            Ok(ids) if model.tokenizer.decode(&ids) == s => {}
            Ok(ids) => broken.push(format!("{s:?} -> {:?}", model.tokenizer.decode(&ids))),
            Err(e) => broken.push(format!("{s:?}: {e}")),
        }
    }
    checks.push(Check {
        name: "tokenizer".into(),
        passed: broken.is_empty(),
        detail: if broken.is_empty() {
            format!("{} texts round-trip", samples.len())
        } else {
            broken.join("; ")
        },
    });
    let engine = Engine::spawn(EngineConfig::default()).context("cannot start the engine")?;
    engine.set_model(Some(model));
    let sandbox = Sandbox::new(SandboxConfig::default()).ok();
    for (case_name, text) in suite::SUITE {
        let check = run_case(case_name, text, &engine, sandbox.as_ref());
        if verbose {
            eprintln!(
                "codegen: {} {case_name}: {}",
                if check.passed { "pass" } else { "FAIL" },
                check.detail
            );
        }
        checks.push(Check {
            name: format!("suite/{case_name}"),
            ..check
        });
    }
    Ok(checks)
}

fn write_record(
    store: &Store,
    name: &str,
    path: &Path,
    sha256: &str,
    checks: &[Check],
) -> Result<(bool, serde_json::Value, PathBuf)> {
    let passed = checks.iter().all(|c| c.passed);
    let date = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let record = serde_json::json!({
        "model": name,
        "path": path,
        "sha256": sha256,
        "suite_version": suite_version(),
        "date": date,
        "passed": passed,
        "checks": checks,
    });
    let record_file = record_path(store.root(), sha256);
    if let Some(dir) = record_file.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(&record_file, serde_json::to_string_pretty(&record)? + "\n")
        .with_context(|| format!("cannot write {}", record_file.display()))?;
    Ok((passed, record, record_file))
}
