use anyhow::{Context, Result};
use clap::Subcommand;
use codegen_store::Store;

#[derive(Subcommand)]
pub enum ModelCommand {
    /// Known models: name, size, whether cached.
    List,
    /// Download a model into the cache (default: the default model).
    Fetch { name: Option<String> },
    /// Re-hash a cached model and check it against its manifest.
    Verify { name: Option<String> },
    /// Print the path of a model's file in the cache.
    Path { name: Option<String> },
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0))
}

pub fn run(cmd: ModelCommand) -> Result<()> {
    let store = Store::from_env();
    match cmd {
        ModelCommand::List => {
            println!("{:<32} {:>9}  {:<8} DESCRIPTION", "NAME", "SIZE", "CACHED");
            for m in store.manifests() {
                let size = m.size().map(mib).unwrap_or_else(|| "?".into());
                let cached = if store.cached(m).is_some() {
                    "yes"
                } else {
                    "no"
                };
                let default = if m.default { " (default)" } else { "" };
                println!(
                    "{:<32} {:>9}  {:<8} {}{}",
                    m.name, size, cached, m.description, default
                );
            }
            println!("cache: {}", store.root().display());
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
    }
    Ok(())
}
