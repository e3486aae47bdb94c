//! The editor on a remote engine, end to end over real HTTP on loopback:
//! `codegen serve` (a tiny random-weight model) and `codegen lsp --backend`
//! pointed at it, as two processes. The language server renders the prompt,
//! the server samples, the language server post-processes and ranks; when
//! the server goes away, completions fail at once and the status says so.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};

/// Guards against a hung process; not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(120);

fn codegen() -> Command {
    Command::new(env!("CARGO_BIN_EXE_codegen"))
}

/// `codegen serve` on a free loopback port; returns the process and its URL.
fn start_serve(home: &Path, model: &Path) -> (Child, String) {
    let mut child = codegen()
        .args(["serve", "--listen", "127.0.0.1:0", "--model"])
        .arg(model)
        .env("CODEGEN_HOME", home)
        .env("CODEGEN_OFFLINE", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("codegen serve starts");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[serve] {line}");
            if let Some(url) = line
                .split(" on ")
                .nth(1)
                .filter(|_| line.contains("serving"))
            {
                let _ = tx.send(url.trim().to_string());
            }
        }
    });
    let url = rx
        .recv_timeout(PATIENCE)
        .expect("codegen serve prints its address");
    (child, url)
}

struct Lsp {
    child: Child,
    stdin: ChildStdin,
    messages: mpsc::Receiver<Value>,
    /// Notifications that came while waiting for a reply.
    seen: std::collections::VecDeque<Value>,
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
            length = line
                .strip_prefix("Content-Length: ")
                .and_then(|v| v.parse::<usize>().ok());
        }
        let mut body = vec![0; length.expect("Content-Length")];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let value: Value = serde_json::from_slice(&body).expect("JSON on stdout");
        if tx.send(value).is_err() {
            return;
        }
    }
}

impl Lsp {
    fn start(home: &Path, model: &Path, backend: &str) -> Lsp {
        let mut child = codegen()
            .args(["lsp", "--stdio", "--backend", backend, "--model"])
            .arg(model)
            .env("CODEGEN_HOME", home)
            .env("CODEGEN_OFFLINE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("codegen lsp starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || read_messages(stdout, tx));
        let stdin = child.stdin.take().expect("stdin");
        let mut lsp = Lsp {
            child,
            stdin,
            messages: rx,
            seen: Default::default(),
            next_id: 1,
        };
        let init = lsp.call(
            "initialize",
            json!({"capabilities": {}, "initializationOptions": {
                "model": model, "debounceMs": 0, "maxTokens": 8, "n": 2}}),
        );
        assert_eq!(
            init["result"]["capabilities"]["inlineCompletionProvider"],
            json!(true)
        );
        lsp.notify("initialized", json!({}));
        let ready = lsp.wait_status(|s| s != "loading");
        assert_eq!(ready["params"]["state"], "ready", "{ready}");
        lsp
    }

    fn send(&mut self, message: Value) {
        let body = message.to_string();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).expect("write");
        self.stdin.flush().expect("flush");
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    fn recv(&self) -> Value {
        self.messages
            .recv_timeout(PATIENCE)
            .expect("a message from the server")
    }

    /// Answers requests from the server (null) and returns other messages.
    fn next_message(&mut self) -> Value {
        loop {
            let message = self.recv();
            if let (Some(_), Some(id)) = (message.get("method"), message.get("id")) {
                let id = id.clone();
                self.send(json!({"jsonrpc": "2.0", "id": id, "result": null}));
                continue;
            }
            return message;
        }
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let message = self.next_message();
            if message.get("id") == Some(&json!(id)) {
                return message;
            }
            self.seen.push_back(message);
        }
    }

    fn wait_status(&mut self, done: impl Fn(&str) -> bool) -> Value {
        loop {
            let message = match self.seen.pop_front() {
                Some(message) => message,
                None => self.next_message(),
            };
            if message["method"] == "codegen/status"
                && done(message["params"]["state"].as_str().unwrap_or(""))
            {
                return message;
            }
        }
    }

    fn complete(&mut self, uri: &str, line: u32, character: u32) -> Value {
        self.call(
            "textDocument/inlineCompletion",
            json!({"textDocument": {"uri": uri}, "position": {"line": line, "character": character},
                   "context": {"triggerKind": 1}}),
        )
    }
}

