//! Real model: the tokenizer read from the default model's GGUF metadata.

use codegen_model::{load, PromptPiece};
use codegen_store::Store;

#[test]
fn real_tokenizer_round_trips_and_keeps_special_text_as_text() {
    let store = Store::from_env();
    let manifest = store.default_manifest().unwrap();
    let path = store
        .fetch(manifest)
        .expect("default model fetched through the store");
    let (_, tokenizer) = load(&path, &candle_core::Device::Cpu).unwrap();
    let special = tokenizer.special().clone();
    assert_eq!(special.fim_prefix, Some(151659));
    assert_eq!(special.fim_middle, Some(151660));
    assert_eq!(special.fim_suffix, Some(151661));
    assert_eq!(special.endoftext, Some(151643));
    assert_eq!(special.im_end, Some(151645));
    for text in [
        "def f(x):\n\tif x:\n\t\treturn 1\n\treturn 0\n",
        "fn main() {\r\n    println!(\"hi\");\r\n}\r\n",
        "// 🦀 emoji 👩‍👩‍👧 and CJK 日本語のテキスト, 中文注释\nlet 变量 = \"値\";\n",
        "x = '<|endoftext|>' + \"<|fim_prefix|>\" # <|im_start|>",
        "   \n\n\t  trailing spaces   \n",
    ] {
        let ids = tokenizer.encode(text).unwrap();
        assert_eq!(tokenizer.decode(&ids), text, "round trip of {text:?}");
        assert!(
            ids.iter().all(|id| !tokenizer.is_special(*id)),
            "special token in {text:?}: {ids:?}"
        );
    }
    // A FIM prompt built from pieces has exactly the three FIM tokens.
    let ids = tokenizer
        .encode_pieces(&[
            PromptPiece::Token(151659),
            PromptPiece::Text("a = '<|fim_suffix|>'\n".into()),
            PromptPiece::Token(151661),
            PromptPiece::Text("\nprint(a)\n".into()),
            PromptPiece::Token(151660),
        ])
        .unwrap();
    assert_eq!(ids.iter().filter(|id| **id >= 151643).count(), 3, "{ids:?}");
}
