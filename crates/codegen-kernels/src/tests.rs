//! Kernel tests: every format x every SIMD level this CPU has, against a
//! dequantize-then-multiply reference in f64.
//!
//! Tolerances:
//! - "tight": the reference uses the same 8-bit activations the kernel sees
//!   (dequantized), so the only difference is f32 summation order:
//!   `|got - ref| <= 1e-5 * sum_i |w_i * x_i| + 1e-6`.
//! - "loose": against the raw f32 activations; 8-bit quantization moves each
//!   activation by at most half a step (`d_block / 2`), so
//!   `|got - ref| <= sum_i |w_i| * d_block(i) / 2 * 1.001 + tight bound`.
//!
//! Layout cross-check against ggml (run by hand, not in the default suite):
//! see `ggml_layout_cross_check` at the end of this file for the tensors
//! compared against the Python `gguf` package's `gguf.quants.dequantize`.

use crate::formats::{dequantize_row, quantize_row_q8_0, quantize_row_q8_k, ActKind, QK, QK_K};
use crate::matmul::{matmul_multi_at, matmul_multi_with, Scratch, AMX_MIN_TOKENS};
use crate::pool::ThreadPool;
use crate::simd::available_simd_levels;
use crate::{matmul, KernelError, QMatrix, QType, SimdLevel};
use half::f16;
use std::sync::atomic::{AtomicUsize, Ordering};

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }
    fn byte(&mut self) -> u8 {
        (self.next() >> 56) as u8
    }
    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        ((self.next() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn f16_bytes(&mut self, lo: f32, hi: f32) -> [u8; 2] {
        let v = lo + (hi - lo) * (self.unit() * 0.5 + 0.5);
        f16::from_f32(v).to_bits().to_le_bytes()
    }
}

/// A random, valid block of `qtype`: random quants, random scales.
fn random_block(qtype: QType, rng: &mut Rng) -> Vec<u8> {
    let mut b: Vec<u8> = (0..qtype.block_bytes()).map(|_| rng.byte()).collect();
    match qtype {
        QType::F32 => b.copy_from_slice(&rng.unit().to_le_bytes()),
        QType::F16 => b.copy_from_slice(&rng.f16_bytes(-1.0, 1.0)),
        QType::Q4_0 | QType::Q5_0 | QType::Q8_0 => {
            b[..2].copy_from_slice(&rng.f16_bytes(-0.05, 0.05))
        }
        QType::Q4_K | QType::Q5_K => {
            b[..2].copy_from_slice(&rng.f16_bytes(0.0, 0.01));
            b[2..4].copy_from_slice(&rng.f16_bytes(0.0, 0.01));
        }
        QType::Q6_K => b[208..210].copy_from_slice(&rng.f16_bytes(-0.01, 0.01)),
    }
    b
}

fn random_matrix(qtype: QType, rows: usize, cols: usize, rng: &mut Rng) -> QMatrix {
    let n_blocks = rows * cols / qtype.block_size();
    let bytes: Vec<u8> = (0..n_blocks)
        .flat_map(|_| random_block(qtype, rng))
        .collect();
    QMatrix::new(qtype, rows, cols, bytes).expect("valid random matrix")
}

fn random_x(n: usize, rng: &mut Rng) -> Vec<f32> {
    // Some spread in magnitude between blocks, like real activations.
    (0..n)
        .map(|i| rng.unit() * if (i / 32) % 3 == 0 { 4.0 } else { 0.5 })
        .collect()
}

/// The activations as the kernels see them (quantized, dequantized back),
/// and the quantization step of each element.
fn quantized_x(qtype: QType, x: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let n = x.len();
    match qtype.act_kind() {
        ActKind::F32 => (x.to_vec(), vec![0.0; n]),
        ActKind::Q8_0 => {
            let mut qs = vec![0i8; n];
            let mut d = vec![0f32; n / QK];
            quantize_row_q8_0(x, &mut qs, &mut d);
            let deq = (0..n).map(|i| qs[i] as f32 * d[i / QK]).collect();
            (deq, (0..n).map(|i| d[i / QK]).collect())
        }
        ActKind::Q8K => {
            let mut qs = vec![0i8; n];
            let mut d = vec![0f32; n / QK_K];
            let mut bs = vec![0i16; n / 16];
            quantize_row_q8_k(x, &mut qs, &mut d, &mut bs);
            let deq = (0..n).map(|i| qs[i] as f32 * d[i / QK_K]).collect();
            (deq, (0..n).map(|i| d[i / QK_K]).collect())
        }
    }
}

/// Checks `matmul` of `w` at `level` against the f64 references.
#[track_caller]
fn check_matmul(level: SimdLevel, w: &QMatrix, n_tokens: usize, rng: &mut Rng) {
    check_matmul_with(level, AMX_MIN_TOKENS, w, n_tokens, rng);
}

/// `check_matmul` with an explicit AMX token threshold.
#[track_caller]
fn check_matmul_with(
    level: SimdLevel,
    amx_min_tokens: usize,
    w: &QMatrix,
    n_tokens: usize,
    rng: &mut Rng,
) {
    let (rows, cols) = (w.rows(), w.cols());
    let x = random_x(n_tokens * cols, rng);
    let mut out = vec![f32::NAN; n_tokens * rows];
    let mut scratch = Scratch::new();
    matmul_multi_with(
        level,
        amx_min_tokens,
        &[w],
        &x,
        n_tokens,
        &mut [&mut out],
        &mut scratch,
    )
    .expect("matmul");
    check_against_reference(level, w, &x, n_tokens, &out);
}

/// Checks `out = w x` (`n_tokens` tokens) against the f64 references.
#[track_caller]
fn check_against_reference(level: SimdLevel, w: &QMatrix, x: &[f32], n_tokens: usize, out: &[f32]) {
    let (rows, cols) = (w.rows(), w.cols());
    let mut wrow = vec![0f32; cols];
    for r in 0..rows {
        dequantize_row(w, r, &mut wrow).expect("dequantize");
        for t in 0..n_tokens {
            let xt = &x[t * cols..(t + 1) * cols];
            let (xq, step) = quantized_x(w.qtype(), xt);
            let tight: f64 = wrow
                .iter()
                .zip(&xq)
                .map(|(&a, &b)| a as f64 * b as f64)
                .sum();
            let exact: f64 = wrow
                .iter()
                .zip(xt)
                .map(|(&a, &b)| a as f64 * b as f64)
                .sum();
            let mag: f64 = wrow
                .iter()
                .zip(&xq)
                .map(|(&a, &b)| (a as f64 * b as f64).abs())
                .sum();
            let qerr: f64 = wrow
                .iter()
                .zip(&step)
                .map(|(&a, &s)| (a as f64).abs() * s as f64 / 2.0)
                .sum();
            let got = out[t * rows + r] as f64;
            let tight_tol = 1e-5 * mag + 1e-6;
            assert!(
                (got - tight).abs() <= tight_tol,
                "{level:?} {:?} {rows}x{cols} n_tokens={n_tokens} row {r} token {t}: got {got}, \
                 reference {tight} (tol {tight_tol})",
                w.qtype()
            );
            let loose_tol = qerr * 1.001 + tight_tol;
            assert!(
                (got - exact).abs() <= loose_tol,
                "{level:?} {:?} row {r} token {t}: got {got}, f32 reference {exact} (tol {loose_tol})",
                w.qtype()
            );
        }
    }
}

const ALL: [QType; 8] = [
    QType::F32,
    QType::F16,
    QType::Q4_0,
    QType::Q5_0,
    QType::Q8_0,
    QType::Q4_K,
    QType::Q5_K,
    QType::Q6_K,
];

fn cols_for(q: QType) -> &'static [usize] {
    match q.block_size() {
        1 => &[7, 64, 896],
        QK => &[32, 96, 896],
        _ => &[256, 768],
    }
}

