//! Block formats (ggml's exact memory layouts), row dequantization, and the
//! 8-bit quantization of activations. Everything here is plain scalar code:
//! it is the reference the SIMD kernels are tested against.

use crate::{KernelError, QMatrix};
use half::f16;

/// Weight storage types, with ggml's block layouts:
///
/// | type | elems/block | bytes/block | layout |
/// |------|------|------|--------|
/// | Q4_0 | 32 | 18 | `f16 d; u8 qs[16]` (low nibbles = elems 0..16, high = 16..32), value `(q-8)*d` |
/// | Q5_0 | 32 | 22 | `f16 d; u8 qh[4]; u8 qs[16]`, 5th bit of elem j is bit j of `qh` (LE u32), value `(q-16)*d` |
/// | Q8_0 | 32 | 34 | `f16 d; i8 qs[32]`, value `q*d` |
/// | Q4_K | 256 | 144 | `f16 d; f16 dmin; u8 scales[12]; u8 qs[128]` |
/// | Q5_K | 256 | 176 | `f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]` |
/// | Q6_K | 256 | 210 | `u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d` |
/// | F16 | 1 | 2 | |
/// | F32 | 1 | 4 | |
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QType {
    F32,
    F16,
    Q4_0,
    Q5_0,
    Q8_0,
    Q4_K,
    Q5_K,
    Q6_K,
}

/// Elements per Q8_0 / Q4_0 / Q5_0 block.
pub const QK: usize = 32;
/// Elements per K-quant super-block.
pub const QK_K: usize = 256;

/// Which 8-bit activation format a weight type multiplies against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ActKind {
    /// Plain f32 activations (F16/F32 weights).
    F32,
    /// Q8_0-style: one f32 scale per 32 values.
    Q8_0,
    /// Q8_K-style: one f32 scale per 256 values, i16 sums per 16.
    Q8K,
}

impl QType {
    /// The ggml type id (as in GGUF tensor infos).
    pub fn ggml_type_id(self) -> u32 {
        match self {
            QType::F32 => 0,
            QType::F16 => 1,
            QType::Q4_0 => 2,
            QType::Q5_0 => 6,
            QType::Q8_0 => 8,
            QType::Q4_K => 12,
            QType::Q5_K => 13,
            QType::Q6_K => 14,
        }
    }

    /// The type for a ggml type id, if this crate supports it.
    pub fn from_ggml_type_id(id: u32) -> Option<QType> {
        Some(match id {
            0 => QType::F32,
            1 => QType::F16,
            2 => QType::Q4_0,
            6 => QType::Q5_0,
            8 => QType::Q8_0,
            12 => QType::Q4_K,
            13 => QType::Q5_K,
            14 => QType::Q6_K,
            _ => return None,
        })
    }

    /// Elements per block.
    pub fn block_size(self) -> usize {
        match self {
            QType::F32 | QType::F16 => 1,
            QType::Q4_0 | QType::Q5_0 | QType::Q8_0 => QK,
            QType::Q4_K | QType::Q5_K | QType::Q6_K => QK_K,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            QType::F32 => 4,
            QType::F16 => 2,
            QType::Q4_0 => 18,
            QType::Q5_0 => 22,
            QType::Q8_0 => 34,
            QType::Q4_K => 144,
            QType::Q5_K => 176,
            QType::Q6_K => 210,
        }
    }

    pub(crate) fn act_kind(self) -> ActKind {
        match self {
            QType::F32 | QType::F16 => ActKind::F32,
            QType::Q4_0 | QType::Q5_0 | QType::Q8_0 => ActKind::Q8_0,
            QType::Q4_K | QType::Q5_K | QType::Q6_K => ActKind::Q8K,
        }
    }

