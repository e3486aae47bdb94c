//! Portable dot kernels: integer dot products per block, exactly the math the
//! SIMD kernels do (up to float summation order).

use crate::formats::{f16_at, scale_min_k4, QK, QK_K};
use crate::matmul::{Acts, DotFn, TILE};
use crate::QType;

pub(crate) fn select(qtype: QType) -> DotFn {
    match qtype {
        QType::F32 => dot_f32,
        QType::F16 => dot_f16,
        QType::Q4_0 => dot_q4_0,
        QType::Q5_0 => dot_q5_0,
        QType::Q8_0 => dot_q8_0,
        QType::Q4_K => dot_q4_k,
        QType::Q5_K => dot_q5_k,
        QType::Q6_K => dot_q6_k,
    }
}

fn dot_f32(row: &[u8], a: &Acts, t0: usize, n: usize, out: &mut [f32; TILE]) {
    for i in 0..n {
        let x = &a.x[(t0 + i) * a.cols..][..a.cols];
        out[i] = row
            .chunks_exact(4)
            .zip(x)
            .map(|(c, &v)| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) * v)
            .sum();
    }
}

fn dot_f16(row: &[u8], a: &Acts, t0: usize, n: usize, out: &mut [f32; TILE]) {
    for i in 0..n {
        let x = &a.x[(t0 + i) * a.cols..][..a.cols];
        out[i] = row
            .chunks_exact(2)
            .zip(x)
            .map(|(c, &v)| f16_at(c, 0) * v)
            .sum();
    }
}

/// Shared loop for the 32-element formats: `unpack` writes the block's 32
/// signed integer weights, the rest is `sum_b d_w * d_x * sum(q_w * q_x)`.
#[inline(always)]
fn dot_q32(
    row: &[u8],
    a: &Acts,
    t0: usize,
    n: usize,
    out: &mut [f32; TILE],
    block_bytes: usize,
    unpack: impl Fn(&[u8], &mut [i8; QK]) -> f32,
) {
    let nb = a.cols / QK;
    let mut acc = [0f32; TILE];
    let mut q = [0i8; QK];
    for (b, blk) in row.chunks_exact(block_bytes).enumerate() {
        let dw = unpack(blk, &mut q);
        for i in 0..n {
            let t = t0 + i;
            let y = &a.q8_qs[t * a.cols + b * QK..][..QK];
            let s: i32 = q.iter().zip(y).map(|(&w, &v)| w as i32 * v as i32).sum();
            acc[i] += dw * a.q8_d[t * nb + b] * s as f32;
        }
    }
    out[..n].copy_from_slice(&acc[..n]);
}

fn dot_q4_0(row: &[u8], a: &Acts, t0: usize, n: usize, out: &mut [f32; TILE]) {
    dot_q32(row, a, t0, n, out, 18, |b, q| {
        for j in 0..16 {
            q[j] = (b[2 + j] & 0xF) as i8 - 8;
            q[j + 16] = (b[2 + j] >> 4) as i8 - 8;
        }
        f16_at(b, 0)
    })
}

fn dot_q5_0(row: &[u8], a: &Acts, t0: usize, n: usize, out: &mut [f32; TILE]) {
    dot_q32(row, a, t0, n, out, 22, |b, q| {
        let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
        for j in 0..16 {
            q[j] = ((b[6 + j] & 0xF) | ((((qh >> j) & 1) as u8) << 4)) as i8 - 16;
            q[j + 16] = ((b[6 + j] >> 4) | ((((qh >> (j + 16)) & 1) as u8) << 4)) as i8 - 16;
        }
        f16_at(b, 0)
    })
}

fn dot_q8_0(row: &[u8], a: &Acts, t0: usize, n: usize, out: &mut [f32; TILE]) {
    dot_q32(row, a, t0, n, out, 34, |b, q| {
        for j in 0..32 {
            q[j] = b[2 + j] as i8;
        }
        f16_at(b, 0)
    })
}

