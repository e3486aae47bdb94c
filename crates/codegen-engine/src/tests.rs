use std::sync::Arc;

use codegen_context::Language;
use codegen_model::testing::{write_tiny_gguf, TinyConfig};

use crate::*;

fn tiny() -> (tempfile::TempDir, LoadedModel) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    write_tiny_gguf(&path, &TinyConfig::default()).unwrap();
    let model = LoadedModel::load("tiny", &path, &candle_core::Device::Cpu).unwrap();
    (dir, model)
}

fn python(text: &str) -> Arc<Document> {
    Arc::new(Document::new(text.to_string(), Some(Language::Python)))
}

fn plain(text: &str) -> Arc<Document> {
    Arc::new(Document::new(text.to_string(), None))
}

fn request(doc: Arc<Document>, cursor: usize) -> CompletionRequest {
    let mut req = CompletionRequest::new("test", doc, cursor);
    req.path = "src/m.py".into();
    req.settings.max_tokens = 8;
    req
}

/// Builds the prompt once and samples from it, as the engine does.
fn complete(
    m: &LoadedModel,
    session: &mut codegen_model::Session,
    req: &CompletionRequest,
) -> Generated {
    let prompt = build_prompt_tokens(&m.tokenizer, req).unwrap();
    generate_candidates(m, session, req, &prompt, None).unwrap()
}

#[test]
fn fim_when_code_follows_the_cursor_and_continuation_otherwise() {
    let (_dir, m) = tiny();
    let special = m.tokenizer.special().clone();
    let text = "def f(x):\n    return \n\nprint(f(2))\n";
    let doc = python(text);
    let cursor = text.find("return ").unwrap() + 7;
    let built = build_prompt_tokens(&m.tokenizer, &request(doc.clone(), cursor)).unwrap();
    let (tokens, mode) = (built.tokens, built.mode);
    assert_eq!(mode, PromptMode::FillInTheMiddle);
    assert_eq!(tokens[0], special.fim_prefix.unwrap());
    assert_eq!(*tokens.last().unwrap(), special.fim_middle.unwrap());
    assert_eq!(
        tokens
            .iter()
            .filter(|t| Some(**t) == special.fim_suffix)
            .count(),
        1
    );

    let text = "def f(x):\n    return ";
    let doc = python(text);
    let built = build_prompt_tokens(&m.tokenizer, &request(doc.clone(), text.len())).unwrap();
    let (tokens, mode) = (built.tokens, built.mode);
    assert_eq!(mode, PromptMode::Continuation);
    // Trailing spaces are left for the model to write (token healing).
    assert_eq!(m.tokenizer.decode(&tokens), "def f(x):\n    return");
}

#[test]
fn special_token_text_in_the_document_stays_text() {
    let (_dir, m) = tiny();
    let text = "x = '<|fim_suffix|>'\ny = ";
    let tokens = build_prompt_tokens(&m.tokenizer, &request(plain(text), text.len()))
        .unwrap()
        .tokens;
    assert!(tokens.iter().all(|t| !m.tokenizer.is_special(*t)));
}

#[test]
fn cursor_out_of_range_is_an_error() {
    let (_dir, m) = tiny();
    let err = build_prompt_tokens(&m.tokenizer, &request(plain("abc"), 4)).unwrap_err();
    assert!(matches!(
        err,
        EngineError::CursorOutOfRange { cursor: 4, len: 3 }
    ));
    let err = build_prompt_tokens(&m.tokenizer, &request(plain("é"), 1)).unwrap_err();
    assert!(matches!(err, EngineError::CursorOutOfRange { .. }));
}

#[test]
fn neighbours_are_rendered_in_repository_format() {
    let (_dir, m) = tiny();
    let file_sep = m.tokenizer.special().file_sep.unwrap();
    let text = "def total(items):\n    return sum(item.price for item in items)\n\ndef average(items):\n    ";
    let doc = python(text);
    let mut req = request(doc.clone(), text.len());
    req.neighbours = vec![codegen_context::Neighbour {
        path: "src/items.py".into(),
        text: "class Item:\n    def __init__(self, price):\n        self.price = price\n\ndef total(items):\n    return sum(item.price for item in items)\n".into(),
    }];
    let tokens = build_prompt_tokens(&m.tokenizer, &req).unwrap().tokens;
    assert_eq!(tokens[0], file_sep);
    assert_eq!(tokens.iter().filter(|t| **t == file_sep).count(), 2);
    let rendered = m.tokenizer.decode(&tokens);
    assert!(
        rendered.contains("<|file_sep|>src/items.py\n"),
        "{rendered}"
    );
    assert!(
        rendered.contains("<|file_sep|>src/m.py\ndef total"),
        "{rendered}"
    );
}

