//! Loading the model in the background, with `$/progress` (the download's
//! percentage and bytes, throttled), `codegen/status` and errors to
//! `window/logMessage`.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use codegen_engine::{LoadedModel, TypedThroughCache};
use codegen_model::DeviceKind;
use tower_lsp_server::ls_types::{MessageType, NumberOrString, ProgressToken};

use crate::settings::Settings;
use crate::state::{
    lock, CandidateState, DownloadProgress, ModelResolver, ModelState, ProgressSink, ServerState,
};

/// Reports closer together than this are dropped (a download calls back
/// for every chunk).
const REPORT_INTERVAL: Duration = Duration::from_millis(250);

/// One `$/progress` report: percentage (0-100) and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProgressReport {
    pub percentage: u32,
    pub message: String,
}

/// Turns a stream of [`DownloadProgress`] into few reports: one when the
/// whole percentage changes and at least [`REPORT_INTERVAL`] has passed
/// since the last report; the first report, the last (100%) and the start
/// of verification always go out.
pub(crate) struct ProgressThrottle {
    interval: Duration,
    last: Option<(Instant, u32, bool)>,
}

impl ProgressThrottle {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: None,
        }
    }

    pub fn update(&mut self, progress: DownloadProgress, now: Instant) -> Option<ProgressReport> {
        if progress.total == 0 {
            return None;
        }
        let done = progress.done.min(progress.total);
        let percent = (done as u128 * 100 / progress.total as u128) as u32;
        let due = match self.last {
            None => true,
            Some((_, _, was_verifying)) if was_verifying != progress.verifying => true,
            Some((_, last_percent, _)) if last_percent == percent => false,
            Some(_) if percent == 100 => true,
            Some((at, _, _)) => now.saturating_duration_since(at) >= self.interval,
        };
        if !due {
            return None;
        }
        self.last = Some((now, percent, progress.verifying));
        let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
        let bytes = format!("{:.1} / {:.1} MiB", mib(done), mib(progress.total));
        Some(if progress.verifying {
            // The download is complete; the bar stays full while the file
            // is checked.
            ProgressReport {
                percentage: 100,
                message: format!("verifying {bytes}"),
            }
        } else {
            ProgressReport {
                percentage: percent,
                message: bytes,
            }
        })
    }
}

