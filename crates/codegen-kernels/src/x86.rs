//! x86_64 SIMD kernels. The same kernel bodies are compiled twice by
//! `x86_kernels!`: for AVX2+FMA+F16C (`maddubs`/`madd` for 8-bit products)
//! and for AVX-512 VNNI/VL (`vpdpbusd` on 256-bit vectors, and 32 vector
//! registers, so 4-token tiles do not spill).
//!
//! Every `unsafe fn` here has one precondition besides the CPU features its
//! `target_feature` names: the `row`/`Acts` slices hold the blocks implied by
//! `acts.cols` for tokens `t0..t0 + N` (the matmul driver validates sizes
//! before any kernel runs; `debug_assert`s repeat the checks in tests).

#![allow(unused_unsafe)]

use crate::formats::{QK, QK_K};
use crate::matmul::{Acts, DotFn, TILE};
use crate::QType;
use std::arch::x86_64::*;

/// `$imp::<N>(args)` for the const `N` equal to the run-time token count
/// `n` (1 to 8; more runs 8): the AVX-512 kernels' entry points.
macro_rules! by_tokens8 {
    ($n:expr, $imp:ident($($arg:expr),*)) => {
        match $n {
            1 => $imp::<1>($($arg),*),
            2 => $imp::<2>($($arg),*),
            3 => $imp::<3>($($arg),*),
            4 => $imp::<4>($($arg),*),
            5 => $imp::<5>($($arg),*),
            6 => $imp::<6>($($arg),*),
            7 => $imp::<7>($($arg),*),
            _ => $imp::<8>($($arg),*),
        }
    };
}
pub(crate) use by_tokens8;

/// `select` and the entry points of a module of Q4_0/Q5_0/Q8_0 AVX-512 VNNI
/// kernels (`q4_0_n`, `q5_0_n`, `q8_0_n`, generic over the token count):
/// `$w` names the weight bytes they take, `$out` their output.
macro_rules! q32_entries {
    (@entry $w:ident, $out:ty, $name:ident, $imp:ident) => {
        fn $name($w: &[u8], a: &Acts, t0: usize, n: usize, out: &mut $out) {
            // SAFETY: only reachable through `select`, which the driver calls
            // after checking AVX-512 VNNI/BW/VL; sizes validated by the
            // driver (and re-checked by the debug assertions).
            unsafe { by_tokens8!(n, $imp($w, a, t0, out)) }
        }
    };
    ($fn_ty:ty, $w:ident, $out:ty) => {
        pub(crate) fn select(qtype: QType) -> Option<$fn_ty> {
            match qtype {
                QType::Q4_0 => Some(q4_0),
                QType::Q5_0 => Some(q5_0),
                QType::Q8_0 => Some(q8_0),
                _ => None,
            }
        }
        q32_entries!(@entry $w, $out, q4_0, q4_0_n);
        q32_entries!(@entry $w, $out, q5_0, q5_0_n);
        q32_entries!(@entry $w, $out, q8_0, q8_0_n);
    };
}
pub(crate) use q32_entries;

/// Prefetches every cache line of `bytes` into L2 (a hint: it cannot fault
/// and does not change memory, so it is safe for any slice).
#[inline]
pub(crate) fn prefetch(bytes: &[u8]) {
    for c in bytes.chunks(64) {
        // SAFETY: prefetch is a hint; `c` is a valid slice.
        unsafe { _mm_prefetch::<_MM_HINT_T1>(c.as_ptr() as *const i8) };
    }
}

/// f16 bits -> f32 with F16C.
#[inline]
#[target_feature(enable = "avx2,f16c")]
pub(crate) unsafe fn f16_to_f32(p: *const u8) -> f32 {
    // SAFETY: caller guarantees 2 readable bytes at `p`.
    let bits = unsafe { std::ptr::read_unaligned(p as *const u16) };
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

/// 16 bytes at `p` -> 32 nibbles: low nibbles in bytes 0..16, high in 16..32.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn bytes_from_nibbles_32(p: *const u8) -> __m256i {
    // SAFETY: caller guarantees 16 readable bytes at `p`.
    let tmp = unsafe { _mm_loadu_si128(p as *const __m128i) };
    let bytes = _mm256_set_m128i(_mm_srli_epi16(tmp, 4), tmp);
    _mm256_and_si256(bytes, _mm256_set1_epi8(0xF))
}

/// Bit `j` of `x` -> byte `j` = 0xFF if set, else 0x00.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn bytes_from_bits_32(x: u32) -> __m256i {
    let shuf = _mm256_set_epi64x(
        0x0303030303030303,
        0x0202020202020202,
        0x0101010101010101,
        0x0000000000000000,
    );
    let bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(x as i32), shuf);
    let bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1))
}

/// Horizontal sum of 8 floats.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn hsum_ps(x: __m256) -> f32 {
    let r = _mm_add_ps(_mm256_extractf128_ps(x, 1), _mm256_castps256_ps128(x));
    let r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    let r = _mm_add_ss(r, _mm_movehdup_ps(r));
    _mm_cvtss_f32(r)
}

/// Horizontal sum of 4 floats.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn hsum_ps128(r: __m128) -> f32 {
    let r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    let r = _mm_add_ss(r, _mm_movehdup_ps(r));
    _mm_cvtss_f32(r)
}

/// Sum of u8*i8 products in groups of 4 -> 8 x i32 (AVX2: maddubs + madd).
/// `ax` must be <= 128 and `sy` in -127..=127 so the i16 pairs cannot saturate.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn mul_sum_us8_avx2(ax: __m256i, sy: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), _mm256_set1_epi16(1))
}

/// Same with one `vpdpbusd`.
#[inline]
#[target_feature(enable = "avx512vnni,avx512vl")]
unsafe fn mul_sum_us8_vnni(ax: __m256i, sy: __m256i) -> __m256i {
    _mm256_dpbusd_epi32(_mm256_setzero_si256(), ax, sy)
}

