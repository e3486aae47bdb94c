//! Intel AMX (TMUL, int8) matmul for prefill (`SimdLevel::Amx`).
//!
//! The weights are the A operand of the tile dot products (16 weight rows,
//! unpacked to bytes once per task and 16-row block, then reused for every
//! 16-token tile), the activations the B operand: the same 8-bit Q8_0 / Q8_K
//! activations the other levels use, re-laid out once per call in the VNNI
//! layout TMUL wants (per 16-token tile and 32 values: 8 rows of 16 tokens x
//! 4 bytes), with their scales transposed so one 512-bit load gives 16
//! tokens' scales. Each C tile (16 rows x 16 tokens of int32 sums) is stored
//! to L1 and folded into 16 f32 accumulators (one per weight row, 16 tokens
//! wide) with AVX-512. Integer sums are exact, so results match the other
//! levels up to f32 summation order.
//!
//! - Q4_0/Q5_0/Q8_0: signed weights (`q - 8`, `q - 16`, `q`), one `tdpbssd`
//!   per 32-value block (K = 32), folded with `d_w[row] * d_x[token]`; the
//!   fold of 8 blocks overlaps the tile products of the next 8.
//! - Q4_K/Q5_K/Q6_K: the sub-block scale goes into the integers: `p = sc * q`
//!   (at most 1953 for Q4_K/Q5_K, within +-4096 for Q6_K's `sc * (q - 32)`)
//!   split into a low byte (unsigned, `tdpbusd`) and a high byte (signed,
//!   `tdpbssd`), so a whole 256-value super-block accumulates in two C tiles
//!   (4 steps of K = 64 each) and folds once: `d * (C_lo + 256 C_hi)`; the
//!   Q4_K/Q5_K mins go through the activations' 32-value sums with
//!   `vpdpwssd` (integer too), times `-dmin`.
//!
//! Ragged sizes: the activations are padded with zero tokens to a multiple
//! of 16 and the last row block with zero rows; only real cells are written.
//!
//! Tile state is per thread: each task loads its (constant, per-format-kind)
//! tile configuration and releases the tiles when it ends, so no thread
//! keeps AMX state between calls.

#![allow(unused_unsafe)]

use crate::formats::{scale_min_k4, QK, QK_K};
use crate::x86::{bytes_from_bits_32, bytes_from_nibbles_32, f16_to_f32};
use crate::{QMatrix, QType};
use std::arch::asm;
use std::arch::x86_64::*;
use std::cell::RefCell;
use std::ops::Range;
use std::sync::OnceLock;

/// Tokens per B tile (and per accumulator vector).
pub(crate) const TOK: usize = 16;
/// Weight rows per A tile.
const ROWS: usize = 16;
/// Bytes of one B tile: 8 rows of 16 tokens x 4 bytes (32 values).
const B_TILE: usize = 512;
/// Bytes of one stored C tile: 16 rows x 16 i32.
const C_TILE: usize = 1024;

/// Whether the AMX path handles weights of type `q`.
pub(crate) fn covers(q: QType) -> bool {
    matches!(
        q,
        QType::Q4_0 | QType::Q5_0 | QType::Q8_0 | QType::Q4_K | QType::Q5_K | QType::Q6_K
    )
}

/// Whether this CPU has AMX-TILE and AMX-INT8, the OS enabled the tile state
/// (XCR0 bits 17 and 18) and granted this process tile-data permission.
/// Checked (and the permission requested) once per process.
pub(crate) fn is_available() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(detect)
}

fn detect() -> bool {
    // SAFETY: `cpuid` exists on every x86_64 CPU; leaf 7 is only read when the
    // maximum leaf allows it.
    let (l1, l7) = unsafe {
        if __cpuid(0).eax < 7 {
            return false;
        }
        (__cpuid(1), __cpuid_count(7, 0))
    };
    let osxsave = l1.ecx & (1 << 27) != 0;
    let amx_tile = l7.edx & (1 << 24) != 0;
    let amx_int8 = l7.edx & (1 << 25) != 0;
    if !(osxsave && amx_tile && amx_int8) {
        return false;
    }
    // SAFETY: OSXSAVE is set, so `xgetbv` is available.
    let xcr0 = unsafe { xcr0() };
    if xcr0 & (0b11 << 17) != 0b11 << 17 {
        return false;
    }
    request_permission()
}

#[target_feature(enable = "xsave")]
unsafe fn xcr0() -> u64 {
    _xgetbv(0)
}

/// Linux gates the 8 KiB tile-data state behind a per-process permission:
/// `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`, checked back with
/// `ARCH_GET_XCOMP_PERM`.
#[cfg(target_os = "linux")]
fn request_permission() -> bool {
    const SYS_ARCH_PRCTL: usize = 158;
    const ARCH_GET_XCOMP_PERM: usize = 0x1022;
    const ARCH_REQ_XCOMP_PERM: usize = 0x1023;
    const XFEATURE_XTILEDATA: usize = 18;
    let ret: isize;
    // SAFETY: a plain syscall with integer arguments; `syscall` clobbers rcx
    // and r11 only.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") SYS_ARCH_PRCTL as isize => ret,
            in("rdi") ARCH_REQ_XCOMP_PERM,
            in("rsi") XFEATURE_XTILEDATA,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack)
        );
    }
    if ret != 0 {
        return false;
    }
    let mut mask: u64 = 0;
    let ret: isize;
    // SAFETY: the kernel writes one u64 to `mask`, which outlives the call.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") SYS_ARCH_PRCTL as isize => ret,
            in("rdi") ARCH_GET_XCOMP_PERM,
            in("rsi") &mut mask as *mut u64,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack)
        );
    }
    ret == 0 && mask & (1 << XFEATURE_XTILEDATA) != 0
}

