//! The fused CPU forward pass: the whole transformer on plain `f32` slices
//! and our quantized kernels, with no candle tensors in the loop.
//!
//! Every buffer of a forward step lives in a per-thread [`Work`] that grows
//! to the largest step seen and is then reused, so the decode loop does not
//! allocate (apart from the logits row it returns). The matrix products,
//! attention and the element-wise FFN activation run on the kernels' thread
//! pool; RMSNorm, RoPE and the residual adds are cheap and run on the caller.
//!
//! Used when the model is on the CPU with the kernel backend and every weight
//! has a kernel format; otherwise the candle path in `model.rs` runs.

// Kernels index several per-head arrays in one loop.
#![allow(clippy::needless_range_loop)]

use std::cell::RefCell;

use codegen_kernels::{dequantize_row, matmul, matmul_multi, parallel_for, QMatrix, Scratch};
use half::f16;
use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};

use crate::config::ModelConfig;
use crate::error::{ModelError, Result};
use crate::session::Session;
use crate::vecmath::{dot, exp, simd, softmax, Simd};

/// One layer's weights.
pub(crate) struct HostLayer {
    pub attn_norm: Vec<f32>,
    pub q: QMatrix,
    pub k: QMatrix,
    pub v: QMatrix,
    pub q_bias: Option<Vec<f32>>,
    pub k_bias: Option<Vec<f32>>,
    pub v_bias: Option<Vec<f32>>,
    pub o: QMatrix,
    pub o_bias: Option<Vec<f32>>,
    pub ffn_norm: Vec<f32>,
    pub gate: QMatrix,
    pub up: QMatrix,
    pub down: QMatrix,
}

/// All weights of the fused path.
pub(crate) struct HostModel {
    pub embed: QMatrix,
    pub layers: Vec<HostLayer>,
    pub norm: Vec<f32>,
    pub output: QMatrix,
    pub output_bias: Option<Vec<f32>>,
    /// `cos[pos * half + i]`, `sin[...]` for every position.
    pub cos: Vec<f32>,
    pub sin: Vec<f32>,
}

/// Per-thread buffers of one forward step.
#[derive(Default)]
struct Work {
    x: Vec<f32>,
    xn: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    att: Vec<f32>,
    tmp: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    scratch: Scratch,
}

fn grow(v: &mut Vec<f32>, n: usize) -> &mut [f32] {
    if v.len() < n {
        v.resize(n, 0.0);
    }
    &mut v[..n]
}

thread_local! {
    static WORK: RefCell<Work> = RefCell::new(Work::default());
    /// Attention scores of one task, and its keys and values converted to
    /// f32 where the kernel does not read f16.
    static SCORES: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// A raw output pointer shared by tasks that write disjoint ranges.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32, usize);
// SAFETY: every task writes a range no other task touches (see the callers),
// and the buffer outlives the pool call.
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// # Safety
    /// `start..start + len` must be in bounds and written by one task only.
    // The pointer, not `&self`, is what the slice borrows from.
    #[allow(clippy::mut_from_ref)]
    unsafe fn slice(&self, start: usize, len: usize) -> &mut [f32] {
        assert!(start + len <= self.1);
        unsafe { std::slice::from_raw_parts_mut(self.0.add(start), len) }
    }
}

/// Where the new tokens of one session sit in the step.
struct Segment {
    /// First row in the step's activations.
    offset: usize,
    n_new: usize,
    n_past: usize,
    /// Index of its first attention task (one per new token and KV head).
    first_task: usize,
}

fn kernel_err(name: &str, e: impl ToString) -> ModelError {
    ModelError::BadTensor {
        name: name.to_string(),
        reason: e.to_string(),
    }
}

impl HostModel {
    /// The transformer over several independent segments (a session and the
    /// tokens that follow it); returns the logits of the last token of every
    /// segment.
    pub(crate) fn forward(
        &self,
        cfg: &ModelConfig,
        segments: &mut [(&mut Session, &[u32])],
    ) -> Result<Vec<Vec<f32>>> {
        let mut logits = Vec::new();
        self.forward_into(cfg, segments, &mut logits)?;
        let vocab = self.output.rows();
        Ok(if segments.len() == 1 {
            vec![logits]
        } else {
            logits.chunks(vocab).map(<[f32]>::to_vec).collect()
        })
    }

    /// [`HostModel::forward`] writing the logits of each segment's last
    /// token into `logits` (`segments.len() x vocab`), reusing its memory.
    pub(crate) fn forward_into(
        &self,
        cfg: &ModelConfig,
        segments: &mut [(&mut Session, &[u32])],
        logits: &mut Vec<f32>,
    ) -> Result<()> {
        self.run(cfg, segments, logits, false)
    }

