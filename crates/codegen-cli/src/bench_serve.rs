//! `codegen bench serve`: N editor users typing against `codegen serve` (or
//! any OpenAI-compatible server): each sends fill-in-the-middle requests
//! whose prefix grows by a few characters at a time, as an editor does while
//! its user types, back to back. Reports throughput, latency percentiles
//! and errors per number of users.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use codegen_serve::{App, SchedulerConfig, ServeConfig};
use codegen_store::Store;
use serde::Serialize;
use serde_json::{json, Value};

use crate::ModelArgs;

#[derive(Args, Debug)]
pub struct ServeBenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Concurrent users; a list (1,4,8) runs one round per entry.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub users: Vec<usize>,
    /// Seconds per round (or a duration: 30s, 1m).
    #[arg(long, value_parser = crate::parse_seconds, default_value = "30")]
    pub duration: f64,
    /// Tokens per completion.
    #[arg(long, default_value_t = 32)]
    pub max_tokens: usize,
    /// Sampling temperature of the requests.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// A running server to load (its base URL); default: start `codegen
    /// serve` in this process on a loopback port with --model.
    #[arg(long)]
    pub url: Option<String>,
    /// API key for --url.
    #[arg(long)]
    pub key: Option<String>,
    /// Model id to send with --url (default: none).
    #[arg(long)]
    pub model_id: Option<String>,
    /// Most samples decoding together in the in-process server.
    #[arg(long, default_value_t = 16)]
    pub max_batch: usize,
    /// One JSON document on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Source files the simulated users edit: real files of this repository.
const FILES: [(&str, &str); 2] = [
    (
        "isolate.py",
        include_str!("../../codegen-sandbox/src/isolate.py"),
    ),
    (
        "sampler.rs",
        include_str!("../../codegen-model/src/sampler.rs"),
    ),
];

/// Prefix and suffix sizes an editor sends (bytes; about 3 to 4 per token):
/// the editor's defaults are 1024 prefix and 64 suffix tokens
/// (`maxPrefixTokens`, `maxSuffixTokens`); the prefix here is shorter so a
/// user's jump to a new place costs a moderate prefill.
const MAX_PREFIX_BYTES: usize = 1500;
const MAX_SUFFIX_BYTES: usize = 240;

#[derive(Debug, Serialize)]
struct Round {
    users: usize,
    duration_secs: f64,
    requests: usize,
    errors: usize,
    first_error: Option<String>,
    completion_tokens: usize,
    prompt_tokens: usize,
    cached_prompt_tokens: usize,
    /// Generated tokens per second, all users together.
    decode_tokens_per_sec: f64,
    requests_per_sec: f64,
    latency_p50_ms: f64,
    latency_p95_ms: f64,
    latency_p99_ms: f64,
    latency_mean_ms: f64,
    /// Where the server's time went, from its `/metrics` before and after
    /// the round (a codegen server only; `None` for other engines).
    server: Option<ServerTime>,
}

/// A round's share of the server's work, from `/metrics` counters (the
/// scrapes bracket the round, so a request or two at the edges may count).
#[derive(Debug, Serialize)]
struct ServerTime {
    decode_steps: u64,
    /// Samples per batched decode step, on average.
    mean_rows_per_step: f64,
    mean_step_ms: f64,
    /// Rows decoded per second of decode steps, all users together: the
    /// decode phase's throughput, prefill time left out (unlike
    /// `Round::decode_tokens_per_sec`, which counts the whole round).
    decode_step_tokens_per_sec: f64,
    /// Seconds in decode steps and in prefill chunks' forward passes.
    decode_secs: f64,
    prefill_secs: f64,
    prefilled_tokens: u64,
    prefill_tokens_per_sec: f64,
}

/// The plain `name value` samples of a Prometheus text page.
fn scrape(agent: &ureq::Agent, base: &str, key: Option<&str>) -> Option<HashMap<String, f64>> {
    let mut req = agent.get(&format!("{}/metrics", base.trim_end_matches('/')));
    if let Some(key) = key {
        req = req.set("Authorization", &format!("Bearer {key}"));
    }
    let text = req.call().ok()?.into_string().ok()?;
    let samples = parse_samples(&text);
    samples
        .contains_key("codegen_decode_steps_total")
        .then_some(samples)
}

