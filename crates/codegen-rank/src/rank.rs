//! Candidates, features, policies and the ranking itself.

use std::collections::HashMap;
use std::time::Duration;

use codegen_context::{syntax_check, Language, ParsedDocument};
use codegen_sandbox::Sandbox;
use serde::{Deserialize, Serialize};

use crate::examples::{
    extract_examples, function_at, function_named, Example, ExampleKind, FunctionInfo,
};
use crate::harness::{self, HarnessLimits, RunReport};

/// One sample as the engine produced it (after post-processing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawCandidate {
    /// The text to insert at the cursor.
    pub text: String,
    /// Mean log-probability of the sampled tokens.
    pub mean_logprob: f32,
    pub n_tokens: usize,
}

/// Identical raw candidates merged (trailing whitespace of lines and of the
/// text ignored).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    /// The text of the first sample of the group.
    pub text: String,
    /// How many samples gave this text.
    pub count: usize,
    /// The highest mean log-probability in the group.
    pub mean_logprob: f32,
    pub n_tokens: usize,
    /// Indices of the group's samples in the input, ascending.
    pub sample_indices: Vec<usize>,
}

/// The merge key: lines without trailing whitespace, trailing blank lines
/// dropped.
pub fn normalize_candidate(text: &str) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    lines.join("\n").trim_end().to_string()
}

/// Merges identical candidates, in order of first appearance.
pub fn merge_candidates(raw: &[RawCandidate]) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = Vec::new();
    let mut by_key: HashMap<String, usize> = HashMap::new();
    for (idx, candidate) in raw.iter().enumerate() {
        let key = normalize_candidate(&candidate.text);
        match by_key.get(&key) {
            Some(&slot) => {
                let merged = &mut out[slot];
                merged.count += 1;
                merged.sample_indices.push(idx);
                if candidate.mean_logprob > merged.mean_logprob || merged.mean_logprob.is_nan() {
                    merged.mean_logprob = candidate.mean_logprob;
                }
            }
            None => {
                by_key.insert(key, out.len());
                out.push(Candidate {
                    text: candidate.text.clone(),
                    count: 1,
                    mean_logprob: candidate.mean_logprob,
                    n_tokens: candidate.n_tokens,
                    sample_indices: vec![idx],
                });
            }
        }
    }
    out
}

/// What is known about one candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Features {
    /// Syntax problems added by the insertion (negative: fixed some); `None`
    /// when not checked.
    pub syntax_delta: Option<i64>,
    pub mean_logprob: f32,
    /// Docstring examples whose result equals the expected value.
    pub examples_passed: usize,
    /// Docstring examples that parse (the same for every candidate of a
    /// request); 0 when no code ran.
    pub examples_total: usize,
    /// Mean over the example and probe inputs of the share of the other
    /// samples (by count) that give the same output; `None` when no code ran
    /// or there is a single sample.
    pub agreement: Option<f64>,
    /// The module with this candidate failed to load (exception type).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_error: Option<String>,
}

/// A candidate with its features and score, best first in a ranking.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RankedCandidate {
    pub text: String,
    pub count: usize,
    pub features: Features,
    pub score: f64,
    /// Indices of the samples that gave this text.
    pub sample_indices: Vec<usize>,
}

/// Weights of the combined score (see the crate docs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Weights {
    pub examples: f64,
    pub syntax: f64,
    pub agreement: f64,
    pub logprob: f64,
    pub count: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            examples: 1000.0,
            syntax: 100.0,
            agreement: 10.0,
            logprob: 1.0,
            count: 0.1,
        }
    }
}

/// Which features a policy uses, and how code is run.
#[derive(Debug, Clone, PartialEq)]
pub struct RankConfig {
    /// Short name for reports (`combined`, `logprob`...).
    pub name: String,
    pub use_syntax: bool,
    pub use_logprob: bool,
    pub use_examples: bool,
    pub use_agreement: bool,
    pub use_count: bool,
    /// A random order (seeded; ties of the rest are irrelevant): the
    /// baseline. Each sample is equally likely to come first, so a text
    /// drawn k times is k times as likely.
    pub random_seed: Option<u64>,
    pub weights: Weights,
    /// Probe inputs derived from the examples' literal arguments, used only
    /// for agreement (0 turns them off).
    pub probe_inputs: usize,
    pub limits: HarnessLimits,
    /// Sandbox programs run at once.
    pub workers: usize,
    /// Expected wall time of one sandbox program, for the inline budget rule.
    pub estimated_run_time: Duration,
}

