//! `codegen lsp` as a process: exit codes after `shutdown`/`exit`, nothing
//! but protocol on stdout, and `codegen stats` over the telemetry it wrote.
//! The model is a tiny random-weight GGUF written by the test.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{codegen, run};

/// Guards against a hung server; not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(120);

struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    messages: mpsc::Receiver<Value>,
    next_id: i64,
}

fn read_messages(stdout: ChildStdout, tx: mpsc::Sender<Value>) {
    let mut reader = BufReader::new(stdout);
    loop {
        let mut length = None;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            // Anything on stdout that is not a header is a protocol violation.
            let value = line
                .strip_prefix("Content-Length: ")
                .unwrap_or_else(|| panic!("not an LSP header on stdout: {line:?}"));
            length = Some(value.parse::<usize>().unwrap());
        }
        let mut body = vec![0; length.expect("Content-Length")];
        reader.read_exact(&mut body).unwrap();
        let value: Value = serde_json::from_slice(&body).expect("JSON on stdout");
        if tx.send(value).is_err() {
            return;
        }
    }
}

impl Server {
    /// A server that serves any model (`--force`: the tests' tiny random
    /// models cannot pass validation).
    fn start(home: &std::path::Path) -> Server {
        Server::start_with(home, &["--force"])
    }

    fn start_with(home: &std::path::Path, extra: &[&str]) -> Server {
        let mut child = codegen()
            .args(["lsp", "--stdio"])
            .args(extra)
            .env("CODEGEN_HOME", home)
            .env("CODEGEN_OFFLINE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("codegen lsp starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || read_messages(stdout, tx));
        Server {
            stdin: child.stdin.take(),
            child,
            messages: rx,
            next_id: 1,
        }
    }

    fn send(&mut self, message: Value) {
        let body = message.to_string();
        let stdin = self.stdin.as_mut().unwrap();
        write!(stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        stdin.flush().unwrap();
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    fn recv(&self) -> Value {
        self.messages
            .recv_timeout(PATIENCE)
            .expect("a message from the server")
    }

    /// The next reply (a message without a method), skipping the server's
    /// notifications (log messages may come at any time, e.g. after the
    /// drift check that follows a reply).
    fn recv_reply(&self) -> Value {
        loop {
            let message = self.recv();
            if message.get("method").is_none() {
                return message;
            }
        }
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let message = self.recv();
            if message.get("method").is_some() {
                if let Some(request_id) = message.get("id") {
                    let request_id = request_id.clone();
                    self.send(json!({"jsonrpc": "2.0", "id": request_id, "result": null}));
                }
                continue;
            }
            assert_eq!(message["id"], json!(id), "{message}");
            return message;
        }
    }

    fn wait_ready(&mut self) {
        loop {
            let message = self.recv();
            if message["method"] == "codegen/status" {
                match message["params"]["state"].as_str() {
                    Some("ready") => return,
                    Some("loading") => {}
                    _ => panic!("the model did not load: {message}"),
                }
            } else if let (Some(_), Some(id)) = (message.get("method"), message.get("id")) {
                let id = id.clone();
                self.send(json!({"jsonrpc": "2.0", "id": id, "result": null}));
            }
        }
    }

    fn initialize(&mut self, model: &std::path::Path) {
        let init = self.call(
            "initialize",
            json!({"capabilities": {}, "initializationOptions": {
                "model": model, "debounceMs": 0, "maxTokens": 8}}),
        );
        assert_eq!(
            init["result"]["capabilities"]["inlineCompletionProvider"],
            json!(true)
        );
        self.notify("initialized", json!({}));
        self.wait_ready();
    }

    fn exit_code(mut self) -> i32 {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let status = self.child.wait().unwrap();
            let _ = tx.send(status.code().unwrap_or(-1));
        });
        rx.recv_timeout(PATIENCE).expect("the server exits")
    }
}

fn tiny_model(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("tiny.gguf");
    codegen_model::testing::write_tiny_gguf(&path, &codegen_model::testing::TinyConfig::default())
        .unwrap();
    path
}

