//! Per-request state: the KV cache and the tokens it holds.

use candle_core::{DType, Device, Tensor};

use half::f16;
use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};

use crate::config::ModelConfig;
use crate::error::Result;

/// Smallest cache allocation, in positions.
const MIN_CAPACITY: usize = 256;

/// The fused path stores keys in blocks of this many positions: for each
/// block and KV head, `head_dim` rows of 16 values (component `d` of the 16
/// keys), so attention reads one block as a contiguous run of memory and
/// computes 16 scores per vector. Capacities are multiples of it.
pub(crate) const HOST_KEY_BLOCK: usize = 16;

/// The KV cache of one sequence. Keys and values live in preallocated
/// tensors of shape `(n_kv_heads, capacity, head_dim)` per layer and are
/// written in place; the capacity doubles when it runs out, so there is no
/// whole-cache copy per token.
pub struct Session {
    layers: Vec<(Tensor, Tensor)>,
    /// The fused CPU path's cache: per layer, keys (blocked, see
    /// [`Session::host_layer`]) and values (`capacity x (n_kv_heads *
    /// head_dim)` position-major rows), as f16 bits: half the memory and
    /// half the bytes attention reads, as llama.cpp's default cache type.
    host: Option<Vec<(Vec<u16>, Vec<u16>)>>,
    capacity: usize,
    tokens: Vec<u32>,
    n_layers: usize,
    n_kv_heads: usize,
    head_dim: usize,
    max_positions: usize,
    /// The draft model's session for speculative decoding (see
    /// [`crate::DraftModel`]), kept beside the target's so that prefix reuse
    /// between requests covers both; tagged with the draft model's address.
    /// The draft sees a window of the text: the session holds the tokens
    /// from `offset` on.
    draft: Option<DraftState>,
}

struct DraftState {
    model: usize,
    session: Box<Session>,
    offset: usize,
}

impl Session {
    pub(crate) fn new(config: &ModelConfig, _device: &Device, host: bool) -> Result<Self> {
        Ok(Self {
            layers: Vec::new(),
            host: host.then(Vec::new),
            capacity: 0,
            tokens: Vec::new(),
            n_layers: config.n_layers,
            n_kv_heads: config.n_kv_heads,
            head_dim: config.head_dim,
            max_positions: config.context_length,
            draft: None,
        })
    }

    /// The draft model's session attached to this one and the position of
    /// its first token in the text (created empty the first time, or when
    /// the draft model changes).
    pub(crate) fn draft_session(
        &mut self,
        draft: &crate::Model,
    ) -> Result<(&mut Session, &mut usize)> {
        let id = draft as *const crate::Model as usize;
        if self.draft.as_ref().map(|d| d.model) != Some(id) {
            self.draft = Some(DraftState {
                model: id,
                session: Box::new(draft.new_session()?),
                offset: 0,
            });
        }
        match &mut self.draft {
            Some(d) => Ok((&mut d.session, &mut d.offset)),
            None => unreachable!("set above"),
        }
    }

    /// Number of positions held in the cache.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The tokens whose keys and values are cached, in order.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Allocated positions.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes held by the cache.
    pub fn memory_bytes(&self) -> usize {
        let draft = self.draft.as_ref().map_or(0, |d| d.session.memory_bytes());
        draft
            + match &self.host {
                Some(layers) => layers
                    .iter()
                    .map(|(k, v)| (k.capacity() + v.capacity()) * 2)
                    .sum(),
                None => self.layers.len() * 2 * self.n_kv_heads * self.capacity * self.head_dim * 4,
            }
    }

    /// Forgets everything after the first `n_tokens` positions.
    pub fn truncate(&mut self, n_tokens: usize) {
        self.tokens.truncate(n_tokens);
    }

    /// Length of the common prefix of the cached tokens and `tokens`.
    pub fn common_prefix_len(&self, tokens: &[u32]) -> usize {
        self.tokens
            .iter()
            .zip(tokens)
            .take_while(|(a, b)| a == b)
            .count()
    }

    /// An independent copy of this session (copies the cache; later writes
    /// to one never show in the other).
    pub fn fork(&self) -> Result<Self> {
        let layers = self
            .layers
            .iter()
            .map(|(k, v)| Ok((k.copy()?, v.copy()?)))
            .collect::<Result<Vec<_>>>()?;
        // Only the positions in use are copied, into a cache sized for them;
        // the fork grows on demand.
        let row = self.n_kv_heads * self.head_dim;
        let held = self.tokens.len();
        let (host, capacity) = match &self.host {
            Some(layers) => {
                let cap = held
                    .next_power_of_two()
                    .max(MIN_CAPACITY)
                    .min(self.capacity.max(MIN_CAPACITY))
                    .next_multiple_of(HOST_KEY_BLOCK);
                let copied = layers
                    .iter()
                    .map(|(kt, v)| {
                        let used = held.next_multiple_of(HOST_KEY_BLOCK) * row;
                        let mut k_copy = kt[..used.min(kt.len())].to_vec();
                        k_copy.resize(cap * row, 0);
                        let mut v_copy = v[..held * row].to_vec();
                        v_copy.resize(cap * row, 0);
                        (k_copy, v_copy)
                    })
                    .collect();
                (Some(copied), cap)
            }
            None => (None, self.capacity),
        };
        Ok(Self {
            layers,
            host,
            capacity,
            tokens: self.tokens.clone(),
            n_layers: self.n_layers,
            n_kv_heads: self.n_kv_heads,
            head_dim: self.head_dim,
            max_positions: self.max_positions,
            // A fork (a sample of a batch) decodes without a draft.
            draft: None,
        })
    }

