//! Real model: both benchmarks run through the engine's one entry point and
//! write their reports; `--json` prints JSON only on stdout.

use crate::support::{codegen, run};

fn json_of(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn bench_infill_reports_greedy_and_ranked_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("infill");
    let args = |resume: bool| {
        let mut args = vec![
            "bench",
            "infill",
            "--mode",
            "single-line,random-span",
            "--limit",
            "2",
            "--rank",
            "--n",
            "2",
            "--json",
            "--out",
            out_dir.to_str().unwrap(),
        ];
        if resume {
            args.push("--resume");
        }
        args.into_iter().map(str::to_string).collect::<Vec<_>>()
    };
    let out = run(codegen().args(args(false)));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let json = json_of(&out.stdout);
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "{json}");
    for row in rows {
        assert_eq!(row["tasks"], 2, "{row}");
        let pass = row["pass@1"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&pass), "{row}");
    }
    let policies: Vec<&str> = rows.iter().map(|r| r["policy"].as_str().unwrap()).collect();
    assert!(policies.contains(&"greedy") && policies.contains(&"ranked"));
    let samples = std::fs::read_to_string(out_dir.join("samples.jsonl")).unwrap();
    assert_eq!(samples.lines().count(), 8);
    let report = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(report.contains("chart.svg"), "{report}");
    assert!(out_dir.join("chart.svg").is_file());
    // Without --resume an existing run is not overwritten; with it nothing
    // is generated again.
    let again = run(codegen().args(args(false)));
    assert_ne!(again.code, 0);
    assert!(again.stderr.contains("--resume"), "{}", again.stderr);
    let resumed = run(codegen().args(args(true)));
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert_eq!(json_of(&resumed.stdout)["rows"], json["rows"]);
    let samples_after = std::fs::read_to_string(out_dir.join("samples.jsonl")).unwrap();
    assert_eq!(samples_after, samples);
}

#[test]
fn bench_humaneval_ranks_in_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("he");
    let out = run(codegen().args([
        "bench",
        "humaneval",
        "--tasks",
        "HumanEval/0,HumanEval/2",
        "--n",
        "2",
        "--rank",
        "--max-tokens",
        "200",
        "--k",
        "1",
        "--json",
        "--out",
        out_dir.to_str().unwrap(),
    ]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    // The table of policies goes to the report; stdout is the JSON alone.
    let json = json_of(&out.stdout);
    assert_eq!(json["samples"], 4, "{json}");
    let ranked = json["ranked_pass@1"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&ranked), "{json}");
    let chosen = std::fs::read_to_string(out_dir.join("ranked_samples.jsonl")).unwrap();
    assert_eq!(chosen.lines().count(), 2);
    let samples = std::fs::read_to_string(out_dir.join("samples.jsonl")).unwrap();
    assert!(samples.contains("\"rank_position\""), "{samples}");
    let report = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(report.contains("The engine's ranked pass@1"), "{report}");
}