#[cfg(not(target_os = "linux"))]
fn request_permission() -> bool {
    false
}

/// A palette-1 tile configuration.
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

/// Q4_0/Q5_0/Q8_0: tmm0, tmm1: C, 16 rows x 16 i32; tmm2, tmm3: A, 16
/// weight rows x 32 bytes; tmm4, tmm5: B, 8 rows x 64 bytes (16 tokens x 4).
static CONFIG_BLOCK: TileConfig = TileConfig(config_bytes([
    (64, 16),
    (64, 16),
    (32, 16),
    (32, 16),
    (64, 8),
    (64, 8),
    (0, 0),
    (0, 0),
]));

/// K-quants: all 8 tiles 16 x 64 bytes (tmm0, tmm1: C; tmm2, tmm3, tmm6,
/// tmm7: A, 16 rows x 64 values; tmm4, tmm5: B, 64 values x 16 tokens).
static CONFIG_K: TileConfig = TileConfig(config_bytes([(64, 16); 8]));

/// (colsb, rows) per tile: colsb is a u16 at 16 + 2 i, rows a u8 at 48 + i.
const fn config_bytes(tiles: [(u8, u8); 8]) -> [u8; 64] {
    let mut c = [0u8; 64];
    c[0] = 1; // palette
    let mut i = 0;
    while i < tiles.len() {
        c[16 + 2 * i] = tiles[i].0;
        c[48 + i] = tiles[i].1;
        i += 1;
    }
    c
}

/// Tiles configured on this thread for one task. When dropped (also on
/// unwind) the thread's previous tile configuration is restored, or the
/// tiles are released if there was none: other code in the process (e.g.
/// candle's own AMX kernels) may keep its configuration loaded on a thread
/// between calls, and would fault (`#UD`) if it found the tiles released.
struct Tiles {
    previous: TileConfig,
}

impl Tiles {
    /// # Safety
    /// AMX must be available (`is_available`).
    unsafe fn configure(cfg: &'static TileConfig) -> Tiles {
        let mut previous = TileConfig([0u8; 64]);
        // SAFETY: the caller checked AMX; `sttilecfg` writes 64 bytes (all
        // zero when no configuration is loaded) into `previous`, and `cfg`
        // is a valid palette-1 configuration.
        unsafe {
            asm!(
                "sttilecfg [{prev}]",
                "ldtilecfg [{cfg}]",
                prev = in(reg) previous.0.as_mut_ptr(),
                cfg = in(reg) cfg.0.as_ptr(),
                options(nostack, preserves_flags)
            );
        }
        Tiles { previous }
    }
}

impl Drop for Tiles {
    fn drop(&mut self) {
        // SAFETY: only reachable after `configure`, so AMX is available; a
        // non-zero palette in `previous` is a configuration the CPU accepted.
        unsafe {
            if self.previous.0[0] != 0 {
                asm!(
                    "ldtilecfg [{cfg}]",
                    cfg = in(reg) self.previous.0.as_ptr(),
                    options(nostack, readonly, preserves_flags)
                );
            } else {
                asm!("tilerelease", options(nostack, nomem, preserves_flags));
            }
        }
    }
}

/// CONFIG_BLOCK, two chunks: `C_i = A_i (16 rows x 32 bytes at a_i, stride
/// astride) x B_i (a B tile at b_i)`, stored as 16 x 16 i32 at `c_i`.
///
/// # Safety
/// CONFIG_BLOCK loaded; every pointer covers its tile.
#[inline(always)]
unsafe fn tmul2(
    a0: *const i8,
    a1: *const i8,
    astride: usize,
    b0: *const i8,
    b1: *const i8,
    c0: *mut i32,
    c1: *mut i32,
) {
    // SAFETY: see the function's contract.
    unsafe {
        asm!(
            "tileloadd tmm2, [{a0} + {as_}*1]",
            "tileloadd tmm4, [{b0} + {s64}*1]",
            "tileloadd tmm3, [{a1} + {as_}*1]",
            "tileloadd tmm5, [{b1} + {s64}*1]",
            "tilezero tmm0",
            "tdpbssd tmm0, tmm2, tmm4",
            "tilezero tmm1",
            "tdpbssd tmm1, tmm3, tmm5",
            "tilestored [{c0} + {s64}*1], tmm0",
            "tilestored [{c1} + {s64}*1], tmm1",
            a0 = in(reg) a0,
            a1 = in(reg) a1,
            b0 = in(reg) b0,
            b1 = in(reg) b1,
            c0 = in(reg) c0,
            c1 = in(reg) c1,
            as_ = in(reg) astride,
            s64 = in(reg) 64usize,
            options(nostack, preserves_flags)
        );
    }
}

