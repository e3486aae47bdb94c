//! `shutdown`: remember it, so that `exit` ends the process with code 0.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tower_lsp_server::jsonrpc::Result;

use crate::state::ServerState;

pub(crate) async fn handle(state: &Arc<ServerState>) -> Result<()> {
    state.shutdown_requested.store(true, Ordering::SeqCst);
    Ok(())
}
