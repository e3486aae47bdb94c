use serde_json::json;

use crate::settings::{Rank, Settings};
use crate::telemetry::{percentile, summarize, EventKind, RankRecord, TelemetryEvent};

/// LSP settings become the engine's settings in one place.
#[test]
fn settings_translate_once_into_engine_settings() {
    use codegen_engine::{ExampleRuns, RankPolicy};
    let defaults = Settings::default().completion_settings();
    // Several candidates at temperature 0: the first greedy, the rest sampled.
    assert_eq!(defaults.n, crate::settings::DEFAULT_N);
    assert!(defaults.first_greedy);
    assert_eq!(
        defaults.temperature,
        crate::settings::EXTRA_SAMPLE_TEMPERATURE
    );
    assert_eq!(defaults.rank.policy, RankPolicy::Combined);
    assert_eq!(
        defaults.rank.examples,
        ExampleRuns::WithinBudget(std::time::Duration::from_millis(250))
    );
    assert_eq!(defaults.prompt.max_suffix_tokens, 64);
    // While typing: one greedy candidate.
    let typing = Settings::default().completion_settings_for(true);
    assert_eq!(
        (typing.n, typing.first_greedy, typing.temperature),
        (1, false, 0.0)
    );
    let mut few = Settings::default();
    assert!(few.merge_json(&json!({"n": 3, "nAutomatic": 2})).is_empty());
    assert_eq!(few.completion_settings_for(true).n, 2);
    assert_eq!(few.completion_settings_for(false).n, 3);
    let mut settings = Settings::default();
    settings.merge_json(&json!({"n": 1, "rank": "none", "rankBudgetMs": 0, "temperature": 0.3}));
    let one = settings.completion_settings();
    assert_eq!((one.n, one.first_greedy, one.temperature), (1, false, 0.3));
    assert_eq!(one.rank.policy, RankPolicy::None);
    assert_eq!(one.rank.examples, ExampleRuns::Never);
}

#[test]
fn settings_merge_known_fields_and_report_bad_ones() {
    let mut settings = Settings::default();
    let warnings = settings.merge_json(&json!({"codegen": {
        "model": "qwen2.5-coder-1.5b", "draftModel": "none", "device": "cuda", "threads": 3, "maxTokens": 64,
        "temperature": 0.2, "n": 3, "rank": "none", "debounceMs": 10, "timeBudgetMs": 500,
        "languages": ["python", "rust"], "enabled": false, "maxPrefixTokens": 512,
        "maxSuffixTokens": 0,
    }}));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(settings.model.as_deref(), Some("qwen2.5-coder-1.5b"));
    assert_eq!(settings.draft_model.as_deref(), Some("none"));
    let mut other = settings.clone();
    other.draft_model = None;
    assert!(
        settings.model_differs(&other),
        "a draft change reloads the model"
    );
    assert_eq!(settings.device, "cuda");
    assert_eq!(settings.threads, Some(3));
    assert_eq!(
        (settings.max_tokens, settings.n, settings.rank),
        (64, 3, Rank::None)
    );
    assert_eq!((settings.debounce_ms, settings.time_budget_ms), (10, 500));
    assert!(settings.language_enabled("rust") && !settings.language_enabled("go"));
    assert!(!settings.enabled);
    assert_eq!(
        (settings.max_prefix_tokens, settings.max_suffix_tokens),
        (512, 0)
    );
    assert!(settings.model_differs(&Settings::default()));
    // Editors may send `rank` as a switch.
    assert!(settings.merge_json(&json!({"rank": true})).is_empty());
    assert_eq!(settings.rank, Rank::Auto);
    assert!(settings
        .merge_json(&json!({"rank": "logprob", "rankBudgetMs": 0}))
        .is_empty());
    assert_eq!((settings.rank, settings.rank_budget_ms), (Rank::Logprob, 0));

    let before = settings.clone();
    let warnings = settings
        .merge_json(&json!({"maxTokens": "lots", "n": 0, "languages": [1], "colour": "red"}));
    assert_eq!(warnings.len(), 4, "{warnings:?}");
    assert_eq!(settings, before);
    assert_eq!(settings.merge_json(&json!(5)).len(), 1);
    assert!(settings.merge_json(&json!(null)).is_empty());
}