#[test]
fn every_format_every_level_matches_reference() {
    let mut rng = Rng(0x9E3779B97F4A7C15);
    for level in available_simd_levels() {
        for q in ALL {
            for &cols in cols_for(q) {
                for rows in [1, 5, 37] {
                    let w = random_matrix(q, rows, cols, &mut rng);
                    for n_tokens in [1, 3, 7, 13] {
                        check_matmul(level, &w, n_tokens, &mut rng);
                    }
                }
            }
        }
    }
}

#[test]
fn prefill_64_tokens_and_many_rows() {
    let mut rng = Rng(42);
    for level in available_simd_levels() {
        for q in ALL {
            let cols = if q.block_size() == QK_K { 512 } else { 896 };
            // 130 rows: not a multiple of the task size, the tile, or 2 threads.
            let w = random_matrix(q, 130, cols, &mut rng);
            check_matmul(level, &w, 64, &mut rng);
        }
    }
}

#[test]
fn public_matmul_uses_the_default_level() {
    let mut rng = Rng(7);
    let w = random_matrix(QType::Q5_0, 33, 896, &mut rng);
    let x = random_x(2 * 896, &mut rng);
    let mut a = vec![0f32; 2 * 33];
    let mut b = vec![0f32; 2 * 33];
    let mut s = Scratch::new();
    matmul(&w, &x, 2, &mut a, &mut s).expect("matmul");
    matmul_multi_at(SimdLevel::Scalar, &[&w], &x, 2, &mut [&mut b], &mut s).expect("matmul");
    for (p, q) in a.iter().zip(&b) {
        assert!((p - q).abs() <= 1e-4 * (1.0 + q.abs()), "{p} vs {q}");
    }
}

