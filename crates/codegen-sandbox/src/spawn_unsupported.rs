//! Stand-in for platforms without the namespaces the sandbox needs: every
//! run is refused (and `Sandbox::new` fails with `SandboxError::Unsupported`).

use std::path::Path;
use std::time::Duration;

use crate::{Outcome, SandboxConfig, Status};

#[allow(dead_code)]
pub(crate) struct Request<'a> {
    pub(crate) cfg: &'a SandboxConfig,
    pub(crate) python: &'a Path,
    pub(crate) namespaces: bool,
    pub(crate) secret: Option<&'a str>,
    pub(crate) program: &'a str,
    pub(crate) timeout: Duration,
}

pub(crate) fn run(_req: &Request) -> Outcome {
    Outcome {
        status: Status::Error {
            message: "sandboxing is only implemented on Linux".into(),
        },
        stdout: String::new(),
        stderr: String::new(),
        stdout_total_bytes: 0,
        stderr_total_bytes: 0,
        exit_code: None,
        signal: None,
        duration: Duration::ZERO,
        verdicts: Vec::new(),
    }
}
