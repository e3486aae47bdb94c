//! Linear layers: our quantized CPU kernels (`codegen-kernels`) plugged into
//! candle as a custom op, or candle's own `QMatMul` (GPU devices, or when
//! `CODEGEN_KERNELS=candle` in the runtime configuration). Several matrices that read the same input
//! (Q/K/V, gate/up) run as one fused call.

use std::cell::RefCell;

use candle_core::quantized::QMatMul;
use candle_core::{CpuStorage, CustomOp1, Layout, Module, Shape, Tensor};
use codegen_kernels::{matmul_multi, QMatrix, Scratch};

use crate::error::Result;

thread_local! {
    // Quantized activations; grows to the largest call, then never allocates.
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::new());
}

/// `x (n, cols) -> [x W_i^T]` for matrices sharing `cols`, as one candle op
/// whose output is the per-matrix results laid end to end.
pub(crate) struct KernelMatmul {
    mats: Vec<QMatrix>,
}

impl CustomOp1 for KernelMatmul {
    fn name(&self) -> &'static str {
        "codegen-qmatmul"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("codegen-qmatmul: expected f32 input");
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("codegen-qmatmul: input is not contiguous");
        };
        let x = &data[start..end];
        let cols = self.mats[0].cols();
        if cols == 0 || x.len() % cols != 0 {
            candle_core::bail!(
                "codegen-qmatmul: input of {} values is not rows of {cols}",
                x.len()
            );
        }
        let n_tokens = x.len() / cols;
        let total_rows: usize = self.mats.iter().map(QMatrix::rows).sum();
        let mut out = vec![0f32; n_tokens * total_rows];
        {
            let mut outs: Vec<&mut [f32]> = Vec::with_capacity(self.mats.len());
            let mut rest = out.as_mut_slice();
            for m in &self.mats {
                let (head, tail) = rest.split_at_mut(n_tokens * m.rows());
                outs.push(head);
                rest = tail;
            }
            let refs: Vec<&QMatrix> = self.mats.iter().collect();
            SCRATCH
                .with(|s| matmul_multi(&refs, x, n_tokens, &mut outs, &mut s.borrow_mut()))
                .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        }
        Ok((CpuStorage::F32(out), Shape::from(n_tokens * total_rows)))
    }
}

/// One or more linear maps of the same input, each with an optional bias.
pub(crate) enum Projection {
    Candle(Vec<(QMatMul, Option<Tensor>)>),
    Kernel(KernelMatmul, Vec<Option<Tensor>>),
}

impl Projection {
    pub(crate) fn candle(parts: Vec<(QMatMul, Option<Tensor>)>) -> Self {
        Projection::Candle(parts)
    }

    pub(crate) fn kernel(parts: Vec<(QMatrix, Option<Tensor>)>) -> Self {
        let (mats, biases) = parts.into_iter().unzip();
        Projection::Kernel(KernelMatmul { mats }, biases)
    }

    /// `x` is `(n, cols)`; returns one `(n, rows_i)` tensor per matrix.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        match self {
            Projection::Candle(parts) => parts
                .iter()
                .map(|(w, b)| {
                    let y = w.forward(x)?;
                    Ok(match b {
                        Some(b) => y.broadcast_add(b)?,
                        None => y,
                    })
                })
                .collect(),
            Projection::Kernel(op, biases) => {
                let n = x.dim(0)?;
                let flat = x.contiguous()?.apply_op1_no_bwd(op)?;
                let mut offset = 0;
                let mut outs = Vec::with_capacity(op.mats.len());
                for (m, b) in op.mats.iter().zip(biases) {
                    let len = n * m.rows();
                    let y = flat.narrow(0, offset, len)?.reshape((n, m.rows()))?;
                    offset += len;
                    outs.push(match b {
                        Some(b) => y.broadcast_add(b)?,
                        None => y,
                    });
                }
                Ok(outs)
            }
        }
    }

    /// The kernel matrices and their biases, if this runs on the kernels.
    pub(crate) fn kernel_parts(&self) -> Option<Vec<(&QMatrix, &Option<Tensor>)>> {
        match self {
            Projection::Kernel(op, biases) => Some(op.mats.iter().zip(biases).collect()),
            Projection::Candle(_) => None,
        }
    }

    /// For a single-matrix projection.
    pub(crate) fn forward_one(&self, x: &Tensor) -> Result<Tensor> {
        let mut outs = self.forward(x)?;
        Ok(outs.swap_remove(0))
    }
}
