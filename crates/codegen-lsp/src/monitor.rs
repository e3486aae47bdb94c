//! Model operations over the local telemetry log: models side by side
//! (acceptance with its confidence interval, shadow agreement, latency),
//! whether two acceptance rates differ significantly, drift between a
//! recent window and a baseline window, and time series for charts.
//! Pure functions of the events: `codegen stats` and the server's drift
//! watch share them.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::telemetry::{percentile, summarize, EventKind, TelemetryEvent};

/// z for a two-sided 95% interval.
const Z95: f64 = 1.959_963_984_540_054;

/// Wilson score interval of `successes / n` at 95% (`(0, 0)` when n = 0).
pub fn wilson_interval(successes: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 0.0);
    }
    let n = n as f64;
    let p = successes as f64 / n;
    let z2 = Z95 * Z95;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = Z95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denom;
    let lo = if successes == 0 {
        0.0
    } else {
        (centre - half).max(0.0)
    };
    let hi = if p >= 1.0 {
        1.0
    } else {
        (centre + half).min(1.0)
    };
    (lo, hi)
}

/// Complementary error function (Numerical Recipes' `erfcc`, relative
/// error below 1.2e-7 everywhere).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// A two-sided two-proportion z-test (pooled variance).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Significance {
    /// `rate_b - rate_a`.
    pub difference: f64,
    pub z: f64,
    pub p_value: f64,
    /// p < 0.05 and both groups have at least [`MIN_SAMPLES`] suggestions.
    pub significant: bool,
}

/// Fewer shown suggestions than this in either group: never significant
/// (the normal approximation is poor, and one afternoon is not a verdict).
pub const MIN_SAMPLES: usize = 30;

pub fn two_proportion_test(
    successes_a: usize,
    n_a: usize,
    successes_b: usize,
    n_b: usize,
) -> Significance {
    let (na, nb) = (n_a as f64, n_b as f64);
    let rate = |s: usize, n: f64| if n > 0.0 { s as f64 / n } else { 0.0 };
    let (pa, pb) = (rate(successes_a, na), rate(successes_b, nb));
    let difference = pb - pa;
    if n_a == 0 || n_b == 0 {
        return Significance {
            difference,
            z: 0.0,
            p_value: 1.0,
            significant: false,
        };
    }
    let pooled = (successes_a + successes_b) as f64 / (na + nb);
    let se = (pooled * (1.0 - pooled) * (1.0 / na + 1.0 / nb)).sqrt();
    let (z, p_value) = if se > 0.0 {
        let z = difference / se;
        (z, erfc(z.abs() / std::f64::consts::SQRT_2))
    } else {
        (0.0, 1.0)
    };
    Significance {
        difference,
        z,
        p_value,
        significant: p_value < 0.05 && n_a >= MIN_SAMPLES && n_b >= MIN_SAMPLES,
    }
}

/// What shadow runs of a candidate showed.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct ShadowStats {
    pub runs: usize,
    /// The candidate had a suggestion.
    pub non_empty: usize,
    pub agree_exact_rate: f64,
    pub agree_first_line_rate: f64,
    /// Of the runs whose syntax was checked.
    pub syntax_ok_rate: Option<f64>,
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
    /// The primary's latency on the same requests.
    pub primary_latency_p50_ms: Option<f64>,
    pub mean_logprob: Option<f64>,
    pub primary_mean_logprob: Option<f64>,
}

/// One model's figures, for `codegen stats --by model`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelStats {
    pub model: String,
    /// Replies shown to the user (primary or rollout).
    pub shown: usize,
    /// Accepted whole or in part.
    pub accepted: usize,
    pub acceptance_rate: f64,
    /// Wilson 95% interval of the acceptance rate.
    pub acceptance_ci: (f64, f64),
    pub empty: usize,
    /// Empty replies / all replies.
    pub empty_rate: f64,
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
    /// Shown suggestions that add no syntax errors, of those checked.
    pub syntax_ok_rate: Option<f64>,
    pub mean_logprob: Option<f64>,
    /// As a shadow candidate (`None`: it never ran in shadow).
    pub shadow: Option<ShadowStats>,
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

fn rate(count: usize, of: usize) -> f64 {
    if of == 0 {
        0.0
    } else {
        count as f64 / of as f64
    }
}