#[test]
fn multi_matches_separate_calls() {
    let mut rng = Rng(11);
    let cols = 768; // a multiple of 256, so K-quants and 32-blocks mix.
    let ws = [
        random_matrix(QType::Q5_0, 40, cols, &mut rng),
        random_matrix(QType::Q8_0, 8, cols, &mut rng),
        random_matrix(QType::Q4_K, 19, cols, &mut rng),
        random_matrix(QType::Q6_K, 3, cols, &mut rng),
    ];
    let n_tokens = 5;
    let x = random_x(n_tokens * cols, &mut rng);
    for level in available_simd_levels() {
        let mut s = Scratch::new();
        let mut outs: Vec<Vec<f32>> = ws.iter().map(|w| vec![0f32; n_tokens * w.rows()]).collect();
        {
            let mut views: Vec<&mut [f32]> = outs.iter_mut().map(|o| o.as_mut_slice()).collect();
            let refs: Vec<&QMatrix> = ws.iter().collect();
            matmul_multi_at(level, &refs, &x, n_tokens, &mut views, &mut s).expect("multi");
        }
        for (w, o) in ws.iter().zip(&outs) {
            let mut single = vec![0f32; n_tokens * w.rows()];
            matmul_multi_at(level, &[w], &x, n_tokens, &mut [&mut single], &mut s).expect("single");
            assert_eq!(o, &single, "{level:?} {:?}", w.qtype());
        }
    }
}

const AMX_TYPES: [QType; 6] = [
    QType::Q4_0,
    QType::Q5_0,
    QType::Q8_0,
    QType::Q4_K,
    QType::Q5_K,
    QType::Q6_K,
];

/// The AMX level, or (printing a note) the best level this CPU has, so the
/// AMX tests still check the other paths on the same shapes.
fn amx_or_best() -> SimdLevel {
    if SimdLevel::Amx.is_supported() {
        SimdLevel::Amx
    } else {
        eprintln!("note: no usable AMX-INT8 here; AMX tests check the best other level instead");
        *available_simd_levels().last().expect("scalar at least")
    }
}

#[test]
fn amx_path_matches_reference() {
    let level = amx_or_best();
    let mut rng = Rng(0xA3A3_5EED);
    #[cfg(target_arch = "x86_64")]
    let before = crate::amx::TASKS_RUN.load(Ordering::Relaxed);
    for q in AMX_TYPES {
        for &cols in cols_for(q) {
            for rows in [1, 17, 37] {
                let w = random_matrix(q, rows, cols, &mut rng);
                for n_tokens in [1, 15, 16, 17, 33, 64, 100] {
                    // Forced onto the tiles, then with the default threshold.
                    check_matmul_with(level, 1, &w, n_tokens, &mut rng);
                    check_matmul(level, &w, n_tokens, &mut rng);
                }
            }
        }
    }
    #[cfg(target_arch = "x86_64")]
    if level == SimdLevel::Amx {
        assert!(
            crate::amx::TASKS_RUN.load(Ordering::Relaxed) > before,
            "AMX path never ran"
        );
    }
}