/// CONFIG_BLOCK, one chunk (see `tmul2`).
///
/// # Safety
/// As `tmul2`.
#[inline(always)]
unsafe fn tmul1(a: *const i8, astride: usize, b: *const i8, c: *mut i32) {
    // SAFETY: see the function's contract.
    unsafe {
        asm!(
            "tileloadd tmm2, [{a} + {as_}*1]",
            "tileloadd tmm4, [{b} + {s64}*1]",
            "tilezero tmm0",
            "tdpbssd tmm0, tmm2, tmm4",
            "tilestored [{c} + {s64}*1], tmm0",
            a = in(reg) a,
            b = in(reg) b,
            c = in(reg) c,
            as_ = in(reg) astride,
            s64 = in(reg) 64usize,
            options(nostack, preserves_flags)
        );
    }
}

/// CONFIG_K, one 256-value super-block: `C_lo = sum A_lo (u8) x B`,
/// `C_hi = sum A_hi (i8) x B` over four 64-value steps (A rows at stride
/// `astride`, B tiles of 64 values consecutive at `b`), stored at `c` and
/// `c + 1024` bytes.
///
/// # Safety
/// CONFIG_K loaded; `alo`/`ahi` cover 16 rows x 256 bytes, `b` 4 KiB, `c` 2 KiB.
#[inline(always)]
unsafe fn tmul_k(alo: *const i8, ahi: *const i8, astride: usize, b: *const i8, c: *mut i32) {
    // SAFETY: see the function's contract.
    unsafe {
        asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tileloadd tmm4, [{b} + {s64}*1]",
            "tileloadd tmm2, [{alo} + {as_}*1]",
            "tileloadd tmm3, [{ahi} + {as_}*1]",
            "tdpbusd tmm0, tmm2, tmm4",
            "tdpbssd tmm1, tmm3, tmm4",
            "tileloadd tmm5, [{b} + {s64}*1 + 1024]",
            "tileloadd tmm6, [{alo} + {as_}*1 + 64]",
            "tileloadd tmm7, [{ahi} + {as_}*1 + 64]",
            "tdpbusd tmm0, tmm6, tmm5",
            "tdpbssd tmm1, tmm7, tmm5",
            "tileloadd tmm4, [{b} + {s64}*1 + 2048]",
            "tileloadd tmm2, [{alo} + {as_}*1 + 128]",
            "tileloadd tmm3, [{ahi} + {as_}*1 + 128]",
            "tdpbusd tmm0, tmm2, tmm4",
            "tdpbssd tmm1, tmm3, tmm4",
            "tileloadd tmm5, [{b} + {s64}*1 + 3072]",
            "tileloadd tmm6, [{alo} + {as_}*1 + 192]",
            "tileloadd tmm7, [{ahi} + {as_}*1 + 192]",
            "tdpbusd tmm0, tmm6, tmm5",
            "tdpbssd tmm1, tmm7, tmm5",
            "tilestored [{c} + {s64}*1], tmm0",
            "tilestored [{c} + {s64}*1 + 1024], tmm1",
            alo = in(reg) alo,
            ahi = in(reg) ahi,
            b = in(reg) b,
            c = in(reg) c,
            as_ = in(reg) astride,
            s64 = in(reg) 64usize,
            options(nostack, preserves_flags)
        );
    }
}

/// 64 bytes, 64-byte aligned (tile rows, cache lines).
#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Line([u8; 64]);

/// Per-thread buffers of the task loop; grow to the largest shape, then stay.
#[derive(Default)]
struct Bufs {
    /// 16 unpacked weight rows, `astride` bytes each (K-quants: the low
    /// bytes, then the high bytes).
    a: Vec<Line>,
    /// Per (chunk or super-block, row): the weight scale.
    scale: Vec<f32>,
    /// Per (super-block, row), Q4_K/Q5_K: `-dmin`.
    dmin: Vec<f32>,
    /// Per (super-block, pair p, row), Q4_K/Q5_K: mins `m_2p | m_2p+1 << 16`.
    mins: Vec<i32>,
    /// Two groups of C tiles (the fold of one overlaps the next's TMUL).
    c: Vec<Line>,
}

thread_local! {
    static BUFS: RefCell<Bufs> = RefCell::new(Bufs::default());
}

fn grow<T: Copy>(v: &mut Vec<T>, n: usize, fill: T) {
    if v.len() < n {
        v.resize(n, fill);
    }
}

