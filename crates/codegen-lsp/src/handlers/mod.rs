//! One handler per LSP method.

pub(crate) mod completion;
pub(crate) mod debug_document;
pub(crate) mod debug_panic;
pub(crate) mod did_change;
pub(crate) mod did_change_configuration;
pub(crate) mod did_close;
pub(crate) mod did_open;
pub(crate) mod did_show_completion;
pub(crate) mod engine_stats;
pub(crate) mod execute_command;
pub(crate) mod initialize;
pub(crate) mod initialized;
pub(crate) mod inline_completion;
pub(crate) mod select_model;
pub(crate) mod shutdown;