fn event(kind: EventKind, model: &str, latency_ms: Option<f64>, ts_ms: u64) -> TelemetryEvent {
    TelemetryEvent {
        ts_ms,
        event: kind,
        id: "s1".into(),
        model: model.into(),
        language: "python".into(),
        latency_ms,
        length: 10,
        accepted_length: None,
        rank: None,
        prompt_tokens: None,
        context: None,
        shadow: None,
    }
}

#[test]
fn stats_group_by_model_and_language_within_the_window() {
    let events = vec![
        event(EventKind::Shown, "a", Some(100.0), 10),
        event(EventKind::Shown, "a", Some(300.0), 20),
        event(EventKind::Shown, "a", Some(200.0), 30),
        event(EventKind::Shown, "a", Some(400.0), 40),
        event(EventKind::Accepted, "a", None, 41),
        TelemetryEvent {
            id: "s2".into(),
            ..event(EventKind::Partial, "a", None, 42)
        },
        event(EventKind::Shown, "b", Some(50.0), 1),
    ];
    let stats = summarize(&events, None);
    assert_eq!(stats.len(), 2);
    let a = &stats[0];
    assert_eq!((a.shown, a.accepted, a.partially_accepted), (4, 1, 1));
    assert_eq!(a.acceptance_rate, 0.5);
    assert_eq!(a.latency_p50_ms, Some(200.0));
    assert_eq!(a.latency_p95_ms, Some(400.0));
    assert_eq!(a.accepted_bytes, 10);
    let recent = summarize(&events, Some(25));
    assert_eq!(recent.len(), 1);
    assert_eq!(recent[0].shown, 2);
    assert_eq!(percentile(&[], 50.0), None);
    assert_eq!(a.rank_p50_ms, None);
}

#[test]
fn stats_report_ranking_time_and_examples() {
    let ranked = |ms: f64, ran: bool, passed: usize, total: usize| TelemetryEvent {
        rank: Some(RankRecord {
            policy: "combined".into(),
            ms,
            candidates: 2,
            ran_examples: ran,
            examples_passed: passed,
            examples_total: total,
            syntax_delta: Some(0),
            mean_logprob: -0.2,
        }),
        ..event(EventKind::Shown, "a", Some(100.0), 1)
    };
    let events = vec![
        ranked(2.0, false, 0, 0),
        ranked(40.0, true, 2, 2),
        ranked(60.0, true, 1, 2),
    ];
    let stats = summarize(&events, None);
    assert_eq!(stats[0].rank_p50_ms, Some(40.0));
    assert_eq!(stats[0].rank_p95_ms, Some(60.0));
    assert_eq!(
        (stats[0].ranked_by_examples, stats[0].passed_examples),
        (2, 1)
    );
    // The record survives the JSONL round trip.
    let line = serde_json::to_string(&events[1]).unwrap();
    let back: TelemetryEvent = serde_json::from_str(&line).unwrap();
    assert_eq!(back, events[1]);
}

#[test]
fn the_debounce_follows_the_typing_rhythm_within_bounds() {
    use crate::suggest::debounce;
    use std::time::Duration;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    assert_eq!(debounce(0, Some(100.0)), Duration::ZERO);
    assert_eq!(ms(debounce(75, None)), 75.0);
    assert_eq!(ms(debounce(75, Some(100.0))), 150.0);
    assert_eq!(ms(debounce(75, Some(10.0))), 37.5);
    assert_eq!(ms(debounce(75, Some(1000.0))), 225.0);
}

