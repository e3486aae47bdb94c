use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use codegen_context::Language;
use codegen_model::testing::{write_tiny_gguf, TinyConfig};

use crate::*;

fn tiny() -> (tempfile::TempDir, Arc<LoadedModel>) {
    tiny_with(TinyConfig::default())
}

fn tiny_with(config: TinyConfig) -> (tempfile::TempDir, Arc<LoadedModel>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    write_tiny_gguf(&path, &config).unwrap();
    let model = LoadedModel::load("tiny", &path, &candle_core::Device::Cpu).unwrap();
    (dir, Arc::new(model))
}

fn job(key: &str, text: &str, max_tokens: usize) -> CompletionRequest {
    let doc = Arc::new(Document::new(text.to_string(), Some(Language::Python)));
    let mut req = CompletionRequest::new(key, doc, text.len());
    req.path = "m.py".into();
    req.settings.max_tokens = max_tokens;
    req
}

/// A worker that looks at the cancel flag after every prompt token, so a
/// job with a long prompt runs long enough to be cancelled or superseded
/// however fast the tiny model is.
fn step_by_step_worker() -> Engine {
    Engine::spawn(EngineConfig {
        prefill_chunk: 1,
        ..EngineConfig::default()
    })
    .unwrap()
}

/// Holds the worker thread (in a finished job's reply, which the worker
/// thread calls) until the returned sender sends or is dropped, so that jobs
/// submitted meanwhile are still queued when a test cancels or supersedes
/// them, however long the test's own thread waits for a time slice.
fn hold_worker(worker: &Engine) -> mpsc::Sender<()> {
    let (entered_tx, entered) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();
    worker.submit(
        job("holder.py", "def f(x):\n    y = ", 2),
        Box::new(move |r| {
            entered_tx.send(r.is_ok()).unwrap();
            let _ = release_rx.recv_timeout(Duration::from_secs(120));
        }),
    );
    assert!(entered.recv_timeout(Duration::from_secs(120)).unwrap());
    release
}

fn run(worker: &Engine, job: CompletionRequest) -> Result<RankedCompletion, JobError> {
    let (tx, rx) = mpsc::channel();
    worker.submit(job, Box::new(move |r| tx.send(r).unwrap()));
    rx.recv_timeout(Duration::from_secs(120)).unwrap()
}

#[test]
fn a_one_character_edit_prefills_only_the_new_tokens() {
    let (_dir, model) = tiny();
    let worker = Engine::spawn(EngineConfig::default()).unwrap();
    worker.set_model(Some(model));
    let text = "import os\n\ndef list_files(path):\n    names = os.listdir(path)\n    retur";
    let first = run(&worker, job("a.py", text, 4)).unwrap();
    assert_eq!(first.n_reused_tokens, 0);
    assert!(
        first.n_prefilled_tokens > 40,
        "{}",
        first.n_prefilled_tokens
    );
    let before = worker.counters().snapshot();

    let typed = format!("{text}n");
    let second = run(&worker, job("a.py", &typed, 4)).unwrap();
    let after = worker.counters().snapshot();
    let n_prompt = second.n_prompt_tokens;
    assert!(
        second.n_prefilled_tokens <= 2,
        "prefilled {}",
        second.n_prefilled_tokens
    );
    assert_eq!(second.n_reused_tokens + second.n_prefilled_tokens, n_prompt);
    assert_eq!(
        after.tokens_prefilled - before.tokens_prefilled,
        second.n_prefilled_tokens as u64
    );
    assert_eq!(
        after.tokens_reused - before.tokens_reused,
        second.n_reused_tokens as u64
    );
    assert_eq!(after.jobs_completed, 2);
}

#[test]
fn another_document_gets_its_own_session() {
    let (_dir, model) = tiny();
    let worker = Engine::spawn(EngineConfig::default()).unwrap();
    worker.set_model(Some(model));
    let text = "def f(x):\n    return x + 1\n\ny = ";
    run(&worker, job("a.py", text, 2)).unwrap();
    let other = run(&worker, job("b.py", text, 2)).unwrap();
    assert_eq!(other.n_reused_tokens, 0);
    let again = run(&worker, job("a.py", text, 2)).unwrap();
    assert!(again.n_reused_tokens + 1 >= again.n_prompt_tokens);
}