/// Starts loading the model the settings name; requests meanwhile get no
/// suggestions. A later call supersedes an unfinished one.
pub(crate) fn start_loading(state: Arc<ServerState>) {
    let generation = state.load_generation.fetch_add(1, Ordering::SeqCst) + 1;
    *lock(&state.model_state) = ModelState::Loading;
    // Suggestions on screen came from the old model.
    *lock(&state.typed_through) = TypedThroughCache::new();
    tokio::spawn(async move {
        state.send_status().await;
        let settings = state.settings();
        let title = format!(
            "codegen: loading {}",
            settings.model.as_deref().unwrap_or("the default model")
        );
        let progress = if state.client_supports_progress.load(Ordering::Relaxed) {
            let token: ProgressToken = NumberOrString::String(format!("codegen/load/{generation}"));
            match state.client.create_work_done_progress(token.clone()).await {
                Ok(()) => Some(
                    state
                        .client
                        .progress(token, title)
                        .with_percentage(0)
                        .begin()
                        .await,
                ),
                Err(_) => None,
            }
        } else {
            None
        };
        let resolver = state.options.resolve_model.clone();
        let default_draft = state.options.default_draft.clone();
        let busy_state = state.clone();
        let gate = state.options.gate.clone();
        let (report_tx, mut report_rx) = tokio::sync::mpsc::unbounded_channel::<ProgressReport>();
        let throttle = Mutex::new(ProgressThrottle::new(REPORT_INTERVAL));
        let sink: ProgressSink = Arc::new(move |download| {
            if let Some(report) = lock(&throttle).update(download, Instant::now()) {
                let _ = report_tx.send(report);
            }
        });
        let loading = tokio::task::spawn_blocking(move || {
            let model = load_model(&resolver, &default_draft, &settings, sink)?;
            if let Some(gate) = &gate {
                gate(&model, &|| busy_state.engine.is_busy())?;
            }
            Ok(model)
        });
        // The sink (and with it the sender) is dropped when loading ends.
        while let Some(report) = report_rx.recv().await {
            if let Some(progress) = &progress {
                progress
                    .report_with_message(report.message, report.percentage)
                    .await;
            }
        }
        let result = loading
            .await
            .unwrap_or_else(|err| Err(format!("model loading failed: {err}")));
        if state.load_generation.load(Ordering::SeqCst) != generation {
            if let Some(progress) = progress {
                progress.finish_with_message("superseded").await;
            }
            return;
        }
        let message = match result {
            Ok(model) => {
                let name = model.display_name();
                let message = format!("codegen: model {name} ready ({:.1} s)", model.load_secs);
                let mut files = vec![model.path.clone()];
                files.extend((state.options.watch_files)(&model.name));
                *lock(&state.model_files) = Some(Fingerprint::of(files));
                state.engine.set_model(Some(model));
                // A model that just loaded has not been idle.
                *lock(&state.last_request) = Instant::now();
                *lock(&state.model_state) = ModelState::Ready(name);
                state.client.log_message(MessageType::INFO, &message).await;
                // A candidate released with the model (idle) loads again.
                let candidate_missing = matches!(*lock(&state.candidate), CandidateState::None);
                if candidate_missing && state.settings().shadow_model.is_some() {
                    crate::shadow::start_loading_candidate(state.clone());
                }
                message
            }
            Err(message) => {
                tracing::error!("{message}");
                // The model that was serving (if any) keeps serving.
                let message = match state.engine.model() {
                    Some(old) => format!("{message}; still serving {}", old.display_name()),
                    None => message,
                };
                *lock(&state.model_state) = ModelState::Error(message.clone());
                state
                    .client
                    .log_message(MessageType::ERROR, format!("codegen: {message}"))
                    .await;
                message
            }
        };
        if let Some(progress) = progress {
            progress.finish_with_message(message).await;
        }
        state.send_status().await;
    });
}

pub(crate) fn load_model(
    resolver: &ModelResolver,
    default_draft: &crate::state::DraftLookup,
    settings: &Settings,
    progress: ProgressSink,
) -> Result<Arc<LoadedModel>, String> {
    if let Some(n) = settings.threads {
        // The editor's `threads` setting resizes the kernels' pool.
        let (config, _) = codegen_model::RuntimeConfig::from_env();
        config.with_threads(Some(n)).apply();
    }
    let device: DeviceKind = settings
        .device
        .parse()
        .map_err(|e| format!("device {:?}: {e}", settings.device))?;
    let device = device
        .open()
        .map_err(|e| format!("cannot open device {}: {e}", settings.device))?;
    let (name, path) = resolver(settings.model.as_deref(), progress.clone())?;
    let model = LoadedModel::load(&name, &path, &device)
        .map_err(|e| format!("cannot load model {}: {e}", path.display()))?;
    if let Some(spec) = &settings.backend {
        // Samples come from the remote engine; the local file gives the
        // tokenizer and the context length for prompt budgets.
        let mut config = codegen_engine::RemoteConfig::parse(spec).map_err(|e| e.to_string())?;
        config.model = settings.backend_model.clone();
        config.api_key = std::env::var("CODEGEN_BACKEND_KEY")
            .ok()
            .filter(|k| !k.is_empty());
        let backend = codegen_engine::RemoteBackend::new(config);
        return Ok(Arc::new(model.with_remote(Arc::new(backend))));
    }
    let draft_spec = match settings.draft_model.as_deref() {
        Some("none") => None,
        Some(spec) => Some(spec.to_string()),
        None => default_draft(&name),
    };
    let Some(spec) = draft_spec else {
        return Ok(Arc::new(model));
    };
    let (draft_name, draft_path) =
        resolver(Some(&spec), progress).map_err(|e| format!("draft model {spec}: {e}"))?;
    if draft_path == path {
        return Ok(Arc::new(model));
    }
    let draft = LoadedModel::load(&draft_name, &draft_path, &device)
        .map_err(|e| format!("cannot load draft model {}: {e}", draft_path.display()))?;
    model
        .with_draft(Arc::new(draft))
        .map(Arc::new)
        .map_err(|e| format!("{e}"))
}

