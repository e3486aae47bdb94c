//! Qwen2 forward pass on candle tensors. Weights are immutable and shared;
//! all per-request state lives in [`Session`].

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use std::sync::Arc;

use candle_core::quantized::{gguf_file, GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Tensor};
use codegen_kernels::{dequantize_row, QMatrix, QType};

use crate::config::ModelConfig;
use crate::error::{ModelError, Result};
use crate::host::{HostLayer, HostModel};
use crate::linear::Projection;
use crate::session::Session;
use crate::tokenizer::Tokenizer;

/// Prompts longer than this are prefilled in chunks so that the attention
/// scores of a long prompt never need one huge allocation.
pub const PREFILL_CHUNK: usize = 256;

struct Layer {
    attn_norm: Tensor,
    /// Q, K and V in one call.
    qkv: Projection,
    o: Projection,
    ffn_norm: Tensor,
    /// Gate and up in one call.
    gate_up: Projection,
    down: Projection,
}

/// Token embeddings, kept quantized; rows are dequantized on lookup.
enum Embedding {
    Candle(QTensor),
    Kernel(QMatrix),
}

/// Which matrix code runs the linear layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Our SIMD kernels (`codegen-kernels`); CPU only.
    Kernels,
    /// candle's `QMatMul` (any device).
    Candle,
    /// Weights dequantized to f32 and plain f32 matmuls: the numerical
    /// reference for tests (slow, large).
    F32Reference,
}

/// How to load a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    /// `None`: kernels on CPU (unless the runtime configuration asks for
    /// candle's, `CODEGEN_KERNELS=candle`), candle elsewhere.
    pub backend: Option<Backend>,
    /// With the kernel backend: run the fused CPU forward (default) rather
    /// than the candle-tensor forward over the same kernels. The runtime
    /// configuration's forward path (`CODEGEN_FORWARD=candle`) also turns it off.
    pub fused: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            backend: None,
            fused: true,
        }
    }
}

/// A loaded Qwen2 model: immutable, share it behind an `Arc`.
pub struct Model {
    config: ModelConfig,
    device: Device,
    embed: Embedding,
    layers: Vec<Layer>,
    norm: Tensor,
    output: Projection,
    backend: Backend,
    cos: Tensor,
    sin: Tensor,
    file_size: u64,
    /// The fused CPU forward (kernel backend with every weight in a kernel
    /// format); `None` runs the candle path.
    host: Option<HostModel>,
}

struct Loader<'a> {
    ct: &'a gguf_file::Content,
    reader: BufReader<File>,
    device: &'a Device,
    /// The whole file, mapped, for the kernel backend.
    mmap: Option<Arc<memmap2::Mmap>>,
    /// Dequantize every matrix to f32.
    reference: bool,
}

fn kernel_qtype(dtype: GgmlDType) -> Option<QType> {
    Some(match dtype {
        GgmlDType::F32 => QType::F32,
        GgmlDType::F16 => QType::F16,
        GgmlDType::Q4_0 => QType::Q4_0,
        GgmlDType::Q5_0 => QType::Q5_0,
        GgmlDType::Q8_0 => QType::Q8_0,
        GgmlDType::Q4K => QType::Q4_K,
        GgmlDType::Q5K => QType::Q5_K,
        GgmlDType::Q6K => QType::Q6_K,
        _ => return None,
    })
}

