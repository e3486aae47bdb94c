//! A remote inference engine as the sampler of a [`crate::LoadedModel`]:
//! the engine still builds the prompt (context, FIM rendering), post-processes
//! and ranks locally; only the samples come over HTTP. Three protocols:
//!
//! - `openai` (vLLM, TGI, `codegen serve`, llama-server's `/v1/completions`):
//!   the FIM prompt is rendered here as text with the model's special-token
//!   strings (vLLM and TGI do not take `suffix`); `n` samples per request.
//! - `llama-server`: `POST /infill` with `input_prefix`, `input_suffix` and
//!   `input_extra` (the neighbouring files); one request per sample.
//! - `ollama`: `POST /api/generate` with `prompt` and `suffix` (the model's
//!   template renders FIM); one request per sample.
//!
//! Requests time out, are retried with backoff on connection errors, 429
//! and 5xx, and after a failure the backend is marked down: requests fail at
//! once (no hang) until a retry probe finds it up again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use codegen_model::{FinishReason, GenerateConfig, Generation};
use serde_json::{json, Value};

use crate::EngineError;

/// The protocol a remote engine speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteKind {
    OpenAi,
    LlamaServer,
    Ollama,
}

impl RemoteKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RemoteKind::OpenAi => "openai",
            RemoteKind::LlamaServer => "llama-server",
            RemoteKind::Ollama => "ollama",
        }
    }
}

/// Where and how to reach the remote engine.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteConfig {
    /// Base URL (`http://host:port`, no trailing slash).
    pub url: String,
    pub kind: RemoteKind,
    /// The model to ask for (OpenAI: default the server's first model;
    /// Ollama: required).
    pub model: Option<String>,
    /// Sent as `Authorization: Bearer KEY`.
    pub api_key: Option<String>,
    /// Whole-request timeout (connecting included).
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Further attempts after a failed one (connection errors, 429, 5xx).
    pub retries: u32,
    /// Wait before the first retry; doubled for each next one.
    pub backoff: Duration,
    /// After a failure, requests fail at once for this long (then one probes).
    pub down_for: Duration,
}

impl RemoteConfig {
    /// Parses `[KIND+]URL`: `http://gpu:8000` (OpenAI-compatible),
    /// `llama-server+http://gpu:8080`, `ollama+http://gpu:11434`.
    pub fn parse(spec: &str) -> Result<RemoteConfig, EngineError> {
        let spec = spec.trim();
        let (kind, url) = match spec.split_once('+') {
            Some((kind, url)) if !kind.contains(':') => {
                let kind = match kind {
                    "openai" => RemoteKind::OpenAi,
                    "llama-server" | "llama" | "llamacpp" => RemoteKind::LlamaServer,
                    "ollama" => RemoteKind::Ollama,
                    other => {
                        return Err(EngineError::Remote(format!(
                        "unknown backend kind {other:?} (expected openai, llama-server or ollama)"
                    )))
                    }
                };
                (kind, url)
            }
            _ => (RemoteKind::OpenAi, spec),
        };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(EngineError::Remote(format!(
                "backend {spec:?}: expected [openai+|llama-server+|ollama+]http://HOST:PORT"
            )));
        }
        Ok(RemoteConfig {
            url: url.trim_end_matches('/').to_string(),
            kind,
            model: None,
            api_key: None,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(3),
            retries: 2,
            backoff: Duration::from_millis(200),
            down_for: Duration::from_secs(5),
        })
    }
}

/// The prompt of a request in the pieces a remote engine takes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RemotePrompt {
    /// Text before the cursor (after the context's cuts and healing).
    pub prefix: String,
    /// Text after the cursor (empty for a plain continuation).
    pub suffix: String,
    /// Neighbouring files: (path, text).
    pub snippets: Vec<(String, String)>,
    /// The whole prompt as text, special tokens written out
    /// (`<|fim_prefix|>…`): what an OpenAI-compatible server gets.
    pub rendered: String,
    /// Fill-in-the-middle (code follows the cursor).
    pub fim: bool,
    /// A caller's template: sent as it is.
    pub template: bool,
}

