//! The matmul driver: validates sizes, quantizes activations once into the
//! caller's `Scratch`, cuts the output rows into tasks for the thread pool and
//! runs the per-format dot kernels over (row, token-tile) pairs.

use crate::formats::{quantize_row_q8_0, quantize_row_q8_k, ActKind, QK, QK_K};
use crate::pool::global_pool;
use crate::simd::{simd_level, SimdLevel};
use crate::{KernelError, QMatrix, QType};

/// Tokens processed per pass over a weight row: each weight block is loaded
/// and unpacked once for up to `TILE` tokens (AVX-512, with 32 vector
/// registers; 4 for the other levels, see `tile_for`).
pub(crate) const TILE: usize = 8;

/// Tokens per kernel call at `level` (bounded by the registers it has).
fn tile_for(level: SimdLevel) -> usize {
    match level {
        SimdLevel::Avx512 | SimdLevel::Amx => 8,
        _ => 4,
    }
}

/// Fewest tokens for which `SimdLevel::Amx` uses the AMX tiles (below, the
/// AVX-512 kernels run). A call costs AMX about the same for 1..16 tokens
/// (one token tile, dominated by unpacking the weights); measured on the
/// 0.5B shapes at 1 thread it breaks even with AVX-512 at ~5 tokens
/// (Q5_0/Q8_0/Q4_K) to ~9 (Q6_K), and at 8 tokens is 1.3-1.6x faster
/// (Q6_K: 10% slower).
pub(crate) const AMX_MIN_TOKENS: usize = 8;

/// Target size of the weight rows one task keeps hot while it walks all token
/// tiles (prefill); about half of a typical L2.
const ROW_BLOCK_BYTES: usize = 256 * 1024;

/// How far ahead of the next row `run_task` prefetches weights (measured on
/// the 0.5B decode loop: 0 -> 8.3 GB/s per thread, 2048 -> 10-11 GB/s;
/// 1 KiB and 4-16 KiB were worse).
const PREFETCH_BYTES: usize = 2048;

fn prefetch(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    crate::x86::prefetch(bytes);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

/// Quantized activations of one call, borrowed by the kernels.
///
/// Token `t` uses `qs[t * cols..][..cols]`, and its scales
/// `d[t * cols / block..]` (block = 32 for Q8_0, 256 for Q8_K) and, for Q8_K,
/// `bsums[t * cols / 16..]`.
#[derive(Clone, Copy)]
pub(crate) struct Acts<'a> {
    pub x: &'a [f32],
    pub q8_qs: &'a [i8],
    pub q8_d: &'a [f32],
    /// Per Q8_0 block: `d * sum(qs)`, for kernels that shift the weights to
    /// unsigned bytes (`sum((w + o) * y) - o * sum(y)`).
    pub q8_s: &'a [f32],
    pub qk_qs: &'a [i8],
    pub qk_d: &'a [f32],
    pub qk_bsums: &'a [i16],
    pub cols: usize,
}

/// A dot kernel: `out[i] = dot(row, token t0 + i)` for `i < n`
/// (`n <= tile_for(level)`).
pub(crate) type DotFn = fn(row: &[u8], acts: &Acts, t0: usize, n: usize, out: &mut [f32; TILE]);

/// A four-row dot kernel: `rows` holds four consecutive weight rows and
/// `out[r][i] = dot(row r, token t0 + i)` for `i < n` (`n <= TILE`).
pub(crate) type Dot4Fn =
    fn(rows: &[u8], acts: &Acts, t0: usize, n: usize, out: &mut [[f32; TILE]; 4]);

/// Reusable buffers for one thread of callers: the quantized activations and
/// the task list. Grows to the largest call seen, then never allocates.
#[derive(Default)]
pub struct Scratch {
    q8_qs: Vec<i8>,
    q8_d: Vec<f32>,
    q8_s: Vec<f32>,
    qk_qs: Vec<i8>,
    qk_d: Vec<f32>,
    qk_bsums: Vec<i16>,
    tasks: Vec<Task>,
    /// The activations re-laid out for the AMX path (see `amx::AmxActs`).
    amx_q8_b: Vec<i8>,
    amx_q8_d: Vec<f32>,
    amx_qk_b: Vec<i8>,
    amx_qk_d: Vec<f32>,
    amx_qk_bs: Vec<i32>,
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch::default()
    }
}