impl Loader<'_> {
    fn bad(name: &str, reason: impl ToString) -> ModelError {
        ModelError::BadTensor {
            name: name.to_string(),
            reason: reason.to_string(),
        }
    }

    fn qtensor(&mut self, name: &str) -> Result<QTensor> {
        self.ct
            .tensor(&mut self.reader, name, self.device)
            .map_err(|e| Self::bad(name, e))
    }

    fn has(&self, name: &str) -> bool {
        self.ct.tensor_infos.contains_key(name)
    }

    fn vector(&mut self, name: &str) -> Result<Tensor> {
        let device = self.device.clone();
        Ok(self.qtensor(name)?.dequantize(&device)?)
    }

    fn check_shape(name: &str, dims: &[usize], rows: usize, cols: usize) -> Result<()> {
        if dims != [rows, cols] {
            return Err(Self::bad(
                name,
                format!("shape {dims:?}, expected [{rows}, {cols}]"),
            ));
        }
        Ok(())
    }

    /// The weight as a kernel matrix viewing the mapped file, when the
    /// kernel backend is on and supports its format.
    fn kernel_matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Option<QMatrix>> {
        let Some(mmap) = &self.mmap else {
            return Ok(None);
        };
        let info = self
            .ct
            .tensor_infos
            .get(name)
            .ok_or_else(|| Self::bad(name, "missing"))?;
        Self::check_shape(name, info.shape.dims(), rows, cols)?;
        let Some(qtype) = kernel_qtype(info.ggml_dtype) else {
            return Ok(None);
        };
        let len = qtype
            .matrix_bytes(rows, cols)
            .map_err(|e| Self::bad(name, e))?;
        let start = self.ct.tensor_data_offset + info.offset;
        let start = usize::try_from(start).map_err(|e| Self::bad(name, e))?;
        if start.saturating_add(len) > mmap.len() {
            return Err(Self::bad(
                name,
                format!(
                    "tensor needs {len} bytes at offset {start}, only {} remaining in file",
                    mmap.len().saturating_sub(start)
                ),
            ));
        }
        let data: Arc<dyn AsRef<[u8]> + Send + Sync> = mmap.clone();
        QMatrix::from_shared(qtype, rows, cols, data, start, len)
            .map(Some)
            .map_err(|e| Self::bad(name, e))
    }

    fn bias(&mut self, prefix: &str) -> Result<Option<Tensor>> {
        let bias_name = format!("{prefix}.bias");
        if self.has(&bias_name) {
            Ok(Some(self.vector(&bias_name)?))
        } else {
            Ok(None)
        }
    }

    /// Linear maps of the same input, e.g. `["blk.0.attn_q", ...]` with
    /// their output sizes.
    fn projection(&mut self, parts: &[(String, usize)], cols: usize) -> Result<Projection> {
        let mut kernel_parts = Vec::new();
        for (prefix, rows) in parts {
            match self.kernel_matrix(&format!("{prefix}.weight"), *rows, cols)? {
                Some(m) => kernel_parts.push((m, self.bias(prefix)?)),
                None => break,
            }
        }
        if kernel_parts.len() == parts.len() {
            return Ok(Projection::kernel(kernel_parts));
        }
        let mut candle_parts = Vec::new();
        for (prefix, rows) in parts {
            let name = format!("{prefix}.weight");
            let weight = self.qtensor(&name)?;
            Self::check_shape(&name, weight.shape().dims(), *rows, cols)?;
            let matmul = if self.reference {
                QMatMul::Tensor(weight.dequantize(self.device)?)
            } else {
                QMatMul::from_qtensor(weight)?
            };
            candle_parts.push((matmul, self.bias(prefix)?));
        }
        Ok(Projection::candle(candle_parts))
    }
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

/// Checks `tokens` to be run after `n_past` cached positions (non-empty,
/// known ids, within the context) and returns the positions needed.
pub(crate) fn check_step(cfg: &ModelConfig, n_past: usize, tokens: &[u32]) -> Result<usize> {
    if tokens.is_empty() {
        return Err(ModelError::EmptyPrompt);
    }
    if let Some(bad) = tokens.iter().find(|t| **t as usize >= cfg.vocab_size) {
        return Err(ModelError::BadToken(*bad));
    }
    let total = n_past + tokens.len();
    if total > cfg.context_length {
        return Err(ModelError::ContextOverflow {
            needed: total,
            limit: cfg.context_length,
        });
    }
    Ok(total)
}

/// Reads the model and its tokenizer from a GGUF file.
pub fn load(path: &Path, device: &Device) -> Result<(Model, Tokenizer)> {
    load_with(path, device, &LoadOptions::default())
}