#[test]
fn shutdown_then_exit_ends_the_process_with_code_0_and_stats_read_its_telemetry() {
    let home = tempfile::tempdir().unwrap();
    let model = tiny_model(home.path());
    let mut server = Server::start(home.path());
    server.initialize(&model);
    let uri = "file:///tmp/files.py";
    let text = "import os\n\n\ndef list_files(path):\n    names = os.listdir(path)\n    return \n";
    server.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}}),
    );
    let reply = server.call(
        "textDocument/inlineCompletion",
        json!({"textDocument": {"uri": uri}, "position": {"line": 5, "character": 11},
               "context": {"triggerKind": 1}}),
    );
    let item = reply["result"]["items"][0].clone();
    assert_eq!(
        item["command"]["command"],
        json!("codegen.accepted"),
        "{reply}"
    );
    let accepted = server.call(
        "workspace/executeCommand",
        json!({"command": "codegen.accepted", "arguments": item["command"]["arguments"]}),
    );
    assert_eq!(accepted["result"], Value::Null, "{accepted}");
    // Malformed input on the real stdin does not end the process.
    server
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"Content-Length: 5\r\n\r\n{{{{{")
        .unwrap();
    let parse_error = server.recv_reply();
    assert_eq!(parse_error["error"]["code"], json!(-32700), "{parse_error}");
    let shutdown = server.call("shutdown", Value::Null);
    assert_eq!(shutdown["result"], Value::Null, "{shutdown}");
    server.notify("exit", Value::Null);
    assert_eq!(server.exit_code(), 0);

    let stats = run(codegen()
        .args(["stats", "--json", "--since", "1d"])
        .env("CODEGEN_HOME", home.path()));
    assert_eq!(stats.code, 0, "{}", stats.stderr);
    let stats: Value = serde_json::from_str(&stats.stdout).unwrap();
    let group = &stats["groups"][0];
    assert_eq!(group["model"], json!("tiny"), "{stats}");
    assert_eq!(group["language"], json!("python"));
    assert_eq!(group["shown"], json!(1));
    assert_eq!(group["accepted"], json!(1));
    assert_eq!(group["acceptance_rate"], json!(1.0));
    let table = run(codegen().args(["stats"]).env("CODEGEN_HOME", home.path()));
    assert!(
        table.stdout.contains("tiny") && table.stdout.contains("100.0%"),
        "{}",
        table.stdout
    );
}

#[test]
fn exit_without_shutdown_ends_the_process_with_code_1() {
    let home = tempfile::tempdir().unwrap();
    let model = tiny_model(home.path());
    let mut server = Server::start(home.path());
    server.initialize(&model);
    server.notify("exit", Value::Null);
    assert_eq!(server.exit_code(), 1);
}

#[test]
fn the_end_of_input_ends_the_process() {
    let home = tempfile::tempdir().unwrap();
    let mut server = Server::start(home.path());
    let init = server.call("initialize", json!({"capabilities": {}}));
    assert!(init["result"]["capabilities"].is_object());
    server.stdin = None; // closes the pipe
    assert_eq!(server.exit_code(), 1);
}

#[test]
fn a_missing_model_is_an_error_status_not_a_dead_server() {
    let home = tempfile::tempdir().unwrap();
    let mut server = Server::start(home.path());
    server.call(
        "initialize",
        json!({"capabilities": {}, "initializationOptions": {"model": "/nonexistent/m.gguf"}}),
    );
    server.notify("initialized", json!({}));
    loop {
        let message = server.recv();
        if message["method"] == "codegen/status" && message["params"]["state"] == "error" {
            assert!(message["params"]["message"]
                .as_str()
                .unwrap()
                .contains("does not exist"));
            break;
        }
    }
    let shutdown = server.call("shutdown", Value::Null);
    assert_eq!(shutdown["result"], Value::Null);
    server.notify("exit", Value::Null);
    assert_eq!(server.exit_code(), 0);
}