#[test]
fn amx_extreme_values_stay_exact() {
    // Saturated quants and activations: the int32 tile sums must not lose
    // anything (all-equal rows give exactly representable results).
    let level = amx_or_best();
    let mut rng = Rng(77);
    for q in AMX_TYPES {
        let cols = if q.block_size() == QK_K { 2048 } else { 4096 };
        let mut w = random_matrix(q, 33, cols, &mut rng);
        let bytes: Vec<u8> = w
            .bytes()
            .chunks_exact(q.block_bytes())
            .flat_map(|b| {
                let mut b = b.to_vec();
                match q {
                    QType::Q8_0 => b[2..].fill(0x81), // -127
                    QType::Q6_K => b[..192].fill(0),  // -32
                    _ => {}
                }
                b
            })
            .collect();
        w = QMatrix::new(q, 33, cols, bytes).expect("valid");
        let x: Vec<f32> = (0..40 * cols)
            .map(|i| if i % 3 == 0 { -1.0 } else { 1.0 })
            .collect();
        let mut out = vec![0f32; 40 * 33];
        let mut s = Scratch::new();
        matmul_multi_with(level, 1, &[&w], &x, 40, &mut [&mut out], &mut s).expect("matmul");
        check_against_reference(level, &w, &x, 40, &out);
    }
}

#[test]
fn amx_multi_mixed_formats() {
    let level = amx_or_best();
    let mut rng = Rng(0xB0B);
    let cols = 768;
    let ws = [
        random_matrix(QType::Q5_0, 40, cols, &mut rng),
        random_matrix(QType::Q8_0, 8, cols, &mut rng),
        random_matrix(QType::Q4_K, 19, cols, &mut rng),
        random_matrix(QType::Q6_K, 3, cols, &mut rng),
        random_matrix(QType::F16, 5, cols, &mut rng),
        random_matrix(QType::Q5_K, 33, cols, &mut rng),
        random_matrix(QType::Q4_0, 16, cols, &mut rng),
        random_matrix(QType::F32, 2, cols, &mut rng),
        random_matrix(QType::Q6_K, 130, cols, &mut rng),
    ];
    let refs: Vec<&QMatrix> = ws.iter().collect();
    for n_tokens in [1, 15, 16, 17, 33, 100] {
        let x = random_x(n_tokens * cols, &mut rng);
        let mut s = Scratch::new();
        let mut outs: Vec<Vec<f32>> = ws
            .iter()
            .map(|w| vec![f32::NAN; n_tokens * w.rows()])
            .collect();
        {
            let mut views: Vec<&mut [f32]> = outs.iter_mut().map(|o| o.as_mut_slice()).collect();
            matmul_multi_at(level, &refs, &x, n_tokens, &mut views, &mut s).expect("multi");
        }
        for (w, o) in ws.iter().zip(&outs) {
            check_against_reference(level, w, &x, n_tokens, o);
            let mut single = vec![0f32; n_tokens * w.rows()];
            matmul_multi_at(level, &[w], &x, n_tokens, &mut [&mut single], &mut s).expect("single");
            assert_eq!(o, &single, "{level:?} {:?} n_tokens={n_tokens}", w.qtype());
        }
    }
}

#[test]
fn amx_is_listed_only_when_usable() {
    let levels = available_simd_levels();
    assert_eq!(
        levels.contains(&SimdLevel::Amx),
        SimdLevel::Amx.is_supported()
    );
    assert_eq!(SimdLevel::parse("AMX"), Some(SimdLevel::Amx));
    if SimdLevel::Amx.is_supported() {
        assert!(SimdLevel::Avx512.is_supported());
    } else {
        eprintln!("note: no usable AMX-INT8 on this machine");
        assert!(crate::set_simd_level(SimdLevel::Amx).is_err());
    }
}