#[test]
fn n_candidates_share_one_prefill_and_the_session_keeps_the_prompt() {
    let (_dir, m) = tiny();
    let text = "def f(x):\n    ";
    let doc = python(text);
    let mut req = request(doc.clone(), text.len());
    req.settings.n = 3;
    req.settings.temperature = 1.0;
    let mut session = m.model.new_session().unwrap();
    let first = complete(&m, &mut session, &req);
    assert_eq!(first.samples.len(), 3);
    assert_eq!(first.n_reused_tokens, 0);
    assert!(first
        .samples
        .iter()
        .all(|c| c.n_tokens > 0 && c.mean_logprob <= 0.0));
    // Same request again: everything but the last prompt token is reused.
    let second = complete(&m, &mut session, &req);
    let n_prompt = build_prompt_tokens(&m.tokenizer, &req)
        .unwrap()
        .tokens
        .len();
    assert_eq!(second.n_reused_tokens, n_prompt - 1);
    let same: Vec<_> = first.samples.iter().map(|c| &c.raw).collect();
    let again: Vec<_> = second.samples.iter().map(|c| &c.raw).collect();
    assert_eq!(same, again, "same seeds give the same samples");
}

#[test]
fn registry_shares_loaded_models() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    write_tiny_gguf(&path, &TinyConfig::default()).unwrap();
    let registry = ModelRegistry::new();
    let a = registry
        .get_or_load("tiny", &path, &candle_core::Device::Cpu)
        .unwrap();
    let b = registry
        .get_or_load("tiny", &path, &candle_core::Device::Cpu)
        .unwrap();
    assert!(std::sync::Arc::ptr_eq(&a, &b));
    assert_eq!(registry.names(), vec!["tiny".to_string()]);
    assert!(registry.remove("tiny").is_some());
    assert!(registry.get("tiny").is_none());
    let err = registry
        .get_or_load(
            "missing",
            &dir.path().join("nope.gguf"),
            &candle_core::Device::Cpu,
        )
        .err()
        .unwrap();
    assert!(err.to_string().contains("nope.gguf"), "{err}");
}

#[test]
fn templates_turn_marker_text_into_special_tokens() {
    let (_dir, m) = tiny();
    let ids = encode_template(&m.tokenizer, "<|im_start|>user\nhi<|im_end|>\n").unwrap();
    let special = m.tokenizer.special();
    assert_eq!(ids[0], special.im_start.unwrap());
    assert!(ids.contains(&special.im_end.unwrap()));
    assert_eq!(m.tokenizer.decode(&ids), "<|im_start|>user\nhi<|im_end|>\n");
    // Plain encoding keeps the same text as text.
    let plain = m.tokenizer.encode("<|im_start|>user").unwrap();
    assert!(!plain.contains(&special.im_start.unwrap()));
}

#[test]
fn samples_from_one_prefill_match_separate_runs() {
    let (_dir, m) = tiny();
    let prompt = m.tokenizer.encode("def f(x):\n    return").unwrap();
    let configs: Vec<codegen_model::GenerateConfig> = (0..3)
        .map(|seed| codegen_model::GenerateConfig {
            max_tokens: 6,
            sampling: codegen_model::SamplingConfig {
                temperature: 1.0,
                top_k: None,
                top_p: 0.9,
                seed,
            },
            ..Default::default()
        })
        .collect();
    let mut session = m.model.new_session().unwrap();
    let together = generate_samples(&m, &mut session, &prompt, &configs, None).unwrap();
    for (config, sample) in configs.iter().zip(&together) {
        let mut fresh = m.model.new_session().unwrap();
        let alone = codegen_model::generate(
            &m.model,
            &m.tokenizer,
            &mut fresh,
            &prompt,
            config,
            None,
            &mut |_| true,
        )
        .unwrap();
        assert_eq!(alone.tokens, sample.tokens);
    }
}

#[test]
fn whitespace_taken_off_the_prompt_is_taken_off_the_output() {
    assert_eq!(
        crate::complete::unheal_for_tests("    return x", "    "),
        "return x"
    );
    assert_eq!(
        crate::complete::unheal_for_tests("        return x", "    "),
        "    return x"
    );
    assert_eq!(crate::complete::unheal_for_tests(" 5", " "), "5");
    assert_eq!(crate::complete::unheal_for_tests("5", " "), "5");
    assert_eq!(
        crate::complete::unheal_for_tests("\treturn", "\t\t"),
        "return"
    );
}

#[test]
fn fim_keeps_the_models_spaces_when_the_cursor_is_inside_the_indentation() {
    use crate::complete::Healing;
    let (_dir, m) = tiny();
    // Three of four spaces typed: the model's leading space completes them.
    let text = "def f(x):\n    y = x\n   \n    return y\n";
    let cursor = text.find("   \n").unwrap() + 3;
    let built = build_prompt_tokens(&m.tokenizer, &request(python(text), cursor)).unwrap();
    assert_eq!(built.healing, Healing::None);
    // A whole level typed: the model's extra spaces are dropped.
    let text = "def f(x):\n    y = x\n    \n    return y\n";
    let cursor = text.find("    \n").unwrap() + 4;
    let built = build_prompt_tokens(&m.tokenizer, &request(python(text), cursor)).unwrap();
    assert_eq!(built.healing, Healing::StripLeading);
}

