//! Behavioural tests of completions, in the manner of CheckList: minimum
//! functionality (MFT: the completion must parse and pass the case's
//! checks), invariance (INV: a transformation that must not change
//! pass/fail, see [`Invariance`]) and directional tests (DIR: a docstring
//! example or type annotations must not lower a group's pass rate; removing
//! the docstring must not raise it).
//!
//! A suite is a folder of TOML files, one case per file (sub-folders per
//! language), a superset of `codegen model validate`'s format:
//!
//! ```toml
//! language = "python"          # python, rust, javascript, typescript, go
//! capability = "arithmetic"    # a row of the report (default "general")
//! group = "arithmetic"         # directional tests compare pass rates per group (default: capability)
//! document = '''
//! def add(a, b):
//!     """Return the sum of a and b."""
//!     return $0
//! '''
//! asserts = "assert add(2, 3) == 5"   # Python: run after the document, in the sandbox
//! check = ""                   # other languages: appended code that must compile with the completion
//! example = ">>> add(2, 3)\n5" # DIR: a docstring example to add
//! typed = '''...$0...'''       # DIR: the document with type annotations
//! skip = ["crlf"]              # invariance transformations that do not apply
//! ```
//!
//! Python runs only in `codegen-sandbox`. Rust, JavaScript, TypeScript and Go
//! completions are compiled or type-checked (rustc, `node --check`, tsc,
//! `go build`) and never run; where a toolchain is missing the compile step
//! is skipped and counted ([`BehaviorReport::compile_skipped`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use codegen_context::{Language, ParsedDocument};
use codegen_engine::{
    CompletionRequest, CompletionSettings, Document, Engine, PromptFormat as EnginePrompt,
    RankPolicy, RankSettings,
};
use codegen_sandbox::Sandbox;
use serde::{Deserialize, Serialize};

use crate::transform::{add_example, remove_docstring, Directional, Fixture, Invariance};

#[derive(Debug, thiserror::Error)]
pub enum BehaviorError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    BadCase { path: PathBuf, message: String },
    #[error("{0}: no cases (*.toml) in the suite")]
    EmptySuite(PathBuf),
}

/// One case of a suite.
#[derive(Debug, Clone)]
pub struct Case {
    /// The file's path below the suite folder, without `.toml`
    /// (`python/add`).
    pub id: String,
    pub path: PathBuf,
    pub capability: String,
    pub group: String,
    pub fixture: Fixture,
    /// A docstring example to add (directional).
    pub example: Option<String>,
    /// The document with type annotations (directional).
    pub typed: Option<Fixture>,
    /// Invariance transformations left out for this case.
    pub skip: Vec<Invariance>,
    /// A completion that passes (the suite's own tests check it; the runner
    /// never uses it).
    pub solution: Option<String>,
    /// Also one of `codegen model validate`'s must-pass cases.
    pub must_pass: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    language: String,
    document: String,
    #[serde(default)]
    asserts: Option<String>,
    #[serde(default)]
    check: Option<String>,
    #[serde(default)]
    capability: Option<String>,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    example: Option<String>,
    #[serde(default)]
    typed: Option<String>,
    #[serde(default)]
    skip: Vec<String>,
    #[serde(default)]
    solution: Option<String>,
    #[serde(default)]
    must_pass: bool,
}

/// The language of a case file's `language` key.
pub fn language_named(name: &str) -> Option<Language> {
    match name {
        "python" => Some(Language::Python),
        "rust" => Some(Language::Rust),
        "javascript" => Some(Language::JavaScript),
        "typescript" => Some(Language::TypeScript),
        "go" => Some(Language::Go),
        _ => None,
    }
}

pub fn language_name(language: Language) -> &'static str {
    match language {
        Language::Python => "python",
        Language::Rust => "rust",
        Language::JavaScript => "javascript",
        Language::TypeScript | Language::Tsx => "typescript",
        Language::Go => "go",
    }
}

