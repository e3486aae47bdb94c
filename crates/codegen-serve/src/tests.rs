//! The server over real HTTP on loopback, with a tiny random-weight model.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use candle_core::Device;
use codegen_engine::LoadedModel;
use codegen_model::testing::{write_tiny_gguf, TinyConfig};
use codegen_model::{generate, GenerateConfig, PromptPiece};
use serde_json::{json, Value};

use crate::text::StopText;
use crate::{hash_key, listen_addr, serve, App, KeyStore, Limits, ServeConfig};

struct Fixture {
    _dir: tempfile::TempDir,
    model: Arc<LoadedModel>,
}

fn fixture(cfg: TinyConfig) -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("tiny.gguf");
    write_tiny_gguf(&path, &cfg).expect("write tiny gguf");
    let model = LoadedModel::load("tiny", &path, &Device::Cpu).expect("load tiny");
    Fixture {
        _dir: dir,
        model: Arc::new(model),
    }
}

/// One tiny model for most tests: big enough that a long generation spans
/// many steps while other requests arrive.
fn model() -> Arc<LoadedModel> {
    static MODEL: OnceLock<Fixture> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            fixture(TinyConfig {
                n_layers: 4,
                hidden_size: 256,
                n_heads: 4,
                n_kv_heads: 2,
                ffn_size: 512,
                context_length: 2048,
                ..TinyConfig::default()
            })
        })
        .model
        .clone()
}

/// A larger random model whose long generations outlast a client's
/// disconnection by far.
fn slow_model() -> Arc<LoadedModel> {
    static MODEL: OnceLock<Fixture> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            fixture(TinyConfig {
                n_layers: 8,
                hidden_size: 512,
                n_heads: 8,
                n_kv_heads: 2,
                ffn_size: 2048,
                context_length: 2048,
                ..TinyConfig::default()
            })
        })
        .model
        .clone()
}

struct Server {
    base: String,
    _runtime: tokio::runtime::Runtime,
}

fn start_with(keys: Option<KeyStore>, config: ServeConfig) -> Server {
    start_model(model(), keys, config)
}

fn start_model(model: Arc<LoadedModel>, keys: Option<KeyStore>, config: ServeConfig) -> Server {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let app = App::new(model, keys, config).expect("app");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    runtime.spawn(serve(listener, app));
    Server {
        base: format!("http://{addr}"),
        _runtime: runtime,
    }
}

/// A server that allows long generations.
fn start() -> Server {
    start_with(
        None,
        ServeConfig {
            limits: Limits {
                max_tokens: 2048,
                ..Limits::default()
            },
            ..ServeConfig::default()
        },
    )
}

/// Status, headers we look at, and the JSON body of a request.
struct Reply {
    status: u16,
    retry_after: Option<String>,
    body: Value,
}

fn call(server: &Server, method: &str, path: &str, key: Option<&str>, body: Option<&str>) -> Reply {
    let mut req = ureq::request(method, &format!("{}{path}", server.base));
    if let Some(key) = key {
        req = req.set("Authorization", &format!("Bearer {key}"));
    }
    let result = match body {
        Some(body) => req
            .set("Content-Type", "application/json")
            .send_string(body),
        None => req.call(),
    };
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("request failed: {e}"),
    };
    let status = response.status();
    let retry_after = response.header("Retry-After").map(str::to_string);
    let text = response.into_string().expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Reply {
        status,
        retry_after,
        body,
    }
}

fn post(server: &Server, path: &str, body: Value) -> Reply {
    call(server, "POST", path, None, Some(&body.to_string()))
}

/// What the library's own generation loop writes for `pieces`, greedy.
fn reference(pieces: &[PromptPiece], max_tokens: usize) -> String {
    let model = model();
    let prompt = model.tokenizer.encode_pieces(pieces).expect("encode");
    let mut session = model.model.new_session().expect("session");
    let config = GenerateConfig {
        max_tokens,
        stop_tokens: model.tokenizer.default_stop_tokens(),
        ..GenerateConfig::default()
    };
    generate(
        &model.model,
        &model.tokenizer,
        &mut session,
        &prompt,
        &config,
        None,
        &mut |_| true,
    )
    .expect("generate")
    .text
}

fn text_of(reply: &Reply, idx: usize) -> String {
    reply.body["choices"][idx]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text in {}", reply.body))
        .to_string()
}

fn metric(server: &Server, line_start: &str) -> f64 {
    let reply = call(server, "GET", "/metrics", None, None);
    let Value::String(text) = reply.body else {
        panic!("metrics are text");
    };
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {line_start} in\n{text}"))
}