#[test]
fn simd_quantizer_is_bit_identical() {
    let mut rng = Rng(5);
    let mut x = random_x(896 * 3, &mut rng);
    x[40] = 0.0;
    x[64..96].iter_mut().for_each(|v| *v = 0.0); // an all-zero block
    let (mut qa, mut da) = (vec![0i8; x.len()], vec![0f32; x.len() / QK]);
    quantize_row_q8_0(&x, &mut qa, &mut da);
    #[cfg(target_arch = "x86_64")]
    if SimdLevel::Avx2.is_supported() {
        let (mut qb, mut db) = (vec![0i8; x.len()], vec![0f32; x.len() / QK]);
        crate::x86::quantize_q8_0_avx2(&x, &mut qb, &mut db);
        assert_eq!(qa, qb);
        assert_eq!(da, db);
        let (mut qa, mut da, mut sa) = (
            vec![0i8; x.len()],
            vec![0f32; x.len() / QK_K],
            vec![0i16; x.len() / 16],
        );
        let (mut qb, mut db, mut sb) = (qa.clone(), da.clone(), sa.clone());
        let x = &x[..x.len() / QK_K * QK_K];
        quantize_row_q8_k(x, &mut qa, &mut da, &mut sa);
        crate::x86::quantize_q8_k_avx2(x, &mut qb, &mut db, &mut sb);
        assert_eq!((qa, da, sa), (qb, db, sb));
    }
    assert!(qa[64..96].iter().all(|&q| q == 0) && da[2] == 0.0);
}

fn f16le(v: f32) -> [u8; 2] {
    f16::from_f32(v).to_bits().to_le_bytes()
}

#[track_caller]
fn check_dequant(qtype: QType, block: Vec<u8>, expect: &[f32]) {
    let w = QMatrix::new(qtype, 1, expect.len(), block).expect("valid");
    let mut out = vec![0f32; expect.len()];
    dequantize_row(&w, 0, &mut out).expect("dequantize");
    assert_eq!(out, expect);
}

#[test]
fn dequantize_hand_built_blocks() {
    // Q8_0: d = 0.5, qs = -3..29.
    let mut b = f16le(0.5).to_vec();
    b.extend((-3i8..29).map(|q| q as u8));
    check_dequant(
        QType::Q8_0,
        b,
        &(-3..29).map(|q| q as f32 * 0.5).collect::<Vec<_>>(),
    );

    // Q4_0: d = 2, byte j = (hi << 4) | lo with lo = j, hi = 15 - j.
    let mut b = f16le(2.0).to_vec();
    b.extend((0u8..16).map(|j| ((15 - j) << 4) | j));
    let expect: Vec<f32> = (0..16)
        .map(|j| (j - 8) as f32 * 2.0)
        .chain((0..16).map(|j| (7 - j) as f32 * 2.0))
        .collect();
    check_dequant(QType::Q4_0, b, &expect);

    // Q5_0: d = 0.25, qh = 0xAAAA_5555 (bit j of element j), nibbles = j % 16.
    let qh: u32 = 0xAAAA_5555;
    let mut b = f16le(0.25).to_vec();
    b.extend(qh.to_le_bytes());
    b.extend((0u8..16).map(|j| (j << 4) | j));
    let expect: Vec<f32> = (0..32)
        .map(|j: i32| (((j % 16) | (((qh >> j) & 1) as i32) << 4) - 16) as f32 * 0.25)
        .collect();
    check_dequant(QType::Q5_0, b, &expect);

    // Q4_K: d = 1, dmin = 0.5, all 8 scales = 2 and mins = 3 (j < 4 path and
    // j >= 4 path), nibbles: low = 1, high = 4.
    let mut b = f16le(1.0).to_vec();
    b.extend(f16le(0.5));
    // scales[0..4] = sc 0..4, scales[4..8] = m 0..4, scales[8..12] = low
    // nibble sc 4..8 | high nibble m 4..8 (upper bits in scales[0..8] >> 6 = 0).
    b.extend([2, 2, 2, 2, 3, 3, 3, 3, 0x32, 0x32, 0x32, 0x32]);
    b.extend([0x41u8; 128]);
    let expect: Vec<f32> = (0..256)
        .map(|i| {
            if (i / 32) % 2 == 0 {
                2.0 - 1.5
            } else {
                8.0 - 1.5
            }
        })
        .collect();
    check_dequant(QType::Q4_K, b, &expect);

    // Q6_K: d = 1, scales = 1, ql = 0, qh = 0 -> every value is -32.
    let mut b = vec![0u8; 192];
    b.extend([1u8; 16]);
    b.extend(f16le(1.0));
    check_dequant(QType::Q6_K, b, &[-32.0; 256]);

    // F16 / F32 rows.
    check_dequant(QType::F16, [f16le(1.5), f16le(-2.0)].concat(), &[1.5, -2.0]);
    check_dequant(
        QType::F32,
        [0.25f32.to_le_bytes(), 3.0f32.to_le_bytes()].concat(),
        &[0.25, 3.0],
    );
}

