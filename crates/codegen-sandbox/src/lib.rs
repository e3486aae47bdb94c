//! codegen-sandbox (to be written)