/// Without `--force` a model must pass validation before it serves: a
/// random-weight model fails the must-pass suite, the status says so, and
/// the server keeps running.
#[test]
fn a_model_that_fails_validation_never_serves() {
    let home = tempfile::tempdir().unwrap();
    let model = tiny_model(home.path());
    let mut server = Server::start_with(home.path(), &[]);
    server.call(
        "initialize",
        json!({"capabilities": {}, "initializationOptions": {"model": model}}),
    );
    server.notify("initialized", json!({}));
    loop {
        let message = server.recv();
        if message["method"] != "codegen/status" {
            continue;
        }
        assert_ne!(message["params"]["state"], "ready", "{message}");
        if message["params"]["state"] == "error" {
            let text = message["params"]["message"].as_str().unwrap();
            assert!(text.contains("failed validation"), "{text}");
            assert!(text.contains("--force"), "{text}");
            break;
        }
    }
    let stats = server.call("codegen/engineStats", Value::Null);
    assert_eq!(stats["result"]["modelLoaded"], json!(false), "{stats}");
    let shutdown = server.call("shutdown", Value::Null);
    assert_eq!(shutdown["result"], Value::Null);
    server.notify("exit", Value::Null);
    assert_eq!(server.exit_code(), 0);
}

/// A home whose model cache is the user's (the real models, fetched by the
/// store as users get them), with its own telemetry and validation records.
fn home_with_real_models() -> tempfile::TempDir {
    for name in ["qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"] {
        let fetched = run(codegen().args(["model", "fetch", name]));
        assert_eq!(fetched.code, 0, "{}", fetched.stderr);
    }
    let home = tempfile::tempdir().unwrap();
    let cache = codegen_store::StoreConfig::from_env().root.join("models");
    std::os::unix::fs::symlink(cache, home.path().join("models")).unwrap();
    home
}

impl Server {
    fn status(&mut self) -> Value {
        self.call("codegen/engineStats", Value::Null)["result"]["status"].clone()
    }

    /// Polls the status until `done` holds (statuses pass by as notifications).
    fn wait_status(&mut self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let start = std::time::Instant::now();
        loop {
            let status = self.status();
            if done(&status) {
                return status;
            }
            assert!(
                status["state"] != "error" && status["candidate"]["state"] != "error",
                "waiting for {what}: {status}"
            );
            assert!(start.elapsed() < PATIENCE * 3, "never {what}: {status}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn complete(&mut self, uri: &str, text: &str, line: u32, character: u32) -> Value {
        self.notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}}),
        );
        self.call(
            "textDocument/inlineCompletion",
            json!({"textDocument": {"uri": uri}, "position": {"line": line, "character": character},
                   "context": {"triggerKind": 1}}),
        )
    }
}

