use crate::support::*;

#[track_caller]
fn check_rejected(args: &[&str], stdin: Option<&[u8]>, expect_in_error: &str) {
    let mut cmd = codegen();
    cmd.args(args).env("CODEGEN_OFFLINE", "1");
    let run = if let Some(bytes) = stdin {
        use std::io::Write;
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        child.stdin.take().unwrap().write_all(bytes).unwrap();
        let out = child.wait_with_output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    } else {
        run(&mut cmd)
    };
    assert_ne!(run.code, 0, "{args:?} should fail; stdout: {}", run.stdout);
    assert!(
        !run.stderr.contains("panicked"),
        "{args:?} panicked: {}",
        run.stderr
    );
    let error_lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("codegen: error:"))
        .collect();
    assert_eq!(
        error_lines.len(),
        1,
        "{args:?}: one error line expected in {:?}",
        run.stderr
    );
    assert!(
        error_lines[0].contains(expect_in_error),
        "{args:?}: {:?} does not mention {expect_in_error:?}",
        error_lines[0]
    );
    assert!(
        run.stdout.is_empty(),
        "{args:?} printed to stdout: {}",
        run.stdout
    );
}

#[test]
fn bad_inputs_get_one_line_errors_and_a_nonzero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ok = write(d, "ok.py", "def f():\n    return 1\n");
    let ok = ok.to_str().unwrap();
    let missing = d.join("missing.py");
    check_rejected(&["complete", missing.to_str().unwrap()], None, "missing.py");
    check_rejected(&["complete", d.to_str().unwrap()], None, "is a directory");
    check_rejected(&["complete", ok, "--at", "9:1"], None, "only 3 lines");
    check_rejected(&["complete", ok, "--at", "1:40"], None, "only 8 characters");
    check_rejected(&["complete", ok, "--at", "one"], None, "LINE:COL");
    let latin1 = d.join("latin1.py");
    std::fs::write(&latin1, b"s = 'caf\xe9'\n").unwrap();
    check_rejected(
        &["complete", latin1.to_str().unwrap()],
        None,
        "not valid UTF-8",
    );
    let binary = d.join("blob.py");
    std::fs::write(&binary, b"\x7fELF\x02\x01\x01\x00\x00\x00").unwrap();
    check_rejected(&["complete", binary.to_str().unwrap()], None, "binary");
    let empty = write(d, "empty.py", "");
    check_rejected(&["complete", empty.to_str().unwrap()], None, "empty");
    check_rejected(&["complete", "-"], Some(b""), "empty");
    check_rejected(
        &["complete", ok, "--model", "no-such-model"],
        None,
        "unknown model `no-such-model`",
    );
    check_rejected(
        &["complete", ok, "--model", "/nonexistent/m.gguf"],
        None,
        "does not exist",
    );
    let corrupt = write(d, "corrupt.gguf", "GGUF but not really a model file");
    check_rejected(
        &["complete", ok, "--model", corrupt.to_str().unwrap()],
        None,
        "not a valid GGUF",
    );
    // Fixed choices are checked by the flag parser, which lists them.
    let tpu = run(codegen().args(["complete", ok, "--device", "tpu"]));
    assert_eq!(tpu.code, 2, "{}", tpu.stderr);
    assert!(tpu.stdout.is_empty());
    assert!(
        tpu.stderr.contains("[possible values: cpu, cuda, metal]"),
        "{}",
        tpu.stderr
    );
    if !cfg!(feature = "cuda") {
        check_rejected(
            &["complete", ok, "--device", "cuda"],
            None,
            "--features cuda",
        );
    }
    check_rejected(&["model", "verify", "no-such-model"], None, "unknown model");
}

#[test]
fn truncated_model_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = dir.path().join("tiny.gguf");
    codegen_model::testing::write_tiny_gguf(&tiny, &Default::default()).unwrap();
    let bytes = std::fs::read(&tiny).unwrap();
    let cut = dir.path().join("cut.gguf");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let ok = write(dir.path(), "ok.py", "x = 1\n");
    check_rejected(
        &[
            "complete",
            ok.to_str().unwrap(),
            "--model",
            cut.to_str().unwrap(),
        ],
        None,
        "only",
    );
}

