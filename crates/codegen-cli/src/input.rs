//! Reading the user's file and cursor, and resolving the model to load.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use codegen_store::{ModelSpec, Store};

/// Reads FILE (or stdin for `-`) as UTF-8 source text.
pub fn read_source(file: &str) -> Result<String> {
    let bytes = if file == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("cannot read standard input")?;
        bytes
    } else {
        let path = Path::new(file);
        let meta = std::fs::metadata(path).with_context(|| format!("cannot read {file}"))?;
        if meta.is_dir() {
            bail!("{file} is a directory, not a source file");
        }
        std::fs::read(path).with_context(|| format!("cannot read {file}"))?
    };
    if bytes.is_empty() {
        bail!("{file} is empty: there is no code to complete from");
    }
    if bytes.contains(&0) {
        bail!("{file} looks like a binary file (it contains NUL bytes)");
    }
    match String::from_utf8(bytes) {
        Ok(text) => Ok(text),
        Err(e) => bail!(
            "{file} is not valid UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ),
    }
}

/// Byte offset of 1-based `LINE:COL` (COL in characters; COL may be one
/// past the last character of the line). `None` means the end of the text.
pub fn cursor_offset(text: &str, at: Option<&str>) -> Result<usize> {
    let Some(at) = at else {
        return Ok(text.len());
    };
    let (line, col) = at
        .split_once(':')
        .and_then(|(l, c)| {
            Some((
                l.trim().parse::<usize>().ok()?,
                c.trim().parse::<usize>().ok()?,
            ))
        })
        .with_context(|| format!("--at {at:?}: expected LINE:COL, both 1-based numbers"))?;
    if line == 0 || col == 0 {
        bail!("--at {at}: LINE and COL start at 1");
    }
    let lines: Vec<&str> = text.split('\n').collect();
    let n_lines = lines.len();
    let Some(line_text) = lines.get(line - 1) else {
        bail!("--at {at}: the file has only {n_lines} lines");
    };
    let line_text = line_text.strip_suffix('\r').unwrap_or(line_text);
    let n_chars = line_text.chars().count();
    if col > n_chars + 1 {
        bail!(
            "--at {at}: line {line} has only {n_chars} characters (COL may be at most {})",
            n_chars + 1
        );
    }
    let line_start: usize = lines[..line - 1].iter().map(|l| l.len() + 1).sum();
    let col_bytes: usize = line_text.chars().take(col - 1).map(char::len_utf8).sum();
    Ok(line_start + col_bytes)
}

/// The GGUF file for `--model` (or the editor's `model` setting): a path
/// to a file, a known model name or a hub reference (`hf:ORG/REPO/FILE.gguf`),
/// fetched on first use.
pub fn resolve_model(store: &Store, spec: Option<&str>) -> Result<(String, PathBuf)> {
    let spec = ModelSpec::parse(spec)?;
    match &spec {
        ModelSpec::Default | ModelSpec::Name(_) => {
            let name = match &spec {
                ModelSpec::Name(name) => Some(name.as_str()),
                _ => None,
            };
            let manifest = store.find_or_default(name)?;
            if store.cached(manifest).is_none() {
                eprintln!(
                    "codegen: fetching {} into {} (first use)",
                    manifest.name,
                    store.root().display()
                );
            }
            let path = store
                .fetch(manifest)
                .with_context(|| format!("cannot fetch model {}", manifest.name))?;
            Ok((manifest.name.clone(), path))
        }
        ModelSpec::Path(_) | ModelSpec::Hub(_) => Ok(store.resolve(&spec)?),
    }
}

/// The draft model a model's manifest names (none for paths and hub files).
pub fn default_draft(store: &Store, model_name: &str) -> Option<String> {
    store
        .find_or_default(Some(model_name))
        .ok()
        .filter(|m| m.name == model_name)
        .and_then(|m| m.draft.clone())
}

/// Loads `--model` with its draft model: `--draft`, else the manifest's
/// default; `--draft none` loads none.
pub fn load_model(
    store: &Store,
    args: &crate::ModelArgs,
    device: &candle_core::Device,
) -> Result<codegen_engine::LoadedModel> {
    use anyhow::Context as _;
    let (name, path) = resolve_model(store, args.model.as_deref())?;
    let model = codegen_engine::LoadedModel::load(&name, &path, device)
        .with_context(|| format!("cannot load model {}", path.display()))?;
    let spec = match args.draft.as_deref() {
        Some("none") => None,
        Some(spec) => Some(spec.to_string()),
        None => default_draft(store, &name),
    };
    let Some(spec) = spec else {
        return Ok(model);
    };
    let (draft_name, draft_path) =
        resolve_model(store, Some(&spec)).with_context(|| format!("draft model {spec}"))?;
    if draft_path == path {
        return Ok(model);
    }
    let draft = codegen_engine::LoadedModel::load(&draft_name, &draft_path, device)
        .with_context(|| format!("cannot load draft model {}", draft_path.display()))?;
    Ok(model.with_draft(std::sync::Arc::new(draft))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_offsets_count_characters() {
        let text = "ab\r\nné🦀x\n";
        assert_eq!(cursor_offset(text, Some("1:1")).unwrap(), 0);
        assert_eq!(cursor_offset(text, Some("1:3")).unwrap(), 2);
        assert_eq!(cursor_offset(text, Some("2:4")).unwrap(), 4 + 1 + 2 + 4);
        assert_eq!(cursor_offset(text, Some("2:5")).unwrap(), 4 + 1 + 2 + 4 + 1);
        assert_eq!(cursor_offset(text, Some("3:1")).unwrap(), text.len());
        assert_eq!(cursor_offset(text, None).unwrap(), text.len());
        for bad in ["0:1", "1:0", "4:1", "2:6", "x", "1:", "1:2:3"] {
            assert!(cursor_offset(text, Some(bad)).is_err(), "{bad}");
        }
    }
}
