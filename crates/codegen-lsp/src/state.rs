//! Everything the handlers share. Handlers lock briefly, copy what they
//! need (a snapshot) and release before any await or engine work.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use codegen_context::position::PositionEncoding;
use codegen_engine::{Counters, Engine, EngineConfig, TypedThroughCache};
use serde::{Deserialize, Serialize};
use tower_lsp_server::ls_types::notification::Notification;
use tower_lsp_server::Client;

use crate::documents::Documents;
use crate::monitor::DriftConfig;
use crate::settings::Settings;
use crate::telemetry::TelemetryLog;

/// How far the download of a model has come, as the host reports it while
/// resolving the model (`total` is 0 while unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownloadProgress {
    pub done: u64,
    pub total: u64,
    /// Hashing the downloaded file rather than downloading it.
    pub verifying: bool,
}

/// Where a resolver reports [`DownloadProgress`] (often: the server throttles).
pub type ProgressSink = Arc<dyn Fn(DownloadProgress) + Send + Sync>;

/// Finds the GGUF file for a model setting (a name, a path or a hub
/// reference; `None` is the default model), downloading it if need be and
/// reporting the download's progress to the sink: `(name, path)` or a
/// message for the user.
pub type ModelResolver =
    Arc<dyn Fn(Option<&str>, ProgressSink) -> Result<(String, PathBuf), String> + Send + Sync>;

/// The draft model a model's manifest names by default (`None`: none).
pub type DraftLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Decides whether a loaded model may serve (the host validates it, e.g.
/// against a must-pass suite); `Err` says why not. Runs on a blocking
/// thread while the previous model keeps serving; the second argument says
/// whether the engine is serving a request right now (a speed measured then
/// is not the model's own).
pub type ModelGate = Arc<
    dyn Fn(&Arc<codegen_engine::LoadedModel>, &dyn Fn() -> bool) -> Result<(), String>
        + Send
        + Sync,
>;

/// How the server is set up by its host (the CLI or a test).
#[derive(Clone)]
pub struct ServerOptions {
    /// Defaults; `initializationOptions` and configuration changes override.
    pub settings: Settings,
    pub resolve_model: ModelResolver,
    /// The default draft model of a model (by its resolved name).
    pub default_draft: DraftLookup,
    /// Checked before a newly loaded model serves (`None`: every model serves).
    pub gate: Option<ModelGate>,
    /// Where acceptance telemetry is appended (`None`: nowhere).
    pub telemetry_path: Option<PathBuf>,
    pub engine: EngineConfig,
    /// Registers `codegen/debugPanic` (its handler panics) and
    /// `codegen/debugDocument` (the server's copy of a document), for tests.
    pub debug_methods: bool,
    /// How often, at most, the telemetry log is checked for drift (after a
    /// reply); `None`: never.
    pub drift_check_interval: Option<Duration>,
    pub drift: DriftConfig,
    /// How often the serving model's file (and [`ServerOptions::watch_files`])
    /// is looked at for changes; a change reloads the model.
    pub watch_interval: Duration,
    /// Files besides the GGUF whose change reloads a model (its manifest),
    /// by the model's resolved name.
    pub watch_files: WatchLookup,
}

/// The files whose change means a model must load again, by model name.
pub type WatchLookup = Arc<dyn Fn(&str) -> Vec<PathBuf> + Send + Sync>;

/// Default of [`ServerOptions::drift_check_interval`].
pub const DRIFT_CHECK_INTERVAL: Duration = Duration::from_secs(600);

impl ServerOptions {
    /// Options whose model setting must be a GGUF path.
    pub fn with_paths_only() -> Self {
        Self {
            settings: Settings::default(),
            resolve_model: Arc::new(|spec, _progress| match spec {
                Some(path) if std::path::Path::new(path).is_file() => {
                    let name = std::path::Path::new(path)
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_else(|| path.to_string());
                    Ok((name, PathBuf::from(path)))
                }
                Some(path) => Err(format!("model file {path} does not exist")),
                None => Err("no model configured: set `model` to a GGUF file".into()),
            }),
            default_draft: Arc::new(|_| None),
            gate: None,
            telemetry_path: None,
            engine: EngineConfig::default(),
            debug_methods: false,
            drift_check_interval: Some(DRIFT_CHECK_INTERVAL),
            drift: DriftConfig::default(),
            watch_interval: Duration::from_secs(5),
            watch_files: Arc::new(|_| Vec::new()),
        }
    }
}

/// `codegen/status`: what editor plugins show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusParams {
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_latency_ms: Option<f64>,
    /// The candidate model (`shadowModel`): its state, shadow and rollout
    /// shares.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidate: Option<CandidateStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CandidateStatus {
    /// `loading`, `ready` or `error`.
    pub state: String,
    pub model: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub shadow_percent: u32,
    pub rollout_percent: u32,
}