/// Broadcasts 16-bit element `k` of each 128-bit lane (shuffle control).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn shuffle_i16(k: usize) -> __m256i {
    let lo = (2 * k) as i16;
    _mm256_set1_epi16(((lo + 1) << 8) | lo)
}

/// Quantizes `x` into Q8_0 activations; bit-identical to
/// `formats::quantize_row_q8_0` (same scale, ties-to-even rounding).
pub(crate) fn quantize_q8_0_avx2(x: &[f32], qs: &mut [i8], d: &mut [f32]) {
    assert!(x.len().is_multiple_of(QK) && qs.len() >= x.len() && d.len() >= x.len() / QK);
    // SAFETY: the caller (matmul driver) only calls this when AVX2 is
    // supported; lengths are asserted above.
    unsafe { quantize_q8_0_avx2_impl(x, qs, d) }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn quantize_q8_0_avx2_impl(x: &[f32], qs: &mut [i8], d: &mut [f32]) {
    let sign = _mm256_set1_ps(-0.0);
    let perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for b in 0..x.len() / QK {
        // SAFETY: block `b` lies inside `x`, `qs` and `d` (asserted by caller).
        unsafe {
            let p = x.as_ptr().add(b * QK);
            let v0 = _mm256_loadu_ps(p);
            let v1 = _mm256_loadu_ps(p.add(8));
            let v2 = _mm256_loadu_ps(p.add(16));
            let v3 = _mm256_loadu_ps(p.add(24));
            let m = _mm256_max_ps(
                _mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
                _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)),
            );
            let m = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
            let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
            let m = _mm_max_ss(m, _mm_movehdup_ps(m));
            let amax = _mm_cvtss_f32(m);
            *d.get_unchecked_mut(b) = amax / 127.0;
            let inv = _mm256_set1_ps(if amax > 0.0 { 127.0 / amax } else { 0.0 });
            const R: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
            let i0 = _mm256_cvtps_epi32(_mm256_round_ps::<R>(_mm256_mul_ps(v0, inv)));
            let i1 = _mm256_cvtps_epi32(_mm256_round_ps::<R>(_mm256_mul_ps(v1, inv)));
            let i2 = _mm256_cvtps_epi32(_mm256_round_ps::<R>(_mm256_mul_ps(v2, inv)));
            let i3 = _mm256_cvtps_epi32(_mm256_round_ps::<R>(_mm256_mul_ps(v3, inv)));
            let i01 = _mm256_packs_epi32(i0, i1);
            let i23 = _mm256_packs_epi32(i2, i3);
            let i = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(i01, i23), perm);
            _mm256_storeu_si256(qs.as_mut_ptr().add(b * QK) as *mut __m256i, i);
        }
    }
}

/// Quantizes `x` into Q8_K activations; bit-identical to
/// `formats::quantize_row_q8_k`.
pub(crate) fn quantize_q8_k_avx2(x: &[f32], qs: &mut [i8], d: &mut [f32], bsums: &mut [i16]) {
    assert!(
        x.len().is_multiple_of(QK_K)
            && qs.len() >= x.len()
            && d.len() >= x.len() / QK_K
            && bsums.len() >= x.len() / 16
    );
    // SAFETY: the caller (matmul driver) only calls this when AVX2 is
    // supported; lengths are asserted above.
    unsafe { quantize_q8_k_avx2_impl(x, qs, d) };
    for (s, g) in bsums.iter_mut().zip(qs[..x.len()].chunks_exact(16)) {
        *s = g.iter().map(|&v| v as i16).sum();
    }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn quantize_q8_k_avx2_impl(x: &[f32], qs: &mut [i8], d: &mut [f32]) {
    let sign = _mm256_set1_ps(-0.0);
    let perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    const R: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
    for b in 0..x.len() / QK_K {
        // SAFETY: block `b` lies inside `x`, `qs` and `d` (asserted by caller).
        unsafe {
            let p = x.as_ptr().add(b * QK_K);
            let mut m = _mm256_setzero_ps();
            for k in 0..QK_K / 8 {
                m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(p.add(8 * k))));
            }
            let m = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
            let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
            let m = _mm_max_ss(m, _mm_movehdup_ps(m));
            let amax = _mm_cvtss_f32(m);
            *d.get_unchecked_mut(b) = amax / 127.0;
            let inv = _mm256_set1_ps(if amax > 0.0 { 127.0 / amax } else { 0.0 });
            for g in 0..QK_K / 32 {
                let p = p.add(32 * g);
                let i0 = _mm256_cvtps_epi32(_mm256_round_ps::<R>(_mm256_mul_ps(
                    _mm256_loadu_ps(p),
                    inv,
                )));
                let i1 = _mm256_cvtps_epi32(_mm256_round_ps::<R>(_mm256_mul_ps(
                    _mm256_loadu_ps(p.add(8)),
                    inv,
                )));
                let i2 = _mm256_cvtps_epi32(_mm256_round_ps::<R>(_mm256_mul_ps(
                    _mm256_loadu_ps(p.add(16)),
                    inv,
                )));
                let i3 = _mm256_cvtps_epi32(_mm256_round_ps::<R>(_mm256_mul_ps(
                    _mm256_loadu_ps(p.add(24)),
                    inv,
                )));
                let i = _mm256_permutevar8x32_epi32(
                    _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3)),
                    perm,
                );
                _mm256_storeu_si256(qs.as_mut_ptr().add(b * QK_K + 32 * g) as *mut __m256i, i);
            }
        }
    }
}