/// [`load`] with options (e.g. the matrix backend).
pub fn load_with(
    path: &Path,
    device: &Device,
    options: &LoadOptions,
) -> Result<(Model, Tokenizer)> {
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
    let backend = match options.backend {
        Some(Backend::Kernels) if device.is_cpu() => Backend::Kernels,
        Some(Backend::F32Reference) => Backend::F32Reference,
        Some(_) => Backend::Candle,
        None if device.is_cpu() && !crate::runtime::candle_kernels() => Backend::Kernels,
        None => Backend::Candle,
    };
    let mmap = if backend == Backend::Kernels {
        let file = File::open(path).map_err(io_err)?;
        // SAFETY: the mapping is read-only; a model file modified while in
        // use can give wrong numbers but not unsafety in our reads, which
        // are bounds-checked against the mapping's length.
        let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(io_err)?;
        Some(Arc::new(mmap))
    } else {
        None
    };
    let loader = Loader {
        ct: &ct,
        reader,
        device,
        mmap,
        reference: backend == Backend::F32Reference,
    };
    let fused = options.fused && crate::runtime::forward_path() == crate::ForwardPath::Fused;
    let model = Model::from_loader(loader, config, meta.len(), backend, fused)?;
    Ok((model, tokenizer))
}

impl Model {
    fn from_loader(
        mut ld: Loader<'_>,
        config: ModelConfig,
        file_size: u64,
        backend: Backend,
        fused: bool,
    ) -> Result<Self> {
        let device = ld.device.clone();
        let h = config.hidden_size;
        let kv = config.n_kv_heads * config.head_dim;
        let embed = match ld.kernel_matrix("token_embd.weight", config.vocab_size, h)? {
            Some(m) => Embedding::Kernel(m),
            None => Embedding::Candle(ld.qtensor("token_embd.weight")?),
        };
        let mut layers = Vec::with_capacity(config.n_layers);
        for idx in 0..config.n_layers {
            let p = format!("blk.{idx}");
            let ffn = config.ffn_size;
            layers.push(Layer {
                attn_norm: ld.vector(&format!("{p}.attn_norm.weight"))?,
                qkv: ld.projection(
                    &[
                        (format!("{p}.attn_q"), h),
                        (format!("{p}.attn_k"), kv),
                        (format!("{p}.attn_v"), kv),
                    ],
                    h,
                )?,
                o: ld.projection(&[(format!("{p}.attn_output"), h)], h)?,
                ffn_norm: ld.vector(&format!("{p}.ffn_norm.weight"))?,
                gate_up: ld.projection(
                    &[(format!("{p}.ffn_gate"), ffn), (format!("{p}.ffn_up"), ffn)],
                    h,
                )?,
                down: ld.projection(&[(format!("{p}.ffn_down"), h)], ffn)?,
            });
        }
        let norm = ld.vector("output_norm.weight")?;
        let output = if ld.has("output.weight") {
            ld.projection(&[("output".to_string(), config.vocab_size)], h)?
        } else {
            // Tied embeddings.
            ld.projection(&[("token_embd".to_string(), config.vocab_size)], h)?
        };
        // RoPE tables, computed once: as tensors for the candle forward and
        // as plain vectors for the fused one.
        let (cos_table, sin_table) = crate::host::rope_tables(&config);
        let half = config.head_dim / 2;
        let n_pos = config.context_length;
        let cos = Tensor::from_vec(cos_table.clone(), (n_pos, half), &device)?;
        let sin = Tensor::from_vec(sin_table.clone(), (n_pos, half), &device)?;
        let mut model = Self {
            config,
            device,
            embed,
            layers,
            norm,
            output,
            backend,
            cos,
            sin,
            file_size,
            host: None,
        };
        if backend == Backend::Kernels && fused {
            model.host = model.host_model(cos_table, sin_table)?;
            if model.host.is_some() {
                // Only the fused forward runs from here on.
                model.cos = Tensor::zeros((0, half), DType::F32, &model.device)?;
                model.sin = model.cos.clone();
            }
        }
        Ok(model)
    }

