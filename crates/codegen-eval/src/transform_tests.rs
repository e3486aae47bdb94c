use super::*;
use expect_test::{expect, Expect};

fn fixture(language: Language, marked: &str) -> Fixture {
    let mut f = Fixture::from_marked(language, marked).expect("the fixture has $0");
    f.asserts = Some("assert add(2, 3) == 5\n".into());
    f
}

#[track_caller]
fn check(t: Invariance, language: Language, marked: &str, expect: Expect) {
    let f = fixture(language, marked);
    let out = match t.apply(&f) {
        Some(out) => {
            let mut s = out.marked().replace('\r', "␍");
            if out.asserts != f.asserts {
                s.push_str(&format!("--- asserts\n{}", out.asserts.unwrap_or_default()));
            }
            s
        }
        None => "(not applicable)".to_string(),
    };
    expect.assert_eq(&out);
}

#[track_caller]
fn check_dir(out: Option<Fixture>, expect: Expect) {
    expect.assert_eq(&out.map_or("(not applicable)".into(), |f| f.marked().replace('\r', "␍")));
}

const PY: &str = r#"import math


def add(a, b):
    """Return the sum of a and b."""
    total = a + b
    for i in range(3):
        total += 0 * i
    obj.a = a
    return $0
"#;

const RS: &str = "/// Sum of the squares.\n/// Empty is 0.\nfn sum_of_squares(numbers: &[i64]) -> i64 {\n    let n = numbers.len();\n    println!(\"{n}\");\n    numbers.iter().map(|x| $0).sum()\n}\n";

const JS: &str = "// Keep only the even numbers.\nfunction evens(numbers) {\n  const o = { numbers };\n  return numbers.filter((n) => $0);\n}\n";

const GO: &str = "package main\n\n// Abs returns the absolute value of x.\nfunc Abs(x int) int {\n\tif x < 0 {\n\t\t$0\n\t}\n\treturn x\n}\n";

const TS: &str = "/**\n * Greets a user.\n */\nexport function greeting(user: User): string {\n  return $0;\n}\n";