macro_rules! x86_kernels {
    ($module:ident, $features:literal, $mul_sum_us8:ident) => {
        pub(crate) mod $module {
            use super::*;

            pub(crate) fn select(qtype: QType) -> DotFn {
                match qtype {
                    QType::F32 => f32_,
                    QType::F16 => f16_,
                    QType::Q4_0 => q4_0,
                    QType::Q5_0 => q5_0,
                    QType::Q8_0 => q8_0,
                    QType::Q4_K => q4_k,
                    QType::Q5_K => q5_k,
                    QType::Q6_K => q6_k,
                }
            }

            /// Safe entry points: only reachable through `select`, which the
            /// driver calls only after checking the CPU supports this level.
            macro_rules! entry {
                ($name:ident, $imp:ident) => {
                    fn $name(row: &[u8], a: &Acts, t0: usize, n: usize, out: &mut [f32; TILE]) {
                        // SAFETY: CPU features checked by the driver (see
                        // above); sizes validated by the driver.
                        unsafe {
                            match n {
                                1 => $imp::<1>(row, a, t0, out),
                                2 => $imp::<2>(row, a, t0, out),
                                3 => $imp::<3>(row, a, t0, out),
                                4 => $imp::<4>(row, a, t0, out),
                                _ => {
                                    // Up to 8 tokens: two passes of at most 4.
                                    let mut hi = [0f32; TILE];
                                    $imp::<4>(row, a, t0, out);
                                    match n - 4 {
                                        1 => $imp::<1>(row, a, t0 + 4, &mut hi),
                                        2 => $imp::<2>(row, a, t0 + 4, &mut hi),
                                        3 => $imp::<3>(row, a, t0 + 4, &mut hi),
                                        _ => $imp::<4>(row, a, t0 + 4, &mut hi),
                                    }
                                    out[4..n].copy_from_slice(&hi[..n - 4]);
                                }
                            }
                        }
                    }
                };
            }
            entry!(f32_, f32_n);
            entry!(f16_, f16_n);
            entry!(q4_0, q4_0_n);
            entry!(q5_0, q5_0_n);
            entry!(q8_0, q8_0_n);
            entry!(q4_k, q4_k_n);
            entry!(q5_k, q5_k_n);
            entry!(q6_k, q6_k_n);

            /// The 32-element formats: `unpack(block) -> (d, signed weights)`.
            macro_rules! q32_body {
                ($row:ident, $a:ident, $t0:ident, $out:ident, $N:ident, $bytes:expr, |$blk:ident| $unpack:block) => {{
                    let cols = $a.cols;
                    let nb = cols / QK;
                    debug_assert_eq!($row.len(), nb * $bytes);
                    debug_assert!($a.q8_qs.len() >= ($t0 + $N) * cols);
                    debug_assert!($a.q8_d.len() >= ($t0 + $N) * nb);
                    let w = $row.as_ptr();
                    let ys = $a.q8_qs.as_ptr().add($t0 * cols);
                    let ds = $a.q8_d.as_ptr().add($t0 * nb);
                    let mut acc = [_mm256_setzero_ps(); $N];
                    for b in 0..nb {
                        let $blk = w.add(b * $bytes);
                        let (dw, qx): (f32, __m256i) = $unpack;
                        let ax = _mm256_sign_epi8(qx, qx);
                        for i in 0..$N {
                            let y = _mm256_loadu_si256(ys.add(i * cols + b * QK) as *const __m256i);
                            let p = $mul_sum_us8(ax, _mm256_sign_epi8(y, qx));
                            let dd = _mm256_set1_ps(dw * *ds.add(i * nb + b));
                            acc[i] = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(p), acc[i]);
                        }
                    }
                    for i in 0..$N {
                        $out[i] = hsum_ps(acc[i]);
                    }
                }};
            }

            #[target_feature(enable = $features)]
            unsafe fn q8_0_n<const N: usize>(row: &[u8], a: &Acts, t0: usize, out: &mut [f32; TILE]) {
                q32_body!(row, a, t0, out, N, 34, |blk| {
                    (f16_to_f32(blk), _mm256_loadu_si256(blk.add(2) as *const __m256i))
                })
            }

            #[target_feature(enable = $features)]
            unsafe fn q4_0_n<const N: usize>(row: &[u8], a: &Acts, t0: usize, out: &mut [f32; TILE]) {
                q32_body!(row, a, t0, out, N, 18, |blk| {
                    let q = bytes_from_nibbles_32(blk.add(2));
                    (f16_to_f32(blk), _mm256_sub_epi8(q, _mm256_set1_epi8(8)))
                })
            }

            #[target_feature(enable = $features)]
            unsafe fn q5_0_n<const N: usize>(row: &[u8], a: &Acts, t0: usize, out: &mut [f32; TILE]) {
                q32_body!(row, a, t0, out, N, 22, |blk| {
                    let q = bytes_from_nibbles_32(blk.add(6));
                    let qh = std::ptr::read_unaligned(blk.add(2) as *const u32);
                    // 0xF0 where the 5th bit is clear: nibble | 0xF0 == nibble - 16.
                    let hi = _mm256_andnot_si256(bytes_from_bits_32(qh), _mm256_set1_epi8(0xF0u8 as i8));
                    (f16_to_f32(blk), _mm256_or_si256(q, hi))
                })
            }

            #[target_feature(enable = $features)]
            unsafe fn f32_n<const N: usize>(row: &[u8], a: &Acts, t0: usize, out: &mut [f32; TILE]) {
                let cols = a.cols;
                debug_assert_eq!(row.len(), cols * 4);
                debug_assert!(a.x.len() >= (t0 + N) * cols);
                let w = row.as_ptr() as *const f32;
                let xs = a.x.as_ptr().add(t0 * cols);
                let mut acc = [_mm256_setzero_ps(); N];
                let main = cols / 8 * 8;
                let mut c = 0;
                while c < main {
                    let wv = _mm256_loadu_ps(w.add(c));
                    for i in 0..N {
                        acc[i] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xs.add(i * cols + c)), acc[i]);
                    }
                    c += 8;
                }
                for i in 0..N {
                    let mut s = hsum_ps(acc[i]);
                    for c in main..cols {
                        s += std::ptr::read_unaligned(w.add(c)) * *xs.add(i * cols + c);
                    }
                    out[i] = s;
                }
            }

            #[target_feature(enable = $features)]
            unsafe fn f16_n<const N: usize>(row: &[u8], a: &Acts, t0: usize, out: &mut [f32; TILE]) {
                let cols = a.cols;
                debug_assert_eq!(row.len(), cols * 2);
                debug_assert!(a.x.len() >= (t0 + N) * cols);
                let w = row.as_ptr();
                let xs = a.x.as_ptr().add(t0 * cols);
                let mut acc = [_mm256_setzero_ps(); N];
                let main = cols / 8 * 8;
                let mut c = 0;
                while c < main {
                    let wv = _mm256_cvtph_ps(_mm_loadu_si128(w.add(2 * c) as *const __m128i));
                    for i in 0..N {
                        acc[i] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xs.add(i * cols + c)), acc[i]);
                    }
                    c += 8;
                }
                for i in 0..N {
                    let mut s = hsum_ps(acc[i]);
                    for c in main..cols {
                        s += f16_to_f32(w.add(2 * c)) * *xs.add(i * cols + c);
                    }
                    out[i] = s;
                }
            }

            /// Unpacks the 12-byte Q4_K/Q5_K scales into 8 scales (bytes
            /// 0..8) and 8 mins (bytes 8..16), each zero-extended to i16:
            /// returns (scales broadcast to both lanes, mins).
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn k4_scales(p: *const u8) -> (__m256i, __m128i) {
                const KMASK1: u32 = 0x3f3f3f3f;
                const KMASK2: u32 = 0x0f0f0f0f;
                const KMASK3: u32 = 0x03030303;
                let mut u = [0u32; 4];
                std::ptr::copy_nonoverlapping(p, u.as_mut_ptr() as *mut u8, 12);
                u[3] = ((u[2] >> 4) & KMASK2) | (((u[1] >> 6) & KMASK3) << 4);
                let uaux = u[1] & KMASK1;
                u[1] = (u[2] & KMASK2) | (((u[0] >> 6) & KMASK3) << 4);
                u[2] = uaux;
                u[0] &= KMASK1;
                let ms = _mm256_cvtepu8_epi16(_mm_set_epi32(u[3] as i32, u[2] as i32, u[1] as i32, u[0] as i32));
                let sc = _mm256_extracti128_si256::<0>(ms);
                (_mm256_set_m128i(sc, sc), _mm256_extracti128_si256::<1>(ms))
            }

            /// Q4_K / Q5_K: `qh` is `Some(offset)` for Q5_K's high bits.
            macro_rules! k4_body {
                ($row:ident, $a:ident, $t0:ident, $out:ident, $N:ident, $bytes:expr, $qs_off:expr, $has_qh:expr) => {{
                    let cols = $a.cols;
                    let nb = cols / QK_K;
                    debug_assert_eq!($row.len(), nb * $bytes);
                    debug_assert!($a.qk_qs.len() >= ($t0 + $N) * cols);
                    debug_assert!($a.qk_bsums.len() >= ($t0 + $N) * nb * 16);
                    let w = $row.as_ptr();
                    let ys = $a.qk_qs.as_ptr().add($t0 * cols);
                    let ds = $a.qk_d.as_ptr().add($t0 * nb);
                    let bsums = $a.qk_bsums.as_ptr().add($t0 * nb * 16);
                    let m4 = _mm256_set1_epi8(0xF);
                    let m1 = _mm256_set1_epi8(1);
                    let mut acc = [_mm256_setzero_ps(); $N];
                    let mut accm = [_mm_setzero_ps(); $N];
                    for b in 0..nb {
                        let blk = w.add(b * $bytes);
                        let d = f16_to_f32(blk);
                        let dmin = f16_to_f32(blk.add(2));
                        let (scales, mins) = k4_scales(blk.add(4));
                        let q = blk.add($qs_off);
                        let mut hb = if $has_qh {
                            _mm256_loadu_si256(blk.add(16) as *const __m256i)
                        } else {
                            _mm256_setzero_si256()
                        };
                        let mut sumi = [_mm256_setzero_si256(); $N];
                        for i in 0..$N {
                            let bs = _mm256_loadu_si256(bsums.add((i * nb + b) * 16) as *const __m256i);
                            let q8s = _mm_hadd_epi16(
                                _mm256_extracti128_si256::<0>(bs),
                                _mm256_extracti128_si256::<1>(bs),
                            );
                            let prod = _mm_madd_epi16(mins, q8s);
                            let dm = _mm_set1_ps(-dmin * *ds.add(i * nb + b));
                            accm[i] = _mm_fmadd_ps(dm, _mm_cvtepi32_ps(prod), accm[i]);
                        }
                        for j in 0..4 {
                            let scale_l = _mm256_shuffle_epi8(scales, shuffle_i16(2 * j));
                            let scale_h = _mm256_shuffle_epi8(scales, shuffle_i16(2 * j + 1));
                            let bits = _mm256_loadu_si256(q.add(32 * j) as *const __m256i);
                            let mut ql = _mm256_and_si256(bits, m4);
                            let mut qh = _mm256_and_si256(_mm256_srli_epi16::<4>(bits), m4);
                            if $has_qh {
                                ql = _mm256_or_si256(ql, _mm256_slli_epi16::<4>(_mm256_and_si256(hb, m1)));
                                hb = _mm256_srli_epi16::<1>(hb);
                                qh = _mm256_or_si256(qh, _mm256_slli_epi16::<4>(_mm256_and_si256(hb, m1)));
                                hb = _mm256_srli_epi16::<1>(hb);
                            }
                            for i in 0..$N {
                                let y = ys.add(i * cols + b * QK_K + 64 * j);
                                let yl = _mm256_loadu_si256(y as *const __m256i);
                                let yh = _mm256_loadu_si256(y.add(32) as *const __m256i);
                                let pl = _mm256_madd_epi16(scale_l, _mm256_maddubs_epi16(ql, yl));
                                let ph = _mm256_madd_epi16(scale_h, _mm256_maddubs_epi16(qh, yh));
                                sumi[i] = _mm256_add_epi32(sumi[i], _mm256_add_epi32(pl, ph));
                            }
                        }
                        for i in 0..$N {
                            let dd = _mm256_set1_ps(d * *ds.add(i * nb + b));
                            acc[i] = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(sumi[i]), acc[i]);
                        }
                    }
                    for i in 0..$N {
                        $out[i] = hsum_ps(acc[i]) + hsum_ps128(accm[i]);
                    }
                }};
            }

            #[target_feature(enable = $features)]
            unsafe fn q4_k_n<const N: usize>(row: &[u8], a: &Acts, t0: usize, out: &mut [f32; TILE]) {
                k4_body!(row, a, t0, out, N, 144, 16, false)
            }

            #[target_feature(enable = $features)]
            unsafe fn q5_k_n<const N: usize>(row: &[u8], a: &Acts, t0: usize, out: &mut [f32; TILE]) {
                k4_body!(row, a, t0, out, N, 176, 48, true)
            }

            #[target_feature(enable = $features)]
            unsafe fn q6_k_n<const N: usize>(row: &[u8], a: &Acts, t0: usize, out: &mut [f32; TILE]) {
                let cols = a.cols;
                let nb = cols / QK_K;
                debug_assert_eq!(row.len(), nb * 210);
                debug_assert!(a.qk_qs.len() >= (t0 + N) * cols);
                debug_assert!(a.qk_bsums.len() >= (t0 + N) * nb * 16);
                let w = row.as_ptr();
                let ys = a.qk_qs.as_ptr().add(t0 * cols);
                let ds = a.qk_d.as_ptr().add(t0 * nb);
                let bsums = a.qk_bsums.as_ptr().add(t0 * nb * 16);
                let m4 = _mm256_set1_epi8(0xF);
                let m2 = _mm256_set1_epi8(3);
                let mut acc = [_mm256_setzero_ps(); N];
                for b in 0..nb {
                    let blk = w.add(b * 210);
                    let ql = blk;
                    let qhp = blk.add(128);
                    let sc = _mm_loadu_si128(blk.add(192) as *const __m128i);
                    let d = f16_to_f32(blk.add(208));
                    // Weights are stored as q + 32 (0..64); the -32 goes
                    // through the activation sums: -32 * sum_g sc_g * bsum_g.
                    let sc16 = _mm256_cvtepi8_epi16(sc);
                    let mut sumi = [_mm256_setzero_si256(); N];
                    for i in 0..N {
                        let bs = _mm256_loadu_si256(bsums.add((i * nb + b) * 16) as *const __m256i);
                        sumi[i] = _mm256_sub_epi32(sumi[i], _mm256_slli_epi32::<5>(_mm256_madd_epi16(sc16, bs)));
                    }
                    for h in 0..2 {
                        let b1 = _mm256_loadu_si256(ql.add(64 * h) as *const __m256i);
                        let b2 = _mm256_loadu_si256(ql.add(64 * h + 32) as *const __m256i);
                        let hb = _mm256_loadu_si256(qhp.add(32 * h) as *const __m256i);
                        let q0 = _mm256_or_si256(
                            _mm256_and_si256(b1, m4),
                            _mm256_slli_epi16::<4>(_mm256_and_si256(hb, m2)),
                        );
                        let q1 = _mm256_or_si256(
                            _mm256_and_si256(b2, m4),
                            _mm256_slli_epi16::<4>(_mm256_and_si256(_mm256_srli_epi16::<2>(hb), m2)),
                        );
                        let q2 = _mm256_or_si256(
                            _mm256_and_si256(_mm256_srli_epi16::<4>(b1), m4),
                            _mm256_slli_epi16::<4>(_mm256_and_si256(_mm256_srli_epi16::<4>(hb), m2)),
                        );
                        let q3 = _mm256_or_si256(
                            _mm256_and_si256(_mm256_srli_epi16::<4>(b2), m4),
                            _mm256_slli_epi16::<4>(_mm256_and_si256(_mm256_srli_epi16::<6>(hb), m2)),
                        );
                        let qv = [q0, q1, q2, q3];
                        for k in 0..4 {
                            // Chunk c = 4h + k of 32 values uses scales 2c, 2c+1.
                            let c = 4 * h + k;
                            let s8 = _mm_shuffle_epi8(
                                sc,
                                _mm_set_epi64x(
                                    (0x0101010101010101u64 * (2 * c as u64 + 1)) as i64,
                                    (0x0101010101010101u64 * (2 * c as u64)) as i64,
                                ),
                            );
                            let scale = _mm256_cvtepi8_epi16(s8);
                            for i in 0..N {
                                let y = _mm256_loadu_si256(ys.add(i * cols + b * QK_K + 32 * c) as *const __m256i);
                                let p = _mm256_madd_epi16(scale, _mm256_maddubs_epi16(qv[k], y));
                                sumi[i] = _mm256_add_epi32(sumi[i], p);
                            }
                        }
                    }
                    for i in 0..N {
                        let dd = _mm256_set1_ps(d * *ds.add(i * nb + b));
                        acc[i] = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(sumi[i]), acc[i]);
                    }
                }
                for i in 0..N {
                    out[i] = hsum_ps(acc[i]);
                }
            }
        }
    };
}