fn extension(language: Language) -> &'static str {
    match language {
        Language::Python => "py",
        Language::Rust => "rs",
        Language::JavaScript => "js",
        Language::TypeScript => "ts",
        Language::Tsx => "tsx",
        Language::Go => "go",
    }
}

/// Parses one case file's text.
pub fn parse_case(id: &str, path: &Path, text: &str) -> Result<Case, BehaviorError> {
    let bad = |message: String| BehaviorError::BadCase {
        path: path.to_path_buf(),
        message,
    };
    let file: CaseFile = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
    let language = language_named(&file.language).ok_or_else(|| {
        bad(format!(
            "unknown language {:?} (python, rust, javascript, typescript, go)",
            file.language
        ))
    })?;
    let mut fixture = Fixture::from_marked(language, &file.document)
        .ok_or_else(|| bad("the document has no $0 cursor".into()))?;
    if fixture.document.contains("$0") {
        return Err(bad("the document has more than one $0".into()));
    }
    if file.asserts.is_some() && language != Language::Python {
        return Err(bad(
            "asserts run as Python; for other languages use `check` (code that must compile)"
                .into(),
        ));
    }
    fixture.asserts = file.asserts.filter(|a| !a.trim().is_empty());
    fixture.check = file.check.filter(|c| !c.trim().is_empty());
    let typed = match &file.typed {
        Some(doc) => {
            let mut typed = Fixture::from_marked(language, doc)
                .ok_or_else(|| bad("`typed` has no $0 cursor".into()))?;
            typed.asserts = fixture.asserts.clone();
            typed.check = fixture.check.clone();
            Some(typed)
        }
        None => None,
    };
    let mut skip = Vec::new();
    for name in &file.skip {
        let t = Invariance::from_name(name).ok_or_else(|| {
            let names: Vec<&str> = Invariance::ALL.iter().map(|t| t.name()).collect();
            bad(format!(
                "skip: unknown transformation {name:?} (one of {})",
                names.join(", ")
            ))
        })?;
        skip.push(t);
    }
    let capability = file.capability.unwrap_or_else(|| "general".into());
    Ok(Case {
        id: id.to_string(),
        path: path.to_path_buf(),
        group: file.group.unwrap_or_else(|| capability.clone()),
        capability,
        fixture,
        example: file.example,
        typed,
        skip,
        solution: file.solution,
        must_pass: file.must_pass,
    })
}

fn toml_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), BehaviorError> {
    let entries = std::fs::read_dir(dir).map_err(|source| BehaviorError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| BehaviorError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        if path.is_dir() {
            toml_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "toml") {
            out.push(path);
        }
    }
    Ok(())
}

/// Every case below `dir` (`*.toml`, sub-folders included), sorted by id.
pub fn load_suite(dir: &Path) -> Result<Vec<Case>, BehaviorError> {
    let mut files = Vec::new();
    toml_files(dir, &mut files)?;
    files.sort();
    let mut cases = Vec::with_capacity(files.len());
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(|source| BehaviorError::Io {
            path: path.clone(),
            source,
        })?;
        let id = path
            .strip_prefix(dir)
            .unwrap_or(&path)
            .with_extension("")
            .to_string_lossy()
            .replace('\\', "/");
        cases.push(parse_case(&id, &path, &text)?);
    }
    if cases.is_empty() {
        return Err(BehaviorError::EmptySuite(dir.to_path_buf()));
    }
    Ok(cases)
}

/// Writes the completion for a fixture.
pub trait Completer: Sync {
    fn complete(&self, key: &str, fixture: &Fixture) -> Result<String, String>;
}

/// The engine's editor path: FIM prompt, one greedy sample, no ranking,
/// as `codegen model validate` completes its cases.
pub struct EngineCompleter<'a> {
    pub engine: &'a Engine,
    pub settings: CompletionSettings,
}

