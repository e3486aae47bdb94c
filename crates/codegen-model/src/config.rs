use candle_core::quantized::gguf_file::{Content, Value};

use crate::error::{ModelError, Result};

/// Hyper-parameters of a Qwen2-style decoder, read from GGUF metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub architecture: String,
    pub name: String,
    pub n_layers: usize,
    pub hidden_size: usize,
    pub ffn_size: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub rope_freq_base: f32,
    pub rms_norm_eps: f64,
    pub context_length: usize,
    pub vocab_size: usize,
}

fn get<'a>(ct: &'a Content, key: &str) -> Result<&'a Value> {
    ct.metadata
        .get(key)
        .ok_or_else(|| ModelError::MissingMetadata(key.to_string()))
}

fn get_usize(ct: &Content, key: &str) -> Result<usize> {
    let value = get(ct, key)?;
    let n = match value {
        Value::U8(v) => *v as u64,
        Value::U16(v) => *v as u64,
        Value::U32(v) => *v as u64,
        Value::U64(v) => *v,
        Value::I32(v) if *v >= 0 => *v as u64,
        Value::I64(v) if *v >= 0 => *v as u64,
        _ => return Err(ModelError::MissingMetadata(key.to_string())),
    };
    usize::try_from(n).map_err(|_| ModelError::MissingMetadata(key.to_string()))
}

fn get_f32(ct: &Content, key: &str) -> Result<f32> {
    match get(ct, key)? {
        Value::F32(v) => Ok(*v),
        Value::F64(v) => Ok(*v as f32),
        _ => Err(ModelError::MissingMetadata(key.to_string())),
    }
}

impl ModelConfig {
    /// Reads and checks the architecture and its hyper-parameters.
    pub fn from_gguf(ct: &Content) -> Result<Self> {
        let architecture = match get(ct, "general.architecture")? {
            Value::String(s) => s.clone(),
            _ => return Err(ModelError::MissingMetadata("general.architecture".into())),
        };
        if architecture != "qwen2" {
            return Err(ModelError::UnsupportedArchitecture(architecture));
        }
        let name = match ct.metadata.get("general.name") {
            Some(Value::String(s)) => s.clone(),
            _ => architecture.clone(),
        };
        let a = architecture.as_str();
        let n_heads = get_usize(ct, &format!("{a}.attention.head_count"))?;
        let n_kv_heads = get_usize(ct, &format!("{a}.attention.head_count_kv"))?;
        let hidden_size = get_usize(ct, &format!("{a}.embedding_length"))?;
        let vocab_size = match ct.tensor_infos.get("token_embd.weight") {
            Some(info) => info.shape.dims().first().copied().unwrap_or(0),
            None => 0,
        };
        let config = Self {
            n_layers: get_usize(ct, &format!("{a}.block_count"))?,
            ffn_size: get_usize(ct, &format!("{a}.feed_forward_length"))?,
            head_dim: hidden_size.checked_div(n_heads).unwrap_or(0),
            rope_freq_base: get_f32(ct, &format!("{a}.rope.freq_base")).unwrap_or(10_000.0),
            rms_norm_eps: get_f32(ct, &format!("{a}.attention.layer_norm_rms_epsilon"))? as f64,
            context_length: get_usize(ct, &format!("{a}.context_length")).unwrap_or(32_768),
            architecture,
            name,
            n_heads,
            n_kv_heads,
            hidden_size,
            vocab_size,
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        let bad = |what: &str| {
            Err(ModelError::MissingMetadata(format!(
                "{}: {what}",
                self.architecture
            )))
        };
        if self.n_layers == 0 || self.hidden_size == 0 || self.n_heads == 0 || self.n_kv_heads == 0
        {
            return bad("zero-sized dimension");
        }
        if !self.hidden_size.is_multiple_of(self.n_heads) || !self.head_dim.is_multiple_of(2) {
            return bad("hidden size is not a multiple of the head count");
        }
        if !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return bad("head count is not a multiple of the key/value head count");
        }
        if self.vocab_size == 0 {
            return bad("no token embedding");
        }
        Ok(())
    }
}