    /// The fused path's view of the weights, if every matrix runs on the
    /// kernels (the matrices share the mapped file; only norms and biases
    /// are copied).
    fn host_model(&self, cos: Vec<f32>, sin: Vec<f32>) -> Result<Option<HostModel>> {
        let Embedding::Kernel(embed) = &self.embed else {
            return Ok(None);
        };
        let vec = |t: &Tensor| -> Result<Vec<f32>> { Ok(t.to_dtype(DType::F32)?.to_vec1()?) };
        let bias =
            |b: &Option<Tensor>| -> Result<Option<Vec<f32>>> { b.as_ref().map(vec).transpose() };
        let mut layers = Vec::with_capacity(self.layers.len());
        for l in &self.layers {
            let (Some(qkv), Some(o), Some(gu), Some(down)) = (
                l.qkv.kernel_parts(),
                l.o.kernel_parts(),
                l.gate_up.kernel_parts(),
                l.down.kernel_parts(),
            ) else {
                return Ok(None);
            };
            layers.push(HostLayer {
                attn_norm: vec(&l.attn_norm)?,
                q: qkv[0].0.clone(),
                k: qkv[1].0.clone(),
                v: qkv[2].0.clone(),
                q_bias: bias(qkv[0].1)?,
                k_bias: bias(qkv[1].1)?,
                v_bias: bias(qkv[2].1)?,
                o: o[0].0.clone(),
                o_bias: bias(o[0].1)?,
                ffn_norm: vec(&l.ffn_norm)?,
                gate: gu[0].0.clone(),
                up: gu[1].0.clone(),
                down: down[0].0.clone(),
            });
        }
        let Some(out) = self.output.kernel_parts() else {
            return Ok(None);
        };
        Ok(Some(HostModel {
            embed: embed.clone(),
            layers,
            norm: vec(&self.norm)?,
            output: out[0].0.clone(),
            output_bias: bias(out[0].1)?,
            cos,
            sin,
        }))
    }

    /// Whether the fused CPU forward is in use.
    pub fn fused(&self) -> bool {
        self.host.is_some()
    }

    /// The matrix code in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    fn embed(&self, tokens: &[u32]) -> Result<Tensor> {
        match &self.embed {
            Embedding::Candle(q) => {
                let ids = Tensor::new(tokens, &self.device)?;
                Ok(q.embedding(&ids)?)
            }
            Embedding::Kernel(m) => {
                let h = m.cols();
                let mut data = vec![0f32; tokens.len() * h];
                for (token, row) in tokens.iter().zip(data.chunks_mut(h)) {
                    dequantize_row(m, *token as usize, row)
                        .map_err(|_| ModelError::BadToken(*token))?;
                }
                Ok(Tensor::from_vec(data, (tokens.len(), h), &self.device)?)
            }
        }
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

    /// Computes logits for the first `n` tokens of the vocabulary only (a
    /// view of the output matrix's first rows; the tokenizer's ids are in
    /// merge order, so they are the commonest). For a draft model: its
    /// steps get cheaper and its proposals come from those tokens; the
    /// model that checks them is unchanged, so the output is too. Only the
    /// fused CPU path supports it; elsewhere it returns `false` and does
    /// nothing.
    pub fn limit_vocab(&mut self, n: usize) -> bool {
        match &mut self.host {
            Some(host) if n > 0 && host.output_bias.is_none() => match host.output.first_rows(n) {
                Ok(view) => {
                    host.output = view;
                    true
                }
                Err(_) => false,
            },
            _ => false,
        }
    }

    /// A fresh session with an empty KV cache.
    pub fn new_session(&self) -> Result<Session> {
        Session::new(&self.config, &self.device, self.host.is_some())
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
        if let Some(host) = &self.host {
            let mut logits = host.forward(&self.config, &mut [(session, tokens)])?;
            return Ok(logits.swap_remove(0));
        }
        let n = tokens.len();
        let hidden = self.forward_segments(&mut [(session, tokens)])?;
        let last = hidden.narrow(0, n - 1, 1)?;
        let mut logits = self.logits(&last)?;
        Ok(logits.swap_remove(0))
    }

    /// [`Model::forward`] writing the logits into `logits`, reusing its
    /// memory (the decode loop calls this once per token).
    pub fn forward_into(
        &self,
        session: &mut Session,
        tokens: &[u32],
        logits: &mut Vec<f32>,
    ) -> Result<()> {
        if let Some(host) = &self.host {
            return host.forward_into(&self.config, &mut [(session, tokens)], logits);
        }
        *logits = self.forward(session, tokens)?;
        Ok(())
    }

