//! `codegen model validate`: checks a model before it serves. The file's
//! checksum (against its manifest when it has one), its GGUF structure (it
//! loads), a tokenizer round trip, and the must-pass suite: the minimum
//! functionality cases of the behavioural suite (`models/behavior/`, one TOML
//! file per case: a document with `$0` at the cursor, its language, optional
//! Python asserts) marked `must_pass = true`, embedded by `build.rs`. Each
//! completion must
//! leave the document free of syntax errors and, with asserts, pass them in
//! the sandbox; and prefill and greedy decode speed, which must reach
//! [`SPEED_BUDGET`] of the manifest's reference figures (best of three short
//! runs, so a busy machine still measures what it can do). The record
//! (model sha256, suite version, results, date) is written to
//! `<cache>/validation/<sha256>.json`.

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
    // The checks besides the suite: a record from before the speed check
    // does not count.
    h.update(b"checks: checksum gguf tokenizer suite speed/1\0");
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
    let Some(lang) = codegen_eval::behavior::language_named(&case.language) else {
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

/// The share of the manifest's reference speeds a machine must reach. The
/// references were measured on a 2-core AVX-512 machine: a slower CPU or a
/// busy machine passes, a file or build that is several times slower than
/// it should be (a wrong quantization, one thread, no SIMD) does not.
pub const SPEED_BUDGET: f64 = 0.25;

/// Prompt tokens and greedy tokens of one speed run.
const SPEED_PROMPT_TOKENS: usize = 256;
const SPEED_DECODE_TOKENS: usize = 32;
/// Measurements (of three runs each) before a model is called too slow.
const SPEED_ATTEMPTS: usize = 3;

/// One validation at a time in a process: two models validating at once
/// (a model and its shadow candidate) would each measure half the speed.
static VALIDATING: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn run(spec: Option<String>, json: bool, speed_budget: f64) -> Result<bool> {
    let store = Store::from_env();
    let (name, path) = crate::input::resolve_model(&store, spec.as_deref())?;
    let sha256 = codegen_store::sha256_file(
        &path,
        codegen_store::Progress::new(!json, std::fs::metadata(&path)?.len(), "sha256"),
    )?;
    let mut checks = vec![checksum_check(&store, &name, &sha256)];
    let device = candle_core::Device::Cpu;
    match LoadedModel::load(&name, &path, &device) {
        Ok(model) => {
            let model = Arc::new(model);
            checks.extend(model_checks(model.clone(), !json)?);
            checks.push(speed_check(&store, &model, speed_budget, &|| false));
        }
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
pub fn gate_for_serving(model: &Arc<LoadedModel>, busy: &dyn Fn() -> bool) -> Result<(), String> {
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
    let _one_at_a_time = VALIDATING.lock().unwrap_or_else(|e| e.into_inner());
    let mut checks = vec![checksum_check(&store, &model.name, &sha256)];
    checks.extend(model_checks(model.clone(), false).map_err(|e| format!("{e:#}"))?);
    checks.push(speed_check(&store, model, SPEED_BUDGET, busy));
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

/// Prefill and greedy decode speed (tokens/s), the best of three runs.
fn measure_speed(model: &LoadedModel) -> Result<(f64, f64), String> {
    let text = "def mean(values):\n    total = 0\n    for v in values:\n        total += v\n    return total / len(values)\n\n";
    let mut tokens = model
        .tokenizer
        .encode(&text.repeat(64))
        .map_err(|e| format!("cannot tokenize: {e}"))?;
    tokens.truncate(SPEED_PROMPT_TOKENS);
    let (mut prefill, mut decode) = (0f64, 0f64);
    for _ in 0..3 {
        let mut session = model.model.new_session().map_err(|e| e.to_string())?;
        let start = std::time::Instant::now();
        let mut logits = model
            .model
            .prefill(&mut session, &tokens)
            .map_err(|e| e.to_string())?;
        prefill = prefill.max(tokens.len() as f64 / start.elapsed().as_secs_f64());
        let start = std::time::Instant::now();
        for _ in 0..SPEED_DECODE_TOKENS {
            let next = logits
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map_or(0, |(i, _)| i as u32);
            logits = model
                .model
                .forward(&mut session, &[next])
                .map_err(|e| e.to_string())?;
        }
        decode = decode.max(SPEED_DECODE_TOKENS as f64 / start.elapsed().as_secs_f64());
    }
    Ok((prefill, decode))
}

/// Other processes using this many cores (on average, during a speed
/// run) make the run unrepresentative.
const MAX_OTHER_CORES: f64 = 0.5;

/// Busy CPU time of the whole machine and of this process, in clock ticks
/// (`/proc/stat` and `/proc/self/stat`; `None` where they cannot be read).
fn cpu_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy = cpu.first()? + cpu.get(1)? + cpu.get(2)? + cpu.get(5)? + cpu.get(6)? + cpu.get(7)?;
    let own = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces): utime is the
    // 12th, stime the 13th.
    let fields: Vec<&str> = own.rsplit_once(')')?.1.split_whitespace().collect();
    let mine = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((busy, mine))
}

/// Runs `work` and says how many cores other processes kept busy meanwhile.
fn with_other_cpu<T>(work: impl FnOnce() -> T) -> (T, Option<f64>) {
    let ticks_per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let before = cpu_ticks();
    let start = std::time::Instant::now();
    let out = work();
    let secs = start.elapsed().as_secs_f64();
    let others = match (before, cpu_ticks()) {
        (Some((b0, m0)), Some((b1, m1))) if ticks_per_sec > 0.0 && secs > 0.0 => {
            let other_ticks = (b1.saturating_sub(b0)).saturating_sub(m1.saturating_sub(m0));
            Some(other_ticks as f64 / ticks_per_sec / secs)
        }
        _ => None,
    };
    (out, others)
}

/// Speed against the manifest's reference figures (`budget` of them).
/// `busy` says whether something else in the process (a model serving
/// requests) is running: a shortfall measured only while it was is
/// inconclusive, not a failure (the record says so).
fn speed_check(store: &Store, model: &LoadedModel, budget: f64, busy: &dyn Fn() -> bool) -> Check {
    speed_check_with(store, model, budget, busy, &|model| {
        with_other_cpu(|| measure_speed(model))
    })
}

/// One speed measurement: (prefill, decode) tokens/s, and the cores other
/// processes kept busy meanwhile.
type Measure<'a> = &'a dyn Fn(&LoadedModel) -> (Result<(f64, f64), String>, Option<f64>);

fn speed_check_with(
    store: &Store,
    model: &LoadedModel,
    budget: f64,
    busy: &dyn Fn() -> bool,
    measure: Measure,
) -> Check {
    let name = "speed".to_string();
    let reference = store
        .find_or_default(Some(&model.name))
        .ok()
        .filter(|m| m.name == model.name)
        .and_then(|m| m.reference.clone());
    // Noise only slows a run down: the best of a few tries is what the
    // machine can do. A try below the budget waits a moment and tries again
    // (another model validating or serving at the same time).
    let (mut prefill, mut decode) = (0f64, 0f64);
    let mut quiet_attempts = 0;
    let mut others_max = 0f64;
    for attempt in 0..SPEED_ATTEMPTS {
        let busy_before = busy();
        let (measured, others) = measure(model);
        others_max = others_max.max(others.unwrap_or(0.0));
        if !busy_before && !busy() && others.is_none_or(|cores| cores < MAX_OTHER_CORES) {
            quiet_attempts += 1;
        }
        match measured {
            Ok((p, d)) => {
                prefill = prefill.max(p);
                decode = decode.max(d);
            }
            Err(e) => {
                return Check {
                    name,
                    passed: false,
                    detail: format!("cannot measure: {e}"),
                }
            }
        }
        let fast_enough = reference.as_ref().is_none_or(|r| {
            prefill >= r.prefill_tokens_per_sec * budget
                && decode >= r.decode_tokens_per_sec * budget
        });
        if fast_enough || budget <= 0.0 || attempt + 1 == SPEED_ATTEMPTS {
            break;
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
    let threads = codegen_model::RuntimeConfig::current().threads;
    let Some(reference) = reference.filter(|_| budget > 0.0) else {
        return Check {
            name,
            passed: true,
            detail: format!(
                "prefill {prefill:.0} tok/s, greedy decode {decode:.0} tok/s ({threads} threads); \
                 not compared: {}",
                if budget > 0.0 {
                    "the model has no manifest reference figures"
                } else {
                    "--speed-budget 0"
                }
            ),
        };
    };
    let (min_prefill, min_decode) = (
        reference.prefill_tokens_per_sec * budget,
        reference.decode_tokens_per_sec * budget,
    );
    let fast_enough = prefill >= min_prefill && decode >= min_decode;
    let inconclusive = !fast_enough && quiet_attempts == 0;
    Check {
        name,
        passed: fast_enough || inconclusive,
        detail: format!(
            "{}prefill {prefill:.0} tok/s (needs {min_prefill:.0}: {:.0}% of the reference {:.0}), \
             greedy decode {decode:.0} tok/s (needs {min_decode:.0}: {:.0}% of {:.0}); \
             {threads} threads; reference measured on {}",
            if inconclusive {
                format!(
                    "inconclusive, the machine was busy (another model serving, or other \
                     processes using up to {others_max:.1} cores): "
                )
            } else {
                String::new()
            },
            budget * 100.0,
            reference.prefill_tokens_per_sec,
            budget * 100.0,
            reference.decode_tokens_per_sec,
            if reference.measured_on.is_empty() {
                "an unstated machine"
            } else {
                &reference.measured_on
            }
        ),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny random model whose manifest claims an impossible speed.
    fn tiny_with_reference(dir: &Path) -> (Store, LoadedModel) {
        let path = dir.join("tiny.gguf");
        codegen_model::testing::write_tiny_gguf(
            &path,
            &codegen_model::testing::TinyConfig::default(),
        )
        .unwrap();
        let manifest = codegen_store::Manifest::parse(
            "name = \"tiny\"\narchitecture = \"qwen2\"\nfile = \"tiny.gguf\"\n\
             [reference]\nprefill_tokens_per_sec = 1e12\ndecode_tokens_per_sec = 1e12\n\
             [[sources]]\nkind = \"hub\"\nrepo = \"x/y\"\nfile = \"tiny.gguf\"\n",
            "test",
        )
        .unwrap();
        let mut config = codegen_store::StoreConfig::from_env();
        config.root = dir.to_path_buf();
        let store = Store::with_manifests(config, vec![manifest]);
        let model = LoadedModel::load("tiny", &path, &candle_core::Device::Cpu).unwrap();
        (store, model)
    }

    #[test]
    fn too_slow_fails_unless_every_measurement_shared_the_machine() {
        let dir = tempfile::tempdir().unwrap();
        let (store, model) = tiny_with_reference(dir.path());
        // The real measurement runs and reports figures.
        let real = speed_check(&store, &model, 0.0, &|| false);
        assert!(
            real.passed && real.detail.contains("not compared"),
            "{}",
            real.detail
        );
        let reference = 1e12;
        let slow = |others: f64| {
            move |_: &LoadedModel| (Ok((reference * 0.1, reference * 0.1)), Some(others))
        };
        let quiet = speed_check_with(&store, &model, 0.25, &|| false, &slow(0.0));
        assert!(!quiet.passed, "{}", quiet.detail);
        assert!(
            quiet.detail.contains("25% of the reference"),
            "{}",
            quiet.detail
        );
        let serving = speed_check_with(&store, &model, 0.25, &|| true, &slow(0.0));
        assert!(serving.passed, "{}", serving.detail);
        assert!(
            serving.detail.starts_with("inconclusive"),
            "{}",
            serving.detail
        );
        let others = speed_check_with(&store, &model, 0.25, &|| false, &slow(1.5));
        assert!(others.passed, "{}", others.detail);
        assert!(others.detail.contains("1.5 cores"), "{}", others.detail);
        let fast = |_: &LoadedModel| (Ok((reference * 0.3, reference * 0.3)), Some(0.0));
        let ok = speed_check_with(&store, &model, 0.25, &|| false, &fast);
        assert!(
            ok.passed && !ok.detail.starts_with("inconclusive"),
            "{}",
            ok.detail
        );
        // Prefill fast, decode slow: still too slow.
        let mixed = |_: &LoadedModel| (Ok((reference, reference * 0.2)), Some(0.0));
        let half = speed_check_with(&store, &model, 0.25, &|| false, &mixed);
        assert!(!half.passed, "{}", half.detail);
        // A model without reference figures is measured, not compared.
        let other = LoadedModel::load("other", &model.path, &candle_core::Device::Cpu).unwrap();
        let unlisted = speed_check_with(&store, &other, 0.25, &|| false, &fast);
        assert!(unlisted.passed, "{}", unlisted.detail);
        assert!(
            unlisted.detail.contains("no manifest reference"),
            "{}",
            unlisted.detail
        );
    }

    #[test]
    fn other_processes_cpu_is_measured() {
        let (_, others) =
            with_other_cpu(|| std::thread::sleep(std::time::Duration::from_millis(50)));
        let others = others.expect("/proc/stat is readable on Linux");
        assert!(others >= 0.0 && others.is_finite(), "{others}");
    }
}