impl Default for RankConfig {
    fn default() -> Self {
        RankConfig::combined()
    }
}

impl RankConfig {
    fn only(name: &str) -> RankConfig {
        RankConfig {
            name: name.to_string(),
            use_syntax: false,
            use_logprob: false,
            use_examples: false,
            use_agreement: false,
            use_count: false,
            random_seed: None,
            weights: Weights::default(),
            probe_inputs: 8,
            limits: HarnessLimits {
                load: Duration::from_secs(2),
                example: Duration::from_millis(500),
                probe: Duration::from_millis(200),
                max_timeouts: 1,
            },
            workers: 2,
            estimated_run_time: Duration::from_millis(150),
        }
    }

    /// Everything: examples passed, then syntax, agreement, mean
    /// log-probability, count (weights in [`Weights::default`]).
    pub fn combined() -> RankConfig {
        RankConfig {
            use_syntax: true,
            use_logprob: true,
            use_examples: true,
            use_agreement: true,
            use_count: true,
            ..RankConfig::only("combined")
        }
    }

    /// A seeded random order.
    pub fn random(seed: u64) -> RankConfig {
        RankConfig {
            random_seed: Some(seed),
            ..RankConfig::only("random")
        }
    }

    /// Highest mean log-probability first.
    pub fn logprob() -> RankConfig {
        RankConfig {
            use_logprob: true,
            ..RankConfig::only("logprob")
        }
    }

    /// Candidates that do not make the syntax worse first (ties in sample
    /// order).
    pub fn syntax() -> RankConfig {
        RankConfig {
            use_syntax: true,
            ..RankConfig::only("syntax")
        }
    }

    /// Most docstring examples passed first (ties in sample order).
    pub fn examples() -> RankConfig {
        RankConfig {
            use_examples: true,
            ..RankConfig::only("examples")
        }
    }

    /// Highest agreement with the other samples first.
    pub fn agreement() -> RankConfig {
        RankConfig {
            use_agreement: true,
            ..RankConfig::only("agreement")
        }
    }

    /// The text drawn most often first.
    pub fn most_frequent() -> RankConfig {
        RankConfig {
            use_count: true,
            ..RankConfig::only("most_frequent")
        }
    }

    /// The ablation's policies, in report order.
    pub fn ablation_presets(seed: u64) -> Vec<RankConfig> {
        vec![
            RankConfig::random(seed),
            RankConfig::logprob(),
            RankConfig::syntax(),
            RankConfig::examples(),
            RankConfig::agreement(),
            RankConfig::most_frequent(),
            RankConfig::combined(),
        ]
    }

    fn needs_code(&self) -> bool {
        self.random_seed.is_none() && (self.use_examples || self.use_agreement)
    }
}

/// Where ranking runs, which decides whether code may run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RankMode {
    /// Editor use: code runs when `run_code` is set (the user asked), or
    /// when the cursor is in a function (whose docstring gives the examples)
    /// and the estimated sandbox time fits `time_budget`.
    Inline {
        run_code: bool,
        time_budget: Duration,
    },
    /// CLI and benchmark: everything runs.
    Batch,
}

/// A ranking request: the document before insertion, the cursor, the samples.
#[derive(Debug, Clone, Copy)]
pub struct RankRequest<'a> {
    pub doc: &'a ParsedDocument,
    pub cursor: usize,
    pub candidates: &'a [RawCandidate],
    /// The function whose docstring gives the examples (e.g. a HumanEval
    /// entry point); `None`: the function holding the cursor.
    pub function_name: Option<&'a str>,
}

/// Features of every candidate of a request (policies then only order them).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analysis {
    pub candidates: Vec<Candidate>,
    /// Parallel to `candidates`.
    pub features: Vec<Features>,
    /// Examples found in the docstring (all, including those that did not
    /// parse).
    pub examples: Vec<Example>,
    /// Per example: it parsed and counted (known only when code ran).
    pub valid_examples: Vec<bool>,
    pub probes: Vec<String>,
    pub ran_code: bool,
    /// What was not done and why.
    pub notes: Vec<String>,
}

impl Analysis {
    /// Examples that counted.
    pub fn n_valid_examples(&self) -> usize {
        self.valid_examples.iter().filter(|v| **v).count()
    }
}

/// The outcome of [`rank`].
#[derive(Debug, Clone, PartialEq)]
pub struct Ranking {
    /// Best first.
    pub candidates: Vec<RankedCandidate>,
    pub analysis: Analysis,
}

