//! codegen-kernels (to be written)
