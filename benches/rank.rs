//! Inline ranking cost: syntax + mean log-probability ranking of 4
//! candidates (no code runs), on documents of about 300 and 3,000 lines.
//! Target: at most 20 ms added per request. Prints the median and p90.
//!
//! `cargo bench -p codegen-rank`

use std::time::{Duration, Instant};

use codegen_context::{Language, ParsedDocument};
use codegen_eval::load_problems;
use codegen_rank::{rank, RankConfig, RankMode, RankRequest, RawCandidate};

fn document(copies: usize) -> Result<(String, usize), Box<dyn std::error::Error>> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/testdata/humaneval_subset.jsonl"
    );
    let problems = load_problems(path)?;
    let mut text = String::new();
    for copy in 0..copies {
        for p in &problems {
            let renamed = p.prompt.replace(
                &format!("def {}(", p.entry_point),
                &format!("def {}_{copy}(", p.entry_point),
            );
            text.push_str(&renamed);
            text.push_str(&p.canonical_solution);
            text.push('\n');
        }
    }
    // The cursor: an empty body line in a function in the middle.
    text.push_str("\n\nclass Stats:\n    def mean(self, xs):\n        \"\"\"Mean of xs.\n        >>> Stats().mean([1, 2, 3])\n        2.0\n        \"\"\"\n        ");
    let cursor = text.len();
    text.push_str("\n\n    def median(self, xs):\n        return sorted(xs)[len(xs) // 2]\n");
    Ok((text, cursor))
}

fn measure(label: &str, copies: usize) -> Result<(), Box<dyn std::error::Error>> {
    let (text, cursor) = document(copies)?;
    let n_lines = text.lines().count();
    let doc = ParsedDocument::new(text, Language::Python);
    let candidates = vec![
        RawCandidate { text: "return sum(xs) / len(xs)".into(), mean_logprob: -0.2, n_tokens: 9 },
        RawCandidate { text: "return sum(xs) / len(xs".into(), mean_logprob: -0.1, n_tokens: 8 },
        RawCandidate { text: "total = 0\n        for x in xs:\n            total += x\n        return total / len(xs)".into(), mean_logprob: -0.4, n_tokens: 25 },
        RawCandidate { text: "return statistics.mean(xs)".into(), mean_logprob: -0.3, n_tokens: 7 },
    ];
    let mut cfg = RankConfig::combined();
    cfg.use_examples = false;
    cfg.use_agreement = false;
    let mode = RankMode::Inline {
        run_code: false,
        time_budget: Duration::from_millis(20),
    };
    let request = RankRequest {
        doc: &doc,
        cursor,
        candidates: &candidates,
        function_name: None,
    };
    let mut times = Vec::new();
    for _ in 0..5 {
        rank(&request, &cfg, mode, None);
    }
    for _ in 0..100 {
        let started = Instant::now();
        let ranking = rank(&request, &cfg, mode, None);
        times.push(started.elapsed());
        assert!(!ranking.analysis.ran_code);
        assert_eq!(
            ranking.candidates.last().map(|c| c.text.as_str()),
            Some("return sum(xs) / len(xs")
        );
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{label}: {n_lines} lines, 4 candidates, syntax + logprob: median {:.2} ms, p90 {:.2} ms, max {:.2} ms",
        ms(times[times.len() / 2]),
        ms(times[times.len() * 9 / 10]),
        ms(times[times.len() - 1])
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    measure("rank/inline/small", 1)?;
    measure("rank/inline/large", 10)?;
    Ok(())
}