    /// Runs `tokens` after what `session` holds (one step, at most
    /// [`PREFILL_CHUNK`] tokens) and returns the logits after every one of
    /// them: row `i` predicts the token after `tokens[i]`.
    pub fn forward_all(&self, session: &mut Session, tokens: &[u32]) -> Result<Vec<Vec<f32>>> {
        if tokens.is_empty() {
            return Err(ModelError::EmptyPrompt);
        }
        if let Some(host) = &self.host {
            return host.forward_all(&self.config, session, tokens);
        }
        let hidden = self.forward_segments(&mut [(session, tokens)])?;
        self.logits(&hidden)
    }

    /// One decode step for several sessions at once: `tokens[i]` goes after
    /// what `sessions[i]` holds. The weights are read once for all of them.
    /// Returns one row of logits per session.
    pub fn forward_batch(
        &self,
        sessions: &mut [&mut Session],
        tokens: &[u32],
    ) -> Result<Vec<Vec<f32>>> {
        let mut segments = one_token_segments(sessions, tokens)?;
        if let Some(host) = &self.host {
            return host.forward(&self.config, &mut segments);
        }
        let hidden = self.forward_segments(&mut segments)?;
        self.logits(&hidden)
    }

    /// [`Model::forward_batch`] writing the logits into `logits`
    /// (`sessions.len() x vocab`, row `i` for session `i`), reusing its
    /// memory: a server's decode loop allocates nothing per step.
    pub fn forward_batch_into(
        &self,
        sessions: &mut [&mut Session],
        tokens: &[u32],
        logits: &mut Vec<f32>,
    ) -> Result<()> {
        let mut segments = one_token_segments(sessions, tokens)?;
        if let Some(host) = &self.host {
            return host.forward_into(&self.config, &mut segments, logits);
        }
        let hidden = self.forward_segments(&mut segments)?;
        let rows = self.logits(&hidden)?;
        logits.clear();
        for row in &rows {
            logits.extend_from_slice(row);
        }
        Ok(())
    }

    fn logits(&self, hidden: &Tensor) -> Result<Vec<Vec<f32>>> {
        let normed = candle_nn::ops::rms_norm(hidden, &self.norm, self.config.rms_norm_eps as f32)?;
        let logits = self.output.forward_one(&normed)?;
        Ok(logits.to_dtype(DType::F32)?.to_vec2::<f32>()?)
    }

