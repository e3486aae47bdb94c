#!/usr/bin/env python3
"""Model operations of `codegen lsp`, measured with the real models.

Three scenarios, each against a fresh `codegen lsp` with its own home (the
model cache is the user's, linked; telemetry and validation records are
the run's own):

  swap     REQUESTS inline completions (HumanEval prompts, the cursor after
           the docstring, a fresh file each), pipelined (--in-flight, default
           4, so the engine always has a request waiting); after a third of
           the replies, `codegen/selectModel`
           switches to --swap-to. Reports every reply's model, errors and
           empty replies: nothing may be dropped or fail.
  retire   resident memory (the server's VmRSS, from codegen/engineStats)
           with the model loaded, after `idleUnloadSecs` released it, and
           after the next request loaded it again.
  shadow   the primary serves HumanEval prompts (cursor after the docstring,
           explicit requests), the candidate runs in shadow on every reply
           (shadowPercent 100; the replay waits for each shadow run); a
           reply whose first line equals the canonical solution's first
           line is accepted, as a user would. Prints `codegen stats --by
           model` over the run's telemetry.

Usage:
  python3 benches/model_ops.py [--codegen target/debug/codegen]
      [--scenario swap|retire|shadow|all] [--model NAME] [--swap-to NAME]
      [--candidate NAME] [--requests 200] [--tasks 60] [--max-tokens 32]

This is a benchmark, not a test: it asserts nothing about time.
"""

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lsp_latency import Server  # noqa: E402


def cache_root():
    home = os.environ.get("CODEGEN_HOME")
    if home:
        return home
    xdg = os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache"))
    return os.path.join(xdg, "codegen")


FORCE = []


def start(codegen, home, options):
    env = dict(os.environ, CODEGEN_HOME=home, CODEGEN_OFFLINE="1")
    server = Server([codegen, "lsp"] + FORCE, env)
    server.call("initialize", {
        "capabilities": {"general": {"positionEncodings": ["utf-16"]}},
        "initializationOptions": dict({"debounceMs": 0}, **options),
    })
    server.notify("initialized", {})
    return server


def status(server):
    return server.call("codegen/engineStats", None)["status"]


def wait(server, what, done, patience=900):
    start = time.monotonic()
    while True:
        stats = server.call("codegen/engineStats", None)
        s = stats["status"]
        if done(s):
            return stats, time.monotonic() - start
        if s.get("state") == "error" or (s.get("candidate") or {}).get("state") == "error":
            raise SystemExit(f"waiting for {what}: {s}")
        if time.monotonic() - start > patience:
            raise SystemExit(f"never {what}: {s}")
        time.sleep(0.1)


def new_home():
    home = tempfile.mkdtemp(prefix="codegen-ops-")
    os.symlink(os.path.join(cache_root(), "models"), os.path.join(home, "models"))
    return home


def open_doc(server, uri, text):
    server.notify("textDocument/didOpen", {"textDocument": {
        "uri": uri, "languageId": "python", "version": 1, "text": text}})


def humaneval():
    with gzip.open(os.path.join(cache_root(), "data", "HumanEval.jsonl.gz"), "rt") as f:
        return [json.loads(line) for line in f]


