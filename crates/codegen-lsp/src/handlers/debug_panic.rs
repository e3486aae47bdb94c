//! `codegen/debugPanic` (registered only with `debug_methods`): a handler
//! that panics, to test that a panic becomes an error reply.

use serde_json::Value;
use tower_lsp_server::jsonrpc::Result;

pub(crate) async fn handle() -> Result<Value> {
    panic!("codegen/debugPanic was called")
}
