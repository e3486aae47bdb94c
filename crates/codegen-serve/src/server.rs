//! The HTTP front: routes, request parsing, keys and limits, replies (JSON
//! or server-sent events). Model work happens on the scheduler's thread.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use codegen_engine::{encode_template, LoadedModel};
use codegen_model::{PromptPiece, SamplingConfig};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use crate::keys::{Grant, KeyStore, Refusal};
use crate::metrics::Metrics;
use crate::scheduler::{
    Event, Finish, Job, SampleParams, Scheduler, SchedulerConfig, TokenLogprob,
};
use crate::ServeError;

/// Limits that apply to every request (a key may set tighter or looser ones
/// for itself).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body.
    pub max_request_bytes: usize,
    /// Most tokens per sample.
    pub max_tokens: usize,
    /// Most samples per request.
    pub max_n: usize,
    /// Requests per minute per key, for keys that set none.
    pub requests_per_minute: Option<f64>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_bytes: 1 << 20,
            max_tokens: 1024,
            max_n: 8,
            requests_per_minute: None,
        }
    }
}

/// How `codegen serve` runs.
#[derive(Debug, Clone, Default)]
pub struct ServeConfig {
    /// The id `/v1/models` lists and requests may name (default: the model's name).
    pub model_id: Option<String>,
    pub limits: Limits,
    pub scheduler: SchedulerConfig,
}

/// The server's shared state.
pub struct App {
    model: Arc<LoadedModel>,
    model_id: String,
    scheduler: Scheduler,
    metrics: Arc<Metrics>,
    keys: Option<KeyStore>,
    limits: Limits,
    created: u64,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl App {
    /// Starts the scheduler thread for `model`. Without `keys` every request
    /// is let in (the caller must then listen on loopback only).
    pub fn new(
        model: Arc<LoadedModel>,
        keys: Option<KeyStore>,
        config: ServeConfig,
    ) -> Result<Arc<App>, ServeError> {
        let metrics = Arc::new(Metrics::default());
        let scheduler = Scheduler::spawn(model.clone(), config.scheduler, metrics.clone())
            .map_err(ServeError::Io)?;
        Ok(Arc::new(App {
            model_id: config.model_id.unwrap_or_else(|| model.name.clone()),
            model,
            scheduler,
            metrics,
            keys,
            limits: config.limits,
            created: unix_now(),
        }))
    }

    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }
}

/// The address to bind: without keys, only loopback; the note says what was
/// decided and why.
pub fn listen_addr(requested: SocketAddr, has_keys: bool) -> (SocketAddr, String) {
    if has_keys {
        return (
            requested,
            format!("listening on {requested}, API keys required"),
        );
    }
    if requested.ip().is_loopback() {
        return (
            requested,
            "no --keys: listening on loopback only; anyone on this machine can use it".to_string(),
        );
    }
    let loopback = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), requested.port());
    (
        loopback,
        format!(
            "no --keys: listening on loopback only ({loopback}) instead of {requested}; pass --keys FILE to serve other machines"
        ),
    )
}

/// All routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/completions", post(completions))
        .route("/v1/models", get(models))
        .route("/infill", post(infill))
        .route("/completion", post(completion))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(app)
}

/// Serves `app` on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, app: Arc<App>) -> std::io::Result<()> {
    axum::serve(listener, router(app)).await
}

/// An error reply, OpenAI-style: `{"error": {"message", "type", "code"}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    code: &'static str,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            code,
            retry_after: None,
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let kind = match self.status.as_u16() {
            401 => "authentication_error",
            404 => "not_found_error",
            413 | 400 => "invalid_request_error",
            429 => "rate_limit_error",
            _ => "server_error",
        };
        let body = json!({"error": {
            "message": self.message,
            "type": kind,
            "param": null,
            "code": self.code,
        }});
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

/// Marks a streamed reply: its duration is recorded when the stream ends.
#[derive(Clone, Copy)]
struct Streamed;

