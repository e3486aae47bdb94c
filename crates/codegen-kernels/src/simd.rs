//! Run-time choice of the SIMD level.

use crate::KernelError;
use std::sync::atomic::{AtomicU8, Ordering};

/// Kernel implementations, from slowest to fastest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SimdLevel {
    /// Portable Rust (auto-vectorized at best).
    Scalar,
    /// x86_64 AVX2 + FMA + F16C (256-bit, `maddubs`).
    Avx2,
    /// x86_64 AVX-512 F/BW/VL + VNNI (`vpdpbusd`, 512-bit where it pays).
    Avx512,
    /// AVX-512 plus Intel AMX-INT8 tiles (`tdpbssd`) for the quantized
    /// formats when a call has at least `AMX_MIN_TOKENS` tokens (prefill);
    /// smaller calls and F16/F32 weights run the AVX-512 kernels.
    Amx,
}

impl SimdLevel {
    /// Parses `scalar`, `avx2`, `avx512`, `amx`.
    pub fn parse(s: &str) -> Option<SimdLevel> {
        match s.trim().to_ascii_lowercase().as_str() {
            "scalar" | "none" => Some(SimdLevel::Scalar),
            "avx2" => Some(SimdLevel::Avx2),
            "avx512" | "avx-512" => Some(SimdLevel::Avx512),
            "amx" => Some(SimdLevel::Amx),
            _ => None,
        }
    }

    /// Whether this CPU can run the level.
    pub fn is_supported(self) -> bool {
        match self {
            SimdLevel::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Avx2 => {
                is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("fma")
                    && is_x86_feature_detected!("f16c")
            }
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Avx512 => {
                SimdLevel::Avx2.is_supported()
                    && is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vl")
                    && is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Amx => SimdLevel::Avx512.is_supported() && crate::amx::is_available(),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }
}

/// All levels this CPU supports, slowest first (tests run every one).
pub fn available_simd_levels() -> Vec<SimdLevel> {
    [
        SimdLevel::Scalar,
        SimdLevel::Avx2,
        SimdLevel::Avx512,
        SimdLevel::Amx,
    ]
    .into_iter()
    .filter(|l| l.is_supported())
    .collect()
}

const UNSET: u8 = u8::MAX;
static LEVEL: AtomicU8 = AtomicU8::new(UNSET);

fn encode(l: SimdLevel) -> u8 {
    l as u8
}
fn decode(v: u8) -> SimdLevel {
    match v {
        0 => SimdLevel::Scalar,
        1 => SimdLevel::Avx2,
        2 => SimdLevel::Avx512,
        _ => SimdLevel::Amx,
    }
}

fn detect() -> SimdLevel {
    available_simd_levels().pop().unwrap_or(SimdLevel::Scalar)
}

/// The level kernels use now: the best this CPU has, unless
/// [`set_simd_level`] capped it (the model crate's runtime configuration
/// does, from `CODEGEN_SIMD` or a flag).
#[inline]
pub fn simd_level() -> SimdLevel {
    let v = LEVEL.load(Ordering::Relaxed);
    if v != UNSET {
        return decode(v);
    }
    let l = detect();
    LEVEL.store(encode(l), Ordering::Relaxed);
    l
}

/// Forces a level for the whole process (tests, benchmarks). Errors if the
/// CPU lacks it.
pub fn set_simd_level(level: SimdLevel) -> Result<(), KernelError> {
    if !level.is_supported() {
        return Err(KernelError::UnsupportedSimd(level));
    }
    LEVEL.store(encode(level), Ordering::Relaxed);
    Ok(())
}