#[derive(Clone, Copy, Debug)]
struct Task {
    mat: usize,
    r0: usize,
    r1: usize,
    /// Runs on the AMX tiles.
    amx: bool,
}

/// `out[t * w.rows() + r] = dot(row r of w, x[t * w.cols()..][..w.cols()])`
/// for `t < n_tokens`: `x` is `n_tokens x cols`, `out` is `n_tokens x rows`,
/// both row-major. Activations are quantized to 8 bits first (as llama.cpp
/// does), except for F16/F32 weights.
pub fn matmul(
    w: &QMatrix,
    x: &[f32],
    n_tokens: usize,
    out: &mut [f32],
    scratch: &mut Scratch,
) -> Result<(), KernelError> {
    matmul_multi(&[w], x, n_tokens, &mut [out], scratch)
}

/// Several matrices with the same `cols` applied to the same activations in
/// one call (Q/K/V, gate/up): the activations are quantized once and all rows
/// of all matrices share one thread-pool dispatch. `outs[i]` is
/// `n_tokens x ws[i].rows()`.
pub fn matmul_multi(
    ws: &[&QMatrix],
    x: &[f32],
    n_tokens: usize,
    outs: &mut [&mut [f32]],
    scratch: &mut Scratch,
) -> Result<(), KernelError> {
    matmul_multi_at(simd_level(), ws, x, n_tokens, outs, scratch)
}

/// Raw output pointer shared by the tasks of one call.
#[derive(Clone, Copy)]
struct OutPtr {
    ptr: *mut f32,
    len: usize,
}
// SAFETY: tasks write disjoint (matrix, row range) cells, see `run_task`.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

/// `matmul_multi` at an explicit SIMD level (tests run every level).
pub(crate) fn matmul_multi_at(
    level: SimdLevel,
    ws: &[&QMatrix],
    x: &[f32],
    n_tokens: usize,
    outs: &mut [&mut [f32]],
    scratch: &mut Scratch,
) -> Result<(), KernelError> {
    matmul_multi_with(level, AMX_MIN_TOKENS, ws, x, n_tokens, outs, scratch)
}

