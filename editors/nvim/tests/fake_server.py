#!/usr/bin/env python3
"""A fake `codegen lsp` for the plugin's tests: the server contract, canned suggestions.

Speaks LSP over stdio. Every message it receives is appended to $FAKE_LSP_LOG (JSON lines),
so a test can check what the plugin sent (didChangeConfiguration, executeCommand, ...).

Suggestions: the candidates in CANDIDATES that start with what is typed on the cursor line
(after the indentation); each item's range starts at the first non-blank of the line. Like the
real server, an automatic request (triggerKind 2) gets at most `nAutomatic` of them (default 1,
at most `n`), an explicit one (triggerKind 1: the user asked, or cycles) at most `n` (default 4).
"""
import json
import os
import sys
import threading
import time

CANDIDATES = [
    "total = 0\n    for x in xs:\n        total += x\n    return total",
    "return sum(xs)",
    "return functools.reduce(operator.add, xs, 0)",
]

LOG = os.environ.get("FAKE_LSP_LOG")
# With FAKE_LSP_LOADING_MS, the "model" loads that long after `initialized`; until then
# inline completion answers with no items, like a server that is still loading.
LOADING_MS = int(os.environ.get("FAKE_LSP_LOADING_MS") or 0)
# With FAKE_LSP_DOWNLOAD_MS, the "model" is fetched first: `$/progress` reports with a
# percentage and "412.3 / 469.0 MiB" messages (the 87% one held that long), as the real
# server sends while it downloads the model.
DOWNLOAD_MS = int(os.environ.get("FAKE_LSP_DOWNLOAD_MS") or 0)
docs = {}
settings = {}
next_id = 0
ready = threading.Event()
write_lock = threading.Lock()


def log(entry):
    if LOG:
        with open(LOG, "a") as f:
            f.write(json.dumps(entry) + "\n")


def send(msg):
    msg["jsonrpc"] = "2.0"
    body = json.dumps(msg).encode()
    with write_lock:
        sys.stdout.buffer.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        sys.stdout.buffer.flush()


def read():
    length = None
    while True:
        line = sys.stdin.buffer.readline()
        if not line:
            return None
        line = line.strip()
        if not line:
            break
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    return json.loads(sys.stdin.buffer.read(length))


def utf16_to_index(line, character):
    units = 0
    for i, ch in enumerate(line):
        if units >= character:
            return i
        units += 2 if ord(ch) > 0xFFFF else 1
    return len(line)


def utf16_len(s):
    return sum(2 if ord(ch) > 0xFFFF else 1 for ch in s)


def inline_completion(params):
    global next_id
    if not ready.is_set():
        return {"items": []}
    text = docs.get(params["textDocument"]["uri"], "")
    pos = params["position"]
    lines = text.split("\n")
    line = lines[pos["line"]] if pos["line"] < len(lines) else ""
    before = line[: utf16_to_index(line, pos["character"])]
    indent = len(before) - len(before.lstrip())
    typed = before[indent:]
    if os.environ.get("FAKE_LSP_ONLY_AT_INDENT") and typed:
        return {"items": []}
    items = []
    for cand in CANDIDATES:
        if not cand.startswith(typed):
            continue
        next_id += 1
        item_id = "fake-%d" % next_id
        start = {"line": pos["line"], "character": utf16_len(before[:indent])}
        items.append({
            "insertText": cand,
            "range": {"start": start, "end": dict(pos)},
            "command": {
                "title": "accepted",
                "command": "codegen.accepted",
                "arguments": [{"id": item_id, "kind": "full"}],
            },
        })
    n = settings.get("n", 4)
    explicit = params.get("context", {}).get("triggerKind") == 1
    return {"items": items[: n if explicit else min(settings.get("nAutomatic", 1), n)]}


def main():
    log({"pid": os.getpid()})
    while True:
        msg = read()
        if msg is None:
            return
        log(msg)
        method = msg.get("method")
        mid = msg.get("id")
        if method == "initialize":
            settings.update(msg["params"].get("initializationOptions") or {})
            send({"id": mid, "result": {
                "capabilities": {
                    "positionEncoding": "utf-16",
                    "textDocumentSync": {"openClose": True, "change": 1},
                    "inlineCompletionProvider": True,
                    "completionProvider": {},
                    "executeCommandProvider": {"commands": ["codegen.accepted"]},
                },
                "serverInfo": {"name": "codegen", "version": "0.0.0-fake"},
            }})
        elif method == "initialized":
            send({"method": "codegen/status", "params": {"state": "loading", "model": "fake-model"}})
            send({"id": "progress-1", "method": "window/workDoneProgress/create", "params": {"token": "load"}})
            send({"method": "$/progress", "params": {"token": "load", "value": {"kind": "begin", "title": "codegen: loading fake-model"}}})

            def report(percentage, message):
                send({"method": "$/progress", "params": {"token": "load", "value": {
                    "kind": "report", "percentage": percentage, "message": message}}})

            def finish_loading():
                if DOWNLOAD_MS:
                    report(10, "46.9 / 469.0 MiB")
                    time.sleep(0.1)
                    report(87, "412.3 / 469.0 MiB")
                    time.sleep(DOWNLOAD_MS / 1000)
                    report(100, "469.0 / 469.0 MiB")
                time.sleep(LOADING_MS / 1000)
                send({"method": "$/progress", "params": {"token": "load", "value": {"kind": "end"}}})
                ready.set()
                send({"method": "codegen/status", "params": {"state": "ready", "model": "fake-model", "lastLatencyMs": 7}})

            threading.Thread(target=finish_loading, daemon=True).start()
        elif method == "workspace/didChangeConfiguration":
            settings.update(((msg["params"].get("settings") or {}).get("codegen")) or {})
        elif method == "textDocument/didOpen":
            docs[msg["params"]["textDocument"]["uri"]] = msg["params"]["textDocument"]["text"]
        elif method == "textDocument/didChange":
            for change in msg["params"]["contentChanges"]:
                docs[msg["params"]["textDocument"]["uri"]] = change["text"]
        elif method == "textDocument/inlineCompletion":
            send({"id": mid, "result": inline_completion(msg["params"])})
        elif method == "textDocument/completion":
            send({"id": mid, "result": []})
        elif method == "workspace/executeCommand":
            send({"id": mid, "result": None})
        elif method == "shutdown":
            send({"id": mid, "result": None})
        elif method == "exit":
            return
        elif mid is not None and method is not None:
            send({"id": mid, "error": {"code": -32601, "message": "unknown method " + method}})


if __name__ == "__main__":
    main()