/// Releases the model (weights and KV caches) once no completion request
/// has come for `idleUnloadSecs`; logs it and reports `idle` in
/// `codegen/status`. The next request loads it again.
pub(crate) fn watch_idle(state: Arc<ServerState>) {
    tokio::spawn(async move {
        loop {
            let idle = state.settings().idle_unload_secs;
            let check = if idle == 0 {
                Duration::from_secs(5)
            } else {
                Duration::from_millis((idle * 1000 / 4).clamp(200, 30_000))
            };
            tokio::time::sleep(check).await;
            if state.shutdown_requested.load(Ordering::Relaxed) {
                break;
            }
            if idle == 0 {
                continue;
            }
            let since = lock(&state.last_request).elapsed();
            let in_flight = state.requests_in_flight.load(Ordering::SeqCst);
            if since < Duration::from_secs(idle) || in_flight > 0 {
                continue;
            }
            let name = match &*lock(&state.model_state) {
                ModelState::Ready(name) => name.clone(),
                _ => continue,
            };
            if state.engine.retire_model().is_none() {
                continue;
            }
            // The candidate goes too, and comes back with the model.
            let candidate = std::mem::replace(&mut *lock(&state.candidate), CandidateState::None);
            if let CandidateState::Ready(candidate) = candidate {
                state.engine.registry().remove(&candidate);
            }
            let secs = since.as_secs();
            *lock(&state.model_state) = ModelState::Retired {
                name: name.clone(),
                secs,
            };
            tracing::info!(model = %name, secs, "model released while idle");
            state
                .client
                .log_message(
                    MessageType::INFO,
                    format!("codegen: released model {name} after {secs} s without requests"),
                )
                .await;
            state.send_status().await;
        }
    });
}

/// What a model's files looked like when it loaded: a replaced or
/// rewritten file (another inode, size or modification time) loads it again.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Fingerprint {
    files: Vec<(PathBuf, Option<FileState>)>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct FileState {
    len: u64,
    modified: Option<std::time::SystemTime>,
    inode: u64,
}

fn file_state(path: &std::path::Path) -> Option<FileState> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some(FileState {
        len: meta.len(),
        modified: meta.modified().ok(),
        inode: meta.ino(),
    })
}

impl Fingerprint {
    pub fn of(paths: Vec<PathBuf>) -> Self {
        Self {
            files: paths
                .into_iter()
                .map(|p| {
                    let state = file_state(&p);
                    (p, state)
                })
                .collect(),
        }
    }

    /// The first file that changed, with the fingerprint as it is now.
    pub fn changed(&self) -> Option<(PathBuf, Fingerprint)> {
        let now = Fingerprint::of(self.files.iter().map(|(p, _)| p.clone()).collect());
        let changed = self
            .files
            .iter()
            .zip(&now.files)
            .find(|(a, b)| a.1 != b.1)
            .map(|(a, _)| a.0.clone())?;
        Some((changed, now))
    }
}

/// Loads the model again when its file (or manifest) changes on disk: the
/// old one keeps serving until the new one has loaded and passed the gate;
/// a change that does not load (a truncated file) leaves it serving.
pub(crate) fn watch_model_files(state: Arc<ServerState>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(state.options.watch_interval).await;
            if state.shutdown_requested.load(Ordering::Relaxed) {
                break;
            }
            if !matches!(
                &*lock(&state.model_state),
                ModelState::Ready(_) | ModelState::Error(_)
            ) {
                continue;
            }
            let change = lock(&state.model_files)
                .as_ref()
                .and_then(Fingerprint::changed);
            let Some((path, now)) = change else {
                continue;
            };
            *lock(&state.model_files) = Some(now);
            let message = format!(
                "codegen: {} changed on disk; loading the model again (the current one serves meanwhile)",
                path.display()
            );
            tracing::info!("{message}");
            state.client.log_message(MessageType::INFO, message).await;
            start_loading(state.clone());
        }
    });
}