async fn record(
    app: &App,
    endpoint: &str,
    started: Instant,
    result: Result<Response, ApiError>,
) -> Response {
    let response = result.unwrap_or_else(IntoResponse::into_response);
    if response.extensions().get::<Streamed>().is_none() {
        app.metrics.request(
            endpoint,
            response.status().as_u16(),
            started.elapsed().as_secs_f64(),
        );
    }
    response
}

fn authorize(app: &App, headers: &HeaderMap) -> Result<Option<Grant>, ApiError> {
    let Some(keys) = &app.keys else {
        return Ok(None);
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).trim());
    match keys.check(token) {
        Ok(grant) => Ok(Some(grant)),
        Err(Refusal::MissingKey) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing_api_key",
            "an API key is required: send `Authorization: Bearer KEY`",
        )),
        Err(Refusal::WrongKey) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
            "the API key is not valid",
        )),
        Err(Refusal::RateLimited { retry_after_secs }) => Err(ApiError {
            retry_after: Some(retry_after_secs),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_exceeded",
                format!("too many requests for this key; retry after {retry_after_secs} s"),
            )
        }),
    }
}

async fn read_json<T: serde::de::DeserializeOwned>(
    app: &App,
    grant: Option<&Grant>,
    body: Body,
) -> Result<T, ApiError> {
    let limit = grant
        .and_then(|g| g.max_request_bytes)
        .unwrap_or(app.limits.max_request_bytes);
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            format!("the request body is larger than the limit of {limit} bytes"),
        )
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request(format!(
            "the request body is not valid JSON for this endpoint: {e}"
        ))
    })
}

fn check_model(app: &App, model: Option<&str>) -> Result<(), ApiError> {
    match model {
        Some(name) if !name.is_empty() && name != app.model_id => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "model_not_found",
            format!(
                "the model `{name}` does not exist here; this server serves `{}`",
                app.model_id
            ),
        )),
        _ => Ok(()),
    }
}

fn max_tokens_limit(app: &App, grant: Option<&Grant>) -> usize {
    grant
        .and_then(|g| g.max_tokens)
        .unwrap_or(app.limits.max_tokens)
}

/// Checks the prompt against the context and clamps generation to what is left.
fn fit_context(app: &App, n_prompt: usize, max_tokens: usize) -> Result<usize, ApiError> {
    let context = app.model.model.config().context_length;
    if n_prompt == 0 {
        return Err(ApiError::bad_request("the prompt is empty"));
    }
    if n_prompt >= context {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "context_length_exceeded",
            format!(
                "the prompt is {n_prompt} tokens; this model's context is {context} tokens (limit {} for the prompt)",
                context - 1
            ),
        ));
    }
    Ok(max_tokens.min(context - n_prompt))
}

fn validate_sampling(temperature: f32, top_p: f32) -> Result<(), ApiError> {
    if !(0.0..=2.0).contains(&temperature) {
        return Err(ApiError::bad_request("temperature must be between 0 and 2"));
    }
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(ApiError::bad_request("top_p must be in (0, 1]"));
    }
    Ok(())
}

fn fresh_seed() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn submit(
    app: &App,
    prompt: Vec<u32>,
    samples: Vec<SampleParams>,
    logprobs: Option<usize>,
) -> Result<UnboundedReceiver<Event>, ApiError> {
    app.metrics.prompt(prompt.len());
    let (events, rx) = unbounded_channel();
    app.scheduler
        .submit(Job {
            prompt,
            samples,
            logprobs,
            events,
            enqueued: Instant::now(),
        })
        .map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                e.to_string(),
            )
        })?;
    Ok(rx)
}

/// A request's samples, gathered.
struct Collected {
    texts: Vec<String>,
    finishes: Vec<Option<Finish>>,
    n_tokens: Vec<usize>,
    logprobs: Vec<Vec<TokenLogprob>>,
    n_prompt: usize,
    n_reused: usize,
}