/// The activations of one call in AMX layout (built by `pack_*` into the
/// caller's `Scratch`). Token tiles are `TOK` tokens, zero-padded.
#[derive(Clone, Copy)]
pub(crate) struct AmxActs<'a> {
    /// Q8_0 activations as B tiles: tile `tt`, block `b` at `(tt * nb + b) * 512`.
    pub q8_b: &'a [i8],
    /// Q8_0 scales: `[(tt * nb + b) * 16 + t]`.
    pub q8_d: &'a [f32],
    /// Q8_K activations as B tiles (same layout as `q8_b`).
    pub qk_b: &'a [i8],
    /// Q8_K scales: `[(tt * (cols / 256) + sb) * 16 + t]`.
    pub qk_d: &'a [f32],
    /// Q8_K sums of 32 values, in pairs (sub-blocks 2p, 2p + 1 of a
    /// super-block as the low and high i16 of an i32):
    /// `[((tt * (cols / 256) + sb) * 4 + p) * 16 + t]`.
    pub qk_bs: &'a [i32],
    pub cols: usize,
}

/// Token tiles for `n_tokens`.
pub(crate) fn n_tiles(n_tokens: usize) -> usize {
    n_tokens.div_ceil(TOK)
}

/// Lays out `qs` (`n_tokens x cols`, row-major) as B tiles:
/// `out[((tt * nb + b) * 8 + k) * 64 + 4 * t..][..4] = qs[(16 tt + t) * cols + 32 b + 4 k..][..4]`,
/// zeros for padding tokens. `out` is `n_tiles * 16 * cols` long. (Two
/// consecutive 32-value tiles form one 64-value tile.)
pub(crate) fn pack_b(qs: &[i8], n_tokens: usize, cols: usize, out: &mut [i8]) {
    let nb = cols / QK;
    let tile_len = nb * B_TILE;
    assert!(qs.len() >= n_tokens * cols && out.len() >= n_tiles(n_tokens) * tile_len);
    for (tt, tile) in out[..n_tiles(n_tokens) * tile_len]
        .chunks_exact_mut(tile_len)
        .enumerate()
    {
        for t in 0..TOK {
            let tok = tt * TOK + t;
            if tok < n_tokens {
                let src = &qs[tok * cols..(tok + 1) * cols];
                for (b, s) in src.chunks_exact(QK).enumerate() {
                    let dst = &mut tile[b * B_TILE + 4 * t..];
                    for k in 0..8 {
                        dst[64 * k..64 * k + 4].copy_from_slice(&s[4 * k..4 * k + 4]);
                    }
                }
            } else {
                for b in 0..nb {
                    let dst = &mut tile[b * B_TILE + 4 * t..];
                    for k in 0..8 {
                        dst[64 * k..64 * k + 4].fill(0);
                    }
                }
            }
        }
    }
}

/// Transposes per-token values (`per` per token) to `[(tt * per + i) * 16 + t]`
/// (zeros for padding tokens).
pub(crate) fn pack_per_token<T: Copy + Default>(
    n_tokens: usize,
    per: usize,
    out: &mut [T],
    value: impl Fn(usize, usize) -> T,
) {
    let n = n_tiles(n_tokens);
    assert!(out.len() >= n * per * TOK);
    for tt in 0..n {
        for i in 0..per {
            let dst = &mut out[(tt * per + i) * TOK..][..TOK];
            for (t, d) in dst.iter_mut().enumerate() {
                let tok = tt * TOK + t;
                *d = if tok < n_tokens {
                    value(tok, i)
                } else {
                    T::default()
                };
            }
        }
    }
}

/// AMX tasks run so far (tests check the path is really taken).
#[cfg(test)]
pub(crate) static TASKS_RUN: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

/// Rows `rows` of `w` times every token, written to
/// `out[t * w.rows() + r]`.
///
/// # Safety
/// AMX is available (`is_available`) and AVX-512 F/BW/VL/VNNI, AVX2, FMA
/// and F16C are supported; `w` is a covered type; `acts` was packed for
/// this call's `n_tokens` and `w.cols()` (the fields `w`'s activation kind
/// uses); `out` is valid for `out_len` f32 writes and no one else accesses
/// the cells of `rows` while this runs.
pub(crate) unsafe fn run_task(
    w: &QMatrix,
    acts: &AmxActs,
    n_tokens: usize,
    rows: Range<usize>,
    out: *mut f32,
    out_len: usize,
) {
    #[cfg(test)]
    TASKS_RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    assert!(rows.end <= w.rows() && n_tokens * w.rows() <= out_len);
    assert_eq!(acts.cols, w.cols());
    let out = Out {
        ptr: out,
        n_rows: w.rows(),
    };
    BUFS.with(|b| {
        let mut bufs = b.borrow_mut();
        // SAFETY (both arms): AMX availability and the CPU features are the
        // caller's contract; the sizes are checked inside.
        unsafe {
            match w.qtype() {
                QType::Q4_0 | QType::Q5_0 | QType::Q8_0 => {
                    let _tiles = Tiles::configure(&CONFIG_BLOCK);
                    task_block(&mut bufs, w, acts, n_tokens, rows, out)
                }
                _ => {
                    let _tiles = Tiles::configure(&CONFIG_K);
                    task_k(&mut bufs, w, acts, n_tokens, rows, out)
                }
            }
        }
    });
}

/// Where results go: `ptr[t * n_rows + r]` (bounds checked by `run_task`).
#[derive(Clone, Copy)]
struct Out {
    ptr: *mut f32,
    n_rows: usize,
}