#[test]
fn completion_matches_the_generation_loop() {
    let server = start();
    let reply = post(
        &server,
        "/v1/completions",
        json!({"prompt": "def add(a, b):", "max_tokens": 24, "temperature": 0}),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        text_of(&reply, 0),
        reference(&[PromptPiece::Text("def add(a, b):".into())], 24)
    );
    assert_eq!(reply.body["object"], "text_completion");
    assert_eq!(reply.body["model"], "tiny");
    let usage = &reply.body["usage"];
    assert_eq!(
        usage["prompt_tokens"].as_u64(),
        Some("def add(a, b):".len() as u64)
    );
    assert!(usage["completion_tokens"]
        .as_u64()
        .is_some_and(|n| n > 0 && n <= 24));
}

#[test]
fn suffix_makes_a_fill_in_the_middle_prompt_and_infill_agrees() {
    let server = start();
    let model = model();
    let special = model.tokenizer.special();
    let pieces = [
        PromptPiece::Token(special.fim_prefix.expect("fim")),
        PromptPiece::Text("x = ".into()),
        PromptPiece::Token(special.fim_suffix.expect("fim")),
        PromptPiece::Text("\nprint(x)\n".into()),
        PromptPiece::Token(special.fim_middle.expect("fim")),
    ];
    let expected = reference(&pieces, 16);
    let reply = post(
        &server,
        "/v1/completions",
        json!({"prompt": "x = ", "suffix": "\nprint(x)\n", "max_tokens": 16, "temperature": 0}),
    );
    assert_eq!(text_of(&reply, 0), expected);
    // The same prompt rendered by the client, special tokens as text.
    let rendered = post(
        &server,
        "/v1/completions",
        json!({"prompt": "<|fim_prefix|>x = <|fim_suffix|>\nprint(x)\n<|fim_middle|>", "max_tokens": 16, "temperature": 0}),
    );
    assert_eq!(text_of(&rendered, 0), expected);
    let infill = post(
        &server,
        "/infill",
        json!({"input_prefix": "x = ", "input_suffix": "\nprint(x)\n", "n_predict": 16, "temperature": 0}),
    );
    assert_eq!(infill.status, 200, "{}", infill.body);
    assert_eq!(infill.body["content"].as_str(), Some(expected.as_str()));
    assert_eq!(infill.body["stop"], true);
    // llama-server's /completion parses special-token text in the prompt.
    let completion = post(
        &server,
        "/completion",
        json!({"prompt": "<|fim_prefix|>x = <|fim_suffix|>\nprint(x)\n<|fim_middle|>", "n_predict": 16, "temperature": 0}),
    );
    assert_eq!(completion.body["content"].as_str(), Some(expected.as_str()));
}

#[test]
fn infill_puts_extra_files_before_the_prompt() {
    let server = start();
    let plain = post(
        &server,
        "/infill",
        json!({"input_prefix": "y = ", "input_suffix": "\n", "n_predict": 12, "temperature": 0}),
    );
    let with_extra = post(
        &server,
        "/infill",
        json!({"input_prefix": "y = ", "input_suffix": "\n", "n_predict": 12, "temperature": 0,
               "input_extra": [{"filename": "a.py", "text": "Z = 1\n"}]}),
    );
    assert_eq!(with_extra.status, 200);
    let evaluated = |r: &Reply| r.body["tokens_evaluated"].as_u64().unwrap_or(0);
    assert!(
        evaluated(&with_extra) > evaluated(&plain) + "a.py\nZ = 1\n".len() as u64,
        "{} vs {}",
        with_extra.body,
        plain.body
    );
}

#[test]
fn concurrent_requests_decode_in_one_batch_and_match_solo_runs() {
    let server = Arc::new(start());
    // A long request keeps the batch busy while the others arrive.
    let holder = {
        let server = server.clone();
        std::thread::spawn(move || {
            post(
                &server,
                "/v1/completions",
                json!({"prompt": "# long\n", "max_tokens": 1500, "temperature": 0}),
            )
        })
    };
    while metric(&server, "codegen_decode_steps_total") < 1.0 {
        std::thread::sleep(Duration::from_millis(2));
    }
    let prompts = ["import os\n", "class A:\n", "for i in range(3):\n"];
    let workers: Vec<_> = prompts
        .iter()
        .map(|prompt| {
            let server = server.clone();
            let prompt = prompt.to_string();
            std::thread::spawn(move || {
                let reply = post(
                    &server,
                    "/v1/completions",
                    json!({"prompt": prompt, "max_tokens": 40, "temperature": 0}),
                );
                (prompt, reply)
            })
        })
        .collect();
    for worker in workers {
        let (prompt, reply) = worker.join().expect("worker");
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(
            text_of(&reply, 0),
            reference(&[PromptPiece::Text(prompt)], 40)
        );
    }
    let holder = holder.join().expect("holder");
    assert_eq!(
        text_of(&holder, 0),
        reference(&[PromptPiece::Text("# long\n".into())], 1500)
    );
    // Some decode step carried more than one request's sample.
    let single = metric(&server, "codegen_batch_size_bucket{le=\"1\"}");
    let all = metric(&server, "codegen_batch_size_count");
    assert!(
        single < all,
        "every step had one sample ({single} of {all})"
    );
}