x86_kernels!(avx2, "avx2,fma,f16c", mul_sum_us8_avx2);
x86_kernels!(
    avx512,
    "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni",
    mul_sum_us8_vnni
);

/// AVX-512 kernels for the 32-element formats: two blocks per 512-bit
/// register, weights shifted to unsigned bytes (`w + o`, o = 8 / 16 / 128)
/// so one `vpdpbusd` multiplies them with the signed activations; the shift
/// comes back out through the per-block activation sums (`Acts::q8_s`):
/// `sum(w * y) = sum((w + o) * y) - o * sum(y)`.
pub(crate) mod avx512_q32 {
    use super::*;

    q32_entries!(DotFn, row, [f32; TILE]);

    /// 16 bytes at `p` and at `q` -> 64 nibbles: [p lo, p hi, q lo, q hi].
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
    unsafe fn nibbles_pair(p: *const u8, q: *const u8) -> __m512i {
        let t = _mm256_set_m128i(
            _mm_loadu_si128(q as *const __m128i),
            _mm_loadu_si128(p as *const __m128i),
        );
        let z = _mm512_castsi256_si512(t);
        let z = _mm512_shuffle_i64x2::<0x50>(z, z); // 128-bit lanes [p, p, q, q]
        let z = _mm512_mask_blend_epi64(0b1100_1100, z, _mm512_srli_epi16::<4>(z));
        _mm512_and_si512(z, _mm512_set1_epi8(0xF))
    }

