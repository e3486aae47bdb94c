//! Data-driven tests: one `check_*` per feature, `$0` marks the cursor.

use crate::position::{
    offset_to_position, position_to_offset, position_to_offset_clamped, LineIndex, Position,
    PositionEncoding,
};
use crate::*;
use expect_test::{expect, Expect};
use Language::{Go, JavaScript as Js, Python as Py, Rust as Rs, Tsx, TypeScript as Ts};

/// Split a fixture at `$0` into (text, cursor byte offset).
fn fixture(f: &str) -> (String, usize) {
    match f.find("$0") {
        Some(i) => (format!("{}{}", &f[..i], &f[i + 2..]), i),
        None => (f.to_string(), f.len()),
    }
}

fn render_scope(s: &CursorScope) -> String {
    let mut out = String::new();
    let item = |label: &str, it: &Option<ScopeItem>, out: &mut String| {
        if let Some(it) = it {
            out.push_str(&format!(
                "{label}: {} {:?}\n  signature: {:?}\n",
                it.kind,
                it.name.as_deref().unwrap_or("-"),
                it.signature
            ));
            if let Some(d) = &it.docstring {
                out.push_str(&format!("  doc: {d:?}\n"));
            }
        } else {
            out.push_str(&format!("{label}: -\n"));
        }
    };
    item("function", &s.function, &mut out);
    if s.enclosing_functions.len() > 1 {
        out.push_str(&format!("chain: {}\n", s.enclosing_functions.join(" < ")));
    }
    item("class", &s.class, &mut out);
    if !s.imports.is_empty() {
        let imports: Vec<&str> = s.imports.iter().map(|i| i.text.as_str()).collect();
        out.push_str(&format!("imports: {imports:?}\n"));
    }
    let p = s.place;
    let flags: Vec<&str> = [
        (p.mid_line, "mid_line"),
        (p.at_empty_line, "empty_line"),
        (p.at_line_start, "line_start"),
        (p.in_string, "in_string"),
        (p.in_comment, "in_comment"),
        (s.has_errors, "has_errors"),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, name)| *name)
    .collect();
    out.push_str(&format!("place: {}\n", flags.join(" ")));
    for note in &s.notes {
        out.push_str(&format!("note: {note}\n"));
    }
    out
}

#[track_caller]
fn check_scope(lang: Language, f: &str, expect: Expect) {
    let (text, cursor) = fixture(f);
    let doc = ParsedDocument::new(text, lang);
    expect.assert_eq(&render_scope(&cursor_scope(&doc, cursor)));
}

fn small_config() -> PromptConfig {
    PromptConfig {
        max_prefix_tokens: 40,
        max_suffix_tokens: 16,
        max_snippet_tokens: 60,
        snippet_window_lines: 4,
        ..PromptConfig::default()
    }
}

#[track_caller]
fn check_prompt(lang: Language, f: &str, expect: Expect) {
    let (text, cursor) = fixture(f);
    let doc = ParsedDocument::new(text, lang);
    let p = build_prompt(
        &doc,
        cursor,
        "main",
        &[],
        &small_config(),
        &ApproxTokenCounter,
    );
    let mut out =
        format!("mode: {:?}\n{}⟨CURSOR⟩{}\n", p.mode, p.prefix, p.suffix).replace('\r', "␍");
    for note in &p.notes {
        out.push_str(&format!("note: {note}\n"));
    }
    expect.assert_eq(&out);
}

#[track_caller]
fn check_snippets(f: &str, neighbours: &[(&str, &str)], expect: Expect) {
    let (text, cursor) = fixture(f);
    let doc = ParsedDocument::new(text, Py);
    let neighbours: Vec<Neighbour> = neighbours
        .iter()
        .map(|(path, text)| Neighbour {
            path: path.to_string(),
            text: text.to_string(),
        })
        .collect();
    let p = build_prompt(
        &doc,
        cursor,
        "app/main.py",
        &neighbours,
        &small_config(),
        &ApproxTokenCounter,
    );
    let mut out = String::new();
    for s in &p.snippets {
        out.push_str(&format!("score {:.2}\n", s.score));
    }
    out.push_str(&render_repo_context(
        &p.snippets,
        "app/main.py",
        "<|file_sep|>",
    ));
    expect.assert_eq(&out);
}

/// `raw` is what the model wrote at the cursor; the mode is the one the
/// prompt chose, as the engine would pass it.
#[track_caller]
fn check_post(lang: Language, f: &str, raw: &str, expect: Expect) {
    let (text, cursor) = fixture(f);
    let doc = ParsedDocument::new(text.clone(), lang);
    let mode = build_prompt(
        &doc,
        cursor,
        "x",
        &[],
        &PromptConfig::default(),
        &ApproxTokenCounter,
    )
    .mode;
    let inserted = postprocess(&doc, cursor, raw, mode);
    // CR made visible: snapshots in Rust source cannot hold a CR.
    let result = format!("{}{}{}", &text[..cursor], inserted, &text[cursor..]).replace('\r', "␍");
    expect.assert_eq(&format!("{mode:?} {inserted:?}\n{result}"));
}

#[track_caller]
fn check_syntax(lang: Language, f: &str, insertion: &str, expect: Expect) {
    let (text, cursor) = fixture(f);
    let doc = ParsedDocument::new(text, lang);
    let c = syntax_check(&doc, cursor, insertion);
    expect.assert_eq(&format!(
        "before {}e {}m, after {}e {}m, delta {}",
        c.errors_before,
        c.missing_before,
        c.errors_after,
        c.missing_after,
        c.delta()
    ));
}

/// Every `$0` in the fixture, as (line, char) in UTF-8, UTF-16 and chars,
/// and back to the same offset.
#[track_caller]
fn check_position(f: &str, expect: Expect) {
    let mut text = f.to_string();
    let mut offsets = Vec::new();
    while let Some(i) = text.find("$0") {
        text.replace_range(i..i + 2, "");
        offsets.push(i);
    }
    let index = LineIndex::new(&text);
    let mut out = String::new();
    for offset in offsets {
        out.push_str(&format!("{offset}:"));
        for enc in [
            PositionEncoding::Utf8,
            PositionEncoding::Utf16,
            PositionEncoding::Chars,
        ] {
            let pos = index.position(&text, offset, enc);
            match pos {
                Ok(pos) => {
                    let back = index.offset(&text, pos, enc);
                    assert_eq!(back, Ok(offset), "round trip {enc:?}");
                    out.push_str(&format!(" {enc:?}({},{})", pos.line, pos.character));
                }
                Err(e) => out.push_str(&format!(" {enc:?} error: {e}")),
            }
        }
        out.push('\n');
    }
    expect.assert_eq(&out);
}

// ---------------------------------------------------------------- scope