/// The candidate model's state.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CandidateState {
    None,
    Loading(String),
    /// Loaded under this name in the engine's registry.
    Ready(String),
    Error {
        spec: String,
        message: String,
    },
}

pub enum CodegenStatus {}

impl Notification for CodegenStatus {
    type Params = StatusParams;
    const METHOD: &'static str = "codegen/status";
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ModelState {
    NotStarted,
    Loading,
    Ready(String),
    Error(String),
    /// Released after `secs` seconds without requests.
    Retired {
        name: String,
        secs: u64,
    },
}

/// A suggestion returned to the editor, kept for acceptance telemetry.
#[derive(Debug, Clone)]
pub(crate) struct ShownSuggestion {
    pub model: String,
    pub language: String,
    pub latency_ms: f64,
    pub length: usize,
}

/// Remembered suggestions, oldest dropped first.
const MAX_REMEMBERED: usize = 2048;

#[derive(Default)]
pub(crate) struct ShownLog {
    by_id: HashMap<String, ShownSuggestion>,
    order: VecDeque<String>,
}

impl ShownLog {
    pub fn insert(&mut self, id: String, shown: ShownSuggestion) {
        if self.order.len() >= MAX_REMEMBERED {
            if let Some(old) = self.order.pop_front() {
                self.by_id.remove(&old);
            }
        }
        self.order.push_back(id.clone());
        self.by_id.insert(id, shown);
    }