/// A model with a draft completes one greedy sample speculatively, with the
/// same text as without, and counts the proposals; several samples decode
/// together without the draft.
#[test]
fn a_draft_model_changes_passes_not_text() {
    let (dir, plain_model) = tiny();
    let draft_path = dir.path().join("draft.gguf");
    write_tiny_gguf(
        &draft_path,
        &TinyConfig {
            n_layers: 1,
            ..TinyConfig::default()
        },
    )
    .unwrap();
    let draft =
        Arc::new(LoadedModel::load("draft", &draft_path, &candle_core::Device::Cpu).unwrap());
    let (_dir2, with) = tiny();
    let with = with.with_draft(draft).unwrap();
    assert_eq!(with.display_name(), "tiny (draft draft)");
    let text = "def f(x):\n    return \n\nprint(f(2))\n";
    let cursor = text.find("return ").unwrap() + 7;
    let mut req = request(python(text), cursor);
    req.settings.max_tokens = 24;
    let a = complete(
        &plain_model,
        &mut plain_model.model.new_session().unwrap(),
        &req,
    );
    let b = complete(&with, &mut with.model.new_session().unwrap(), &req);
    assert_eq!(a.samples[0].raw, b.samples[0].raw);
    assert_eq!(a.samples[0].text, b.samples[0].text);
    assert_eq!(a.n_draft_tokens, 0);
    if b.n_generated_tokens > 1 {
        assert!(b.n_draft_tokens > 0, "{:?}", b.samples[0]);
    }
    req.settings.n = 3;
    req.settings.temperature = 0.8;
    let c = complete(&with, &mut with.model.new_session().unwrap(), &req);
    assert_eq!(c.samples.len(), 3);
    assert_eq!(c.n_draft_tokens, 0);
}

#[test]
fn remote_backend_specs_name_the_protocol() {
    let parse = |s: &str| RemoteConfig::parse(s).map(|c| (c.kind, c.url));
    assert_eq!(
        parse("http://gpu:8000/").unwrap(),
        (RemoteKind::OpenAi, "http://gpu:8000".to_string())
    );
    assert_eq!(
        parse("llama-server+http://gpu:8080").unwrap().0,
        RemoteKind::LlamaServer
    );
    assert_eq!(
        parse("ollama+https://gpu:11434").unwrap().0,
        RemoteKind::Ollama
    );
    assert!(parse("tgi+http://gpu").is_err());
    assert!(parse("gpu:8000").is_err());
}

#[test]
fn the_remote_prompt_renders_fim_as_text_and_keeps_its_pieces() {
    let (_dir, model) = tiny();
    let text = "def f(x):\n    return \n\nprint(f(1))\n";
    let cursor = text.find("return ").unwrap() + "return ".len();
    let prompt = build_prompt_tokens(&model.tokenizer, &request(python(text), cursor)).unwrap();
    let remote = &prompt.remote;
    assert!(remote.fim && !remote.template);
    assert!(remote.prefix.ends_with("return "), "{:?}", remote.prefix);
    assert!(remote.suffix.contains("print(f(1))"), "{:?}", remote.suffix);
    assert_eq!(
        remote.rendered,
        format!(
            "<|fim_prefix|>{}<|fim_suffix|>{}<|fim_middle|>",
            remote.prefix, remote.suffix
        )
    );
}

#[test]
fn a_backend_that_does_not_answer_is_marked_down_and_fails_at_once() {
    // Nothing listens on port 1 of loopback.
    let mut config = RemoteConfig::parse("http://127.0.0.1:1").unwrap();
    config.model = Some("m".into());
    config.retries = 1;
    config.backoff = std::time::Duration::from_millis(1);
    let backend = RemoteBackend::new(config);
    let prompt = RemotePrompt {
        prefix: "a".into(),
        rendered: "a".into(),
        ..RemotePrompt::default()
    };
    let configs = vec![codegen_model::GenerateConfig::default()];
    let first = backend.sample(&prompt, &configs, None).unwrap_err();
    assert!(first.to_string().contains("127.0.0.1:1"), "{first}");
    let health = backend.health();
    assert!(!health.up && health.failures == 1, "{health:?}");
    let second = backend.sample(&prompt, &configs, None).unwrap_err();
    assert!(second.to_string().contains("is down"), "{second}");
    // The second failed without another attempt.
    assert_eq!(backend.health().failures, 1);
}
