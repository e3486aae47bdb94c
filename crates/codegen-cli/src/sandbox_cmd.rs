//! `codegen sandbox run FILE.py`: run an untrusted Python program in the
//! sandbox and report how it ended.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use codegen_sandbox::{Sandbox, SandboxConfig, Status};

#[derive(Args, Debug)]
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
    /// Run without namespaces when the kernel refuses them.
    #[arg(long)]
    pub unsafe_no_sandbox: bool,
}

pub fn run(args: RunArgs) -> Result<()> {
    let program = if args.file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("cannot read standard input")?
    } else {
        std::fs::read_to_string(&args.file)
            .with_context(|| format!("cannot read {}", args.file.display()))?
    };
    let sandbox = Sandbox::new(SandboxConfig {
        timeout: Duration::from_secs(args.timeout.max(1)),
        cpu_seconds: args.timeout.max(1),
        memory_bytes: args.memory_mib << 20,
        max_processes: args.processes.max(1),
        allow_unsandboxed: args.unsafe_no_sandbox,
        ..SandboxConfig::default()
    })?;
    let outcome = sandbox.run_python(&program);
    print!("{}", outcome.stdout);
    eprint!("{}", outcome.stderr);
    match outcome.status {
        Status::Passed => Ok(()),
        Status::Failed { last_line } => bail!("the program failed: {last_line}"),
        Status::TimedOut => bail!("the program timed out after {} s", args.timeout),
        Status::Error { message } => bail!("the sandbox could not run the program: {message}"),
    }
}