/// `matmul_multi_at` with the AMX token threshold as a parameter (tests
/// force the AMX path on small calls).
pub(crate) fn matmul_multi_with(
    level: SimdLevel,
    amx_min_tokens: usize,
    ws: &[&QMatrix],
    x: &[f32],
    n_tokens: usize,
    outs: &mut [&mut [f32]],
    scratch: &mut Scratch,
) -> Result<(), KernelError> {
    let level = if level.is_supported() {
        level
    } else {
        SimdLevel::Scalar
    };
    let Some(first) = ws.first() else {
        return Ok(());
    };
    let cols = first.cols();
    if ws.len() != outs.len() {
        return Err(KernelError::Mismatch(format!(
            "{} matrices but {} outputs",
            ws.len(),
            outs.len()
        )));
    }
    for (i, (w, o)) in ws.iter().zip(outs.iter()).enumerate() {
        if w.cols() != cols {
            return Err(KernelError::Mismatch(format!(
                "matrix {i} has {} cols, matrix 0 has {cols}",
                w.cols()
            )));
        }
        let expected = n_tokens
            .checked_mul(w.rows())
            .ok_or(KernelError::Overflow {
                rows: n_tokens,
                cols: w.rows(),
            })?;
        if o.len() != expected {
            return Err(KernelError::WrongLength {
                what: "matmul out",
                expected,
                got: o.len(),
            });
        }
    }
    let x_len = n_tokens.checked_mul(cols).ok_or(KernelError::Overflow {
        rows: n_tokens,
        cols,
    })?;
    if x.len() != x_len {
        return Err(KernelError::WrongLength {
            what: "matmul x",
            expected: x_len,
            got: x.len(),
        });
    }
    if n_tokens == 0 {
        return Ok(());
    }

    // AMX: every matrix of a covered type goes through the tiles (which
    // includes every type with 8-bit activations).
    #[cfg(target_arch = "x86_64")]
    let use_amx = level == SimdLevel::Amx
        && n_tokens >= amx_min_tokens.max(1)
        && ws.iter().any(|w| crate::amx::covers(w.qtype()));
    #[cfg(not(target_arch = "x86_64"))]
    let use_amx = {
        let _ = amx_min_tokens;
        false
    };

    // Quantize the activations once per kind needed.
    let need_q8 = ws.iter().any(|w| w.qtype().act_kind() == ActKind::Q8_0);
    let need_qk = ws.iter().any(|w| w.qtype().act_kind() == ActKind::Q8K);
    if need_q8 {
        resize(&mut scratch.q8_qs, x_len, 0);
        resize(&mut scratch.q8_d, x_len / QK, 0.0);
        resize(&mut scratch.q8_s, x_len / QK, 0.0);
        quantize_q8_0_at(
            level,
            x,
            &mut scratch.q8_qs[..x_len],
            &mut scratch.q8_d[..x_len / QK],
        );
        // The block sums only serve the AVX-512 kernels' unsigned-weight trick.
        if !use_amx {
            for ((s, q), d) in scratch.q8_s[..x_len / QK]
                .iter_mut()
                .zip(scratch.q8_qs[..x_len].chunks_exact(QK))
                .zip(&scratch.q8_d[..x_len / QK])
            {
                *s = d * q.iter().map(|&v| v as i32).sum::<i32>() as f32;
            }
        }
    }
    if need_qk {
        resize(&mut scratch.qk_qs, x_len, 0);
        resize(&mut scratch.qk_d, x_len / QK_K, 0.0);
        resize(&mut scratch.qk_bsums, x_len / 16, 0);
        quantize_q8_k_at(
            level,
            x,
            &mut scratch.qk_qs[..x_len],
            &mut scratch.qk_d[..x_len / QK_K],
            &mut scratch.qk_bsums[..x_len / 16],
        );
    }
    #[cfg(target_arch = "x86_64")]
    let amx_acts = {
        if use_amx {
            pack_amx(scratch, need_q8, need_qk, n_tokens, cols);
        }
        crate::amx::AmxActs {
            q8_b: &scratch.amx_q8_b,
            q8_d: &scratch.amx_q8_d,
            qk_b: &scratch.amx_qk_b,
            qk_d: &scratch.amx_qk_d,
            qk_bs: &scratch.amx_qk_bs,
            cols,
        }
    };
    let acts = Acts {
        x,
        q8_qs: if need_q8 {
            &scratch.q8_qs[..x_len]
        } else {
            &[]
        },
        q8_d: if need_q8 {
            &scratch.q8_d[..x_len / QK]
        } else {
            &[]
        },
        q8_s: if need_q8 {
            &scratch.q8_s[..x_len / QK]
        } else {
            &[]
        },
        qk_qs: if need_qk {
            &scratch.qk_qs[..x_len]
        } else {
            &[]
        },
        qk_d: if need_qk {
            &scratch.qk_d[..x_len / QK_K]
        } else {
            &[]
        },
        qk_bsums: if need_qk {
            &scratch.qk_bsums[..x_len / 16]
        } else {
            &[]
        },
        cols,
    };

    // Cut rows into tasks: ~8 per thread for load balance, at least 16 rows.
    let pool = global_pool();
    let n_threads = pool.n_threads();
    let total_rows: usize = ws.iter().map(|w| w.rows()).sum();
    // (AMX tasks: whole 16-row tiles.)
    let per_task = total_rows
        .div_ceil(n_threads * 8)
        .max(16)
        .next_multiple_of(if use_amx { 16 } else { 4 });
    scratch.tasks.clear();
    for (mat, w) in ws.iter().enumerate() {
        #[cfg(target_arch = "x86_64")]
        let amx = use_amx && crate::amx::covers(w.qtype());
        #[cfg(not(target_arch = "x86_64"))]
        let amx = false;
        let mut r0 = 0;
        while r0 < w.rows() {
            let r1 = (r0 + per_task).min(w.rows());
            scratch.tasks.push(Task { mat, r0, r1, amx });
            r0 = r1;
        }
    }
    let kernels: [DotFn; 8] = std::array::from_fn(|i| select(level, ALL_TYPES[i]));
    let kernels4: [Option<Dot4Fn>; 8] = std::array::from_fn(|i| select4(level, ALL_TYPES[i]));
    let out_ptrs: [OutPtr; 8];
    // Up to 8 matrices per call without allocating; more go through a Vec.
    let many: Vec<OutPtr>;
    let ptrs: &[OutPtr] = if outs.len() <= 8 {
        out_ptrs = std::array::from_fn(|i| {
            outs.get_mut(i).map_or(
                OutPtr {
                    ptr: std::ptr::null_mut(),
                    len: 0,
                },
                |o| OutPtr {
                    ptr: o.as_mut_ptr(),
                    len: o.len(),
                },
            )
        });
        &out_ptrs[..outs.len()]
    } else {
        many = outs
            .iter_mut()
            .map(|o| OutPtr {
                ptr: o.as_mut_ptr(),
                len: o.len(),
            })
            .collect();
        &many
    };
    let tasks = &scratch.tasks;
    let tile = tile_for(level);
    let run = |i: usize| {
        let t = tasks[i];
        let w = ws[t.mat];
        #[cfg(target_arch = "x86_64")]
        if t.amx {
            let p = ptrs[t.mat];
            // SAFETY: `t.amx` implies level Amx is supported (AMX usable,
            // AVX-512 present) and `w` is a covered type; `amx_acts` was
            // packed for this call; tasks cover disjoint row ranges of each
            // output and `outs` is not otherwise accessed until the pool
            // call returns (as in `run_task`).
            unsafe { crate::amx::run_task(w, &amx_acts, n_tokens, t.r0..t.r1, p.ptr, p.len) };
            return;
        }
        let ti = type_index(w.qtype());
        let kernel = Kernel {
            one: kernels[ti],
            four: kernels4[ti],
        };
        run_task(w, kernel, tile, &acts, n_tokens, t.r0..t.r1, ptrs[t.mat]);
    };
    pool.run(tasks.len(), &run);
    Ok(())
}

