//! Prometheus metrics: counters, gauges and histograms, rendered in the
//! text exposition format. No registry crate: a handful of atomics.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Upper bounds (seconds) of the latency histograms.
const LATENCY_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];
/// Upper bounds of the batch-size histogram (samples per decode step).
const BATCH_BUCKETS: [f64; 8] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, value: f64) {
        for (bound, count) in self.bounds.iter().zip(&mut self.counts) {
            if value <= *bound {
                *count += 1;
            }
        }
        self.sum += value;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = |l: &str| {
            if l.is_empty() {
                String::new()
            } else {
                format!("{{{l}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {}", braces(labels), self.sum);
        let _ = writeln!(out, "{name}_count{} {}", braces(labels), self.count);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Everything `/metrics` reports.
pub struct Metrics {
    /// Requests by (endpoint, status).
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    prompt_tokens: AtomicU64,
    prefilled_tokens: AtomicU64,
    reused_tokens: AtomicU64,
    generated_tokens: AtomicU64,
    cancelled: AtomicU64,
    queue_depth: AtomicU64,
    batch_samples: AtomicU64,
    batch_requests: AtomicU64,
    steps: AtomicU64,
    request_secs: Mutex<BTreeMap<String, Histogram>>,
    queue_secs: Mutex<Histogram>,
    prefill_secs: Mutex<Histogram>,
    first_token_secs: Mutex<Histogram>,
    step_secs: Mutex<Histogram>,
    chunk_secs: Mutex<Histogram>,
    batch_size: Mutex<Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Mutex::default(),
            prompt_tokens: AtomicU64::new(0),
            prefilled_tokens: AtomicU64::new(0),
            reused_tokens: AtomicU64::new(0),
            generated_tokens: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            queue_depth: AtomicU64::new(0),
            batch_samples: AtomicU64::new(0),
            batch_requests: AtomicU64::new(0),
            steps: AtomicU64::new(0),
            request_secs: Mutex::default(),
            queue_secs: Mutex::new(Histogram::new(&LATENCY_BUCKETS)),
            prefill_secs: Mutex::new(Histogram::new(&LATENCY_BUCKETS)),
            first_token_secs: Mutex::new(Histogram::new(&LATENCY_BUCKETS)),
            step_secs: Mutex::new(Histogram::new(&LATENCY_BUCKETS)),
            chunk_secs: Mutex::new(Histogram::new(&LATENCY_BUCKETS)),
            batch_size: Mutex::new(Histogram::new(&BATCH_BUCKETS)),
        }
    }
}

impl Metrics {
    /// One prefill chunk's forward pass took `secs`.
    pub fn observe_prefill_chunk(&self, secs: f64) {
        lock(&self.chunk_secs).observe(secs);
    }

    pub fn request(&self, endpoint: &str, status: u16, secs: f64) {
        *lock(&self.requests)
            .entry((endpoint.to_string(), status))
            .or_default() += 1;
        lock(&self.request_secs)
            .entry(endpoint.to_string())
            .or_insert_with(|| Histogram::new(&LATENCY_BUCKETS))
            .observe(secs);
    }

    pub fn prompt(&self, n_tokens: usize) {
        self.prompt_tokens
            .fetch_add(n_tokens as u64, Ordering::Relaxed);
    }

    pub fn prefilled(&self, n_tokens: usize) {
        self.prefilled_tokens
            .fetch_add(n_tokens as u64, Ordering::Relaxed);
    }

    pub fn reused(&self, n_tokens: usize) {
        self.reused_tokens
            .fetch_add(n_tokens as u64, Ordering::Relaxed);
    }

    pub fn generated(&self, n_tokens: usize) {
        self.generated_tokens
            .fetch_add(n_tokens as u64, Ordering::Relaxed);
    }

    pub fn cancelled(&self) {
        self.cancelled.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_queue_depth(&self, n: usize) {
        self.queue_depth.store(n as u64, Ordering::Relaxed);
    }

    pub fn set_batch(&self, n_samples: usize, n_requests: usize) {
        self.batch_samples
            .store(n_samples as u64, Ordering::Relaxed);
        self.batch_requests
            .store(n_requests as u64, Ordering::Relaxed);
    }

    pub fn observe_queue_secs(&self, secs: f64) {
        lock(&self.queue_secs).observe(secs);
    }

    pub fn observe_prefill_secs(&self, secs: f64) {
        lock(&self.prefill_secs).observe(secs);
    }

    pub fn observe_first_token_secs(&self, secs: f64) {
        lock(&self.first_token_secs).observe(secs);
    }

    /// One decode step of `n_samples` rows.
    pub fn observe_step(&self, n_samples: usize, secs: f64) {
        self.steps.fetch_add(1, Ordering::Relaxed);
        lock(&self.step_secs).observe(secs);
        lock(&self.batch_size).observe(n_samples as f64);
    }

    /// Tokens generated so far (all requests).
    pub fn generated_tokens(&self) -> u64 {
        self.generated_tokens.load(Ordering::Relaxed)
    }

    /// Batched decode steps so far.
    pub fn decode_steps(&self) -> u64 {
        self.steps.load(Ordering::Relaxed)
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP codegen_requests_total HTTP requests by endpoint and status.\n# TYPE codegen_requests_total counter\n");
        for ((endpoint, status), n) in lock(&self.requests).iter() {
            let _ = writeln!(
                out,
                "codegen_requests_total{{endpoint=\"{endpoint}\",status=\"{status}\"}} {n}"
            );
        }
        let counters = [
            (
                "codegen_prompt_tokens_total",
                "Prompt tokens received.",
                &self.prompt_tokens,
            ),
            (
                "codegen_prefilled_tokens_total",
                "Prompt tokens run through the model.",
                &self.prefilled_tokens,
            ),
            (
                "codegen_reused_prompt_tokens_total",
                "Prompt tokens whose KV cache was reused.",
                &self.reused_tokens,
            ),
            (
                "codegen_generated_tokens_total",
                "Tokens generated.",
                &self.generated_tokens,
            ),
            (
                "codegen_cancelled_requests_total",
                "Requests dropped because the client went away.",
                &self.cancelled,
            ),
            (
                "codegen_decode_steps_total",
                "Batched decode steps.",
                &self.steps,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        let gauges = [
            (
                "codegen_queue_depth",
                "Requests waiting to join the batch.",
                &self.queue_depth,
            ),
            (
                "codegen_batch_samples",
                "Samples in the current decode step.",
                &self.batch_samples,
            ),
            (
                "codegen_batch_requests",
                "Requests in the current decode step.",
                &self.batch_requests,
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        let request_help = "Time from request to the last byte of the reply.";
        out.push_str(&format!(
            "# HELP codegen_request_duration_seconds {request_help}\n# TYPE codegen_request_duration_seconds histogram\n"
        ));
        for (endpoint, h) in lock(&self.request_secs).iter() {
            let mut part = String::new();
            h.render(
                &mut part,
                "codegen_request_duration_seconds",
                &format!("endpoint=\"{endpoint}\""),
                "",
            );
            // The HELP/TYPE lines were written once above.
            for line in part.lines().skip(2) {
                out.push_str(line);
                out.push('\n');
            }
        }
        lock(&self.queue_secs).render(
            &mut out,
            "codegen_queue_seconds",
            "",
            "Time waiting to join the batch.",
        );
        lock(&self.prefill_secs).render(
            &mut out,
            "codegen_prefill_seconds",
            "",
            "Time to prefill a prompt (chunks interleaved with decoding).",
        );
        lock(&self.first_token_secs).render(
            &mut out,
            "codegen_time_to_first_token_seconds",
            "",
            "Time from request to the first generated text.",
        );
        lock(&self.step_secs).render(
            &mut out,
            "codegen_decode_step_seconds",
            "",
            "Time of one batched decode step.",
        );
        lock(&self.chunk_secs).render(
            &mut out,
            "codegen_prefill_chunk_seconds",
            "",
            "Compute time of one prefill chunk (the forward pass alone).",
        );
        lock(&self.batch_size).render(
            &mut out,
            "codegen_batch_size",
            "",
            "Samples per batched decode step.",
        );
        out
    }
}
