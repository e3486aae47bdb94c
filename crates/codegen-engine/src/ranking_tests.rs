//! Ranking as every front end gets it: the policy, the examples' time
//! budget and the cache of their results.

use std::sync::Arc;
use std::time::{Duration, Instant};

use codegen_context::Language;
use codegen_model::FinishReason;
use codegen_sandbox::SandboxConfig;

use crate::*;

const ADD: &str =
    "def add(a, b):\n    \"\"\"Add two numbers.\n\n    >>> add(2, 3)\n    5\n    \"\"\"\n    ";

fn sample(text: &str, mean_logprob: f32) -> Sample {
    Sample {
        text: text.to_string(),
        raw: text.to_string(),
        mean_logprob,
        n_tokens: 4,
        finish: FinishReason::StopToken,
    }
}

fn request(text: &str, rank: RankSettings) -> CompletionRequest {
    let doc = Arc::new(Document::new(text.to_string(), Some(Language::Python)));
    let mut req = CompletionRequest::new("t.py", doc, text.len());
    req.settings.rank = rank;
    req
}

fn samples() -> Vec<Sample> {
    vec![
        sample("return a - b", -0.1),
        sample("return a + b", -0.6),
        sample("   ", -0.01),
        sample("return a - b", -0.2),
    ]
}

fn texts(outcome: &RankOutcome) -> Vec<&str> {
    outcome
        .suggestions
        .iter()
        .map(|s| s.text.as_str())
        .collect()
}

#[test]
fn policies_order_the_same_samples_differently() {
    let ranker = Ranker::new(Some(SandboxConfig::default()));
    let combined = ranker.rank(&request(ADD, RankSettings::default()), &samples());
    assert!(combined.ran_code, "{:?}", combined.notes);
    assert_eq!(combined.n_examples, 1);
    assert_eq!(texts(&combined), ["return a + b", "return a - b"]);
    assert_eq!(combined.suggestions[0].features.examples_passed, 1);
    // Identical samples are merged; blank ones are dropped.
    assert_eq!(combined.suggestions[1].sample_indices, [0, 3]);

    let logprob = ranker.rank(
        &request(
            ADD,
            RankSettings {
                policy: RankPolicy::Logprob,
                examples: ExampleRuns::Always,
            },
        ),
        &samples(),
    );
    assert!(!logprob.ran_code);
    assert_eq!(texts(&logprob), ["return a - b", "return a + b"]);

    let none = ranker.rank(
        &request(
            ADD,
            RankSettings {
                policy: RankPolicy::None,
                examples: ExampleRuns::Never,
            },
        ),
        &samples(),
    );
    assert_eq!(texts(&none), ["return a - b", "return a + b"]);
}

#[test]
fn a_spent_budget_ranks_without_examples_and_caches_them_for_next_time() {
    let ranker = Ranker::new(Some(SandboxConfig::default()));
    let budgeted = |ms| {
        request(
            ADD,
            RankSettings {
                policy: RankPolicy::Combined,
                examples: ExampleRuns::WithinBudget(Duration::from_millis(ms)),
            },
        )
    };
    let started = Instant::now();
    let first = ranker.rank(&budgeted(0), &samples());
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(first.code_pending, "{:?}", first.notes);
    assert!(!first.ran_code);
    // Syntax and log-probability still order them.
    assert_eq!(texts(&first), ["return a - b", "return a + b"]);
    // The background run fills the cache; then the same request ranks by
    // the examples within any budget.
    let deadline = Instant::now() + Duration::from_secs(60);
    while ranker.cached_runs() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(ranker.cached_runs(), 2);
    let mut second = ranker.rank(&budgeted(0), &samples());
    for _ in 0..100 {
        if second.ran_code {
            break;
        }
        // The background thread may still be clearing its in-flight flag.
        std::thread::sleep(Duration::from_millis(20));
        second = ranker.rank(&budgeted(2_000), &samples());
    }
    assert!(second.ran_code, "{:?}", second.notes);
    assert_eq!(texts(&second), ["return a + b", "return a - b"]);
}

#[test]
fn plain_text_and_other_languages_rank_without_code() {
    let ranker = Ranker::new(Some(SandboxConfig::default()));
    let doc = Arc::new(Document::new("notes: ".to_string(), None));
    let req = CompletionRequest::new("n.txt", doc, 7);
    let outcome = ranker.rank(&req, &[sample("b", -0.9), sample("a", -0.1)]);
    assert_eq!(texts(&outcome), ["a", "b"]);
    let rust = "fn add(a: i32, b: i32) -> i32 {\n    \n}\n";
    let doc = Arc::new(Document::new(rust.to_string(), Some(Language::Rust)));
    let req = CompletionRequest::new("a.rs", doc, rust.find("    \n").unwrap() + 4);
    let outcome = ranker.rank(&req, &[sample("a +", -0.1), sample("a + b", -0.5)]);
    assert!(!outcome.ran_code);
    // The insertion that leaves the file unparsable goes last.
    assert_eq!(texts(&outcome), ["a + b", "a +"]);
}