impl Out {
    /// Writes the valid part of a 16-row x 16-token accumulator block:
    /// `acc[r]` holds row `r0 + r` for tokens `t0..t0 + 16`.
    ///
    /// # Safety
    /// `r0 + nr <= n_rows`, `t0 + nt <= n_tokens`, and those cells are ours.
    #[target_feature(enable = "avx512f")]
    unsafe fn write(self, acc: &[__m512; ROWS], r0: usize, nr: usize, t0: usize, nt: usize) {
        let mut res = [[0f32; TOK]; ROWS];
        for r in 0..ROWS {
            _mm512_storeu_ps(res[r].as_mut_ptr(), acc[r]);
        }
        for t in 0..nt {
            let base = (t0 + t) * self.n_rows + r0;
            for r in 0..nr {
                *self.ptr.add(base + r) = res[r][t];
            }
        }
    }
}

/// Q4_0/Q5_0/Q8_0 (and their scale per 32 values on both sides).
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
unsafe fn task_block(
    bufs: &mut Bufs,
    w: &QMatrix,
    acts: &AmxActs,
    n_tokens: usize,
    rows: Range<usize>,
    out: Out,
) {
    const GROUP: usize = 8;
    let cols = w.cols();
    let nb = cols / QK;
    let n_tt = n_tiles(n_tokens);
    let (xb, xd) = (acts.q8_b, acts.q8_d);
    assert!(xb.len() >= n_tt * nb * B_TILE && xd.len() >= n_tt * nb * TOK);
    grow(&mut bufs.a, ROWS * cols / 64, Line([0; 64]));
    grow(&mut bufs.scale, nb * ROWS, 0.0);
    grow(&mut bufs.c, 2 * GROUP * C_TILE / 64, Line([0; 64]));
    let a = bufs.a.as_mut_ptr() as *mut i8;
    let scale = bufs.scale.as_mut_ptr();
    let cbuf = bufs.c.as_mut_ptr() as *mut i32;

    let mut r0 = rows.start;
    while r0 < rows.end {
        let nr = (rows.end - r0).min(ROWS);
        unpack_block(w, r0, nr, a, scale);
        for tt in 0..n_tt {
            let xbt = xb.as_ptr().add(tt * nb * B_TILE);
            let dxt = xd.as_ptr().add(tt * nb * TOK);
            let mut acc = [_mm512_setzero_ps(); ROWS];
            // Group i multiplies into C buffer i % 2 while group i - 1 folds.
            let mut prev: Option<(usize, usize, *const i32)> = None;
            let mut c0 = 0;
            let mut i = 0;
            while c0 < nb || prev.is_some() {
                let cur = if c0 < nb {
                    let g = GROUP.min(nb - c0);
                    let cb = cbuf.add((i % 2) * GROUP * 256);
                    let mut j = 0;
                    while j + 2 <= g {
                        let c = c0 + j;
                        tmul2(
                            a.add(32 * c),
                            a.add(32 * (c + 1)),
                            cols,
                            xbt.add(c * B_TILE),
                            xbt.add((c + 1) * B_TILE),
                            cb.add(j * 256),
                            cb.add((j + 1) * 256),
                        );
                        j += 2;
                    }
                    if j < g {
                        let c = c0 + j;
                        tmul1(a.add(32 * c), cols, xbt.add(c * B_TILE), cb.add(j * 256));
                    }
                    Some((c0, g, cb as *const i32))
                } else {
                    None
                };
                if let Some((p0, g, cb)) = prev {
                    let sc = scale.add(p0 * ROWS);
                    let dx = dxt.add(p0 * TOK);
                    for j in 0..g {
                        let dxj = _mm512_loadu_ps(dx.add(TOK * j));
                        let cj = cb.add(j * 256);
                        for r in 0..ROWS {
                            let s = _mm512_mul_ps(dxj, _mm512_set1_ps(*sc.add(ROWS * j + r)));
                            let ci =
                                _mm512_cvtepi32_ps(_mm512_load_si512(cj.add(16 * r) as *const _));
                            acc[r] = _mm512_fmadd_ps(ci, s, acc[r]);
                        }
                    }
                }
                prev = cur;
                if let Some((_, g, _)) = cur {
                    c0 += g;
                }
                i += 1;
            }
            let nt = (n_tokens - tt * TOK).min(TOK);
            out.write(&acc, r0, nr, tt * TOK, nt);
        }
        r0 += nr;
    }
}

