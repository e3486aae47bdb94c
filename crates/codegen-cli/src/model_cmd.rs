//! `codegen model`: list, fetch, verify, locate and remove models.

use anyhow::{Context, Result};
use clap::Subcommand;
use codegen_store::Store;

#[derive(Subcommand)]
pub enum ModelCommand {
    /// Known models: name, size, whether cached.
    List {
        /// Print JSON only: {"cache", "default", "models": [{"name",
        /// "description", "size_bytes", "cached", "default", "path"}]}.
        #[arg(long)]
        json: bool,
    },
    /// Download a model into the cache (default: the default model).
    Fetch {
        /// Model name (see `codegen model list`; default: the default model).
        name: Option<String>,
    },
    /// Re-hash a cached model and check it against its manifest.
    Verify {
        /// Model name (default: the default model).
        name: Option<String>,
    },
    /// Print the path of a model's file in the cache.
    Path {
        /// Model name (default: the default model).
        name: Option<String>,
    },
    /// Check a model before it serves: its checksum, GGUF structure and
    /// tokenizer, the must-pass completion suite (the cases of
    /// models/behavior/ marked must_pass), and
    /// prefill and greedy decode speed against the manifest's reference
    /// figures; writes a record to <cache>/validation/<sha256>.json. Exits 1
    /// when a check fails.
    Validate {
        /// Model: a name, a GGUF path or an hf: reference (default: the
        /// default model).
        model: Option<String>,
        /// Print the record as JSON only.
        #[arg(long)]
        json: bool,
        /// The share of the manifest's reference speeds this machine must
        /// reach (0 skips the speed check).
        #[arg(long, value_name = "FRACTION", default_value_t = crate::validate_cmd::SPEED_BUDGET)]
        speed_budget: f64,
    },
    /// Remove a model from codegen's cache. A model that came from the
    /// Hugging Face Hub is only unlinked: its file in the Hugging Face cache
    /// is kept (other tools may use it) and its path is printed.
    Rm {
        /// Model name (see `codegen model list`).
        name: String,
    },
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// `codegen model list --json`; editors parse this shape.
fn list_json(store: &Store) -> serde_json::Value {
    let default = store.default_manifest().ok().map(|m| m.name.clone());
    let models: Vec<serde_json::Value> = store
        .manifests()
        .iter()
        .map(|m| {
            let cached = store.cached(m);
            let size_bytes = cached
                .as_ref()
                .map(|c| c.size)
                .or_else(|| m.size())
                .unwrap_or(0);
            serde_json::json!({
                "name": m.name,
                "description": m.description,
                "size_bytes": size_bytes,
                "cached": cached.is_some(),
                "default": default.as_deref() == Some(m.name.as_str()),
                "path": cached.map(|c| std::path::absolute(&c.path).unwrap_or(c.path)),
            })
        })
        .collect();
    serde_json::json!({
        "cache": std::path::absolute(store.root()).unwrap_or_else(|_| store.root().to_path_buf()),
        "default": default,
        "models": models,
    })
}

pub fn run(cmd: ModelCommand) -> Result<()> {
    let store = Store::from_env();
    match cmd {
        ModelCommand::Validate {
            model,
            json,
            speed_budget,
        } => {
            if !crate::validate_cmd::run(model, json, speed_budget)? {
                std::process::exit(1);
            }
        }
        ModelCommand::List { json: true } => {
            println!("{}", list_json(&store));
        }
        ModelCommand::List { json: false } => {
            let mut table = crate::table(["NAME", "SIZE", "CACHED", "DESCRIPTION"]);
            for m in store.manifests() {
                let size = m.size().map(mib).unwrap_or_else(|| "?".into());
                let cached = if store.cached(m).is_some() {
                    "yes"
                } else {
                    "no"
                };
                let default = if m.default { " (default)" } else { "" };
                table.add_row(vec![
                    m.name.clone(),
                    size,
                    cached.to_string(),
                    format!("{}{default}", m.description),
                ]);
            }
            println!("{table}");
            println!("cache: {}", store.root().display());
            for error in store.manifest_errors() {
                eprintln!("warning: skipped a manifest: {error}");
            }
        }
        ModelCommand::Fetch { name } => {
            let m = store.find_or_default(name.as_deref())?;
            let path = store
                .fetch(m)
                .with_context(|| format!("cannot fetch {}", m.name))?;
            println!("{}", path.display());
        }
        ModelCommand::Verify { name } => {
            let m = store.find_or_default(name.as_deref())?;
            let report = store.verify(m)?;
            println!(
                "ok {} {} bytes sha256 {} ({})",
                report.path.display(),
                report.size,
                report.sha256,
                report.matched
            );
        }
        ModelCommand::Path { name } => {
            let m = store.find_or_default(name.as_deref())?;
            let path = store.model_path(m);
            if store.cached(m).is_none() {
                anyhow::bail!(
                    "{} is not cached yet (it would be at {}); run `codegen model fetch {}`",
                    m.name,
                    path.display(),
                    m.name
                );
            }
            println!("{}", path.display());
        }
        ModelCommand::Rm { name } => {
            let m = store.find(&name)?;
            let removed = match store.remove(m) {
                Err(codegen_store::StoreError::NotCached { .. }) => {
                    anyhow::bail!("{} is not cached: nothing to remove", m.name)
                }
                other => other?,
            };
            println!(
                "removed {} ({} freed)",
                removed.dir.display(),
                mib(removed.freed_bytes)
            );
            if let Some(kept) = removed.kept_hub_file {
                println!(
                    "kept {} in the Hugging Face cache (other tools may use it; \
                     delete it there to free its space)",
                    kept.display()
                );
            }
        }
    }
    Ok(())
}
