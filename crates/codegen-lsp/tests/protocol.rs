//! Protocol and robustness tests: the server runs in-process over a duplex
//! pipe and the test speaks raw JSON-RPC framed with Content-Length, so
//! malformed input can be sent as it is. The model is a tiny random-weight
//! GGUF written by the test.

use std::path::PathBuf;
use std::time::Duration;

use codegen_lsp::{serve, DownloadProgress, ServeOutcome, ServerOptions};
use codegen_model::testing::{write_tiny_gguf, TinyConfig};
use serde_json::{json, Value};
use tokio::io::{
    AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, DuplexStream, ReadHalf, WriteHalf,
};
use tokio::task::JoinHandle;

/// Guards against a hung server; not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(120);

struct Lsp {
    writer: WriteHalf<DuplexStream>,
    reader: BufReader<ReadHalf<DuplexStream>>,
    next_id: i64,
    /// Notifications received so far, in order.
    notifications: Vec<Value>,
    dir: tempfile::TempDir,
    model_path: PathBuf,
    server: Option<JoinHandle<std::io::Result<ServeOutcome>>>,
}

fn tiny_model(dir: &std::path::Path) -> PathBuf {
    let path = dir.join("tiny.gguf");
    write_tiny_gguf(&path, &TinyConfig::default()).unwrap();
    path
}

impl Lsp {
    fn start() -> Lsp {
        Lsp::start_with(|_, _| {})
    }

    /// Starts a server whose options `configure` may change (it gets the
    /// tiny model's path).
    fn start_with(configure: impl FnOnce(&mut ServerOptions, &std::path::Path)) -> Lsp {
        let dir = tempfile::tempdir().unwrap();
        let model_path = tiny_model(dir.path());
        let mut options = ServerOptions::with_paths_only();
        options.telemetry_path = Some(dir.path().join("telemetry.jsonl"));
        options.debug_methods = true;
        configure(&mut options, &model_path);
        let (client_side, server_side) = tokio::io::duplex(1 << 16);
        let (server_read, server_write) = tokio::io::split(server_side);
        let server = tokio::spawn(serve(server_read, server_write, options));
        let (reader, writer) = tokio::io::split(client_side);
        Lsp {
            writer,
            reader: BufReader::new(reader),
            next_id: 1,
            notifications: Vec::new(),
            dir,
            model_path,
            server: Some(server),
        }
    }

    fn telemetry(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("telemetry.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    async fn send_raw(&mut self, body: &[u8]) {
        let header = format!("Content-Length: {}\r\n\r\n", body.len());
        self.writer.write_all(header.as_bytes()).await.unwrap();
        self.writer.write_all(body).await.unwrap();
        self.writer.flush().await.unwrap();
    }

    async fn send(&mut self, message: Value) {
        self.send_raw(message.to_string().as_bytes()).await;
    }

    async fn request(&mut self, method: &str, params: Value) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        id
    }

    async fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({"jsonrpc": "2.0", "method": method, "params": params}))
            .await;
    }

    async fn recv(&mut self) -> Value {
        tokio::time::timeout(PATIENCE, self.recv_inner())
            .await
            .expect("the server answers")
    }

    async fn recv_inner(&mut self) -> Value {
        let mut length = None;
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).await.unwrap();
            assert!(n > 0, "the server closed its output");
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some(value) = line.strip_prefix("Content-Length: ") {
                length = Some(value.parse::<usize>().unwrap());
            }
        }
        let mut body = vec![0; length.expect("a Content-Length header")];
        self.reader.read_exact(&mut body).await.unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    /// The next response (answering server requests and keeping
    /// notifications on the way).
    async fn next_response(&mut self) -> Value {
        loop {
            let message = self.recv().await;
            match (message.get("method"), message.get("id")) {
                (Some(_), Some(id)) => {
                    let id = id.clone();
                    self.send(json!({"jsonrpc": "2.0", "id": id, "result": null}))
                        .await;
                }
                (Some(_), None) => self.notifications.push(message),
                _ => return message,
            }
        }
    }

    async fn response(&mut self, id: i64) -> Value {
        let response = self.next_response().await;
        assert_eq!(response["id"], json!(id), "{response}");
        response
    }

    async fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.request(method, params).await;
        self.response(id).await
    }

    async fn notification(&mut self, method: &str) -> Value {
        loop {
            if let Some(idx) = self
                .notifications
                .iter()
                .position(|n| n["method"] == method)
            {
                return self.notifications.remove(idx);
            }
            let message = self.recv().await;
            match (message.get("method"), message.get("id")) {
                (Some(_), Some(id)) => {
                    let id = id.clone();
                    self.send(json!({"jsonrpc": "2.0", "id": id, "result": null}))
                        .await;
                }
                (Some(_), None) => self.notifications.push(message),
                _ => panic!("unexpected response {message}"),
            }
        }
    }

    /// The first `window/logMessage` whose message contains `needle`.
    async fn log_containing(&mut self, needle: &str) -> String {
        loop {
            let log = self.notification("window/logMessage").await;
            let message = log["params"]["message"].as_str().unwrap().to_string();
            if message.contains(needle) {
                return message;
            }
        }
    }

    async fn initialize_with(&mut self, encodings: &[&str], options: Value) -> Value {
        let mut init_options = json!({
            "model": self.model_path.to_str().unwrap(),
            "debounceMs": 0,
            "maxTokens": 8,
            "timeBudgetMs": 0,
        });
        for (key, value) in options.as_object().unwrap() {
            init_options[key] = value.clone();
        }
        let result = self
            .call(
                "initialize",
                json!({
                    "processId": null,
                    "rootUri": null,
                    "capabilities": {
                        "general": {"positionEncodings": encodings},
                        "window": {"workDoneProgress": true},
                    },
                    "initializationOptions": init_options,
                }),
            )
            .await;
        self.notify("initialized", json!({})).await;
        loop {
            let status = self.notification("codegen/status").await;
            match status["params"]["state"].as_str() {
                Some("ready") => break,
                Some("loading") => continue,
                _ => panic!("model failed to load: {status}"),
            }
        }
        result
    }

    async fn initialize(&mut self) -> Value {
        self.initialize_with(&["utf-16"], json!({})).await
    }

    async fn open(&mut self, uri: &str, text: &str) {
        self.notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}}),
        )
        .await;
    }

    async fn change(&mut self, uri: &str, version: i32, changes: Value) {
        self.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": version}, "contentChanges": changes}),
        )
        .await;
    }

    async fn document_text(&mut self, uri: &str) -> String {
        let response = self
            .call("codegen/debugDocument", json!({"uri": uri}))
            .await;
        response["result"]["text"].as_str().unwrap().to_string()
    }

    async fn inline(&mut self, uri: &str, line: u32, character: u32) -> Value {
        self.call(
            "textDocument/inlineCompletion",
            inline_params(uri, line, character),
        )
        .await
    }

    async fn stats(&mut self) -> Value {
        self.call("codegen/engineStats", Value::Null).await["result"].clone()
    }

    async fn shutdown_and_exit(&mut self) -> ServeOutcome {
        let response = self.call("shutdown", Value::Null).await;
        assert_eq!(response["result"], Value::Null, "{response}");
        self.notify("exit", Value::Null).await;
        self.finished().await
    }

    async fn finished(&mut self) -> ServeOutcome {
        let server = self.server.take().unwrap();
        tokio::time::timeout(PATIENCE, server)
            .await
            .expect("the server stops")
            .unwrap()
            .unwrap()
    }
}

