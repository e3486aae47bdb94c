//! The supported languages and the tree-sitter node kinds this crate cares about.

/// A language this crate understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Language {
    Python,
    Rust,
    JavaScript,
    TypeScript,
    Tsx,
    Go,
}

impl Language {
    /// Guess the language from a path's extension (`a/b.py` -> Python).
    pub fn from_path(path: &str) -> Option<Language> {
        let file_name = path.rsplit(['/', '\\']).next().unwrap_or(path);
        let (_, ext) = file_name.rsplit_once('.')?;
        match ext.to_ascii_lowercase().as_str() {
            "py" | "pyi" | "pyw" => Some(Language::Python),
            "rs" => Some(Language::Rust),
            "js" | "mjs" | "cjs" | "jsx" => Some(Language::JavaScript),
            "ts" | "mts" | "cts" => Some(Language::TypeScript),
            "tsx" => Some(Language::Tsx),
            "go" => Some(Language::Go),
            _ => None,
        }
    }

    /// The language for an LSP `languageId`.
    pub fn from_lsp_id(id: &str) -> Option<Language> {
        match id {
            "python" => Some(Language::Python),
            "rust" => Some(Language::Rust),
            "javascript" | "javascriptreact" => Some(Language::JavaScript),
            "typescript" => Some(Language::TypeScript),
            "typescriptreact" => Some(Language::Tsx),
            "go" => Some(Language::Go),
            _ => None,
        }
    }

    /// The tree-sitter grammar.
    pub fn ts_language(self) -> tree_sitter::Language {
        match self {
            Language::Python => tree_sitter_python::LANGUAGE.into(),
            Language::Rust => tree_sitter_rust::LANGUAGE.into(),
            Language::JavaScript => tree_sitter_javascript::LANGUAGE.into(),
            Language::TypeScript => tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
            Language::Tsx => tree_sitter_typescript::LANGUAGE_TSX.into(),
            Language::Go => tree_sitter_go::LANGUAGE.into(),
        }
    }

    /// Blocks are delimited by indentation (Python) rather than braces.
    pub fn uses_indentation_blocks(self) -> bool {
        self == Language::Python
    }

    /// Prefix of a line comment.
    pub fn line_comment(self) -> &'static str {
        match self {
            Language::Python => "#",
            _ => "//",
        }
    }

    pub(crate) fn is_function_kind(self, kind: &str) -> bool {
        match self {
            Language::Python => matches!(kind, "function_definition" | "lambda"),
            Language::Rust => matches!(
                kind,
                "function_item" | "function_signature_item" | "closure_expression"
            ),
            Language::JavaScript | Language::TypeScript | Language::Tsx => matches!(
                kind,
                "function_declaration"
                    | "function_expression"
                    | "function"
                    | "arrow_function"
                    | "method_definition"
                    | "generator_function_declaration"
                    | "generator_function"
                    | "function_signature"
                    | "method_signature"
            ),
            Language::Go => matches!(
                kind,
                "function_declaration" | "method_declaration" | "func_literal"
            ),
        }
    }

    pub(crate) fn is_class_kind(self, kind: &str) -> bool {
        match self {
            Language::Python => kind == "class_definition",
            Language::Rust => matches!(
                kind,
                "impl_item" | "trait_item" | "struct_item" | "enum_item" | "mod_item"
            ),
            Language::JavaScript | Language::TypeScript | Language::Tsx => matches!(
                kind,
                "class_declaration"
                    | "class"
                    | "abstract_class_declaration"
                    | "interface_declaration"
            ),
            Language::Go => kind == "type_declaration",
        }
    }

    pub(crate) fn is_import_kind(self, kind: &str) -> bool {
        match self {
            Language::Python => matches!(
                kind,
                "import_statement" | "import_from_statement" | "future_import_statement"
            ),
            Language::Rust => matches!(kind, "use_declaration" | "extern_crate_declaration"),
            Language::JavaScript | Language::TypeScript | Language::Tsx => {
                kind == "import_statement"
            }
            Language::Go => matches!(kind, "package_clause" | "import_declaration"),
        }
    }

    pub(crate) fn is_string_kind(self, kind: &str) -> bool {
        matches!(
            kind,
            "string"
                | "string_literal"
                | "raw_string_literal"
                | "template_string"
                | "interpreted_string_literal"
                | "char_literal"
                | "rune_literal"
                | "string_fragment"
                | "string_content"
                | "concatenated_string"
        )
    }
}
