//! Vectorized f32 helpers shared by the fused forward and the sampler:
//! dot products and sums in fixed 16-lane order, a branch-free `exp`,
//! softmax, log-sum-exp, and the run-time SIMD level that picks which
//! target-feature copy of a loop runs.

// Loops index several lane arrays at once.
#![allow(clippy::needless_range_loop)]

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Simd {
    Generic,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

pub(crate) fn simd() -> Simd {
    // The kernels' level (detected once; capped by the runtime
    // configuration), mapped to what these loops have copies for.
    #[cfg(target_arch = "x86_64")]
    {
        use codegen_kernels::SimdLevel;
        match codegen_kernels::simd_level() {
            SimdLevel::Scalar => return Simd::Generic,
            SimdLevel::Avx512 | SimdLevel::Amx
                if std::arch::is_x86_feature_detected!("avx512f") =>
            {
                return Simd::Avx512
            }
            _ => {}
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Simd::Avx2;
        }
    }
    Simd::Generic
}

pub(crate) const LANES: usize = 16;

/// `sum(a[i] * b[i])` in 16 independent lanes (vectorizes; the lane order
/// is fixed, so results do not depend on the SIMD level's width).
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let mut ca = a.chunks_exact(LANES);
    let mut cb = b.chunks_exact(LANES);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s = 0.0;
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        s += x * y;
    }
    hsum(acc) + s
}

/// Sum of 16 lanes as a tree (halves added pairwise), which compiles to a
/// few shuffles and vector adds instead of a 15-add dependency chain.
#[inline(always)]
pub(crate) fn hsum(acc: [f32; LANES]) -> f32 {
    let mut h8 = [0f32; 8];
    for l in 0..8 {
        h8[l] = acc[l] + acc[l + 8];
    }
    let mut h4 = [0f32; 4];
    for l in 0..4 {
        h4[l] = h8[l] + h8[l + 4];
    }
    (h4[0] + h4[2]) + (h4[1] + h4[3])
}

#[inline(always)]
pub(crate) fn softmax(s: &mut [f32]) {
    // Lane-wise max and sum so that both loops vectorize.
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let mut chunks = s.chunks_exact(LANES);
    for c in &mut chunks {
        for l in 0..LANES {
            lanes[l] = lanes[l].max(c[l]);
        }
    }
    let max = chunks.remainder().iter().copied().fold(
        lanes.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        f32::max,
    );
    let mut acc = [0f32; LANES];
    let mut chunks = s.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for l in 0..LANES {
            c[l] = exp(c[l] - max);
            acc[l] += c[l];
        }
    }
    let mut rest = 0.0;
    for v in chunks.into_remainder() {
        *v = exp(*v - max);
        rest += *v;
    }
    let inv = 1.0 / (hsum(acc) + rest);
    for v in s.iter_mut() {
        *v *= inv;
    }
}

/// `e^x` to about 1 ulp over the f32 range (Cephes' polynomial after range
/// reduction by ln 2); branch-free, so loops over it vectorize. Inputs below
/// -87.3 give 0.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let under = x < -87.3;
    let xc = x.clamp(-87.3, 88.7);
    let n = (xc * LOG2E + 0.5).floor();
    let r = xc - n * LN2_HI - n * LN2_LO;
    let r2 = r * r;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let y = p * r2 + r + 1.0;
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    if under {
        0.0
    } else {
        y * scale
    }
}

/// `ln(sum(exp(x)))` over a logits row, with the vectorized exp.
pub(crate) fn log_sum_exp(x: &[f32]) -> f32 {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return max;
    }
    let sum = match simd() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the features were detected at run time.
        Simd::Avx512 => unsafe { sum_exp_avx512(x, max) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Simd::Avx2 => unsafe { sum_exp_avx2(x, max) },
        Simd::Generic => sum_exp_body(x, max),
    };
    max + sum.ln()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn sum_exp_avx512(x: &[f32], max: f32) -> f32 {
    sum_exp_body(x, max)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn sum_exp_avx2(x: &[f32], max: f32) -> f32 {
    sum_exp_body(x, max)
}

#[inline(always)]
fn sum_exp_body(x: &[f32], max: f32) -> f32 {
    let mut acc = [0f32; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for l in 0..LANES {
            acc[l] += exp(c[l] - max);
        }
    }
    let rest: f32 = chunks.remainder().iter().map(|v| exp(v - max)).sum();
    hsum(acc) + rest
}

/// `out[i] = exp((x[i] - max) * scale)` (vectorized); returns their sum.
pub(crate) fn exp_scaled_into(x: &[f32], max: f32, scale: f32, out: &mut Vec<f32>) -> f32 {
    out.clear();
    out.resize(x.len(), 0.0);
    match simd() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the features were detected at run time.
        Simd::Avx512 => unsafe { exp_scaled_avx512(x, max, scale, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Simd::Avx2 => unsafe { exp_scaled_avx2(x, max, scale, out) },
        Simd::Generic => exp_scaled_body(x, max, scale, out),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn exp_scaled_avx512(x: &[f32], max: f32, scale: f32, out: &mut [f32]) -> f32 {
    exp_scaled_body(x, max, scale, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn exp_scaled_avx2(x: &[f32], max: f32, scale: f32, out: &mut [f32]) -> f32 {
    exp_scaled_body(x, max, scale, out)
}

#[inline(always)]
fn exp_scaled_body(x: &[f32], max: f32, scale: f32, out: &mut [f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let mut xs = x.chunks_exact(LANES);
    let mut os = out.chunks_exact_mut(LANES);
    for (c, o) in (&mut xs).zip(&mut os) {
        for l in 0..LANES {
            o[l] = exp((c[l] - max) * scale);
            acc[l] += o[l];
        }
    }
    let mut rest = 0.0;
    for (c, o) in xs.remainder().iter().zip(os.into_remainder()) {
        *o = exp((c - max) * scale);
        rest += *o;
    }
    hsum(acc) + rest
}

#[cfg(test)]
mod tests {
    use super::exp;

    #[test]
    fn fast_exp_matches_std() {
        let mut worst = 0f32;
        let mut x = -87.0f32;
        while x < 88.0 {
            let rel = ((exp(x) - x.exp()) / x.exp()).abs();
            worst = worst.max(rel);
            x += 0.013;
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(exp(-1000.0), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert!((exp(0.0) - 1.0).abs() < 1e-7);
    }

    #[test]
    fn log_sum_exp_matches_the_plain_formula() {
        let x: Vec<f32> = (0..1000)
            .map(|i| ((i * 37) % 101) as f32 * 0.3 - 12.0)
            .collect();
        let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let plain = max + x.iter().map(|v| (v - max).exp()).sum::<f32>().ln();
        assert!((super::log_sum_exp(&x) - plain).abs() < 1e-4);
        assert_eq!(super::log_sum_exp(&[f32::NEG_INFINITY]), f32::NEG_INFINITY);
    }
}