/// Figures per model of the events at or after `since_ms`, most shown first.
pub fn by_model(events: &[TelemetryEvent], since_ms: Option<u64>) -> Vec<ModelStats> {
    let events: Vec<&TelemetryEvent> = events
        .iter()
        .filter(|e| since_ms.is_none_or(|since| e.ts_ms >= since))
        .collect();
    // Acceptance (with word-by-word acceptances counted once) as in
    // `summarize`, over all languages.
    let merged: Vec<TelemetryEvent> = events
        .iter()
        .map(|e| TelemetryEvent {
            language: String::new(),
            ..(*e).clone()
        })
        .collect();
    let acceptance: BTreeMap<String, (usize, usize)> = summarize(&merged, None)
        .into_iter()
        .map(|g| (g.model, (g.shown, g.accepted + g.partially_accepted)))
        .collect();
    #[derive(Default)]
    struct Acc {
        empty: usize,
        latencies: Vec<f64>,
        syntax_checked: usize,
        syntax_ok: usize,
        logprobs: Vec<f64>,
        shadow: Vec<crate::telemetry::ShadowRecord>,
    }
    let mut per: BTreeMap<String, Acc> = BTreeMap::new();
    for name in acceptance.keys() {
        per.entry(name.clone()).or_default();
    }
    for event in &events {
        let acc = per.entry(event.model.clone()).or_default();
        match event.event {
            EventKind::Shown => {
                acc.latencies.extend(event.latency_ms);
                if let Some(rank) = &event.rank {
                    if let Some(delta) = rank.syntax_delta {
                        acc.syntax_checked += 1;
                        acc.syntax_ok += usize::from(delta <= 0);
                    }
                    if rank.mean_logprob.is_finite() {
                        acc.logprobs.push(rank.mean_logprob as f64);
                    }
                }
            }
            EventKind::Empty => acc.empty += 1,
            EventKind::Shadow => acc.shadow.extend(event.shadow.clone()),
            _ => {}
        }
    }
    let mut out: Vec<ModelStats> = per
        .into_iter()
        .map(|(model, acc)| {
            let (shown, accepted) = acceptance.get(&model).copied().unwrap_or((0, 0));
            let shadow = (!acc.shadow.is_empty()).then(|| shadow_stats(&acc.shadow));
            ModelStats {
                acceptance_rate: rate(accepted, shown),
                acceptance_ci: wilson_interval(accepted, shown),
                empty_rate: rate(acc.empty, shown + acc.empty),
                empty: acc.empty,
                latency_p50_ms: percentile(&acc.latencies, 50.0),
                latency_p95_ms: percentile(&acc.latencies, 95.0),
                syntax_ok_rate: (acc.syntax_checked > 0)
                    .then(|| rate(acc.syntax_ok, acc.syntax_checked)),
                mean_logprob: mean(&acc.logprobs),
                shadow,
                model,
                shown,
                accepted,
            }
        })
        .collect();
    out.sort_by(|a, b| b.shown.cmp(&a.shown).then_with(|| a.model.cmp(&b.model)));
    out
}

fn shadow_stats(records: &[crate::telemetry::ShadowRecord]) -> ShadowStats {
    let runs = records.len();
    let non_empty: Vec<_> = records.iter().filter(|r| !r.empty).collect();
    let checked: Vec<bool> = records.iter().filter_map(|r| r.syntax_ok).collect();
    let finite = |v: Option<f32>| v.filter(|x| x.is_finite()).map(f64::from);
    let logprobs: Vec<f64> = records
        .iter()
        .filter_map(|r| finite(r.mean_logprob))
        .collect();
    let primary_logprobs: Vec<f64> = records
        .iter()
        .filter_map(|r| finite(r.primary_mean_logprob))
        .collect();
    let latencies: Vec<f64> = records.iter().map(|r| r.latency_ms).collect();
    let primary_latencies: Vec<f64> = records.iter().map(|r| r.primary_latency_ms).collect();
    ShadowStats {
        runs,
        non_empty: non_empty.len(),
        agree_exact_rate: rate(records.iter().filter(|r| r.agree_exact).count(), runs),
        agree_first_line_rate: rate(records.iter().filter(|r| r.agree_first_line).count(), runs),
        syntax_ok_rate: (!checked.is_empty())
            .then(|| rate(checked.iter().filter(|ok| **ok).count(), checked.len())),
        latency_p50_ms: percentile(&latencies, 50.0),
        latency_p95_ms: percentile(&latencies, 95.0),
        primary_latency_p50_ms: percentile(&primary_latencies, 50.0),
        mean_logprob: mean(&logprobs),
        primary_mean_logprob: mean(&primary_logprobs),
    }
}

/// Each model's acceptance rate against the most-shown model's.
pub fn compare_to_first(stats: &[ModelStats]) -> Vec<(String, String, Significance)> {
    let Some(first) = stats.first() else {
        return Vec::new();
    };
    stats
        .iter()
        .skip(1)
        .filter(|other| other.shown > 0)
        .map(|other| {
            (
                first.model.clone(),
                other.model.clone(),
                two_proportion_test(first.accepted, first.shown, other.accepted, other.shown),
            )
        })
        .collect()
}