/// Whether code may run for this request in this mode.
pub fn may_run_code(
    mode: RankMode,
    function: Option<&FunctionInfo>,
    n_candidates: usize,
    cfg: &RankConfig,
) -> bool {
    match mode {
        RankMode::Batch => true,
        RankMode::Inline { run_code: true, .. } => true,
        RankMode::Inline {
            run_code: false,
            time_budget,
        } => {
            let waves = n_candidates.div_ceil(cfg.workers.max(1)) as u32;
            function.is_some() && cfg.estimated_run_time * waves <= time_budget
        }
    }
}

/// Features, then the order of `cfg`'s policy.
pub fn rank(
    request: &RankRequest,
    cfg: &RankConfig,
    mode: RankMode,
    sandbox: Option<&Sandbox>,
) -> Ranking {
    let analysis = analyze(request, cfg, mode, sandbox);
    Ranking {
        candidates: order(&analysis, cfg),
        analysis,
    }
}

/// Computes the features `cfg` needs (code runs only if `cfg` uses examples
/// or agreement, a sandbox is given and `mode` allows it).
pub fn analyze(
    request: &RankRequest,
    cfg: &RankConfig,
    mode: RankMode,
    sandbox: Option<&Sandbox>,
) -> Analysis {
    analyze_many(&[*request], cfg, mode, sandbox)
        .pop()
        .unwrap_or_else(|| empty_analysis(Vec::new()))
}

/// The analysis of samples when nothing is checked: merged candidates with
/// their log-probabilities only (plain text, languages without a parser).
pub fn analysis_without_code(raw: &[RawCandidate]) -> Analysis {
    empty_analysis(merge_candidates(raw))
}

fn empty_analysis(candidates: Vec<Candidate>) -> Analysis {
    Analysis {
        features: candidates
            .iter()
            .map(|c| Features {
                mean_logprob: c.mean_logprob,
                ..Features::default()
            })
            .collect(),
        candidates,
        examples: Vec::new(),
        valid_examples: Vec::new(),
        probes: Vec::new(),
        ran_code: false,
        notes: Vec::new(),
    }
}

/// [`analyze`] for many requests at once: all sandbox programs run in one
/// pool of `cfg.workers`.
pub fn analyze_many(
    requests: &[RankRequest],
    cfg: &RankConfig,
    mode: RankMode,
    sandbox: Option<&Sandbox>,
) -> Vec<Analysis> {
    analyze_many_cached(requests, cfg, mode, sandbox, None)
}

/// Sandbox results by program text: a candidate already run (the same
/// document, candidate and examples) is not run again. Bounded: when full it
/// is cleared.
#[derive(Default)]
pub struct RunCache {
    runs: std::sync::Mutex<HashMap<u64, RunReport>>,
}

impl RunCache {
    const MAX_ENTRIES: usize = 4096;

    pub fn new() -> RunCache {
        RunCache::default()
    }

    fn key(program: &str) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        program.hash(&mut hasher);
        hasher.finish()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, RunReport>> {
        self.runs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, program: &str) -> Option<RunReport> {
        self.lock().get(&Self::key(program)).cloned()
    }

    fn put(&self, program: &str, report: RunReport) {
        let mut runs = self.lock();
        if runs.len() >= Self::MAX_ENTRIES {
            runs.clear();
        }
        runs.insert(Self::key(program), report);
    }