    /// The transformer over several independent segments (a session and the
    /// tokens that follow it): linear layers run on all tokens together,
    /// attention per segment against its own cache. Returns the final hidden
    /// states of all tokens, in order.
    fn forward_segments(&self, segments: &mut [(&mut Session, &[u32])]) -> Result<Tensor> {
        struct Segment {
            offset: usize,
            n_new: usize,
            n_past: usize,
            mask: Option<Tensor>,
            cos: Tensor,
            sin: Tensor,
        }
        let cfg = &self.config;
        let mut all_tokens = Vec::new();
        let mut plan = Vec::with_capacity(segments.len());
        for (session, tokens) in segments.iter_mut() {
            let n_new = tokens.len();
            let n_past = session.len();
            let total = check_step(cfg, n_past, tokens)?;
            session.reserve(total, &self.device)?;
            plan.push(Segment {
                offset: all_tokens.len(),
                n_new,
                n_past,
                mask: if n_new > 1 {
                    Some(causal_mask(n_new, n_past, &self.device)?)
                } else {
                    None
                },
                cos: self.cos.narrow(0, n_past, n_new)?,
                sin: self.sin.narrow(0, n_past, n_new)?,
            });
            all_tokens.extend_from_slice(tokens);
        }

        let mut x = self.embed(&all_tokens)?;
        let (n_heads, n_kv, hd) = (cfg.n_heads, cfg.n_kv_heads, cfg.head_dim);
        let group = n_heads / n_kv;
        let scale = 1.0 / (hd as f64).sqrt();
        let eps = cfg.rms_norm_eps as f32;

        for (layer_idx, layer) in self.layers.iter().enumerate() {
            let h = candle_nn::ops::rms_norm(&x, &layer.attn_norm, eps)?;
            let mut qkv = layer.qkv.forward(&h)?.into_iter();
            let (Some(q_all), Some(k_all_new), Some(v_all_new)) =
                (qkv.next(), qkv.next(), qkv.next())
            else {
                return Err(ModelError::BadTensor {
                    name: format!("blk.{layer_idx}.attn_qkv"),
                    reason: "expected three projections".into(),
                });
            };
            let mut ys = Vec::with_capacity(plan.len());
            for (seg, (session, _)) in plan.iter().zip(segments.iter_mut()) {
                let n_new = seg.n_new;
                let total = seg.n_past + n_new;
                // (n_new, heads * hd) -> (1, heads, n_new, hd)
                let to_heads = |t: &Tensor, heads: usize| -> Result<Tensor> {
                    Ok(t.narrow(0, seg.offset, n_new)?
                        .reshape((n_new, heads, hd))?
                        .transpose(0, 1)?
                        .contiguous()?
                        .unsqueeze(0)?)
                };
                let q =
                    candle_nn::rotary_emb::rope(&to_heads(&q_all, n_heads)?, &seg.cos, &seg.sin)?;
                let k =
                    candle_nn::rotary_emb::rope(&to_heads(&k_all_new, n_kv)?, &seg.cos, &seg.sin)?;
                let v = to_heads(&v_all_new, n_kv)?;
                let (k_cache, v_cache) =
                    session.append(layer_idx, &k.squeeze(0)?, &v.squeeze(0)?, seg.n_past)?;

                // Grouped-query attention without copying K/V per head: the
                // `group` query heads that share a KV head are stacked as rows.
                let q = q.reshape((n_kv, group * n_new, hd))?;
                let att = (q.matmul(&k_cache.t()?)? * scale)?;
                let att = match &seg.mask {
                    Some(mask) => att
                        .reshape((n_kv, group, n_new, total))?
                        .broadcast_add(mask)?
                        .reshape((n_kv, group * n_new, total))?,
                    None => att,
                };
                let att = candle_nn::ops::softmax_last_dim(&att)?;
                let y = att.matmul(&v_cache)?; // (n_kv, group * n_new, hd)
                ys.push(
                    y.reshape((n_heads, n_new, hd))?
                        .transpose(0, 1)?
                        .reshape((n_new, n_heads * hd))?,
                );
            }
            let y = if ys.len() == 1 {
                ys.swap_remove(0)
            } else {
                Tensor::cat(&ys, 0)?
            };
            x = (x + layer.o.forward_one(&y)?)?;

            let h = candle_nn::ops::rms_norm(&x, &layer.ffn_norm, eps)?;
            let mut gate_up = layer.gate_up.forward(&h)?.into_iter();
            let (Some(gate), Some(up)) = (gate_up.next(), gate_up.next()) else {
                return Err(ModelError::BadTensor {
                    name: format!("blk.{layer_idx}.ffn_gate_up"),
                    reason: "expected two projections".into(),
                });
            };
            let gate = candle_nn::ops::silu(&gate)?;
            x = (x + layer.down.forward_one(&(gate * up)?)?)?;
        }
        for (session, tokens) in segments.iter_mut() {
            session.commit(tokens);
        }
        Ok(x)
    }
}

/// One decode step's segments: `tokens[i]` after `sessions[i]`.
fn one_token_segments<'a>(
    sessions: &'a mut [&mut Session],
    tokens: &'a [u32],
) -> Result<Vec<(&'a mut Session, &'a [u32])>> {
    if sessions.len() != tokens.len() || tokens.is_empty() {
        return Err(ModelError::EmptyPrompt);
    }
    Ok(sessions
        .iter_mut()
        .zip(tokens.chunks(1))
        .map(|(s, t)| (&mut **s, t))
        .collect())
}

impl AsRef<Model> for Model {
    fn as_ref(&self) -> &Model {
        self
    }
}
