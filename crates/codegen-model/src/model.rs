//! Qwen2 forward pass on candle tensors. Weights are immutable and shared;
//! all per-request state lives in [`Session`].

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use candle_core::quantized::{gguf_file, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor};

use crate::config::ModelConfig;
use crate::error::{ModelError, Result};
use crate::session::Session;
use crate::tokenizer::Tokenizer;

/// Prompts longer than this are prefilled in chunks so that the attention
/// scores of a long prompt never need one huge allocation.
pub const PREFILL_CHUNK: usize = 256;

struct Linear {
    weight: QMatMul,
    bias: Option<Tensor>,
}

impl Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.weight.forward(x)?;
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }
}

struct Layer {
    attn_norm: Tensor,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    ffn_norm: Tensor,
    gate: Linear,
    up: Linear,
    down: Linear,
}

/// A loaded Qwen2 model: immutable, share it behind an `Arc`.
pub struct Model {
    config: ModelConfig,
    device: Device,
    embed: QTensor,
    layers: Vec<Layer>,
    norm: Tensor,
    output: Linear,
    cos: Tensor,
    sin: Tensor,
    file_size: u64,
}

struct Loader<'a> {
    ct: &'a gguf_file::Content,
    reader: BufReader<File>,
    device: &'a Device,
}

impl Loader<'_> {
    fn qtensor(&mut self, name: &str) -> Result<QTensor> {
        self.ct
            .tensor(&mut self.reader, name, self.device)
            .map_err(|e| ModelError::BadTensor {
                name: name.to_string(),
                reason: e.to_string(),
            })
    }

    fn has(&self, name: &str) -> bool {
        self.ct.tensor_infos.contains_key(name)
    }

    fn vector(&mut self, name: &str) -> Result<Tensor> {
        let device = self.device.clone();
        Ok(self.qtensor(name)?.dequantize(&device)?)
    }

    fn linear(&mut self, prefix: &str, rows: usize, cols: usize) -> Result<Linear> {
        let name = format!("{prefix}.weight");
        let weight = self.qtensor(&name)?;
        if weight.shape().dims() != [rows, cols] {
            return Err(ModelError::BadTensor {
                name,
                reason: format!(
                    "shape {:?}, expected [{rows}, {cols}]",
                    weight.shape().dims()
                ),
            });
        }
        let bias_name = format!("{prefix}.bias");
        let bias = if self.has(&bias_name) {
            Some(self.vector(&bias_name)?)
        } else {
            None
        };
        Ok(Linear {
            weight: QMatMul::from_qtensor(weight)?,
            bias,
        })
    }
}

fn rope_tables(config: &ModelConfig, device: &Device) -> Result<(Tensor, Tensor)> {
    let half = config.head_dim / 2;
    let n_pos = config.context_length;
    let inv_freq: Vec<f32> = (0..half)
        .map(|i| {
            1.0 / config
                .rope_freq_base
                .powf((2 * i) as f32 / config.head_dim as f32)
        })
        .collect();
    let mut cos = Vec::with_capacity(n_pos * half);
    let mut sin = Vec::with_capacity(n_pos * half);
    for pos in 0..n_pos {
        for f in &inv_freq {
            let angle = pos as f32 * f;
            cos.push(angle.cos());
            sin.push(angle.sin());
        }
    }
    Ok((
        Tensor::from_vec(cos, (n_pos, half), device)?,
        Tensor::from_vec(sin, (n_pos, half), device)?,
    ))
}

/// Additive causal mask for `n_new` tokens placed after `n_past` cached ones:
/// new token `i` sees positions `0..=n_past + i`.
fn causal_mask(n_new: usize, n_past: usize, device: &Device) -> Result<Tensor> {
    let total = n_past + n_new;
    let mask: Vec<f32> = (0..n_new)
        .flat_map(|i| {
            (0..total).map(move |j| {
                if j <= n_past + i {
                    0.0
                } else {
                    f32::NEG_INFINITY
                }
            })
        })
        .collect();
    Ok(Tensor::from_vec(mask, (n_new, total), device)?)
}