/// Re-lays out the quantized activations in `scratch` for the AMX path.
#[cfg(target_arch = "x86_64")]
fn pack_amx(scratch: &mut Scratch, need_q8: bool, need_qk: bool, n_tokens: usize, cols: usize) {
    use crate::amx::{n_tiles, pack_b, pack_per_token, TOK};
    let padded = n_tiles(n_tokens) * TOK;
    let x_len = n_tokens * cols;
    if need_q8 {
        let nb = cols / QK;
        resize(&mut scratch.amx_q8_b, padded * cols, 0);
        resize(&mut scratch.amx_q8_d, padded * nb, 0.0);
        pack_b(
            &scratch.q8_qs[..x_len],
            n_tokens,
            cols,
            &mut scratch.amx_q8_b,
        );
        let d = &scratch.q8_d;
        pack_per_token(n_tokens, nb, &mut scratch.amx_q8_d, |t, b| d[t * nb + b]);
    }
    if need_qk {
        let (nsb, n16) = (cols / QK_K, cols / 16);
        resize(&mut scratch.amx_qk_b, padded * cols, 0);
        resize(&mut scratch.amx_qk_d, padded * nsb, 0.0);
        resize(&mut scratch.amx_qk_bs, padded * nsb * 4, 0);
        pack_b(
            &scratch.qk_qs[..x_len],
            n_tokens,
            cols,
            &mut scratch.amx_qk_b,
        );
        let d = &scratch.qk_d;
        pack_per_token(n_tokens, nsb, &mut scratch.amx_qk_d, |t, b| d[t * nsb + b]);
        // Sums of 32 (sub-blocks 2p and 2p + 1 of each super-block) as i16 pairs.
        let bs = &scratch.qk_bsums;
        let sum32 =
            |t: usize, j: usize| bs[t * n16 + 2 * j] as i32 + bs[t * n16 + 2 * j + 1] as i32;
        pack_per_token(n_tokens, nsb * 4, &mut scratch.amx_qk_bs, |t, i| {
            (sum32(t, 2 * i) & 0xFFFF) | (sum32(t, 2 * i + 1) << 16)
        });
    }
}

fn resize<T: Copy>(v: &mut Vec<T>, n: usize, fill: T) {
    if v.len() < n {
        v.resize(n, fill);
    }
}

const ALL_TYPES: [QType; 8] = [
    QType::F32,
    QType::F16,
    QType::Q4_0,
    QType::Q5_0,
    QType::Q8_0,
    QType::Q4_K,
    QType::Q5_K,
    QType::Q6_K,
];

fn type_index(q: QType) -> usize {
    match q {
        QType::F32 => 0,
        QType::F16 => 1,
        QType::Q4_0 => 2,
        QType::Q5_0 => 3,
        QType::Q8_0 => 4,
        QType::Q4_K => 5,
        QType::Q5_K => 6,
        QType::Q6_K => 7,
    }
}