// ---------------------------------------------------------------- drift

/// What drifted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DriftKind {
    LanguageMix,
    PromptLength,
    ContextKind,
    EmptyRate,
    AcceptanceRate,
    LatencyP95,
}

impl DriftKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DriftKind::LanguageMix => "language-mix",
            DriftKind::PromptLength => "prompt-length",
            DriftKind::ContextKind => "context-kind",
            DriftKind::EmptyRate => "empty-rate",
            DriftKind::AcceptanceRate => "acceptance-rate",
            DriftKind::LatencyP95 => "latency-p95",
        }
    }
}

/// The windows and thresholds of the drift check (documented in the
/// README's "Model operations" section).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DriftConfig {
    /// The recent window ends now.
    pub recent_ms: u64,
    /// The baseline window ends where the recent one starts.
    pub baseline_ms: u64,
    /// Replies each window needs before anything is compared.
    pub min_replies: usize,
    /// Total variation distance of the language and context-kind mixes.
    pub max_mix_distance: f64,
    /// Ratio of median prompt lengths (either way) and of p95 latencies (up).
    pub max_ratio: f64,
    /// Rise of the empty-suggestion rate, absolute.
    pub max_empty_rise: f64,
    /// Fall of the acceptance rate, absolute (and significant at 5%).
    pub max_acceptance_fall: f64,
}

impl Default for DriftConfig {
    fn default() -> Self {
        Self {
            recent_ms: 86_400_000,
            baseline_ms: 7 * 86_400_000,
            min_replies: 30,
            max_mix_distance: 0.25,
            max_ratio: 1.5,
            max_empty_rise: 0.10,
            max_acceptance_fall: 0.10,
        }
    }
}

/// One compared quantity.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftCheck {
    pub kind: DriftKind,
    pub baseline: f64,
    pub recent: f64,
    /// The distance (or ratio, or change) compared with the threshold.
    pub measure: f64,
    pub threshold: f64,
    pub drifted: bool,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftReport {
    pub recent_replies: usize,
    pub baseline_replies: usize,
    /// Empty when a window has fewer than `min_replies` replies.
    pub checks: Vec<DriftCheck>,
}

impl DriftReport {
    pub fn drifted(&self) -> impl Iterator<Item = &DriftCheck> {
        self.checks.iter().filter(|c| c.drifted)
    }
}

#[derive(Default)]
struct Window {
    replies: usize,
    shown: usize,
    accepted_ids: std::collections::BTreeSet<String>,
    empty: usize,
    languages: BTreeMap<String, usize>,
    contexts: BTreeMap<String, usize>,
    prompt_tokens: Vec<f64>,
    latencies: Vec<f64>,
}

impl Window {
    fn add(&mut self, event: &TelemetryEvent) {
        match event.event {
            EventKind::Shown | EventKind::Empty => {
                self.replies += 1;
                *self.languages.entry(event.language.clone()).or_default() += 1;
                if let Some(context) = &event.context {
                    *self.contexts.entry(context.clone()).or_default() += 1;
                }
                if let Some(n) = event.prompt_tokens {
                    self.prompt_tokens.push(n as f64);
                }
                if let Some(ms) = event.latency_ms {
                    self.latencies.push(ms);
                }
                if event.event == EventKind::Empty {
                    self.empty += 1;
                } else {
                    self.shown += 1;
                }
            }
            EventKind::Accepted | EventKind::Partial => {
                self.accepted_ids.insert(event.id.clone());
            }
            _ => {}
        }
    }
}

/// Total variation distance between two count distributions.
fn mix_distance(a: &BTreeMap<String, usize>, b: &BTreeMap<String, usize>) -> f64 {
    let (ta, tb) = (a.values().sum::<usize>(), b.values().sum::<usize>());
    if ta == 0 || tb == 0 {
        return 0.0;
    }
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .map(|k| {
            let pa = *a.get(k).unwrap_or(&0) as f64 / ta as f64;
            let pb = *b.get(k).unwrap_or(&0) as f64 / tb as f64;
            (pa - pb).abs()
        })
        .sum::<f64>()
        / 2.0
}

