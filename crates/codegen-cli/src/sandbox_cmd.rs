//! `codegen sandbox run FILE.py`: run an untrusted Python program in the
//! sandbox and report how it ended.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use codegen_sandbox::{Sandbox, SandboxConfig, Status};

/// Exit status of `codegen sandbox run`: the program's own exit status when
/// it exited; 128 + N when a signal N killed it; these when it did not end
/// on its own.
pub const EXIT_TIMED_OUT: i32 = 124;
/// The sandbox refused or failed to start the program (see the message).
pub const EXIT_SANDBOX_ERROR: i32 = 125;

#[derive(Args, Debug)]
#[command(
    after_help = "Exit status: the program's own status; 128+N if signal N killed it; \
124 if it timed out (wall clock or CPU time); 125 if the sandbox refused or failed to start it."
)]
pub struct RunArgs {
    /// The Python program (`-` reads standard input).
    pub file: PathBuf,
    /// Wall-clock limit, seconds.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
    /// Address-space limit, MiB.
    #[arg(long, default_value_t = 2048)]
    pub memory_mib: u64,
    /// Processes and threads the program may have at once.
    #[arg(long, default_value_t = 32)]
    pub processes: u64,
    /// A host path to show the program read-only, at the same place (for
    /// example a site-packages directory); repeatable. Nothing but the
    /// interpreter, its standard library and its libraries is there otherwise.
    #[arg(long = "ro", value_name = "PATH")]
    pub read_only: Vec<PathBuf>,
    /// Run without namespaces, the minimal root and the system-call filter
    /// when the kernel refuses them (no isolation: trusted code only).
    #[arg(long)]
    pub unsafe_no_sandbox: bool,
}

/// Runs the program and exits with the status documented on [`RunArgs`].
pub fn run(args: RunArgs) -> Result<()> {
    let program = if args.file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("cannot read standard input")?
    } else {
        std::fs::read_to_string(&args.file)
            .with_context(|| format!("cannot read {}", args.file.display()))?
    };
    let sandbox = match Sandbox::new(SandboxConfig {
        timeout: Duration::from_secs(args.timeout.max(1)),
        cpu_seconds: args.timeout.max(1),
        memory_bytes: args.memory_mib << 20,
        max_processes: args.processes.max(1),
        allow_unsandboxed: args.unsafe_no_sandbox,
        extra_ro_paths: args.read_only.clone(),
        ..SandboxConfig::default()
    }) {
        Ok(sandbox) => sandbox,
        Err(e) => {
            eprintln!("codegen: error: {e}");
            std::process::exit(EXIT_SANDBOX_ERROR);
        }
    };
    let outcome = sandbox.run_python(&program);
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(outcome.stdout.as_bytes());
        let _ = out.flush();
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(outcome.stderr.as_bytes());
        let _ = err.flush();
    }
    let code = match outcome.status {
        Status::Passed => 0,
        Status::Failed { last_line } => {
            eprintln!("codegen: the program failed: {last_line}");
            match (outcome.exit_code, outcome.signal) {
                (Some(code), _) => code,
                (None, Some(sig)) => 128 + sig,
                (None, None) => 1,
            }
        }
        Status::TimedOut => {
            eprintln!("codegen: the program timed out after {} s", args.timeout);
            EXIT_TIMED_OUT
        }
        Status::Error { message } => {
            eprintln!("codegen: the sandbox could not run the program: {message}");
            EXIT_SANDBOX_ERROR
        }
    };
    std::process::exit(code)
}