    pub fn get(&self, id: &str) -> Option<&ShownSuggestion> {
        self.by_id.get(id)
    }
}

pub(crate) struct ServerState {
    pub options: ServerOptions,
    pub settings: Mutex<Settings>,
    pub encoding: Mutex<PositionEncoding>,
    pub documents: Mutex<Documents>,
    pub engine: Engine,
    pub counters: Arc<Counters>,
    pub typed_through: Mutex<TypedThroughCache>,
    pub model_state: Mutex<ModelState>,
    /// When the last completion request came (for idle retirement).
    pub last_request: Mutex<std::time::Instant>,
    /// Completion requests waiting for the engine: the model is not idle
    /// while one runs, however long it takes.
    pub requests_in_flight: std::sync::atomic::AtomicUsize,
    pub shown: Mutex<ShownLog>,
    pub telemetry: TelemetryLog,
    pub client_supports_progress: AtomicBool,
    pub shutdown_requested: AtomicBool,
    pub next_suggestion_id: AtomicU64,
    /// Bumped by each model load; a load that finishes after a newer one
    /// started is dropped.
    pub load_generation: AtomicU64,
    pub last_latency_ms: Mutex<Option<f64>>,
    /// How the last computed reply was ranked (for `codegen/engineStats`).
    pub last_ranking: Mutex<Option<serde_json::Value>>,
    pub candidate: Mutex<CandidateState>,
    /// Bumped by each candidate load, as `load_generation`.
    pub candidate_generation: AtomicU64,
    /// Replies counted for the shadow share.
    pub shadow_counter: AtomicU64,
    /// When drift was last checked.
    pub drift_checked: Mutex<Option<std::time::Instant>>,
    /// The serving model's files as they were when it loaded.
    pub model_files: Mutex<Option<crate::load::Fingerprint>>,
    /// Messages from before `initialized`, when the client may not be sent any.
    pub pending_log: Mutex<Vec<String>>,
    pub client: Client,
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Handlers never leave shared state half-written across a panic point.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl ServerState {
    pub fn new(client: Client, options: ServerOptions, engine: Engine) -> Self {
        let counters = engine.counters();
        Self {
            settings: Mutex::new(options.settings.clone()),
            telemetry: TelemetryLog::new(options.telemetry_path.clone()),
            options,
            encoding: Mutex::new(PositionEncoding::Utf16),
            documents: Mutex::new(Documents::default()),
            engine,
            counters,
            typed_through: Mutex::new(TypedThroughCache::new()),
            model_state: Mutex::new(ModelState::NotStarted),
            shown: Mutex::new(ShownLog::default()),
            client_supports_progress: AtomicBool::new(false),
            shutdown_requested: AtomicBool::new(false),
            next_suggestion_id: AtomicU64::new(1),
            load_generation: AtomicU64::new(0),
            last_latency_ms: Mutex::new(None),
            last_ranking: Mutex::new(None),
            last_request: Mutex::new(std::time::Instant::now()),
            requests_in_flight: std::sync::atomic::AtomicUsize::new(0),
            pending_log: Mutex::new(Vec::new()),
            candidate: Mutex::new(CandidateState::None),
            candidate_generation: AtomicU64::new(0),
            shadow_counter: AtomicU64::new(0),
            drift_checked: Mutex::new(None),
            model_files: Mutex::new(None),
            client,
        }
    }

    pub fn settings(&self) -> Settings {
        lock(&self.settings).clone()
    }

    pub fn encoding(&self) -> PositionEncoding {
        *lock(&self.encoding)
    }

    pub fn new_suggestion_id(&self) -> String {
        format!(
            "s{}",
            self.next_suggestion_id.fetch_add(1, Ordering::Relaxed)
        )
    }

    pub fn status(&self) -> StatusParams {
        let last_latency_ms = *lock(&self.last_latency_ms);
        let (state, model, message) = match &*lock(&self.model_state) {
            ModelState::NotStarted | ModelState::Loading => {
                ("loading", self.settings().model, None)
            }
            ModelState::Ready(name) => match self.backend_down() {
                // A remote backend that failed: completions stop until it answers.
                Some(message) => ("error", Some(name.clone()), Some(message)),
                None => ("ready", Some(name.clone()), None),
            },
            ModelState::Error(msg) => ("error", self.settings().model, Some(msg.clone())),
            ModelState::Retired { name, secs } => (
                "idle",
                Some(name.clone()),
                Some(format!(
                    "model released after {secs} s without requests; the next request loads it again"
                )),
            ),
        };
        let settings = self.settings();
        let candidate_status = |state: &str, model: &str, message: Option<String>| {
            Some(CandidateStatus {
                state: state.into(),
                model: model.into(),
                message,
                shadow_percent: settings.shadow_percent,
                rollout_percent: settings.rollout_percent,
            })
        };
        let candidate = match &*lock(&self.candidate) {
            CandidateState::None => None,
            CandidateState::Loading(spec) => candidate_status("loading", spec, None),
            CandidateState::Ready(name) => candidate_status("ready", name, None),
            CandidateState::Error { spec, message } => {
                candidate_status("error", spec, Some(message.clone()))
            }
        };
        StatusParams {
            state: state.into(),
            model,
            message,
            last_latency_ms,
            candidate,
        }
    }

    /// Why the remote backend (if the model has one) is down.
    fn backend_down(&self) -> Option<String> {
        let remote = self.engine.model()?.remote.clone()?;
        let health = remote.health();
        (!health.up).then(|| {
            format!(
                "backend {} is down: {}",
                remote.describe(),
                health.last_error.unwrap_or_default()
            )
        })
    }

    pub async fn send_status(&self) {
        self.client
            .send_notification::<CodegenStatus>(self.status())
            .await;
    }
}