/// The dot kernel for a (supported) level and type.
pub(crate) fn select(level: SimdLevel, qtype: QType) -> DotFn {
    match level {
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx2 if level.is_supported() => crate::x86::avx2::select(qtype),
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 | SimdLevel::Amx if level.is_supported() => {
            use crate::x86::{avx512, avx512_k, avx512_q32};
            avx512_q32::select(qtype)
                .or_else(|| avx512_k::select(qtype))
                .unwrap_or_else(|| avx512::select(qtype))
        }
        _ => crate::scalar::select(qtype),
    }
}

/// The four-row kernel for a (supported) level and type, if there is one.
pub(crate) fn select4(level: SimdLevel, qtype: QType) -> Option<Dot4Fn> {
    match level {
        #[cfg(target_arch = "x86_64")]
        SimdLevel::Avx512 | SimdLevel::Amx if level.is_supported() => {
            crate::x86_rows4::select(qtype)
        }
        _ => {
            let _ = qtype;
            None
        }
    }
}

/// A type's kernels at one level: one row at a time, and four at a time
/// where the level has that.
#[derive(Clone, Copy)]
struct Kernel {
    one: DotFn,
    four: Option<Dot4Fn>,
}

fn quantize_q8_k_at(level: SimdLevel, x: &[f32], qs: &mut [i8], d: &mut [f32], bsums: &mut [i16]) {
    #[cfg(target_arch = "x86_64")]
    if level >= SimdLevel::Avx2 && level.is_supported() {
        crate::x86::quantize_q8_k_avx2(x, qs, d, bsums);
        return;
    }
    let _ = level;
    quantize_row_q8_k(x, qs, d, bsums);
}

fn quantize_q8_0_at(level: SimdLevel, x: &[f32], qs: &mut [i8], d: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if level >= SimdLevel::Avx2 && level.is_supported() {
        crate::x86::quantize_q8_0_avx2(x, qs, d);
        return;
    }
    let _ = level;
    quantize_row_q8_0(x, qs, d);
}

/// Rows `rows` of `w` times every token, written into `out`.
fn run_task(
    w: &QMatrix,
    kernel: Kernel,
    tile: usize,
    acts: &Acts,
    n_tokens: usize,
    rows: std::ops::Range<usize>,
    out: OutPtr,
) {
    let n_rows = w.rows();
    let rb = w.row_bytes();
    let bytes = w.bytes();
    // A multiple of 4, so the four-row kernels cover whole blocks.
    let rows_per_block = (ROW_BLOCK_BYTES / rb).max(4) / 4 * 4;
    let mut res = [0f32; TILE];
    let mut res4 = [[0f32; TILE]; 4];
    let put = |r: usize, t0: usize, vals: &[f32]| {
        for (i, &v) in vals.iter().enumerate() {
            let idx = (t0 + i) * n_rows + r;
            assert!(idx < out.len);
            // SAFETY: `idx` is in bounds (checked above) and cell
            // (token, r) belongs to this task alone: tasks cover
            // disjoint row ranges of each matrix, and `out` is not
            // otherwise accessed until the pool call returns.
            unsafe { *out.ptr.add(idx) = v };
        }
    };
    let mut b0 = rows.start;
    while b0 < rows.end {
        let b1 = (b0 + rows_per_block).min(rows.end);
        let mut t0 = 0;
        while t0 < n_tokens {
            let n = tile.min(n_tokens - t0);
            let mut r = b0;
            while r < b1 {
                // Four rows at once where the level has a kernel for it.
                let step = if kernel.four.is_some() && r + 4 <= b1 {
                    4
                } else {
                    1
                };
                if t0 == 0 {
                    // Stream the weights ahead of use: the hardware prefetcher
                    // stops at 4 KiB page boundaries.
                    let ahead = (r + 1) * rb + PREFETCH_BYTES;
                    let end = (ahead + step * rb).min(bytes.len());
                    if ahead < end {
                        prefetch(&bytes[ahead..end]);
                    }
                }
                match kernel.four {
                    Some(four) if step == 4 => {
                        four(&bytes[r * rb..(r + 4) * rb], acts, t0, n, &mut res4);
                        for (k, row) in res4.iter().enumerate() {
                            put(r + k, t0, &row[..n]);
                        }
                    }
                    _ => {
                        (kernel.one)(&bytes[r * rb..(r + 1) * rb], acts, t0, n, &mut res);
                        put(r, t0, &res[..n]);
                    }
                }
                r += step;
            }
            t0 += n;
        }
        b0 = b1;
    }
}