impl<'a> EngineCompleter<'a> {
    pub fn new(engine: &'a Engine, max_tokens: usize) -> EngineCompleter<'a> {
        EngineCompleter {
            engine,
            settings: CompletionSettings {
                n: 1,
                max_tokens,
                temperature: 0.0,
                rank: RankSettings {
                    policy: RankPolicy::None,
                    ..RankSettings::default()
                },
                time_budget: None,
                ..CompletionSettings::default()
            },
        }
    }
}

impl Completer for EngineCompleter<'_> {
    fn complete(&self, key: &str, fixture: &Fixture) -> Result<String, String> {
        let mut request = CompletionRequest::new(
            key.to_string(),
            Arc::new(Document::new(
                fixture.document.clone(),
                Some(fixture.language),
            )),
            fixture.cursor,
        );
        request.path = format!("behavior/{key}.{}", extension(fixture.language));
        request.format = EnginePrompt::Editor;
        request.settings = self.settings.clone();
        let completion = self.engine.complete(request).map_err(|e| e.to_string())?;
        Ok(completion.best().unwrap_or("").to_string())
    }
}

/// A compiler or type checker found on this machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Toolchain {
    pub language: String,
    pub program: String,
    /// `None`: not found, the compile step is skipped.
    pub version: Option<String>,
}

/// The toolchains used for compile checks: rustc, node, tsc (`$CODEGEN_TSC`
/// or on the PATH) and go (`$CODEGEN_GO` or on the PATH).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Toolchains {
    pub rust: Toolchain,
    pub javascript: Toolchain,
    pub typescript: Toolchain,
    pub go: Toolchain,
}

fn probe(language: &str, program: String, args: &[&str]) -> Toolchain {
    let version = Command::new(&program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            let text = String::from_utf8_lossy(&o.stdout);
            text.lines().next().unwrap_or("").trim().to_string()
        });
    Toolchain {
        language: language.into(),
        program,
        version,
    }
}

impl Toolchains {
    pub fn detect() -> Toolchains {
        let env_or =
            |var: &str, default: &str| std::env::var(var).unwrap_or_else(|_| default.into());
        Toolchains {
            rust: probe("rust", env_or("CODEGEN_RUSTC", "rustc"), &["--version"]),
            javascript: probe("javascript", env_or("CODEGEN_NODE", "node"), &["--version"]),
            typescript: probe("typescript", env_or("CODEGEN_TSC", "tsc"), &["--version"]),
            go: probe("go", env_or("CODEGEN_GO", "go"), &["version"]),
        }
    }

    /// No compile checks at all (syntax and Python asserts only).
    pub fn none() -> Toolchains {
        let missing = |language: &str| Toolchain {
            language: language.into(),
            program: String::new(),
            version: None,
        };
        Toolchains {
            rust: missing("rust"),
            javascript: missing("javascript"),
            typescript: missing("typescript"),
            go: missing("go"),
        }
    }

    fn for_language(&self, language: Language) -> Option<&Toolchain> {
        match language {
            Language::Python => None,
            Language::Rust => Some(&self.rust),
            Language::JavaScript => Some(&self.javascript),
            Language::TypeScript | Language::Tsx => Some(&self.typescript),
            Language::Go => Some(&self.go),
        }
    }
}

/// What the compile step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compiled {
    /// Python, or the completion failed earlier.
    NotNeeded,
    Passed,
    Failed,
    /// The toolchain is missing.
    Skipped,
}

/// The verdict on one completion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub passed: bool,
    pub detail: String,
    pub compiled: Compiled,
}

/// Judges completions: syntax (tree-sitter), Python asserts in the
/// sandbox, compile checks for the other languages.
pub struct Checker {
    pub sandbox: Option<Sandbox>,
    pub toolchains: Toolchains,
    pub compile_timeout: Duration,
    workdir: PathBuf,
    counter: AtomicUsize,
}

impl Checker {
    pub fn new(sandbox: Option<Sandbox>, toolchains: Toolchains) -> Checker {
        static CHECKERS: AtomicUsize = AtomicUsize::new(0);
        let workdir = std::env::temp_dir().join(format!(
            "codegen-behavior-{}-{}",
            std::process::id(),
            CHECKERS.fetch_add(1, Ordering::Relaxed)
        ));
        Checker {
            sandbox,
            toolchains,
            compile_timeout: Duration::from_secs(60),
            workdir,
            counter: AtomicUsize::new(0),
        }
    }

