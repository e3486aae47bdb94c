use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub fn codegen() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_codegen"));
    cmd.stdin(Stdio::null());
    cmd
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(cmd: &mut Command) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("the codegen binary runs");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs untrusted (model-written) Python in the project's sandbox.
pub fn run_sandboxed(program: &str) -> codegen_sandbox::Outcome {
    let sandbox = codegen_sandbox::Sandbox::new(codegen_sandbox::SandboxConfig::default())
        .expect("the sandbox is available (namespaces allowed)");
    sandbox.run_python(program)
}