/// Q4_K/Q5_K/Q6_K: integer sums over whole super-blocks (see `unpack_k`).
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn task_k(
    bufs: &mut Bufs,
    w: &QMatrix,
    acts: &AmxActs,
    n_tokens: usize,
    rows: Range<usize>,
    out: Out,
) {
    let cols = w.cols();
    let nsb = cols / QK_K;
    let n_tt = n_tiles(n_tokens);
    let has_mins = w.qtype() != QType::Q6_K;
    let (xb, xd, xbs) = (acts.qk_b, acts.qk_d, acts.qk_bs);
    assert!(xb.len() >= n_tt * (cols / QK) * B_TILE && xd.len() >= n_tt * nsb * TOK);
    assert!(!has_mins || xbs.len() >= n_tt * nsb * 4 * TOK);
    grow(&mut bufs.a, 2 * ROWS * cols / 64, Line([0; 64]));
    grow(&mut bufs.scale, nsb * ROWS, 0.0);
    grow(&mut bufs.dmin, nsb * ROWS, 0.0);
    grow(&mut bufs.mins, nsb * 4 * ROWS, 0);
    grow(&mut bufs.c, 2 * 2 * C_TILE / 64, Line([0; 64]));
    let alo = bufs.a.as_mut_ptr() as *mut i8;
    let ahi = alo.add(ROWS * cols);
    let scale = bufs.scale.as_mut_ptr();
    let dmin = bufs.dmin.as_mut_ptr();
    let mins = bufs.mins.as_mut_ptr();
    let cbuf = bufs.c.as_mut_ptr() as *mut i32;

    let mut r0 = rows.start;
    while r0 < rows.end {
        let nr = (rows.end - r0).min(ROWS);
        unpack_k(w, r0, nr, alo, ahi, scale, dmin, mins);
        for tt in 0..n_tt {
            let xbt = xb.as_ptr().add(tt * (cols / QK) * B_TILE);
            let mut acc = [_mm512_setzero_ps(); ROWS];
            // Super-block sb multiplies into C buffer sb % 2 while sb - 1 folds.
            for sb in 0..=nsb {
                if sb < nsb {
                    tmul_k(
                        alo.add(QK_K * sb),
                        ahi.add(QK_K * sb),
                        cols,
                        xbt.add(sb * 8 * B_TILE),
                        cbuf.add((sb % 2) * 512),
                    );
                }
                if sb == 0 {
                    continue;
                }
                let p = sb - 1;
                let cb = cbuf.add((p % 2) * 512) as *const i32;
                let dx = _mm512_loadu_ps(xd.as_ptr().add((tt * nsb + p) * TOK));
                let sc = scale.add(p * ROWS);
                if has_mins {
                    let bs = xbs.as_ptr().add((tt * nsb + p) * 4 * TOK);
                    let bsv = [0, 1, 2, 3].map(|k| _mm512_loadu_si512(bs.add(k * TOK) as *const _));
                    let mn = mins.add(p * 4 * ROWS);
                    let dm = dmin.add(p * ROWS);
                    for r in 0..ROWS {
                        let lo = _mm512_load_si512(cb.add(16 * r) as *const _);
                        let hi = _mm512_load_si512(cb.add(256 + 16 * r) as *const _);
                        let v = _mm512_add_epi32(lo, _mm512_slli_epi32::<8>(hi));
                        let mut m = _mm512_setzero_si512();
                        for k in 0..4 {
                            m = _mm512_dpwssd_epi32(
                                m,
                                _mm512_set1_epi32(*mn.add(k * ROWS + r)),
                                bsv[k],
                            );
                        }
                        let t = _mm512_mul_ps(_mm512_cvtepi32_ps(v), _mm512_set1_ps(*sc.add(r)));
                        let t =
                            _mm512_fmadd_ps(_mm512_cvtepi32_ps(m), _mm512_set1_ps(*dm.add(r)), t);
                        acc[r] = _mm512_fmadd_ps(t, dx, acc[r]);
                    }
                } else {
                    for r in 0..ROWS {
                        let lo = _mm512_load_si512(cb.add(16 * r) as *const _);
                        let hi = _mm512_load_si512(cb.add(256 + 16 * r) as *const _);
                        let v = _mm512_add_epi32(lo, _mm512_slli_epi32::<8>(hi));
                        let s = _mm512_mul_ps(dx, _mm512_set1_ps(*sc.add(r)));
                        acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(v), s, acc[r]);
                    }
                }
            }
            let nt = (n_tokens - tt * TOK).min(TOK);
            out.write(&acc, r0, nr, tt * TOK, nt);
        }
        r0 += nr;
    }
}

/// Q4_0/Q5_0/Q8_0 rows `r0..r0 + nr` -> signed bytes (row `r` at
/// `a + r * cols`) and per-(block, row) scales; rows `nr..16` become zeros.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
unsafe fn unpack_block(w: &QMatrix, r0: usize, nr: usize, a: *mut i8, scale: *mut f32) {
    let cols = w.cols();
    let nb = cols / QK;
    for r in 0..ROWS {
        let dst = a.add(r * cols);
        if r >= nr {
            std::ptr::write_bytes(dst, 0, cols);
            for b in 0..nb {
                *scale.add(b * ROWS + r) = 0.0;
            }
            continue;
        }
        let row = w.row(r0 + r).expect("row in range").as_ptr();
        match w.qtype() {
            QType::Q8_0 => {
                for b in 0..nb {
                    let blk = row.add(34 * b);
                    *scale.add(b * ROWS + r) = f16_to_f32(blk);
                    let v = _mm256_loadu_si256(blk.add(2) as *const __m256i);
                    _mm256_storeu_si256(dst.add(32 * b) as *mut __m256i, v);
                }
            }
            QType::Q4_0 => {
                for b in 0..nb {
                    let blk = row.add(18 * b);
                    *scale.add(b * ROWS + r) = f16_to_f32(blk);
                    let v = _mm256_sub_epi8(bytes_from_nibbles_32(blk.add(2)), _mm256_set1_epi8(8));
                    _mm256_storeu_si256(dst.add(32 * b) as *mut __m256i, v);
                }
            }
            QType::Q5_0 => {
                for b in 0..nb {
                    let blk = row.add(22 * b);
                    *scale.add(b * ROWS + r) = f16_to_f32(blk);
                    let nib = bytes_from_nibbles_32(blk.add(6));
                    let qh = std::ptr::read_unaligned(blk.add(2) as *const u32);
                    // 0xF0 where the 5th bit is clear: nibble | 0xF0 == nibble - 16.
                    let hi =
                        _mm256_andnot_si256(bytes_from_bits_32(qh), _mm256_set1_epi8(0xF0u8 as i8));
                    _mm256_storeu_si256(dst.add(32 * b) as *mut __m256i, _mm256_or_si256(nib, hi));
                }
            }
            _ => unreachable!("not a 32-block type"),
        }
    }
}