def end_position(text):
    lines = text.split("\n")
    return {"line": len(lines) - 1, "character": len(lines[-1].encode("utf-16-le")) // 2}


def swap(args):
    home = new_home()
    server = start(args.codegen, home, {"model": args.model, "maxTokens": args.max_tokens, "n": 1})
    wait(server, "ready", lambda s: s["state"] == "ready")
    tasks = humaneval()
    pending = {}
    replies = []
    sent = 0
    swapped_at = None
    start_time = time.monotonic()
    while len(replies) < args.requests:
        while sent < args.requests and len(pending) < args.in_flight:
            # A fresh file per request (a HumanEval prompt, the cursor after
            # its docstring), closed when answered: files left open with
            # unfinished functions would become each other's context.
            task = tasks[sent % len(tasks)]
            uri = f"file:///bench/swap{sent}.py"
            text = task["prompt"]
            open_doc(server, uri, text)
            request_id = server.next_id
            server.next_id += 1
            server.send({"jsonrpc": "2.0", "id": request_id, "method": "textDocument/inlineCompletion",
                         "params": {"textDocument": {"uri": uri}, "position": end_position(text),
                                    "context": {"triggerKind": 1}}})
            pending[request_id] = uri
            sent += 1
        message = server.recv()
        if "id" in message and "method" not in message and message["id"] in pending:
            uri = pending.pop(message["id"])
            server.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
            replies.append(message)
            if swapped_at is None and len(replies) >= args.requests // 3:
                swapped_at = len(replies)
                request_id = server.next_id
                server.next_id += 1
                server.send({"jsonrpc": "2.0", "id": request_id, "method": "codegen/selectModel",
                             "params": {"model": args.swap_to}})
    elapsed = time.monotonic() - start_time
    by_model, errors, empty = {}, 0, 0
    for reply in replies:
        if "error" in reply:
            errors += 1
            continue
        items = reply["result"]["items"] if isinstance(reply["result"], dict) else reply["result"]
        if not items:
            empty += 1
            continue
        model = items[0]["command"]["arguments"][0]["model"]
        by_model[model] = by_model.get(model, 0) + 1
    final = status(server)
    counters = server.call("codegen/engineStats", None)
    server.call("shutdown", None)
    server.notify("exit", None)
    print(json.dumps({
        "scenario": "swap", "requests": args.requests, "replies": len(replies), "errors": errors,
        "empty": empty, "by_model": by_model, "swap_requested_after": swapped_at,
        "final_status": final["state"], "final_model": final.get("model"),
        "jobs_completed": counters["jobsCompleted"], "jobs_cancelled": counters["jobsCancelled"],
        "jobs_failed": counters["jobsFailed"], "typed_through_hits": counters["typedThroughHits"],
        "seconds": round(elapsed, 1), "max_tokens": args.max_tokens, "in_flight": args.in_flight,
    }))


def retire(args):
    home = new_home()
    server = start(args.codegen, home, {"model": args.model, "maxTokens": args.max_tokens, "n": 1})
    stats, load_secs = wait(server, "ready", lambda s: s["state"] == "ready")
    uri = "file:///bench/retire.py"
    text = "def mean(values):\n    \"\"\"The mean of the values.\"\"\"\n    return "
    open_doc(server, uri, text)
    server.call("textDocument/inlineCompletion", {
        "textDocument": {"uri": uri}, "position": end_position(text), "context": {"triggerKind": 1}})
    loaded = server.call("codegen/engineStats", None)["rssMib"]
    server.notify("workspace/didChangeConfiguration", {"settings": {"codegen": {"idleUnloadSecs": 2}}})
    stats, _ = wait(server, "idle", lambda s: s["state"] == "idle")
    released = stats["rssMib"]
    server.notify("workspace/didChangeConfiguration", {"settings": {"codegen": {"idleUnloadSecs": 3600}}})
    server.call("textDocument/inlineCompletion", {
        "textDocument": {"uri": uri}, "position": end_position(text), "context": {"triggerKind": 1}})
    stats, reload_secs = wait(server, "ready again", lambda s: s["state"] == "ready")
    server.call("shutdown", None)
    server.notify("exit", None)
    print(json.dumps({
        "scenario": "retire", "model": args.model, "rss_loaded_mib": round(loaded, 1),
        "rss_released_mib": round(released, 1), "rss_reloaded_mib": round(stats["rssMib"], 1),
        "first_load_secs": round(load_secs, 1), "reload_secs": round(reload_secs, 1),
    }))


def shadow(args):
    home = new_home()
    server = start(args.codegen, home, {
        "model": args.model, "shadowModel": args.candidate, "shadowPercent": 100,
        "maxTokens": args.max_tokens, "n": 1, "rank": "none"})
    wait(server, "both models ready",
         lambda s: s["state"] == "ready" and (s.get("candidate") or {}).get("state") == "ready")
    tasks = humaneval()[: args.tasks]
    telemetry = os.path.join(home, "telemetry.jsonl")
    accepted = 0
    for i, task in enumerate(tasks):
        uri = f"file:///bench/he{i}.py"
        text = task["prompt"]
        open_doc(server, uri, text)
        result = server.call("textDocument/inlineCompletion", {
            "textDocument": {"uri": uri}, "position": end_position(text), "context": {"triggerKind": 2}})
        items = result["items"] if isinstance(result, dict) else result
        expected = next((l.strip() for l in task["canonical_solution"].splitlines() if l.strip()), "")
        if items:
            first = next((l.strip() for l in items[0]["insertText"].splitlines() if l.strip()), "")
            if first == expected:
                accepted += 1
                server.call("workspace/executeCommand", {
                    "command": "codegen.accepted", "arguments": items[0]["command"]["arguments"]})
            shown_id = items[0]["command"]["arguments"][0]["id"]
            # Let the shadow run finish before the next request (which
            # would cancel it: shadows only use idle time).
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                with open(telemetry) as f:
                    if any(f'"id":"{shown_id}"' in line and '"event":"shadow"' in line for line in f):
                        break
                time.sleep(0.05)
        server.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    server.call("shutdown", None)
    server.notify("exit", None)
    print(json.dumps({"scenario": "shadow", "tasks": len(tasks), "accepted": accepted,
                      "primary": args.model, "candidate": args.candidate,
                      "max_tokens": args.max_tokens, "telemetry": telemetry}))
    out = subprocess.run([args.codegen, "stats", "--by", "model", "--file", telemetry],
                         capture_output=True, text=True, env=dict(os.environ, CODEGEN_HOME=home))
    print(out.stdout, end="")
    if args.svg:
        subprocess.run([args.codegen, "stats", "--file", telemetry, "--svg", args.svg],
                       capture_output=True, text=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser.add_argument("--codegen", default=os.path.join(root, "target/debug/codegen"))
    parser.add_argument("--scenario", default="all", choices=["swap", "retire", "shadow", "all"])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--swap-to", default="qwen2.5-coder-1.5b-instruct")
    parser.add_argument("--candidate", default="qwen2.5-coder-1.5b-instruct")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--in-flight", type=int, default=4)
    parser.add_argument("--tasks", type=int, default=60)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--svg", default=None, help="shadow: also write the stats chart here")
    parser.add_argument("--force", action="store_true",
                        help="serve without validation (codegen lsp --force)")
    args = parser.parse_args()
    if args.force:
        FORCE.append("--force")
    for name, run in [("swap", swap), ("retire", retire), ("shadow", shadow)]:
        if args.scenario in (name, "all"):
            run(args)


if __name__ == "__main__":
    main()
