//! AVX-512 VNNI kernels for the 32-element formats (Q4_0, Q5_0, Q8_0) that
//! take four weight rows at once (rows are consecutive in the matrix, so the
//! four are `rows[r * row_bytes..]`) against up to `TILE` tokens.
//!
//! Why four rows: with one row per register the float work per block
//! (convert, scale, accumulate) is paid per 32 weights and token, and it cost
//! more than the integer products. Here one 512-bit register holds the same
//! 16 weights positions of four rows (one 128-bit lane per row: `a0` the
//! block's values 0..16, `a1` its values 16..32), the token's 16 activations
//! are broadcast to all four lanes, and two `vpdpbusd` leave four partial
//! sums per row in one register; one convert, one multiply by the four rows'
//! scales times the token's, and one FMA then cover 128 products. Unpacking
//! the weights is paid once per block of four rows and shared by all tokens.
//!
//! The weights are shifted to unsigned bytes (`w + o`, o = 8 / 16 / 128) so
//! `vpdpbusd` can multiply them with the signed activations; the shift comes
//! back out through the per-block activation sums (`Acts::q8_s`):
//! `sum(w * y) = sum((w + o) * y) - o * sum(y)`.
//!
//! Same precondition as `x86`: the driver validated the sizes; `rows` holds
//! four rows of `acts.cols / 32` blocks.

#![allow(unused_unsafe)]

use crate::formats::QK;
use crate::matmul::{Acts, Dot4Fn, TILE};
use crate::x86::{by_tokens8, q32_entries};
use crate::QType;
use std::arch::x86_64::*;

q32_entries!(Dot4Fn, rows, [[f32; TILE]; 4]);

#[inline(always)]
unsafe fn read_u16(p: *const u8) -> u64 {
    // SAFETY: the caller's block holds these bytes.
    unsafe { std::ptr::read_unaligned(p as *const u16) as u64 }
}

#[inline(always)]
unsafe fn read_u32(p: *const u8) -> u64 {
    // SAFETY: as above.
    unsafe { std::ptr::read_unaligned(p as *const u32) as u64 }
}

/// 16 bytes at each of `p[0..4]` in the four 128-bit lanes of one register.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn lanes4(p0: *const u8, p1: *const u8, p2: *const u8, p3: *const u8) -> __m512i {
    let z = _mm512_castsi128_si512(_mm_loadu_si128(p0 as *const __m128i));
    let z = _mm512_inserti32x4::<1>(z, _mm_loadu_si128(p1 as *const __m128i));
    let z = _mm512_inserti32x4::<2>(z, _mm_loadu_si128(p2 as *const __m128i));
    _mm512_inserti32x4::<3>(z, _mm_loadu_si128(p3 as *const __m128i))
}