/// `p = scale * q` for 32 weights (`q`: 32 bytes, signed if `SIGNED`;
/// `s`: the i16 scale of each weight), split into the low byte (unsigned)
/// at `lo` and the high byte (signed) at `hi`: `p = 256 * hi + lo`.
#[inline]
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl")]
unsafe fn split_store<const SIGNED: bool>(q: __m256i, s: __m512i, lo: *mut i8, hi: *mut i8) {
    let q16 = if SIGNED {
        _mm512_cvtepi8_epi16(q)
    } else {
        _mm512_cvtepu8_epi16(q)
    };
    let p = _mm512_mullo_epi16(q16, s);
    _mm256_storeu_si256(lo as *mut __m256i, _mm512_cvtepi16_epi8(p));
    _mm256_storeu_si256(
        hi as *mut __m256i,
        _mm512_cvtepi16_epi8(_mm512_srai_epi16::<8>(p)),
    );
}

/// K-quant rows `r0..r0 + nr` -> the sub-block-scaled integer weights
/// `p = sc * q` (Q4_K/Q5_K: 6-bit scale x 0..31, at most 1953; Q6_K: i8
/// scale x (q - 32), within +-4096) split into low bytes (`alo`, unsigned)
/// and high bytes (`ahi`, signed), row `r` at `+ r * cols`; per (super-block,
/// row): `scale = d`, and for Q4_K/Q5_K `dmin = -dmin` and the 6-bit mins
/// in i16 pairs. The int32 sums of a super-block stay below
/// 256 * 4096 * 127 < 2^31. Rows `nr..16` become zeros.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
unsafe fn unpack_k(
    w: &QMatrix,
    r0: usize,
    nr: usize,
    alo: *mut i8,
    ahi: *mut i8,
    scale: *mut f32,
    dmin: *mut f32,
    mins: *mut i32,
) {
    let cols = w.cols();
    let nsb = cols / QK_K;
    let q = w.qtype();
    let m4 = _mm256_set1_epi8(0xF);
    let m1 = _mm256_set1_epi8(1);
    for r in 0..ROWS {
        let (lo, hi) = (alo.add(r * cols), ahi.add(r * cols));
        if r >= nr {
            std::ptr::write_bytes(lo, 0, cols);
            std::ptr::write_bytes(hi, 0, cols);
            for sb in 0..nsb {
                *scale.add(sb * ROWS + r) = 0.0;
                *dmin.add(sb * ROWS + r) = 0.0;
                for k in 0..4 {
                    *mins.add((sb * 4 + k) * ROWS + r) = 0;
                }
            }
            continue;
        }
        let row = w.row(r0 + r).expect("row in range").as_ptr();
        match q {
            QType::Q4_K | QType::Q5_K => {
                let (bytes, qs_off, has_qh) = if q == QType::Q4_K {
                    (144, 16, false)
                } else {
                    (176, 48, true)
                };
                for sb in 0..nsb {
                    let blk = row.add(sb * bytes);
                    *scale.add(sb * ROWS + r) = f16_to_f32(blk);
                    *dmin.add(sb * ROWS + r) = -f16_to_f32(blk.add(2));
                    let scales = std::slice::from_raw_parts(blk.add(4), 12);
                    let mut sc = [0u8; 8];
                    let mut mn = [0u8; 8];
                    for j in 0..8 {
                        (sc[j], mn[j]) = scale_min_k4(j, scales);
                    }
                    for k in 0..4 {
                        *mins.add((sb * 4 + k) * ROWS + r) =
                            mn[2 * k] as i32 | (mn[2 * k + 1] as i32) << 16;
                    }
                    let qs = blk.add(qs_off);
                    let mut hb = if has_qh {
                        _mm256_loadu_si256(blk.add(16) as *const __m256i)
                    } else {
                        _mm256_setzero_si256()
                    };
                    for j in 0..4 {
                        let bits = _mm256_loadu_si256(qs.add(32 * j) as *const __m256i);
                        let mut ql = _mm256_and_si256(bits, m4);
                        let mut qh = _mm256_and_si256(_mm256_srli_epi16::<4>(bits), m4);
                        if has_qh {
                            ql = _mm256_or_si256(
                                ql,
                                _mm256_slli_epi16::<4>(_mm256_and_si256(hb, m1)),
                            );
                            hb = _mm256_srli_epi16::<1>(hb);
                            qh = _mm256_or_si256(
                                qh,
                                _mm256_slli_epi16::<4>(_mm256_and_si256(hb, m1)),
                            );
                            hb = _mm256_srli_epi16::<1>(hb);
                        }
                        let o = QK_K * sb + 64 * j;
                        let s0 = _mm512_set1_epi16(sc[2 * j] as i16);
                        let s1 = _mm512_set1_epi16(sc[2 * j + 1] as i16);
                        split_store::<false>(ql, s0, lo.add(o), hi.add(o));
                        split_store::<false>(qh, s1, lo.add(o + 32), hi.add(o + 32));
                    }
                }
            }
            QType::Q6_K => {
                let m4z = _mm512_set1_epi8(0xF);
                let m3z = _mm512_set1_epi8(3);
                let off = _mm512_set1_epi8(32);
                for sb in 0..nsb {
                    let blk = row.add(sb * 210);
                    *scale.add(sb * ROWS + r) = f16_to_f32(blk.add(208));
                    let scp = blk.add(192) as *const i8;
                    for h in 0..2 {
                        let ql = _mm512_loadu_si512(blk.add(64 * h) as *const _);
                        let hb = _mm256_loadu_si256(blk.add(128 + 32 * h) as *const __m256i);
                        let hbz = _mm512_inserti64x4::<1>(
                            _mm512_castsi256_si512(hb),
                            _mm256_srli_epi16::<2>(hb),
                        );
                        let vlo = _mm512_or_si512(
                            _mm512_and_si512(ql, m4z),
                            _mm512_slli_epi16::<4>(_mm512_and_si512(hbz, m3z)),
                        );
                        let vhi = _mm512_or_si512(
                            _mm512_and_si512(_mm512_srli_epi16::<4>(ql), m4z),
                            _mm512_slli_epi16::<4>(_mm512_and_si512(
                                _mm512_srli_epi16::<4>(hbz),
                                m3z,
                            )),
                        );
                        // Values 128h + 0..64 (vlo) and 128h + 64..128 (vhi),
                        // as q - 32; 16-value group s has scale sc[s].
                        for (v, s0) in [(vlo, 8 * h), (vhi, 8 * h + 4)] {
                            let v = _mm512_sub_epi8(v, off);
                            for half in 0..2 {
                                let q32 = if half == 0 {
                                    _mm512_castsi512_si256(v)
                                } else {
                                    _mm512_extracti64x4_epi64::<1>(v)
                                };
                                let s = s0 + 2 * half;
                                let sv = _mm512_mask_blend_epi16(
                                    0xFFFF_0000,
                                    _mm512_set1_epi16(*scp.add(s) as i16),
                                    _mm512_set1_epi16(*scp.add(s + 1) as i16),
                                );
                                let o = QK_K * sb + 16 * s;
                                split_store::<true>(q32, sv, lo.add(o), hi.add(o));
                            }
                        }
                    }
                }
            }
            _ => unreachable!("not a K-quant"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn current_config() -> [u8; 64] {
        let mut out = TileConfig([0u8; 64]);
        // SAFETY: AMX is available (checked by the caller); writes 64 bytes.
        unsafe {
            asm!(
                "sttilecfg [{p}]",
                p = in(reg) out.0.as_mut_ptr(),
                options(nostack, preserves_flags)
            )
        };
        out.0
    }

    /// Our tasks leave the thread's tile configuration as they found it: a
    /// configuration loaded by other code stays loaded (candle's AMX kernels
    /// fault otherwise), and no configuration stays none.
    #[test]
    fn tasks_restore_the_threads_tile_configuration() {
        if !is_available() {
            eprintln!("note: no usable AMX here; nothing to check");
            return;
        }
        static FOREIGN: TileConfig = TileConfig(config_bytes([(16, 4); 8]));
        // SAFETY: AMX is available; FOREIGN is a valid palette-1 config.
        unsafe {
            asm!("tilerelease", options(nostack, nomem, preserves_flags));
        }
        {
            // SAFETY: as above.
            let _t = unsafe { Tiles::configure(&CONFIG_K) };
            assert_eq!(current_config(), CONFIG_K.0);
        }
        assert_eq!(current_config(), [0u8; 64], "tiles left configured");
        // SAFETY: as above.
        unsafe {
            asm!(
                "ldtilecfg [{cfg}]",
                cfg = in(reg) FOREIGN.0.as_ptr(),
                options(nostack, readonly, preserves_flags)
            );
        }
        {
            // SAFETY: as above.
            let _t = unsafe { Tiles::configure(&CONFIG_BLOCK) };
            assert_eq!(current_config(), CONFIG_BLOCK.0);
        }
        assert_eq!(current_config(), FOREIGN.0, "foreign configuration lost");
        // SAFETY: as above.
        unsafe { asm!("tilerelease", options(nostack, nomem, preserves_flags)) };
    }
}