    /// The shared loop: `$pair(blk) -> u8 x 64` for blocks b, b+1, and
    /// `$one(blk) -> u8 x 32` for an odd last block.
    macro_rules! body {
        ($row:ident, $a:ident, $t0:ident, $out:ident, $N:ident, $bytes:expr, $offset:expr,
         |$pb:ident| $pair:block, |$ob:ident| $one:block) => {{
            let cols = $a.cols;
            let nb = cols / QK;
            debug_assert_eq!($row.len(), nb * $bytes);
            debug_assert!($a.q8_qs.len() >= ($t0 + $N) * cols);
            debug_assert!($a.q8_d.len() >= ($t0 + $N) * nb && $a.q8_s.len() >= ($t0 + $N) * nb);
            let w = $row.as_ptr();
            let ys = $a.q8_qs.as_ptr().add($t0 * cols);
            let ds = $a.q8_d.as_ptr().add($t0 * nb);
            let ss = $a.q8_s.as_ptr().add($t0 * nb);
            let expand = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
            let mut acc = [_mm512_setzero_ps(); $N];
            let mut corr = [_mm_setzero_ps(); $N];
            let mut tail = [0f32; $N];
            let mut b = 0;
            while b + 2 <= nb {
                let $pb = w.add(b * $bytes);
                let u: __m512i = $pair;
                let d01 = std::ptr::read_unaligned($pb as *const u16) as u32
                    | (std::ptr::read_unaligned($pb.add($bytes) as *const u16) as u32) << 16;
                let dw = _mm_cvtph_ps(_mm_cvtsi32_si128(d01 as i32));
                for i in 0..$N {
                    let y = _mm512_loadu_si512(ys.add(i * cols + b * QK) as *const _);
                    let p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, y);
                    let dy = _mm_castpd_ps(_mm_load_sd(ds.add(i * nb + b) as *const f64));
                    let sc =
                        _mm512_permutexvar_ps(expand, _mm512_castps128_ps512(_mm_mul_ps(dw, dy)));
                    acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), sc, acc[i]);
                    let sy = _mm_castpd_ps(_mm_load_sd(ss.add(i * nb + b) as *const f64));
                    corr[i] = _mm_fmadd_ps(dw, sy, corr[i]);
                }
                b += 2;
            }
            if b < nb {
                let $ob = w.add(b * $bytes);
                let u: __m256i = $one;
                let dw = f16_to_f32($ob);
                for i in 0..$N {
                    let y = _mm256_loadu_si256(ys.add(i * cols + b * QK) as *const __m256i);
                    let p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, y);
                    let s = hsum_ps(_mm256_cvtepi32_ps(p));
                    tail[i] = dw * (*ds.add(i * nb + b) * s - $offset * *ss.add(i * nb + b));
                }
            }
            for i in 0..$N {
                $out[i] = _mm512_reduce_add_ps(acc[i]) - $offset * hsum_ps128(corr[i]) + tail[i];
            }
        }};
    }

    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn q8_0_n<const N: usize>(row: &[u8], a: &Acts, t0: usize, out: &mut [f32; TILE]) {
        let flip = _mm512_set1_epi8(0x80u8 as i8);
        body!(
            row,
            a,
            t0,
            out,
            N,
            34,
            128.0,
            |blk| {
                let lo = _mm256_loadu_si256(blk.add(2) as *const __m256i);
                let hi = _mm256_loadu_si256(blk.add(36) as *const __m256i);
                _mm512_xor_si512(
                    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi),
                    flip,
                )
            },
            |blk| {
                _mm256_xor_si256(
                    _mm256_loadu_si256(blk.add(2) as *const __m256i),
                    _mm512_castsi512_si256(flip),
                )
            }
        )
    }

    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn q4_0_n<const N: usize>(row: &[u8], a: &Acts, t0: usize, out: &mut [f32; TILE]) {
        body!(
            row,
            a,
            t0,
            out,
            N,
            18,
            8.0,
            |blk| { nibbles_pair(blk.add(2), blk.add(20)) },
            |blk| { bytes_from_nibbles_32(blk.add(2)) }
        )
    }

    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn q5_0_n<const N: usize>(row: &[u8], a: &Acts, t0: usize, out: &mut [f32; TILE]) {
        let bit4 = _mm512_set1_epi8(0x10);
        body!(
            row,
            a,
            t0,
            out,
            N,
            22,
            16.0,
            |blk| {
                let nib = nibbles_pair(blk.add(6), blk.add(28));
                let qh = std::ptr::read_unaligned(blk.add(2) as *const u32) as u64
                    | (std::ptr::read_unaligned(blk.add(24) as *const u32) as u64) << 32;
                _mm512_or_si512(nib, _mm512_maskz_mov_epi8(qh, bit4))
            },
            |blk| {
                let nib = bytes_from_nibbles_32(blk.add(6));
                let qh = std::ptr::read_unaligned(blk.add(2) as *const u32);
                _mm256_or_si256(
                    nib,
                    _mm256_and_si256(bytes_from_bits_32(qh), _mm512_castsi512_si256(bit4)),
                )
            }
        )
    }
}