async fn collect(
    app: &App,
    started: Instant,
    mut rx: UnboundedReceiver<Event>,
    n: usize,
) -> Result<Collected, ApiError> {
    let mut out = Collected {
        texts: vec![String::new(); n],
        finishes: vec![None; n],
        n_tokens: vec![0; n],
        logprobs: vec![Vec::new(); n],
        n_prompt: 0,
        n_reused: 0,
    };
    let mut first = true;
    let mut n_done = 0;
    while n_done < n {
        match rx.recv().await {
            Some(Event::Started {
                n_prompt_tokens,
                n_reused_tokens,
            }) => {
                out.n_prompt = n_prompt_tokens;
                out.n_reused = n_reused_tokens;
            }
            Some(Event::Text {
                sample,
                text,
                logprobs,
            }) => {
                if first {
                    first = false;
                    app.metrics
                        .observe_first_token_secs(started.elapsed().as_secs_f64());
                }
                if let Some(t) = out.texts.get_mut(sample) {
                    t.push_str(&text);
                }
                if let Some(l) = out.logprobs.get_mut(sample) {
                    l.extend(logprobs);
                }
            }
            Some(Event::Finished {
                sample,
                finish,
                n_tokens,
            }) => {
                if let Some(f) = out.finishes.get_mut(sample) {
                    *f = Some(finish);
                    out.n_tokens[sample] = n_tokens;
                    n_done += 1;
                }
            }
            Some(Event::Failed(message)) => {
                return Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "generation_failed",
                    message,
                ))
            }
            None => {
                return Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "generation_failed",
                    "the request ended without a result",
                ))
            }
        }
    }
    Ok(out)
}

fn openai_finish(finish: Option<Finish>) -> &'static str {
    match finish {
        Some(Finish::Length) => "length",
        _ => "stop",
    }
}

/// The legacy completions `logprobs` object, cut to the final text.
fn logprobs_json(entries: &[TokenLogprob], text_len: usize) -> Value {
    let mut tokens = Vec::new();
    let mut token_logprobs = Vec::new();
    let mut top_logprobs = Vec::new();
    let mut text_offset = Vec::new();
    let mut offset = 0usize;
    for entry in entries {
        if offset >= text_len && !tokens.is_empty() {
            break;
        }
        tokens.push(json!(entry.text));
        token_logprobs.push(json!(entry.logprob));
        let top: serde_json::Map<String, Value> = entry
            .top
            .iter()
            .map(|(t, l)| (t.clone(), json!(l)))
            .collect();
        top_logprobs.push(Value::Object(top));
        text_offset.push(json!(offset));
        offset += entry.n_bytes;
    }
    json!({
        "tokens": tokens,
        "token_logprobs": token_logprobs,
        "top_logprobs": top_logprobs,
        "text_offset": text_offset,
    })
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Deserialize)]
struct CompletionBody {
    model: Option<String>,
    prompt: OneOrMany,
    suffix: Option<String>,
    max_tokens: Option<usize>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    top_k: Option<usize>,
    n: Option<usize>,
    stop: Option<OneOrMany>,
    stream: Option<bool>,
    logprobs: Option<usize>,
    seed: Option<u64>,
}

/// Most alternatives per token in `logprobs` (as OpenAI's).
const MAX_LOGPROBS: usize = 5;

fn sample_params(
    n: usize,
    max_tokens: usize,
    temperature: f32,
    top_p: f32,
    top_k: Option<usize>,
    seed: Option<u64>,
    stop: Vec<String>,
) -> Vec<SampleParams> {
    let seed = seed.unwrap_or_else(fresh_seed);
    (0..n)
        .map(|idx| SampleParams {
            max_tokens,
            sampling: SamplingConfig {
                temperature,
                top_k: top_k.filter(|k| *k > 0),
                top_p,
                seed: seed.wrapping_add(idx as u64),
            },
            stop_strings: stop.clone(),
        })
        .collect()
}