    /// Bytes of one row of `cols` elements; errors if `cols` is ragged.
    pub fn row_bytes(self, cols: usize) -> Result<usize, KernelError> {
        let block = self.block_size();
        if !cols.is_multiple_of(block) || cols == 0 {
            return Err(KernelError::RaggedCols {
                qtype: self,
                cols,
                block,
            });
        }
        (cols / block)
            .checked_mul(self.block_bytes())
            .ok_or(KernelError::Overflow { rows: 1, cols })
    }

    /// Bytes of a `rows x cols` matrix.
    pub fn matrix_bytes(self, rows: usize, cols: usize) -> Result<usize, KernelError> {
        self.row_bytes(cols)?
            .checked_mul(rows)
            .ok_or(KernelError::Overflow { rows, cols })
    }
}

#[inline]
pub(crate) fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[i], b[i + 1]])).to_f32()
}

/// The 6-bit scale and min of sub-block `j` (0..8) of a Q4_K/Q5_K block.
#[inline]
pub(crate) fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Dequantizes one block (`qtype.block_bytes()` bytes) into `out`
/// (`qtype.block_size()` values).
pub(crate) fn dequantize_block(qtype: QType, b: &[u8], out: &mut [f32]) {
    match qtype {
        QType::F32 => out[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        QType::F16 => out[0] = f16_at(b, 0),
        QType::Q4_0 => {
            let d = f16_at(b, 0);
            let qs = &b[2..18];
            for j in 0..16 {
                out[j] = ((qs[j] & 0xF) as i32 - 8) as f32 * d;
                out[j + 16] = ((qs[j] >> 4) as i32 - 8) as f32 * d;
            }
        }
        QType::Q5_0 => {
            let d = f16_at(b, 0);
            let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
            let qs = &b[6..22];
            for j in 0..16 {
                let lo = (qs[j] & 0xF) as i32 | ((((qh >> j) & 1) as i32) << 4);
                let hi = (qs[j] >> 4) as i32 | ((((qh >> (j + 16)) & 1) as i32) << 4);
                out[j] = (lo - 16) as f32 * d;
                out[j + 16] = (hi - 16) as f32 * d;
            }
        }
        QType::Q8_0 => {
            let d = f16_at(b, 0);
            for j in 0..32 {
                out[j] = b[2 + j] as i8 as f32 * d;
            }
        }
        QType::Q4_K => {
            let d = f16_at(b, 0);
            let dmin = f16_at(b, 2);
            let scales = &b[4..16];
            let qs = &b[16..144];
            for j in 0..4 {
                let (sc1, m1) = scale_min_k4(2 * j, scales);
                let (sc2, m2) = scale_min_k4(2 * j + 1, scales);
                let (d1, m1) = (d * sc1 as f32, dmin * m1 as f32);
                let (d2, m2) = (d * sc2 as f32, dmin * m2 as f32);
                let q = &qs[32 * j..32 * j + 32];
                for l in 0..32 {
                    out[64 * j + l] = d1 * (q[l] & 0xF) as f32 - m1;
                    out[64 * j + 32 + l] = d2 * (q[l] >> 4) as f32 - m2;
                }
            }
        }
        QType::Q5_K => {
            let d = f16_at(b, 0);
            let dmin = f16_at(b, 2);
            let scales = &b[4..16];
            let qh = &b[16..48];
            let qs = &b[48..176];
            for j in 0..4 {
                let (sc1, m1) = scale_min_k4(2 * j, scales);
                let (sc2, m2) = scale_min_k4(2 * j + 1, scales);
                let (d1, m1) = (d * sc1 as f32, dmin * m1 as f32);
                let (d2, m2) = (d * sc2 as f32, dmin * m2 as f32);
                let q = &qs[32 * j..32 * j + 32];
                let (u1, u2) = (1u8 << (2 * j), 1u8 << (2 * j + 1));
                for l in 0..32 {
                    let h1 = if qh[l] & u1 != 0 { 16 } else { 0 };
                    let h2 = if qh[l] & u2 != 0 { 16 } else { 0 };
                    out[64 * j + l] = d1 * ((q[l] & 0xF) + h1) as f32 - m1;
                    out[64 * j + 32 + l] = d2 * ((q[l] >> 4) + h2) as f32 - m2;
                }
            }
        }
        QType::Q6_K => {
            let ql = &b[0..128];
            let qh = &b[128..192];
            let sc = &b[192..208];
            let d = f16_at(b, 208);
            for n in 0..2 {
                let (ql, qh, sc) = (&ql[64 * n..], &qh[32 * n..], &sc[8 * n..]);
                let y = &mut out[128 * n..128 * n + 128];
                for l in 0..32 {
                    let is = l / 16;
                    let q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i32 - 32;
                    let q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
                    let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
                    let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
                    y[l] = d * (sc[is] as i8) as f32 * q1 as f32;
                    y[l + 32] = d * (sc[is + 2] as i8) as f32 * q2 as f32;
                    y[l + 64] = d * (sc[is + 4] as i8) as f32 * q3 as f32;
                    y[l + 96] = d * (sc[is + 6] as i8) as f32 * q4 as f32;
                }
            }
        }
    }
}

/// Dequantizes row `row` of `w` into `out` (`w.cols()` values). Used for the
/// embedding lookup (one row of a 151936-row table) and as a test reference.
pub fn dequantize_row(w: &QMatrix, row: usize, out: &mut [f32]) -> Result<(), KernelError> {
    let bytes = w.row(row).ok_or(KernelError::RowOutOfRange {
        row,
        rows: w.rows(),
    })?;
    if out.len() != w.cols() {
        return Err(KernelError::WrongLength {
            what: "dequantize_row out",
            expected: w.cols(),
            got: out.len(),
        });
    }
    let qt = w.qtype();
    match qt {
        QType::F32 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        QType::F16 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32();
            }
        }
        _ => {
            let (bs, bb) = (qt.block_size(), qt.block_bytes());
            for (o, b) in out.chunks_exact_mut(bs).zip(bytes.chunks_exact(bb)) {
                dequantize_block(qt, b, o);
            }
        }
    }
    Ok(())
}