/// Unlabelled samples (`name value`) of a Prometheus text page.
fn parse_samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.contains('{'))
        .filter_map(|l| {
            let (name, value) = l.split_once(' ')?;
            Some((name.to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

fn server_time(before: &HashMap<String, f64>, after: &HashMap<String, f64>) -> ServerTime {
    let d = |name: &str| {
        (after.get(name).copied().unwrap_or(0.0) - before.get(name).copied().unwrap_or(0.0))
            .max(0.0)
    };
    let steps = d("codegen_decode_step_seconds_count");
    let decode_secs = d("codegen_decode_step_seconds_sum");
    let prefill_secs = d("codegen_prefill_chunk_seconds_sum");
    let prefilled = d("codegen_prefilled_tokens_total");
    ServerTime {
        decode_steps: steps as u64,
        mean_rows_per_step: if steps > 0.0 {
            d("codegen_batch_size_sum") / steps
        } else {
            0.0
        },
        mean_step_ms: if steps > 0.0 {
            1000.0 * decode_secs / steps
        } else {
            0.0
        },
        decode_step_tokens_per_sec: if decode_secs > 0.0 {
            d("codegen_batch_size_sum") / decode_secs
        } else {
            0.0
        },
        decode_secs,
        prefill_secs,
        prefilled_tokens: prefilled as u64,
        prefill_tokens_per_sec: if prefill_secs > 0.0 {
            prefilled / prefill_secs
        } else {
            0.0
        },
    }
}

/// A user's typing: a region of a file is being written again; the cursor
/// moves through it a few characters per request.
struct Typist {
    text: &'static str,
    rng: u64,
    start: usize,
    end: usize,
    cursor: usize,
    prefix_start: usize,
}

impl Typist {
    fn new(user: usize) -> Typist {
        let text = FILES[user % FILES.len()].1;
        let mut typist = Typist {
            text,
            rng: 0x9E37_79B9_7F4A_7C15 ^ (user as u64 + 1).wrapping_mul(0x2545_F491_4F6C_DD1D),
            start: 0,
            end: 0,
            cursor: 0,
            prefix_start: 0,
        };
        typist.new_region();
        typist
    }

    fn next_rand(&mut self) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn boundary(&self, mut at: usize) -> usize {
        at = at.min(self.text.len());
        while !self.text.is_char_boundary(at) {
            at -= 1;
        }
        at
    }

    /// A few lines somewhere in the file, to be typed again.
    fn new_region(&mut self) {
        let lines: Vec<usize> = std::iter::once(0)
            .chain(self.text.match_indices('\n').map(|(i, _)| i + 1))
            .filter(|i| *i < self.text.len())
            .collect();
        let first = (self.next_rand() as usize) % lines.len().max(1);
        let n_lines = 1 + (self.next_rand() as usize) % 4;
        self.start = lines.get(first).copied().unwrap_or(0);
        self.end = lines
            .get(first + n_lines)
            .copied()
            .unwrap_or(self.text.len());
        self.cursor = self.start;
        // Fixed while this region is typed, so the prompt's start stays put.
        let from = self.boundary(self.start.saturating_sub(MAX_PREFIX_BYTES));
        self.prefix_start = self.text[from..self.start]
            .find('\n')
            .map_or(from, |i| from + i + 1)
            .min(self.start);
    }

    /// The next request's prefix and suffix.
    fn next(&mut self) -> (String, String) {
        let step = 1 + (self.next_rand() as usize) % 6;
        self.cursor = self.boundary(self.cursor + step);
        if self.cursor >= self.end {
            self.new_region();
        }
        let prefix = &self.text[self.prefix_start..self.cursor];
        let suffix_end = self.boundary(self.end + MAX_SUFFIX_BYTES);
        let suffix = &self.text[self.end..suffix_end];
        (prefix.to_string(), suffix.to_string())
    }
}

struct Outcome {
    latency: Duration,
    completion_tokens: usize,
    prompt_tokens: usize,
    cached_tokens: usize,
}

fn one_request(
    agent: &ureq::Agent,
    url: &str,
    key: Option<&str>,
    body: &Value,
) -> Result<Outcome, String> {
    let started = Instant::now();
    let mut req = agent.post(url);
    if let Some(key) = key {
        req = req.set("Authorization", &format!("Bearer {key}"));
    }
    let reply: Value = match req.send_json(body) {
        Ok(r) => r.into_json().map_err(|e| format!("bad reply: {e}"))?,
        Err(ureq::Error::Status(code, r)) => {
            return Err(format!(
                "HTTP {code}: {}",
                r.into_string().unwrap_or_default()
            ))
        }
        Err(e) => return Err(e.to_string()),
    };
    let usage = &reply["usage"];
    let count = |v: &Value| v.as_u64().unwrap_or(0) as usize;
    Ok(Outcome {
        latency: started.elapsed(),
        completion_tokens: count(&usage["completion_tokens"]),
        prompt_tokens: count(&usage["prompt_tokens"]),
        cached_tokens: count(&usage["prompt_tokens_details"]["cached_tokens"]),
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn run_round(args: &ServeBenchArgs, base: &str, users: usize, round: usize) -> Round {
    let url = format!("{}/v1/completions", base.trim_end_matches('/'));
    let duration = Duration::from_secs_f64(args.duration);
    let stop = Arc::new(AtomicBool::new(false));
    // Every user first opens its file (one request, not counted: an editor
    // has its prompt cached by the time its user types); then all start.
    let ready = Arc::new(std::sync::Barrier::new(users + 1));
    let handles: Vec<_> = (0..users)
        .map(|user| {
            let url = url.clone();
            let key = args.key.clone();
            let model = args.model_id.clone();
            let (max_tokens, temperature) = (args.max_tokens, args.temperature);
            let stop = stop.clone();
            let ready = ready.clone();
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new()
                    .timeout(Duration::from_secs(600))
                    .build();
                // Different rounds type in different places.
                let mut typist = Typist::new(user + 97 * round);
                let mut outcomes = Vec::new();
                let request = |typist: &mut Typist| {
                    let (prefix, suffix) = typist.next();
                    let mut body = json!({
                        "prompt": prefix,
                        "suffix": suffix,
                        "max_tokens": max_tokens,
                        "temperature": temperature,
                    });
                    if let Some(model) = &model {
                        body["model"] = json!(model);
                    }
                    one_request(&agent, &url, key.as_deref(), &body)
                };
                let warmup = request(&mut typist);
                ready.wait();
                if let Err(e) = warmup {
                    outcomes.push(Err(format!("warm-up request: {e}")));
                }
                let deadline = Instant::now() + duration;
                while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                    outcomes.push(request(&mut typist));
                }
                outcomes
            })
        })
        .collect();
    let scraper = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    ready.wait();
    let before = scrape(&scraper, base, args.key.as_deref());
    let started = Instant::now();
    let mut outcomes = Vec::new();
    for handle in handles {
        match handle.join() {
            Ok(o) => outcomes.extend(o),
            Err(_) => outcomes.push(Err("a user thread panicked".into())),
        }
    }
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let server = before
        .zip(scrape(&scraper, base, args.key.as_deref()))
        .map(|(before, after)| server_time(&before, &after));
    let mut latencies: Vec<f64> = outcomes
        .iter()
        .filter_map(|o| o.as_ref().ok())
        .map(|o| o.latency.as_secs_f64() * 1000.0)
        .collect();
    latencies.sort_by(f64::total_cmp);
    let ok: Vec<&Outcome> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
    let completion_tokens = ok.iter().map(|o| o.completion_tokens).sum();
    Round {
        users,
        duration_secs: elapsed,
        requests: outcomes.len(),
        errors: outcomes.iter().filter(|o| o.is_err()).count(),
        first_error: outcomes.iter().find_map(|o| o.as_ref().err().cloned()),
        completion_tokens,
        prompt_tokens: ok.iter().map(|o| o.prompt_tokens).sum(),
        cached_prompt_tokens: ok.iter().map(|o| o.cached_tokens).sum(),
        decode_tokens_per_sec: completion_tokens as f64 / elapsed,
        requests_per_sec: outcomes.len() as f64 / elapsed,
        latency_p50_ms: percentile(&latencies, 50.0),
        latency_p95_ms: percentile(&latencies, 95.0),
        latency_p99_ms: percentile(&latencies, 99.0),
        latency_mean_ms: if latencies.is_empty() {
            0.0
        } else {
            latencies.iter().sum::<f64>() / latencies.len() as f64
        },
        server,
    }
}

pub fn run(args: ServeBenchArgs) -> Result<()> {
    if args.users.is_empty() || args.users.contains(&0) {
        bail!("--users needs positive numbers");
    }
    crate::configure_runtime(args.model.threads);
    // The in-process server, unless --url names one.
    let mut _runtime = None;
    let mut model_name = args.model_id.clone().unwrap_or_default();
    let base = match &args.url {
        Some(url) => url.clone(),
        None => {
            let device = args.model.device.kind().open()?;
            let mut model_args = args.model.clone();
            model_args.draft = Some("none".into());
            let model = crate::input::load_model(&Store::from_env(), &model_args, &device)?;
            model_name = model.name.clone();
            let app = App::new(
                Arc::new(model),
                None,
                ServeConfig {
                    scheduler: SchedulerConfig {
                        max_batch: args.max_batch.max(1),
                        ..SchedulerConfig::default()
                    },
                    ..ServeConfig::default()
                },
            )?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            let listener = runtime
                .block_on(tokio::net::TcpListener::bind(SocketAddr::from((
                    [127, 0, 0, 1],
                    0,
                ))))
                .context("cannot listen on loopback")?;
            let addr = listener.local_addr().context("no local address")?;
            runtime.spawn(codegen_serve::serve(listener, app));
            _runtime = Some(runtime);
            format!("http://{addr}")
        }
    };
    let threads = codegen_model::RuntimeConfig::current().threads;
    if !args.json {
        eprintln!(
            "codegen: bench serve: {} at {base}, max_tokens {}, temperature {}, {} s per round, threads {}",
            if model_name.is_empty() { "server" } else { &model_name },
            args.max_tokens,
            args.temperature,
            args.duration,
            threads
        );
    }
    let mut rounds = Vec::new();
    for (idx, &users) in args.users.iter().enumerate() {
        let round = run_round(&args, &base, users, idx);
        if !args.json {
            eprintln!(
                "  {} user(s): {:.1} tok/s, {} requests ({} errors), p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms",
                round.users,
                round.decode_tokens_per_sec,
                round.requests,
                round.errors,
                round.latency_p50_ms,
                round.latency_p95_ms,
                round.latency_p99_ms
            );
        }
        rounds.push(round);
    }
    let base_rate = rounds
        .iter()
        .find(|r| r.users == 1)
        .map(|r| r.decode_tokens_per_sec);
    let base_step_rate = rounds
        .iter()
        .find(|r| r.users == 1)
        .and_then(|r| r.server.as_ref())
        .map(|t| t.decode_step_tokens_per_sec);
    if args.json {
        let report = json!({
            "model": model_name,
            "url": args.url,
            "max_tokens": args.max_tokens,
            "temperature": args.temperature,
            "duration_secs": args.duration,
            "threads": threads,
            "rounds": rounds,
            "speedup_vs_one_user": rounds.iter().map(|r| {
                base_rate.filter(|b| *b > 0.0).map(|b| r.decode_tokens_per_sec / b)
            }).collect::<Vec<_>>(),
            "decode_step_speedup_vs_one_user": rounds.iter().map(|r| {
                base_step_rate.filter(|b| *b > 0.0).zip(r.server.as_ref())
                    .map(|(b, t)| t.decode_step_tokens_per_sec / b)
            }).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let mut table = crate::table([
            "users",
            "tok/s",
            "x 1 user",
            "req/s",
            "requests",
            "errors",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "cached prompt",
            "rows/step",
            "ms/step",
            "step tok/s",
            "x 1 user (steps)",
            "decode s",
            "prefill s",
            "prefill tok/s",
        ]);
        for r in &rounds {
            let server: [String; 7] = match &r.server {
                Some(t) => [
                    format!("{:.1}", t.mean_rows_per_step),
                    format!("{:.1}", t.mean_step_ms),
                    format!("{:.1}", t.decode_step_tokens_per_sec),
                    base_step_rate.filter(|b| *b > 0.0).map_or("-".into(), |b| {
                        format!("{:.2}", t.decode_step_tokens_per_sec / b)
                    }),
                    format!("{:.1}", t.decode_secs),
                    format!("{:.1}", t.prefill_secs),
                    format!("{:.0}", t.prefill_tokens_per_sec),
                ],
                None => std::array::from_fn(|_| "-".to_string()),
            };
            let mut row = vec![
                r.users.to_string(),
                format!("{:.1}", r.decode_tokens_per_sec),
                base_rate.filter(|b| *b > 0.0).map_or("-".into(), |b| {
                    format!("{:.2}", r.decode_tokens_per_sec / b)
                }),
                format!("{:.2}", r.requests_per_sec),
                r.requests.to_string(),
                r.errors.to_string(),
                format!("{:.0}", r.latency_p50_ms),
                format!("{:.0}", r.latency_p95_ms),
                format!("{:.0}", r.latency_p99_ms),
                format!(
                    "{:.0}%",
                    100.0 * r.cached_prompt_tokens as f64 / r.prompt_tokens.max(1) as f64
                ),
            ];
            row.extend(server);
            table.add_row(row);
        }
        println!("{table}");
        if let Some(err) = rounds.iter().find_map(|r| r.first_error.as_ref()) {
            eprintln!("codegen: first error: {err}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_time_is_the_difference_of_two_scrapes() {
        let before = parse_samples(
            "# HELP x y\ncodegen_decode_steps_total 10\ncodegen_decode_step_seconds_sum 1.5\n\
             codegen_decode_step_seconds_count 10\ncodegen_batch_size_sum 20\n\
             codegen_prefill_chunk_seconds_sum 2\ncodegen_prefilled_tokens_total 100\n\
             codegen_batch_size_bucket{le=\"1\"} 3\n",
        );
        let after = parse_samples(
            "codegen_decode_steps_total 30\ncodegen_decode_step_seconds_sum 3.5\n\
             codegen_decode_step_seconds_count 30\ncodegen_batch_size_sum 100\n\
             codegen_prefill_chunk_seconds_sum 4\ncodegen_prefilled_tokens_total 1100\n",
        );
        assert!(!before.keys().any(|k| k.contains('{')), "{before:?}");
        let t = server_time(&before, &after);
        assert_eq!(t.decode_steps, 20);
        assert!((t.mean_rows_per_step - 4.0).abs() < 1e-9);
        assert!((t.mean_step_ms - 100.0).abs() < 1e-9);
        assert!((t.decode_step_tokens_per_sec - 40.0).abs() < 1e-9);
        assert!((t.decode_secs - 2.0).abs() < 1e-9);
        assert!((t.prefill_secs - 2.0).abs() < 1e-9);
        assert_eq!(t.prefilled_tokens, 1000);
        assert!((t.prefill_tokens_per_sec - 500.0).abs() < 1e-9);
        // Nothing happened: no division by zero.
        let idle = server_time(&after, &after);
        assert_eq!(idle.mean_step_ms, 0.0);
        assert_eq!(idle.decode_step_tokens_per_sec, 0.0);
        assert_eq!(idle.prefill_tokens_per_sec, 0.0);
    }
}