#[test]
fn rename_locals_python() {
    check(
        Invariance::RenameLocals,
        Language::Python,
        PY,
        expect![[r#"
            import math


            def add(lhs, rhs):
                """Return the sum of a and b."""
                acc = lhs + rhs
                for idx in range(3):
                    acc += 0 * idx
                obj.a = lhs
                return $0
        "#]],
    );
}

#[test]
fn rename_locals_rust_keeps_format_captures() {
    check(
        Invariance::RenameLocals,
        Language::Rust,
        RS,
        expect![[r#"
        /// Sum of the squares.
        /// Empty is 0.
        fn sum_of_squares(nums: &[i64]) -> i64 {
            let n = nums.len();
            println!("{n}");
            nums.iter().map(|val| $0).sum()
        }
    "#]],
    );
}

#[test]
fn rename_locals_js_keeps_shorthand_keys() {
    check(
        Invariance::RenameLocals,
        Language::JavaScript,
        JS,
        expect![[r#"
        // Keep only the even numbers.
        function evens(numbers) {
          const oVal = { numbers };
          return numbers.filter((num) => $0);
        }
    "#]],
    );
}

#[test]
fn rename_locals_go() {
    check(
        Invariance::RenameLocals,
        Language::Go,
        GO,
        expect![[r#"
        package main

        // Abs returns the absolute value of x.
        func Abs(val int) int {
        	if val < 0 {
        		$0
        	}
        	return val
        }
    "#]],
    );
}

#[test]
fn rename_function_follows_asserts_and_docstring_calls() {
    check(
        Invariance::RenameFunction,
        Language::Python,
        "def add(a, b):\n    \"\"\"Add.\n    >>> add(1, 2)\n    3\n    \"\"\"\n    return $0\n\nx = add(1, 1)\n",
        expect![[r#"
            def add_impl(a, b):
                """Add.
                >>> add_impl(1, 2)
                3
                """
                return $0

            x = add_impl(1, 1)
            --- asserts
            assert add_impl(2, 3) == 5
        "#]],
    );
    check(
        Invariance::RenameFunction,
        Language::Go,
        GO,
        expect![[r#"
        package main

        // AbsImpl returns the absolute value of x.
        func AbsImpl(x int) int {
        	if x < 0 {
        		$0
        	}
        	return x
        }
    "#]],
    );
}

#[test]
fn reformat_docstring() {
    check(
        Invariance::ReformatDocstring,
        Language::Python,
        PY,
        expect![[r#"
        import math


        def add(a, b):
            """
            Return the sum of a and b.
            """
            total = a + b
            for i in range(3):
                total += 0 * i
            obj.a = a
            return $0
    "#]],
    );
    check(
        Invariance::ReformatDocstring,
        Language::Python,
        "def f(x):\n    \"\"\"Summary.\n\n    More.\n    \"\"\"\n    $0\n",
        expect![[r#"
            def f(x):
                """
                Summary.

                More.
                """
                $0
        "#]],
    );
    check(
        Invariance::ReformatDocstring,
        Language::Python,
        "def f(x):\n    \"\"\"\n    Summary.\n    \"\"\"\n    $0\n",
        expect![[r#"
            def f(x):
                """Summary."""
                $0
        "#]],
    );
    check(
        Invariance::ReformatDocstring,
        Language::Rust,
        RS,
        expect![[r#"
        /**
         * Sum of the squares.
         * Empty is 0.
         */
        fn sum_of_squares(numbers: &[i64]) -> i64 {
            let n = numbers.len();
            println!("{n}");
            numbers.iter().map(|x| $0).sum()
        }
    "#]],
    );
    check(
        Invariance::ReformatDocstring,
        Language::JavaScript,
        JS,
        expect![[r#"
        /**
         * Keep only the even numbers.
         */
        function evens(numbers) {
          const o = { numbers };
          return numbers.filter((n) => $0);
        }
    "#]],
    );
    check(
        Invariance::ReformatDocstring,
        Language::TypeScript,
        TS,
        expect![[r#"
        // Greets a user.
        export function greeting(user: User): string {
          return $0;
        }
    "#]],
    );
    check(
        Invariance::ReformatDocstring,
        Language::Go,
        GO,
        expect![[r#"
        package main

        /*
         * Abs returns the absolute value of x.
         */
        func Abs(x int) int {
        	if x < 0 {
        		$0
        	}
        	return x
        }
    "#]],
    );
    check(
        Invariance::ReformatDocstring,
        Language::Python,
        "def f(x):\n    return $0\n",
        expect!["(not applicable)"],
    );
}

#[test]
fn crlf_and_indentation() {
    check(
        Invariance::CrlfLineEndings,
        Language::Go,
        GO,
        expect![[r#"
        package main␍
        ␍
        // Abs returns the absolute value of x.␍
        func Abs(x int) int {␍
        	if x < 0 {␍
        		$0␍
        	}␍
        	return x␍
        }␍
    "#]],
    );
    check(
        Invariance::SwapIndentation,
        Language::Go,
        GO,
        expect![[r#"
        package main

        // Abs returns the absolute value of x.
        func Abs(x int) int {
            if x < 0 {
                $0
            }
            return x
        }
    "#]],
    );
    check(
        Invariance::SwapIndentation,
        Language::JavaScript,
        JS,
        expect![[r#"
        // Keep only the even numbers.
        function evens(numbers) {
        	const o = { numbers };
        	return numbers.filter((n) => $0);
        }
    "#]],
    );
}

#[test]
fn unrelated_function_and_non_ascii_go_above_the_doc_comment() {
    check(
        Invariance::UnrelatedFunctionAbove,
        Language::Go,
        GO,
        expect![[r#"
        package main

        // clampPercent clamps p to 0..100.
        func clampPercent(p int) int {
        	if p < 0 {
        		return 0
        	}
        	if p > 100 {
        		return 100
        	}
        	return p
        }

        // Abs returns the absolute value of x.
        func Abs(x int) int {
        	if x < 0 {
        		$0
        	}
        	return x
        }
    "#]],
    );
    check(
        Invariance::NonAsciiNearby,
        Language::Go,
        GO,
        expect![[r#"
        package main

        var größe = "Grüße, 世界 ✓"

        // Abs returns the absolute value of x.
        func Abs(x int) int {
        	if x < 0 {
        		$0
        	}
        	return x
        }
    "#]],
    );
    check(
        Invariance::NonAsciiNearby,
        Language::Python,
        PY,
        expect![[r#"
        import math


        größe = "Grüße, 世界 ✓"


        def add(a, b):
            """Return the sum of a and b."""
            total = a + b
            for i in range(3):
                total += 0 * i
            obj.a = a
            return $0
    "#]],
    );
    check(
        Invariance::UnrelatedFunctionAbove,
        Language::TypeScript,
        TS,
        expect![[r#"
        // Clamp p to 0..100.
        function clampPercent(p: number): number {
          return Math.min(100, Math.max(0, p));
        }

        /**
         * Greets a user.
         */
        export function greeting(user: User): string {
          return $0;
        }
    "#]],
    );
    check(
        Invariance::NonAsciiNearby,
        Language::Rust,
        RS,
        expect![[r#"
        static GRÖSSE: &str = "Grüße, 世界 ✓";

        /// Sum of the squares.
        /// Empty is 0.
        fn sum_of_squares(numbers: &[i64]) -> i64 {
            let n = numbers.len();
            println!("{n}");
            numbers.iter().map(|x| $0).sum()
        }
    "#]],
    );
}

#[test]
fn directional_variants() {
    let py = fixture(Language::Python, PY);
    check_dir(
        add_example(&py, ">>> add(2, 3)\n5"),
        expect![[r#"
        import math


        def add(a, b):
            """Return the sum of a and b.

            >>> add(2, 3)
            5
            """
            total = a + b
            for i in range(3):
                total += 0 * i
            obj.a = a
            return $0
    "#]],
    );
    check_dir(
        remove_docstring(&py),
        expect![[r#"
        import math


        def add(a, b):
            total = a + b
            for i in range(3):
                total += 0 * i
            obj.a = a
            return $0
    "#]],
    );
    let rs = fixture(Language::Rust, RS);
    check_dir(
        add_example(&rs, "sum_of_squares(&[1, 2]) == 5"),
        expect![[r#"
        /// Sum of the squares.
        /// Empty is 0.
        /// sum_of_squares(&[1, 2]) == 5
        fn sum_of_squares(numbers: &[i64]) -> i64 {
            let n = numbers.len();
            println!("{n}");
            numbers.iter().map(|x| $0).sum()
        }
    "#]],
    );
    check_dir(
        remove_docstring(&rs),
        expect![[r#"
        fn sum_of_squares(numbers: &[i64]) -> i64 {
            let n = numbers.len();
            println!("{n}");
            numbers.iter().map(|x| $0).sum()
        }
    "#]],
    );
    let ts = fixture(Language::TypeScript, TS);
    check_dir(
        add_example(&ts, "greeting({name: 'Ann', age: 3})"),
        expect![[r#"
        /**
         * Greets a user.
         * greeting({name: 'Ann', age: 3})
         */
        export function greeting(user: User): string {
          return $0;
        }
    "#]],
    );
    let only_doc = fixture(Language::Python, "def f():\n    \"\"\"Doc.\"\"\"$0\n");
    check_dir(remove_docstring(&only_doc), expect!["(not applicable)"]);
}

#[test]
fn every_invariance_keeps_the_document_parsing() {
    for (language, marked) in [
        (Language::Python, PY),
        (Language::Rust, RS),
        (Language::JavaScript, JS),
        (Language::TypeScript, TS),
        (Language::Go, GO),
    ] {
        let f = fixture(language, marked);
        let before = parse(&f.document, language)
            .unwrap()
            .root_node()
            .has_error();
        for t in Invariance::ALL {
            if let Some(out) = t.apply(&f) {
                let tree = parse(&out.document, language).unwrap();
                assert_eq!(
                    tree.root_node().has_error(),
                    before,
                    "{} on {language:?}:\n{}",
                    t.name(),
                    out.marked()
                );
                assert!(out.document.is_char_boundary(out.cursor));
            }
        }
    }
}

#[test]
fn transformations_never_panic_on_broken_code() {
    let docs = [
        (Language::Rust, "/* ünterminated\nfn f(x: i32) -> i32 { $0"),
        (
            Language::Python,
            "def f(ä, b):\n    \"\"\"Döc\n    return $0",
        ),
        (Language::JavaScript, "function (a, { $0"),
        (Language::TypeScript, "$0"),
        (
            Language::Go,
            "package main\nfunc F(x int) int { if x { $0 } }}}",
        ),
        (Language::Python, "é = 1\n$0"),
    ];
    for (language, marked) in docs {
        let f = fixture(language, marked);
        for t in Invariance::ALL {
            if let Some(out) = t.apply(&f) {
                assert!(out.document.is_char_boundary(out.cursor), "{}", t.name());
            }
        }
        let _ = remove_docstring(&f);
        let _ = add_example(&f, "ëxample()");
    }
}
