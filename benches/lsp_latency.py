#!/usr/bin/env python3
"""Latency benchmark of `codegen lsp`: replays a typing session over a real
file and reports latency percentiles per request kind.

The document is the start of the standard library's textwrap.py, cut to
about 1,500 tokens (~6,000 characters). The body of the last function in it
is deleted and then retyped keystroke by keystroke: each keystroke sends an
incremental `textDocument/didChange` and an automatic
`textDocument/inlineCompletion`, and waits for the reply (a user pausing
after every key; the server's debounce is set to 0 so the figures are the
server's own latency). Each reply is classified with the engine's counters
(`codegen/engineStats`):

  first          the first suggestion in the file (cold: the whole prompt)
  typed_through  answered from the suggestion on screen (no model work);
                 every tenth key the replay types up to three characters
                 along the ghost text, as a user does, then deletes them
  warm_single    model run, warm session, single-line (mid-line) cursor
  warm_multi     model run, warm session, cursor on an empty/indented line

Usage:
  python3 benches/lsp_latency.py [--codegen target/release/codegen]
      [--model NAME|PATH] [--keystrokes 300] [--cold 3] [--json]

It uses the default model through the store (cached after the first fetch).
This is a benchmark, not a test: it asserts nothing about time.
"""

import argparse
import inspect
import json
import os
import queue
import subprocess
import sys
import textwrap
import threading
import time


