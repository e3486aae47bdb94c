//! codegen-eval (to be written)