impl Drop for Lsp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn metric(url: &str, line_start: &str) -> f64 {
    let text = ureq::get(&format!("{url}/metrics"))
        .call()
        .expect("metrics")
        .into_string()
        .expect("text");
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

const URI: &str = "file:///tmp/remote.py";
/// Code follows the cursor (line 5, after `return `): a fill-in-the-middle prompt.
const TEXT: &str = "import os\n\n\ndef list_files(path):\n    names = os.listdir(path)\n    return \n\n\nprint(list_files('.'))\n";

/// Replaces the document with `lines_before` comment lines above TEXT, so
/// the next request has a new prompt (no cached suggestion answers it).
fn change(lsp: &mut Lsp, version: i32, lines_before: usize) {
    let text = format!("{}{TEXT}", "# edited\n".repeat(lines_before));
    lsp.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": URI, "version": version}, "contentChanges": [{"text": text}]}),
    );
}

fn open(lsp: &mut Lsp) {
    lsp.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": URI, "languageId": "python", "version": 1, "text": TEXT}}),
    );
}

#[test]
fn the_language_server_completes_through_codegen_serve_and_reports_it_down() {
    let home = tempfile::tempdir().expect("home");
    let model = home.path().join("tiny.gguf");
    codegen_model::testing::write_tiny_gguf(&model, &codegen_model::testing::TinyConfig::default())
        .expect("tiny model");
    let (mut serve, url) = start_serve(home.path(), &model);

    // llama-server's protocol: /infill for fill-in-the-middle, /completion
    // for a plain continuation (the context decides which).
    for (backend, endpoints) in [
        (url.clone(), vec!["/v1/completions"]),
        (
            format!("llama-server+{url}"),
            vec!["/infill", "/completion"],
        ),
    ] {
        let served = |url: &str| -> f64 {
            endpoints
                .iter()
                .map(|e| {
                    metric(
                        url,
                        &format!("codegen_requests_total{{endpoint=\"{e}\",status=\"200\"}}"),
                    )
                })
                .sum()
        };
        let before = served(&url);
        let mut lsp = Lsp::start(home.path(), &model, &backend);
        open(&mut lsp);
        let reply = lsp.complete(URI, 5, 11);
        assert!(reply.get("error").is_none(), "{backend}: {reply}");
        assert!(reply["result"]["items"].is_array(), "{backend}: {reply}");
        // The samples came from the server, over the protocol named.
        assert!(
            served(&url) > before,
            "{backend}: no request reached {endpoints:?}"
        );
    }

    // The server goes away: the next completion fails at once, and the
    // editor's status says the backend is down.
    let mut lsp = Lsp::start(home.path(), &model, &url);
    open(&mut lsp);
    let reply = lsp.complete(URI, 5, 11);
    assert!(reply.get("error").is_none(), "{reply}");
    serve.kill().expect("kill serve");
    serve.wait().expect("serve exits");
    change(&mut lsp, 2, 1);
    let reply = lsp.complete(URI, 6, 11);
    let message = reply["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(message.contains(&url), "{reply}");
    let status = lsp.wait_status(|s| s == "error");
    let status_message = status["params"]["message"].as_str().unwrap_or_default();
    assert!(status_message.contains("is down"), "{status}");
    // While it is down, requests fail without waiting on the network.
    change(&mut lsp, 3, 2);
    let again = lsp.complete(URI, 7, 11);
    assert!(
        again["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("is down")),
        "{again}"
    );
}