async fn completions(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let result = completions_inner(&app, started, &headers, body).await;
    record(&app, "/v1/completions", started, result).await
}

async fn completions_inner(
    app: &Arc<App>,
    started: Instant,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let grant = authorize(app, headers)?;
    let req: CompletionBody = read_json(app, grant.as_ref(), body).await?;
    check_model(app, req.model.as_deref())?;
    let mut prompts = req.prompt.into_vec();
    if prompts.len() != 1 {
        return Err(ApiError::bad_request(
            "send exactly one prompt per request (use `n` for several samples)",
        ));
    }
    let prompt = prompts.swap_remove(0);
    let n = req.n.unwrap_or(1);
    if n == 0 || n > app.limits.max_n {
        return Err(ApiError::bad_request(format!(
            "n must be between 1 and {}",
            app.limits.max_n
        )));
    }
    let limit = max_tokens_limit(app, grant.as_ref());
    let max_tokens = req.max_tokens.unwrap_or(16);
    if max_tokens == 0 || max_tokens > limit {
        return Err(ApiError::bad_request(format!(
            "max_tokens must be between 1 and {limit}"
        )));
    }
    let temperature = req.temperature.unwrap_or(1.0);
    let top_p = req.top_p.unwrap_or(1.0);
    validate_sampling(temperature, top_p)?;
    let logprobs = req.logprobs;
    if logprobs.is_some_and(|k| k > MAX_LOGPROBS) {
        return Err(ApiError::bad_request(format!(
            "logprobs must be at most {MAX_LOGPROBS}"
        )));
    }
    let stop = req.stop.map(OneOrMany::into_vec).unwrap_or_default();
    if stop.len() > 4 {
        return Err(ApiError::bad_request("at most 4 stop sequences"));
    }
    let tokenizer = &app.model.tokenizer;
    let tokens = match req.suffix.as_deref() {
        // With a suffix: fill-in-the-middle, user text kept as text.
        Some(suffix) => {
            let special = tokenizer.special();
            let (Some(pre), Some(suf), Some(mid)) =
                (special.fim_prefix, special.fim_suffix, special.fim_middle)
            else {
                return Err(ApiError::bad_request(
                    "this model has no fill-in-the-middle tokens; `suffix` is not supported",
                ));
            };
            tokenizer.encode_pieces(&[
                PromptPiece::Token(pre),
                PromptPiece::Text(prompt),
                PromptPiece::Token(suf),
                PromptPiece::Text(suffix.to_string()),
                PromptPiece::Token(mid),
            ])
        }
        // A rendered prompt: special-token text becomes tokens, as in
        // other OpenAI-compatible servers (clients render FIM themselves).
        None => encode_template(tokenizer, &prompt).map_err(|e| match e {
            codegen_engine::EngineError::Model(m) => m,
            other => codegen_model::ModelError::Tokenizer(other.to_string()),
        }),
    }
    .map_err(|e| ApiError::bad_request(format!("cannot tokenize the prompt: {e}")))?;
    let max_tokens = fit_context(app, tokens.len(), max_tokens)?;
    let samples = sample_params(n, max_tokens, temperature, top_p, req.top_k, req.seed, stop);
    let rx = submit(app, tokens, samples, logprobs)?;
    let id = format!("cmpl-{:x}", fresh_seed());
    if req.stream.unwrap_or(false) {
        return Ok(stream_completions(
            app.clone(),
            started,
            rx,
            n,
            id,
            logprobs.is_some(),
        ));
    }
    let out = collect(app, started, rx, n).await?;
    let choices: Vec<Value> = (0..n)
        .map(|idx| {
            json!({
                "text": out.texts[idx],
                "index": idx,
                "logprobs": logprobs.map(|_| logprobs_json(&out.logprobs[idx], out.texts[idx].len())),
                "finish_reason": openai_finish(out.finishes[idx]),
            })
        })
        .collect();
    let completion_tokens: usize = out.n_tokens.iter().sum();
    Ok(axum::Json(json!({
        "id": id,
        "object": "text_completion",
        "created": unix_now(),
        "model": app.model_id,
        "choices": choices,
        "usage": {
            "prompt_tokens": out.n_prompt,
            "completion_tokens": completion_tokens,
            "total_tokens": out.n_prompt + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": out.n_reused},
        },
    }))
    .into_response())
}