    pub fn check(&self, fixture: &Fixture, completion: &str) -> Verdict {
        let fail = |detail: String, compiled| Verdict {
            passed: false,
            detail,
            compiled,
        };
        let parsed = ParsedDocument::new(fixture.document.clone(), fixture.language);
        let syntax = codegen_context::syntax_check(&parsed, fixture.cursor, completion);
        if syntax.errors_after + syntax.missing_after > 0 {
            return fail("leaves syntax errors".into(), Compiled::NotNeeded);
        }
        let mut program = fixture.completed(completion);
        if fixture.language == Language::Python {
            if let Some(asserts) = &fixture.asserts {
                let Some(sandbox) = &self.sandbox else {
                    return fail(
                        "the sandbox is unavailable for the asserts".into(),
                        Compiled::NotNeeded,
                    );
                };
                program.push('\n');
                program.push_str(asserts);
                program.push('\n');
                let outcome = sandbox.run_python(&program);
                if !outcome.passed() {
                    return fail(
                        format!("fails the asserts: {:?}", outcome.status),
                        Compiled::NotNeeded,
                    );
                }
            }
            return Verdict {
                passed: true,
                detail: "passed".into(),
                compiled: Compiled::NotNeeded,
            };
        }
        let Some(tool) = self.toolchains.for_language(fixture.language) else {
            return fail("no check for this language".into(), Compiled::NotNeeded);
        };
        if tool.version.is_none() {
            return Verdict {
                passed: true,
                detail: format!("parses; {} missing, not compiled", tool.program),
                compiled: Compiled::Skipped,
            };
        }
        if let Some(check) = &fixture.check {
            program.push('\n');
            program.push_str(check);
            program.push('\n');
        }
        match self.compile(fixture.language, tool, &program) {
            Ok(()) => Verdict {
                passed: true,
                detail: "compiles".into(),
                compiled: Compiled::Passed,
            },
            Err(message) => fail(format!("does not compile: {message}"), Compiled::Failed),
        }
    }

    fn compile(&self, language: Language, tool: &Toolchain, program: &str) -> Result<(), String> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let dir = self.workdir.join(format!("{n}"));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let file = dir.join(format!("case.{}", extension(language)));
        let mut program = program.to_string();
        if language == Language::Go && !program.contains("func main(") {
            program.push_str("\nfunc main() {}\n");
        }
        std::fs::write(&file, &program).map_err(|e| format!("{}: {e}", file.display()))?;
        let mut cmd = Command::new(&tool.program);
        match language {
            Language::Rust => {
                cmd.args([
                    "--edition",
                    "2021",
                    "--crate-type",
                    "lib",
                    "--emit=metadata",
                ])
                .args(["-A", "warnings", "--out-dir"])
                .arg(&dir)
                .arg(&file);
            }
            Language::JavaScript => {
                cmd.arg("--check").arg(&file);
            }
            Language::TypeScript | Language::Tsx => {
                cmd.args([
                    "--noEmit", "--strict", "--target", "es2020", "--lib", "es2020",
                ])
                .arg(&file);
            }
            Language::Go => {
                cmd.arg("build")
                    .arg("-o")
                    .arg(dir.join("case.bin"))
                    .arg(&file)
                    .env("GO111MODULE", "off")
                    .env("GOTOOLCHAIN", "local")
                    .current_dir(&dir);
                if std::env::var_os("GOCACHE").is_none() && std::env::var_os("HOME").is_none() {
                    cmd.env("GOCACHE", self.workdir.join("gocache"));
                }
            }
            Language::Python => return Ok(()),
        }
        let result = run_with_timeout(cmd, self.compile_timeout);
        let _ = std::fs::remove_dir_all(&dir);
        result
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.workdir);
    }
}