fn top(mix: &BTreeMap<String, usize>) -> String {
    let total = mix.values().sum::<usize>().max(1) as f64;
    let mut items: Vec<(&String, &usize)> = mix.iter().collect();
    items.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    items
        .iter()
        .take(3)
        .map(|(k, n)| {
            format!(
                "{} {:.0}%",
                if k.is_empty() { "?" } else { k },
                **n as f64 / total * 100.0
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// When each suggestion was shown: an acceptance counts for the window
/// (or bucket) its suggestion was shown in, not the one it came in.
struct ShownAt<'a>(BTreeMap<&'a str, u64>);

impl<'a> ShownAt<'a> {
    fn new(events: &'a [TelemetryEvent]) -> Self {
        ShownAt(
            events
                .iter()
                .filter(|e| e.event == EventKind::Shown)
                .map(|e| (e.id.as_str(), e.ts_ms))
                .collect(),
        )
    }

    fn time_of(&self, event: &TelemetryEvent) -> u64 {
        match event.event {
            EventKind::Accepted | EventKind::Partial => self
                .0
                .get(event.id.as_str())
                .copied()
                .unwrap_or(event.ts_ms),
            _ => event.ts_ms,
        }
    }
}

/// Compares the recent window (`config.recent_ms` up to `now_ms`) with the
/// baseline window before it, on the editor's replies (shown and empty;
/// shadow runs are not replies).
pub fn drift(events: &[TelemetryEvent], now_ms: u64, config: &DriftConfig) -> DriftReport {
    let recent_start = now_ms.saturating_sub(config.recent_ms);
    let baseline_start = recent_start.saturating_sub(config.baseline_ms);
    let (mut recent, mut baseline) = (Window::default(), Window::default());
    let shown_at = ShownAt::new(events);
    for event in events {
        let ts = shown_at.time_of(event);
        if ts > now_ms {
            continue;
        }
        if ts >= recent_start {
            recent.add(event);
        } else if ts >= baseline_start {
            baseline.add(event);
        }
    }
    let mut report = DriftReport {
        recent_replies: recent.replies,
        baseline_replies: baseline.replies,
        checks: Vec::new(),
    };
    if recent.replies < config.min_replies || baseline.replies < config.min_replies {
        return report;
    }
    let checks = &mut report.checks;
    let distance = mix_distance(&baseline.languages, &recent.languages);
    checks.push(DriftCheck {
        kind: DriftKind::LanguageMix,
        baseline: 0.0,
        recent: distance,
        measure: distance,
        threshold: config.max_mix_distance,
        drifted: distance > config.max_mix_distance,
        message: format!(
            "the language mix changed (distance {distance:.2}): now {}, before {}",
            top(&recent.languages),
            top(&baseline.languages)
        ),
    });
    if !recent.contexts.is_empty() && !baseline.contexts.is_empty() {
        let distance = mix_distance(&baseline.contexts, &recent.contexts);
        checks.push(DriftCheck {
            kind: DriftKind::ContextKind,
            baseline: 0.0,
            recent: distance,
            measure: distance,
            threshold: config.max_mix_distance,
            drifted: distance > config.max_mix_distance,
            message: format!(
                "the kind of context changed (distance {distance:.2}): now {}, before {}",
                top(&recent.contexts),
                top(&baseline.contexts)
            ),
        });
    }
    if let (Some(b), Some(r)) = (
        percentile(&baseline.prompt_tokens, 50.0),
        percentile(&recent.prompt_tokens, 50.0),
    ) {
        let ratio = if b > 0.0 { r / b } else { 1.0 };
        let measure = if ratio > 0.0 {
            ratio.max(1.0 / ratio)
        } else {
            f64::INFINITY
        };
        checks.push(DriftCheck {
            kind: DriftKind::PromptLength,
            baseline: b,
            recent: r,
            measure,
            threshold: config.max_ratio,
            drifted: measure > config.max_ratio,
            message: format!("the median prompt is {r:.0} tokens, was {b:.0}"),
        });
    }
    let (eb, er) = (
        rate(baseline.empty, baseline.replies),
        rate(recent.empty, recent.replies),
    );
    checks.push(DriftCheck {
        kind: DriftKind::EmptyRate,
        baseline: eb,
        recent: er,
        measure: er - eb,
        threshold: config.max_empty_rise,
        drifted: er - eb > config.max_empty_rise,
        message: format!(
            "{:.0}% of requests got no suggestion, was {:.0}%",
            er * 100.0,
            eb * 100.0
        ),
    });
    let accepted = |w: &Window, shown_ids: &std::collections::BTreeSet<&str>| {
        w.accepted_ids
            .iter()
            .filter(|id| shown_ids.contains(id.as_str()))
            .count()
    };
    let ids_in = |start: u64, end: u64| -> std::collections::BTreeSet<&str> {
        events
            .iter()
            .filter(|e| e.event == EventKind::Shown && e.ts_ms >= start && e.ts_ms < end)
            .map(|e| e.id.as_str())
            .collect()
    };
    let (ab, ar) = (
        accepted(&baseline, &ids_in(baseline_start, recent_start)),
        accepted(&recent, &ids_in(recent_start, now_ms.saturating_add(1))),
    );
    let test = two_proportion_test(ab, baseline.shown, ar, recent.shown);
    let fall = -test.difference;
    checks.push(DriftCheck {
        kind: DriftKind::AcceptanceRate,
        baseline: rate(ab, baseline.shown),
        recent: rate(ar, recent.shown),
        measure: fall,
        threshold: config.max_acceptance_fall,
        drifted: fall > config.max_acceptance_fall && test.significant,
        message: format!(
            "the acceptance rate is {:.0}%, was {:.0}% (p = {:.3})",
            rate(ar, recent.shown) * 100.0,
            rate(ab, baseline.shown) * 100.0,
            test.p_value
        ),
    });
    if let (Some(b), Some(r)) = (
        percentile(&baseline.latencies, 95.0),
        percentile(&recent.latencies, 95.0),
    ) {
        let ratio = if b > 0.0 { r / b } else { 1.0 };
        checks.push(DriftCheck {
            kind: DriftKind::LatencyP95,
            baseline: b,
            recent: r,
            measure: ratio,
            threshold: config.max_ratio,
            drifted: ratio > config.max_ratio,
            message: format!("p95 latency is {r:.0} ms, was {b:.0} ms"),
        });
    }
    report
}

// ---------------------------------------------------------------- series

/// Figures per time bucket, for sparklines and charts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    pub start_ms: u64,
    pub bucket_ms: u64,
    /// Replies (shown + empty) per bucket.
    pub replies: Vec<usize>,
    /// `None` where a bucket had nothing to measure.
    pub acceptance_rate: Vec<Option<f64>>,
    pub empty_rate: Vec<Option<f64>>,
    pub latency_p95_ms: Vec<Option<f64>>,
}

/// Buckets the events between `start_ms` and `end_ms` (hours for spans up
/// to two days, days beyond).
pub fn series(events: &[TelemetryEvent], start_ms: u64, end_ms: u64) -> Series {
    let span = end_ms.saturating_sub(start_ms).max(1);
    let bucket_ms = if span <= 2 * 86_400_000 {
        3_600_000
    } else {
        86_400_000
    };
    let start_ms = start_ms - start_ms % bucket_ms;
    let n = (end_ms.saturating_sub(start_ms) / bucket_ms + 1) as usize;
    let mut windows: Vec<Window> = (0..n).map(|_| Window::default()).collect();
    let mut shown_ids: Vec<std::collections::BTreeSet<String>> = vec![Default::default(); n];
    let shown_at = ShownAt::new(events);
    for event in events {
        let ts = shown_at.time_of(event);
        if ts < start_ms || ts > end_ms {
            continue;
        }
        let idx = ((ts - start_ms) / bucket_ms) as usize;
        if idx >= n {
            continue;
        }
        windows[idx].add(event);
        if event.event == EventKind::Shown {
            shown_ids[idx].insert(event.id.clone());
        }
    }
    let mut out = Series {
        start_ms,
        bucket_ms,
        replies: Vec::with_capacity(n),
        acceptance_rate: Vec::with_capacity(n),
        empty_rate: Vec::with_capacity(n),
        latency_p95_ms: Vec::with_capacity(n),
    };
    for (w, ids) in windows.iter().zip(&shown_ids) {
        out.replies.push(w.replies);
        let accepted = w.accepted_ids.iter().filter(|id| ids.contains(*id)).count();
        out.acceptance_rate
            .push((w.shown > 0).then(|| rate(accepted, w.shown)));
        out.empty_rate
            .push((w.replies > 0).then(|| rate(w.empty, w.replies)));
        out.latency_p95_ms.push(percentile(&w.latencies, 95.0));
    }
    out
}

/// A terminal sparkline: one block character per value, scaled between the
/// series' minimum and maximum; a gap is a space.
pub fn sparkline(values: &[Option<f64>]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let present: Vec<f64> = values
        .iter()
        .flatten()
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    let (lo, hi) = present
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(*v), hi.max(*v))
        });
    values
        .iter()
        .map(|v| match v {
            Some(v) if v.is_finite() => {
                if hi - lo <= f64::EPSILON {
                    BARS[3]
                } else {
                    let level = ((v - lo) / (hi - lo) * 7.0).round() as usize;
                    BARS[level.min(7)]
                }
            }
            _ => ' ',
        })
        .collect()
}