fn inline_params(uri: &str, line: u32, character: u32) -> Value {
    json!({
        "textDocument": {"uri": uri},
        "position": {"line": line, "character": character},
        "context": {"triggerKind": 1},
    })
}

#[track_caller]
fn assert_error(response: &Value, code: i64) {
    assert_eq!(response["error"]["code"], json!(code), "{response}");
}

const URI: &str = "file:///work/m.py";
const SOURCE: &str =
    "import os\n\n\ndef list_files(path):\n    names = os.listdir(path)\n    return \n";

#[tokio::test]
async fn capabilities_advertise_inline_completion_sync_and_the_accept_command() {
    let mut lsp = Lsp::start();
    let init = lsp.initialize().await;
    let caps = &init["result"]["capabilities"];
    assert_eq!(caps["inlineCompletionProvider"], json!(true));
    assert_eq!(caps["positionEncoding"], json!("utf-16"));
    assert_eq!(caps["textDocumentSync"]["change"], json!(2));
    assert_eq!(caps["textDocumentSync"]["openClose"], json!(true));
    assert_eq!(
        caps["executeCommandProvider"]["commands"],
        json!(["codegen.accepted"])
    );
    assert!(caps["completionProvider"].is_object());
    // The model loaded with $/progress begin and end.
    let begin = lsp.notification("$/progress").await;
    assert_eq!(begin["params"]["value"]["kind"], json!("begin"));
    let end = lsp.notification("$/progress").await;
    assert_eq!(end["params"]["value"]["kind"], json!("end"));
    assert!(lsp.shutdown_and_exit().await.shutdown_requested);
}

/// A model fetched on first use: the editor sees the download's percentage
/// and bytes in `$/progress` reports between begin and end.
#[tokio::test]
async fn a_model_download_reports_percentage_and_bytes() {
    let mut lsp = Lsp::start_with(|options, model_path| {
        let model_path = model_path.to_path_buf();
        options.resolve_model = std::sync::Arc::new(move |_spec, progress| {
            let total = 469 * 1024 * 1024;
            for done in [0, total / 3, total] {
                progress(DownloadProgress {
                    done,
                    total,
                    verifying: false,
                });
            }
            Ok(("downloaded".into(), model_path.clone()))
        });
    });
    lsp.initialize().await;
    let begin = lsp.notification("$/progress").await;
    assert_eq!(begin["params"]["value"]["kind"], json!("begin"));
    assert_eq!(begin["params"]["value"]["percentage"], json!(0));
    let mut reports = Vec::new();
    loop {
        let value = lsp.notification("$/progress").await["params"]["value"].clone();
        if value["kind"] == json!("end") {
            break;
        }
        assert_eq!(value["kind"], json!("report"), "{value}");
        reports.push(value);
    }
    // The first and the last always go out; the middle one came too soon.
    assert_eq!(
        reports,
        vec![
            json!({"kind": "report", "percentage": 0, "message": "0.0 / 469.0 MiB"}),
            json!({"kind": "report", "percentage": 100, "message": "469.0 / 469.0 MiB"}),
        ]
    );
    assert!(lsp.shutdown_and_exit().await.shutdown_requested);
}

#[tokio::test]
async fn inline_items_carry_text_range_and_command_and_acceptance_is_recorded() {
    let mut lsp = Lsp::start();
    lsp.initialize().await;
    lsp.open(URI, SOURCE).await;
    let response = lsp.inline(URI, 5, 11).await;
    let items = response["result"]["items"].as_array().unwrap().clone();
    assert!(!items.is_empty(), "{response}");
    let item = &items[0];
    let insert = item["insertText"].as_str().unwrap();
    assert!(insert.starts_with("    return "), "{item}");
    assert!(insert.len() > "    return ".len(), "{item}");
    assert_eq!(
        item["range"],
        json!({"start": {"line": 5, "character": 0}, "end": {"line": 5, "character": 11}})
    );
    assert_eq!(item["command"]["command"], json!("codegen.accepted"));
    let argument = item["command"]["arguments"][0].clone();
    assert_eq!(argument["kind"], json!("full"));

    let accepted = lsp
        .call(
            "workspace/executeCommand",
            json!({"command": "codegen.accepted", "arguments": [argument]}),
        )
        .await;
    assert_eq!(accepted["result"], Value::Null, "{accepted}");
    let partial = lsp
        .call(
            "workspace/executeCommand",
            json!({"command": "codegen.accepted", "arguments": [
                {"id": argument["id"], "kind": "partial", "acceptedLength": 2}
            ]}),
        )
        .await;
    assert_eq!(partial["result"], Value::Null, "{partial}");
    let events = lsp.telemetry();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["shown", "accepted", "partial"]);
    assert!(events
        .iter()
        .all(|e| e["id"] == argument["id"] && e["model"] == json!("tiny")));
    assert_eq!(events[0]["language"], json!("python"));
    assert_eq!(events[2]["accepted_length"], json!(2));

    // Wrong command arguments are invalid params; unknown ids too.
    for bad in [
        json!({"command": "codegen.accepted", "arguments": []}),
        json!({"command": "codegen.accepted", "arguments": [{"id": 3}]}),
        json!({"command": "codegen.accepted", "arguments": [{"id": "nope", "kind": "full"}]}),
        json!({"command": "rm -rf", "arguments": []}),
    ] {
        assert_error(&lsp.call("workspace/executeCommand", bad).await, -32602);
    }
    assert!(lsp.shutdown_and_exit().await.shutdown_requested);
}