/// How the backend is doing, for the editor's status.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteHealth {
    pub up: bool,
    pub last_error: Option<String>,
    pub failures: u64,
    pub requests: u64,
}

struct HealthState {
    health: RemoteHealth,
    down_until: Option<Instant>,
    /// The OpenAI model id found on the server.
    model: Option<String>,
}

/// An HTTP client for one remote engine.
pub struct RemoteBackend {
    config: RemoteConfig,
    agent: ureq::Agent,
    state: Mutex<HealthState>,
}

enum Failure {
    /// Worth another try (connection, timeout, 429, 5xx).
    Transient(String),
    Permanent(String),
}

impl RemoteBackend {
    pub fn new(config: RemoteConfig) -> RemoteBackend {
        let agent = ureq::AgentBuilder::new()
            .timeout(config.timeout)
            .timeout_connect(config.connect_timeout)
            .build();
        RemoteBackend {
            state: Mutex::new(HealthState {
                health: RemoteHealth {
                    up: true,
                    last_error: None,
                    failures: 0,
                    requests: 0,
                },
                down_until: None,
                model: config.model.clone(),
            }),
            config,
            agent,
        }
    }

    pub fn config(&self) -> &RemoteConfig {
        &self.config
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HealthState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn health(&self) -> RemoteHealth {
        self.lock().health.clone()
    }

    /// `kind+url` for names and logs.
    pub fn describe(&self) -> String {
        format!("{} {}", self.config.kind.as_str(), self.config.url)
    }

    fn post(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        let url = format!("{}{path}", self.config.url);
        let mut req = self.agent.post(&url);
        if let Some(key) = &self.config.api_key {
            req = req.set("Authorization", &format!("Bearer {key}"));
        }
        match req.send_json(body) {
            Ok(response) => response
                .into_json::<Value>()
                .map_err(|e| Failure::Transient(format!("{url}: unreadable reply: {e}"))),
            Err(ureq::Error::Status(code, response)) => {
                let text = response.into_string().unwrap_or_default();
                let message = format!(
                    "{url}: HTTP {code}: {}",
                    text.chars().take(300).collect::<String>()
                );
                if code == 429 || code >= 500 {
                    Err(Failure::Transient(message))
                } else {
                    Err(Failure::Permanent(message))
                }
            }
            Err(e) => Err(Failure::Transient(format!("{url}: {e}"))),
        }
    }

    /// One request with retries and backoff.
    fn post_retrying(
        &self,
        path: &str,
        body: &Value,
        cancel: Option<&AtomicBool>,
    ) -> Result<Value, String> {
        let mut wait = self.config.backoff;
        let mut attempt = 0;
        loop {
            match self.post(path, body) {
                Ok(value) => return Ok(value),
                Err(Failure::Permanent(message)) => return Err(message),
                Err(Failure::Transient(message)) => {
                    let cancelled = cancel.is_some_and(|c| c.load(Ordering::Relaxed));
                    if attempt >= self.config.retries || cancelled {
                        return Err(message);
                    }
                    tracing::debug!("remote backend: {message}; retrying in {wait:?}");
                    std::thread::sleep(wait);
                    wait *= 2;
                    attempt += 1;
                }
            }
        }
    }

    fn openai_model(&self) -> Result<String, String> {
        if let Some(model) = self.lock().model.clone() {
            return Ok(model);
        }
        let url = format!("{}/v1/models", self.config.url);
        let mut req = self.agent.get(&url);
        if let Some(key) = &self.config.api_key {
            req = req.set("Authorization", &format!("Bearer {key}"));
        }
        let models: Value = req
            .call()
            .map_err(|e| format!("{url}: {e}"))?
            .into_json()
            .map_err(|e| format!("{url}: {e}"))?;
        let id = models["data"][0]["id"]
            .as_str()
            .ok_or_else(|| format!("{url}: the server lists no model"))?
            .to_string();
        self.lock().model = Some(id.clone());
        Ok(id)
    }

    /// Draws one sample per config from the remote engine. Fails at once
    /// while the backend is marked down.
    pub fn sample(
        &self,
        prompt: &RemotePrompt,
        configs: &[GenerateConfig],
        cancel: Option<&AtomicBool>,
    ) -> Result<Vec<Generation>, EngineError> {
        {
            let mut state = self.lock();
            state.health.requests += 1;
            if let Some(until) = state.down_until {
                if Instant::now() < until {
                    return Err(EngineError::Remote(format!(
                        "backend {} is down: {}",
                        self.describe(),
                        state.health.last_error.clone().unwrap_or_default()
                    )));
                }
            }
        }
        let started = Instant::now();
        let result = match self.config.kind {
            RemoteKind::OpenAi => self.sample_openai(prompt, configs, cancel),
            RemoteKind::LlamaServer | RemoteKind::Ollama => {
                // One request per sample, all at once.
                std::thread::scope(|scope| {
                    let handles: Vec<_> = configs
                        .iter()
                        .map(|config| scope.spawn(move || self.sample_one(prompt, config, cancel)))
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| {
                            h.join()
                                .unwrap_or_else(|_| Err("a request thread panicked".into()))
                        })
                        .collect::<Result<Vec<_>, String>>()
                })
            }
        };
        let mut state = self.lock();
        match result {
            Ok(mut generations) => {
                state.health.up = true;
                state.down_until = None;
                let secs = started.elapsed().as_secs_f64();
                for g in &mut generations {
                    g.decode_secs = secs;
                }
                Ok(generations)
            }
            Err(message) => {
                state.health.up = false;
                state.health.failures += 1;
                state.health.last_error = Some(message.clone());
                state.down_until = Some(Instant::now() + self.config.down_for);
                Err(EngineError::Remote(format!(
                    "backend {}: {message}",
                    self.describe()
                )))
            }
        }
    }

