//! Sandbox start-up cost: median wall time of one run, for a trivial
//! program (`run_python`) and for a harness on `ISOLATE_PY` that forks the
//! untrusted process and makes one call into it (`run_harness`).
//!
//! `cargo bench -p codegen-sandbox --bench sandbox [-- RUNS]` (default 40 runs
//! each, one at a time). Prints one JSON object.

use std::time::{Duration, Instant};

use codegen_sandbox::{Sandbox, SandboxConfig, ISOLATE_PY};

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1000.0
}

fn main() {
    let runs: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(40);
    let t = Instant::now();
    let sandbox = Sandbox::new(SandboxConfig::default()).expect("the sandbox must work here");
    let setup_ms = t.elapsed().as_secs_f64() * 1000.0;
    let harness = format!(
        "{ISOLATE_PY}\ncodegen_protect()\nu = Untrusted()\ncodegen_read_secret()\n\
         u.load('def f(x):\\n    return x + 1\\n')\ncodegen_verdict(str(u.call('f', (41,))))\nu.kill()\n"
    );
    let mut plain = Vec::with_capacity(runs);
    let mut isolated = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        let o = sandbox.run_python("print(1)\n");
        plain.push(t.elapsed());
        assert!(o.passed(), "{o:?}");
        let t = Instant::now();
        let o = sandbox.run_harness(&harness);
        isolated.push(t.elapsed());
        assert_eq!(o.verdicts, vec!["42".to_string()], "{o:?}");
    }
    println!(
        "{{\"runs\": {runs}, \"sandbox_new_ms\": {setup_ms:.1}, \"run_python_median_ms\": {:.2}, \"run_harness_median_ms\": {:.2}, \"root_paths\": {}}}",
        median(plain),
        median(isolated),
        sandbox.root_paths().len()
    );
}