/// Turns a scheduler event into the data of a server-sent event (or none).
type Render = Box<dyn FnMut(&Event) -> Option<String> + Send>;

/// State of a streamed reply.
struct StreamState {
    app: Arc<App>,
    started: Instant,
    rx: UnboundedReceiver<Event>,
    queued: VecDeque<String>,
    n_left: usize,
    first: bool,
    done: bool,
    endpoint: &'static str,
    render: Render,
    end: Option<String>,
}

fn stream_completions(
    app: Arc<App>,
    started: Instant,
    rx: UnboundedReceiver<Event>,
    n: usize,
    id: String,
    with_logprobs: bool,
) -> Response {
    let model = app.model_id.clone();
    let created = unix_now();
    let chunk = move |idx: usize, text: &str, logprobs: Option<Value>, finish: Option<&str>| {
        json!({
            "id": id,
            "object": "text_completion",
            "created": created,
            "model": model,
            "choices": [{"text": text, "index": idx, "logprobs": logprobs, "finish_reason": finish}],
        })
        .to_string()
    };
    let render = Box::new(move |event: &Event| match event {
        Event::Text {
            sample,
            text,
            logprobs,
        } => Some(chunk(
            *sample,
            text,
            with_logprobs.then(|| logprobs_json(logprobs, usize::MAX)),
            None,
        )),
        Event::Finished { sample, finish, .. } => {
            Some(chunk(*sample, "", None, Some(openai_finish(Some(*finish)))))
        }
        _ => None,
    });
    streamed(StreamState {
        app,
        started,
        rx,
        queued: VecDeque::new(),
        n_left: n,
        first: true,
        done: false,
        endpoint: "/v1/completions",
        render,
        end: Some("[DONE]".to_string()),
    })
}

fn streamed(state: StreamState) -> Response {
    let stream = futures_util::stream::unfold(state, |mut state| async move {
        loop {
            if let Some(data) = state.queued.pop_front() {
                return Some((
                    Ok::<_, std::convert::Infallible>(SseEvent::default().data(data)),
                    state,
                ));
            }
            if state.done {
                return None;
            }
            if state.n_left == 0 {
                state.done = true;
                state.app.metrics.request(
                    state.endpoint,
                    200,
                    state.started.elapsed().as_secs_f64(),
                );
                if let Some(end) = state.end.take() {
                    state.queued.push_back(end);
                }
                continue;
            }
            match state.rx.recv().await {
                Some(Event::Failed(message)) => {
                    state.done = true;
                    state.app.metrics.request(
                        state.endpoint,
                        500,
                        state.started.elapsed().as_secs_f64(),
                    );
                    state.queued.push_back(json!({"error": {"message": message, "type": "server_error", "code": "generation_failed"}}).to_string());
                }
                Some(event) => {
                    if let Event::Text { .. } = event {
                        if state.first {
                            state.first = false;
                            state
                                .app
                                .metrics
                                .observe_first_token_secs(state.started.elapsed().as_secs_f64());
                        }
                    }
                    if let Event::Finished { .. } = event {
                        state.n_left -= 1;
                    }
                    if let Some(data) = (state.render)(&event) {
                        state.queued.push_back(data);
                    }
                }
                None => {
                    state.done = true;
                }
            }
        }
    });
    let mut response = Sse::new(stream).into_response();
    response.extensions_mut().insert(Streamed);
    response
}