    /// Logits of every token of one segment (`tokens.len() x vocab`), for
    /// checking several draft tokens in one pass.
    pub(crate) fn forward_all(
        &self,
        cfg: &ModelConfig,
        session: &mut Session,
        tokens: &[u32],
    ) -> Result<Vec<Vec<f32>>> {
        let mut logits = Vec::new();
        self.run(cfg, &mut [(session, tokens)], &mut logits, true)?;
        Ok(logits
            .chunks(self.output.rows())
            .map(<[f32]>::to_vec)
            .collect())
    }

    fn run(
        &self,
        cfg: &ModelConfig,
        segments: &mut [(&mut Session, &[u32])],
        logits: &mut Vec<f32>,
        all_rows: bool,
    ) -> Result<()> {
        let mut plan = Vec::with_capacity(segments.len());
        let mut n = 0;
        for (session, tokens) in segments.iter_mut() {
            let n_new = tokens.len();
            let n_past = session.len();
            let total = crate::model::check_step(cfg, n_past, tokens)?;
            session.reserve_host(total);
            plan.push(Segment {
                offset: n,
                n_new,
                n_past,
                first_task: n * cfg.n_kv_heads,
            });
            n += n_new;
        }
        WORK.with(|w| {
            let mut w = w.borrow_mut();
            self.forward_in(cfg, &mut w, segments, &plan, n, logits, all_rows)?;
            for (session, tokens) in segments.iter_mut() {
                session.commit(tokens);
            }
            Ok(())
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn forward_in(
        &self,
        cfg: &ModelConfig,
        w: &mut Work,
        segments: &mut [(&mut Session, &[u32])],
        plan: &[Segment],
        n: usize,
        logits: &mut Vec<f32>,
        all_rows: bool,
    ) -> Result<()> {
        let h = cfg.hidden_size;
        let hd = cfg.head_dim;
        let kv_dim = cfg.n_kv_heads * hd;
        let ffn = cfg.ffn_size;
        let eps = cfg.rms_norm_eps as f32;
        let Work {
            x,
            xn,
            q,
            k,
            v,
            att,
            tmp,
            gate,
            up,
            scratch,
        } = w;
        let x = grow(x, n * h);
        let xn = grow(xn, n * h);
        let q = grow(q, n * h);
        let k = grow(k, n * kv_dim);
        let v = grow(v, n * kv_dim);
        let att = grow(att, n * h);
        let tmp = grow(tmp, n * h);
        let gate = grow(gate, n * ffn);
        let up = grow(up, n * ffn);

        let mut row = 0;
        for (_, tokens) in segments.iter() {
            for &t in tokens.iter() {
                dequantize_row(&self.embed, t as usize, &mut x[row * h..(row + 1) * h])
                    .map_err(|_| ModelError::BadToken(t))?;
                row += 1;
            }
        }

        for (li, layer) in self.layers.iter().enumerate() {
            rms_norm(x, &layer.attn_norm, eps, xn);
            matmul_multi(
                &[&layer.q, &layer.k, &layer.v],
                xn,
                n,
                &mut [&mut *q, &mut *k, &mut *v],
                scratch,
            )
            .map_err(|e| kernel_err(&format!("blk.{li}.attn_qkv"), e))?;
            add_bias(q, layer.q_bias.as_deref());
            add_bias(k, layer.k_bias.as_deref());
            add_bias(v, layer.v_bias.as_deref());
            for seg in plan {
                for i in 0..seg.n_new {
                    let pos = seg.n_past + i;
                    let r = seg.offset + i;
                    self.rope(&mut q[r * h..(r + 1) * h], pos, hd);
                    self.rope(&mut k[r * kv_dim..(r + 1) * kv_dim], pos, hd);
                }
            }
            for (seg, (session, _)) in plan.iter().zip(segments.iter_mut()) {
                let rows = seg.offset * kv_dim..(seg.offset + seg.n_new) * kv_dim;
                session.write_host(li, seg.n_past, &k[rows.clone()], &v[rows]);
            }
            self.attention(cfg, li, segments, plan, q, att);
            matmul(&layer.o, att, n, tmp, scratch)
                .map_err(|e| kernel_err(&format!("blk.{li}.attn_output"), e))?;
            add_bias(tmp, layer.o_bias.as_deref());
            add_into(x, tmp);

            rms_norm(x, &layer.ffn_norm, eps, xn);
            matmul_multi(
                &[&layer.gate, &layer.up],
                xn,
                n,
                &mut [&mut *gate, &mut *up],
                scratch,
            )
            .map_err(|e| kernel_err(&format!("blk.{li}.ffn_gate_up"), e))?;
            silu_mul(gate, up);
            matmul(&layer.down, gate, n, tmp, scratch)
                .map_err(|e| kernel_err(&format!("blk.{li}.ffn_down"), e))?;
            add_into(x, tmp);
        }

        // Logits of each segment's last token (or of every token).
        let n_out = if all_rows { n } else { plan.len() };
        let xs = &mut xn[..n_out * h];
        if all_rows {
            xs.copy_from_slice(&x[..n * h]);
        } else {
            for (j, seg) in plan.iter().enumerate() {
                let r = seg.offset + seg.n_new - 1;
                xs[j * h..(j + 1) * h].copy_from_slice(&x[r * h..(r + 1) * h]);
            }
        }
        let normed = &mut tmp[..n_out * h];
        rms_norm(xs, &self.norm, eps, normed);
        let vocab = self.output.rows();
        logits.resize(n_out * vocab, 0.0);
        matmul(&self.output, normed, n_out, logits, scratch)
            .map_err(|e| kernel_err("output", e))?;
        add_bias(logits, self.output_bias.as_deref());
        Ok(())
    }

    /// NeoX-style rotary embedding (halves rotated) of every head in `x`.
    fn rope(&self, x: &mut [f32], pos: usize, hd: usize) {
        let half = hd / 2;
        let cos = &self.cos[pos * half..(pos + 1) * half];
        let sin = &self.sin[pos * half..(pos + 1) * half];
        for head in x.chunks_exact_mut(hd) {
            let (a, b) = head.split_at_mut(half);
            for i in 0..half {
                let (x0, x1) = (a[i], b[i]);
                a[i] = x0 * cos[i] - x1 * sin[i];
                b[i] = x0 * sin[i] + x1 * cos[i];
            }
        }
    }

    /// Causal attention of the new tokens against each segment's cache.
    /// One task per (segment, KV head, new token); the query heads sharing
    /// a KV head are done together so each key and value is read once.
    fn attention(
        &self,
        cfg: &ModelConfig,
        layer: usize,
        segments: &[(&mut Session, &[u32])],
        plan: &[Segment],
        q: &[f32],
        att: &mut [f32],
    ) {
        let hd = cfg.head_dim;
        let n_kv = cfg.n_kv_heads;
        let group = cfg.n_heads / n_kv;
        let h = cfg.hidden_size;
        let kv_dim = n_kv * hd;
        let scale = 1.0 / (hd as f32).sqrt();
        let total = plan.last().map_or(0, |s| s.first_task + s.n_new * n_kv);
        let out = SharedOut(att.as_mut_ptr(), att.len());
        let level = simd();
        let task = |t: usize| {
            // Task index -> (segment, token, KV head).
            let si = plan.partition_point(|s| s.first_task <= t) - 1;
            let seg = &plan[si];
            let local = t - seg.first_task;
            let (i, kvh) = (local / n_kv, local % n_kv);
            let row = seg.offset + i;
            let n_keys = seg.n_past + i + 1;
            let (kc, vc) = segments[si].0.host_layer(layer);
            let qs = &q[row * h + kvh * group * hd..][..group * hd];
            // SAFETY: this task alone writes the `group` heads of KV head
            // `kvh` for token `row`.
            let o = unsafe { out.slice(row * h + kvh * group * hd, group * hd) };
            SCORES.with(|s| {
                let (s, buf) = &mut *s.borrow_mut();
                let scores = grow(s, group * n_keys);
                attend_cache(
                    level,
                    &Attend {
                        q: qs,
                        k: kc,
                        v: vc,
                        kv_stride: kv_dim,
                        kv_off: kvh * hd,
                        n_keys,
                        hd,
                        group,
                        scale,
                    },
                    scores,
                    o,
                    buf,
                );
            });
        };
        parallel_for(total, &task);
    }
}

/// Inputs of one attention task; keys and values as f32 or as f16 bits
/// (the session's cache).
struct Attend<'a, T = f32> {
    /// `group` query heads of `hd` values each.
    q: &'a [f32],
    /// Cached keys in blocks of 16 positions: component `d` of this KV
    /// head's key at position `j` is at
    /// `(j / 16) * 16 * kv_stride + (kv_off + d) * 16 + j % 16`; the last
    /// block is complete (positions past `n_keys` hold anything).
    k: &'a [T],
    /// Cached values: position `j` of this KV head starts at
    /// `j * kv_stride + kv_off`.
    v: &'a [T],
    kv_stride: usize,
    kv_off: usize,
    n_keys: usize,
    hd: usize,
    group: usize,
    scale: f32,
}

/// Attention over the session's f16 cache. AVX-512 reads it as it is; the
/// other levels (and shapes the AVX-512 kernel does not take) first convert
/// this KV head's keys and values to f32 in `buf`.
fn attend_cache(
    level: Simd,
    a: &Attend<u16>,
    scores: &mut [f32],
    out: &mut [f32],
    buf: &mut Vec<f32>,
) {
    // SAFETY: AVX-512F detected at run time.
    #[cfg(target_arch = "x86_64")]
    if level == Simd::Avx512 && unsafe { attend_zmm_any(a, scores, out) } {
        return;
    }
    let (hd, n) = (a.hd, a.n_keys);
    let block = hd * KEY_BLOCK;
    let n_blocks = n.div_ceil(KEY_BLOCK);
    let (k32, v32) = grow(buf, n_blocks * block + n * hd).split_at_mut(n_blocks * block);
    for (b, dst) in k32.chunks_exact_mut(block).enumerate() {
        let src = &a.k[b * KEY_BLOCK * a.kv_stride + a.kv_off * KEY_BLOCK..][..block];
        src.reinterpret_cast::<f16>().convert_to_f32_slice(dst);
    }
    for (j, dst) in v32.chunks_exact_mut(hd).enumerate() {
        let src = &a.v[j * a.kv_stride + a.kv_off..][..hd];
        src.reinterpret_cast::<f16>().convert_to_f32_slice(dst);
    }
    attend(
        level,
        &Attend {
            q: a.q,
            k: k32,
            v: v32,
            kv_stride: hd,
            kv_off: 0,
            n_keys: n,
            hd,
            group: a.group,
            scale: a.scale,
        },
        scores,
        out,
    );
}

impl<'a, T> Attend<'a, T> {
    /// The same task over other keys and values of the same layout.
    #[cfg(test)]
    fn with_kv<'b, U>(&self, k: &'b [U], v: &'b [U]) -> Attend<'b, U>
    where
        'a: 'b,
    {
        Attend {
            q: self.q,
            k,
            v,
            kv_stride: self.kv_stride,
            kv_off: self.kv_off,
            n_keys: self.n_keys,
            hd: self.hd,
            group: self.group,
            scale: self.scale,
        }
    }
}

fn attend(level: Simd, a: &Attend, scores: &mut [f32], out: &mut [f32]) {
    match level {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the features were detected at run time.
        Simd::Avx512 => unsafe { attend_avx512(a, scores, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Simd::Avx2 => unsafe { attend_avx2(a, scores, out) },
        Simd::Generic => attend_body::<false>(a, scores, out),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn attend_avx512(a: &Attend, scores: &mut [f32], out: &mut [f32]) {
    // SAFETY: AVX-512F checked by the caller.
    if !unsafe { attend_zmm_any(a, scores, out) } {
        attend_body::<true>(a, scores, out)
    }
}

/// `attend_zmm` for the shapes it takes (head size a multiple of 32, up to
/// 8 query heads per KV head); false for the others.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn attend_zmm_any<T: Load16>(a: &Attend<T>, scores: &mut [f32], out: &mut [f32]) -> bool {
    if !a.hd.is_multiple_of(32) || a.n_keys == 0 {
        return false;
    }
    // SAFETY (all arms): AVX-512F checked by the caller; sizes are checked
    // inside.
    unsafe {
        match a.group {
            1 => attend_zmm::<T, 1>(a, scores, out),
            2 => attend_zmm::<T, 2>(a, scores, out),
            3 => attend_zmm::<T, 3>(a, scores, out),
            4 => attend_zmm::<T, 4>(a, scores, out),
            5 => attend_zmm::<T, 5>(a, scores, out),
            6 => attend_zmm::<T, 6>(a, scores, out),
            7 => attend_zmm::<T, 7>(a, scores, out),
            8 => attend_zmm::<T, 8>(a, scores, out),
            _ => return false,
        }
    }
    true
}

/// 16 consecutive keys or value components as f32.
#[cfg(target_arch = "x86_64")]
trait Load16: Copy {
    /// # Safety
    /// AVX-512F; 16 elements readable at `p`.
    unsafe fn load16(p: *const Self) -> std::arch::x86_64::__m512;
}

#[cfg(target_arch = "x86_64")]
impl Load16 for f32 {
    #[inline(always)]
    unsafe fn load16(p: *const f32) -> std::arch::x86_64::__m512 {
        // SAFETY: the caller's contract.
        unsafe { std::arch::x86_64::_mm512_loadu_ps(p) }
    }
}

/// f16 bits, converted on load.
#[cfg(target_arch = "x86_64")]
impl Load16 for u16 {
    #[inline(always)]
    unsafe fn load16(p: *const u16) -> std::arch::x86_64::__m512 {
        use std::arch::x86_64::*;
        // SAFETY: the caller's contract.
        unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i)) }
    }
}

/// `attend_g` in AVX-512 intrinsics, so that the `G` score accumulators (16
/// keys each) and the `2 G` value accumulators (32 components each) stay in
/// registers with no bounds checks in the loops (the generic version spilled
/// them to the stack). Keys past `n_keys` in the last block are computed and
/// never stored.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn attend_zmm<T: Load16, const G: usize>(
    a: &Attend<T>,
    scores: &mut [f32],
    out: &mut [f32],
) {
    use std::arch::x86_64::*;
    let size = std::mem::size_of::<T>();
    let (hd, n) = (a.hd, a.n_keys);
    assert!(n > 0 && hd.is_multiple_of(32));
    assert!(scores.len() >= G * n && out.len() >= G * hd && a.q.len() >= G * hd);
    let last_block = (n - 1) / KEY_BLOCK * KEY_BLOCK;
    assert!(last_block * a.kv_stride + a.kv_off * KEY_BLOCK + hd * KEY_BLOCK <= a.k.len());
    assert!((n - 1) * a.kv_stride + a.kv_off + hd <= a.v.len());
    let (kp, qp, vp) = (a.k.as_ptr(), a.q.as_ptr(), a.v.as_ptr());
    let scale = _mm512_set1_ps(a.scale);
    {
        let sp = scores.as_mut_ptr();
        let mut j0 = 0;
        while j0 < n {
            // SAFETY: block `j0` lies within `a.k` (checked above for the last one).
            let block = unsafe { kp.add(j0 * a.kv_stride + a.kv_off * KEY_BLOCK) };
            let mut acc = [_mm512_setzero_ps(); G];
            // The next block (16 positions on) is in another page: its lines
            // are fetched one per component, as the hardware prefetcher
            // stops at page boundaries.
            let next = (j0 + KEY_BLOCK < n)
                // SAFETY: block j0 + 16 < n lies within `a.k`.
                .then(|| unsafe { block.add(KEY_BLOCK * a.kv_stride) } as *const i8);
            for d in 0..hd {
                let row = d * KEY_BLOCK * size;
                if let Some(next) = next.filter(|_| row.is_multiple_of(64)) {
                    // SAFETY: a prefetch is a hint; row d of the next block
                    // is inside `a.k`.
                    unsafe { _mm_prefetch::<_MM_HINT_T0>(next.add(row)) };
                }
                // SAFETY: d < hd; the block holds hd rows of 16 keys; q holds G * hd.
                let kd = unsafe { T::load16(block.add(d * KEY_BLOCK)) };
                for g in 0..G {
                    let qv = unsafe { _mm512_set1_ps(*qp.add(g * hd + d)) };
                    acc[g] = _mm512_fmadd_ps(qv, kd, acc[g]);
                }
            }
            let m = (n - j0).min(KEY_BLOCK);
            let mask: __mmask16 = if m == KEY_BLOCK { 0xFFFF } else { (1 << m) - 1 };
            for g in 0..G {
                // SAFETY: keys j0..j0 + m of head g are inside scores[g * n..(g + 1) * n].
                unsafe {
                    _mm512_mask_storeu_ps(sp.add(g * n + j0), mask, _mm512_mul_ps(acc[g], scale))
                };
            }
            j0 += KEY_BLOCK;
        }
    }
    for g in 0..G {
        softmax(&mut scores[g * n..(g + 1) * n]);
    }
    let sp = scores.as_ptr();
    let op = out.as_mut_ptr();
    for dh in (0..hd).step_by(32) {
        let mut acc = [[_mm512_setzero_ps(); 2]; G];
        for j in 0..n {
            if j + V_AHEAD < n {
                // SAFETY: a hint; position j + V_AHEAD < n is inside `a.v`.
                unsafe {
                    let ahead = vp.add((j + V_AHEAD) * a.kv_stride + a.kv_off + dh) as *const i8;
                    _mm_prefetch::<_MM_HINT_T0>(ahead);
                    if 32 * size > 64 {
                        _mm_prefetch::<_MM_HINT_T0>(ahead.add(64));
                    }
                }
            }
            // SAFETY: position j < n is inside `a.v` (checked above).
            let (v0, v1) = unsafe {
                let vj = vp.add(j * a.kv_stride + a.kv_off + dh);
                (T::load16(vj), T::load16(vj.add(16)))
            };
            for g in 0..G {
                // SAFETY: g * n + j < G * n <= scores.len().
                let p = unsafe { _mm512_set1_ps(*sp.add(g * n + j)) };
                acc[g][0] = _mm512_fmadd_ps(p, v0, acc[g][0]);
                acc[g][1] = _mm512_fmadd_ps(p, v1, acc[g][1]);
            }
        }
        for g in 0..G {
            // SAFETY: g * hd + dh + 32 <= G * hd <= out.len().
            unsafe {
                _mm512_storeu_ps(op.add(g * hd + dh), acc[g][0]);
                _mm512_storeu_ps(op.add(g * hd + dh + 16), acc[g][1]);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn attend_avx2(a: &Attend, scores: &mut [f32], out: &mut [f32]) {
    attend_body::<true>(a, scores, out)
}

/// `a * b + c`, fused where the caller's target features have FMA
/// (`FMA = true`; without the feature `mul_add` would be a library call).
#[inline(always)]
fn fmadd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

#[inline(always)]
fn attend_body<const FMA: bool>(a: &Attend, scores: &mut [f32], out: &mut [f32]) {
    if a.hd.is_multiple_of(PV_WIDTH) {
        match a.group {
            1 => return attend_g::<1, FMA>(a, scores, out),
            2 => return attend_g::<2, FMA>(a, scores, out),
            3 => return attend_g::<3, FMA>(a, scores, out),
            4 => return attend_g::<4, FMA>(a, scores, out),
            5 => return attend_g::<5, FMA>(a, scores, out),
            6 => return attend_g::<6, FMA>(a, scores, out),
            7 => return attend_g::<7, FMA>(a, scores, out),
            8 => return attend_g::<8, FMA>(a, scores, out),
            _ => {}
        }
    }
    attend_any(a, scores, out)
}

/// Keys per score block (one vector of scores per query head).
const KEY_BLOCK: usize = crate::session::HOST_KEY_BLOCK;
/// Positions ahead of use at which the attention prefetches values.
const V_AHEAD: usize = 8;

/// Asks for the cache line holding `at[0]` (a hint: the attention walks
/// keys block by block, each in another page, where the hardware
/// prefetcher stops).
///
/// Measured with these prefetches (here and in `attend_zmm`), 0.5B, 2
/// threads, alternating runs, medians:
/// - `codegen bench speed` (512-token prompt, 64 generated), 6 runs each:
///   AVX-512 prefill 496 -> 511 tok/s, decode 77.7 -> 80.2 tok/s;
///   `CODEGEN_SIMD=avx2`, 3 runs: prefill 184 -> 183, decode 47.5 -> 51.4.
/// - Time in attention per decode step of 8 users, 128-token completions
///   (`codegen bench serve`): 5.4-5.6 ms -> 4.8 ms.
#[inline(always)]
fn prefetch_line(at: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint and never faults; SSE is part of x86_64.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
            at.as_ptr() as *const i8
        )
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}

/// Output values accumulated at once per query head in the value pass.
const PV_WIDTH: usize = 64;

/// Attention for `G` query heads sharing a KV head, with the accumulators
/// in registers: scores for 16 keys at a time from the transposed keys (one
/// key load feeds `G` multiply-adds, no horizontal sums), then the values
/// 64 components at a time.
#[inline(always)]
fn attend_g<const G: usize, const FMA: bool>(a: &Attend, scores: &mut [f32], out: &mut [f32]) {
    let (hd, n) = (a.hd, a.n_keys);
    for j0 in (0..n).step_by(KEY_BLOCK) {
        let block = &a.k[j0 * a.kv_stride + a.kv_off * KEY_BLOCK..][..hd * KEY_BLOCK];
        let next = (j0 + KEY_BLOCK < n).then(|| &a.k[(j0 + KEY_BLOCK) * a.kv_stride..]);
        let mut acc = [[0f32; KEY_BLOCK]; G];
        for d in 0..hd {
            if let Some(next) = next {
                prefetch_line(&next[(a.kv_off + d) * KEY_BLOCK..]);
            }
            let kt = &block[d * KEY_BLOCK..][..KEY_BLOCK];
            for g in 0..G {
                let qv = a.q[g * hd + d];
                for l in 0..KEY_BLOCK {
                    acc[g][l] = fmadd::<FMA>(qv, kt[l], acc[g][l]);
                }
            }
        }
        let m = (n - j0).min(KEY_BLOCK);
        for g in 0..G {
            for l in 0..m {
                scores[g * n + j0 + l] = acc[g][l] * a.scale;
            }
        }
    }
    for g in 0..G {
        softmax(&mut scores[g * n..(g + 1) * n]);
    }
    for dh in (0..hd).step_by(PV_WIDTH) {
        let mut acc = [[0f32; PV_WIDTH]; G];
        for j in 0..n {
            if j + V_AHEAD < n {
                let ahead = &a.v[(j + V_AHEAD) * a.kv_stride + a.kv_off + dh..][..PV_WIDTH];
                for line in ahead.chunks_exact(16) {
                    prefetch_line(line);
                }
            }
            let vj = &a.v[j * a.kv_stride + a.kv_off + dh..][..PV_WIDTH];
            for g in 0..G {
                let p = scores[g * n + j];
                for l in 0..PV_WIDTH {
                    acc[g][l] = fmadd::<FMA>(p, vj[l], acc[g][l]);
                }
            }
        }
        for g in 0..G {
            out[g * hd + dh..g * hd + dh + PV_WIDTH].copy_from_slice(&acc[g]);
        }
    }
}

/// Any group size and head size.
#[inline(always)]
fn attend_any(a: &Attend, scores: &mut [f32], out: &mut [f32]) {
    let (hd, group, n_keys) = (a.hd, a.group, a.n_keys);
    for g in 0..group {
        let q = &a.q[g * hd..(g + 1) * hd];
        let s = &mut scores[g * n_keys..(g + 1) * n_keys];
        s.fill(0.0);
        for j0 in (0..n_keys).step_by(KEY_BLOCK) {
            let block = &a.k[j0 * a.kv_stride + a.kv_off * KEY_BLOCK..][..hd * KEY_BLOCK];
            let m = (n_keys - j0).min(KEY_BLOCK);
            for (d, qv) in q.iter().enumerate() {
                let kt = &block[d * KEY_BLOCK..][..m];
                for (s, k) in s[j0..j0 + m].iter_mut().zip(kt) {
                    *s += qv * k;
                }
            }
        }
        for v in s.iter_mut() {
            *v *= a.scale;
        }
        softmax(s);
    }
    out.fill(0.0);
    for j in 0..n_keys {
        let vj = &a.v[j * a.kv_stride + a.kv_off..][..hd];
        for g in 0..group {
            let p = scores[g * n_keys + j];
            let o = &mut out[g * hd..(g + 1) * hd];
            for (o, v) in o.iter_mut().zip(vj) {
                *o += p * v;
            }
        }
    }
}

/// `gate = silu(gate) * up`, split over the pool.
fn silu_mul(gate: &mut [f32], up: &[f32]) {
    const CHUNK: usize = 16 * 1024;
    let n_chunks = gate.len().div_ceil(CHUNK);
    let len = gate.len();
    let out = SharedOut(gate.as_mut_ptr(), len);
    let level = simd();
    let task = |c: usize| {
        let start = c * CHUNK;
        let end = (start + CHUNK).min(len);
        // SAFETY: chunk `c` belongs to this task alone.
        let g = unsafe { out.slice(start, end - start) };
        silu_mul_chunk(level, g, &up[start..end]);
    };
    if n_chunks <= 1 {
        task(0);
    } else {
        parallel_for(n_chunks, &task);
    }
}

fn silu_mul_chunk(level: Simd, g: &mut [f32], u: &[f32]) {
    match level {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the features were detected at run time.
        Simd::Avx512 => unsafe { silu_mul_avx512(g, u) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Simd::Avx2 => unsafe { silu_mul_avx2(g, u) },
        Simd::Generic => silu_mul_body(g, u),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn silu_mul_avx512(g: &mut [f32], u: &[f32]) {
    silu_mul_body(g, u)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn silu_mul_avx2(g: &mut [f32], u: &[f32]) {
    silu_mul_body(g, u)
}

#[inline(always)]
fn silu_mul_body(g: &mut [f32], u: &[f32]) {
    for (g, u) in g.iter_mut().zip(u) {
        *g = *g / (1.0 + exp(-*g)) * u;
    }
}

/// Row-wise RMSNorm of `x` (rows of `w.len()`) into `out`.
fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let h = w.len();
    for (xr, or) in x.chunks_exact(h).zip(out.chunks_exact_mut(h)) {
        let ss = dot(xr, xr);
        let inv = 1.0 / (ss / h as f32 + eps).sqrt();
        for ((o, xv), wv) in or.iter_mut().zip(xr).zip(w) {
            *o = xv * inv * wv;
        }
    }
}

fn add_bias(y: &mut [f32], bias: Option<&[f32]>) {
    if let Some(b) = bias {
        for row in y.chunks_exact_mut(b.len()) {
            for (y, b) in row.iter_mut().zip(b) {
                *y += b;
            }
        }
    }
}

fn add_into(x: &mut [f32], y: &[f32]) {
    for (x, y) in x.iter_mut().zip(y) {
        *x += y;
    }
}

/// RoPE tables as flat vectors: `cos[pos * half + i]`.
pub(crate) fn rope_tables(config: &ModelConfig) -> (Vec<f32>, Vec<f32>) {
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
    (cos, sin)
}

#[cfg(test)]
mod tests {
    /// Both attention kernels (register-blocked for 1-8 heads per KV head
    /// and head sizes in multiples of 64, and the general one) at every SIMD
    /// level against plain softmax(q k / sqrt(d)) v.
    #[test]
    fn attention_kernels_match_a_plain_computation() {
        use super::{attend, attend_any, attend_cache, Attend, Simd};
        use half::f16;
        // Values that f16 holds exactly, so the f32 and f16 caches agree.
        let r16 = |x: f32| f16::from_f32(x).to_f32();
        let mut seed = 1u32;
        let mut rnd = move || {
            seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        let mut levels = vec![Simd::Generic];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                levels.push(Simd::Avx2);
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                levels.push(Simd::Avx512);
            }
        }
        for (group, hd, n_kv) in [
            (7, 64, 2),
            (6, 128, 2),
            (1, 64, 1),
            (8, 64, 1),
            (3, 32, 2),
            (9, 64, 1),
        ] {
            for n_keys in [1usize, 5, 16, 17, 40, 100] {
                let cap = n_keys.next_multiple_of(16);
                let kv_dim = n_kv * hd;
                let kvh = n_kv - 1;
                let keys: Vec<f32> = (0..n_keys * kv_dim).map(|_| r16(rnd() * 4.0)).collect();
                let v: Vec<f32> = (0..cap * kv_dim).map(|_| r16(rnd())).collect();
                let q: Vec<f32> = (0..group * hd).map(|_| rnd()).collect();
                // Blocked keys; positions past n_keys hold garbage that
                // must not leak into the result.
                let mut kt = vec![1e3f32; kv_dim * cap];
                for j in 0..n_keys {
                    for r in 0..kv_dim {
                        kt[(j / 16) * 16 * kv_dim + r * 16 + j % 16] = keys[j * kv_dim + r];
                    }
                }
                let scale = 1.0 / (hd as f32).sqrt();
                let mut want = vec![0f32; group * hd];
                for g in 0..group {
                    let s: Vec<f64> = (0..n_keys)
                        .map(|j| {
                            (0..hd)
                                .map(|d| {
                                    q[g * hd + d] as f64 * keys[j * kv_dim + kvh * hd + d] as f64
                                })
                                .sum::<f64>()
                                * scale as f64
                        })
                        .collect();
                    let m = s.iter().cloned().fold(f64::MIN, f64::max);
                    let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
                    let z: f64 = e.iter().sum();
                    for d in 0..hd {
                        want[g * hd + d] = (0..n_keys)
                            .map(|j| e[j] / z * v[j * kv_dim + kvh * hd + d] as f64)
                            .sum::<f64>() as f32;
                    }
                }
                let a = Attend {
                    q: &q,
                    k: &kt,
                    v: &v,
                    kv_stride: kv_dim,
                    kv_off: kvh * hd,
                    n_keys,
                    hd,
                    group,
                    scale,
                };
                let check = |got: &[f32], what: &str| {
                    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                        assert!(
                            (g - w).abs() < 2e-5,
                            "{what} group {group} hd {hd} n {n_keys} [{i}]: {g} vs {w}"
                        );
                    }
                };
                let bits = |x: &[f32]| -> Vec<u16> {
                    x.iter().map(|&v| f16::from_f32(v).to_bits()).collect()
                };
                let (kt16, v16) = (bits(&kt), bits(&v));
                let a16 = a.with_kv(&kt16, &v16);
                let mut buf = Vec::new();
                for &level in &levels {
                    let mut scores = vec![0f32; group * n_keys];
                    let mut out = vec![f32::NAN; group * hd];
                    attend(level, &a, &mut scores, &mut out);
                    check(&out, "attend");
                    let mut out = vec![f32::NAN; group * hd];
                    attend_cache(level, &a16, &mut scores, &mut out, &mut buf);
                    check(&out, "attend_cache");
                }
                let mut scores = vec![0f32; group * n_keys];
                let mut out = vec![f32::NAN; group * hd];
                attend_any(&a, &mut scores, &mut out);
                check(&out, "attend_any");
            }
        }
    }
}