/// The shared loop. `$unpack(p0, p1, p2, p3) -> (a0, a1)`: the unsigned
/// weights of block `b` of the four rows (block pointers `p0..p3`), values
/// 0..16 of row r in lane r of `a0`, values 16..32 in lane r of `a1`.
macro_rules! body {
    ($rows:ident, $a:ident, $t0:ident, $out:ident, $N:ident, $bytes:expr, $offset:expr,
     |$p0:ident, $p1:ident, $p2:ident, $p3:ident| $unpack:block) => {{
        let cols = $a.cols;
        let nb = cols / QK;
        let rb = nb * $bytes;
        debug_assert_eq!($rows.len(), 4 * rb);
        debug_assert!($a.q8_qs.len() >= ($t0 + $N) * cols);
        debug_assert!($a.q8_d.len() >= ($t0 + $N) * nb && $a.q8_s.len() >= ($t0 + $N) * nb);
        let w = $rows.as_ptr();
        let ys = $a.q8_qs.as_ptr().add($t0 * cols);
        let ds = $a.q8_d.as_ptr().add($t0 * nb);
        let ss = $a.q8_s.as_ptr().add($t0 * nb);
        // Row r's scale into lanes 4r..4r+4.
        let expand = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
        let mut acc = [_mm512_setzero_ps(); $N];
        let mut corr = [_mm_setzero_ps(); $N];
        for b in 0..nb {
            let $p0 = w.add(b * $bytes);
            let $p1 = $p0.add(rb);
            let $p2 = $p0.add(2 * rb);
            let $p3 = $p0.add(3 * rb);
            let d = read_u16($p0) | read_u16($p1) << 16 | read_u16($p2) << 32 | read_u16($p3) << 48;
            let dw4 = _mm_cvtph_ps(_mm_cvtsi64_si128(d as i64));
            let dwx = _mm512_permutexvar_ps(expand, _mm512_castps128_ps512(dw4));
            let (a0, a1): (__m512i, __m512i) = $unpack;
            for i in 0..$N {
                let y = ys.add(i * cols + b * QK);
                let y0 = _mm512_broadcast_i32x4(_mm_loadu_si128(y as *const __m128i));
                let y1 = _mm512_broadcast_i32x4(_mm_loadu_si128(y.add(16) as *const __m128i));
                let p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), a0, y0);
                let p = _mm512_dpbusd_epi32(p, a1, y1);
                let sc = _mm512_mul_ps(dwx, _mm512_set1_ps(*ds.add(i * nb + b)));
                acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), sc, acc[i]);
                corr[i] = _mm_fmadd_ps(dw4, _mm_set1_ps(*ss.add(i * nb + b)), corr[i]);
            }
        }
        // Lane 4r of `s2` = the sum of row r's four lanes.
        let pick = _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
        let offset = _mm_set1_ps($offset);
        for i in 0..$N {
            let v = acc[i];
            let s1 = _mm512_add_ps(v, _mm512_permute_ps::<0b10_11_00_01>(v));
            let s2 = _mm512_add_ps(s1, _mm512_permute_ps::<0b01_00_11_10>(s1));
            let sums = _mm512_castps512_ps128(_mm512_permutexvar_ps(pick, s2));
            let r = _mm_fnmadd_ps(offset, corr[i], sums);
            let mut tmp = [0f32; 4];
            _mm_storeu_ps(tmp.as_mut_ptr(), r);
            for k in 0..4 {
                $out[k][i] = tmp[k];
            }
        }
    }};
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q8_0_n<const N: usize>(rows: &[u8], a: &Acts, t0: usize, out: &mut [[f32; TILE]; 4]) {
    let flip = _mm512_set1_epi8(0x80u8 as i8);
    // Quad-words of [r0 lo, r0 hi, r1 lo, r1 hi] and [r2 lo, r2 hi, r3 lo, r3 hi].
    let lo = _mm512_setr_epi64(0, 1, 4, 5, 8, 9, 12, 13);
    let hi = _mm512_setr_epi64(2, 3, 6, 7, 10, 11, 14, 15);
    body!(rows, a, t0, out, N, 34, 128.0, |p0, p1, p2, p3| {
        let z01 = _mm512_inserti64x4::<1>(
            _mm512_castsi256_si512(_mm256_loadu_si256(p0.add(2) as *const __m256i)),
            _mm256_loadu_si256(p1.add(2) as *const __m256i),
        );
        let z23 = _mm512_inserti64x4::<1>(
            _mm512_castsi256_si512(_mm256_loadu_si256(p2.add(2) as *const __m256i)),
            _mm256_loadu_si256(p3.add(2) as *const __m256i),
        );
        (
            _mm512_xor_si512(_mm512_permutex2var_epi64(z01, lo, z23), flip),
            _mm512_xor_si512(_mm512_permutex2var_epi64(z01, hi, z23), flip),
        )
    })
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q4_0_n<const N: usize>(rows: &[u8], a: &Acts, t0: usize, out: &mut [[f32; TILE]; 4]) {
    let low = _mm512_set1_epi8(0x0F);
    body!(rows, a, t0, out, N, 18, 8.0, |p0, p1, p2, p3| {
        let z = lanes4(p0.add(2), p1.add(2), p2.add(2), p3.add(2));
        (
            _mm512_and_si512(z, low),
            _mm512_and_si512(_mm512_srli_epi16::<4>(z), low),
        )
    })
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q5_0_n<const N: usize>(rows: &[u8], a: &Acts, t0: usize, out: &mut [[f32; TILE]; 4]) {
    let low = _mm512_set1_epi8(0x0F);
    let bit4 = _mm512_set1_epi8(0x10);
    body!(rows, a, t0, out, N, 22, 16.0, |p0, p1, p2, p3| {
        let z = lanes4(p0.add(6), p1.add(6), p2.add(6), p3.add(6));
        let (h0, h1, h2, h3) = (
            read_u32(p0.add(2)),
            read_u32(p1.add(2)),
            read_u32(p2.add(2)),
            read_u32(p3.add(2)),
        );
        // Bit j of row r's high bits goes to byte j of lane r: values 0..16
        // take bits 0..16, values 16..32 bits 16..32.
        let m0 = (h0 & 0xFFFF) | (h1 & 0xFFFF) << 16 | (h2 & 0xFFFF) << 32 | (h3 & 0xFFFF) << 48;
        let m1 = h0 >> 16 | (h1 >> 16) << 16 | (h2 >> 16) << 32 | (h3 >> 16) << 48;
        let a0 = _mm512_and_si512(z, low);
        let a1 = _mm512_and_si512(_mm512_srli_epi16::<4>(z), low);
        (
            _mm512_mask_add_epi8(a0, m0, a0, bit4),
            _mm512_mask_add_epi8(a1, m1, a1, bit4),
        )
    })
}