fn telemetry(home: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(home.join("telemetry.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Model operations with the real models: both are validated before they
/// serve (suite and speed, records written), the 1.5B runs in shadow
/// beside the 0.5B and then serves a rollout, the model is retired when
/// idle and comes back, and `codegen stats --by model` compares them.
#[test]
fn real_models_validate_shadow_roll_out_retire_and_compare() {
    let home = home_with_real_models();
    let mut server = Server::start_with(home.path(), &[]);
    server.call(
        "initialize",
        json!({"capabilities": {}, "initializationOptions": {
            "model": "qwen2.5-coder-0.5b-instruct",
            "shadowModel": "qwen2.5-coder-1.5b-instruct",
            "shadowPercent": 100, "debounceMs": 0, "maxTokens": 24, "n": 1}}),
    );
    server.notify("initialized", json!({}));
    server.wait_status("both models ready", |s| {
        s["state"] == "ready" && s["candidate"]["state"] == "ready"
    });
    // Both passed validation, speed included, before serving.
    let records: Vec<Value> = std::fs::read_dir(home.path().join("validation"))
        .unwrap()
        .map(|e| {
            serde_json::from_str(&std::fs::read_to_string(e.unwrap().path()).unwrap()).unwrap()
        })
        .collect();
    assert_eq!(records.len(), 2, "{records:?}");
    for record in &records {
        assert_eq!(record["passed"], true, "{record}");
        let speed = record["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "speed")
            .unwrap_or_else(|| panic!("no speed check: {record}"));
        assert!(
            speed["detail"]
                .as_str()
                .unwrap()
                .contains("of the reference"),
            "{speed}"
        );
    }

    let docs = [
        "def add(a, b):\n    \"\"\"Return the sum of a and b.\"\"\"\n    return \n",
        "def is_even(n):\n    \"\"\"True when n is even.\"\"\"\n    return \n",
        "def square(x):\n    \"\"\"x times x.\"\"\"\n    return \n",
    ];
    let mut first_item = Value::Null;
    for (i, text) in docs.iter().enumerate() {
        let reply = server.complete(&format!("file:///work/ops{i}.py"), text, 2, 11);
        let item = reply["result"]["items"][0].clone();
        assert_eq!(
            item["command"]["arguments"][0]["model"], "qwen2.5-coder-0.5b-instruct",
            "{reply}"
        );
        if i == 0 {
            first_item = item;
        }
    }
    let accepted = server.call(
        "workspace/executeCommand",
        json!({"command": "codegen.accepted", "arguments": first_item["command"]["arguments"]}),
    );
    assert_eq!(accepted["result"], Value::Null, "{accepted}");
    // The shadow runs once the engine is idle.
    let start = std::time::Instant::now();
    let shadows = loop {
        let shadows: Vec<Value> = telemetry(home.path())
            .into_iter()
            .filter(|e| e["event"] == "shadow")
            .collect();
        if !shadows.is_empty() {
            break shadows;
        }
        assert!(start.elapsed() < PATIENCE, "no shadow run recorded");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(shadows[0]["model"], "qwen2.5-coder-1.5b-instruct");
    assert_eq!(
        shadows[0]["shadow"]["primary"],
        "qwen2.5-coder-0.5b-instruct"
    );

    // Every document to the candidate.
    server.notify(
        "workspace/didChangeConfiguration",
        json!({"settings": {"codegen": {"rolloutPercent": 100}}}),
    );
    let reply = server.complete("file:///work/rollout.py", docs[0], 2, 11);
    assert_eq!(
        reply["result"]["items"][0]["command"]["arguments"][0]["model"],
        "qwen2.5-coder-1.5b-instruct",
        "{reply}"
    );

    // Idle: both models are released; a request brings them back.
    server.notify(
        "workspace/didChangeConfiguration",
        json!({"settings": {"codegen": {"idleUnloadSecs": 1, "rolloutPercent": 0}}}),
    );
    let idle = server.wait_status("idle", |s| s["state"] == "idle");
    assert!(idle.get("candidate").is_none(), "{idle}");
    let stats = server.call("codegen/engineStats", Value::Null);
    assert_eq!(stats["result"]["modelLoaded"], false, "{stats}");
    server.notify(
        "workspace/didChangeConfiguration",
        json!({"settings": {"codegen": {"idleUnloadSecs": 3600}}}),
    );
    let woke = server.complete("file:///work/wake.py", docs[1], 2, 11);
    assert!(woke["result"]["items"].is_array(), "{woke}");
    server.wait_status("both models back", |s| {
        s["state"] == "ready" && s["candidate"]["state"] == "ready"
    });
    let reply = server.complete("file:///work/after.py", docs[2], 2, 11);
    assert_eq!(
        reply["result"]["items"][0]["command"]["arguments"][0]["model"],
        "qwen2.5-coder-0.5b-instruct",
        "{reply}"
    );

    let shutdown = server.call("shutdown", Value::Null);
    assert_eq!(shutdown["result"], Value::Null);
    server.notify("exit", Value::Null);
    assert_eq!(server.exit_code(), 0);

    let out = run(codegen()
        .args(["stats", "--by", "model", "--json"])
        .env("CODEGEN_HOME", home.path()));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let stats: Value = serde_json::from_str(&out.stdout).unwrap();
    let models = stats["models"].as_array().unwrap();
    let small = models
        .iter()
        .find(|m| m["model"] == "qwen2.5-coder-0.5b-instruct")
        .unwrap();
    let large = models
        .iter()
        .find(|m| m["model"] == "qwen2.5-coder-1.5b-instruct")
        .unwrap();
    assert_eq!(small["shown"], 4, "{stats}");
    assert_eq!(small["accepted"], 1, "{stats}");
    assert_eq!(large["shown"], 1, "{stats}");
    assert!(large["shadow"]["runs"].as_u64().unwrap() >= 1, "{stats}");
    assert_eq!(
        stats["comparisons"][0]["model"],
        "qwen2.5-coder-1.5b-instruct"
    );
    let table = run(codegen()
        .args(["stats", "--by", "model"])
        .env("CODEGEN_HOME", home.path()));
    assert!(table.stdout.contains("Shadow runs"), "{}", table.stdout);
    assert!(
        table.stdout.contains("not significant") || table.stdout.contains("not conclusive"),
        "{}",
        table.stdout
    );
}