/// Reads the model and its tokenizer from a GGUF file.
pub fn load(path: &Path, device: &Device) -> Result<(Model, Tokenizer)> {
    let io_err = |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io_err)?;
    if meta.is_dir() {
        return Err(ModelError::InvalidGguf {
            path: path.to_path_buf(),
            reason: "it is a directory".into(),
        });
    }
    let file = File::open(path).map_err(io_err)?;
    let mut reader = BufReader::new(file);
    let ct = gguf_file::Content::read(&mut reader).map_err(|e| ModelError::InvalidGguf {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let config = ModelConfig::from_gguf(&ct)?;
    let tokenizer = Tokenizer::from_gguf(&ct)?;
    let model = Model::from_content(&ct, reader, device, config, meta.len())?;
    Ok((model, tokenizer))
}

impl Model {
    fn from_content(
        ct: &gguf_file::Content,
        reader: BufReader<File>,
        device: &Device,
        config: ModelConfig,
        file_size: u64,
    ) -> Result<Self> {
        let mut ld = Loader { ct, reader, device };
        let h = config.hidden_size;
        let kv = config.n_kv_heads * config.head_dim;
        let embed = ld.qtensor("token_embd.weight")?;
        let mut layers = Vec::with_capacity(config.n_layers);
        for idx in 0..config.n_layers {
            let p = format!("blk.{idx}");
            layers.push(Layer {
                attn_norm: ld.vector(&format!("{p}.attn_norm.weight"))?,
                q: ld.linear(&format!("{p}.attn_q"), h, h)?,
                k: ld.linear(&format!("{p}.attn_k"), kv, h)?,
                v: ld.linear(&format!("{p}.attn_v"), kv, h)?,
                o: ld.linear(&format!("{p}.attn_output"), h, h)?,
                ffn_norm: ld.vector(&format!("{p}.ffn_norm.weight"))?,
                gate: ld.linear(&format!("{p}.ffn_gate"), config.ffn_size, h)?,
                up: ld.linear(&format!("{p}.ffn_up"), config.ffn_size, h)?,
                down: ld.linear(&format!("{p}.ffn_down"), h, config.ffn_size)?,
            });
        }
        let norm = ld.vector("output_norm.weight")?;
        let output = if ld.has("output.weight") {
            ld.linear("output", config.vocab_size, h)?
        } else {
            // Tied embeddings.
            ld.linear("token_embd", config.vocab_size, h)?
        };
        let (cos, sin) = rope_tables(&config, device)?;
        Ok(Self {
            config,
            device: device.clone(),
            embed,
            layers,
            norm,
            output,
            cos,
            sin,
            file_size,
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Size of the GGUF file the weights came from.
    pub fn file_size(&self) -> u64 {
        self.file_size
    }

    /// A fresh session with an empty KV cache.
    pub fn new_session(&self) -> Result<Session> {
        Session::new(&self.config, &self.device)
    }

    /// Runs `tokens` after what `session` already holds, in chunks, and
    /// returns the logits for the next token.
    pub fn prefill(&self, session: &mut Session, tokens: &[u32]) -> Result<Vec<f32>> {
        if tokens.is_empty() {
            return Err(ModelError::EmptyPrompt);
        }
        let mut logits = None;
        for chunk in tokens.chunks(PREFILL_CHUNK) {
            logits = Some(self.forward(session, chunk)?);
        }
        logits.ok_or(ModelError::EmptyPrompt)
    }

    /// One forward step of any number of tokens at the session's position;
    /// returns the logits of the last one.
    pub fn forward(&self, session: &mut Session, tokens: &[u32]) -> Result<Vec<f32>> {
        let hidden = self.forward_hidden(session, tokens)?;
        let n = tokens.len();
        let last = hidden.narrow(0, n - 1, 1)?;
        let last = candle_nn::ops::rms_norm(&last, &self.norm, self.config.rms_norm_eps as f32)?;
        let logits = self.output.forward(&last)?;
        Ok(logits.squeeze(0)?.to_dtype(DType::F32)?.to_vec1::<f32>()?)
    }

    fn forward_hidden(&self, session: &mut Session, tokens: &[u32]) -> Result<Tensor> {
        let cfg = &self.config;
        let n_new = tokens.len();
        if n_new == 0 {
            return Err(ModelError::EmptyPrompt);
        }
        if let Some(bad) = tokens.iter().find(|t| **t as usize >= cfg.vocab_size) {
            return Err(ModelError::BadToken(*bad));
        }
        let n_past = session.len();
        let total = n_past + n_new;
        if total > cfg.context_length {
            return Err(ModelError::ContextOverflow {
                needed: total,
                limit: cfg.context_length,
            });
        }
        session.reserve(total, &self.device)?;

        let ids = Tensor::new(tokens, &self.device)?;
        let mut x = self.embed.embedding(&ids)?;
        let mask = if n_new > 1 {
            Some(causal_mask(n_new, n_past, &self.device)?)
        } else {
            None
        };
        let cos = self.cos.narrow(0, n_past, n_new)?;
        let sin = self.sin.narrow(0, n_past, n_new)?;
        let (n_heads, n_kv, hd) = (cfg.n_heads, cfg.n_kv_heads, cfg.head_dim);
        let group = n_heads / n_kv;
        let scale = 1.0 / (hd as f64).sqrt();
        let eps = cfg.rms_norm_eps as f32;

        for (layer_idx, layer) in self.layers.iter().enumerate() {
            let h = candle_nn::ops::rms_norm(&x, &layer.attn_norm, eps)?;
            let q = layer.q.forward(&h)?;
            let k = layer.k.forward(&h)?;
            let v = layer.v.forward(&h)?;
            // (n_new, heads * hd) -> (1, heads, n_new, hd)
            let to_heads = |t: Tensor, heads: usize| -> Result<Tensor> {
                Ok(t.reshape((n_new, heads, hd))?
                    .transpose(0, 1)?
                    .contiguous()?
                    .unsqueeze(0)?)
            };
            let q = candle_nn::rotary_emb::rope(&to_heads(q, n_heads)?, &cos, &sin)?;
            let k = candle_nn::rotary_emb::rope(&to_heads(k, n_kv)?, &cos, &sin)?;
            let v = to_heads(v, n_kv)?;
            let (k_all, v_all) =
                session.append(layer_idx, &k.squeeze(0)?, &v.squeeze(0)?, n_past)?;

            // Grouped-query attention without copying K/V per head: the
            // `group` query heads that share a KV head are stacked as rows.
            let q = q.reshape((n_kv, group * n_new, hd))?;
            let att = (q.matmul(&k_all.t()?)? * scale)?;
            let att = match &mask {
                Some(mask) => att
                    .reshape((n_kv, group, n_new, total))?
                    .broadcast_add(mask)?
                    .reshape((n_kv, group * n_new, total))?,
                None => att,
            };
            let att = candle_nn::ops::softmax_last_dim(&att)?;
            let y = att.matmul(&v_all)?; // (n_kv, group * n_new, hd)
            let y = y
                .reshape((n_heads, n_new, hd))?
                .transpose(0, 1)?
                .reshape((n_new, n_heads * hd))?;
            x = (x + layer.o.forward(&y)?)?;

            let h = candle_nn::ops::rms_norm(&x, &layer.ffn_norm, eps)?;
            let gate = candle_nn::ops::silu(&layer.gate.forward(&h)?)?;
            let up = layer.up.forward(&h)?;
            x = (x + layer.down.forward(&(gate * up)?)?)?;
        }
        session.commit(tokens);
        Ok(x)
    }
}
