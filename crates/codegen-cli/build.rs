//! Embeds the must-pass suite of `codegen model validate`: the cases of the
//! behavioural suite (`models/behavior/<language>/*.toml`) marked
//! `must_pass = true`. Adding a case is adding (or marking) a file.

use std::path::{Path, PathBuf};

fn toml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                files.extend(toml_files(&path));
            } else if path.extension().is_some_and(|x| x == "toml") {
                files.push(path);
            }
        }
    }
    files
}

fn main() {
    let dir =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("../../models/behavior");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut cases: Vec<PathBuf> = toml_files(&dir);
    cases.sort();
    let mut code = String::from("pub const SUITE: &[(&str, &str)] = &[\n");
    for path in &cases {
        println!("cargo:rerun-if-changed={}", path.display());
        if let Some(parent) = path.parent() {
            println!("cargo:rerun-if-changed={}", parent.display());
        }
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let must_pass = text
            .lines()
            .any(|l| l.split('#').next().unwrap_or("").replace(' ', "") == "must_pass=true");
        if !must_pass {
            continue;
        }
        // `python/add` -> `python-add`, as the records name the cases.
        let rel = path.strip_prefix(&dir).unwrap_or(path).with_extension("");
        let name = rel.to_string_lossy().replace('/', "-");
        let abs = std::fs::canonicalize(path).unwrap();
        code.push_str(&format!(
            "    ({name:?}, include_str!({:?})),\n",
            abs.display().to_string()
        ));
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("validation_suite.rs");
    std::fs::write(out, code).unwrap();
}