#[test]
fn n_samples_share_one_prompt_and_seeded_sampling_repeats() {
    let server = start();
    let body =
        json!({"prompt": "def f():", "max_tokens": 12, "temperature": 0.9, "n": 3, "seed": 5});
    let a = post(&server, "/v1/completions", body.clone());
    let b = post(&server, "/v1/completions", body);
    assert_eq!(a.body["choices"].as_array().map(Vec::len), Some(3));
    for idx in 0..3 {
        assert_eq!(text_of(&a, idx), text_of(&b, idx));
        assert_eq!(a.body["choices"][idx]["index"], idx);
    }
    // The second request found the prompt in the cache.
    assert!(
        b.body["usage"]["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "{}",
        b.body
    );
}

#[test]
fn stop_strings_cut_the_text() {
    let server = start();
    let full = text_of(
        &post(
            &server,
            "/v1/completions",
            json!({"prompt": "abc", "max_tokens": 30, "temperature": 0}),
        ),
        0,
    );
    // A stop string from the middle of what the model writes.
    let chars: Vec<char> = full.chars().collect();
    assert!(chars.len() >= 6, "too short: {full:?}");
    let stop: String = chars[3..5].iter().collect();
    let cut = post(
        &server,
        "/v1/completions",
        json!({"prompt": "abc", "max_tokens": 30, "temperature": 0, "stop": stop}),
    );
    let expected = &full[..full.find(&stop).expect("stop in text")];
    assert_eq!(text_of(&cut, 0), expected);
    assert_eq!(cut.body["choices"][0]["finish_reason"], "stop");
}

#[test]
fn logprobs_report_the_chosen_tokens() {
    let server = start();
    let reply = post(
        &server,
        "/v1/completions",
        json!({"prompt": "q", "max_tokens": 8, "temperature": 0, "logprobs": 2}),
    );
    let logprobs = &reply.body["choices"][0]["logprobs"];
    let tokens = logprobs["tokens"].as_array().expect("tokens");
    assert!(!tokens.is_empty());
    assert_eq!(
        Some(tokens.len() as u64),
        reply.body["usage"]["completion_tokens"].as_u64()
    );
    for (idx, token) in tokens.iter().enumerate() {
        let lp = logprobs["token_logprobs"][idx].as_f64().expect("logprob");
        assert!(lp <= 0.0);
        // Greedy: no alternative is more likely than the chosen token (two
        // tokens with the same text share one entry).
        let top = logprobs["top_logprobs"][idx].as_object().expect("top");
        assert!(top.len() <= 2 && !top.is_empty());
        let best = top
            .values()
            .filter_map(Value::as_f64)
            .fold(f64::MIN, f64::max);
        assert!(best <= lp + 1e-4, "{token}: {best} vs {lp}");
    }
}

/// Reads server-sent events until `[DONE]` or the end of the stream.
fn read_events(reader: impl std::io::Read) -> Vec<String> {
    let mut events = Vec::new();
    for line in BufReader::new(reader).lines() {
        let line = line.expect("line");
        if let Some(data) = line.strip_prefix("data: ") {
            events.push(data.to_string());
            if data == "[DONE]" {
                break;
            }
        }
    }
    events
}

#[test]
fn streamed_completion_has_the_same_text() {
    let server = start();
    let body = json!({"prompt": "while True:", "max_tokens": 20, "temperature": 0});
    let whole = text_of(&post(&server, "/v1/completions", body.clone()), 0);
    let mut streamed_body = body;
    streamed_body["stream"] = json!(true);
    let response = ureq::post(&format!("{}/v1/completions", server.base))
        .send_string(&streamed_body.to_string())
        .expect("stream");
    assert_eq!(response.header("Content-Type"), Some("text/event-stream"));
    let events = read_events(response.into_reader());
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let mut text = String::new();
    let mut finish = None;
    for event in &events[..events.len() - 1] {
        let chunk: Value = serde_json::from_str(event).expect("chunk json");
        text.push_str(chunk["choices"][0]["text"].as_str().unwrap_or(""));
        if let Some(f) = chunk["choices"][0]["finish_reason"].as_str() {
            finish = Some(f.to_string());
        }
    }
    assert_eq!(text, whole);
    assert!(finish.is_some());

    let infill = ureq::post(&format!("{}/infill", server.base))
        .send_string(&json!({"input_prefix": "a", "input_suffix": "b", "n_predict": 6, "temperature": 0, "stream": true}).to_string())
        .expect("infill stream");
    let events = read_events(infill.into_reader());
    let last: Value = serde_json::from_str(events.last().expect("events")).expect("json");
    assert_eq!(last["stop"], true);
}

#[test]
fn a_disconnected_stream_is_cancelled() {
    let server = start_model(
        slow_model(),
        None,
        ServeConfig {
            limits: Limits {
                max_tokens: 2048,
                ..Limits::default()
            },
            ..ServeConfig::default()
        },
    );
    let body =
        json!({"prompt": "# cancel me\n", "max_tokens": 1800, "temperature": 0, "stream": true});
    let response = ureq::post(&format!("{}/v1/completions", server.base))
        .send_string(&body.to_string())
        .expect("stream");
    let mut reader = BufReader::new(response.into_reader());
    let mut line = String::new();
    while !line.starts_with("data: ") {
        line.clear();
        reader.read_line(&mut line).expect("first event");
    }
    drop(reader);
    let waited = Instant::now();
    while metric(&server, "codegen_cancelled_requests_total") < 1.0 {
        assert!(
            waited.elapsed() < Duration::from_secs(60),
            "never cancelled"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // It stopped early rather than writing all its tokens.
    assert!(metric(&server, "codegen_generated_tokens_total") < 1800.0);
    // And the server goes on serving.
    let reply = post(
        &server,
        "/v1/completions",
        json!({"prompt": "ok", "max_tokens": 2}),
    );
    assert_eq!(reply.status, 200);
}

#[track_caller]
fn check_error(reply: &Reply, status: u16, message_part: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    let message = reply.body["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no JSON error in {}", reply.body));
    assert!(
        message.contains(message_part),
        "{message:?} lacks {message_part:?}"
    );
    assert!(reply.body["error"]["type"].is_string());
}

#[test]
fn bad_requests_get_json_errors_and_the_server_keeps_serving() {
    let server = start_with(
        None,
        ServeConfig {
            limits: Limits {
                max_request_bytes: 4096,
                max_tokens: 100,
                ..Limits::default()
            },
            ..ServeConfig::default()
        },
    );
    let raw = |body: &str| call(&server, "POST", "/v1/completions", None, Some(body));
    check_error(&raw("{not json"), 400, "not valid JSON");
    check_error(&raw(r#"{"prompt": 3}"#), 400, "not valid JSON");
    check_error(&raw(r#"{"prompt": "a", "n": 0}"#), 400, "n must be");
    check_error(
        &raw(r#"{"prompt": "a", "temperature": 7}"#),
        400,
        "temperature",
    );
    check_error(
        &raw(r#"{"prompt": "a", "max_tokens": 101}"#),
        400,
        "between 1 and 100",
    );
    check_error(&raw(r#"{"prompt": "a", "model": "gpt-9"}"#), 404, "gpt-9");
    let long = "x".repeat(3000);
    check_error(
        &raw(&json!({"prompt": long}).to_string()),
        400,
        "context is 2048 tokens",
    );
    let huge = "x".repeat(5000);
    check_error(
        &raw(&json!({"prompt": huge}).to_string()),
        413,
        "4096 bytes",
    );
    check_error(
        &call(&server, "GET", "/nowhere", None, None),
        404,
        "no such endpoint",
    );
    let ok = raw(r#"{"prompt": "a", "max_tokens": 2, "model": "tiny"}"#);
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(
        metric(
            &server,
            "codegen_requests_total{endpoint=\"/v1/completions\",status=\"400\"}"
        ),
        6.0
    );
}

fn write_keys(path: &Path, entries: &[(&str, &str, Option<u32>)]) {
    let mut text = String::new();
    for (name, key, rpm) in entries {
        text.push_str(&format!(
            "[[keys]]\nname = \"{name}\"\nsha256 = \"{}\"\n",
            hash_key(key)
        ));
        if let Some(rpm) = rpm {
            text.push_str(&format!("requests_per_minute = {rpm}\n"));
        }
    }
    std::fs::write(path, text).expect("write keys");
}

#[test]
fn keys_are_checked_reloaded_and_rate_limited() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("keys.toml");
    write_keys(
        &path,
        &[
            ("alice", "alice-secret", None),
            ("bob", "bob-secret", Some(2)),
        ],
    );
    assert!(!std::fs::read_to_string(&path)
        .expect("read")
        .contains("alice-secret"));
    let keys = KeyStore::open(&path, None).expect("keys");
    let server = start_with(Some(keys), ServeConfig::default());
    let body = json!({"prompt": "a", "max_tokens": 1}).to_string();
    let send = |key: Option<&str>| call(&server, "POST", "/v1/completions", key, Some(&body));
    check_error(&send(None), 401, "API key is required");
    check_error(&send(Some("guess")), 401, "not valid");
    assert_eq!(send(Some("alice-secret")).status, 200);
    assert_eq!(call(&server, "GET", "/v1/models", None, None).status, 401);
    assert_eq!(call(&server, "GET", "/health", None, None).status, 200);
    // Bob may send two requests a minute.
    assert_eq!(send(Some("bob-secret")).status, 200);
    assert_eq!(send(Some("bob-secret")).status, 200);
    let limited = send(Some("bob-secret"));
    check_error(&limited, 429, "retry after");
    let retry: u64 = limited
        .retry_after
        .as_deref()
        .and_then(|s| s.parse().ok())
        .expect("Retry-After");
    assert!((1..=30).contains(&retry), "{retry}");
    // Alice is not slowed down by Bob.
    assert_eq!(send(Some("alice-secret")).status, 200);
    // A new file: alice's key is gone, carol's works.
    std::thread::sleep(Duration::from_millis(20));
    write_keys(&path, &[("carol", "carol-secret", None)]);
    check_error(&send(Some("alice-secret")), 401, "not valid");
    assert_eq!(send(Some("carol-secret")).status, 200);
    // A broken edit keeps the keys in force.
    std::fs::write(&path, "[[keys]]\nname = 1\n").expect("write");
    assert_eq!(send(Some("carol-secret")).status, 200);
}

#[test]
fn key_files_with_plain_keys_are_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("keys.toml");
    std::fs::write(&path, "[[keys]]\nname = \"a\"\nsha256 = \"my-secret\"\n").expect("write");
    let err = KeyStore::open(&path, None).err().expect("refused");
    assert!(err.to_string().contains("64 hex digits"), "{err}");
}

#[test]
fn models_health_and_metrics() {
    let server = start();
    let models = call(&server, "GET", "/v1/models", None, None);
    assert_eq!(models.body["data"][0]["id"], "tiny");
    assert_eq!(
        call(&server, "GET", "/health", None, None).body["status"],
        "ok"
    );
    post(
        &server,
        "/v1/completions",
        json!({"prompt": "m", "max_tokens": 3}),
    );
    for name in [
        "codegen_requests_total{endpoint=\"/v1/completions\",status=\"200\"}",
        "codegen_generated_tokens_total",
        "codegen_prompt_tokens_total",
        "codegen_queue_depth",
        "codegen_batch_size_count",
        "codegen_request_duration_seconds_count{endpoint=\"/v1/completions\"}",
        "codegen_time_to_first_token_seconds_count",
    ] {
        assert!(metric(&server, name) >= 0.0);
    }
    assert!(metric(&server, "codegen_generated_tokens_total") >= 1.0);
    // The prompt's prefill ran as at least one timed chunk.
    assert!(metric(&server, "codegen_prefill_chunk_seconds_count") >= 1.0);
    assert!(metric(&server, "codegen_prefill_chunk_seconds_sum") > 0.0);
}

#[test]
fn without_keys_only_loopback_is_served() {
    let any: SocketAddr = "0.0.0.0:8080".parse().expect("addr");
    let (addr, note) = listen_addr(any, false);
    assert_eq!(addr, "127.0.0.1:8080".parse::<SocketAddr>().expect("addr"));
    assert!(note.contains("loopback only"), "{note}");
    assert_eq!(listen_addr(any, true).0, any);
    let local: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    assert_eq!(listen_addr(local, false).0, local);
}

#[test]
fn stop_text_cuts_across_tokens_and_waits_for_whole_characters() {
    let mut text = StopText::new(vec!["\n\n".into()]);
    assert_eq!(text.push(b"ab\n"), ("ab".into(), false));
    assert_eq!(text.push(b"\ncd"), (String::new(), true));
    let mut text = StopText::new(Vec::new());
    let euro = "€".as_bytes();
    assert_eq!(text.push(&euro[..2]), (String::new(), false));
    assert_eq!(text.push(&euro[2..]), ("€".into(), false));
    assert_eq!(text.flush(), "");
}