#[test]
fn scope_python() {
    check_scope(
        Py,
        "",
        expect![[r#"
        function: -
        class: -
        place: empty_line line_start
    "#]],
    );
    check_scope(
        Py,
        "$0",
        expect![[r#"
        function: -
        class: -
        place: empty_line line_start
    "#]],
    );
    check_scope(Py, "import os\nfrom typing import List\n\ndef add(a: int, b: int) -> int:\n    \"\"\"Add two numbers.\"\"\"\n    return a$0 + b\n", expect![[r#"
        function: function_definition "add"
          signature: "def add(a: int, b: int) -> int:"
          doc: "\"\"\"Add two numbers.\"\"\""
        class: -
        imports: ["import os", "from typing import List"]
        place: mid_line
    "#]]);
    check_scope(Py, "class Stack:\n    def push(self, item):\n        self.items.append(item)\n        $0\n\n    def pop(self):\n        pass\n", expect![[r#"
        function: function_definition "push"
          signature: "def push(self, item):"
        class: class_definition "Stack"
          signature: "class Stack:"
        place: empty_line line_start
    "#]]);
    check_scope(
        Py,
        "def f():\n    x = 1\n$0",
        expect![[r#"
        function: -
        class: -
        place: empty_line line_start
    "#]],
    );
    check_scope(
        Py,
        "def f():\n    return 1\n\ndef g():\n    re$0",
        expect![[r#"
        function: function_definition "g"
          signature: "def g():"
        class: -
        place: 
    "#]],
    );
    check_scope(
        Py,
        "def greet(name):\n    return f\"Hello, {na$0}\"\n",
        expect![[r#"
        function: function_definition "greet"
          signature: "def greet(name):"
        class: -
        place: mid_line in_string
    "#]],
    );
    check_scope(
        Py,
        "def f():\n    s = \"abc $0 def\"\n",
        expect![[r#"
        function: function_definition "f"
          signature: "def f():"
        class: -
        place: mid_line in_string
    "#]],
    );
    check_scope(
        Py,
        "def f():\n    # compute the$0\n    pass\n",
        expect![[r#"
        function: function_definition "f"
          signature: "def f():"
        class: -
        place: in_comment
    "#]],
    );
    check_scope(Py, "class Outer:\n    class Inner:\n        def method(self):\n            def helper(x):\n                return x$0\n            return helper\n", expect![[r#"
        function: function_definition "helper"
          signature: "def helper(x):"
        chain: helper < method
        class: class_definition "Inner"
          signature: "class Inner:"
        place: 
    "#]]);
    check_scope(
        Py,
        "def broken(:\n    x = = 2\n    return x$0\n\ndef ok():\n    pass\n",
        expect![[r#"
        function: function_definition "broken"
          signature: "def broken(:"
        class: -
        place: has_errors
    "#]],
    );
    check_scope(
        Py,
        "def a(:\n    pass\n\ndef b(x):\n    return x$0\n\ndef c(]:\n    pass\n",
        expect![[r#"
        function: function_definition "b"
          signature: "def b(x):"
        class: -
        place: 
    "#]],
    );
    check_scope(
        Py,
        "def f(x):\n    if x >\n        $0\n    y = (1,\n",
        expect![[r#"
        function: function_definition "f"
          signature: "def f(x):"
        class: -
        place: empty_line line_start has_errors
        note: enclosing function recovered from text (syntax errors)
    "#]],
    );
    check_scope(
        Py,
        "def grüße(名前):\n    \"\"\"挨拶する 👋\"\"\"\n    return 名前$0\n",
        expect![[r#"
        function: function_definition "grüße"
          signature: "def grüße(名前):"
          doc: "\"\"\"挨拶する 👋\"\"\""
        class: -
        place: 
    "#]],
    );
    check_scope(
        Py,
        "def f():\r\n    x = 1\r\n    $0\r\n",
        expect![[r#"
        function: function_definition "f"
          signature: "def f():"
        class: -
        place: empty_line line_start
    "#]],
    );
    check_scope(
        Py,
        "@decorator\ndef f(a,\n      b):\n    return a$0\n",
        expect![[r#"
        function: function_definition "f"
          signature: "def f(a,\n      b):"
        class: -
        place: 
    "#]],
    );
    check_scope(
        Py,
        "square = lambda x: x$0 * x\n",
        expect![[r#"
        function: lambda "square"
          signature: "lambda x:"
        class: -
        place: mid_line
    "#]],
    );
    check_scope(
        Py,
        "def f():\n    s = \"unterminated $0\n",
        expect![[r#"
        function: function_definition "f"
          signature: "def f():"
        class: -
        place: in_string has_errors
        note: enclosing function recovered from text (syntax errors)
    "#]],
    );
}

#[test]
fn scope_rust() {
    check_scope(Rs, "use std::io;\nuse std::fmt::{self, Display};\n\n/// Adds one.\n#[inline]\nfn add_one(x: i32) -> i32 {\n    x$0 + 1\n}\n", expect![[r#"
        function: function_item "add_one"
          signature: "fn add_one(x: i32) -> i32"
          doc: "/// Adds one."
        class: -
        imports: ["use std::io;", "use std::fmt::{self, Display};"]
        place: mid_line
    "#]]);
    check_scope(Rs, "impl Stack {\n    pub fn push(&mut self, v: u8) {\n        let f = |x: u8| x$0 + 1;\n    }\n}\n", expect![[r#"
        function: closure_expression "f"
          signature: "|x: u8|"
        chain: f < push
        class: impl_item "Stack"
          signature: "impl Stack"
        place: mid_line
    "#]]);
    check_scope(
        Rs,
        "fn main() {\n    let s = \"hello $0\";\n}\n",
        expect![[r#"
        function: function_item "main"
          signature: "fn main()"
        class: -
        place: mid_line in_string
    "#]],
    );
    check_scope(
        Rs,
        "fn main() {\n    // TODO: handle$0\n}\n",
        expect![[r#"
        function: function_item "main"
          signature: "fn main()"
        class: -
        place: in_comment
    "#]],
    );
    check_scope(
        Rs,
        "fn main() {\n    foo(\n    let x = $0\n}\n\nfn other() {}\n",
        expect![[r#"
        function: function_item "main"
          signature: "fn main()"
        class: -
        place: has_errors
    "#]],
    );
    check_scope(
        Rs,
        "fn main() {}\n$0",
        expect![[r#"
        function: -
        class: -
        place: empty_line line_start
    "#]],
    );
    check_scope(Rs, "impl<T: Display> fmt::Debug for Wrapper<T> {\n    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {\n        $0\n    }\n}\n", expect![[r#"
        function: function_item "fmt"
          signature: "fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result"
        class: impl_item "fmt::Debug for Wrapper<T>"
          signature: "impl<T: Display> fmt::Debug for Wrapper<T>"
        place: empty_line line_start
    "#]]);
}

#[test]
fn scope_js_ts_go() {
    check_scope(Js, "import fs from 'fs';\nconst path = require('path');\n\n/**\n * Reads a file.\n */\nexport function read(p) {\n  return fs.readFileSync(p$0);\n}\n", expect![[r#"
        function: function_declaration "read"
          signature: "function read(p)"
          doc: "/**\n * Reads a file.\n */"
        class: -
        imports: ["import fs from 'fs';", "const path = require('path');"]
        place: mid_line
    "#]]);
    check_scope(Js, "class Counter {\n  increment() {\n    this.items.forEach((item) => {\n      $0\n    });\n  }\n}\n", expect![[r#"
        function: arrow_function "-"
          signature: "(item) =>"
        chain: <arrow_function> < increment
        class: class_declaration "Counter"
          signature: "class Counter"
        place: empty_line line_start
    "#]]);
    check_scope(
        Js,
        "const add = (a, b) => a + b$0;\n",
        expect![[r#"
        function: arrow_function "add"
          signature: "(a, b) =>"
        class: -
        place: mid_line
    "#]],
    );
    check_scope(
        Js,
        "function f() {\n  const s = `template ${x} $0`;\n}\n",
        expect![[r#"
        function: function_declaration "f"
          signature: "function f()"
        class: -
        place: mid_line in_string
    "#]],
    );
    check_scope(Ts, "import { Foo } from './foo';\n\ninterface Shape {\n  area(): number;\n}\n\nclass Circle implements Shape {\n  constructor(private r: number) {}\n  area(): number {\n    return Math.PI * this.r$0;\n  }\n}\n", expect![[r#"
        function: method_definition "area"
          signature: "area(): number"
        class: class_declaration "Circle"
          signature: "class Circle implements Shape"
        imports: ["import { Foo } from './foo';"]
        place: mid_line
    "#]]);
    check_scope(
        Js,
        "function a( {\n}\n\nfunction b(x) {\n  return x.$0\n}\n\nconst c = [1, 2;\n",
        expect![[r#"
        function: function (recovered) "b"
          signature: "function b(x)"
        class: -
        place: has_errors
        note: enclosing function recovered from text (syntax errors)
    "#]],
    );
    check_scope(
        Ts,
        "function parse(input: string): Result<number, Error> {\n  if (input.length ===\n  $0\n}\n",
        expect![[r#"
        function: function_declaration "parse"
          signature: "function parse(input: string): Result<number, Error>"
        class: -
        place: empty_line line_start has_errors
    "#]],
    );
    check_scope(Tsx, "import React from 'react';\n\nexport const Button = ({ label }: Props) => {\n  return <button>{label$0}</button>;\n};\n", expect![[r#"
        function: arrow_function "Button"
          signature: "({ label }: Props) =>"
        class: -
        imports: ["import React from 'react';"]
        place: mid_line
    "#]]);
    check_scope(Go, "package main\n\nimport (\n\t\"fmt\"\n\t\"os\"\n)\n\n// Greeter says hello.\n// It is polite.\nfunc (g *Greeter) Greet(name string) string {\n\treturn fmt.Sprintf(\"hi %s\", name$0)\n}\n", expect![[r#"
        function: method_declaration "Greet"
          signature: "func (g *Greeter) Greet(name string) string"
          doc: "// Greeter says hello.\n// It is polite."
        class: -
        imports: ["package main", "import (\n\t\"fmt\"\n\t\"os\"\n)"]
        place: mid_line
    "#]]);
    check_scope(
        Go,
        "package main\n\nfunc main() {\n\thandler := func(w int) {\n\t\t$0\n\t}\n}\n",
        expect![[r#"
        function: func_literal "-"
          signature: "func(w int)"
        chain: <func_literal> < main
        class: -
        imports: ["package main"]
        place: empty_line line_start
    "#]],
    );
    check_scope(
        Go,
        "package main\n\ntype Point struct {\n\tX int\n\tY$0\n}\n",
        expect![[r#"
        function: -
        class: type_declaration "Point"
          signature: "type Point struct {"
        imports: ["package main"]
        place: 
    "#]],
    );
}

#[test]
fn scope_more() {
    check_scope(Ts, "const outer = (x: number) => {\n  const inner = (y: number) => {\n    return x + y$0;\n  };\n  return inner;\n};\n", expect![[r#"
        function: arrow_function "inner"
          signature: "(y: number) =>"
        chain: inner < outer
        class: -
        place: mid_line
    "#]]);
    check_scope(
        Ts,
        "const api = {\n  get(id: string) {\n    return fetch(`/items/${id$0}`);\n  },\n};\n",
        expect![[r#"
        function: method_definition "get"
          signature: "get(id: string)"
        class: -
        place: mid_line in_string
    "#]],
    );
    check_scope(
        Tsx,
        "export function Card() {\n  return <div title=\"hello $0\">x</div>;\n}\n",
        expect![[r#"
        function: function_declaration "Card"
          signature: "function Card()"
        class: -
        place: mid_line in_string
    "#]],
    );
    check_scope(
        Go,
        "package main\r\n\r\n// TODO: write$0\r\nfunc main() {}\r\n",
        expect![[r#"
        function: -
        class: -
        imports: ["package main"]
        place: in_comment
    "#]],
    );
    check_scope(
        Go,
        "package main\n\nfunc main() {\n\tx := 1\n}\n$0",
        expect![[r#"
        function: -
        class: -
        imports: ["package main"]
        place: empty_line line_start
    "#]],
    );
    check_scope(
        Rs,
        "fn main() {\n    let s = \"日本語$0\";\n}\n",
        expect![[r#"
        function: function_item "main"
          signature: "fn main()"
        class: -
        place: mid_line in_string
    "#]],
    );
    check_scope(Rs, "pub trait Shape {\n    /// Area.\n    fn area(&self) -> f64;\n    fn name(&self) -> String {\n        String::from(\"sh$0\")\n    }\n}\n", expect![[r#"
        function: function_item "name"
          signature: "fn name(&self) -> String"
        class: trait_item "Shape"
          signature: "pub trait Shape"
        place: mid_line in_string
    "#]]);
    check_scope(
        Js,
        "function main() {\n  cons$0",
        expect![[r#"
        function: function_expression "main"
          signature: "function main()"
        class: -
        place: has_errors
    "#]],
    );
    check_scope(Js, "describe('x', () => {\n  it('works', async () => {\n    await run();\n    $0\n  });\n});\n", expect![[r#"
        function: arrow_function "-"
          signature: "async () =>"
        chain: <arrow_function> < <arrow_function>
        class: -
        place: empty_line line_start
    "#]]);
    check_scope(
        Js,
        "class Form {\n  onSubmit = (event) => {\n    event.$0\n  };\n}\n",
        expect![[r#"
            function: arrow_function "onSubmit"
              signature: "(event) =>"
            class: class_declaration "Form"
              signature: "class Form"
            place: has_errors
        "#]],
    );
    check_scope(Py, "async def fetch(url):\n    async with session.get(url) as r:\n        return await r.json()$0\n", expect![[r#"
        function: function_definition "fetch"
          signature: "async def fetch(url):"
        class: -
        place: 
    "#]]);
}

#[test]
fn cursor_clamped_not_panicking() {
    let doc = ParsedDocument::new("é = 1\n".to_string(), Py);
    let s = cursor_scope(&doc, 1);
    assert_eq!(s.cursor, 0);
    let s = cursor_scope(&doc, 999);
    assert_eq!(s.cursor, doc.text().len());
    expect!["cursor 999 is past the end of the text (7 bytes); clamped to 7"]
        .assert_eq(&s.notes.join("\n"));
    let p = build_prompt(
        &doc,
        999,
        "x.py",
        &[],
        &PromptConfig::default(),
        &ApproxTokenCounter,
    );
    assert_eq!(p.prefix, "é = 1\n");
    assert_eq!(postprocess(&doc, 1, "x", CompletionMode::SingleLine), "x");
}

// ---------------------------------------------------------------- prompt

#[test]
fn prompt_assembly() {
    check_prompt(
        Py,
        "",
        expect![[r#"
        mode: MultiLine
        ⟨CURSOR⟩
    "#]],
    );
    check_prompt(
        Py,
        "def add(a, b):\n    return a$0\n",
        expect![[r#"
        mode: SingleLine
        def add(a, b):
            return a⟨CURSOR⟩

    "#]],
    );
    check_prompt(
        Py,
        "x = 1\nprint(x$0)\n",
        expect![[r#"
        mode: SingleLine
        x = 1
        print(x⟨CURSOR⟩)

    "#]],
    );
    check_prompt(Py, "import os\nimport sys\n\ndef work(paths):\n    \"\"\"Do work.\"\"\"\n    total = 0\n    for p in paths:\n        total += os.path.getsize(p)\n    if total > 10:\n        print('big')\n    names = [os.path.basename(p) for p in paths]\n    $0\n    return total\n\ndef other():\n    pass\n\ndef third():\n    pass\n", expect![[r#"
        mode: MultiLine
        import os
        import sys
        def work(paths):
            """Do work."""
            names = [os.path.basename(p) for p in paths]
            ⟨CURSOR⟩
            return total

        def other():
            pass

        note: prefix cut: kept 53 of 221 bytes before the cursor, plus a 57-byte header
        note: suffix cut: kept 41 of 64 bytes after the cursor
    "#]]);
    check_prompt(Rs, "use std::collections::HashMap;\n\nimpl Index {\n    fn build(words: &[String]) -> HashMap<String, usize> {\n        let mut map = HashMap::new();\n        for (i, w) in words.iter().enumerate() {\n            map.insert(w.clone(), i);\n        }\n        let total = map.len();\n        $0\n    }\n}\n", expect![[r#"
        mode: MultiLine
        impl Index {
            fn build(words: &[String]) -> HashMap<String, usize> {
                let total = map.len();
                ⟨CURSOR⟩
            }
        }

        note: prefix: imports left out (too long for the budget)
        note: prefix cut: kept 39 of 278 bytes before the cursor, plus a 72-byte header
    "#]]);
    check_prompt(Js, "function f() {\n  return 1;\n}\n\nfunction g() {\n  $0\n}\n\nfunction h() {\n  const a = 1;\n  const b = 2;\n  return a + b;\n}\n\nfunction k() {}\n", expect![[r#"
        mode: MultiLine
        function f() {
          return 1;
        }

        function g() {
          ⟨CURSOR⟩
        }

        function h() {
          const a = 1;

        note: suffix cut: kept 34 of 84 bytes after the cursor
    "#]]);
    check_prompt(Go, "package main\n\nfunc main() {\n\tx := compute(\n\t\t1,\n\t\t2,\n\t)\n\tfmt.Println(x)\n\ty := x * 2\n\tz := y + 1\n\t$0\n}\n", expect![[r#"
        mode: MultiLine
        package main

        func main() {
        	x := compute(
        		1,
        		2,
        	)
        	fmt.Println(x)
        	y := x * 2
        	z := y + 1
        	⟨CURSOR⟩
        }

    "#]]);
    check_prompt(
        Ts,
        "const s = 'abc$0';\n",
        expect![[r#"
        mode: SingleLine
        const s = 'abc⟨CURSOR⟩';

    "#]],
    );
    check_prompt(
        Py,
        "def f():\n    if ok:$0\n",
        expect![[r#"
        mode: MultiLine
        def f():
            if ok:⟨CURSOR⟩

    "#]],
    );
    check_prompt(Go, "package main\r\n\r\nimport \"fmt\"\r\n\r\nfunc main() {\r\n\tfor i := 0; i < 3; i++ {\r\n\t\tfmt.Println(i)\r\n\t}\r\n\tx := 1\r\n\t$0\r\n}\r\n", expect![[r#"
        mode: MultiLine
        package main␍
        ␍
        import "fmt"␍
        ␍
        func main() {␍
        	for i := 0; i < 3; i++ {␍
        		fmt.Println(i)␍
        	}␍
        	x := 1␍
        	⟨CURSOR⟩␍
        }␍

    "#]]);
    // The previous function is cut; the enclosing one is kept whole.
    check_prompt(Py, "import os\n\ndef long_one():\n    a = 1\n    b = 2\n    c = 3\n    d = 4\n    e = 5\n    f = 6\n    g = 7\n    return a\n\n@cache\ndef short(x):\n    y = x + 1\n    $0\n", expect![[r#"
        mode: MultiLine
        import os
        def long_one():
            d = 4
            e = 5
            f = 6
            g = 7
            return a

        @cache
        def short(x):
            y = x + 1
            ⟨CURSOR⟩

        note: prefix cut: kept 93 of 150 bytes before the cursor, plus a 26-byte header
    "#]]);
    check_prompt(Rs, "fn long_one() {\n    let a = 1;\n    let b = 2;\n    let c = 3;\n    let d = 4;\n    let e = 5;\n}\n\n/// Doubles.\nfn short(x: u32) -> u32 {\n    let y = x * 2;\n    $0\n}\n", expect![[r#"
        mode: MultiLine
        fn long_one() {
            let d = 4;
            let e = 5;
        }

        /// Doubles.
        fn short(x: u32) -> u32 {
            let y = x * 2;
            ⟨CURSOR⟩
        }

        note: prefix cut: kept 95 of 156 bytes before the cursor, plus a 16-byte header
    "#]]);
    // Cut inside a closure in a method: every enclosing signature is kept.
    check_prompt(Py, "class Store:\n    def save(self, items):\n        def encode(item):\n            a = 1\n            b = 2\n            c = 3\n            d = 4\n            e = 5\n            return dumps($0)\n        return [encode(i) for i in items]\n", expect![[r#"
        mode: SingleLine
        class Store:
            def save(self, items):
                def encode(item):
                    d = 4
                    e = 5
                    return dumps(⟨CURSOR⟩)
                return [encode(i) for i in items]

        note: prefix cut: kept 61 of 181 bytes before the cursor, plus a 66-byte header
    "#]]);
    check_prompt(
        Py,
        "# a comment about$0\n",
        expect![[r#"
        mode: SingleLine
        # a comment about⟨CURSOR⟩

    "#]],
    );
}

#[test]
fn prompt_ten_thousand_lines() {
    for lang in [Py, Rs] {
        let text = big_file(lang, 10_000);
        let cursor = text.len() / 2;
        let cursor = text[..cursor].rfind('\n').map_or(0, |i| i + 1);
        let doc = ParsedDocument::new(text, lang);
        let cfg = PromptConfig::default();
        let counter = CountingCounter::default();
        let p = build_prompt(&doc, cursor, "big", &[], &cfg, &counter);
        // The real tokenizer costs per call: lines are counted in chunks.
        assert!(counter.calls.get() < 100, "{} calls", counter.calls.get());
        let prefix_tokens = ApproxTokenCounter.count(&p.prefix);
        let suffix_tokens = ApproxTokenCounter.count(&p.suffix);
        assert!(
            prefix_tokens <= cfg.max_prefix_tokens + 16,
            "{prefix_tokens}"
        );
        assert!(suffix_tokens <= cfg.max_suffix_tokens, "{suffix_tokens}");
        let first_prefix_line = p.prefix.lines().next().unwrap_or("");
        let last_suffix_line = p.suffix.lines().last().unwrap_or("");
        let out = format!(
            "{lang:?}: function {:?}, class {:?}\nprefix starts {first_prefix_line:?}\nsuffix ends {last_suffix_line:?}\n",
            p.scope.function.as_ref().and_then(|f| f.name.clone()),
            p.scope.class.as_ref().and_then(|f| f.name.clone()),
        );
        match lang {
            Py => expect![[r#"
                Python: function Some("compute_557"), class Some("Widget557")
                prefix starts "import os"
                suffix ends "        for v in values:"
            "#]]
            .assert_eq(&out),
            _ => expect![[r#"
                Rust: function Some("compute_334"), class Some("Widget334")
                prefix starts "use std::collections::HashMap;"
                suffix ends "        for v in &self.values {"
            "#]]
            .assert_eq(&out),
        }
    }
}

/// An approximate counter that counts its calls.
#[derive(Default)]
struct CountingCounter {
    calls: std::cell::Cell<usize>,
}

impl TokenCounter for CountingCounter {
    fn count(&self, text: &str) -> usize {
        self.calls.set(self.calls.get() + 1);
        ApproxTokenCounter.count(text)
    }
}

/// A file of `n_lines` lines: imports, then classes of small methods.
pub(crate) fn big_file(lang: Language, n_lines: usize) -> String {
    let mut out = String::new();
    let mut i = 0;
    match lang {
        Py => {
            out.push_str("import os\nimport sys\nfrom typing import List\n\n");
            while out.lines().count() < n_lines {
                out.push_str(&format!(
                    "class Widget{i}:\n    \"\"\"Widget number {i}.\"\"\"\n\n    def compute_{i}(self, values: List[int]) -> int:\n        total = 0\n        for v in values:\n            total += v * {i}\n        return total\n\n"
                ));
                i += 1;
            }
        }
        _ => {
            out.push_str("use std::collections::HashMap;\nuse std::fmt;\n\n");
            while out.lines().count() < n_lines {
                out.push_str(&format!(
                    "pub struct Widget{i} {{\n    values: Vec<i64>,\n}}\n\nimpl Widget{i} {{\n    /// Sum times {i}.\n    pub fn compute_{i}(&self) -> i64 {{\n        let mut total = 0;\n        for v in &self.values {{\n            total += v * {i};\n        }}\n        total\n    }}\n}}\n\n"
                ));
                i += 1;
            }
        }
    }
    out
}

#[test]
fn snippets_from_neighbours() {
    let models = "class User:\n    def __init__(self, name, email):\n        self.name = name\n        self.email = email\n\n\ndef load_users(rows):\n    return [User(r['name'], r['email']) for r in rows]\n\n\ndef save_users(users, path):\n    write_rows(path, users)\n";
    let unrelated = "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n";
    check_snippets(
        "from models import User\n\ndef greet(user):\n    return 'Hello ' + user.name$0\n",
        &[("app/models.py", models), ("app/fib.py", unrelated)],
        expect![[r#"
        score 0.14
        <|file_sep|>app/models.py
        class User:
            def __init__(self, name, email):
                self.name = name
                self.email = email
        <|file_sep|>app/main.py
    "#]],
    );
    check_snippets(
        "rows = fetch()\nusers = load_users(rows$0)\n",
        &[("app/models.py", models), ("app/main.py", models)],
        expect![[r#"
        score 0.17
        <|file_sep|>app/models.py
            def __init__(self, name, email):
                self.name = name
                self.email = email
        def load_users(rows):
        <|file_sep|>app/main.py
    "#]],
    );
    check_snippets(
        "$0",
        &[("app/models.py", models)],
        expect![[r#"
        <|file_sep|>app/main.py
    "#]],
    );
    assert_eq!(
        render_repo_context(&[], "src/lib.rs", "<|file_sep|>"),
        "<|file_sep|>src/lib.rs\n"
    );
}

// ---------------------------------------------------------------- post-processing

#[test]
fn post_python() {
    // Body, then the model starts the next function at the top level.
    check_post(
        Py,
        "def add(a, b):\n    $0\n\ndef sub(a, b):\n    return a - b\n",
        "return a + b\n\n\ndef mul(a, b):\n    return a * b\n",
        expect![[r#"
        MultiLine "return a + b"
        def add(a, b):
            return a + b

        def sub(a, b):
            return a - b
    "#]],
    );
    // After a block opener at the end of the line.
    check_post(Py, "def sign(x):$0\n", "\n    if x > 0:\n        return 1\n    elif x < 0:\n        return -1\n    return 0\n\n\nclass Foo:\n    pass\n", expect![[r#"
        MultiLine "\n    if x > 0:\n        return 1\n    elif x < 0:\n        return -1\n    return 0"
        def sign(x):
            if x > 0:
                return 1
            elif x < 0:
                return -1
            return 0
    "#]]);
    // A new top-level definition: stop before the next one.
    check_post(Py, "import math\n\n$0", "def area(r):\n    return math.pi * r ** 2\n\n\ndef circumference(r):\n    return 2 * math.pi * r\n", expect![[r#"
        MultiLine "def area(r):\n    return math.pi * r ** 2"
        import math

        def area(r):
            return math.pi * r ** 2"#]]);
    // Mid-line: one line, without the `))` already after the cursor.
    check_post(
        Py,
        "print(add(1, $0))\n",
        "2))\nprint(add(3, 4))\n",
        expect![[r#"
        SingleLine "2"
        print(add(1, 2))
    "#]],
    );
    // The model repeats the line after the cursor.
    check_post(
        Py,
        "def total(xs):\n    s = 0\n    $0\n    return s\n",
        "for x in xs:\n        s += x\n    return s\n",
        expect![[r#"
        MultiLine "for x in xs:\n        s += x"
        def total(xs):
            s = 0
            for x in xs:
                s += x
            return s
    "#]],
    );
    // A looping model.
    check_post(
        Py,
        "def main():\n    $0\n",
        "setup()\n    log('start')\n    log('start')\n    log('start')\n    log('start')",
        expect![[r#"
        MultiLine "setup()\n    log('start')"
        def main():
            setup()
            log('start')
    "#]],
    );
    // A block of two lines repeated.
    check_post(Py, "def poll(q):\n    $0\n", "while True:\n        item = q.get()\n        handle(item)\n        item = q.get()\n        handle(item)\n        item = q.get()\n", expect![[r#"
        MultiLine "while True:\n        item = q.get()\n        handle(item)"
        def poll(q):
            while True:
                item = q.get()
                handle(item)
    "#]]);
    // Two equal lines in a row are kept: real code does that.
    check_post(
        Py,
        "def pad(buf):\n    $0\n",
        "buf.append(0)\n    buf.append(0)\n    return buf\n",
        expect![[r#"
        MultiLine "buf.append(0)\n    buf.append(0)\n    return buf"
        def pad(buf):
            buf.append(0)
            buf.append(0)
            return buf
    "#]],
    );
    // The model repeats the function's `return x` below the cursor; an inner
    // `return x` is not mistaken for it.
    check_post(
        Py,
        "def clamp(x, hi):\n    $0\n    return x\n",
        "if x > hi:\n        return hi\n    return x\n",
        expect![[r#"
        MultiLine "if x > hi:\n        return hi"
        def clamp(x, hi):
            if x > hi:
                return hi
            return x
    "#]],
    );
    check_post(
        Py,
        "def absolute(x):\n    $0\n    return x\n",
        "if x >= 0:\n        return x\n    x = -x\n    return x\n",
        expect![[r#"
            MultiLine "if x >= 0:\n        return x"
            def absolute(x):
                if x >= 0:
                    return x
                return x
        "#]],
    );
    // The next line is the body of a missing header: one line.
    check_post(
        Py,
        "def prefixes(s):\n    out = []\n    $0\n        out.append(s[:i + 1])\n    return out\n",
        "for i in range(len(s)):\n        out.append(s[:i + 1])\n    return out\n",
        expect![[r#"
            MultiLine "for i in range(len(s)):"
            def prefixes(s):
                out = []
                for i in range(len(s)):
                    out.append(s[:i + 1])
                return out
        "#]],
    );
    // A simple statement owns no deeper lines; what leaves the block goes.
    check_post(
        Py,
        "def f(xs):\n    d = {}\n    for x in xs:\n        $0\n        d[x] = t\n    return d\n",
        "t = xs.count(x)\n            d[x] = t\n",
        expect![[r#"
            MultiLine "t = xs.count(x)"
            def f(xs):
                d = {}
                for x in xs:
                    t = xs.count(x)
                    d[x] = t
                return d
        "#]],
    );
    // A comment first: the statement after it comes along.
    check_post(
        Py,
        "def count(notes):\n    $0\n    return [table[n] for n in notes]\n",
        "# beats per note\n    table = {'o': 4, '.|': 1}\n    notes = notes.split()\n",
        expect![[r##"
            MultiLine "# beats per note\n    table = {'o': 4, '.|': 1}"
            def count(notes):
                # beats per note
                table = {'o': 4, '.|': 1}
                return [table[n] for n in notes]
        "##]],
    );
    // At the end of the block (the code below is outdented) the block is
    // still completed in full.
    check_post(
        Py,
        "def f(xs):\n    for x in xs:\n        $0\n    return xs\n",
        "y = x * 2\n        print(y)\n    return xs\n",
        expect![[r#"
            MultiLine "y = x * 2\n        print(y)"
            def f(xs):
                for x in xs:
                    y = x * 2
                    print(y)
                return xs
        "#]],
    );
    // Cursor at column 0 of a body line the editor did not indent.
    check_post(
        Py,
        "def f(xs):\n$0\n",
        "    return sorted(xs)\n\n\ndef g():\n    pass\n",
        expect![[r#"
        MultiLine "    return sorted(xs)"
        def f(xs):
            return sorted(xs)
    "#]],
    );
    // Tab-indented file, model writes 4 spaces.
    check_post(
        Py,
        "class A:\n\tdef f(self, xs):\n\t\t$0\n",
        "for x in xs:\n            if x:\n                print(x)\n",
        expect![[r#"
        MultiLine "for x in xs:\n\t\t\tif x:\n\t\t\t\tprint(x)"
        class A:
        	def f(self, xs):
        		for x in xs:
        			if x:
        				print(x)
    "#]],
    );
    // Two-space file, model writes 4 spaces.
    check_post(
        Py,
        "def f(xs):\n  seen = set()\n  $0\n",
        "for x in xs:\n      if x:\n          yield x\n",
        expect![[r#"
        MultiLine "for x in xs:\n    if x:\n      yield x"
        def f(xs):
          seen = set()
          for x in xs:
            if x:
              yield x
    "#]],
    );
    // CRLF file.
    check_post(
        Py,
        "def f(x):\r\n    $0\r\n",
        "if x:\r\n        return 1\r\n    return 2\r\n\r\ndef g():\r\n    pass",
        expect![[r#"
        MultiLine "if x:\r\n        return 1\r\n    return 2"
        def f(x):␍
            if x:␍
                return 1␍
            return 2␍
    "#]],
    );
    // CRLF file, model writes LF.
    check_post(
        Js,
        "function f() {\r\n  $0\r\n}\r\n",
        "const a = 1;\n  return a;\n}\n",
        expect![[r#"
        MultiLine "const a = 1;\r\n  return a;"
        function f() {␍
          const a = 1;␍
          return a;␍
        }␍
    "#]],
    );
    // In a comment: one line.
    check_post(
        Py,
        "# compute the$0\n",
        " average of the list\nimport statistics\n",
        expect![[r#"
        SingleLine " average of the list"
        # compute the average of the list
    "#]],
    );
    // Truncated by max tokens with a bracket open.
    check_post(
        Py,
        "def names(items):\n    $0\n",
        "return sorted(item.name for item in items",
        expect![[r#"
        MultiLine "return sorted(item.name for item in items)"
        def names(items):
            return sorted(item.name for item in items)
    "#]],
    );
    // Cursor mid-identifier at the end of a line.
    check_post(
        Py,
        "def f(values):\n    return len(val$0\n",
        "ues)\n\n\ndef g():\n",
        expect![[r#"
        SingleLine "ues)"
        def f(values):
            return len(values)
    "#]],
    );
    // Non-ASCII identifiers and strings.
    check_post(
        Py,
        "def grüße(名前):\n    $0\n",
        "return f\"こんにちは、{名前} 👋\"\n\n\ndef other():\n    pass\n",
        expect![[r#"
        MultiLine "return f\"こんにちは、{名前} 👋\""
        def grüße(名前):
            return f"こんにちは、{名前} 👋"
    "#]],
    );
    // Cursor at the end of a file without a trailing newline, inside a method.
    check_post(Py, "class Stack:\n    def pop(self):\n        $0", "if not self.items:\n            raise IndexError('pop from empty stack')\n        return self.items.pop()\n\n    def peek(self):\n        return self.items[-1]\n", expect![[r#"
        MultiLine "if not self.items:\n            raise IndexError('pop from empty stack')\n        return self.items.pop()"
        class Stack:
            def pop(self):
                if not self.items:
                    raise IndexError('pop from empty stack')
                return self.items.pop()"#]]);
}

#[test]
fn post_javascript_typescript() {
    // The model repeats the `));` already after the cursor.
    check_post(
        Js,
        "console.log(add(1, $0));\n",
        "2));\n",
        expect![[r#"
        SingleLine "2"
        console.log(add(1, 2));
    "#]],
    );
    check_post(
        Js,
        "const xs = items.map((x) => $0);\n",
        "x * 2);\nconsole.log(xs);",
        expect![[r#"
        SingleLine "x * 2"
        const xs = items.map((x) => x * 2);
    "#]],
    );
    // Runs past the closing brace into the next function.
    check_post(
        Js,
        "function f(a) {\n  $0\n}\n\nfunction g() {}\n",
        "if (a) {\n    return 1;\n  }\n  return 0;\n}\n\nfunction h() {\n  return 2;\n}\n",
        expect![[r#"
        MultiLine "if (a) {\n    return 1;\n  }\n  return 0;"
        function f(a) {
          if (a) {
            return 1;
          }
          return 0;
        }

        function g() {}
    "#]],
    );
    // The file lacks the closing brace: keep the model's.
    check_post(
        Js,
        "function f(a) {\n  $0",
        "return a * 2;\n}\n\nfunction g() {}\n",
        expect![[r#"
        MultiLine "return a * 2;\n}"
        function f(a) {
          return a * 2;
        }"#]],
    );
    // Top level: one function only.
    check_post(
        Js,
        "$0",
        "function add(a, b) {\n  return a + b;\n}\n\nfunction sub(a, b) {\n  return a - b;\n}\n",
        expect![[r#"
        MultiLine "function add(a, b) {\n  return a + b;\n}"
        function add(a, b) {
          return a + b;
        }"#]],
    );
    // Callback body; the `});` is already there.
    check_post(
        Js,
        "app.get('/', (req, res) => {\n  $0\n});\n",
        "res.send('ok');\n});\n\napp.listen(3000);\n",
        expect![[r#"
        MultiLine "res.send('ok');"
        app.get('/', (req, res) => {
          res.send('ok');
        });
    "#]],
    );
    // Braces inside strings do not count.
    check_post(
        Js,
        "function f() {\n  $0\n}\n",
        "console.log('}');\n  return '{';\n}\n",
        expect![[r#"
        MultiLine "console.log('}');\n  return '{';"
        function f() {
          console.log('}');
          return '{';
        }
    "#]],
    );
    // TypeScript: truncated output gets its block closed.
    check_post(
        Ts,
        "function check(x: number): boolean {\n  $0\n}\n",
        "if (x > 0) {\n    return true;",
        expect![[r#"
        MultiLine "if (x > 0) {\n    return true;\n  }"
        function check(x: number): boolean {
          if (x > 0) {
            return true;
          }
        }
    "#]],
    );
    check_post(Ts, "class Point {\n  constructor(public x: number, public y: number) {}\n  $0\n}\n", "norm(): number {\n    return Math.hypot(this.x, this.y);\n  }\n\n  toString(): string {\n    return `${this.x},${this.y}`;\n  }\n}\n", expect![[r#"
        MultiLine "norm(): number {\n    return Math.hypot(this.x, this.y);\n  }"
        class Point {
          constructor(public x: number, public y: number) {}
          norm(): number {
            return Math.hypot(this.x, this.y);
          }
        }
    "#]]);
    check_post(
        Ts,
        "interface User {\n  id: number;\n  $0\n}\n",
        "name: string;\n  email: string;\n}\n\nexport function getUser(id: number): User {\n",
        expect![[r#"
        MultiLine "name: string;\n  email: string;"
        interface User {
          id: number;
          name: string;
          email: string;
        }
    "#]],
    );
    // TSX: the closing tag is already after the cursor.
    check_post(
        Tsx,
        "const B = () => <button onClick={inc}>$0</button>;\n",
        "Increment</button>;\n",
        expect![[r#"
        SingleLine "Increment"
        const B = () => <button onClick={inc}>Increment</button>;
    "#]],
    );
    // Model wrote 4-space indentation in a 2-space file.
    check_post(
        Js,
        "function f(xs) {\n  let n = 0;\n  $0\n}\n",
        "for (const x of xs) {\n      console.log(x);\n  }\n}\n",
        expect![[r#"
        MultiLine "for (const x of xs) {\n    console.log(x);\n  }"
        function f(xs) {
          let n = 0;
          for (const x of xs) {
            console.log(x);
          }
        }
    "#]],
    );
}

#[test]
fn post_rust() {
    // Body that runs past the closing brace.
    check_post(
        Rs,
        "fn add(a: i32, b: i32) -> i32 {\n    $0\n}\n",
        "a + b\n}\n\nfn sub(a: i32, b: i32) -> i32 {\n    a - b\n}\n",
        expect![[r#"
        MultiLine "a + b"
        fn add(a: i32, b: i32) -> i32 {
            a + b
        }
    "#]],
    );
    check_post(
        Rs,
        "fn main() {\n    let v = vec![1, 2, $0];\n}\n",
        "3];\n    let w = 4;",
        expect![[r#"
        SingleLine "3"
        fn main() {
            let v = vec![1, 2, 3];
        }
    "#]],
    );
    check_post(
        Rs,
        "fn f(x: Option<u8>) -> u8 {\n    match x {\n        $0\n    }\n}\n",
        "Some(v) => v,\n        None => 0,\n    }\n}\n",
        expect![[r#"
        MultiLine "Some(v) => v,\n        None => 0,"
        fn f(x: Option<u8>) -> u8 {
            match x {
                Some(v) => v,
                None => 0,
            }
        }
    "#]],
    );
    // Char literals and lifetimes are not brackets.
    check_post(Rs, "fn depth<'a>(s: &'a str) -> i32 {\n    let mut depth = 0;\n    for c in s.chars() {\n        $0\n    }\n    depth\n}\n", "if c == '{' {\n            depth += 1;\n        }\n    }\n    depth\n}\n", expect![[r#"
        MultiLine "if c == '{' {\n            depth += 1;\n        }"
        fn depth<'a>(s: &'a str) -> i32 {
            let mut depth = 0;
            for c in s.chars() {
                if c == '{' {
                    depth += 1;
                }
            }
            depth
        }
    "#]]);
    // A new item at the top level.
    check_post(
        Rs,
        "struct Meters(f64);\n\n$0",
        "impl Meters {\n    fn value(&self) -> f64 {\n        self.0\n    }\n}\n\nimpl Feet {\n",
        expect![[r#"
        MultiLine "impl Meters {\n    fn value(&self) -> f64 {\n        self.0\n    }\n}"
        struct Meters(f64);

        impl Meters {
            fn value(&self) -> f64 {
                self.0
            }
        }"#]],
    );
    // Mid-line with code after the cursor: the model re-wrote the `?;`.
    check_post(
        Rs,
        "fn r() -> io::Result<()> {\n    let f = File::open($0)?;\n}\n",
        "\"config.toml\")?;\n    Ok(())",
        expect![[r#"
        SingleLine "\"config.toml\""
        fn r() -> io::Result<()> {
            let f = File::open("config.toml")?;
        }
    "#]],
    );
    // Half-typed line at the end of the line, single line.
    check_post(
        Rs,
        "fn f(v: &[u8]) -> usize {\n    v.iter().fil$0\n}\n",
        "ter(|b| **b > 0).count()\n}\n",
        expect![[r#"
        SingleLine "ter(|b| **b > 0).count()"
        fn f(v: &[u8]) -> usize {
            v.iter().filter(|b| **b > 0).count()
        }
    "#]],
    );
}

#[test]
fn post_more() {
    // Tab-indented Rust, model writes spaces.
    check_post(
        Rs,
        "fn main() {\n\tlet xs = vec![1, 2];\n\t$0\n}\n",
        "for x in &xs {\n        println!(\"{x}\");\n    }\n}\n",
        expect![[r#"
        MultiLine "for x in &xs {\n\t\tprintln!(\"{x}\");\n\t}"
        fn main() {
        	let xs = vec![1, 2];
        	for x in &xs {
        		println!("{x}");
        	}
        }
    "#]],
    );
    // Generic arguments mid-line.
    check_post(
        Ts,
        "const m = new Map<string, $0>();\n",
        "number>();\nm.set('a', 1);",
        expect![[r#"
        SingleLine "number"
        const m = new Map<string, number>();
    "#]],
    );
    // Errors before and after the cursor.
    check_post(
        Js,
        "function a( {\n}\n\nfunction b(x) {\n  $0\n}\n\nconst c = [1, 2;\n",
        "return x + 1;\n}\n\nfunction d() {}\n",
        expect![[r#"
        MultiLine "return x + 1;"
        function a( {
        }

        function b(x) {
          return x + 1;
        }

        const c = [1, 2;
    "#]],
    );
    // In a docstring: one line.
    check_post(
        Py,
        "def f(x):\n    \"\"\"Return the$0\n    \"\"\"\n",
        " square of x.\n    \"\"\"\n    return x * x\n",
        expect![[r#"
        SingleLine " square of x."
        def f(x):
            """Return the square of x.
            """
    "#]],
    );
    // An argument list the model closes and then goes on.
    check_post(
        Py,
        "result = compute($0)\n",
        "data, key=lambda r: r[0])\nprint(result)\n",
        expect![[r#"
        SingleLine "data, key=lambda r: r[0]"
        result = compute(data, key=lambda r: r[0])
    "#]],
    );
    // Model output that is only whitespace.
    check_post(
        Go,
        "package main\n\nfunc main() {\n\t$0\n}\n",
        "\n\n",
        expect![[r#"
        MultiLine ""
        package main

        func main() {
	
        }
    "#]],
    );
    // CRLF Go with the model's LF output.
    check_post(
        Go,
        "package main\r\n\r\nfunc main() {\r\n\t$0\r\n}\r\n",
        "x := 1\n\tfmt.Println(x)\n}\n",
        expect![[r#"
        MultiLine "x := 1\r\n\tfmt.Println(x)"
        package main␍
        ␍
        func main() {␍
        	x := 1␍
        	fmt.Println(x)␍
        }␍
    "#]],
    );
}

#[test]
fn post_go() {
    check_post(
        Go,
        "package main\n\nfunc add(a, b int) int {\n\t$0\n}\n",
        "return a + b\n}\n\nfunc sub(a, b int) int {\n\treturn a - b\n}\n",
        expect![[r#"
        MultiLine "return a + b"
        package main

        func add(a, b int) int {
        	return a + b
        }
    "#]],
    );
    // Tab file, model indents with spaces.
    check_post(
        Go,
        "package main\n\nfunc read(p string) error {\n\tf, err := os.Open(p)\n\t$0\n}\n",
        "if err != nil {\n        return err\n    }\n    defer f.Close()\n    return nil\n}\n",
        expect![[r#"
        MultiLine "if err != nil {\n\t\treturn err\n\t}\n\tdefer f.Close()\n\treturn nil"
        package main

        func read(p string) error {
        	f, err := os.Open(p)
        	if err != nil {
        		return err
        	}
        	defer f.Close()
        	return nil
        }
    "#]],
    );
    // Top level: one declaration.
    check_post(
        Go,
        "package main\n\n$0",
        "type Stack struct {\n\titems []int\n}\n\nfunc (s *Stack) Push(v int) {\n",
        expect![[r#"
        MultiLine "type Stack struct {\n\titems []int\n}"
        package main

        type Stack struct {
        	items []int
        }"#]],
    );
    // Syntax errors before and after the cursor.
    check_post(
        Go,
        "package main\n\nfunc a( {\n}\n\nfunc b() int {\n\t$0\n}\n\nfunc c() ]\n",
        "return 42\n}\n",
        expect![[r#"
        MultiLine "return 42"
        package main

        func a( {
        }

        func b() int {
        	return 42
        }

        func c() ]
    "#]],
    );
    check_post(
        Go,
        "package main\n\nfunc main() {\n\tfmt.Println($0)\n}\n",
        "\"hello, 世界\")\n}",
        expect![[r#"
        SingleLine "\"hello, 世界\""
        package main

        func main() {
        	fmt.Println("hello, 世界")
        }
    "#]],
    );
    check_post(
        Go,
        "package main\n\nfunc main() {\n\tgo func() {\n\t\t$0\n\t}()\n}\n",
        "done <- true\n\t}()\n\t<-done\n}\n",
        expect![[r#"
        MultiLine "done <- true"
        package main

        func main() {
        	go func() {
        		done <- true
        	}()
        }
    "#]],
    );
}

// ---------------------------------------------------------------- syntax check

#[test]
fn syntax_checks() {
    check_syntax(
        Py,
        "def add(a, b):\n    $0\n",
        "return a + b",
        expect!["before 0e 0m, after 0e 0m, delta 0"],
    );
    check_syntax(
        Py,
        "def add(a, b):\n    $0\n",
        "return a +",
        expect!["before 0e 0m, after 1e 0m, delta 1"],
    );
    check_syntax(
        Py,
        "def add(a, b):\n    return (a$0\n",
        " + b)",
        expect!["before 1e 0m, after 0e 0m, delta -1"],
    );
    check_syntax(
        Rs,
        "fn f() -> i32 {\n    $0\n}\n",
        "let x = (1 + 2;\n    x",
        expect!["before 0e 0m, after 0e 1m, delta 1"],
    );
    check_syntax(
        Rs,
        "fn f() -> i32 {\n    $0\n}\n",
        "1 + 2",
        expect!["before 0e 0m, after 0e 0m, delta 0"],
    );
    check_syntax(
        Js,
        "function f() {\n  $0\n}\nfunction broken( {\n",
        "return [1, 2, 3].map((x) => x * 2);",
        expect!["before 0e 0m, after 0e 0m, delta 0"],
    );
    check_syntax(
        Ts,
        "function f(): number {\n  return $0\n}\n",
        "1 +* 2;",
        expect!["before 0e 0m, after 1e 0m, delta 1"],
    );
    check_syntax(
        Go,
        "package main\n\nfunc f() int {\n\t$0\n}\n",
        "return 1",
        expect!["before 0e 0m, after 0e 0m, delta 0"],
    );
    check_syntax(
        Go,
        "package main\n\nfunc f() int {\n\t$0\n}\n",
        "if x {\n\t\treturn 1",
        expect!["before 0e 0m, after 0e 1m, delta 1"],
    );
}

// ---------------------------------------------------------------- positions

#[test]
fn positions() {
    check_position(
        "$0ab$0c\n$0d$0",
        expect![[r#"
        0: Utf8(0,0) Utf16(0,0) Chars(0,0)
        2: Utf8(0,2) Utf16(0,2) Chars(0,2)
        4: Utf8(1,0) Utf16(1,0) Chars(1,0)
        5: Utf8(1,1) Utf16(1,1) Chars(1,1)
    "#]],
    );
    check_position(
        "x = \"😀$0\" $0# é\n$0",
        expect![[r#"
        9: Utf8(0,9) Utf16(0,7) Chars(0,6)
        11: Utf8(0,11) Utf16(0,9) Chars(0,8)
        16: Utf8(1,0) Utf16(1,0) Chars(1,0)
    "#]],
    );
    check_position(
        "名前$0 = 1\r\n$0b$0\r\n$0",
        expect![[r#"
        6: Utf8(0,6) Utf16(0,2) Chars(0,2)
        12: Utf8(1,0) Utf16(1,0) Chars(1,0)
        13: Utf8(1,1) Utf16(1,1) Chars(1,1)
        15: Utf8(2,0) Utf16(2,0) Chars(2,0)
    "#]],
    );
    check_position(
        "a\r$0b\rc$0",
        expect![[r#"
        2: Utf8(1,0) Utf16(1,0) Chars(1,0)
        5: Utf8(2,1) Utf16(2,1) Chars(2,1)
    "#]],
    );
    check_position(
        "$0",
        expect![[r#"
        0: Utf8(0,0) Utf16(0,0) Chars(0,0)
    "#]],
    );
}

#[test]
fn position_errors_and_clamping() {
    let text = "a😀b\r\nc";
    let utf16 = PositionEncoding::Utf16;
    let errors: Vec<String> = [
        position_to_offset(text, Position::new(0, 2), utf16),
        position_to_offset(text, Position::new(0, 9), utf16),
        position_to_offset(text, Position::new(5, 0), utf16),
        position_to_offset(text, Position::new(2, 0), utf16),
        offset_to_position(text, 2, utf16).map(|p| p.character as usize),
        offset_to_position(text, 99, utf16).map(|p| p.character as usize),
    ]
    .iter()
    .map(|r| format!("{r:?}"))
    .collect();
    expect![[r#"
        Err(InsideCharacter { line: 0, character: 2 })
        Err(CharacterOutOfRange { line: 0, character: 9, line_len: 4 })
        Err(LineOutOfRange { line: 5, n_lines: 2 })
        Ok(9)
        Err(NotCharBoundary { offset: 2 })
        Err(OffsetOutOfRange { offset: 99, len: 9 })"#]]
    .assert_eq(&errors.join("\n"));
    let clamped: Vec<usize> = [(0, 2), (0, 9), (5, 0), (1, 7)]
        .iter()
        .map(|&(l, c)| position_to_offset_clamped(text, Position::new(l, c), utf16))
        .collect();
    expect!["[1, 6, 9, 9]"].assert_eq(&format!("{clamped:?}"));
    // A character on line 0 after the CR of CRLF maps to the end of the content.
    assert_eq!(offset_to_position(text, 7, utf16), Ok(Position::new(0, 4)));
}

// ---------------------------------------------------------------- documents

#[test]
fn incremental_edits_match_a_fresh_parse() {
    let edits: &[(&str, usize, usize, &str)] = &[
        ("def f():\n    return 1\n", 20, 21, "2 + 3"),
        ("def f():\n    return 1\n", 9, 9, "    x = 'é😀'\n"),
        ("fn main() {\n    let x = 1;\n}\n", 11, 11, "\n    foo(\n"),
        ("fn main() {}\n", 0, 13, ""),
        ("const a = 1;\r\nconst b = 2;\r\n", 14, 14, "let c = ["),
        ("package main\n", 12, 12, "\n\nfunc main() {}\n"),
        ("é", 1, 99, "x"),
    ];
    for &(text, start, end, new_text) in edits {
        let lang = if text.starts_with("fn") {
            Rs
        } else if text.starts_with("const") {
            Js
        } else if text.starts_with("package") {
            Go
        } else {
            Py
        };
        let mut doc = ParsedDocument::new(text.to_string(), lang);
        doc.apply_edit(start, end, new_text);
        let fresh = ParsedDocument::new(doc.text().to_string(), lang);
        let sexp = |d: &ParsedDocument| d.tree().map(|t| t.root_node().to_sexp());
        assert_eq!(
            sexp(&doc),
            sexp(&fresh),
            "edit {start}..{end} {new_text:?} of {text:?}"
        );
    }
    let mut doc = ParsedDocument::new("é".to_string(), Py);
    doc.apply_edit(1, 99, "x");
    assert_eq!(doc.text(), "x");
}

#[test]
fn languages() {
    let got: Vec<Option<Language>> = [
        "a/b.py",
        "x.rs",
        "C:\\w\\app.jsx",
        "m.ts",
        "v.TSX",
        "main.go",
        "Makefile",
        ".py",
    ]
    .iter()
    .map(|p| Language::from_path(p))
    .chain(
        [
            "python",
            "rust",
            "javascript",
            "javascriptreact",
            "typescript",
            "typescriptreact",
            "go",
            "c",
        ]
        .iter()
        .map(|id| Language::from_lsp_id(id)),
    )
    .collect();
    expect!["[Some(Python), Some(Rust), Some(JavaScript), Some(TypeScript), Some(Tsx), Some(Go), None, Some(Python), Some(Python), Some(Rust), Some(JavaScript), Some(JavaScript), Some(TypeScript), Some(Tsx), Some(Go), None]"].assert_eq(&format!("{got:?}"));
}

/// Every byte offset (char boundary or not, and past the end) of awkward
/// documents, through every entry point: nothing panics, and the prompt
/// always ends where the cursor was clamped to.
#[test]
fn never_panics_on_any_offset() {
    let docs: &[(Language, &str)] = &[
        (Py, "def f(名前):\r\n    s = \"😀 \\\"x\n    # é\r\n\tif (:\n"),
        (Rs, "fn f<'a>(x: &'a str) -> char {\n    let c = '{';\n    /* 😀 */ x.chars().nth(0).unwrap_or('}')\n"),
        (Js, "const s = `a ${b} 😀`;\nfunction (x { return [1, 2; }\n// ü"),
        (Ts, "class A<T> { m(x: T): T { return x } }\r\ninterface I { a: number\n"),
        (Tsx, "export const C = () => <div className=\"x\">{items.map(i => <b>{i}</b>)}\n"),
        (Go, "package main\n\nfunc main() {\n\ts := \"世界\"\n\tfor i := range s {\n"),
        (Py, ""),
        (Go, "\n\n\n"),
    ];
    let raws = [
        "x)\n  y]\n}\n\treturn 1;\n}",
        "😀\"\n'",
        "",
        "\n\n",
        "<|endoftext|>",
    ];
    let cfg = small_config();
    let neighbours = [Neighbour {
        path: "n".to_string(),
        text: "def f(名前):\n    s = 1\n\n\n😀".to_string(),
    }];
    for &(lang, text) in docs {
        let doc = ParsedDocument::new(text.to_string(), lang);
        for offset in 0..=text.len() + 2 {
            let p = build_prompt(&doc, offset, "x", &neighbours, &cfg, &ApproxTokenCounter);
            assert!(doc.text()[..p.scope.cursor].ends_with(&p.prefix) || !p.notes.is_empty());
            assert!(doc.text()[p.scope.cursor..].starts_with(&p.suffix));
            assert!(ApproxTokenCounter.count(&p.prefix) <= cfg.max_prefix_tokens);
            assert!(ApproxTokenCounter.count(&p.suffix) <= cfg.max_suffix_tokens);
            for raw in raws {
                for mode in [CompletionMode::SingleLine, CompletionMode::MultiLine] {
                    let out = postprocess(&doc, offset, raw, mode);
                    if mode == CompletionMode::SingleLine {
                        assert!(!out.contains('\n'), "{out:?}");
                    }
                }
            }
            let _ = syntax_check(&doc, offset, "x = (");
            let _ = position::offset_to_position(text, offset, PositionEncoding::Utf16);
        }
    }
}

#[test]
fn documents_can_move_to_worker_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ParsedDocument>();
    assert_send_sync::<Prompt>();
}

/// Minified code: one line far over the budget on both sides of the cursor.
#[test]
fn prompt_minified_line() {
    let line: String = (0..2000).map(|i| format!("var v{i}=f({i}); ")).collect();
    let text = format!("{line}$0{line}");
    let (text, cursor) = fixture(&text);
    let doc = ParsedDocument::new(text, Js);
    let cfg = small_config();
    let p = build_prompt(&doc, cursor, "min.js", &[], &cfg, &ApproxTokenCounter);
    assert!(ApproxTokenCounter.count(&p.prefix) <= cfg.max_prefix_tokens);
    assert!(ApproxTokenCounter.count(&p.suffix) <= cfg.max_suffix_tokens);
    expect![[r#"
        "var v1994=f(1994); var v1995=f(1995); var v1996=f(1996); var v1997=f(1997); var v1998=f(1998); var v1999=f(1999); "
        "var v0=f(0); var v1=f(1); var v2=f(2); var"
        prefix: the cursor's line alone is over budget; cut inside it
        suffix: the rest of the cursor's line alone is over budget; cut inside it"#]].assert_eq(&format!("{:?}\n{:?}\n{}", p.prefix, p.suffix, p.notes.join("\n")));
}

// ---------------------------------------------------------------- prompt stability while typing

/// Deterministic pseudo-random numbers (an LCG), for generated fixtures.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }

    fn pick<'a>(&mut self, words: &[&'a str]) -> &'a str {
        words[self.next(words.len())]
    }
}

const NOUNS: &[&str] = &[
    "order", "user", "invoice", "account", "record", "item", "payment", "session", "report",
    "customer", "ledger", "batch", "entry", "token", "request",
];
const VERBS: &[&str] = &[
    "load", "parse", "merge", "render", "validate", "collect", "update", "compute", "filter",
    "group", "export", "resolve", "apply", "build", "check",
];

/// A Python module of `n_items` top-level items of varied shape and length:
/// classes with docstrings and methods, functions with loops, comprehensions,
/// multi-line calls and literals, comments.
fn realistic_python(seed: u64, n_items: usize) -> String {
    let mut r = Lcg(seed);
    let mut out = String::from(
        "import json\nimport logging\nfrom collections import defaultdict\nfrom dataclasses import dataclass, field\nfrom typing import Dict, Iterable, List, Optional\n\nlog = logging.getLogger(__name__)\n\nMAX_RETRIES = 3\n\n\n",
    );
    for i in 0..n_items {
        let noun = r.pick(NOUNS);
        let verb = r.pick(VERBS);
        let other = r.pick(NOUNS);
        match r.next(6) {
            5 => {
                out.push_str(&format!("def setup_{noun}s_{i}(app):\n"));
                for k in 0..40 + r.next(80) {
                    out.push_str(&format!(
                        "    app.register(\"{}_{k}\", {}_{}, retries={})\n",
                        r.pick(NOUNS),
                        r.pick(VERBS),
                        r.pick(NOUNS),
                        r.next(5)
                    ));
                }
                out.push_str("\n\n");
            }
            4 => {
                out.push_str(&format!(
                    "def {verb}_{noun}_pipeline_{i}(config: dict, {noun}s: List[dict]) -> dict:\n    \"\"\"Run every stage of the {noun} pipeline.\"\"\"\n    state = {{\"done\": 0, \"failed\": []}}\n"
                ));
                for k in 0..8 + r.next(25) {
                    let stage = r.pick(VERBS);
                    out.push_str(&format!(
                        "    # Stage {k}: {stage} the {other}s.\n    if config.get(\"{stage}_{k}\", True):\n        for {noun} in {noun}s:\n            result = {stage}_{other}({noun}, limit={})\n            if not result:\n                state[\"failed\"].append(({k}, {noun}[\"id\"]))\n        state[\"done\"] += 1\n",
                        r.next(100)
                    ));
                    for j in 0..r.next(4) {
                        out.push_str(&format!(
                            "    log.debug(\"stage {k}.{j}: %d {other}s\", state[\"done\"])\n"
                        ));
                    }
                }
                out.push_str("    return state\n\n\n");
            }
            0 => {
                out.push_str(&format!(
                    "@dataclass\nclass {}{i}:\n    \"\"\"A {noun} with its {other}s.\"\"\"\n\n    name: str\n    {other}s: List[int] = field(default_factory=list)\n\n",
                    capitalize(noun)
                ));
                for m in 0..1 + r.next(3) {
                    let mverb = r.pick(VERBS);
                    out.push_str(&format!(
                        "    def {mverb}_{other}s_{m}(self, limit: int = {}) -> int:\n        \"\"\"{} the {other}s up to `limit`.\"\"\"\n        total = 0\n",
                        10 + r.next(90),
                        capitalize(mverb)
                    ));
                    for k in 0..1 + r.next(6) {
                        out.push_str(&format!(
                            "        for value in self.{other}s[:limit]:\n            if value % {} == {k}:\n                total += value\n",
                            2 + r.next(5)
                        ));
                    }
                    out.push_str("        return total\n\n");
                }
                out.push('\n');
            }
            1 => {
                out.push_str(&format!(
                    "def {verb}_{noun}s_{i}({noun}s: Iterable[dict], strict: bool = False) -> Dict[str, list]:\n    # Group the {noun}s by their {other}.\n    groups = defaultdict(list)\n    for {noun} in {noun}s:\n        key = {noun}.get(\"{other}_id\")\n        if key is None:\n            if strict:\n                raise ValueError(f\"{noun} without {other}: {{{noun}!r}}\")\n            continue\n        groups[key].append({noun})\n"
                ));
                for _ in 0..r.next(5) {
                    out.push_str(&format!(
                        "    groups = {{k: v for k, v in groups.items() if len(v) > {}}}\n",
                        r.next(4)
                    ));
                }
                out.push_str(&format!(
                    "    log.debug(\"{verb}: %d groups\", len(groups))\n    return dict(groups)\n\n\n"
                ));
            }
            2 => {
                out.push_str(&format!(
                    "def {verb}_{noun}_{i}(path: str, retries: int = MAX_RETRIES) -> Optional[dict]:\n    \"\"\"{} one {noun} from `path`, retrying on errors.\"\"\"\n    for attempt in range(retries):\n        try:\n            with open(path) as f:\n                data = json.load(f)\n            return {{\n                \"{noun}\": data[\"{noun}\"],\n                \"{other}\": data.get(\"{other}\", []),\n                \"attempt\": attempt,\n            }}\n        except (OSError, ValueError) as exc:\n            log.warning(\n                \"attempt %d for %s failed: %s\",\n                attempt,\n                path,\n                exc,\n            )\n    return None\n\n\n",
                    capitalize(verb)
                ));
            }
            _ => {
                out.push_str(&format!("{}_DEFAULTS_{i} = {{\n", noun.to_uppercase()));
                for k in 0..2 + r.next(6) {
                    out.push_str(&format!(
                        "    \"{}_{k}\": {},\n",
                        r.pick(NOUNS),
                        r.next(1000)
                    ));
                }
                out.push_str("}\n\n\n");
            }
        }
    }
    out
}

/// A Rust module of `n_items` items: structs, impls with methods, free
/// functions with matches, closures and method chains, doc comments.
fn realistic_rust(seed: u64, n_items: usize) -> String {
    let mut r = Lcg(seed);
    let mut out = String::from(
        "use std::collections::{BTreeMap, HashMap};\nuse std::fmt;\nuse std::io::{self, BufRead};\n\nconst MAX_RETRIES: usize = 3;\n\n",
    );
    for i in 0..n_items {
        let noun = r.pick(NOUNS);
        let verb = r.pick(VERBS);
        let other = r.pick(NOUNS);
        let ty = format!("{}{i}", capitalize(noun));
        match r.next(5) {
            4 => {
                out.push_str(&format!("pub fn setup_{noun}s_{i}(app: &mut App) {{\n"));
                for k in 0..40 + r.next(80) {
                    out.push_str(&format!(
                        "    app.register(\"{}_{k}\", {}_{}, {});\n",
                        r.pick(NOUNS),
                        r.pick(VERBS),
                        r.pick(NOUNS),
                        r.next(5)
                    ));
                }
                out.push_str("}\n\n");
            }
            3 => {
                out.push_str(&format!(
                    "/// Runs every stage of the {noun} pipeline.\npub fn {verb}_{noun}_pipeline_{i}(config: &HashMap<String, bool>, items: &[u64]) -> (usize, Vec<u64>) {{\n    let mut done = 0;\n    let mut failed = Vec::new();\n"
                ));
                for k in 0..8 + r.next(25) {
                    let stage = r.pick(VERBS);
                    out.push_str(&format!(
                        "    // Stage {k}: {stage} the {other}s.\n    if config.get(\"{stage}_{k}\").copied().unwrap_or(true) {{\n        for &item in items {{\n            if !{stage}_{other}(item, {}) {{\n                failed.push(item);\n            }}\n        }}\n        done += 1;\n    }}\n",
                        r.next(100)
                    ));
                    for j in 0..r.next(4) {
                        out.push_str(&format!(
                            "    let {other}_{k}_{j} = failed.len() + done * {j};\n"
                        ));
                    }
                }
                out.push_str("    (done, failed)\n}\n\n");
            }
            0 => {
                out.push_str(&format!(
                    "/// A {noun} and its {other}s.\n#[derive(Debug, Clone, Default)]\npub struct {ty} {{\n    pub name: String,\n    pub {other}s: Vec<u64>,\n}}\n\nimpl {ty} {{\n"
                ));
                for m in 0..1 + r.next(3) {
                    let mverb = r.pick(VERBS);
                    out.push_str(&format!(
                        "    /// {} the {other}s below `limit`.\n    pub fn {mverb}_{other}s_{m}(&self, limit: u64) -> u64 {{\n        let mut total = 0;\n",
                        capitalize(mverb)
                    ));
                    for k in 0..1 + r.next(5) {
                        out.push_str(&format!(
                            "        for value in self.{other}s.iter().filter(|v| **v < limit) {{\n            if value % {} == {k} {{\n                total += value;\n            }}\n        }}\n",
                            2 + r.next(5)
                        ));
                    }
                    out.push_str("        total\n    }\n\n");
                }
                out.push_str("}\n\n");
            }
            1 => {
                out.push_str(&format!(
                    "pub fn {verb}_{noun}s_{i}(input: &str) -> io::Result<HashMap<String, Vec<String>>> {{\n    // Group the {noun}s by their {other}.\n    let mut groups: HashMap<String, Vec<String>> = HashMap::new();\n    for line in input.as_bytes().lines() {{\n        let line = line?;\n        let (key, value) = match line.split_once('=') {{\n            Some((k, v)) => (k.trim().to_string(), v.trim().to_string()),\n            None => continue,\n        }};\n        groups.entry(key).or_default().push(value);\n    }}\n"
                ));
                for _ in 0..r.next(4) {
                    out.push_str(&format!(
                        "    groups.retain(|_, values| values.len() > {});\n",
                        r.next(4)
                    ));
                }
                out.push_str("    Ok(groups)\n}\n\n");
            }
            _ => {
                out.push_str(&format!(
                    "impl fmt::Display for {} {{\n    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {{\n        let counts: BTreeMap<&str, usize> = self\n            .{other}s\n            .iter()\n            .map(|s| (s.as_str(), s.len()))\n            .collect();\n        for attempt in 0..MAX_RETRIES {{\n            if attempt > {} {{\n                break;\n            }}\n        }}\n        write!(f, \"{{}} ({{}} {other}s)\", self.name, counts.len())\n    }}\n}}\n\n",
                    capitalize(noun),
                    r.next(3)
                ));
            }
        }
    }
    out
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next().map_or(String::new(), |f| {
        f.to_uppercase().collect::<String>() + c.as_str()
    })
}

const TYPED_PYTHON: &str = "def summarize_orders(orders, threshold=10):\n    \"\"\"Group orders by customer and keep the big ones.\"\"\"\n    totals = {}\n    for order in orders:\n        key = order.customer_id\n        totals[key] = totals.get(key, 0) + order.amount\n    big = [k for k, v in totals.items() if v > threshold]\n    report = []\n    for key in sorted(big):\n        report.append(f\"{key}: {totals[key]:.2f}\")\n    return \"\\n\".join(report)\n\n\ndef count_sessions(sessions):\n    seen = set()\n    for session in sessions:\n        if session.user not in seen:\n            seen.add(session.user)\n    return len(seen)\n\n\n";

const TYPED_PYTHON_METHOD: &str = "    def refund(self, amount: int) -> bool:\n        \"\"\"Give `amount` back if the ledger allows it.\"\"\"\n        if amount <= 0:\n            return False\n        balance = sum(self.entries)\n        if balance < amount:\n            log.info(\"refund of %d refused\", amount)\n            return False\n        self.entries.append(-amount)\n        return True\n\n";

const TYPED_RUST: &str = "/// Adds the counts of `b` to those of `a`.\npub fn merge_counts(a: &HashMap<String, usize>, b: &HashMap<String, usize>) -> HashMap<String, usize> {\n    let mut out = a.clone();\n    for (key, value) in b {\n        *out.entry(key.clone()).or_insert(0) += value;\n    }\n    out.retain(|_, v| *v > 0);\n    out\n}\n\nfn largest(values: &[u64]) -> Option<u64> {\n    let mut best = None;\n    for &v in values {\n        if best.is_none_or(|b| v > b) {\n            best = Some(v);\n        }\n    }\n    best\n}\n\n";

const TYPED_PYTHON_STATEMENTS: &str = "    # Stage extra: count the kinds.\n    totals = {}\n    for item in items:\n        key = item.get(\"kind\", \"other\")\n        totals[key] = totals.get(key, 0) + 1\n    if len(totals) > 3:\n        log.info(\"many kinds: %s\", sorted(totals))\n    state[\"totals\"] = totals\n";

const TYPED_RUST_STATEMENTS: &str = "    // Stage extra: count the kinds.\n    let mut totals: HashMap<u64, usize> = HashMap::new();\n    for &item in items {\n        *totals.entry(item % 7).or_insert(0) += 1;\n    }\n    if totals.len() > 3 {\n        done += totals.len();\n    }\n";

/// What one typing run did to the prompt.
#[derive(Debug, Default)]
struct TypingStats {
    steps: usize,
    /// Steps where the prefix, up to the cursor's line, is not the previous
    /// one's (a KV-cache miss before the cursor's line).
    start_changes: usize,
    /// Steps where the prefix is not exactly the previous one plus the typed char.
    not_append: usize,
    suffix_changes: usize,
    snippet_changes: usize,
    /// Snippet changes at steps that typed something other than a newline.
    snippet_changes_mid_line: usize,
    max_tokens: usize,
    mean_use: f64,
}

/// Type `typed` one char at a time at `at`, building the prompt after each.
fn simulate_typing(
    lang: Language,
    text: &str,
    at: usize,
    typed: &str,
    neighbours: &[Neighbour],
    cfg: &PromptConfig,
) -> TypingStats {
    let counter = ApproxTokenCounter;
    let mut doc = ParsedDocument::new(text.to_string(), lang);
    let mut cursor = at;
    let mut stats = TypingStats::default();
    let mut prev = build_prompt(&doc, cursor, "cur", neighbours, cfg, &counter);
    let mut use_sum = 0.0;
    for ch in typed.chars() {
        let mut buf = [0u8; 4];
        let s = ch.encode_utf8(&mut buf);
        doc.apply_edit(cursor, cursor, s);
        cursor += s.len();
        let p = build_prompt(&doc, cursor, "cur", neighbours, cfg, &counter);
        let tokens = counter.count(&p.prefix);
        stats.steps += 1;
        stats.max_tokens = stats.max_tokens.max(tokens);
        use_sum += tokens as f64 / cfg.max_prefix_tokens as f64;
        let head = &prev.prefix[..prev.prefix.rfind('\n').map_or(0, |i| i + 1)];
        if !p.prefix.starts_with(head) {
            stats.start_changes += 1;
        }
        if p.prefix != format!("{}{ch}", prev.prefix) {
            stats.not_append += 1;
        }
        if p.suffix != prev.suffix {
            stats.suffix_changes += 1;
        }
        if p.snippets != prev.snippets {
            stats.snippet_changes += 1;
            if ch != '\n' {
                stats.snippet_changes_mid_line += 1;
            }
        }
        prev = p;
    }
    stats.mean_use = use_sum / stats.steps.max(1) as f64;
    stats
}

/// Typing a function at the end or in the middle of a long file keeps the
/// prompt before the cursor's line the same for long stretches: the KV cache
/// of the previous prompt stays usable on almost every keystroke.
#[test]
fn prefix_stable_while_typing() {
    let cfg = PromptConfig::default();
    let py = realistic_python(7, 30);
    let rs = realistic_rust(11, 30);
    let neighbours = vec![
        Neighbour {
            path: "other.py".to_string(),
            text: realistic_python(3, 12),
        },
        Neighbour {
            path: "other.rs".to_string(),
            text: realistic_rust(5, 12),
        },
    ];
    assert!(ApproxTokenCounter.count(&py) > 3000 * 2, "{}", py.len());
    assert!(ApproxTokenCounter.count(&rs) > 3000 * 2, "{}", rs.len());
    // Where to type: the end, before a top-level item in the middle, and
    // (Python) a new method inside a class in the middle.
    let middle_item = |text: &str, lead: &str| {
        let from = text.len() / 2;
        from + text[from..].find(lead).unwrap() + 1
    };
    let py_method_at = {
        let from = py.len() / 2;
        let class = from + py[from..].find("\nclass ").unwrap();
        class + py[class..].find("\n\n    def ").unwrap() + 2
    };
    // The end of the body of a long function.
    let body_end = |text: &str, name: &str, last: &str| {
        let from = text.len() / 2;
        let f = from + text[from..].find(name).unwrap();
        f + text[f..].find(last).unwrap()
    };
    let runs: Vec<(&str, Language, &str, usize, &str)> = vec![
        (
            "py flat",
            Py,
            &py,
            body_end(&py, "def setup_", "\n\n\n"),
            TYPED_PYTHON_STATEMENTS,
        ),
        (
            "rs flat",
            Rs,
            &rs,
            body_end(&rs, "pub fn setup_", "\n}\n"),
            TYPED_RUST_STATEMENTS,
        ),
        (
            "py body",
            Py,
            &py,
            body_end(&py, "_pipeline_", "\n    return state\n"),
            TYPED_PYTHON_STATEMENTS,
        ),
        (
            "rs body",
            Rs,
            &rs,
            body_end(&rs, "_pipeline_", "\n    (done, failed)\n"),
            TYPED_RUST_STATEMENTS,
        ),
        ("py end", Py, &py, py.len(), TYPED_PYTHON),
        (
            "py middle",
            Py,
            &py,
            middle_item(&py, "\n\n\ndef "),
            TYPED_PYTHON,
        ),
        ("py method", Py, &py, py_method_at, TYPED_PYTHON_METHOD),
        ("rs end", Rs, &rs, rs.len(), TYPED_RUST),
        (
            "rs middle",
            Rs,
            &rs,
            middle_item(&rs, "\n\npub fn "),
            TYPED_RUST,
        ),
    ];
    // Each change of the start is a jump to a later candidate; candidates
    // lie a step apart and a start skips at most half a step past its own,
    // so a jump frees at least about half a step and typing `n` bytes makes
    // at most `2 * n / step` jumps, plus one for where the run began.
    let step = crate::prompt::prefix_step(cfg.max_prefix_tokens);
    let (mut total_steps, mut total_changes, mut total_use) = (0, 0, 0.0);
    for (name, lang, text, at, typed) in runs {
        let at = if at < text.len() { at + 1 } else { at };
        let s = simulate_typing(lang, text, at, typed, &neighbours, &cfg);
        eprintln!("{name}: {s:?}");
        assert!(s.max_tokens <= cfg.max_prefix_tokens, "{name}: {s:?}");
        let bound = (1 + 2 * typed.len() / step).min(typed.len() / 50);
        assert!(s.start_changes <= bound, "{name}: over {bound}: {s:?}");
        assert!(s.mean_use >= 0.65, "{name}: {s:?}");
        // Snippets come first in the prompt: typing within a line keeps them.
        assert_eq!(s.snippet_changes_mid_line, 0, "{name}: {s:?}");
        total_steps += s.steps;
        total_changes += s.start_changes;
        total_use += s.mean_use * s.steps as f64;
    }
    eprintln!(
        "total: {total_changes} start changes in {total_steps} steps, mean use {:.3}",
        total_use / total_steps as f64
    );
}

/// The scope the prompt's header comes from, while an edit breaks the parse:
/// docstrings and doc comments are still found, and a new top-level `def`
/// is not taken for part of the function above it.
#[test]
fn scope_while_typing_broken_code() {
    check_scope(
        Py,
        "def a():\n    return 1\n\ndef b(x$0",
        expect![[r#"
            function: -
            class: -
            place: has_errors
        "#]],
    );
    check_scope(
        Py,
        "def f(items):\n    \"\"\"Sum them.\"\"\"\n    total = 0\n    x = [1$0\n",
        expect![[r#"
            function: function_definition "f"
              signature: "def f(items):"
              doc: "\"\"\"Sum them.\"\"\""
            class: -
            place: has_errors
        "#]],
    );
    check_scope(
        Rs,
        "/// Adds.\n#[inline]\nfn f() {\n    let x = (1$0\n",
        expect![[r#"
            function: function (recovered) "f"
              signature: "fn f()"
              doc: "/// Adds."
            class: -
            place: has_errors
            note: enclosing function recovered from text (syntax errors)
        "#]],
    );
    // Every offset while a docstring and broken code are typed: no panic.
    let text = "def f():\n    \"\"\"Doc \"q\" '''\"\"\"\n    '''x\n    'y'\n    z = (\n";
    let mut doc = ParsedDocument::new(String::new(), Py);
    for (i, ch) in text.char_indices() {
        doc.apply_edit(i, i, &ch.to_string());
        for cursor in 0..=doc.text().len() {
            let _ = cursor_scope(&doc, cursor);
        }
    }
}

/// A completion that leaves the cursor's block before writing any code (a
/// test harness after a blank line) suggests nothing.
#[test]
fn post_python_nothing_when_the_completion_leaves_the_block_first() {
    let text = "def f(s):\n    \n    return s\n";
    let doc = ParsedDocument::new(text.to_string(), Language::Python);
    let cursor = text.find("    \n").unwrap() + 4;
    let raw = "\n# Check the solution\ndef check():\n    pass\n";
    assert_eq!(
        postprocess(&doc, cursor, raw, CompletionMode::MultiLine),
        ""
    );
}