/// AVX-512 kernels for the K-quants: 64 weights per 512-bit register
/// (`maddubs` + `madd` with per-16/32 scales), integer sums over the whole
/// 256-value super-block, one float multiply per super-block.
pub(crate) mod avx512_k {
    use super::*;

    pub(crate) fn select(qtype: QType) -> Option<DotFn> {
        match qtype {
            QType::Q4_K => Some(q4_k),
            QType::Q5_K => Some(q5_k),
            QType::Q6_K => Some(q6_k),
            _ => None,
        }
    }

    macro_rules! entry {
        ($name:ident, $imp:ident) => {
            fn $name(row: &[u8], a: &Acts, t0: usize, n: usize, out: &mut [f32; TILE]) {
                // SAFETY: only reachable through `select`, which the driver
                // calls after checking AVX-512 BW/VL; sizes validated by the
                // driver.
                unsafe { by_tokens8!(n, $imp(row, a, t0, out)) }
            }
        };
    }
    entry!(q4_k, q4_k_n);
    entry!(q5_k, q5_k_n);
    entry!(q6_k, q6_k_n);

    /// i16 permutation index: 32 lanes, lane `l` -> `first + l / (32 / groups)`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn group_index(first: i32, groups: i32) -> __m512i {
        let per = 16 / groups; // i32 lanes per group
        let v = |k: i32| (first + k / per) * 0x10001;
        _mm512_setr_epi32(
            v(0),
            v(1),
            v(2),
            v(3),
            v(4),
            v(5),
            v(6),
            v(7),
            v(8),
            v(9),
            v(10),
            v(11),
            v(12),
            v(13),
            v(14),
            v(15),
        )
    }

    /// The 12 scale bytes of Q4_K/Q5_K -> (8 scales, 8 mins) as i16.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn k4_scales(p: *const u8) -> (__m128i, __m128i) {
        const KMASK1: u32 = 0x3f3f3f3f;
        const KMASK2: u32 = 0x0f0f0f0f;
        const KMASK3: u32 = 0x03030303;
        let mut u = [0u32; 4];
        std::ptr::copy_nonoverlapping(p, u.as_mut_ptr() as *mut u8, 12);
        u[3] = ((u[2] >> 4) & KMASK2) | (((u[1] >> 6) & KMASK3) << 4);
        let uaux = u[1] & KMASK1;
        u[1] = (u[2] & KMASK2) | (((u[0] >> 6) & KMASK3) << 4);
        u[2] = uaux;
        u[0] &= KMASK1;
        let ms = _mm256_cvtepu8_epi16(_mm_set_epi32(
            u[3] as i32,
            u[2] as i32,
            u[1] as i32,
            u[0] as i32,
        ));
        (
            _mm256_extracti128_si256::<0>(ms),
            _mm256_extracti128_si256::<1>(ms),
        )
    }

    macro_rules! k4_body {
        ($row:ident, $a:ident, $t0:ident, $out:ident, $N:ident, $bytes:expr, $qs_off:expr, $has_qh:expr) => {{
            let cols = $a.cols;
            let nb = cols / QK_K;
            debug_assert_eq!($row.len(), nb * $bytes);
            debug_assert!($a.qk_qs.len() >= ($t0 + $N) * cols);
            debug_assert!($a.qk_bsums.len() >= ($t0 + $N) * nb * 16);
            let w = $row.as_ptr();
            let ys = $a.qk_qs.as_ptr().add($t0 * cols);
            let ds = $a.qk_d.as_ptr().add($t0 * nb);
            let bsums = $a.qk_bsums.as_ptr().add($t0 * nb * 16);
            let m4 = _mm512_set1_epi8(0xF);
            let m1 = _mm256_set1_epi8(1);
            let idx = [
                group_index(0, 2),
                group_index(2, 2),
                group_index(4, 2),
                group_index(6, 2),
            ];
            let mut acc = [_mm512_setzero_ps(); $N];
            let mut accm = [_mm_setzero_ps(); $N];
            for b in 0..nb {
                let blk = w.add(b * $bytes);
                let d = f16_to_f32(blk);
                let dmin = f16_to_f32(blk.add(2));
                let (sc, mins) = k4_scales(blk.add(4));
                let sc512 = _mm512_castsi128_si512(sc);
                let q = blk.add($qs_off);
                let mut hb = if $has_qh {
                    _mm256_loadu_si256(blk.add(16) as *const __m256i)
                } else {
                    _mm256_setzero_si256()
                };
                for i in 0..$N {
                    let bs = _mm256_loadu_si256(bsums.add((i * nb + b) * 16) as *const __m256i);
                    let q8s = _mm_hadd_epi16(
                        _mm256_extracti128_si256::<0>(bs),
                        _mm256_extracti128_si256::<1>(bs),
                    );
                    let dm = _mm_set1_ps(-dmin * *ds.add(i * nb + b));
                    accm[i] = _mm_fmadd_ps(dm, _mm_cvtepi32_ps(_mm_madd_epi16(mins, q8s)), accm[i]);
                }
                let mut sumi = [_mm512_setzero_si512(); $N];
                for j in 0..4 {
                    let scale = _mm512_permutexvar_epi16(idx[j], sc512);
                    let bits = _mm256_loadu_si256(q.add(32 * j) as *const __m256i);
                    let z = _mm512_inserti64x4::<1>(
                        _mm512_castsi256_si512(bits),
                        _mm256_srli_epi16::<4>(bits),
                    );
                    let mut z = _mm512_and_si512(z, m4);
                    if $has_qh {
                        let lo = _mm256_and_si256(hb, m1);
                        hb = _mm256_srli_epi16::<1>(hb);
                        let hi = _mm256_and_si256(hb, m1);
                        hb = _mm256_srli_epi16::<1>(hb);
                        let h = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi);
                        z = _mm512_or_si512(z, _mm512_slli_epi16::<4>(h));
                    }
                    for i in 0..$N {
                        let y =
                            _mm512_loadu_si512(ys.add(i * cols + b * QK_K + 64 * j) as *const _);
                        let p = _mm512_madd_epi16(scale, _mm512_maddubs_epi16(z, y));
                        sumi[i] = _mm512_add_epi32(sumi[i], p);
                    }
                }
                for i in 0..$N {
                    let dd = _mm512_set1_ps(d * *ds.add(i * nb + b));
                    acc[i] = _mm512_fmadd_ps(dd, _mm512_cvtepi32_ps(sumi[i]), acc[i]);
                }
            }
            for i in 0..$N {
                $out[i] = _mm512_reduce_add_ps(acc[i]) + hsum_ps128(accm[i]);
            }
        }};
    }

    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
    unsafe fn q4_k_n<const N: usize>(row: &[u8], a: &Acts, t0: usize, out: &mut [f32; TILE]) {
        k4_body!(row, a, t0, out, N, 144, 16, false)
    }

    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
    unsafe fn q5_k_n<const N: usize>(row: &[u8], a: &Acts, t0: usize, out: &mut [f32; TILE]) {
        k4_body!(row, a, t0, out, N, 176, 48, true)
    }

    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
    unsafe fn q6_k_n<const N: usize>(row: &[u8], a: &Acts, t0: usize, out: &mut [f32; TILE]) {
        let cols = a.cols;
        let nb = cols / QK_K;
        debug_assert_eq!(row.len(), nb * 210);
        debug_assert!(a.qk_qs.len() >= (t0 + N) * cols);
        debug_assert!(a.qk_bsums.len() >= (t0 + N) * nb * 16);
        let w = row.as_ptr();
        let ys = a.qk_qs.as_ptr().add(t0 * cols);
        let ds = a.qk_d.as_ptr().add(t0 * nb);
        let bsums = a.qk_bsums.as_ptr().add(t0 * nb * 16);
        let m4 = _mm512_set1_epi8(0xF);
        let m3 = _mm512_set1_epi8(3);
        let idx = [
            group_index(0, 4),
            group_index(4, 4),
            group_index(8, 4),
            group_index(12, 4),
        ];
        let mut acc = [_mm512_setzero_ps(); N];
        for b in 0..nb {
            let blk = w.add(b * 210);
            let sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(blk.add(192) as *const __m128i));
            let sc512 = _mm512_castsi256_si512(sc16);
            let d = f16_to_f32(blk.add(208));
            // Weights are stored as q + 32; the -32 goes through the sums:
            // -32 * sum_g sc_g * bsum_g.
            let mut sumi = [_mm512_setzero_si512(); N];
            for i in 0..N {
                let bs = _mm256_loadu_si256(bsums.add((i * nb + b) * 16) as *const __m256i);
                let c = _mm256_slli_epi32::<5>(_mm256_madd_epi16(sc16, bs));
                sumi[i] = _mm512_sub_epi32(sumi[i], _mm512_zextsi256_si512(c));
            }
            for h in 0..2 {
                let ql = _mm512_loadu_si512(blk.add(64 * h) as *const _);
                let hb = _mm256_loadu_si256(blk.add(128 + 32 * h) as *const __m256i);
                let hbz =
                    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(hb), _mm256_srli_epi16::<2>(hb));
                let lo = _mm512_or_si512(
                    _mm512_and_si512(ql, m4),
                    _mm512_slli_epi16::<4>(_mm512_and_si512(hbz, m3)),
                );
                let hi = _mm512_or_si512(
                    _mm512_and_si512(_mm512_srli_epi16::<4>(ql), m4),
                    _mm512_slli_epi16::<4>(_mm512_and_si512(_mm512_srli_epi16::<4>(hbz), m3)),
                );
                let scale_lo = _mm512_permutexvar_epi16(idx[2 * h], sc512);
                let scale_hi = _mm512_permutexvar_epi16(idx[2 * h + 1], sc512);
                for i in 0..N {
                    let y = ys.add(i * cols + b * QK_K + 128 * h);
                    let ylo = _mm512_loadu_si512(y as *const _);
                    let yhi = _mm512_loadu_si512(y.add(64) as *const _);
                    let p = _mm512_add_epi32(
                        _mm512_madd_epi16(scale_lo, _mm512_maddubs_epi16(lo, ylo)),
                        _mm512_madd_epi16(scale_hi, _mm512_maddubs_epi16(hi, yhi)),
                    );
                    sumi[i] = _mm512_add_epi32(sumi[i], p);
                }
            }
            for i in 0..N {
                let dd = _mm512_set1_ps(d * *ds.add(i * nb + b));
                acc[i] = _mm512_fmadd_ps(dd, _mm512_cvtepi32_ps(sumi[i]), acc[i]);
            }
        }
        for i in 0..N {
            out[i] = _mm512_reduce_add_ps(acc[i]);
        }
    }
}