#[test]
fn a_newer_job_for_the_same_key_cancels_the_older() {
    let (_dir, model) = tiny();
    let worker = step_by_step_worker();
    worker.set_model(Some(model));
    // The jobs are submitted while the worker is held, so each is still
    // waiting when the next arrives (a job that finished first would not be
    // superseded).
    let release = hold_worker(&worker);
    let (tx, rx) = mpsc::channel();
    let n_jobs = 6;
    for idx in 0..n_jobs {
        let tx = tx.clone();
        let text = format!("{}x = {idx}\ny = ", "z = z + 1  # step\n".repeat(40));
        worker.submit(
            job("same.py", &text, 400),
            Box::new(move |r| tx.send((idx, r.map(|o| o.n_generated_tokens))).unwrap()),
        );
    }
    drop(release);
    let mut results: Vec<_> = (0..n_jobs)
        .map(|_| rx.recv_timeout(Duration::from_secs(120)).unwrap())
        .collect();
    results.sort_by_key(|(idx, _)| *idx);
    // Every job gets exactly one reply; all but the last are cancelled.
    assert_eq!(results.len(), n_jobs);
    assert!(results[n_jobs - 1].1.is_ok());
    for (idx, result) in &results[..n_jobs - 1] {
        assert!(
            matches!(result, Err(JobError::Cancelled)),
            "job {idx}: {result:?}"
        );
    }
    assert!(rx.try_recv().is_err());
}

#[test]
fn a_cancelled_handle_stops_generation() {
    let (_dir, model) = tiny();
    let worker = step_by_step_worker();
    worker.set_model(Some(model));
    // Cancelled before the worker can start it (on a loaded machine the
    // whole job takes less than a time slice, so a cancel sent while it runs
    // could land after it finished).
    let release = hold_worker(&worker);
    let before = worker.counters().snapshot();
    let (tx, rx) = mpsc::channel();
    let text = format!("{}y = ", "y = y + 1  # step\n".repeat(60));
    let handle = worker.submit(
        job("a.py", &text, 100_000),
        Box::new(move |r| tx.send(r).unwrap()),
    );
    handle.cancel();
    drop(release);
    let result = rx.recv_timeout(Duration::from_secs(120)).unwrap();
    assert!(matches!(result, Err(JobError::Cancelled)), "{result:?}");
    let after = worker.counters().snapshot();
    assert_eq!(after.jobs_cancelled, before.jobs_cancelled + 1);
    assert_eq!(after.tokens_generated, before.tokens_generated);
}

#[test]
fn the_time_budget_returns_a_partial_result() {
    let (_dir, model) = tiny();
    let worker = Engine::spawn(EngineConfig::default()).unwrap();
    worker.set_model(Some(model));
    // A budget already spent when generation starts: nothing is generated,
    // and the (empty) partial result is returned rather than an error.
    let mut spent = job("a.py", "def f(x):\n    y = ", 1_000);
    spent.settings.time_budget = Some(Duration::ZERO);
    let outcome = run(&worker, spent).unwrap();
    assert!(outcome.budget_exhausted);
    assert_eq!(outcome.n_generated_tokens, 0);
    assert_eq!(worker.counters().snapshot().budget_exhausted, 1);
    // A generous budget is not hit.
    let mut roomy = job("a.py", "def f(x):\n    y = ", 4);
    roomy.settings.time_budget = Some(Duration::from_secs(600));
    let outcome = run(&worker, roomy).unwrap();
    assert!(!outcome.budget_exhausted);
    assert_eq!(worker.counters().snapshot().budget_exhausted, 1);
}

#[test]
fn without_a_model_jobs_fail_cleanly() {
    let worker = Engine::spawn(EngineConfig::default()).unwrap();
    let result = run(&worker, job("a.py", "x", 1));
    assert!(matches!(result, Err(JobError::NoModel)), "{result:?}");
}