#[test]
fn json_output_has_candidates_and_timings() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = dir.path().join("tiny.gguf");
    codegen_model::testing::write_tiny_gguf(&tiny, &Default::default()).unwrap();
    let file = write(dir.path(), "a.py", "def add(a, b):\n    ");
    let out = run(codegen().args([
        "complete",
        file.to_str().unwrap(),
        "--model",
        tiny.to_str().unwrap(),
        "--n",
        "2",
        "--temperature",
        "0.8",
        "--max-tokens",
        "6",
        "--json",
    ]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    // stdout is one JSON document and nothing else.
    let json = stdout_json(&out);
    assert_eq!(json["prompt_mode"], "continuation");
    let mode = json["completion_mode"].as_str().unwrap();
    assert!(is_word(mode), "{mode:?}");
    let candidates = json["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 2);
    for c in candidates {
        assert!(c["n_tokens"].as_u64().unwrap() > 0);
        assert!(c["mean_logprob"].as_f64().unwrap() <= 0.0);
        let finish = c["finish"].as_str().unwrap();
        assert!(
            [
                "stop_token",
                "stop_string",
                "max_tokens",
                "cancelled",
                "stopped",
                "context_full"
            ]
            .contains(&finish),
            "{finish:?}"
        );
    }
    assert!(json["timings"]["prompt_tokens"].as_u64().unwrap() > 5);
    assert!(json["timings"]["prefill_secs"].as_f64().is_some());
}

/// stdout parsed as exactly one JSON document.
#[track_caller]
fn stdout_json(out: &Run) -> serde_json::Value {
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {:?}", out.stdout))
}

/// A snake_case word (not a Rust debug string such as `Fim { .. }`).
fn is_word(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c == '_')
}

/// One HumanEval-style problem (its tests pass for `return a + b`).
const PROBLEM: &str = r#"{"task_id": "Toy/0", "prompt": "def add(a, b):\n    \"\"\"Sum of a and b.\n    >>> add(1, 2)\n    3\n    \"\"\"\n", "canonical_solution": "    return a + b\n", "test": "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(-1, 1) == 0\n", "entry_point": "add"}"#;

#[test]
fn bench_evaluate_json_is_json_only_and_reports_failures() {
    let dir = tempfile::tempdir().unwrap();
    let problems = write(dir.path(), "problems.jsonl", &format!("{PROBLEM}\n"));
    let samples = write(
        dir.path(),
        "samples.jsonl",
        "{\"task_id\": \"Toy/0\", \"completion\": \"    return a + b\\n\"}\n\
         {\"task_id\": \"Toy/0\", \"completion\": \"    return a - b\\n\"}\n",
    );
    let out = run(codegen().args([
        "bench",
        "evaluate",
        samples.to_str().unwrap(),
        "--problems",
        problems.to_str().unwrap(),
        "--k",
        "1,2",
        "--json",
    ]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let json = stdout_json(&out);
    assert_eq!(json["pass@1"], 0.5, "{json}");
    assert_eq!(json["pass@2"], 1.0, "{json}");
    let results = std::fs::read_to_string(dir.path().join("samples.jsonl_results.jsonl")).unwrap();
    assert!(results.contains("\"failed: \""), "{results}");
}

/// `bench humaneval --json` with a tiny random model: JSON only on stdout,
/// and the report names a reason for every failing task.
#[test]
fn bench_humaneval_json_is_json_only() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = dir.path().join("tiny.gguf");
    codegen_model::testing::write_tiny_gguf(&tiny, &Default::default()).unwrap();
    let problems = write(dir.path(), "problems.jsonl", &format!("{PROBLEM}\n"));
    let out_dir = dir.path().join("run");
    let out = run(codegen().args([
        "bench",
        "humaneval",
        "--model",
        tiny.to_str().unwrap(),
        "--problems",
        problems.to_str().unwrap(),
        "--format",
        "continuation",
        "--n",
        "2",
        "--temperature",
        "0.8",
        "--rank",
        "--max-tokens",
        "4",
        "--k",
        "1",
        "--json",
        "--out",
        out_dir.to_str().unwrap(),
    ]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let json = stdout_json(&out);
    assert_eq!(json["samples"], 2, "{json}");
    assert!(json["pass@1"].as_f64().is_some(), "{json}");
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("results.json")).unwrap())
            .unwrap();
    assert_eq!(results["settings"]["temperature"], 0.8, "{results}");
    assert_eq!(results["settings"]["top_p"], 0.95, "{results}");
    let report = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(report.contains("](chart.svg)"), "{report}");
    assert!(out_dir.join("chart.svg").is_file());
    for task in results["tasks"].as_array().unwrap() {
        if task["c"] == 0 {
            assert!(
                task["reason"].as_str().is_some_and(|r| !r.is_empty()),
                "{task}"
            );
        }
    }
}

#[test]
fn model_list_json_has_the_shape_editors_parse() {
    let home = tempfile::tempdir().unwrap();
    let out = run(codegen()
        .args(["model", "list", "--json"])
        .env("CODEGEN_HOME", home.path()));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let json = stdout_json(&out);
    let keys = |v: &serde_json::Value| {
        let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(keys(&json), ["cache", "default", "models"]);
    assert_eq!(json["cache"], home.path().to_str().unwrap());
    assert_eq!(json["default"], "qwen2.5-coder-0.5b-instruct");
    let models = json["models"].as_array().unwrap();
    assert_eq!(models.len(), 2);
    for m in models {
        assert_eq!(
            keys(m),
            [
                "cached",
                "default",
                "description",
                "name",
                "path",
                "size_bytes"
            ]
        );
        assert!(m["size_bytes"].as_u64().unwrap() > 100_000_000, "{m}");
        assert_eq!(m["cached"], false);
        assert_eq!(m["path"], serde_json::Value::Null);
        assert_eq!(m["default"], m["name"] == json["default"]);
    }
}

#[test]
fn model_rm_and_hub_references_give_clear_errors() {
    let home = tempfile::tempdir().unwrap();
    let hub = tempfile::tempdir().unwrap();
    let ok = write(home.path(), "ok.py", "def f():\n    return 1\n");
    let rm = |name: &str| {
        run(codegen()
            .args(["model", "rm", name])
            .env("CODEGEN_HOME", home.path()))
    };
    let unknown = rm("no-such-model");
    assert_eq!(unknown.code, 1);
    assert!(
        unknown.stderr.contains("unknown model `no-such-model`"),
        "{}",
        unknown.stderr
    );
    let not_cached = rm("qwen2.5-coder-1.5b-instruct");
    assert_eq!(not_cached.code, 1);
    assert!(
        not_cached.stderr.contains("not cached"),
        "{}",
        not_cached.stderr
    );

    // A hub file that is not in the Hugging Face cache, with no hub to ask.
    for env in [
        ("CODEGEN_OFFLINE", "1"),
        ("HF_ENDPOINT", "http://127.0.0.1:9"),
    ] {
        let out = run(codegen()
            .args([
                "complete",
                ok.to_str().unwrap(),
                "--model",
                "hf:org/repo/model.gguf",
            ])
            .env("HF_HUB_CACHE", hub.path())
            .env(env.0, env.1));
        assert_eq!(out.code, 1, "{env:?}");
        assert!(out.stdout.is_empty());
        assert!(out.stderr.contains("local path"), "{env:?}: {}", out.stderr);
    }
    let bad = run(codegen().args(["complete", ok.to_str().unwrap(), "--model", "hf:org/repo"]));
    assert!(
        bad.stderr.contains("hf:ORG/REPO/FILE.gguf"),
        "{}",
        bad.stderr
    );
}

#[test]
fn model_list_names_both_models() {
    let out = run(codegen().args(["model", "list"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("qwen2.5-coder-0.5b-instruct"));
    assert!(out.stdout.contains("qwen2.5-coder-1.5b-instruct"));
    assert!(out.stdout.contains("(default)"));
}

/// Real model: the completion of a documented Python function passes that
/// function's tests, run in the sandbox.
#[test]
fn real_model_completes_a_python_function_that_passes_its_tests() {
    let dir = tempfile::tempdir().unwrap();
    let source = "def is_palindrome(s: str) -> bool:\n    \"\"\"Return True if s reads the same forwards and backwards, ignoring case\n    and non-alphanumeric characters.\n\n    >>> is_palindrome(\"A man, a plan, a canal: Panama\")\n    True\n    >>> is_palindrome(\"hello\")\n    False\n    \"\"\"\n";
    let file = write(dir.path(), "pal.py", source);
    let out = run(codegen().args(["complete", file.to_str().unwrap()]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("return"), "{}", out.stdout);
    let program = format!(
        "{source}{}\nassert is_palindrome('A man, a plan, a canal: Panama')\nassert not is_palindrome('hello')\nassert is_palindrome('')\nassert is_palindrome('No lemon, no melon')\nassert not is_palindrome('ab')\n",
        out.stdout
    );
    let outcome = run_sandboxed(&program);
    assert!(outcome.passed(), "{:?}\n{program}", outcome.status);
}

/// Real model: completions inside functions of each language parse and
/// leave the code after the cursor intact.
#[test]
fn real_model_completions_parse_in_five_languages() {
    use codegen_context::{syntax_check, Language, ParsedDocument};
    let cases: &[(&str, &str)] = &[
        (
            "lib.rs",
            "/// Sum of the squares of the numbers.\npub fn sum_of_squares(xs: &[i64]) -> i64 {\n    $0\n}\n\nfn main() {\n    println!(\"{}\", sum_of_squares(&[1, 2, 3]));\n}\n",
        ),
        (
            "util.js",
            "// Returns the largest number in the array, or null when it is empty.\nfunction maxOf(values) {\n  $0\n}\n\nmodule.exports = { maxOf };\n",
        ),
        (
            "main.go",
            "package main\n\nimport \"fmt\"\n\n// Reverse returns s with its runes in reverse order.\nfunc Reverse(s string) string {\n\t$0\n}\n\nfunc main() {\n\tfmt.Println(Reverse(\"abc\"))\n}\n",
        ),
        (
            "math.ts",
            "/** Average of the numbers; 0 for an empty list. */\nexport function average(xs: number[]): number {\n  $0\n}\n\nexport const half = (x: number): number => x / 2;\n",
        ),
        (
            "names.py",
            "def greet(name: str) -> str:\n    return \"Hello, \" + $0\n\nprint(greet(\"Ada\"))\n",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (name, fixture) in cases {
        let cursor = fixture.find("$0").unwrap();
        let text = fixture.replace("$0", "");
        let file = write(dir.path(), name, &text);
        let before = &text[..cursor];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().unwrap().chars().count() + 1;
        let out = run(codegen().args([
            "complete",
            file.to_str().unwrap(),
            "--at",
            &format!("{line}:{col}"),
            "--max-tokens",
            "96",
        ]));
        assert_eq!(out.code, 0, "{name}: {}", out.stderr);
        let insertion = out.stdout.strip_suffix('\n').unwrap_or(&out.stdout);
        assert!(!insertion.trim().is_empty(), "{name}: empty completion");
        let lang = Language::from_path(name).unwrap();
        let doc = ParsedDocument::new(text.clone(), lang);
        let check = syntax_check(&doc, cursor, insertion);
        assert_eq!(
            check.errors_after + check.missing_after,
            0,
            "{name}: {insertion:?} does not parse: {check:?}"
        );
        let after = format!("{}{}{}", &text[..cursor], insertion, &text[cursor..]);
        assert!(after.ends_with(&text[cursor..]), "{name}");
        assert_eq!(
            after.matches(&text[cursor..]).count(),
            1,
            "{name}: suffix duplicated"
        );
    }
}

#[test]
fn sandbox_run_exits_with_the_programs_status() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[&str], i32); 5] = [
        ("print('hello')\n", &[], 0),
        ("import sys\nprint('out')\nsys.exit(3)\n", &[], 3),
        (
            "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n",
            &[],
            128 + 9,
        ),
        ("while True:\n    pass\n", &["--timeout", "1"], 124),
        ("open('/etc/hostname').read()\n", &[], 1),
    ];
    for (i, (program, extra, expected)) in cases.iter().enumerate() {
        let file = write(dir.path(), &format!("p{i}.py"), program);
        let mut cmd = codegen();
        cmd.args(["sandbox", "run"]).args(*extra).arg(&file);
        let out = run(&mut cmd);
        assert_eq!(out.code, *expected, "{program:?}: {}", out.stderr);
        if i == 0 {
            assert_eq!(out.stdout, "hello\n");
        }
    }
    // A site-packages-like directory is visible only when listed with --ro.
    let lib = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    write(lib.path(), "extra_mod.py", "VALUE = 41\n");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(lib.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        lib.path().join("extra_mod.py"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let program = format!(
        "import sys\nsys.path.insert(0, {:?})\nimport extra_mod\nprint(extra_mod.VALUE + 1)\n",
        lib.path().display().to_string()
    );
    let file = write(dir.path(), "ro.py", &program);
    let without = run(codegen().args(["sandbox", "run"]).arg(&file));
    assert_eq!(without.code, 1, "{}", without.stderr);
    let with = run(codegen()
        .args(["sandbox", "run", "--ro"])
        .arg(lib.path())
        .arg(&file));
    assert_eq!(
        (with.code, with.stdout.as_str()),
        (0, "42\n"),
        "{}",
        with.stderr
    );
}

/// The real pair: the 1.5B with the 0.5B drafting writes exactly what the
/// 1.5B writes alone, in fewer passes of the 1.5B.
#[test]
fn speculative_decoding_with_the_real_pair_changes_passes_not_text() {
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/data/is_palindrome.py"
    );
    let mut outputs = Vec::new();
    for draft in ["qwen2.5-coder-0.5b-instruct", "none"] {
        let out = run(codegen().args([
            "complete",
            file,
            "--model",
            "qwen2.5-coder-1.5b-instruct",
            "--draft",
            draft,
            "--max-tokens",
            "48",
            "--json",
        ]));
        assert_eq!(out.code, 0, "{}", out.stderr);
        let json: serde_json::Value =
            serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout));
        outputs.push(json);
    }
    let (with, without) = (&outputs[0], &outputs[1]);
    assert_eq!(with["draft_model"], "qwen2.5-coder-0.5b-instruct");
    assert!(without["draft_model"].is_null());
    assert_eq!(
        with["candidates"][0]["raw"],
        without["candidates"][0]["raw"]
    );
    assert_eq!(
        with["candidates"][0]["text"],
        without["candidates"][0]["text"]
    );
    let t = &with["timings"];
    assert!(t["accepted_draft_tokens"].as_u64().unwrap() > 0, "{t}");
    assert!(
        t["target_passes"].as_u64().unwrap() < t["generated_tokens"].as_u64().unwrap(),
        "{t}"
    );
}

/// `model validate`: the default model passes every check and its record
/// lands in the cache; a random-weight model fails the suite (exit 1) and
/// its record says so. `--json` prints the record only.
#[test]
fn model_validate_passes_the_real_model_and_fails_a_random_one() {
    let out = run(codegen().args(["model", "validate", "--json"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let record: serde_json::Value =
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout));
    assert_eq!(record["passed"], true, "{record}");
    let checks = record["checks"].as_array().unwrap();
    for name in ["checksum", "gguf", "tokenizer"] {
        assert!(checks.iter().any(|c| c["name"] == name), "{record}");
    }
    let suite: Vec<_> = checks
        .iter()
        .filter(|c| c["name"].as_str().unwrap().starts_with("suite/"))
        .collect();
    for lang in ["python", "rust", "javascript", "typescript", "go"] {
        assert!(
            suite
                .iter()
                .any(|c| c["name"].as_str().unwrap().contains(lang)),
            "no {lang} case: {record}"
        );
    }
    let sha = record["sha256"].as_str().unwrap();
    let file = codegen_store::StoreConfig::from_env()
        .root
        .join("validation")
        .join(format!("{sha}.json"));
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(saved["suite_version"], record["suite_version"]);

    let dir = tempfile::tempdir().unwrap();
    let tiny = dir.path().join("random.gguf");
    codegen_model::testing::write_tiny_gguf(&tiny, &codegen_model::testing::TinyConfig::default())
        .unwrap();
    let out = run(codegen().args(["model", "validate", "--json"]).arg(&tiny));
    assert_eq!(out.code, 1, "{}", out.stderr);
    let record: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(record["passed"], false);
    assert!(record["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"].as_str().unwrap().starts_with("suite/") && c["passed"] == false));
}

/// `codegen stats` over a week of synthetic telemetry: two models side by
/// side with intervals and a significance verdict, a shadow table,
/// sparklines, the drift that was planted (the language mix and latency
/// of the last day), a broken line counted, and an SVG chart.
#[test]
fn stats_compare_models_draw_trends_and_flag_planted_drift() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("telemetry.jsonl");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let day = 86_400_000u64;
    let mut lines = Vec::new();
    for i in 0..800u64 {
        let recent = i % 8 == 0;
        let ts = if recent {
            now - 1000 - (i % 97) * 60_000
        } else {
            now - day - 1000 - (i % 7) * day - (i % 13) * 60_000
        };
        let model = if i % 3 == 0 { "big" } else { "small" };
        let language = if recent {
            "go"
        } else if i % 2 == 0 {
            "python"
        } else {
            "rust"
        };
        let latency = if recent {
            900.0
        } else {
            200.0 + (i % 10) as f64
        };
        let id = format!("s{i}");
        lines.push(
            serde_json::json!({"ts_ms": ts, "event": "shown", "id": id, "model": model,
            "language": language, "latency_ms": latency, "length": 10, "prompt_tokens": 300,
            "context": "fim/single_line"}),
        );
        // big: every other suggestion accepted; small: one in five.
        if (model == "big" && i % 2 == 0) || (model == "small" && i % 5 == 0) {
            lines.push(
                serde_json::json!({"ts_ms": ts + 500, "event": "accepted", "id": id,
                "model": model, "language": language, "length": 10}),
            );
        }
        if model == "small" && i % 4 == 1 {
            lines.push(serde_json::json!({"ts_ms": ts + 900, "event": "shadow", "id": id,
                "model": "big", "language": language, "latency_ms": 500.0, "length": 10,
                "shadow": {"primary": "small", "agree_exact": i % 8 == 1,
                    "agree_first_line": true, "syntax_ok": true, "mean_logprob": -0.2,
                    "primary_mean_logprob": -0.4, "latency_ms": 500.0, "primary_latency_ms": 200.0}}));
        }
    }
    let mut text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    text.push_str("{\"ts_ms\": 3, \"event\": \"sho\n");
    std::fs::write(&file, text).unwrap();
    let svg = dir.path().join("chart.svg");
    let out = run(codegen()
        .args(["stats", "--by", "model", "--file"])
        .arg(&file)
        .arg("--svg")
        .arg(&svg));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let table = &out.stdout;
    for needle in [
        "95% CI",
        "Shadow runs",
        "big vs small",
        "significant at the 5% level",
        "Trends, one character per day",
        "▁",
        "! language-mix",
        "! latency-p95",
        "(1 unreadable lines skipped)",
    ] {
        assert!(table.contains(needle), "no {needle:?} in\n{table}");
    }
    assert!(!table.contains("! acceptance-rate"), "{table}");
    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(
        chart.starts_with("<svg") && chart.contains("acceptance rate"),
        "{chart}"
    );
    assert!(chart.matches("<polyline").count() >= 4, "{chart}");

    let out = run(codegen()
        .args(["stats", "--by", "model", "--json", "--file"])
        .arg(&file));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let json = stdout_json(&out);
    let models = json["models"].as_array().unwrap();
    assert_eq!(models[0]["model"], "small");
    let big = &models[1];
    assert_eq!(big["shadow"]["runs"], 134, "{big}");
    let ci = big["acceptance_ci"].as_array().unwrap();
    let rate = big["acceptance_rate"].as_f64().unwrap();
    assert!(ci[0].as_f64().unwrap() < rate && rate < ci[1].as_f64().unwrap());
    assert_eq!(json["comparisons"][0]["test"]["significant"], true);
    assert_eq!(json["unreadable_lines"], 1);
    let drifted: Vec<&str> = json["drift"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["drifted"] == true)
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        drifted,
        vec!["language-mix", "latency-p95"],
        "{}",
        json["drift"]
    );
}