#[derive(Deserialize)]
struct ExtraChunk {
    filename: Option<String>,
    text: String,
}

#[derive(Deserialize)]
struct InfillBody {
    model: Option<String>,
    input_prefix: Option<String>,
    input_suffix: Option<String>,
    input_extra: Option<Vec<ExtraChunk>>,
    prompt: Option<String>,
    n_predict: Option<i64>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    top_k: Option<usize>,
    seed: Option<u64>,
    stop: Option<Vec<String>>,
    stream: Option<bool>,
}

async fn infill(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let result = infill_inner(&app, started, &headers, body, false).await;
    record(&app, "/infill", started, result).await
}

/// llama-server's `/completion`: a prompt (special-token text parsed), the
/// same parameters and reply as `/infill`.
async fn completion(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let result = infill_inner(&app, started, &headers, body, true).await;
    record(&app, "/completion", started, result).await
}

/// llama-server's infill prompt: the extra files under file separators
/// (after a repository name), then prefix, suffix and middle.
fn infill_pieces(app: &App, req: &InfillBody) -> Result<Vec<PromptPiece>, ApiError> {
    let special = app.model.tokenizer.special();
    let (Some(pre), Some(suf), Some(mid)) =
        (special.fim_prefix, special.fim_suffix, special.fim_middle)
    else {
        return Err(ApiError::bad_request(
            "this model has no fill-in-the-middle tokens",
        ));
    };
    let mut pieces = Vec::new();
    let extra = req.input_extra.as_deref().unwrap_or_default();
    if !extra.is_empty() {
        if let Some(repo) = special.repo_name {
            pieces.push(PromptPiece::Token(repo));
            pieces.push(PromptPiece::Text("myproject\n".into()));
        }
        for chunk in extra {
            let filename = chunk.filename.as_deref().unwrap_or("tmp");
            match special.file_sep {
                Some(sep) => {
                    pieces.push(PromptPiece::Token(sep));
                    pieces.push(PromptPiece::Text(format!("{filename}\n{}", chunk.text)));
                }
                None => pieces.push(PromptPiece::Text(chunk.text.clone())),
            }
        }
        if let Some(sep) = special.file_sep {
            pieces.push(PromptPiece::Token(sep));
            pieces.push(PromptPiece::Text("filename\n".into()));
        }
    }
    let mut prefix = req.input_prefix.clone().unwrap_or_default();
    prefix.push_str(req.prompt.as_deref().unwrap_or(""));
    pieces.extend([
        PromptPiece::Token(pre),
        PromptPiece::Text(prefix),
        PromptPiece::Token(suf),
        PromptPiece::Text(req.input_suffix.clone().unwrap_or_default()),
        PromptPiece::Token(mid),
    ]);
    Ok(pieces)
}

