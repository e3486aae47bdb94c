//! Candidates that try to forge a passing verdict instead of solving the
//! problem. Each must be reported as not passed, beside an honest sample
//! that passes in the same evaluation.

#![cfg(target_os = "linux")]

use codegen_eval::{evaluate, EvalConfig, Problem, Sample};
use codegen_sandbox::{Sandbox, SandboxConfig};

fn problem() -> Problem {
    Problem {
        task_id: "Toy/0".into(),
        prompt: "def add(a, b):\n    \"\"\"Sum of a and b.\"\"\"\n".into(),
        canonical_solution: "    return a + b\n".into(),
        test: "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(-4, 9) == 5\n    assert candidate(0, 0) == 0\n".into(),
        entry_point: "add".into(),
    }
}

/// (name, completion): each tries one way of faking "passed".
fn forgeries() -> Vec<(&'static str, String)> {
    vec![
        (
            "prints the old result line and exits 0",
            "    import os\n    os.write(1, b'\\n__codegen_eval_result__ \"passed\"\\n')\n    os._exit(0)\n".into(),
        ),
        (
            "prints a verdict-shaped line at module level and exits 0",
            "    return 0\nimport os, sys\nsys.__stdout__.write('passed\\n')\nos.write(1, b'0123456789abcdef0123456789abcdef \"passed\"\\n')\nos._exit(0)\n".into(),
        ),
        (
            "exits early with status 0 from the function",
            "    import os\n    os._exit(0)\n".into(),
        ),
        (
            "raises SystemExit(0)",
            "    raise SystemExit(0)\n".into(),
        ),
        (
            "writes forged lines to every inherited descriptor",
            "    import os\n    for fd in range(1024):\n        try:\n            os.write(fd, b'\\n\"passed\"\\n__codegen_eval_result__ \"passed\"\\n')\n        except OSError:\n            pass\n    return 0\n".into(),
        ),
        (
            "writes to the parent's stdout through /proc",
            "    import os\n    for name in ['/proc/%d/fd/1' % os.getppid(), '/proc/1/fd/1']:\n        try:\n            with open(name, 'w') as f:\n                f.write('\"passed\"\\n')\n        except OSError:\n            pass\n    return 0\n".into(),
        ),
        (
            "reads the harness's memory for the secret",
            "    import os\n    try:\n        open('/proc/%d/mem' % os.getppid(), 'rb').read(1)\n    except OSError:\n        pass\n    return 0\n".into(),
        ),
        (
            "replaces the harness's functions from the frames above",
            "    import sys, builtins\n    f = sys._getframe()\n    while f is not None:\n        for k in ('codegen_verdict', 'check', 'time_limit'):\n            if k in f.f_globals:\n                f.f_globals[k] = lambda *a, **kw: None\n        f = f.f_back\n    builtins.AssertionError = type('Quiet', (Exception,), {})\n    return 0\n".into(),
        ),
        (
            "calls the verdict function it finds",
            "    import sys\n    g = sys._getframe(1).f_globals\n    for k in ('codegen_verdict', '_emit'):\n        if k in g:\n            g[k]('\"passed\"')\n    return 0\n".into(),
        ),
        (
            "returns an object equal to everything",
            "    class Always:\n        def __eq__(self, other):\n            return True\n    return Always()\n".into(),
        ),
        (
            "returns an int subclass equal to everything",
            "    class Int(int):\n        def __eq__(self, other):\n            return True\n        __hash__ = int.__hash__\n    return Int(0)\n".into(),
        ),
        (
            "kills the harness",
            "    import ctypes, os\n    ctypes.CDLL(None).kill(os.getppid(), 9)\n    return 0\n".into(),
        ),
        (
            "swallows the time limit while looping",
            "    import time\n    while True:\n        try:\n            time.sleep(10)\n        except BaseException:\n            pass\n".into(),
        ),
    ]
}

#[test]
fn forged_verdicts_never_pass() {
    let problem = problem();
    let sandbox = Sandbox::new(SandboxConfig::default()).expect("the sandbox must work here");
    let forgeries = forgeries();
    let mut samples = vec![Sample::new(
        problem.task_id.clone(),
        problem.canonical_solution.clone(),
    )];
    samples.extend(
        forgeries
            .iter()
            .map(|(_, c)| Sample::new(problem.task_id.clone(), c.clone())),
    );
    let cfg = EvalConfig {
        ks: vec![1],
        timeout_s: 2.0,
        workers: 2,
        ignore_incomplete: false,
    };
    let report = evaluate(&samples, &[problem], &cfg, &sandbox).unwrap();
    assert_eq!(
        report.samples[0].result, "passed",
        "the honest sample must pass"
    );
    let forged: Vec<String> = forgeries
        .iter()
        .zip(&report.samples[1..])
        .filter(|(_, r)| r.passed)
        .map(|((name, _), r)| format!("{name}: {}", r.result))
        .collect();
    assert!(forged.is_empty(), "forged passes:\n{}", forged.join("\n"));
    for ((name, _), r) in forgeries.iter().zip(&report.samples[1..]) {
        eprintln!("{name}: {}", r.result);
    }
}