/// Runs a compiler; `Err` holds the first lines of its diagnostics.
fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Result<(), String> {
    let out_file = output_path();
    let stdout = std::fs::File::create(&out_file).map_err(|e| e.to_string())?;
    let stderr = stdout.try_clone().map_err(|e| e.to_string())?;
    cmd.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("timed out after {} s", timeout.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e.to_string()),
        }
    };
    let output = std::fs::read_to_string(&out_file).unwrap_or_default();
    let _ = std::fs::remove_file(&out_file);
    if status.success() {
        return Ok(());
    }
    let lines: Vec<&str> = output
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(3)
        .collect();
    Err(lines.join(" | "))
}

fn output_path() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!(
        "codegen-behavior-{}-out-{n}.txt",
        std::process::id()
    ))
}

/// CheckList's test types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TestType {
    #[serde(rename = "MFT")]
    Mft,
    #[serde(rename = "INV")]
    Inv,
    #[serde(rename = "DIR")]
    Dir,
}

impl TestType {
    pub fn as_str(self) -> &'static str {
        match self {
            TestType::Mft => "MFT",
            TestType::Inv => "INV",
            TestType::Dir => "DIR",
        }
    }
}

/// Which tests a run makes.
#[derive(Debug, Clone)]
pub struct BehaviorConfig {
    pub invariance: bool,
    pub directional: bool,
}

impl Default for BehaviorConfig {
    fn default() -> Self {
        BehaviorConfig {
            invariance: true,
            directional: true,
        }
    }
}

/// One completion and its verdict.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub case: String,
    pub language: String,
    pub capability: String,
    pub group: String,
    pub test_type: TestType,
    /// `mft`, an invariance or a directional name.
    pub test: String,
    pub completion: String,
    pub passed: bool,
    pub detail: String,
    pub compiled: Compiled,
    pub seconds: f64,
}

/// A row of the summary table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub test_type: TestType,
    /// The capability (MFT, INV) or the group (DIR).
    pub capability: String,
    pub test: String,
    pub tests: usize,
    pub failed: usize,
    pub failure_rate: f64,
    /// DIR: pass rates of the group without and with the change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_pass_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant_pass_rate: Option<f64>,
    /// DIR: the group's pass rate moved the wrong way.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction_violated: Option<bool>,
    pub failing: Vec<String>,
}

/// Totals per test type.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TypeTotal {
    pub test_type: TestType,
    pub tests: usize,
    pub failed: usize,
    pub failure_rate: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BehaviorReport {
    pub cases: usize,
    pub totals: Vec<TypeTotal>,
    pub rows: Vec<Row>,
    /// MFT pass rate per language.
    pub languages: BTreeMap<String, (usize, usize)>,
    /// Completions not compiled because the toolchain is missing, per language.
    pub compile_skipped: BTreeMap<String, usize>,
    /// Transformations that did not apply (no docstring, no local), per name.
    pub not_applicable: BTreeMap<String, usize>,
    pub toolchains: Toolchains,
    pub runs: Vec<RunRecord>,
}

/// Progress: completions done, completions planned.
pub type BehaviorProgress<'a> = &'a (dyn Fn(usize, usize) + Sync);

struct Planned<'c> {
    case: &'c Case,
    test_type: TestType,
    test: String,
    fixture: Fixture,
}

fn plan<'c>(
    cases: &'c [Case],
    cfg: &BehaviorConfig,
    not_applicable: &mut BTreeMap<String, usize>,
) -> Vec<Planned<'c>> {
    let mut planned = Vec::new();
    for case in cases {
        planned.push(Planned {
            case,
            test_type: TestType::Mft,
            test: "mft".into(),
            fixture: case.fixture.clone(),
        });
        if cfg.invariance {
            for t in Invariance::ALL {
                if case.skip.contains(&t) {
                    *not_applicable.entry(t.name().into()).or_default() += 1;
                    continue;
                }
                match t.apply(&case.fixture) {
                    Some(fixture) => planned.push(Planned {
                        case,
                        test_type: TestType::Inv,
                        test: t.name().into(),
                        fixture,
                    }),
                    None => *not_applicable.entry(t.name().into()).or_default() += 1,
                }
            }
        }
        if cfg.directional {
            for d in Directional::ALL {
                let fixture = match d {
                    Directional::AddExample => case
                        .example
                        .as_deref()
                        .and_then(|e| add_example(&case.fixture, e)),
                    Directional::AddTypes => case.typed.clone(),
                    Directional::RemoveDocstring => remove_docstring(&case.fixture),
                };
                match fixture {
                    Some(fixture) => planned.push(Planned {
                        case,
                        test_type: TestType::Dir,
                        test: d.name().into(),
                        fixture,
                    }),
                    None => *not_applicable.entry(d.name().into()).or_default() += 1,
                }
            }
        }
    }
    planned
}

