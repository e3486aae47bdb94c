//! codegen-context (to be written)