    fn sample_openai(
        &self,
        prompt: &RemotePrompt,
        configs: &[GenerateConfig],
        cancel: Option<&AtomicBool>,
    ) -> Result<Vec<Generation>, String> {
        let model = self.openai_model()?;
        // Samples with the same settings go in one request with `n`.
        let mut groups: Vec<(Vec<usize>, &GenerateConfig)> = Vec::new();
        for (idx, config) in configs.iter().enumerate() {
            let same = |c: &GenerateConfig| {
                c.sampling.temperature == config.sampling.temperature
                    && c.sampling.top_p == config.sampling.top_p
                    && c.max_tokens == config.max_tokens
                    && c.stop_strings == config.stop_strings
            };
            match groups.iter_mut().find(|(_, c)| same(c)) {
                Some((members, _)) => members.push(idx),
                None => groups.push((vec![idx], config)),
            }
        }
        let mut out: Vec<Option<Generation>> = vec![None; configs.len()];
        let replies = std::thread::scope(|scope| {
            let handles: Vec<_> = groups
                .iter()
                .map(|(members, config)| {
                    let mut body = json!({
                        "model": model,
                        "prompt": prompt.rendered,
                        "max_tokens": config.max_tokens,
                        "temperature": config.sampling.temperature,
                        "top_p": config.sampling.top_p,
                        "n": members.len(),
                        "seed": config.sampling.seed,
                        "logprobs": 1,
                    });
                    if !config.stop_strings.is_empty() {
                        body["stop"] =
                            json!(config.stop_strings.iter().take(4).collect::<Vec<_>>());
                    }
                    scope.spawn(move || self.post_retrying("/v1/completions", &body, cancel))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err("a request thread panicked".into()))
                })
                .collect::<Vec<_>>()
        });
        for ((members, _), reply) in groups.iter().zip(replies) {
            let reply = reply?;
            let choices = reply["choices"]
                .as_array()
                .ok_or_else(|| format!("no choices in the reply: {reply}"))?;
            for (slot, choice) in members.iter().zip(choices) {
                let text = choice["text"].as_str().unwrap_or_default().to_string();
                let logprobs: Vec<f32> = choice["logprobs"]["token_logprobs"]
                    .as_array()
                    .map(|l| {
                        l.iter()
                            .filter_map(Value::as_f64)
                            .map(|v| v as f32)
                            .collect()
                    })
                    .unwrap_or_default();
                let finish = match choice["finish_reason"].as_str() {
                    Some("length") => FinishReason::MaxTokens,
                    _ => FinishReason::StopToken,
                };
                out[*slot] = Some(generation(text, logprobs, finish));
            }
        }
        out.into_iter()
            .map(|g| g.ok_or_else(|| "the server sent fewer choices than asked".to_string()))
            .collect()
    }

    fn sample_one(
        &self,
        prompt: &RemotePrompt,
        config: &GenerateConfig,
        cancel: Option<&AtomicBool>,
    ) -> Result<Generation, String> {
        if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Ok(generation(
                String::new(),
                Vec::new(),
                FinishReason::Cancelled,
            ));
        }
        let s = &config.sampling;
        match self.config.kind {
            RemoteKind::LlamaServer => {
                let (path, mut body) = if prompt.template || !prompt.fim {
                    ("/completion", json!({"prompt": prompt.rendered}))
                } else {
                    let extra: Vec<Value> = prompt
                        .snippets
                        .iter()
                        .map(|(path, text)| json!({"filename": path, "text": text}))
                        .collect();
                    (
                        "/infill",
                        json!({
                            "input_prefix": prompt.prefix,
                            "input_suffix": prompt.suffix,
                            "input_extra": extra,
                        }),
                    )
                };
                body["n_predict"] = json!(config.max_tokens);
                body["temperature"] = json!(s.temperature);
                body["top_p"] = json!(s.top_p);
                body["seed"] = json!(s.seed);
                body["stop"] = json!(config.stop_strings);
                body["cache_prompt"] = json!(true);
                let reply = self.post_retrying(path, &body, cancel)?;
                let text = reply["content"].as_str().unwrap_or_default().to_string();
                let finish = match reply["stop_type"].as_str() {
                    Some("limit") => FinishReason::MaxTokens,
                    Some("word") => FinishReason::StopString,
                    _ => FinishReason::StopToken,
                };
                Ok(generation(text, Vec::new(), finish))
            }
            RemoteKind::Ollama => {
                let model = self
                    .config
                    .model
                    .clone()
                    .ok_or("ollama needs a model name (--backend-model / backendModel)")?;
                let mut body = json!({
                    "model": model,
                    "stream": false,
                    "options": {
                        "temperature": s.temperature,
                        "top_p": s.top_p,
                        "seed": s.seed,
                        "num_predict": config.max_tokens,
                        "stop": config.stop_strings,
                    },
                });
                if prompt.template || !prompt.fim {
                    body["prompt"] = json!(prompt.rendered);
                    body["raw"] = json!(true);
                } else {
                    body["prompt"] = json!(prompt.prefix);
                    body["suffix"] = json!(prompt.suffix);
                }
                let reply = self.post_retrying("/api/generate", &body, cancel)?;
                let text = reply["response"].as_str().unwrap_or_default().to_string();
                let finish = match reply["done_reason"].as_str() {
                    Some("length") => FinishReason::MaxTokens,
                    _ => FinishReason::StopToken,
                };
                Ok(generation(text, Vec::new(), finish))
            }
            RemoteKind::OpenAi => Err("internal: OpenAI samples go through one request".into()),
        }
    }
}

fn generation(text: String, logprobs: Vec<f32>, finish: FinishReason) -> Generation {
    Generation {
        text,
        tokens: Vec::new(),
        logprobs,
        finish,
        n_prompt_tokens: 0,
        n_reused_tokens: 0,
        prefill_secs: 0.0,
        decode_secs: 0.0,
        n_draft_tokens: 0,
        n_accepted_draft_tokens: 0,
        n_target_passes: 0,
    }
}