#[test]
fn session_cache_keeps_the_most_recent_within_its_limits() {
    let (_dir, model) = tiny();
    let mut cache = SessionCache::new(SessionCacheConfig {
        max_bytes: usize::MAX,
        max_sessions: 2,
    });
    for key in ["a", "b", "c"] {
        cache.put(key, model.model.new_session().unwrap());
    }
    assert_eq!(cache.keys(), vec!["b".to_string(), "c".to_string()]);
    assert!(cache.take("a").is_none());
    assert!(cache.take("b").is_some());
    assert_eq!(cache.len(), 1);

    let mut session = model.model.new_session().unwrap();
    let tokens = model.tokenizer.encode("def f(x): return x").unwrap();
    codegen_model::prefill_reusing(&model.model, &mut session, &tokens).unwrap();
    let one = session.memory_bytes();
    assert!(one > 0);
    let mut small = SessionCache::new(SessionCacheConfig {
        max_bytes: one,
        max_sessions: 8,
    });
    small.put("a", session.fork().unwrap());
    small.put("b", session);
    assert_eq!(small.keys(), vec!["b".to_string()]);
}

#[test]
fn typed_through_answers_while_the_typing_matches() {
    let mut cache = TypedThroughCache::new();
    let text = "def f(x):\n    return \n";
    let cursor = text.find("return ").unwrap() + 7;
    let doc = Arc::new(Document::new(text.to_string(), Some(Language::Python)));
    cache.remember("a", doc, cursor, "x * 2", "id1");

    let mut typed = Document::new(text.to_string(), Some(Language::Python));
    typed.apply_edit(cursor, cursor, "x ");
    let hit = cache.lookup("a", &typed, cursor + 2).unwrap();
    assert_eq!(hit.rest, "* 2");
    assert_eq!(hit.id, "id1");
    // Unchanged document, same cursor: the whole suggestion.
    let same = Document::new(text.to_string(), Some(Language::Python));
    assert_eq!(cache.lookup("a", &same, cursor).unwrap().rest, "x * 2");
    // Divergence clears the entry for good.
    let mut wrong = Document::new(text.to_string(), Some(Language::Python));
    wrong.apply_edit(cursor, cursor, "y");
    assert!(cache.lookup("a", &wrong, cursor + 1).is_none());
    assert!(cache.lookup("a", &typed, cursor + 2).is_none());
}

#[test]
fn typed_through_misses_on_edits_elsewhere_and_on_other_documents() {
    let mut cache = TypedThroughCache::new();
    let text = "a = 1\nb = \n";
    let cursor = text.find("b = ").unwrap() + 4;
    let doc = Arc::new(Document::new(text.to_string(), None));
    cache.remember("a", doc.clone(), cursor, "2", "id");
    assert!(cache.lookup("other", &doc, cursor).is_none());
    let mut elsewhere = Document::new(text.to_string(), None);
    elsewhere.apply_edit(0, 0, "#");
    assert!(cache.lookup("a", &elsewhere, cursor + 1).is_none());
    // Typing the whole suggestion leaves nothing to suggest.
    cache.remember("a", doc, cursor, "2", "id");
    let mut done = Document::new(text.to_string(), None);
    done.apply_edit(cursor, cursor, "2");
    assert!(cache.lookup("a", &done, cursor + 1).is_none());
}

fn submit_with(
    worker: &Engine,
    job: CompletionRequest,
    options: JobOptions,
) -> mpsc::Receiver<Result<RankedCompletion, JobError>> {
    let (tx, rx) = mpsc::channel();
    worker.submit_with(job, options, Box::new(move |r| tx.send(r).unwrap()));
    rx
}