async fn infill_inner(
    app: &Arc<App>,
    started: Instant,
    headers: &HeaderMap,
    body: Body,
    plain_completion: bool,
) -> Result<Response, ApiError> {
    let grant = authorize(app, headers)?;
    let req: InfillBody = read_json(app, grant.as_ref(), body).await?;
    check_model(app, req.model.as_deref())?;
    let limit = max_tokens_limit(app, grant.as_ref());
    let max_tokens = match req.n_predict {
        None | Some(..=-1) => limit,
        Some(0) => return Err(ApiError::bad_request("n_predict must be positive, or -1")),
        Some(n) if n as u64 > limit as u64 => {
            return Err(ApiError::bad_request(format!(
                "n_predict must be at most {limit}"
            )))
        }
        Some(n) => n as usize,
    };
    let temperature = req.temperature.unwrap_or(0.8);
    let top_p = req.top_p.unwrap_or(0.95);
    validate_sampling(temperature, top_p)?;
    let tokens = if plain_completion {
        let prompt = req
            .prompt
            .as_deref()
            .ok_or_else(|| ApiError::bad_request("`prompt` is required"))?;
        encode_template(&app.model.tokenizer, prompt)
            .map_err(|e| ApiError::bad_request(format!("cannot tokenize the prompt: {e}")))?
    } else {
        let pieces = infill_pieces(app, &req)?;
        app.model
            .tokenizer
            .encode_pieces(&pieces)
            .map_err(|e| ApiError::bad_request(format!("cannot tokenize the input: {e}")))?
    };
    let max_tokens = fit_context(app, tokens.len(), max_tokens)?;
    let stop = req.stop.clone().unwrap_or_default();
    let samples = sample_params(
        1,
        max_tokens,
        temperature,
        top_p,
        Some(req.top_k.unwrap_or(40)),
        req.seed,
        stop,
    );
    let rx = submit(app, tokens, samples, None)?;
    let model = app.model_id.clone();
    let summary = move |content: &str,
                        finish: Option<Finish>,
                        n_predicted: usize,
                        n_prompt: usize,
                        n_cached: usize| {
        json!({
            "content": content,
            "index": 0,
            "id_slot": 0,
            "stop": true,
            "model": model,
            "tokens_predicted": n_predicted,
            "tokens_evaluated": n_prompt,
            "tokens_cached": n_cached,
            "stop_type": match finish {
                Some(Finish::Length) => "limit",
                Some(Finish::StopString) => "word",
                _ => "eos",
            },
            "truncated": false,
        })
    };
    if req.stream.unwrap_or(false) {
        let mut n_prompt = 0;
        let mut n_cached = 0;
        let render = Box::new(move |event: &Event| match event {
            Event::Started {
                n_prompt_tokens,
                n_reused_tokens,
            } => {
                n_prompt = *n_prompt_tokens;
                n_cached = *n_reused_tokens;
                None
            }
            Event::Text { text, .. } => {
                Some(json!({"content": text, "index": 0, "stop": false}).to_string())
            }
            Event::Finished {
                finish, n_tokens, ..
            } => Some(summary("", Some(*finish), *n_tokens, n_prompt, n_cached).to_string()),
            Event::Failed(_) => None,
        });
        return Ok(streamed(StreamState {
            app: app.clone(),
            started,
            rx,
            queued: VecDeque::new(),
            n_left: 1,
            first: true,
            done: false,
            endpoint: if plain_completion {
                "/completion"
            } else {
                "/infill"
            },
            render,
            end: None,
        }));
    }
    let out = collect(app, started, rx, 1).await?;
    Ok(axum::Json(summary(
        &out.texts[0],
        out.finishes[0],
        out.n_tokens[0],
        out.n_prompt,
        out.n_reused,
    ))
    .into_response())
}

async fn models(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let started = Instant::now();
    let result = authorize(&app, &headers).map(|_| {
        axum::Json(json!({
            "object": "list",
            "data": [{
                "id": app.model_id,
                "object": "model",
                "created": app.created,
                "owned_by": "codegen",
                "meta": {
                    "n_ctx_train": app.model.model.config().context_length,
                    "n_vocab": app.model.tokenizer.vocab_size(),
                },
            }],
        }))
        .into_response()
    });
    record(&app, "/v1/models", started, result).await
}

async fn health(State(app): State<Arc<App>>) -> Response {
    let started = Instant::now();
    let response = axum::Json(json!({"status": "ok", "model": app.model_id})).into_response();
    record(&app, "/health", started, Ok(response)).await
}

async fn metrics(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let started = Instant::now();
    let result = authorize(&app, &headers).map(|_| {
        (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            app.metrics.render(),
        )
            .into_response()
    });
    record(&app, "/metrics", started, result).await
}

async fn not_found(State(app): State<Arc<App>>) -> Response {
    let started = Instant::now();
    let result: Result<Response, ApiError> = Err(ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint (try /v1/completions, /v1/models, /infill, /health, /metrics)",
    ));
    record(&app, "other", started, result).await
}