/// Runs every case, its invariance transformations and directional
/// variants, and tallies the report.
pub fn run_behavior(
    cases: &[Case],
    completer: &dyn Completer,
    checker: &Checker,
    cfg: &BehaviorConfig,
    progress: BehaviorProgress,
) -> BehaviorReport {
    let mut not_applicable = BTreeMap::new();
    let planned = plan(cases, cfg, &mut not_applicable);
    let mut runs = Vec::with_capacity(planned.len());
    for (idx, p) in planned.iter().enumerate() {
        let key = format!("{}#{}", p.case.id, p.test);
        let start = Instant::now();
        let (completion, verdict) = match completer.complete(&key, &p.fixture) {
            Ok(text) => {
                let verdict = checker.check(&p.fixture, &text);
                (text, verdict)
            }
            Err(e) => (
                String::new(),
                Verdict {
                    passed: false,
                    detail: format!("completion failed: {e}"),
                    compiled: Compiled::NotNeeded,
                },
            ),
        };
        runs.push(RunRecord {
            case: p.case.id.clone(),
            language: language_name(p.case.fixture.language).into(),
            capability: p.case.capability.clone(),
            group: p.case.group.clone(),
            test_type: p.test_type,
            test: p.test.clone(),
            completion,
            passed: verdict.passed,
            detail: verdict.detail,
            compiled: verdict.compiled,
            seconds: crate::round_to(start.elapsed().as_secs_f64(), 3),
        });
        progress(idx + 1, planned.len());
    }
    tally(
        cases.len(),
        runs,
        not_applicable,
        checker.toolchains.clone(),
    )
}

fn rate(failed: usize, tests: usize) -> f64 {
    if tests == 0 {
        0.0
    } else {
        crate::round_to(failed as f64 / tests as f64, 4)
    }
}