#[test]
fn qmatrix_new_rejects_bad_sizes() {
    assert!(matches!(
        QMatrix::new(QType::Q5_0, 2, 896, vec![0u8; 2 * 28 * 22 - 1]),
        Err(KernelError::WrongByteLength { expected: 1232, .. })
    ));
    assert!(QMatrix::new(QType::Q5_0, 2, 896, vec![0u8; 2 * 28 * 22]).is_ok());
    assert!(QMatrix::new(QType::Q5_0, 2, 896, vec![0u8; 2 * 28 * 22 + 1]).is_err());
    assert!(matches!(
        QMatrix::new(QType::Q8_0, 1, 33, vec![0u8; 34]),
        Err(KernelError::RaggedCols { .. })
    ));
    assert!(matches!(
        QMatrix::new(QType::Q4_K, 1, 896, vec![0u8; 504]),
        Err(KernelError::RaggedCols { .. })
    ));
    assert!(QMatrix::new(QType::Q4_K, 1, 0, vec![]).is_err());
    assert!(matches!(
        QMatrix::new(QType::F32, usize::MAX, 2, vec![]),
        Err(KernelError::Overflow { .. })
    ));
}

#[test]
fn matmul_rejects_bad_lengths() {
    let mut rng = Rng(3);
    let w = random_matrix(QType::Q8_0, 4, 64, &mut rng);
    let v = random_matrix(QType::Q8_0, 4, 96, &mut rng);
    let mut s = Scratch::new();
    let x = vec![0f32; 2 * 64];
    let mut out = vec![0f32; 8];
    assert!(matches!(
        matmul(&w, &x[1..], 2, &mut out, &mut s),
        Err(KernelError::WrongLength { .. })
    ));
    assert!(matches!(
        matmul(&w, &x, 2, &mut out[1..], &mut s),
        Err(KernelError::WrongLength { .. })
    ));
    assert!(matmul(&w, &x, 2, &mut out, &mut s).is_ok());
    let mut out2 = vec![0f32; 8];
    assert!(matches!(
        crate::matmul_multi(&[&w, &v], &x, 2, &mut [&mut out, &mut out2], &mut s),
        Err(KernelError::Mismatch(_))
    ));
    assert!(matches!(
        crate::matmul_multi(&[&w], &x, 2, &mut [], &mut s),
        Err(KernelError::Mismatch(_))
    ));
    let mut row = vec![0f32; 64];
    assert!(matches!(
        dequantize_row(&w, 4, &mut row),
        Err(KernelError::RowOutOfRange { .. })
    ));
    assert!(matches!(
        dequantize_row(&w, 0, &mut row[1..]),
        Err(KernelError::WrongLength { .. })
    ));
}

#[test]
fn pool_runs_every_task_once() {
    for n_threads in [1, 2, 3, 5] {
        let pool = ThreadPool::new(n_threads);
        for n_tasks in [0, 1, 2, 7, 100] {
            for _ in 0..50 {
                let hits: Vec<AtomicUsize> = (0..n_tasks).map(|_| AtomicUsize::new(0)).collect();
                pool.run(n_tasks, &|i| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                });
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
            }
        }
    }
}