    /// Makes room for `n_positions` positions.
    pub(crate) fn reserve(&mut self, n_positions: usize, device: &Device) -> Result<()> {
        if n_positions <= self.capacity && self.layers.len() == self.n_layers {
            return Ok(());
        }
        let new_capacity = self.grown_capacity(n_positions);
        let shape = (self.n_kv_heads, new_capacity, self.head_dim);
        let n_keep = self.tokens.len().min(self.capacity);
        let mut layers = Vec::with_capacity(self.n_layers);
        for idx in 0..self.n_layers {
            let k = Tensor::zeros(shape, DType::F32, device)?;
            let v = Tensor::zeros(shape, DType::F32, device)?;
            if let Some((old_k, old_v)) = self.layers.get(idx) {
                if n_keep > 0 {
                    k.slice_set(&old_k.narrow(1, 0, n_keep)?.contiguous()?, 1, 0)?;
                    v.slice_set(&old_v.narrow(1, 0, n_keep)?.contiguous()?, 1, 0)?;
                }
            }
            layers.push((k, v));
        }
        self.layers = layers;
        self.capacity = new_capacity;
        Ok(())
    }

    /// Writes keys and values `(n_kv_heads, n_new, head_dim)` of one layer at
    /// position `at`, and returns views of all cached keys and values.
    pub(crate) fn append(
        &mut self,
        layer: usize,
        k: &Tensor,
        v: &Tensor,
        at: usize,
    ) -> Result<(Tensor, Tensor)> {
        let n_new = k.dim(1)?;
        let (k_cache, v_cache) = &self.layers[layer];
        k_cache.slice_set(&k.contiguous()?, 1, at)?;
        v_cache.slice_set(&v.contiguous()?, 1, at)?;
        Ok((
            k_cache.narrow(1, 0, at + n_new)?,
            v_cache.narrow(1, 0, at + n_new)?,
        ))
    }

    /// The capacity to allocate for `n_positions`: the next power of two,
    /// at least `MIN_CAPACITY`, at most the context (unless asked for more).
    fn grown_capacity(&self, n_positions: usize) -> usize {
        n_positions
            .next_power_of_two()
            .max(MIN_CAPACITY)
            .min(self.max_positions.max(n_positions))
    }

    /// Makes room for `n_positions` positions in the fused path's cache
    /// (capacity doubles; growing appends blocks, nothing moves).
    pub(crate) fn reserve_host(&mut self, n_positions: usize) {
        let row = self.n_kv_heads * self.head_dim;
        let have_layers = self.host.as_ref().is_some_and(|l| l.len() == self.n_layers);
        if have_layers && n_positions <= self.capacity {
            return;
        }
        let new_capacity = self
            .grown_capacity(n_positions)
            .next_multiple_of(HOST_KEY_BLOCK)
            .max(self.capacity);
        let layers = self.host.get_or_insert_with(Vec::new);
        if layers.len() != self.n_layers {
            layers.clear();
            layers.resize_with(self.n_layers, Default::default);
        }
        for (kt, v) in layers.iter_mut() {
            kt.resize(new_capacity * row, 0);
            v.resize(new_capacity * row, 0);
        }
        self.capacity = new_capacity;
    }

    /// Writes the keys and values of new positions `at..` of one layer
    /// (rows of `n_kv_heads * head_dim`) into the fused path's cache,
    /// rounded to f16.
    pub(crate) fn write_host(&mut self, layer: usize, at: usize, k: &[f32], v: &[f32]) {
        let (n_kv, hd) = (self.n_kv_heads, self.head_dim);
        let row = n_kv * hd;
        let layers = self.host.as_mut().expect("host cache");
        let (kt, vc) = &mut layers[layer];
        for (p, k_row) in k.chunks_exact(row).enumerate() {
            let pos = at + p;
            let block = (pos / HOST_KEY_BLOCK) * row * HOST_KEY_BLOCK;
            let lane = pos % HOST_KEY_BLOCK;
            for (r, value) in k_row.iter().enumerate() {
                kt[block + r * HOST_KEY_BLOCK + lane] = f16::from_f32(*value).to_bits();
            }
        }
        vc[at * row..at * row + v.len()]
            .reinterpret_cast_mut::<f16>()
            .convert_from_f32_slice(v);
    }

    /// The cached keys and values of one layer (fused path), as f16 bits.
    /// Keys are blocked: component `d` of KV head `h`'s key at position `j`
    /// is at `(j / 16) * 16 * n_kv_heads * head_dim + (h * head_dim + d) * 16 + j % 16`;
    /// values are position-major rows of `n_kv_heads * head_dim`.
    pub(crate) fn host_layer(&self, layer: usize) -> (&[u16], &[u16]) {
        let layers = self.host.as_ref().expect("host cache");
        let (k, v) = &layers[layer];
        (k, v)
    }

    /// Records tokens whose keys and values were written by a forward step.
    pub(crate) fn commit(&mut self, tokens: &[u32]) {
        self.tokens.extend_from_slice(tokens);
    }
}
