//! Byte-level BPE tokenizer built from GGUF metadata, with user text encoded
//! with special tokens off.

use std::collections::HashMap;

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::tokenizer::TokenizerFromGguf;

use crate::error::{ModelError, Result};

/// Ids of the special tokens of Qwen2.5-Coder (absent ones are `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecialTokens {
    pub endoftext: Option<u32>,
    pub im_start: Option<u32>,
    pub im_end: Option<u32>,
    pub fim_prefix: Option<u32>,
    pub fim_middle: Option<u32>,
    pub fim_suffix: Option<u32>,
    pub fim_pad: Option<u32>,
    pub repo_name: Option<u32>,
    pub file_sep: Option<u32>,
}

/// A piece of a prompt: user text (encoded with special tokens off) or a
/// special token by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptPiece {
    Text(String),
    Token(u32),
}

pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// The exact bytes each token stands for.
    token_bytes: Vec<Vec<u8>>,
    /// Control and user-defined tokens (never produced by encoding user text).
    is_special: Vec<bool>,
    by_text: HashMap<String, u32>,
    special: SpecialTokens,
}

/// GPT-2's byte-to-unicode table, reversed: the char a byte-level BPE vocab
/// uses for each byte.
fn unicode_to_byte() -> HashMap<char, u8> {
    let mut printable: Vec<u32> = (u32::from(b'!')..=u32::from(b'~')).collect();
    printable.extend(0xA1..=0xAC);
    printable.extend(0xAE..=0xFF);
    let mut map = HashMap::with_capacity(256);
    let mut extra = 0u32;
    for byte in 0u32..256 {
        let ch = if printable.contains(&byte) {
            byte
        } else {
            extra += 1;
            255 + extra
        };
        if let Some(c) = char::from_u32(ch) {
            map.insert(c, byte as u8);
        }
    }
    map
}

/// The char a byte-level vocab uses for `byte` (used by tests that write
/// their own vocabulary).
pub fn byte_to_unicode(byte: u8) -> char {
    let table = unicode_to_byte();
    table
        .iter()
        .find_map(|(c, b)| (*b == byte).then_some(*c))
        .unwrap_or(byte as char)
}

impl Tokenizer {
    pub fn from_gguf(ct: &Content) -> Result<Self> {
        let mut inner = tokenizers::Tokenizer::from_gguf(ct)
            .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        // User text never turns into special tokens: a literal
        // `<|endoftext|>` in a file stays text.
        inner.set_encode_special_tokens(true);

        let tokens = match ct.metadata.get("tokenizer.ggml.tokens") {
            Some(Value::Array(values)) => values,
            _ => return Err(ModelError::MissingMetadata("tokenizer.ggml.tokens".into())),
        };
        let types: Vec<u32> = match ct.metadata.get("tokenizer.ggml.token_type") {
            Some(Value::Array(values)) => values
                .iter()
                .map(|v| match v {
                    Value::I32(t) => *t as u32,
                    Value::U32(t) => *t,
                    _ => 1,
                })
                .collect(),
            _ => Vec::new(),
        };
        let reverse = unicode_to_byte();
        let mut token_bytes = Vec::with_capacity(tokens.len());
        let mut is_special = Vec::with_capacity(tokens.len());
        let mut by_text = HashMap::new();
        for (id, value) in tokens.iter().enumerate() {
            let text = match value {
                Value::String(s) => s.as_str(),
                _ => return Err(ModelError::MissingMetadata("tokenizer.ggml.tokens".into())),
            };
            let kind = types.get(id).copied().unwrap_or(1);
            let special = matches!(kind, 3 | 4)
                || (text.starts_with("<|") && text.ends_with("|>") && text.len() > 4);
            let bytes = if special {
                text.as_bytes().to_vec()
            } else {
                let mut out = Vec::with_capacity(text.len());
                for c in text.chars() {
                    match reverse.get(&c) {
                        Some(b) => out.push(*b),
                        None => {
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                        }
                    }
                }
                out
            };
            if special {
                by_text.insert(text.to_string(), id as u32);
            }
            token_bytes.push(bytes);
            is_special.push(special);
        }
        let id = |s: &str| by_text.get(s).copied();
        let special = SpecialTokens {
            endoftext: id("<|endoftext|>"),
            im_start: id("<|im_start|>"),
            im_end: id("<|im_end|>"),
            fim_prefix: id("<|fim_prefix|>"),
            fim_middle: id("<|fim_middle|>"),
            fim_suffix: id("<|fim_suffix|>"),
            fim_pad: id("<|fim_pad|>"),
            repo_name: id("<|repo_name|>"),
            file_sep: id("<|file_sep|>"),
        };
        Ok(Self {
            inner,
            token_bytes,
            is_special,
            by_text,
            special,
        })
    }

    /// Encodes user text; special-token text stays text.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        if text.is_empty() {
            return Ok(Vec::new());
        }
        let encoding = self
            .inner
            .encode_fast(text, false)
            .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Encodes a prompt made of text pieces and special tokens.
    pub fn encode_pieces(&self, pieces: &[PromptPiece]) -> Result<Vec<u32>> {
        let mut ids = Vec::new();
        for piece in pieces {
            match piece {
                PromptPiece::Text(text) => ids.extend(self.encode(text)?),
                PromptPiece::Token(id) => {
                    if *id as usize >= self.token_bytes.len() {
                        return Err(ModelError::BadToken(*id));
                    }
                    ids.push(*id)
                }
            }
        }
        Ok(ids)
    }

    /// The exact bytes of a token (special tokens give their text).
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        self.token_bytes
            .get(id as usize)
            .map(|b| b.as_slice())
            .unwrap_or(&[])
    }

    /// Decodes tokens to text; invalid UTF-8 at the edges is replaced.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut bytes = Vec::new();
        for id in ids {
            bytes.extend_from_slice(self.token_bytes(*id));
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    pub fn is_special(&self, id: u32) -> bool {
        self.is_special.get(id as usize).copied().unwrap_or(false)
    }

    /// The id of a special token by its text, e.g. `<|fim_prefix|>`.
    pub fn special_id(&self, text: &str) -> Option<u32> {
        self.by_text.get(text).copied()
    }

    pub fn special(&self) -> &SpecialTokens {
        &self.special
    }

    pub fn vocab_size(&self) -> usize {
        self.token_bytes.len()
    }

    /// Tokens that end a completion: end of text, end of turn, and every
    /// FIM / repository control token (the model emitting one means the
    /// middle is done).
    pub fn default_stop_tokens(&self) -> Vec<u32> {
        let s = &self.special;
        [
            s.endoftext,
            s.im_end,
            s.im_start,
            s.fim_pad,
            s.file_sep,
            s.repo_name,
            s.fim_prefix,
            s.fim_middle,
            s.fim_suffix,
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}
