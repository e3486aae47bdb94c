//! codegen-kernels: fast CPU matrix kernels for GGUF-quantized weights.
//!
//! The crate multiplies a quantized weight matrix ([`QMatrix`]: the raw bytes
//! of a GGUF tensor in ggml's exact block layout, Q4_0, Q5_0, Q8_0, Q4_K, Q5_K,
//! Q6_K, F16 or F32) by a batch of f32 activation rows the way llama.cpp does:
//! the activations are quantized to 8 bits once per call (Q8_0 blocks of 32
//! for the 32-blocked formats, Q8_K blocks of 256 with per-16 sums for the
//! K-quants) and the dot products run in integer SIMD, chosen at run time:
//!
//! - AMX (AMX-TILE + AMX-INT8, on top of AVX-512): for calls of at least 8
//!   tokens (prefill), Q4_0/Q5_0/Q8_0/Q4_K/Q5_K/Q6_K run on the int8 tile
//!   unit (`tdpbssd`/`tdpbusd`, 16 weight rows x 16 tokens per tile
//!   product, weights unpacked once per 16 rows and reused for all tokens);
//!   about 3-4x the AVX-512 prefill speed. Smaller calls and F16/F32 use
//!   the AVX-512 kernels. Used only if the CPU has it and Linux grants the
//!   process tile-data permission (`arch_prctl(ARCH_REQ_XCOMP_PERM)`,
//!   requested once); otherwise the best level is AVX-512.
//! - AVX-512 (F/BW/VL/VNNI): 512-bit kernels for every quantized format
//!   (Q4_0/Q5_0/Q8_0: four weight rows per register, one 128-bit lane
//!   each, against up to 8 tokens, `x86_rows4`; 64 K-quant weights per
//!   register), AVX2 code for F16/F32.
//! - AVX2 + FMA + F16C: llama.cpp-style 256-bit kernels for every format.
//! - Scalar: portable fallback (also what aarch64 gets for now).
//!
//! Output rows are split over a persistent thread pool (the caller takes
//! part); without AMX, prefill processes up to 8 tokens (AVX-512; 4
//! otherwise) per pass over a weight row, so each weight block is loaded and
//! unpacked once per 8 tokens. It also dequantizes single rows
//! ([`dequantize_row`], for embedding lookups).
//!
//! What it never does: parse GGUF files, know models or tensor names,
//! allocate in the steady-state matmul path (the caller owns a [`Scratch`]),
//! or panic on bad input (sizes are checked and reported as [`KernelError`]).
//!
//! Knobs: [`set_simd_level`] caps the SIMD level (`Avx512` turns AMX off);
//! [`set_num_threads`] sizes the pool. The crate reads no environment
//! variable: `codegen_model::RuntimeConfig` sets both, once per process.

// Kernels index several per-token arrays in one loop.
#![allow(clippy::needless_range_loop)]

#[cfg(target_arch = "x86_64")]
mod amx;
mod formats;
mod matmul;
mod pool;
mod scalar;
mod simd;
#[cfg(target_arch = "x86_64")]
mod x86;
#[cfg(target_arch = "x86_64")]
mod x86_rows4;

#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use formats::{dequantize_row, quantize_row_q8_0, quantize_row_q8_k, QType};
pub use matmul::{matmul, matmul_multi, Scratch};
pub use pool::{num_threads, parallel_for, set_num_threads, ThreadPool};
pub use simd::{available_simd_levels, set_simd_level, simd_level, SimdLevel};

/// Errors from the kernels; every bad size or unsupported input ends here.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum KernelError {
    #[error("{qtype:?}: cols {cols} is not a multiple of the block size {block}")]
    RaggedCols {
        qtype: QType,
        cols: usize,
        block: usize,
    },
    #[error("{qtype:?} {rows}x{cols}: expected {expected} bytes, got {got}")]
    WrongByteLength {
        qtype: QType,
        rows: usize,
        cols: usize,
        expected: usize,
        got: usize,
    },
    #[error("size overflow for a {rows}x{cols} matrix")]
    Overflow { rows: usize, cols: usize },
    #[error("{what}: expected {expected} elements, got {got}")]
    WrongLength {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("row {row} out of range (matrix has {rows} rows)")]
    RowOutOfRange { row: usize, rows: usize },
    #[error("matmul_multi: {0}")]
    Mismatch(String),
    #[error("SIMD level {0:?} is not supported on this CPU")]
    UnsupportedSimd(SimdLevel),
}

/// A quantized `rows x cols` weight matrix (rows = out_features), row-major as
/// stored in GGUF: each row is `cols / block_size` consecutive blocks.
///
/// The bytes are shared (`Arc`), so cloning is cheap; `offset` lets a matrix
/// view a slice of a larger shared buffer (e.g. a whole memory-mapped file).
#[derive(Clone)]
pub struct QMatrix {
    qtype: QType,
    rows: usize,
    cols: usize,
    row_bytes: usize,
    data: Arc<dyn AsRef<[u8]> + Send + Sync>,
    offset: usize,
}

impl std::fmt::Debug for QMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QMatrix")
            .field("qtype", &self.qtype)
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .finish()
    }
}

impl QMatrix {
    /// Wraps `bytes` (exactly `rows * cols / block * block_bytes` long).
    pub fn new(
        qtype: QType,
        rows: usize,
        cols: usize,
        bytes: impl Into<Arc<[u8]>>,
    ) -> Result<Self, KernelError> {
        let bytes: Arc<[u8]> = bytes.into();
        let len = bytes.len();
        Self::from_shared(qtype, rows, cols, Arc::new(bytes), 0, len)
    }

    /// Views `len` bytes at `offset` inside a shared buffer (a memory map, a
    /// `Vec<u8>` holding a whole file, ...), without copying.
    pub fn from_shared(
        qtype: QType,
        rows: usize,
        cols: usize,
        data: Arc<dyn AsRef<[u8]> + Send + Sync>,
        offset: usize,
        len: usize,
    ) -> Result<Self, KernelError> {
        let expected = qtype.matrix_bytes(rows, cols)?;
        let avail = (*data).as_ref().len().saturating_sub(offset);
        if len != expected || len > avail {
            return Err(KernelError::WrongByteLength {
                qtype,
                rows,
                cols,
                expected,
                got: len.min(avail),
            });
        }
        Ok(QMatrix {
            qtype,
            rows,
            cols,
            row_bytes: qtype.row_bytes(cols)?,
            data,
            offset,
        })
    }

    pub fn qtype(&self) -> QType {
        self.qtype
    }

    /// A view of the first `n` rows (no copy).
    pub fn first_rows(&self, n: usize) -> Result<QMatrix, KernelError> {
        let n = n.min(self.rows);
        Self::from_shared(
            self.qtype,
            n,
            self.cols,
            self.data.clone(),
            self.offset,
            self.row_bytes * n,
        )
    }
    /// Output features.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Input features.
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        self.row_bytes
    }
    /// All bytes of the matrix.
    pub fn bytes(&self) -> &[u8] {
        &(*self.data).as_ref()[self.offset..self.offset + self.rows * self.row_bytes]
    }
    /// The raw bytes of row `row`, if it exists.
    pub fn row(&self, row: usize) -> Option<&[u8]> {
        if row >= self.rows {
            return None;
        }
        let start = self.offset + row * self.row_bytes;
        Some(&(*self.data).as_ref()[start..start + self.row_bytes])
    }
}
