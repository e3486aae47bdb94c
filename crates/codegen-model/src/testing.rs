//! Tiny random-weight Qwen2 GGUF files for tests of the model math. The
//! vocabulary is the 256 byte tokens plus Qwen2.5-Coder's special tokens, so
//! any text can be encoded.

use std::path::Path;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::tokenizer::byte_to_unicode;

/// Shape of a tiny test model.
#[derive(Debug, Clone)]
pub struct TinyConfig {
    pub n_layers: usize,
    pub hidden_size: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub ffn_size: usize,
    pub context_length: usize,
    pub seed: u64,
    /// Block format of the matrices (the norms stay F32).
    pub dtype: GgmlDType,
    /// Architecture name written in the metadata.
    pub architecture: String,
}

impl Default for TinyConfig {
    fn default() -> Self {
        Self {
            n_layers: 2,
            hidden_size: 64,
            n_heads: 4,
            n_kv_heads: 2,
            ffn_size: 128,
            context_length: 512,
            seed: 7,
            dtype: GgmlDType::Q8_0,
            architecture: "qwen2".into(),
        }
    }
}

/// Special tokens, in id order after the 256 byte tokens.
pub const TINY_SPECIALS: [&str; 9] = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
];

/// Vocabulary size of a tiny model: bytes, one merge result, specials.
pub const TINY_VOCAB: usize = 256 + 1 + TINY_SPECIALS.len();

fn random(rng: &mut StdRng, n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|_| (rng.gen::<f32>() * 2.0 - 1.0) * scale)
        .collect()
}

/// Writes a tiny random-weight Qwen2 GGUF to `path`.
pub fn write_tiny_gguf(path: &Path, cfg: &TinyConfig) -> candle_core::Result<()> {
    let dev = Device::Cpu;
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let h = cfg.hidden_size;
    let head_dim = h / cfg.n_heads;
    let kv = cfg.n_kv_heads * head_dim;
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    let mut matrix =
        |rng: &mut StdRng, name: String, rows: usize, cols: usize, dtype: GgmlDType| {
            let scale = 1.0 / (cols as f32).sqrt() * 1.7;
            let t = Tensor::from_vec(random(rng, rows * cols, scale), (rows, cols), &dev)?;
            tensors.push((name, QTensor::quantize(&t, dtype)?));
            candle_core::Result::Ok(())
        };
    matrix(
        &mut rng,
        "token_embd.weight".into(),
        TINY_VOCAB,
        h,
        cfg.dtype,
    )?;
    matrix(&mut rng, "output.weight".into(), TINY_VOCAB, h, cfg.dtype)?;
    for i in 0..cfg.n_layers {
        let p = format!("blk.{i}");
        matrix(&mut rng, format!("{p}.attn_q.weight"), h, h, cfg.dtype)?;
        matrix(&mut rng, format!("{p}.attn_k.weight"), kv, h, cfg.dtype)?;
        matrix(&mut rng, format!("{p}.attn_v.weight"), kv, h, cfg.dtype)?;
        matrix(&mut rng, format!("{p}.attn_output.weight"), h, h, cfg.dtype)?;
        matrix(
            &mut rng,
            format!("{p}.ffn_gate.weight"),
            cfg.ffn_size,
            h,
            cfg.dtype,
        )?;
        matrix(
            &mut rng,
            format!("{p}.ffn_up.weight"),
            cfg.ffn_size,
            h,
            cfg.dtype,
        )?;
        matrix(
            &mut rng,
            format!("{p}.ffn_down.weight"),
            h,
            cfg.ffn_size,
            cfg.dtype,
        )?;
    }
    let mut vector = |rng: &mut StdRng, name: String, n: usize, base: f32, spread: f32| {
        let v: Vec<f32> = random(rng, n, spread)
            .into_iter()
            .map(|x| x + base)
            .collect();
        let t = Tensor::from_vec(v, n, &dev)?;
        tensors.push((name, QTensor::quantize(&t, GgmlDType::F32)?));
        candle_core::Result::Ok(())
    };
    for i in 0..cfg.n_layers {
        let p = format!("blk.{i}");
        vector(&mut rng, format!("{p}.attn_norm.weight"), h, 1.0, 0.1)?;
        vector(&mut rng, format!("{p}.ffn_norm.weight"), h, 1.0, 0.1)?;
        vector(&mut rng, format!("{p}.attn_q.bias"), h, 0.0, 0.1)?;
        vector(&mut rng, format!("{p}.attn_k.bias"), kv, 0.0, 0.1)?;
        vector(&mut rng, format!("{p}.attn_v.bias"), kv, 0.0, 0.1)?;
    }
    vector(&mut rng, "output_norm.weight".into(), h, 1.0, 0.1)?;

    let arch = cfg.architecture.as_str();
    let mut tokens: Vec<Value> = (0..=255u8)
        .map(|b| Value::String(byte_to_unicode(b).to_string()))
        .collect();
    let space_t = format!("{}t", byte_to_unicode(b' '));
    tokens.push(Value::String(space_t));
    let mut types: Vec<Value> = vec![Value::I32(1); 257];
    for s in TINY_SPECIALS {
        tokens.push(Value::String(s.to_string()));
        types.push(Value::I32(3));
    }
    let merges = vec![Value::String(format!("{} t", byte_to_unicode(b' ')))];
    let u32v = |v: usize| Value::U32(v as u32);
    let metadata: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String(arch.into())),
        (
            "general.name".into(),
            Value::String("tiny-random-qwen2".into()),
        ),
        (format!("{arch}.block_count"), u32v(cfg.n_layers)),
        (format!("{arch}.context_length"), u32v(cfg.context_length)),
        (format!("{arch}.embedding_length"), u32v(h)),
        (format!("{arch}.feed_forward_length"), u32v(cfg.ffn_size)),
        (format!("{arch}.attention.head_count"), u32v(cfg.n_heads)),
        (
            format!("{arch}.attention.head_count_kv"),
            u32v(cfg.n_kv_heads),
        ),
        (format!("{arch}.rope.freq_base"), Value::F32(10_000.0)),
        (
            format!("{arch}.attention.layer_norm_rms_epsilon"),
            Value::F32(1e-6),
        ),
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), Value::String("qwen2".into())),
        ("tokenizer.ggml.tokens".into(), Value::Array(tokens)),
        ("tokenizer.ggml.token_type".into(), Value::Array(types)),
        ("tokenizer.ggml.merges".into(), Value::Array(merges)),
        ("tokenizer.ggml.eos_token_id".into(), u32v(257 + 2)),
        ("tokenizer.ggml.bos_token_id".into(), u32v(257)),
        ("tokenizer.ggml.add_bos_token".into(), Value::Bool(false)),
    ];
    let md: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let ts: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut file = std::fs::File::create(path)?;
    gguf_file::write(&mut file, &md, &ts)?;
    Ok(())
}