/// Quantizes `x` (a multiple of 32 long) to Q8_0-style activations: per block
/// of 32, `d = max|x| / 127`, `qs = round(x / d)`. Scales stay f32 (llama.cpp
/// rounds them to f16; f32 is slightly more accurate and saves a conversion).
pub fn quantize_row_q8_0(x: &[f32], qs: &mut [i8], d: &mut [f32]) {
    for ((xb, qb), db) in x
        .chunks_exact(QK)
        .zip(qs.chunks_exact_mut(QK))
        .zip(d.iter_mut())
    {
        let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
        let scale = amax / 127.0;
        let inv = if amax > 0.0 { 127.0 / amax } else { 0.0 };
        for (q, v) in qb.iter_mut().zip(xb) {
            *q = (v * inv).round_ties_even() as i8;
        }
        *db = scale;
    }
}

/// Quantizes `x` (a multiple of 256 long) to Q8_K-style activations: one f32
/// scale per 256 values and the sums of each 16 quantized values (`bsums`),
/// which the K-quant kernels use for the per-sub-block minimums/offsets.
pub fn quantize_row_q8_k(x: &[f32], qs: &mut [i8], d: &mut [f32], bsums: &mut [i16]) {
    for (((xb, qb), db), sb) in x
        .chunks_exact(QK_K)
        .zip(qs.chunks_exact_mut(QK_K))
        .zip(d.iter_mut())
        .zip(bsums.chunks_exact_mut(QK_K / 16))
    {
        let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
        let inv = if amax > 0.0 { 127.0 / amax } else { 0.0 };
        for (q, v) in qb.iter_mut().zip(xb) {
            *q = (v * inv).round_ties_even() as i8;
        }
        *db = amax / 127.0;
        for (s, g) in sb.iter_mut().zip(qb.chunks_exact(16)) {
            *s = g.iter().map(|&v| v as i16).sum();
        }
    }
}