/// The report from the runs: rows per test type and capability (group for
/// DIR), failing cases listed.
pub fn tally(
    n_cases: usize,
    runs: Vec<RunRecord>,
    not_applicable: BTreeMap<String, usize>,
    toolchains: Toolchains,
) -> BehaviorReport {
    let base: BTreeMap<&str, bool> = runs
        .iter()
        .filter(|r| r.test_type == TestType::Mft)
        .map(|r| (r.case.as_str(), r.passed))
        .collect();
    // (type, capability/group, test) -> (tests, failing cases, base passes, variant passes)
    type Key = (TestType, String, String);
    let mut rows: BTreeMap<Key, (usize, Vec<String>, usize, usize)> = BTreeMap::new();
    let mut languages: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut compile_skipped: BTreeMap<String, usize> = BTreeMap::new();
    for r in &runs {
        if r.compiled == Compiled::Skipped {
            *compile_skipped.entry(r.language.clone()).or_default() += 1;
        }
        let base_passed = base.get(r.case.as_str()).copied().unwrap_or(false);
        let (label, failed) = match r.test_type {
            TestType::Mft => {
                let entry = languages.entry(r.language.clone()).or_default();
                entry.0 += 1;
                entry.1 += usize::from(r.passed);
                (r.capability.clone(), !r.passed)
            }
            TestType::Inv => (r.capability.clone(), r.passed != base_passed),
            TestType::Dir => {
                let up = Directional::ALL
                    .iter()
                    .find(|d| d.name() == r.test)
                    .map_or(1, |d| d.direction());
                let wrong = if up > 0 {
                    base_passed && !r.passed
                } else {
                    !base_passed && r.passed
                };
                (r.group.clone(), wrong)
            }
        };
        let entry = rows
            .entry((r.test_type, label, r.test.clone()))
            .or_default();
        entry.0 += 1;
        if failed {
            entry.1.push(r.case.clone());
        }
        entry.2 += usize::from(base_passed);
        entry.3 += usize::from(r.passed);
    }
    let rows: Vec<Row> = rows
        .into_iter()
        .map(
            |((test_type, capability, test), (tests, failing, base_passes, passes))| {
                let dir = test_type == TestType::Dir;
                let base_rate = rate(base_passes, tests);
                let variant_rate = rate(passes, tests);
                let up = Directional::ALL
                    .iter()
                    .find(|d| d.name() == test)
                    .map_or(1, |d| d.direction());
                Row {
                    test_type,
                    capability,
                    failed: failing.len(),
                    failure_rate: rate(failing.len(), tests),
                    base_pass_rate: dir.then_some(base_rate),
                    variant_pass_rate: dir.then_some(variant_rate),
                    direction_violated: dir.then_some(if up > 0 {
                        passes < base_passes
                    } else {
                        passes > base_passes
                    }),
                    test,
                    tests,
                    failing,
                }
            },
        )
        .collect();
    let totals = [TestType::Mft, TestType::Inv, TestType::Dir]
        .into_iter()
        .map(|t| {
            let tests: usize = rows
                .iter()
                .filter(|r| r.test_type == t)
                .map(|r| r.tests)
                .sum();
            let failed: usize = rows
                .iter()
                .filter(|r| r.test_type == t)
                .map(|r| r.failed)
                .sum();
            TypeTotal {
                test_type: t,
                tests,
                failed,
                failure_rate: rate(failed, tests),
            }
        })
        .collect();
    BehaviorReport {
        cases: n_cases,
        totals,
        rows,
        languages,
        compile_skipped,
        not_applicable,
        toolchains,
        runs,
    }
}