#[test]
fn a_named_model_serves_the_request_and_an_unknown_one_is_an_error() {
    let (_dir, model) = tiny();
    let (_dir2, other) = tiny_with(TinyConfig {
        seed: 7,
        ..TinyConfig::default()
    });
    let other =
        Arc::new(LoadedModel::load("candidate", &other.path, &candle_core::Device::Cpu).unwrap());
    let worker = Engine::spawn(EngineConfig::default()).unwrap();
    worker.set_model(Some(model));
    worker.registry().insert(other);
    let text = "def f(x):\n    return x + 1\n\ny = ";
    let primary = run(&worker, job("a.py", text, 2)).unwrap();
    assert_eq!(primary.model, "tiny");
    let options = JobOptions {
        model: Some("candidate".into()),
        background: false,
    };
    let candidate = submit_with(&worker, job("a.py", text, 2), options.clone())
        .recv_timeout(Duration::from_secs(120))
        .unwrap()
        .unwrap();
    assert_eq!(candidate.model, "candidate");
    // The same document on another model gets a session of its own: the
    // primary's KV cache is not reused for the candidate's weights.
    assert_eq!(candidate.n_reused_tokens, 0);
    let again = submit_with(&worker, job("a.py", text, 2), options)
        .recv_timeout(Duration::from_secs(120))
        .unwrap()
        .unwrap();
    assert!(again.n_reused_tokens + 1 >= again.n_prompt_tokens);
    let primary_again = run(&worker, job("a.py", text, 2)).unwrap();
    assert!(primary_again.n_reused_tokens + 1 >= primary_again.n_prompt_tokens);

    let missing = submit_with(
        &worker,
        job("a.py", text, 2),
        JobOptions {
            model: Some("nope".into()),
            background: false,
        },
    )
    .recv_timeout(Duration::from_secs(120))
    .unwrap();
    assert!(
        matches!(&missing, Err(JobError::ModelNotLoaded(name)) if name == "nope"),
        "{:?}",
        missing.map(|o| o.model)
    );
}

#[test]
fn a_background_job_waits_for_the_queue_and_yields_to_foreground_requests() {
    // A long context, so that the running background job below (prefilled
    // one token at a time) lasts long enough for the foreground one to
    // arrive while it runs.
    let (_dir, model) = tiny_with(TinyConfig {
        context_length: 8192,
        ..TinyConfig::default()
    });
    let worker = step_by_step_worker();
    worker.set_model(Some(model));
    let long = format!("{}y = ", "z = z + 1  # step\n".repeat(200));
    let background = JobOptions {
        model: None,
        background: true,
    };
    // A background job queued with foreground ones must not start before
    // the foreground queue is empty (all three are queued while the worker
    // is held).
    let release = hold_worker(&worker);
    let (order_tx, order_rx) = mpsc::channel();
    let tx = order_tx.clone();
    worker.submit(
        job("fg1.py", &long, 2),
        Box::new(move |r| tx.send(("fg1", r.is_ok())).unwrap()),
    );
    let tx = order_tx.clone();
    worker.submit_with(
        job("bg.py", "x = 1\ny = ", 2),
        background.clone(),
        Box::new(move |r| tx.send(("bg", r.is_ok())).unwrap()),
    );
    let tx = order_tx.clone();
    worker.submit(
        job("fg2.py", "a = 2\nb = ", 2),
        Box::new(move |r| tx.send(("fg2", r.is_ok())).unwrap()),
    );
    drop(release);
    let order: Vec<_> = (0..3)
        .map(|_| order_rx.recv_timeout(Duration::from_secs(120)).unwrap())
        .collect();
    assert_eq!(order, vec![("fg1", true), ("fg2", true), ("bg", true)]);

    // A running background job is cancelled when a foreground one arrives.
    let bg = submit_with(&worker, job("bg.py", &long, 400), background);
    let waited = std::time::Instant::now();
    while worker.running_background() != Some(true) {
        assert!(waited.elapsed() < Duration::from_secs(60), "never started");
        std::thread::sleep(Duration::from_micros(200));
    }
    let fg = run(&worker, job("fg3.py", "c = 3\nd = ", 2));
    assert!(fg.is_ok());
    let bg = bg.recv_timeout(Duration::from_secs(120)).unwrap();
    assert!(
        matches!(bg, Err(JobError::Cancelled)),
        "{:?}",
        bg.map(|o| o.n_generated_tokens)
    );
}