def percentile(values, p):
    if not values:
        return None
    values = sorted(values)
    rank = max(1, min(len(values), -(-p * len(values) // 100)))
    return values[int(rank) - 1]


class Server:
    def __init__(self, cmd, env):
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
        )
        self.messages = queue.Queue()
        self.next_id = 1
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        out = self.proc.stdout
        while True:
            length = None
            while True:
                line = out.readline()
                if not line:
                    self.messages.put(None)
                    return
                line = line.strip()
                if not line:
                    break
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            self.messages.put(json.loads(out.read(length)))

    def send(self, message):
        body = json.dumps(message).encode()
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def notify(self, method, params):
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def recv(self, timeout=1800):
        message = self.messages.get(timeout=timeout)
        if message is None:
            raise SystemExit("codegen lsp exited")
        if "method" in message and "id" in message:
            self.send({"jsonrpc": "2.0", "id": message["id"], "result": None})
        return message

    def call(self, method, params):
        request_id = self.next_id
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        while True:
            message = self.recv()
            if message.get("id") == request_id and "method" not in message:
                if "error" in message:
                    raise SystemExit(f"{method} failed: {message['error']}")
                return message["result"]


def make_document(target_chars):
    source = open(inspect.getsourcefile(textwrap)).read()
    lines = source.splitlines(keepends=True)
    # About target_chars before the retyped body, and some code after it
    # (so prompts are fill-in-the-middle, as in an editor).
    doc_lines, size, last_before = [], 0, 0
    for line in lines:
        if size >= target_chars + 1500 and line.strip() == "":
            break
        doc_lines.append(line)
        size += len(line)
        if size <= target_chars:
            last_before = len(doc_lines)
    # The last function starting before target_chars with a body of a few
    # lines: delete its body.
    for idx in range(last_before - 1, -1, -1):
        stripped = doc_lines[idx].lstrip()
        if stripped.startswith("def ") and doc_lines[idx].rstrip().endswith(":"):
            body_start = idx + 1
            # Skip a docstring.
            if doc_lines[body_start].strip().startswith(('"""', "'''")):
                quote = doc_lines[body_start].strip()[:3]
                if doc_lines[body_start].strip().count(quote) < 2:
                    body_start += 1
                    while quote not in doc_lines[body_start]:
                        body_start += 1
                body_start += 1
            body_end = body_start
            while body_end < len(doc_lines) and (
                doc_lines[body_end].startswith(" " * 8) or doc_lines[body_end].strip() == ""
            ):
                body_end += 1
            if body_end - body_start >= 3:
                body = "".join(doc_lines[body_start:body_end])
                prefix = "".join(doc_lines[:body_start])
                suffix = "".join(doc_lines[body_end:])
                return prefix, body, suffix
    raise SystemExit("no function to retype in the document")


def suggestion_of(result, line_prefix):
    items = (result or {}).get("items") or []
    if not items:
        return ""
    insert = items[0]["insertText"]
    return insert[len(line_prefix):] if insert.startswith(line_prefix) else ""


def position_of(text, offset):
    line = text.count("\n", 0, offset)
    start = text.rfind("\n", 0, offset) + 1
    return {"line": line, "character": len(text[start:offset].encode("utf-16-le")) // 2}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser.add_argument("--codegen", default=os.path.join(root, "target/release/codegen"))
    parser.add_argument("--model", default=None)
    parser.add_argument("--draft", default=None,
                        help="draft model for speculative decoding, or none (default: the model's manifest)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--keystrokes", type=int, default=300)
    parser.add_argument("--cold", type=int, default=1, help="first suggestions in fresh documents")
    parser.add_argument("--chars", type=int, default=6000, help="document size before the typed body")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--n", type=int, default=None,
                        help="candidates per request, automatic triggers included (sets n and nAutomatic; "
                             "server defaults when unset)")
    parser.add_argument("--rank", default=None, help="auto, logprob or none (server default when unset)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    cmd = [args.codegen, "lsp", "--no-telemetry"]
    if args.model:
        cmd += ["--model", args.model]
    if args.draft:
        cmd += ["--draft", args.draft]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    server = Server(cmd, dict(os.environ))
    server.call("initialize", {
        "capabilities": {"general": {"positionEncodings": ["utf-16"]}},
        "initializationOptions": dict(
            {"debounceMs": 0, "maxTokens": args.max_tokens},
            **({"n": args.n, "nAutomatic": args.n} if args.n else {}),
            **({"rank": args.rank} if args.rank else {}),
        ),
    })
    server.notify("initialized", {})
    load_start = time.monotonic()
    while True:
        message = server.recv()
        if message.get("method") == "codegen/status":
            state = message["params"]["state"]
            if state == "ready":
                break
            if state == "error":
                raise SystemExit(f"model failed: {message['params'].get('message')}")
    load_secs = time.monotonic() - load_start

    prefix, body, suffix = make_document(args.chars)
    latencies = {"first": [], "typed_through": [], "warm_single": [], "warm_multi": []}
    counters = server.call("codegen/engineStats", None)

    def request(uri, text, offset):
        nonlocal counters
        start = time.monotonic()
        result = server.call("textDocument/inlineCompletion", {
            "textDocument": {"uri": uri},
            "position": position_of(text, offset),
            "context": {"triggerKind": 2},
        })
        elapsed_ms = (time.monotonic() - start) * 1000
        after = server.call("codegen/engineStats", None)
        hit = after["typedThroughHits"] > counters["typedThroughHits"]
        prefilled = after["tokensPrefilled"] - counters["tokensPrefilled"]
        counters = after
        return elapsed_ms, hit, prefilled, result

    # Cold first suggestions: fresh documents (no cached session).
    first_prefill = []
    for idx in range(args.cold):
        uri = f"file:///bench/cold{idx}/textwrap.py"
        text = prefix + suffix
        server.notify("textDocument/didOpen", {"textDocument": {
            "uri": uri, "languageId": "python", "version": 1, "text": text}})
        ms, _, prefilled, _ = request(uri, text, len(prefix))
        latencies["first"].append(ms)
        first_prefill.append(prefilled)
        server.notify("textDocument/didClose", {"textDocument": {"uri": uri}})

    # The typing session.
    uri = "file:///bench/session/textwrap.py"
    text = prefix + suffix
    version = 1
    server.notify("textDocument/didOpen", {"textDocument": {
        "uri": uri, "languageId": "python", "version": version, "text": text}})
    request(uri, text, len(prefix))  # warms the session (not counted)
    cursor = len(prefix)
    typed = 0
    warm_prefill = []

    def record(ms, hit, prefilled, text, cursor):
        line_prefix = text[text.rfind("\n", 0, cursor) + 1:cursor]
        if hit:
            latencies["typed_through"].append(ms)
        elif line_prefix.strip() and not line_prefix.rstrip().endswith(":"):
            latencies["warm_single"].append(ms)
            warm_prefill.append(prefilled)
        else:
            latencies["warm_multi"].append(ms)
            warm_prefill.append(prefilled)
    i = 0
    while typed < args.keystrokes:
        if i >= len(body):
            i = 0  # retype from the start of the body, after the typed text
        ch = body[i]
        if ch == "\n":
            # Enter plus the editor's auto-indent, one change.
            j = i + 1
            while j < len(body) and body[j] == " ":
                j += 1
            insert = body[i:j]
            i = j
        else:
            insert = ch
            i += 1
        version += 1
        pos = position_of(text, cursor)
        server.notify("textDocument/didChange", {
            "textDocument": {"uri": uri, "version": version},
            "contentChanges": [{"range": {"start": pos, "end": pos}, "text": insert}],
        })
        text = text[:cursor] + insert + text[cursor:]
        cursor += len(insert)
        typed += 1
        ms, hit, prefilled, result = request(uri, text, cursor)
        record(ms, hit, prefilled, text, cursor)

        # Every tenth key the user types along the ghost text for up to
        # three characters (typed-through requests), then deletes them.
        line_prefix = text[text.rfind("\n", 0, cursor) + 1:cursor]
        along = suggestion_of(result, line_prefix).split("\n")[0][:3]
        if typed % 10 == 0 and along:
            start = cursor
            for ch in along:
                version += 1
                pos = position_of(text, cursor)
                server.notify("textDocument/didChange", {
                    "textDocument": {"uri": uri, "version": version},
                    "contentChanges": [{"range": {"start": pos, "end": pos}, "text": ch}],
                })
                text = text[:cursor] + ch + text[cursor:]
                cursor += 1
                typed += 1
                ms, hit, prefilled, _ = request(uri, text, cursor)
                record(ms, hit, prefilled, text, cursor)
            version += 1
            server.notify("textDocument/didChange", {
                "textDocument": {"uri": uri, "version": version},
                "contentChanges": [{"range": {"start": position_of(text, start),
                                              "end": position_of(text, cursor)}, "text": ""}],
            })
            text = text[:start] + text[cursor:]
            cursor = start

    server.call("shutdown", None)
    server.notify("exit", None)
    server.proc.wait(timeout=60)

    report = {
        "model_load_secs": round(load_secs, 2),
        "document_chars": len(prefix) + len(suffix),
        "keystrokes": typed,
        "max_tokens": args.max_tokens,
        "first_prefilled_tokens": first_prefill,
        "mean_warm_prefilled_tokens": round(sum(warm_prefill) / max(1, len(warm_prefill)), 1),
        "kinds": {
            kind: {
                "n": len(values),
                "p50_ms": round(percentile(values, 50), 1) if values else None,
                "p95_ms": round(percentile(values, 95), 1) if values else None,
            }
            for kind, values in latencies.items()
        },
        "counters": counters,
        "model": args.model or "default",
        "draft": args.draft or "the model's manifest default",
        "n": args.n or "server default",
        "rank": args.rank or "server default",
        # Ranking's share of the time of requests the model answered.
        "rank_ms_mean": round(counters.get("rankMsMean", 0.0), 2) if isinstance(counters, dict) else None,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"model load {report['model_load_secs']} s; document {report['document_chars']} chars; "
              f"{typed} keystrokes; maxTokens {args.max_tokens}")
        print(f"first-request prefill tokens {first_prefill}; "
              f"mean warm prefill {report['mean_warm_prefilled_tokens']} tokens")
        print(f"n {report['n']}; rank {report['rank']}; mean ranking time {report['rank_ms_mean']} ms "
              f"per model request ({counters.get('rankedWithExamples', 0) if isinstance(counters, dict) else 0} "
              f"ranked with examples)")
        print(f"{'KIND':<14} {'N':>5} {'P50 MS':>9} {'P95 MS':>9}")
        for kind, row in report["kinds"].items():
            p50 = "-" if row["p50_ms"] is None else f"{row['p50_ms']:.1f}"
            p95 = "-" if row["p95_ms"] is None else f"{row['p95_ms']:.1f}"
            print(f"{kind:<14} {row['n']:>5} {p50:>9} {p95:>9}")


if __name__ == "__main__":
    main()