/// Several candidates come back in the engine's order (the server never
/// reorders them), and how they were ranked shows in engineStats and in
/// telemetry.
#[tokio::test]
async fn inline_items_come_in_the_engines_ranked_order() {
    let mut lsp = Lsp::start();
    lsp.initialize_with(
        &["utf-16"],
        json!({"n": 4, "temperature": 1.5, "maxTokens": 6}),
    )
    .await;
    let source = "def add(a, b):\n    \"\"\"\n    >>> add(2, 3)\n    5\n    \"\"\"\n    return \n";
    lsp.open(URI, source).await;
    let response = lsp.inline(URI, 5, 11).await;
    let items = response["result"]["items"].as_array().unwrap().clone();
    let stats = lsp.call("codegen/engineStats", Value::Null).await["result"].clone();
    let last = &stats["lastRanking"];
    assert_eq!(last["policy"], json!("combined"), "{stats}");
    assert_eq!(last["samples"], json!(4), "{stats}");
    let order: Vec<String> = last["order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| format!("    return {}", t.as_str().unwrap()))
        .collect();
    let shown: Vec<String> = items
        .iter()
        .map(|i| i["insertText"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(shown, order, "{response}");
    assert_eq!(stats["ranked"], json!(1), "{stats}");
    assert!(stats["rankMsTotal"].as_f64().is_some(), "{stats}");
    if !items.is_empty() {
        let events = lsp.telemetry();
        assert_eq!(events[0]["rank"]["policy"], json!("combined"), "{events:?}");
        assert_eq!(
            events[0]["rank"]["candidates"],
            json!(items.len()),
            "{events:?}"
        );
    }
    assert!(lsp.shutdown_and_exit().await.shutdown_requested);
}

#[tokio::test]
async fn completion_fallback_offers_the_first_line() {
    let mut lsp = Lsp::start();
    lsp.initialize().await;
    lsp.open(URI, SOURCE).await;
    let response = lsp
        .call(
            "textDocument/completion",
            json!({"textDocument": {"uri": URI}, "position": {"line": 5, "character": 11},
                   "context": {"triggerKind": 1}}),
        )
        .await;
    let items = response["result"].as_array().unwrap();
    assert!(!items.is_empty(), "{response}");
    let edit = &items[0]["textEdit"];
    assert!(!edit["newText"].as_str().unwrap().contains('\n'));
    assert!(edit["newText"].as_str().unwrap().starts_with("    return "));
    assert_eq!(items[0]["command"]["command"], json!("codegen.accepted"));
}

#[tokio::test]
async fn typed_through_keystrokes_are_answered_from_the_cache() {
    let mut lsp = Lsp::start();
    lsp.initialize().await;
    lsp.open(URI, SOURCE).await;
    let first = lsp.inline(URI, 5, 11).await;
    let insert = first["result"]["items"][0]["insertText"]
        .as_str()
        .unwrap()
        .to_string();
    let suggestion = insert.strip_prefix("    return ").unwrap().to_string();
    let typed: String = suggestion.chars().take(1).collect();
    assert!(
        suggestion.len() > typed.len(),
        "suggestion {suggestion:?} is too short for this test"
    );
    let before = lsp.stats().await;
    lsp.change(
        URI,
        2,
        json!([{"range": {"start": {"line": 5, "character": 11}, "end": {"line": 5, "character": 11}}, "text": typed}]),
    )
    .await;
    let column = 11 + typed.encode_utf16().count() as u32;
    let second = lsp.inline(URI, 5, column).await;
    let after = lsp.stats().await;
    assert_eq!(
        second["result"]["items"][0]["insertText"].as_str().unwrap(),
        format!("    return {suggestion}")
    );
    assert_eq!(after["typedThroughHits"], json!(1));
    assert_eq!(after["jobsSubmitted"], before["jobsSubmitted"]);
}

#[tokio::test]
async fn a_second_request_after_a_one_character_edit_prefills_only_the_new_tokens() {
    let mut lsp = Lsp::start();
    lsp.initialize().await;
    let text = "def area(width, height):\n    retur";
    lsp.open(URI, text).await;
    lsp.inline(URI, 1, 9).await;
    let before = lsp.stats().await;
    // A character the suggestion did not start with: no typed-through hit.
    lsp.change(
        URI,
        2,
        json!([{"range": {"start": {"line": 1, "character": 9}, "end": {"line": 1, "character": 9}}, "text": "n"}]),
    )
    .await;
    lsp.inline(URI, 1, 10).await;
    let after = lsp.stats().await;
    let prefilled =
        after["tokensPrefilled"].as_u64().unwrap() - before["tokensPrefilled"].as_u64().unwrap();
    let reused = after["tokensReused"].as_u64().unwrap() - before["tokensReused"].as_u64().unwrap();
    assert_eq!(after["typedThroughHits"], json!(0));
    assert!(prefilled <= 2, "prefilled {prefilled} tokens");
    assert!(reused >= 20, "reused {reused} tokens");
}

#[tokio::test]
async fn malformed_json_gets_a_parse_error_and_the_server_keeps_serving() {
    let mut lsp = Lsp::start();
    lsp.initialize().await;
    lsp.send_raw(b"{\"jsonrpc\": \"2.0\", \"id\": 99, \"method\": ")
        .await;
    let response = lsp.next_response().await;
    assert_error(&response, -32700);
    assert_eq!(response["id"], Value::Null);
    // Valid JSON that is no JSON-RPC message: an invalid request.
    lsp.send_raw(b"[1, 2, 3]").await;
    assert_error(&lsp.next_response().await, -32600);
    lsp.send_raw(br#"{"id": 7, "params": {}}"#).await;
    let response = lsp.next_response().await;
    assert_error(&response, -32600);
    assert_eq!(response["id"], json!(7));
    // Invalid UTF-8, and headers without a Content-Length.
    lsp.send_raw(b"\xff\xfe{}").await;
    assert_error(&lsp.next_response().await, -32700);
    lsp.writer
        .write_all(b"Content-Type: text/plain\r\n\r\n")
        .await
        .unwrap();
    assert_error(&lsp.next_response().await, -32700);
    // A notification that cannot be read is dropped without a reply.
    lsp.send_raw(br#"{"jsonrpc": "2.0", "method": 5}"#).await;
    lsp.open(URI, SOURCE).await;
    let ok = lsp.inline(URI, 5, 11).await;
    assert!(ok["result"]["items"].is_array(), "{ok}");
}

#[tokio::test]
async fn unknown_methods_are_method_not_found_and_unknown_notifications_are_ignored() {
    let mut lsp = Lsp::start();
    lsp.initialize().await;
    assert_error(&lsp.call("codegen/doesNotExist", json!({})).await, -32601);
    let hover = json!({"textDocument": {"uri": URI}, "position": {"line": 0, "character": 0}});
    assert_error(&lsp.call("textDocument/hover", hover).await, -32601);
    lsp.notify("$/somethingNew", json!({"x": 1})).await;
    lsp.notify("codegen/unknownNotification", json!([])).await;
    let stats = lsp.stats().await;
    assert_eq!(stats["openDocuments"], json!(0));
}

#[tokio::test]
async fn params_of_the_wrong_shape_are_invalid_params() {
    let mut lsp = Lsp::start();
    lsp.initialize().await;
    for params in [
        json!({"textDocument": 5}),
        json!({"textDocument": {"uri": URI}, "position": {"line": -1, "character": 0}, "context": {"triggerKind": 1}}),
        json!({"textDocument": {"uri": URI}, "position": "start", "context": {"triggerKind": 1}}),
        json!([1, 2]),
        Value::Null,
    ] {
        let response = lsp
            .call("textDocument/inlineCompletion", params.clone())
            .await;
        assert_error(&response, -32602);
    }
    assert_error(
        &lsp.call("workspace/executeCommand", json!({"command": 7}))
            .await,
        -32602,
    );
    // Notifications of the wrong shape are dropped.
    lsp.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": URI}}),
    )
    .await;
    lsp.notify("textDocument/didChange", json!({"contentChanges": "all"}))
        .await;
    lsp.notify(
        "workspace/didChangeConfiguration",
        json!({"settings": {"codegen": {"maxTokens": "many", "n": 0}}}),
    )
    .await;
    let stats = lsp.stats().await;
    assert_eq!(stats["openDocuments"], json!(0));
    lsp.log_containing("maxTokens").await;
    lsp.log_containing("`n`").await;
}

#[tokio::test]
async fn positions_past_the_end_and_unknown_uris_are_invalid_params() {
    let mut lsp = Lsp::start();
    lsp.initialize().await;
    lsp.open(URI, SOURCE).await;
    assert_error(&lsp.inline(URI, 99, 0).await, -32602);
    assert_error(&lsp.inline(URI, 5, 40).await, -32602);
    assert_error(&lsp.inline(URI, 0, u32::MAX).await, -32602);
    let unknown = lsp.inline("file:///never/opened.py", 0, 0).await;
    assert_error(&unknown, -32602);
    assert!(unknown["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not open"));
    // An edit to an unknown document is ignored with a log message.
    lsp.change("file:///never/opened.py", 2, json!([{"text": "x"}]))
        .await;
    lsp.log_containing("not open").await;
    assert_eq!(lsp.document_text(URI).await, SOURCE);
    lsp.notify(
        "textDocument/didClose",
        json!({"textDocument": {"uri": "file:///never/opened.py"}}),
    )
    .await;
    assert!(lsp.inline(URI, 5, 11).await["result"]["items"].is_array());
}

#[tokio::test]
async fn edits_with_impossible_ranges_are_clamped() {
    let mut lsp = Lsp::start();
    lsp.initialize().await;
    lsp.open(URI, "a = 1\nb = 2\n").await;
    // Past the end of the text: clamped to the end.
    lsp.change(
        URI,
        2,
        json!([{"range": {"start": {"line": 50, "character": 3}, "end": {"line": 60, "character": 0}}, "text": "c = 3\n"}]),
    )
    .await;
    assert_eq!(lsp.document_text(URI).await, "a = 1\nb = 2\nc = 3\n");
    // Past the end of a line: clamped to the line's end.
    lsp.change(
        URI,
        3,
        json!([{"range": {"start": {"line": 0, "character": 99}, "end": {"line": 0, "character": 99}}, "text": "0"}]),
    )
    .await;
    assert_eq!(lsp.document_text(URI).await, "a = 10\nb = 2\nc = 3\n");
    // Reversed: put in order.
    lsp.change(
        URI,
        4,
        json!([{"range": {"start": {"line": 1, "character": 5}, "end": {"line": 1, "character": 4}}, "text": "7"}]),
    )
    .await;
    assert_eq!(lsp.document_text(URI).await, "a = 10\nb = 7\nc = 3\n");
    lsp.log_containing("clamped").await;
    lsp.log_containing("reordered").await;
    // Several changes in one notification apply in order.
    lsp.change(
        URI,
        5,
        json!([
            {"text": "x = \n"},
            {"range": {"start": {"line": 0, "character": 4}, "end": {"line": 0, "character": 4}}, "text": "41"},
            {"range": {"start": {"line": 0, "character": 5}, "end": {"line": 0, "character": 6}}, "text": "2"},
        ]),
    )
    .await;
    assert_eq!(lsp.document_text(URI).await, "x = 42\n");
    assert!(lsp.inline(URI, 0, 6).await["result"]["items"].is_array());
}

#[tokio::test]
async fn a_six_megabyte_document_is_served() {
    let mut lsp = Lsp::start();
    lsp.initialize().await;
    let line = "value_0123456789 = compute(alpha, beta, gamma, delta)  # padding\n";
    let n_lines = 6 * 1024 * 1024 / line.len() + 1;
    let mut text = line.repeat(n_lines);
    text.push_str("def last(x):\n    return ");
    assert!(text.len() > 6 * 1024 * 1024);
    lsp.open(URI, &text).await;
    let last_line = n_lines as u32 + 1;
    lsp.change(
        URI,
        2,
        json!([{"range": {"start": {"line": 3, "character": 0}, "end": {"line": 3, "character": 5}}, "text": "VALUE"}]),
    )
    .await;
    let response = lsp.inline(URI, last_line, 11).await;
    assert!(response["result"]["items"].is_array(), "{response}");
    let server_text = lsp.document_text(URI).await;
    assert_eq!(server_text.len(), text.len());
    assert!(server_text
        .lines()
        .nth(3)
        .unwrap()
        .starts_with("VALUE_0123"));
}

async fn check_emoji(encoding: &str, crab_units: u32) {
    let mut lsp = Lsp::start();
    let init = lsp.initialize_with(&[encoding, "utf-16"], json!({})).await;
    assert_eq!(
        init["result"]["capabilities"]["positionEncoding"],
        json!(encoding)
    );
    let text = "s = '🦀é'\nx = ";
    lsp.open(URI, text).await;
    // After the crab: 5 ASCII units, then the crab's code units.
    let after_crab = 5 + crab_units;
    lsp.change(
        URI,
        2,
        json!([{"range": {"start": {"line": 0, "character": after_crab}, "end": {"line": 0, "character": after_crab}}, "text": "🎉"}]),
    )
    .await;
    assert_eq!(lsp.document_text(URI).await, "s = '🦀🎉é'\nx = ");
    // Inside the crab (between its surrogates or bytes): invalid.
    assert_error(&lsp.inline(URI, 0, 6).await, -32602);
    // At the end of the line after the é (2 bytes in UTF-8, 1 unit in UTF-16).
    let e_units = if encoding == "utf-8" { 2 } else { 1 };
    let end = after_crab + crab_units + e_units + 1;
    assert!(lsp.inline(URI, 0, end).await["result"]["items"].is_array());
    assert_error(&lsp.inline(URI, 0, end + 1).await, -32602);
    let response = lsp.inline(URI, 1, 4).await;
    if let Some(item) = response["result"]["items"].get(0) {
        assert_eq!(item["range"]["end"], json!({"line": 1, "character": 4}));
    }
}

#[tokio::test]
async fn emoji_and_surrogate_pairs_in_utf16() {
    check_emoji("utf-16", 2).await;
}

#[tokio::test]
async fn emoji_and_surrogate_pairs_in_utf8() {
    check_emoji("utf-8", 4).await;
}

#[tokio::test]
async fn requests_before_initialize_are_refused_and_initialize_still_works() {
    let mut lsp = Lsp::start();
    assert_error(&lsp.inline(URI, 0, 0).await, -32002);
    lsp.open(URI, SOURCE).await; // dropped
    lsp.initialize().await;
    assert_eq!(lsp.stats().await["openDocuments"], json!(0));
    // A second initialize is an invalid request.
    assert_error(
        &lsp.call("initialize", json!({"capabilities": {}})).await,
        -32600,
    );
}

#[tokio::test]
async fn forty_requests_with_thirty_nine_cancelled_get_one_reply_each() {
    let mut lsp = Lsp::start();
    // Automatic requests wait out a debounce (at least 100 ms here), so each
    // cancel arrives while its request is still pending, however fast the
    // model is (an explicit request on the tiny model can finish first).
    lsp.initialize_with(&["utf-16"], json!({"maxTokens": 200, "debounceMs": 200}))
        .await;
    lsp.open(URI, SOURCE).await;
    let mut ids = Vec::new();
    for idx in 0..40 {
        let mut params = inline_params(URI, 5, 11);
        params["context"]["triggerKind"] = json!(2);
        let id = lsp.request("textDocument/inlineCompletion", params).await;
        ids.push(id);
        if idx < 39 {
            lsp.notify("$/cancelRequest", json!({"id": id})).await;
        }
    }
    let mut replies = std::collections::HashMap::new();
    while replies.len() < 40 {
        let response = lsp.next_response().await;
        let id = response["id"].as_i64().unwrap();
        assert!(
            replies.insert(id, response).is_none(),
            "two replies for {id}"
        );
    }
    let mut n_cancelled = 0;
    for id in &ids[..39] {
        let reply = &replies[id];
        if reply.get("error").is_some() {
            assert_error(reply, -32800);
            n_cancelled += 1;
        } else {
            assert!(reply["result"]["items"].is_array(), "{reply}");
        }
    }
    assert_eq!(n_cancelled, 39, "every cancelled request answers -32800");
    let last = &replies[&ids[39]];
    assert!(last["result"]["items"].is_array(), "{last}");
    let stats = lsp.stats().await;
    let settled =
        stats["jobsCompleted"].as_u64().unwrap() + stats["jobsCancelled"].as_u64().unwrap();
    assert_eq!(settled, stats["jobsSubmitted"].as_u64().unwrap(), "{stats}");
    assert_eq!(stats["jobsFailed"], json!(0));
    // And the server keeps serving.
    assert!(lsp.inline(URI, 5, 11).await["result"]["items"].is_array());
}

#[tokio::test]
async fn a_panic_in_a_handler_becomes_an_error_reply() {
    let mut lsp = Lsp::start();
    lsp.initialize().await;
    let response = lsp.call("codegen/debugPanic", Value::Null).await;
    assert_error(&response, -32603);
    assert!(response["error"]["message"]
        .as_str()
        .unwrap()
        .contains("debugPanic"));
    lsp.open(URI, SOURCE).await;
    assert!(lsp.inline(URI, 5, 11).await["result"]["items"].is_array());
    assert!(lsp.shutdown_and_exit().await.shutdown_requested);
}

#[tokio::test]
async fn configuration_changes_apply_and_disable_completions() {
    let mut lsp = Lsp::start();
    lsp.initialize().await;
    lsp.open(URI, SOURCE).await;
    lsp.notify(
        "workspace/didChangeConfiguration",
        json!({"settings": {"codegen": {"enabled": false}}}),
    )
    .await;
    let off = lsp.inline(URI, 5, 11).await;
    assert_eq!(off["result"]["items"], json!([]));
    lsp.notify(
        "workspace/didChangeConfiguration",
        json!({"settings": {"codegen": {"enabled": true, "languages": ["rust"]}}}),
    )
    .await;
    assert_eq!(lsp.inline(URI, 5, 11).await["result"]["items"], json!([]));
    lsp.notify(
        "workspace/didChangeConfiguration",
        json!({"settings": {"codegen": {"languages": ["python"]}}}),
    )
    .await;
    assert_ne!(lsp.inline(URI, 5, 11).await["result"]["items"], json!([]));
    // A new model reloads it (here: one that does not exist: an error
    // status, and the model it had keeps serving).
    lsp.notify(
        "workspace/didChangeConfiguration",
        json!({"settings": {"codegen": {"model": "/nonexistent/model.gguf"}}}),
    )
    .await;
    loop {
        let status = lsp.notification("codegen/status").await;
        if status["params"]["state"] == "error" {
            assert!(status["params"]["message"]
                .as_str()
                .unwrap()
                .contains("does not exist"));
            break;
        }
    }
    lsp.log_containing("does not exist").await;
    // The model it had keeps serving, and the status says so.
    let stats = lsp.stats().await;
    assert!(
        stats["status"]["message"]
            .as_str()
            .unwrap()
            .contains("still serving tiny"),
        "{stats}"
    );
    assert_ne!(lsp.inline(URI, 5, 11).await["result"]["items"], json!([]));
}

#[tokio::test]
async fn exit_without_shutdown_is_not_clean_and_requests_after_shutdown_are_refused() {
    let mut lsp = Lsp::start();
    lsp.initialize().await;
    let response = lsp.call("shutdown", Value::Null).await;
    assert_eq!(response["result"], Value::Null);
    assert_error(&lsp.inline(URI, 0, 0).await, -32600);
    lsp.notify("exit", Value::Null).await;
    assert!(lsp.finished().await.shutdown_requested);

    let mut lsp = Lsp::start();
    lsp.initialize().await;
    lsp.notify("exit", Value::Null).await;
    assert!(!lsp.finished().await.shutdown_requested);
}

#[tokio::test]
async fn an_idle_model_is_released_and_the_next_request_loads_it_again() {
    let mut lsp = Lsp::start();
    lsp.initialize_with(&["utf-16"], json!({"idleUnloadSecs": 2}))
        .await;
    lsp.open(URI, "def area(width, height):\n    retur").await;
    lsp.inline(URI, 1, 9).await;
    // No request for two seconds: the model is released and the status says so.
    let idle = loop {
        let status = lsp.notification("codegen/status").await;
        match status["params"]["state"].as_str() {
            // Status updates after the request (its latency).
            Some("ready") => continue,
            _ => break status,
        }
    };
    assert_eq!(idle["params"]["state"], "idle", "{idle}");
    assert!(
        idle["params"]["message"]
            .as_str()
            .unwrap()
            .contains("next request loads it again"),
        "{idle}"
    );
    let stats = lsp.stats().await;
    assert_eq!(stats["modelLoaded"], json!(false), "{stats}");
    assert!(stats["rssMib"].as_f64().unwrap() > 0.0);
    // The next request the cache cannot answer gets nothing and starts the
    // load; then the model serves again.
    lsp.change(
        URI,
        2,
        json!([{"range": {"start": {"line": 1, "character": 9}, "end": {"line": 1, "character": 9}}, "text": "n"}]),
    )
    .await;
    let reply = lsp.inline(URI, 1, 10).await;
    assert_eq!(reply["result"]["items"], json!([]), "{reply}");
    loop {
        let status = lsp.notification("codegen/status").await;
        match status["params"]["state"].as_str() {
            Some("loading") => continue,
            Some("ready") => break,
            _ => panic!("unexpected status {status}"),
        }
    }
    assert_eq!(lsp.stats().await["modelLoaded"], json!(true));
    let served = lsp.stats().await["jobsCompleted"].as_u64().unwrap();
    lsp.change(
        URI,
        3,
        json!([{"range": {"start": {"line": 1, "character": 10}, "end": {"line": 1, "character": 10}}, "text": " "}]),
    )
    .await;
    lsp.inline(URI, 1, 11).await;
    assert_eq!(
        lsp.stats().await["jobsCompleted"].as_u64().unwrap(),
        served + 1
    );
}

/// 200 requests with a model change in the middle: every one is answered,
/// none is an error, each item names the model that wrote it, the old model
/// serves while the new one loads, and the new one serves afterwards.
#[tokio::test]
async fn two_hundred_requests_across_a_model_swap_are_all_answered() {
    let mut lsp = Lsp::start();
    lsp.initialize().await;
    let other = lsp.dir.path().join("tiny-b.gguf");
    write_tiny_gguf(
        &other,
        &TinyConfig {
            seed: 99,
            ..TinyConfig::default()
        },
    )
    .unwrap();
    lsp.open(URI, SOURCE).await;
    let mut ids = Vec::new();
    for idx in 0..200 {
        if idx == 100 {
            lsp.notify(
                "workspace/didChangeConfiguration",
                json!({"settings": {"codegen": {"model": other.to_str().unwrap()}}}),
            )
            .await;
        }
        let mut params = inline_params(URI, 5, 11);
        params["context"]["triggerKind"] = json!(1);
        ids.push(lsp.request("textDocument/inlineCompletion", params).await);
    }
    let mut models = std::collections::BTreeMap::<String, usize>::new();
    let mut answered = 0;
    while answered < 200 {
        let reply = lsp.next_response().await;
        assert!(reply.get("error").is_none(), "{reply}");
        let items = reply["result"]["items"].as_array().expect("items");
        for item in items {
            let model = item["command"]["arguments"][0]["model"]
                .as_str()
                .expect("each item names its model");
            *models.entry(model.to_string()).or_default() += 1;
        }
        answered += 1;
    }
    assert!(
        models.keys().all(|m| m == "tiny" || m == "tiny-b"),
        "{models:?}"
    );
    assert!(models.get("tiny").copied().unwrap_or(0) > 0, "{models:?}");
    let stats = lsp.stats().await;
    assert_eq!(stats["jobsFailed"], json!(0), "{stats}");
    // The new model is active once it has loaded, and serves.
    loop {
        let status = lsp.notification("codegen/status").await;
        if status["params"]["state"] == "ready" && status["params"]["model"] == "tiny-b" {
            break;
        }
        assert_ne!(status["params"]["state"], "error", "{status}");
    }
    lsp.change(
        URI,
        2,
        json!([{"range": {"start": {"line": 5, "character": 11}, "end": {"line": 5, "character": 11}}, "text": " "}]),
    )
    .await;
    let reply = lsp.inline(URI, 5, 12).await;
    for item in reply["result"]["items"].as_array().unwrap() {
        assert_eq!(
            item["command"]["arguments"][0]["model"], "tiny-b",
            "{reply}"
        );
    }
    assert_eq!(lsp.stats().await["model"], "tiny-b");
}

/// A model the host's gate refuses never serves: the status is an error
/// that says why, and the model that was serving keeps serving.
#[tokio::test]
async fn a_model_refused_by_the_gate_never_serves_and_the_previous_one_keeps_serving() {
    let mut lsp = Lsp::start_with(|options, _| {
        options.gate = Some(std::sync::Arc::new(|model, _busy| {
            if model.name == "tiny-b" {
                Err("model tiny-b failed validation (suite/python-sum: syntax errors)".into())
            } else {
                Ok(())
            }
        }));
    });
    lsp.initialize().await;
    let other = lsp.dir.path().join("tiny-b.gguf");
    write_tiny_gguf(
        &other,
        &TinyConfig {
            seed: 5,
            ..TinyConfig::default()
        },
    )
    .unwrap();
    lsp.open(URI, SOURCE).await;
    lsp.notify(
        "workspace/didChangeConfiguration",
        json!({"settings": {"codegen": {"model": other.to_str().unwrap()}}}),
    )
    .await;
    loop {
        let status = lsp.notification("codegen/status").await;
        match status["params"]["state"].as_str() {
            Some("error") => {
                assert!(
                    status["params"]["message"]
                        .as_str()
                        .unwrap()
                        .contains("failed validation"),
                    "{status}"
                );
                break;
            }
            Some("ready") | Some("loading") => continue,
            _ => panic!("unexpected {status}"),
        }
    }
    assert_eq!(lsp.stats().await["model"], "tiny");
    let reply = lsp.inline(URI, 5, 11).await;
    let items = reply["result"]["items"].as_array().unwrap();
    assert!(!items.is_empty(), "{reply}");
    for item in items {
        assert_eq!(item["command"]["arguments"][0]["model"], "tiny", "{reply}");
    }
}

#[tokio::test]
async fn select_model_switches_without_a_restart_and_refuses_bad_params() {
    let mut lsp = Lsp::start();
    lsp.initialize().await;
    let other = lsp.dir.path().join("tiny-b.gguf");
    write_tiny_gguf(
        &other,
        &TinyConfig {
            seed: 11,
            ..TinyConfig::default()
        },
    )
    .unwrap();
    let bad = lsp.call("codegen/selectModel", json!({"model": 3})).await;
    assert_error(&bad, -32602);
    let bad = lsp.call("codegen/selectModel", json!([1])).await;
    assert_error(&bad, -32602);
    let reply = lsp
        .call(
            "codegen/selectModel",
            json!({"model": other.to_str().unwrap()}),
        )
        .await;
    assert_eq!(reply["result"]["state"], "loading", "{reply}");
    loop {
        let status = lsp.notification("codegen/status").await;
        if status["params"]["state"] == "ready" && status["params"]["model"] == "tiny-b" {
            break;
        }
        assert_ne!(status["params"]["state"], "error", "{status}");
    }
    assert_eq!(lsp.stats().await["model"], "tiny-b");
}

// ------------------------------------------------ model operations

fn write_seeded(path: &std::path::Path, seed: u64) {
    write_tiny_gguf(
        path,
        &TinyConfig {
            seed,
            ..TinyConfig::default()
        },
    )
    .unwrap();
}

impl Lsp {
    /// The `codegen/status` whose candidate is in `state` (panics on another
    /// final state).
    async fn candidate_status(&mut self, wanted: &str) -> Value {
        let start = std::time::Instant::now();
        loop {
            let status = self.stats().await["status"].clone();
            let state = status["candidate"]["state"]
                .as_str()
                .unwrap_or("")
                .to_string();
            if state == wanted {
                return json!({"params": status});
            }
            assert!(
                state != "error" && state != "ready",
                "candidate is {state}, wanted {wanted}: {status}"
            );
            assert!(
                start.elapsed() < PATIENCE,
                "candidate never {wanted}: {status}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the telemetry log holds an event of `kind`.
    async fn telemetry_event(&self, kind: &str) -> Vec<Value> {
        let start = std::time::Instant::now();
        loop {
            let events: Vec<Value> = self
                .telemetry()
                .into_iter()
                .filter(|e| e["event"] == kind)
                .collect();
            if !events.is_empty() {
                return events;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "no {kind} event in the telemetry"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test]
async fn a_shadow_candidate_runs_in_the_background_and_a_rollout_serves_its_share() {
    let mut lsp = Lsp::start();
    let candidate = lsp.dir.path().join("tiny-c.gguf");
    write_seeded(&candidate, 21);
    lsp.initialize_with(
        &["utf-16"],
        json!({"shadowModel": candidate.to_str().unwrap(), "shadowPercent": 100}),
    )
    .await;
    let status = lsp.candidate_status("ready").await;
    assert_eq!(status["params"]["candidate"]["model"], "tiny-c", "{status}");
    assert_eq!(status["params"]["candidate"]["shadowPercent"], 100);
    let mut shown_ids = Vec::new();
    for i in 0..4 {
        let uri = format!("file:///work/s{i}.py");
        lsp.open(&uri, SOURCE).await;
        let reply = lsp.inline(&uri, 5, 11).await;
        let items = reply["result"]["items"].as_array().unwrap().clone();
        assert!(!items.is_empty(), "{reply}");
        for item in &items {
            // The primary answers; the candidate is never shown.
            assert_eq!(item["command"]["arguments"][0]["model"], "tiny", "{reply}");
        }
        shown_ids.push(items[0]["command"]["arguments"][0]["id"].clone());
    }
    let shadows = lsp.telemetry_event("shadow").await;
    for shadow in &shadows {
        assert_eq!(shadow["model"], "tiny-c", "{shadow}");
        assert_eq!(shadow["shadow"]["primary"], "tiny", "{shadow}");
        assert!(shadow["shadow"]["latency_ms"].as_f64().unwrap() > 0.0);
        // Syntax is checked whatever the ranking policy.
        assert!(shadow["shadow"]["syntax_ok"].is_boolean(), "{shadow}");
        assert!(shadow["prompt_tokens"].as_u64().unwrap() > 0);
        assert!(shown_ids.contains(&shadow["id"]), "{shadow} {shown_ids:?}");
    }
    // The primary's shown events carry what drift is measured on.
    let shown = lsp.telemetry_event("shown").await;
    assert!(shown
        .iter()
        .all(|e| e["context"].is_string() && e["prompt_tokens"].is_u64()));

    // Every document to the candidate.
    lsp.notify(
        "workspace/didChangeConfiguration",
        json!({"settings": {"codegen": {"rolloutPercent": 100}}}),
    )
    .await;
    let uri = "file:///work/rollout.py";
    lsp.open(uri, SOURCE).await;
    let reply = lsp.inline(uri, 5, 11).await;
    let items = reply["result"]["items"].as_array().unwrap();
    assert!(!items.is_empty(), "{reply}");
    for item in items {
        assert_eq!(
            item["command"]["arguments"][0]["model"], "tiny-c",
            "{reply}"
        );
    }
    let telemetry = lsp.telemetry();
    let served: Vec<&Value> = telemetry
        .iter()
        .filter(|e| e["event"] == "shown" && e["model"] == "tiny-c")
        .collect();
    assert_eq!(served.len(), 1, "{telemetry:?}");

    // Stats by model, from this run's log.
    let events: Vec<codegen_lsp::telemetry::TelemetryEvent> = telemetry
        .iter()
        .map(|e| serde_json::from_value(e.clone()).unwrap())
        .collect();
    let models = codegen_lsp::monitor::by_model(&events, None);
    let primary = models.iter().find(|m| m.model == "tiny").unwrap();
    let cand = models.iter().find(|m| m.model == "tiny-c").unwrap();
    assert_eq!(primary.shown, 4);
    assert_eq!(cand.shown, 1);
    assert_eq!(
        cand.shadow.as_ref().unwrap().runs,
        shadows
            .len()
            .max(telemetry.iter().filter(|e| e["event"] == "shadow").count())
    );
}

#[tokio::test]
async fn a_candidate_or_model_that_does_not_load_leaves_the_primary_serving() {
    let mut lsp = Lsp::start();
    lsp.initialize_with(
        &["utf-16"],
        json!({"shadowModel": "/nonexistent/candidate.gguf"}),
    )
    .await;
    let status = lsp.candidate_status("error").await;
    assert!(
        status["params"]["candidate"]["message"]
            .as_str()
            .unwrap()
            .contains("does not exist"),
        "{status}"
    );
    assert_eq!(status["params"]["state"], "ready", "{status}");
    // A corrupt candidate, and then a primary that does not exist.
    let corrupt = lsp.dir.path().join("corrupt.gguf");
    std::fs::write(&corrupt, b"GGUF\x03\x00\x00\x00 not really a model").unwrap();
    lsp.notify(
        "workspace/didChangeConfiguration",
        json!({"settings": {"codegen": {"shadowModel": corrupt.to_str().unwrap()}}}),
    )
    .await;
    let status = lsp.candidate_status("error").await;
    assert!(
        status["params"]["candidate"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot load model"),
        "{status}"
    );
    lsp.notify(
        "workspace/didChangeConfiguration",
        json!({"settings": {"codegen": {"model": "/nonexistent/model.gguf"}}}),
    )
    .await;
    loop {
        let status = lsp.notification("codegen/status").await;
        if status["params"]["state"] == "error" {
            let message = status["params"]["message"].as_str().unwrap();
            assert!(message.contains("still serving tiny"), "{status}");
            break;
        }
    }
    lsp.open(URI, SOURCE).await;
    let reply = lsp.inline(URI, 5, 11).await;
    let items = reply["result"]["items"].as_array().unwrap();
    assert!(!items.is_empty(), "{reply}");
    assert_eq!(items[0]["command"]["arguments"][0]["model"], "tiny");
}

#[tokio::test]
async fn a_replaced_model_file_loads_again_and_a_truncated_one_does_not_serve() {
    let mut lsp = Lsp::start_with(|options, _| {
        options.watch_interval = Duration::from_millis(50);
    });
    lsp.initialize().await;
    lsp.open(URI, SOURCE).await;
    let before = lsp.inline(URI, 5, 11).await;
    assert!(!before["result"]["items"].as_array().unwrap().is_empty());
    // A new version of the file, put in place atomically (as the store does).
    let staged = lsp.dir.path().join("staged.gguf");
    write_seeded(&staged, 33);
    std::fs::rename(&staged, &lsp.model_path).unwrap();
    lsp.log_containing("changed on disk").await;
    loop {
        let status = lsp.notification("codegen/status").await;
        match status["params"]["state"].as_str() {
            Some("ready") => break,
            Some("loading") => continue,
            _ => panic!("the new file did not load: {status}"),
        }
    }
    // A truncated file in its place: it does not load, the last one serves.
    let bytes = std::fs::read(&lsp.model_path).unwrap();
    std::fs::write(&staged, &bytes[..bytes.len() / 3]).unwrap();
    std::fs::rename(&staged, &lsp.model_path).unwrap();
    lsp.log_containing("changed on disk").await;
    loop {
        let status = lsp.notification("codegen/status").await;
        match status["params"]["state"].as_str() {
            Some("error") => {
                let message = status["params"]["message"].as_str().unwrap();
                assert!(message.contains("still serving tiny"), "{status}");
                break;
            }
            Some("loading") => continue,
            _ => panic!("a truncated file served: {status}"),
        }
    }
    let uri = "file:///work/after.py";
    lsp.open(uri, SOURCE).await;
    let reply = lsp.inline(uri, 5, 11).await;
    let items = reply["result"]["items"].as_array().unwrap();
    assert!(!items.is_empty(), "{reply}");
    assert_eq!(items[0]["command"]["arguments"][0]["model"], "tiny");
}

#[tokio::test]
async fn input_drift_raises_one_warning_per_kind_a_day() {
    let mut lsp = Lsp::start_with(|options, _| {
        options.drift_check_interval = Some(Duration::ZERO);
    });
    // A week of Python, then a day of Go.
    let day = 86_400_000u64;
    let now = codegen_lsp::telemetry::now_ms();
    let mut log = String::new();
    for d in 0..8u64 {
        for i in 0..40u64 {
            let language = if d == 0 { "go" } else { "python" };
            let event = json!({
                "ts_ms": now - d * day - 60_000 - i * 60_000, "event": "shown",
                "id": format!("old{d}-{i}"), "model": "tiny", "language": language,
                "latency_ms": 100.0, "length": 5, "prompt_tokens": 300,
                "context": "fim/single_line",
            });
            log.push_str(&format!("{event}\n"));
        }
    }
    log.push_str("{\"ts_ms\": 1, \"event\": \"shown\", \"trunc\n");
    std::fs::write(lsp.dir.path().join("telemetry.jsonl"), log).unwrap();
    lsp.initialize().await;
    lsp.open(URI, SOURCE).await;
    lsp.inline(URI, 5, 11).await;
    let warning = lsp.notification("window/showMessage").await;
    let message = warning["params"]["message"].as_str().unwrap();
    assert!(message.contains("input drift (language-mix)"), "{warning}");
    assert_eq!(warning["params"]["type"], 2, "a warning: {warning}");
    lsp.log_containing("drift check").await;
    // The next check finds the same drift and stays quiet.
    let uri = "file:///work/second.py";
    lsp.open(uri, SOURCE).await;
    lsp.inline(uri, 5, 11).await;
    let summary = lsp.log_containing("drift check").await;
    assert!(summary.contains("already raised"), "{summary}");
    assert!(
        !lsp.notifications
            .iter()
            .any(|n| n["method"] == "window/showMessage"),
        "{:?}",
        lsp.notifications
    );
    let warned = std::fs::read_to_string(lsp.dir.path().join("drift-warnings.json")).unwrap();
    assert!(warned.contains("language-mix"), "{warned}");
    // The broken line stayed broken and no line was lost: every old line
    // and the new ones read back.
    let (events, bad) =
        codegen_lsp::telemetry::read_events(&lsp.dir.path().join("telemetry.jsonl")).unwrap();
    assert_eq!(bad, 1);
    assert!(events.len() >= 320 + 2, "{}", events.len());
}

/// A request answered from the suggestion still on screen also brings a
/// released model back (the user is typing again).
#[tokio::test]
async fn a_request_answered_from_the_screen_after_idle_still_loads_the_model() {
    let mut lsp = Lsp::start();
    lsp.initialize_with(&["utf-16"], json!({"idleUnloadSecs": 1}))
        .await;
    lsp.open(URI, SOURCE).await;
    let first = lsp.inline(URI, 5, 11).await;
    let items = first["result"]["items"].as_array().unwrap().clone();
    assert!(!items.is_empty(), "{first}");
    loop {
        let status = lsp.notification("codegen/status").await;
        if status["params"]["state"] == "idle" {
            break;
        }
    }
    assert_eq!(lsp.stats().await["modelLoaded"], json!(false));
    // Same text, same cursor: the typed-through cache answers at once with
    // the suggestion on screen (the best one).
    let again = lsp.inline(URI, 5, 11).await;
    assert_eq!(again["result"]["items"], json!([items[0]]), "{again}");
    loop {
        let status = lsp.notification("codegen/status").await;
        match status["params"]["state"].as_str() {
            Some("loading") | Some("idle") => continue,
            Some("ready") => break,
            _ => panic!("unexpected status {status}"),
        }
    }
    assert_eq!(lsp.stats().await["modelLoaded"], json!(true));
}