impl BehaviorReport {
    /// Failures by test type and capability, CheckList's summary table.
    pub fn markdown(&self, title: &str) -> String {
        let mut md = format!("# {title}\n\n{} cases.\n\n", self.cases);
        md.push_str("| Test type | Tests | Failed | Failure rate |\n|---|---:|---:|---:|\n");
        for t in &self.totals {
            md.push_str(&format!(
                "| {} | {} | {} | {:.1}% |\n",
                t.test_type.as_str(),
                t.tests,
                t.failed,
                100.0 * t.failure_rate
            ));
        }
        md.push_str(
            "\nMFT pass rate per language:\n\n| Language | Cases | Passed |\n|---|---:|---:|\n",
        );
        for (language, (n, passed)) in &self.languages {
            md.push_str(&format!("| {language} | {n} | {passed} |\n"));
        }
        // Per test, over all capabilities.
        let mut per_test: BTreeMap<(TestType, &str), (usize, Vec<&str>)> = BTreeMap::new();
        for r in &self.rows {
            let e = per_test.entry((r.test_type, r.test.as_str())).or_default();
            e.0 += r.tests;
            e.1.extend(r.failing.iter().map(String::as_str));
        }
        md.push_str("\nPer test:\n\n| Test type | Test | Tests | Failed | Failure rate | Failing cases |\n|---|---|---:|---:|---:|---|\n");
        for ((t, test), (tests, failing)) in &per_test {
            md.push_str(&format!(
                "| {} | {test} | {tests} | {} | {:.1}% | {} |\n",
                t.as_str(),
                failing.len(),
                100.0 * rate(failing.len(), *tests),
                failing.join(", ")
            ));
        }
        // Per capability (group for DIR), over all tests.
        let mut per_capability: BTreeMap<&str, [(usize, usize); 3]> = BTreeMap::new();
        for r in &self.rows {
            let e = per_capability.entry(r.capability.as_str()).or_default();
            let slot = &mut e[r.test_type as usize];
            slot.0 += r.failed;
            slot.1 += r.tests;
        }
        md.push_str("\nPer capability (failed / tests):\n\n| Capability | MFT | INV | DIR |\n|---|---:|---:|---:|\n");
        for (capability, cells) in &per_capability {
            let cell = |(failed, tests): (usize, usize)| {
                if tests == 0 {
                    "-".to_string()
                } else {
                    format!("{failed}/{tests} ({:.0}%)", 100.0 * rate(failed, tests))
                }
            };
            md.push_str(&format!(
                "| {capability} | {} | {} | {} |\n",
                cell(cells[0]),
                cell(cells[1]),
                cell(cells[2])
            ));
        }
        md.push_str(
            "\nDetails:\n\n| Test type | Capability / group | Test | Tests | Failed | Failure rate | Failing cases |\n|---|---|---|---:|---:|---:|---|\n",
        );
        for r in &self.rows {
            let mut rate = format!("{:.1}%", 100.0 * r.failure_rate);
            if let (Some(b), Some(v), Some(violated)) =
                (r.base_pass_rate, r.variant_pass_rate, r.direction_violated)
            {
                rate.push_str(&format!(
                    " (pass {:.0}% → {:.0}%{})",
                    100.0 * b,
                    100.0 * v,
                    if violated { ", **wrong way**" } else { "" }
                ));
            }
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} |\n",
                r.test_type.as_str(),
                r.capability,
                r.test,
                r.tests,
                r.failed,
                rate,
                r.failing.join(", ")
            ));
        }
        md.push_str("\nMFT: the case fails. INV: pass/fail changed under the transformation. DIR: the case moved the wrong way (add-*: passed before, fails after; remove-docstring: failed before, passes after); the group's rates are in brackets.\n");
        md.push_str("\nToolchains: ");
        let tools: Vec<String> = [
            &self.toolchains.rust,
            &self.toolchains.javascript,
            &self.toolchains.typescript,
            &self.toolchains.go,
        ]
        .iter()
        .map(|t| {
            format!(
                "{} {}",
                t.language,
                t.version
                    .as_deref()
                    .unwrap_or("MISSING (compile step skipped)")
            )
        })
        .collect();
        md.push_str(&tools.join("; "));
        md.push('\n');
        if !self.compile_skipped.is_empty() {
            md.push_str("\nNot compiled (toolchain missing): ");
            let s: Vec<String> = self
                .compile_skipped
                .iter()
                .map(|(l, n)| format!("{l} {n}"))
                .collect();
            md.push_str(&s.join(", "));
            md.push('\n');
        }
        if !self.not_applicable.is_empty() {
            md.push_str("\nNot applicable (cases without a docstring, local, example...): ");
            let s: Vec<String> = self
                .not_applicable
                .iter()
                .map(|(t, n)| format!("{t} {n}"))
                .collect();
            md.push_str(&s.join(", "));
            md.push('\n');
        }
        let failing: Vec<&RunRecord> = self
            .runs
            .iter()
            .filter(|r| r.test_type == TestType::Mft && !r.passed)
            .collect();
        if !failing.is_empty() {
            md.push_str("\n## Failing MFT cases\n\n| Case | Completion | Why |\n|---|---|---|\n");
            for r in failing {
                md.push_str(&format!(
                    "| {} | `{}` | {} |\n",
                    r.case,
                    escape_cell(&r.completion),
                    escape_cell(&r.detail)
                ));
            }
        }
        md
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// A report written by [`BehaviorReport::json`] (extra keys ignored).
    pub fn from_json(value: &serde_json::Value) -> Result<BehaviorReport, String> {
        BehaviorReport::deserialize(value).map_err(|e| e.to_string())
    }
}

fn escape_cell(text: &str) -> String {
    let mut s: String = text
        .replace('|', "\\|")
        .replace('\n', "⏎")
        .replace('`', "'");
    if s.chars().count() > 120 {
        s = s.chars().take(117).collect::<String>() + "...";
    }
    s
}

#[cfg(test)]
#[path = "behavior_tests.rs"]
mod tests;
