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
