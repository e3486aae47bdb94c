//! Context extraction + prompt assembly for a cursor in the middle of a
//! 10,000-line file, and one-character incremental edits.
//!
//! Run: `cargo bench -p codegen-context --bench context`. Plain harness: prints
//! the median and p90 of each measurement.

use codegen_context::{
    build_prompt, postprocess, ApproxTokenCounter, CompletionMode, Language, Neighbour,
    ParsedDocument, PromptConfig,
};
use std::hint::black_box;
use std::time::{Duration, Instant};

fn big_file(lang: Language, n_lines: usize) -> String {
    let mut out = String::new();
    let mut i = 0;
    let mut n = 0;
    let header = match lang {
        Language::Python => "import os\nimport sys\nfrom typing import List\n\n",
        Language::Rust => "use std::collections::HashMap;\nuse std::fmt;\n\n",
        _ => "import { readFileSync } from 'fs';\nimport path from 'path';\n\n",
    };
    out.push_str(header);
    while n < n_lines {
        let block = match lang {
            Language::Python => format!(
                "class Widget{i}:\n    \"\"\"Widget number {i}.\"\"\"\n\n    def compute_{i}(self, values: List[int]) -> int:\n        total = 0\n        for v in values:\n            total += v * {i}\n        return total\n\n"
            ),
            Language::Rust => format!(
                "pub struct Widget{i} {{\n    values: Vec<i64>,\n}}\n\nimpl Widget{i} {{\n    /// Sum times {i}.\n    pub fn compute_{i}(&self) -> i64 {{\n        let mut total = 0;\n        for v in &self.values {{\n            total += v * {i};\n        }}\n        total\n    }}\n}}\n\n"
            ),
            _ => format!(
                "export class Widget{i} {{\n  /** Sum times {i}. */\n  compute{i}(values: number[]): number {{\n    let total = 0;\n    for (const v of values) {{\n      total += v * {i};\n    }}\n    return total;\n  }}\n}}\n\n"
            ),
        };
        n += block.lines().count();
        out.push_str(&block);
        i += 1;
    }
    out
}

fn measure(label: &str, iters: usize, mut f: impl FnMut()) -> Duration {
    for _ in 0..iters.min(5) {
        f();
    }
    let mut times: Vec<Duration> = (0..iters)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    let median = times[times.len() / 2];
    let p90 = times[times.len() * 9 / 10];
    println!("{label:<48} median {median:>10.2?}   p90 {p90:>10.2?}   ({iters} runs)");
    median
}

fn main() {
    let cfg = PromptConfig::default();
    let counter = ApproxTokenCounter;
    for lang in [Language::Python, Language::Rust, Language::TypeScript] {
        let text = big_file(lang, 10_000);
        let n_lines = text.lines().count();
        let mid = text[..text.len() / 2]
            .rfind("total = 0")
            .unwrap_or(text.len() / 2);
        // At the end of the `total = 0` line, where one types.
        let cursor = text[mid..].find('\n').map_or(mid, |i| mid + i);
        // At the start of the next line, before its indentation: a typed
        // character there dedents the rest of a Python file.
        let line_start_cursor = cursor + 1;
        let neighbours: Vec<Neighbour> = (0..4)
            .map(|k| Neighbour {
                path: format!("other{k}"),
                text: big_file(lang, 300),
            })
            .collect();
        let t = Instant::now();
        let mut doc = ParsedDocument::new(text, lang);
        println!("{lang:?}: {n_lines} lines, full parse {:.2?}", t.elapsed());

        measure(
            &format!("{lang:?} build_prompt (no neighbours)"),
            200,
            || {
                black_box(build_prompt(&doc, cursor, "big", &[], &cfg, &counter));
            },
        );
        measure(
            &format!("{lang:?} build_prompt (4 neighbours x 300 lines)"),
            200,
            || {
                black_box(build_prompt(
                    &doc,
                    cursor,
                    "big",
                    &neighbours,
                    &cfg,
                    &counter,
                ));
            },
        );
        measure(&format!("{lang:?} postprocess"), 200, || {
            black_box(postprocess(
                &doc,
                cursor,
                "x = 1\n        y = 2\n\ndef f():\n",
                CompletionMode::MultiLine,
            ));
        });
        // One keystroke: insert a character, then delete it (two edits per run).
        measure(
            &format!("{lang:?} apply_edit x2 (type+delete, line end)"),
            200,
            || {
                doc.apply_edit(cursor, cursor, "x");
                doc.apply_edit(cursor, cursor + 1, "");
            },
        );
        measure(
            &format!("{lang:?} apply_edit x2 (type+delete, column 0)"),
            50,
            || {
                doc.apply_edit(line_start_cursor, line_start_cursor, "x");
                doc.apply_edit(line_start_cursor, line_start_cursor + 1, "");
            },
        );
    }
}