    /// Programs whose results are cached.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// [`analyze_many`] with a cache of sandbox results: cached programs are not
/// run again, and new results are added.
pub fn analyze_many_cached(
    requests: &[RankRequest],
    cfg: &RankConfig,
    mode: RankMode,
    sandbox: Option<&Sandbox>,
    cache: Option<&RunCache>,
) -> Vec<Analysis> {
    struct Job {
        request: usize,
        candidate: usize,
        n_examples: usize,
    }
    let mut analyses = Vec::with_capacity(requests.len());
    let mut programs: Vec<(String, std::time::Duration)> = Vec::new();
    let mut jobs: Vec<Job> = Vec::new();
    for (request_idx, request) in requests.iter().enumerate() {
        let mut analysis = empty_analysis(merge_candidates(request.candidates));
        let python = request.doc.language() == Language::Python;
        for (candidate, features) in analysis.candidates.iter().zip(&mut analysis.features) {
            features.syntax_delta =
                Some(syntax_check(request.doc, request.cursor, &candidate.text).delta());
        }
        let function = match request.function_name {
            Some(name) => function_named(request.doc, name),
            None => function_at(request.doc, request.cursor),
        };
        if let Some(function) = function.as_ref().filter(|_| python) {
            analysis.examples = extract_examples(function);
        }
        let has_examples = analysis
            .examples
            .iter()
            .any(|e| e.kind != ExampleKind::Setup);
        let allowed = may_run_code(mode, function.as_ref(), analysis.candidates.len(), cfg);
        if !python {
            analysis
                .notes
                .push("examples are only run for Python".into());
        } else if !cfg.needs_code() {
            // The policy does not use code: nothing to run.
        } else if !has_examples {
            analysis.notes.push("no examples in the docstring".into());
        } else if !allowed {
            analysis.notes.push(
                "code not run: inline mode, no function at the cursor or over the time budget"
                    .into(),
            );
        } else if sandbox.is_none() {
            analysis.notes.push("code not run: no sandbox".into());
        } else {
            let text = request.doc.text();
            let cursor = floor_boundary(text, request.cursor);
            let probes = if cfg.use_agreement {
                cfg.probe_inputs
            } else {
                0
            };
            let n_examples = analysis.examples.len();
            let wall = harness::wall_limit(n_examples, probes, &cfg.limits);
            let known = function
                .as_ref()
                .map(|f| f.defined_names.clone())
                .unwrap_or_default();
            for (candidate_idx, candidate) in analysis.candidates.iter().enumerate() {
                let source = format!("{}{}{}", &text[..cursor], candidate.text, &text[cursor..]);
                programs.push((
                    harness::program(&source, &analysis.examples, &known, probes, &cfg.limits),
                    wall,
                ));
                jobs.push(Job {
                    request: request_idx,
                    candidate: candidate_idx,
                    n_examples,
                });
            }
            analysis.ran_code = true;
        }
        analyses.push(analysis);
    }
    let Some(sandbox) = sandbox.filter(|_| !programs.is_empty()) else {
        return analyses;
    };
    let wall = programs
        .iter()
        .map(|(_, w)| *w)
        .max()
        .unwrap_or(Duration::from_secs(10));
    let sandbox = sandbox.with_timeout(wall);
    let texts: Vec<String> = programs.into_iter().map(|(p, _)| p).collect();
    let mut reports: Vec<Vec<Option<RunReport>>> = analyses
        .iter()
        .map(|a| vec![None; a.candidates.len()])
        .collect();
    let mut to_run: Vec<usize> = Vec::new();
    for (idx, (job, text)) in jobs.iter().zip(&texts).enumerate() {
        match cache.and_then(|c| c.get(text)) {
            Some(report) => reports[job.request][job.candidate] = Some(report),
            None => to_run.push(idx),
        }
    }
    let run_texts: Vec<String> = to_run.iter().map(|&i| texts[i].clone()).collect();
    let outcomes =
        sandbox.run_many_harness_with_progress(&run_texts, cfg.workers.max(1), &|_, _| {});
    for (&idx, outcome) in to_run.iter().zip(&outcomes) {
        let job = &jobs[idx];
        let report = harness::parse_outcome(outcome, job.n_examples);
        if let Some(cache) = cache.filter(|_| report.sandbox_error.is_none()) {
            cache.put(&texts[idx], report.clone());
        }
        reports[job.request][job.candidate] = Some(report);
    }
    for (analysis, reports) in analyses.iter_mut().zip(reports) {
        if analysis.ran_code {
            fill_from_runs(analysis, reports);
        }
    }
    analyses
}

fn floor_boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn fill_from_runs(analysis: &mut Analysis, reports: Vec<Option<RunReport>>) {
    let n_examples = analysis.examples.len();
    // Validity and probes depend only on the examples: take them from the
    // first run that reported them.
    if let Some(first) = reports
        .iter()
        .flatten()
        .find(|r| r.outputs.len() >= n_examples && r.sandbox_error.is_none())
    {
        analysis.valid_examples = first.valid.clone();
        analysis.probes = first.probes.clone();
    } else {
        analysis.valid_examples = vec![false; n_examples];
    }
    let errors: Vec<&String> = reports
        .iter()
        .flatten()
        .filter_map(|r| r.sandbox_error.as_ref())
        .collect();
    if let Some(first) = errors.first() {
        analysis
            .notes
            .push(format!("{} sandbox run(s) failed: {first}", errors.len()));
    }
    let n_inputs = n_examples + analysis.probes.len();
    let total = analysis.n_valid_examples();
    let mut outputs: Vec<Vec<Option<String>>> = Vec::new();
    for (features, report) in analysis.features.iter_mut().zip(&reports) {
        features.examples_total = total;
        let mut row = vec![None; n_inputs];
        if let Some(report) = report {
            features.load_error = report.load_error.clone();
            features.examples_passed = report
                .passed
                .iter()
                .zip(&analysis.valid_examples)
                .filter(|(p, v)| **v && **p == Some(true))
                .count();
            if report.load_error.is_none() {
                for (slot, out) in row.iter_mut().zip(&report.outputs) {
                    *slot = out.clone();
                }
            }
        }
        outputs.push(row);
    }
    let counts: Vec<usize> = analysis.candidates.iter().map(|c| c.count).collect();
    for (features, a) in analysis
        .features
        .iter_mut()
        .zip(agreement(&outputs, &counts))
    {
        features.agreement = a;
    }
}

/// Agreement as in CodeT, per input: for candidate `i` and input `k`, the
/// share of the other samples (weighted by count, the candidate's own
/// duplicates included) whose output on `k` equals `i`'s; averaged over the
/// inputs on which any candidate produced an output. A missing output
/// (the module failed to load, the run was killed) agrees with nothing; an
/// exception or a timeout on one input is an output like any other (two
/// candidates that both loop on a probe behave alike there). `None` when there is one
/// sample in all or no input has an output.
pub fn agreement(outputs: &[Vec<Option<String>>], counts: &[usize]) -> Vec<Option<f64>> {
    let n_samples: usize = counts.iter().sum();
    let n_inputs = outputs.iter().map(Vec::len).max().unwrap_or(0);
    let inputs: Vec<usize> = (0..n_inputs)
        .filter(|&k| {
            outputs
                .iter()
                .any(|row| row.get(k).is_some_and(Option::is_some))
        })
        .collect();
    if n_samples <= 1 || inputs.is_empty() {
        return vec![None; outputs.len()];
    }
    let others = (n_samples - 1) as f64;
    outputs
        .iter()
        .map(|row| {
            let mut sum = 0.0;
            for &k in &inputs {
                let Some(Some(mine)) = row.get(k) else {
                    continue;
                };
                let same: usize = outputs
                    .iter()
                    .zip(counts)
                    .filter(|(other, _)| other.get(k).and_then(Option::as_ref) == Some(mine))
                    .map(|(_, c)| *c)
                    .sum();
                sum += (same.saturating_sub(1)) as f64 / others;
            }
            Some(sum / inputs.len() as f64)
        })
        .collect()
}

/// The score of one candidate under `cfg` (random policies aside).
pub fn score(features: &Features, count: usize, n_samples: usize, cfg: &RankConfig) -> f64 {
    let w = &cfg.weights;
    let mut s = 0.0;
    if cfg.use_examples && features.examples_total > 0 {
        s += w.examples * features.examples_passed as f64 / features.examples_total as f64;
    }
    if cfg.use_syntax && features.syntax_delta.is_none_or(|d| d <= 0) {
        s += w.syntax;
    }
    if cfg.use_agreement {
        s += w.agreement * features.agreement.unwrap_or(0.0);
    }
    if cfg.use_logprob && features.mean_logprob.is_finite() {
        s += w.logprob * f64::from(features.mean_logprob).exp();
    }
    if cfg.use_count && n_samples > 0 {
        s += w.count * count as f64 / n_samples as f64;
    }
    s
}

/// Orders an analysis under `cfg`: best first; equal scores keep the order
/// of the samples (earliest first).
pub fn order(analysis: &Analysis, cfg: &RankConfig) -> Vec<RankedCandidate> {
    let n_samples: usize = analysis.candidates.iter().map(|c| c.count).sum();
    let mut ranked: Vec<RankedCandidate> = analysis
        .candidates
        .iter()
        .zip(&analysis.features)
        .map(|(c, f)| RankedCandidate {
            text: c.text.clone(),
            count: c.count,
            features: f.clone(),
            score: score(f, c.count, n_samples, cfg),
            sample_indices: c.sample_indices.clone(),
        })
        .collect();
    if let Some(seed) = cfg.random_seed {
        // Shuffle the samples; a candidate ranks by its first sample drawn.
        let mut keys: Vec<u64> = (0..n_samples as u64)
            .map(|i| splitmix(seed ^ splitmix(i)))
            .collect();
        for r in &mut ranked {
            let best = r
                .sample_indices
                .iter()
                .filter_map(|&i| keys.get(i).copied())
                .max()
                .unwrap_or(0);
            r.score = best as f64 / u64::MAX as f64;
        }
        keys.clear();
    }
    ranked.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.sample_indices.first().cmp(&b.sample_indices.first()))
    });
    ranked
}

/// The splitmix64 mixer (seeded orders and derived seeds).
pub fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