/// Shared loop for the K-quants: `unpack` writes 256 weights as small
/// integers, 16 per-16 scales and 16 per-16 offsets (already multiplied into
/// integer units), returning (d, dmin). The dot is
/// `d * dx * sum_g sc_g * sum(q*y) - dmin * dx * sum_g m_g * bsum_g`.
#[inline(always)]
fn dot_k(
    row: &[u8],
    a: &Acts,
    t0: usize,
    n: usize,
    out: &mut [f32; TILE],
    block_bytes: usize,
    unpack: impl Fn(&[u8], &mut [i8; QK_K], &mut [i32; 16], &mut [i32; 16]) -> (f32, f32),
) {
    let nb = a.cols / QK_K;
    let mut acc = [0f32; TILE];
    let mut q = [0i8; QK_K];
    let mut sc = [0i32; 16];
    let mut m = [0i32; 16];
    for (b, blk) in row.chunks_exact(block_bytes).enumerate() {
        let (d, dmin) = unpack(blk, &mut q, &mut sc, &mut m);
        for i in 0..n {
            let t = t0 + i;
            let y = &a.qk_qs[t * a.cols + b * QK_K..][..QK_K];
            let bs = &a.qk_bsums[(t * nb + b) * 16..][..16];
            let mut sumi = 0i32;
            let mut summ = 0i32;
            for g in 0..16 {
                let s: i32 = q[16 * g..16 * g + 16]
                    .iter()
                    .zip(&y[16 * g..16 * g + 16])
                    .map(|(&w, &v)| w as i32 * v as i32)
                    .sum();
                sumi += sc[g] * s;
                summ += m[g] * bs[g] as i32;
            }
            let dx = a.qk_d[t * nb + b];
            acc[i] += d * dx * sumi as f32 - dmin * dx * summ as f32;
        }
    }
    out[..n].copy_from_slice(&acc[..n]);
}

fn dot_q4_k(row: &[u8], a: &Acts, t0: usize, n: usize, out: &mut [f32; TILE]) {
    dot_k(row, a, t0, n, out, 144, |b, q, sc, m| {
        let scales = &b[4..16];
        let qs = &b[16..144];
        for j in 0..8 {
            let (s, mm) = scale_min_k4(j, scales);
            sc[2 * j] = s as i32;
            sc[2 * j + 1] = s as i32;
            m[2 * j] = mm as i32;
            m[2 * j + 1] = mm as i32;
        }
        for j in 0..4 {
            for l in 0..32 {
                q[64 * j + l] = (qs[32 * j + l] & 0xF) as i8;
                q[64 * j + 32 + l] = (qs[32 * j + l] >> 4) as i8;
            }
        }
        (f16_at(b, 0), f16_at(b, 2))
    })
}

fn dot_q5_k(row: &[u8], a: &Acts, t0: usize, n: usize, out: &mut [f32; TILE]) {
    dot_k(row, a, t0, n, out, 176, |b, q, sc, m| {
        let scales = &b[4..16];
        let qh = &b[16..48];
        let qs = &b[48..176];
        for j in 0..8 {
            let (s, mm) = scale_min_k4(j, scales);
            sc[2 * j] = s as i32;
            sc[2 * j + 1] = s as i32;
            m[2 * j] = mm as i32;
            m[2 * j + 1] = mm as i32;
        }
        for j in 0..4 {
            for l in 0..32 {
                let h1 = ((qh[l] >> (2 * j)) & 1) << 4;
                let h2 = ((qh[l] >> (2 * j + 1)) & 1) << 4;
                q[64 * j + l] = ((qs[32 * j + l] & 0xF) | h1) as i8;
                q[64 * j + 32 + l] = ((qs[32 * j + l] >> 4) | h2) as i8;
            }
        }
        (f16_at(b, 0), f16_at(b, 2))
    })
}

fn dot_q6_k(row: &[u8], a: &Acts, t0: usize, n: usize, out: &mut [f32; TILE]) {
    dot_k(row, a, t0, n, out, 210, |b, q, sc, m| {
        let (ql, qh, scales) = (&b[0..128], &b[128..192], &b[192..208]);
        for g in 0..16 {
            sc[g] = scales[g] as i8 as i32;
            // The -32 offset goes through the bsums term: dmin := d below.
            m[g] = 32 * sc[g];
        }
        for h in 0..2 {
            let (ql, qh) = (&ql[64 * h..], &qh[32 * h..]);
            let q = &mut q[128 * h..];
            for l in 0..32 {
                q[l] = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i8;
                q[l + 32] = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i8;
                q[l + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8;
                q[l + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8;
            }
        }
        let d = f16_at(b, 208);
        (d, d)
    })
}
