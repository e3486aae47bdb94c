//! End-to-end tests: they drive the built `codegen` binary like a user does.
//! Tests marked "real model" use the default model through the same fetch
//! path and cache as users (`~/.cache/codegen`, or `$CODEGEN_HOME`).

mod bench;
mod cli;
mod kernels;
mod lsp;
mod nvim;
mod nvim_plugin;
mod support;
mod tokenizer;