/// Download progress becomes few `$/progress` reports: whole percentages,
/// at most one per interval, the first and the last always.
#[test]
fn download_progress_is_throttled_into_percent_reports() {
    use crate::load::ProgressThrottle;
    use crate::state::DownloadProgress;
    use std::time::{Duration, Instant};

    let total = 400 * 1024 * 1024;
    let at = |done: u64, verifying: bool| DownloadProgress {
        done,
        total,
        verifying,
    };
    let start = Instant::now();
    let ms = |n: u64| start + Duration::from_millis(n);
    let mut throttle = ProgressThrottle::new(Duration::from_millis(250));
    let mut reports = Vec::new();
    let mut feed = |p: DownloadProgress, t: Instant| {
        if let Some(r) = throttle.update(p, t) {
            reports.push(format!("{}% {}", r.percentage, r.message));
        }
    };
    feed(
        DownloadProgress {
            total: 0,
            ..at(5, false)
        },
        ms(0),
    ); // size unknown yet
    feed(at(0, false), ms(0));
    feed(at(total / 100, false), ms(10)); // too soon
    feed(at(total * 3 / 100, false), ms(300));
    feed(at(total * 3 / 100 + 1, false), ms(900)); // same percent
    feed(at(total * 88 / 100, false), ms(1200));
    feed(at(total, false), ms(1201)); // the end always goes out
    feed(at(0, true), ms(1202)); // so does the start of verification
    feed(at(total / 2, true), ms(1300)); // too soon
    feed(at(total, true), ms(1301));
    expect_test::expect![[r#"
        [
            "0% 0.0 / 400.0 MiB",
            "3% 12.0 / 400.0 MiB",
            "88% 352.0 / 400.0 MiB",
            "100% 400.0 / 400.0 MiB",
            "100% verifying 0.0 / 400.0 MiB",
            "100% verifying 400.0 / 400.0 MiB",
        ]
    "#]]
    .assert_debug_eq(&reports);
}

#[test]
fn a_suggestion_taken_word_by_word_counts_once() {
    let with = |kind, id: &str, accepted: Option<usize>, ts| TelemetryEvent {
        id: id.into(),
        accepted_length: accepted,
        ..event(kind, "a", Some(100.0), ts)
    };
    let events = vec![
        with(EventKind::Shown, "s1", None, 1),
        with(EventKind::Partial, "s1", Some(4), 2),
        with(EventKind::Partial, "s1", Some(5), 3),
        with(EventKind::Partial, "s1", Some(1), 4),
        with(EventKind::Shown, "s2", None, 5),
        with(EventKind::Partial, "s2", Some(3), 6),
        with(EventKind::Accepted, "s2", Some(10), 7),
    ];
    let a = &summarize(&events, None)[0];
    // s1: three partial steps, one partially accepted suggestion; s2: a
    // partial step then the rest, one accepted suggestion.
    assert_eq!((a.shown, a.accepted, a.partially_accepted), (2, 1, 1));
    assert_eq!(a.acceptance_rate, 1.0);
    assert_eq!(a.accepted_bytes, 4 + 5 + 1 + 3 + 10);
}

// ------------------------------------------------ model operations

use crate::monitor::{self, DriftConfig, DriftKind};
use crate::telemetry::ShadowRecord;

#[test]
fn wilson_interval_and_two_proportion_test_match_known_values() {
    // 10 / 20: Wilson 95% interval 0.299-0.701 (textbook value).
    let (lo, hi) = monitor::wilson_interval(10, 20);
    assert!(
        (lo - 0.2993).abs() < 1e-3 && (hi - 0.7007).abs() < 1e-3,
        "{lo} {hi}"
    );
    assert_eq!(monitor::wilson_interval(0, 0), (0.0, 0.0));
    let (lo, hi) = monitor::wilson_interval(0, 50);
    assert_eq!(lo, 0.0);
    assert!(hi > 0.05 && hi < 0.08, "{hi}");
    // 30/100 vs 45/100: pooled 0.375, se 0.06847, z = 2.1909, two-sided p = 0.0285.
    let test = monitor::two_proportion_test(30, 100, 45, 100);
    assert!((test.z - 2.1909).abs() < 1e-3, "{}", test.z);
    assert!((test.p_value - 0.0285).abs() < 5e-4, "{}", test.p_value);
    assert!(test.significant);
    assert!((test.difference - 0.15).abs() < 1e-12);
    // Same rates: nothing to see.
    let same = monitor::two_proportion_test(30, 100, 30, 100);
    assert!((same.p_value - 1.0).abs() < 1e-6 && !same.significant);
    // A small group is never called significant, whatever p says.
    let small = monitor::two_proportion_test(0, 10, 10, 10);
    assert!(small.p_value < 0.05 && !small.significant);
}

fn shown(
    id: &str,
    model: &str,
    language: &str,
    ts_ms: u64,
    latency: f64,
    prompt: usize,
) -> TelemetryEvent {
    TelemetryEvent {
        id: id.into(),
        language: language.into(),
        prompt_tokens: Some(prompt),
        context: Some("fim/single_line".into()),
        rank: Some(RankRecord {
            policy: "combined".into(),
            syntax_delta: Some(if id.ends_with('7') { 1 } else { 0 }),
            mean_logprob: -0.5,
            ..RankRecord::default()
        }),
        ..event(EventKind::Shown, model, Some(latency), ts_ms)
    }
}

fn accepted(id: &str, model: &str, ts_ms: u64) -> TelemetryEvent {
    TelemetryEvent {
        id: id.into(),
        ..event(EventKind::Accepted, model, None, ts_ms)
    }
}

#[test]
fn models_side_by_side_with_shadow_agreement() {
    let mut events = Vec::new();
    for i in 0..40u64 {
        let id = format!("p{i}");
        events.push(shown(&id, "primary", "python", i, 100.0, 300));
        if i % 4 == 0 {
            events.push(accepted(&id, "primary", i));
        }
        if i % 2 == 0 {
            events.push(TelemetryEvent {
                shadow: Some(ShadowRecord {
                    primary: "primary".into(),
                    agree_exact: i % 4 == 0,
                    agree_first_line: i % 4 != 2 || i < 10,
                    syntax_ok: Some(i != 6),
                    mean_logprob: Some(-0.25),
                    primary_mean_logprob: Some(-0.5),
                    latency_ms: 300.0,
                    primary_latency_ms: 100.0,
                    empty: false,
                }),
                id: id.clone(),
                ..event(EventKind::Shadow, "candidate", Some(300.0), i)
            });
        }
    }
    for i in 0..10u64 {
        let id = format!("c{i}");
        events.push(shown(&id, "candidate", "python", 100 + i, 200.0, 300));
        if i < 5 {
            events.push(accepted(&id, "candidate", 100 + i));
        }
    }
    events.push(event(EventKind::Empty, "primary", Some(50.0), 200));
    let models = monitor::by_model(&events, None);
    assert_eq!(models.len(), 2);
    let (p, c) = (&models[0], &models[1]);
    assert_eq!(
        (p.model.as_str(), p.shown, p.accepted, p.empty),
        ("primary", 40, 10, 1)
    );
    assert!((p.acceptance_rate - 0.25).abs() < 1e-12);
    assert!(p.acceptance_ci.0 < 0.25 && p.acceptance_ci.1 > 0.25);
    assert!((p.empty_rate - 1.0 / 41.0).abs() < 1e-12);
    // p7, p17, p27, p37 add a syntax error.
    assert!((p.syntax_ok_rate.unwrap() - 36.0 / 40.0).abs() < 1e-12);
    assert!(p.shadow.is_none());
    assert_eq!((c.shown, c.accepted), (10, 5));
    let shadow = c.shadow.as_ref().unwrap();
    assert_eq!(shadow.runs, 20);
    assert!((shadow.agree_exact_rate - 0.5).abs() < 1e-12);
    assert!((shadow.syntax_ok_rate.unwrap() - 19.0 / 20.0).abs() < 1e-12);
    assert_eq!(shadow.latency_p50_ms, Some(300.0));
    assert_eq!(shadow.primary_latency_p50_ms, Some(100.0));
    assert_eq!(shadow.mean_logprob, Some(-0.25));
    // 10/40 vs 5/10: p ~ 0.12, and the candidate has too few anyway.
    let comparisons = monitor::compare_to_first(&models);
    assert_eq!(comparisons.len(), 1);
    assert!(!comparisons[0].2.significant);
    // The window applies.
    let late = monitor::by_model(&events, Some(100));
    assert_eq!(late.iter().map(|m| m.shown).sum::<usize>(), 10);
}

const DAY: u64 = 86_400_000;

/// `n` replies a day for 8 days before `now`; `recent` changes the last day's.
fn traffic(now: u64, n: u64, recent: impl Fn(&mut TelemetryEvent, u64)) -> Vec<TelemetryEvent> {
    let mut events = Vec::new();
    for day in 0..8u64 {
        for i in 0..n {
            let ts = now - (day * DAY) - 1000 - i * 60_000;
            let id = format!("d{day}i{i}");
            let language = if i % 2 == 0 { "python" } else { "rust" };
            let mut e = shown(&id, "m", language, ts, 100.0 + (i % 10) as f64, 300);
            if day == 0 {
                recent(&mut e, i);
            }
            let keep = e.event == EventKind::Shown;
            events.push(e);
            if keep && i % 3 == 0 {
                events.push(accepted(&id, "m", ts + 500));
            }
        }
    }
    events
}

#[test]
fn drift_is_flagged_past_each_threshold_and_not_before() {
    let now = 100 * DAY;
    let config = DriftConfig::default();
    let steady = monitor::drift(&traffic(now, 40, |_, _| {}), now, &config);
    assert_eq!(steady.recent_replies, 40);
    assert_eq!(steady.baseline_replies, 280);
    assert_eq!(steady.checks.len(), 6, "{:?}", steady.checks);
    assert_eq!(steady.drifted().count(), 0, "{:?}", steady.checks);

    type Change = Box<dyn Fn(&mut TelemetryEvent, u64)>;
    let cases: Vec<(DriftKind, Change)> = vec![
        (
            DriftKind::LanguageMix,
            Box::new(|e, _| e.language = "go".into()),
        ),
        (
            DriftKind::PromptLength,
            Box::new(|e, _| e.prompt_tokens = Some(900)),
        ),
        (
            DriftKind::ContextKind,
            Box::new(|e, _| e.context = Some("continuation/multi_line".into())),
        ),
        (
            DriftKind::EmptyRate,
            Box::new(|e, i| {
                if i % 4 == 1 {
                    e.event = EventKind::Empty;
                }
            }),
        ),
        (
            DriftKind::LatencyP95,
            Box::new(|e, _| e.latency_ms = Some(400.0)),
        ),
    ];
    for (kind, change) in cases {
        let report = monitor::drift(&traffic(now, 40, change), now, &config);
        let drifted: Vec<DriftKind> = report.drifted().map(|c| c.kind).collect();
        assert_eq!(drifted, vec![kind], "{:?}", report.checks);
    }
    // Acceptance: 1 in 3 accepted before; none in the last day (40 shown).
    let mut events = traffic(now, 40, |_, _| {});
    events.retain(|e| !(e.event == EventKind::Accepted && e.ts_ms > now - DAY));
    let report = monitor::drift(&events, now, &config);
    let drifted: Vec<DriftKind> = report.drifted().map(|c| c.kind).collect();
    assert_eq!(
        drifted,
        vec![DriftKind::AcceptanceRate],
        "{:?}",
        report.checks
    );

    // Too little traffic: nothing is compared.
    let quiet = monitor::drift(
        &traffic(now, 10, |e, _| e.language = "go".into()),
        now,
        &config,
    );
    assert!(quiet.checks.is_empty());
}

#[test]
fn series_buckets_and_sparklines() {
    let now = 10 * DAY;
    let events = traffic(now, 5, |_, _| {});
    let series = monitor::series(&events, now - 3 * DAY, now);
    assert_eq!(series.bucket_ms, DAY);
    assert_eq!(series.replies.iter().sum::<usize>(), 15);
    let hourly = monitor::series(&events, now - DAY / 2, now);
    assert_eq!(hourly.bucket_ms, 3_600_000);
    assert_eq!(hourly.replies.iter().sum::<usize>(), 5);
    // 2 of 5 accepted in each full day (i = 0 and 3).
    for rate in series.acceptance_rate.iter().flatten() {
        assert!((rate - 0.4).abs() < 1e-12, "{rate}");
    }
    assert_eq!(
        monitor::sparkline(&[Some(0.0), Some(1.0), None, Some(0.5)]),
        "▁█ ▅"
    );
    assert_eq!(monitor::sparkline(&[Some(3.0), Some(3.0)]), "▄▄");
    assert_eq!(monitor::sparkline(&[]), "");
}

#[test]
fn telemetry_appends_after_a_torn_line_without_losing_either() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    let good = serde_json::to_string(&event(EventKind::Shown, "m", Some(1.0), 1)).unwrap();
    // A crash left half a line and no newline.
    std::fs::write(&path, format!("{good}\n{}", &good[..good.len() / 2])).unwrap();
    let log = crate::telemetry::TelemetryLog::new(Some(path.clone()));
    log.append(&event(EventKind::Accepted, "m", None, 2))
        .unwrap();
    log.append(&event(EventKind::Partial, "m", None, 3))
        .unwrap();
    let (events, bad) = crate::telemetry::read_events(&path).unwrap();
    assert_eq!(bad, 1);
    let kinds: Vec<EventKind> = events.iter().map(|e| e.event).collect();
    assert_eq!(
        kinds,
        vec![EventKind::Shown, EventKind::Accepted, EventKind::Partial]
    );
}

#[test]
fn shadow_share_and_rollout_buckets_are_exact_and_stable() {
    use crate::shadow::{bucket, in_share};
    for percent in [0u32, 1, 25, 33, 50, 100] {
        let hits = (0..1000u64).filter(|n| in_share(*n, percent)).count();
        assert_eq!(hits, percent as usize * 10, "{percent}");
    }
    assert_eq!(bucket("file:///a.py"), bucket("file:///a.py"));
    let uris: Vec<String> = (0..2000).map(|i| format!("file:///src/m{i}.py")).collect();
    let under_10 = uris.iter().filter(|u| bucket(u) < 10).count();
    assert!((150..=250).contains(&under_10), "{under_10}");
    assert!(uris.iter().all(|u| bucket(u) < 100));
}

#[test]
fn candidate_settings_merge_and_reject_bad_percentages() {
    let mut settings = Settings::default();
    assert_eq!(settings.shadow_model, None);
    assert_eq!(settings.rollout_percent, 0);
    let before = settings.clone();
    let warnings = settings.merge_json(&json!({
        "shadowModel": " cand.gguf ", "shadowPercent": 40, "rolloutPercent": 10
    }));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(settings.shadow_model.as_deref(), Some("cand.gguf"));
    assert_eq!(
        (settings.shadow_percent, settings.rollout_percent),
        (40, 10)
    );
    assert!(settings.candidate_differs(&before));
    assert!(!settings.model_differs(&before));
    let warnings = settings.merge_json(&json!({"rolloutPercent": 150, "shadowPercent": "all"}));
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert_eq!(
        (settings.shadow_percent, settings.rollout_percent),
        (40, 10)
    );
    settings.merge_json(&json!({"shadowModel": ""}));
    assert_eq!(settings.shadow_model, None);
}