#[test]
fn nested_pool_calls_run_serially() {
    let pool = ThreadPool::new(2);
    let total = AtomicUsize::new(0);
    pool.run(4, &|_| {
        pool.run(3, &|j| {
            total.fetch_add(j + 1, Ordering::Relaxed);
        });
    });
    assert_eq!(total.load(Ordering::Relaxed), 4 * 6);
}

#[test]
fn pool_serves_concurrent_callers() {
    let pool = ThreadPool::new(2);
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                for _ in 0..200 {
                    let sum = AtomicUsize::new(0);
                    pool.run(16, &|i| {
                        sum.fetch_add(i, Ordering::Relaxed);
                    });
                    assert_eq!(sum.load(Ordering::Relaxed), 120);
                }
            });
        }
    });
}

#[test]
fn ggml_type_ids_round_trip() {
    for q in ALL {
        assert_eq!(QType::from_ggml_type_id(q.ggml_type_id()), Some(q));
    }
    assert_eq!(QType::from_ggml_type_id(3), None);
}

/// Hand-run cross-check of the block layouts against ggml, via the Python
/// `gguf` package (`gguf.quants.dequantize`). A helper script writes, per
/// type, `/tmp/xcheck/{T}.raw` (3 rows of raw blocks), `{T}.f32` (gguf's
/// dequantization) and `{T}.meta` (`name rows cols`). Compared on
/// 2026-11-28: real tensors of Qwen2.5-Coder-0.5B-Instruct Q4_K_M
/// (`output.weight` Q8_0, `token_embd.weight` Q5_0, `blk.0.ffn_down.weight`
/// Q6_K, `blk.11.ffn_down.weight` Q4_K) and random blocks for Q4_0, Q5_K,
/// Q4_K and Q6_K: all bit-exact. Run with
/// `cargo test -p codegen-kernels -- --ignored ggml_layout`.
#[test]
#[ignore = "needs /tmp/xcheck files written by hand with the Python gguf package"]
fn ggml_layout_cross_check() {
    let mut checked = 0;
    for name in [
        "Q4_0",
        "Q5_0",
        "Q8_0",
        "Q4_K",
        "Q5_K",
        "Q6_K",
        "Q4_K_rand",
        "Q6_K_rand",
    ] {
        let dir = std::path::Path::new("/tmp/xcheck");
        let Ok(meta) = std::fs::read_to_string(dir.join(format!("{name}.meta"))) else {
            continue;
        };
        let parts: Vec<&str> = meta.split_whitespace().collect();
        let (rows, cols): (usize, usize) = (parts[1].parse().unwrap(), parts[2].parse().unwrap());
        let raw = std::fs::read(dir.join(format!("{name}.raw"))).unwrap();
        let expect: Vec<f32> = std::fs::read(dir.join(format!("{name}.f32")))
            .unwrap()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let qtype = match name.trim_end_matches("_rand") {
            "Q4_0" => QType::Q4_0,
            "Q5_0" => QType::Q5_0,
            "Q8_0" => QType::Q8_0,
            "Q4_K" => QType::Q4_K,
            "Q5_K" => QType::Q5_K,
            _ => QType::Q6_K,
        };
        let w = QMatrix::new(qtype, rows, cols, raw).unwrap();
        let mut row = vec![0f32; cols];
        for r in 0..rows {
            dequantize_row(&w, r, &mut row).unwrap();
            assert_eq!(
                &row[..],
                &expect[r * cols..(r + 1) * cols],
                "{name} ({}) row {r}",
                parts[0]
            );
        }
        // And the kernels on these real rows, every level.
        let mut rng = Rng(99);
        for level in available_simd_levels() {
            check_matmul(level, &w, 3, &mut rng);
        }
        checked += 1;
        eprintln!("{name} ({}): {rows}x{cols} matches gguf", parts[0]);
    }
    assert!(checked > 0, "no /tmp/xcheck files");
}
