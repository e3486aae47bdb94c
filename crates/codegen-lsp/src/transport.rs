//! Framing in front of tower-lsp-server: every incoming message is checked
//! before the server sees it, because its reader stops for good at the first
//! message it cannot decode. Malformed JSON gets a parse error (id null),
//! well-formed JSON that is no JSON-RPC message an invalid-request error,
//! garbage headers a parse error; then serving goes on. Outgoing frames (the
//! server's and these errors) are written whole, one at a time.

use serde_json::{json, Value};
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt,
};
use tokio::sync::mpsc::UnboundedSender;
use tower_lsp_server::jsonrpc::{Request, Response};

/// Bodies larger than this are skipped with an error (1 GiB).
const MAX_BODY_BYTES: usize = 1 << 30;

pub(crate) enum Frame {
    Body(Vec<u8>),
    /// Headers without a usable `Content-Length`.
    BadHeader(String),
}

/// Reads one `Content-Length` framed message; `None` at the end of input.
pub(crate) async fn read_frame<R: AsyncBufRead + Unpin>(
    reader: &mut R,
) -> std::io::Result<Option<Frame>> {
    let mut content_length: Option<Result<usize, String>> = None;
    let mut saw_header = false;
    loop {
        let mut line = Vec::new();
        let n = reader.read_until(b'\n', &mut line).await?;
        if n == 0 {
            return Ok(None);
        }
        let line = String::from_utf8_lossy(&line);
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            if !saw_header {
                continue; // stray blank lines between messages
            }
            break;
        }
        saw_header = true;
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                content_length = Some(
                    value
                        .trim()
                        .parse::<usize>()
                        .map_err(|_| format!("bad Content-Length {:?}", value.trim())),
                );
            }
        }
    }
    match content_length {
        Some(Ok(n)) if n <= MAX_BODY_BYTES => {
            let mut body = vec![0; n];
            reader.read_exact(&mut body).await?;
            Ok(Some(Frame::Body(body)))
        }
        Some(Ok(n)) => {
            let skipped =
                tokio::io::copy(&mut reader.take(n as u64), &mut tokio::io::sink()).await?;
            Ok(Some(Frame::BadHeader(format!(
                "message of {skipped} bytes is larger than {MAX_BODY_BYTES}"
            ))))
        }
        Some(Err(message)) => Ok(Some(Frame::BadHeader(message))),
        None => Ok(Some(Frame::BadHeader(
            "missing Content-Length header".into(),
        ))),
    }
}

pub(crate) fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    out.extend_from_slice(body);
    out
}

fn error_frame(id: Value, code: i64, message: &str) -> Vec<u8> {
    let body = json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}});
    frame(body.to_string().as_bytes())
}

/// `Ok` when the server can decode `body`, else the error reply to send.
fn check(body: &[u8]) -> Result<(), Vec<u8>> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| error_frame(Value::Null, -32700, &format!("parse error: {e}")))?;
    let is_request = serde_json::from_value::<Request>(value.clone()).is_ok();
    let is_response = !is_request && serde_json::from_value::<Response>(value.clone()).is_ok();
    if is_request || is_response {
        return Ok(());
    }
    let id = match value.get("id") {
        Some(id @ (Value::Number(_) | Value::String(_))) => id.clone(),
        _ => Value::Null,
    };
    if value.get("method").is_some() && id.is_null() && value.get("id").is_none() {
        // A notification we cannot read: no reply, as JSON-RPC says.
        tracing::warn!("dropped a malformed notification: {value}");
        return Err(Vec::new());
    }
    Err(error_frame(
        id,
        -32600,
        "invalid request: not a JSON-RPC 2.0 message",
    ))
}

/// Copies checked messages from `input` to the server; errors for the
/// others go to `replies`. Ends at the end of input, closing `to_server`.
pub(crate) async fn pump_input<I, W>(input: I, mut to_server: W, replies: UnboundedSender<Vec<u8>>)
where
    I: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut input = tokio::io::BufReader::new(input);
    loop {
        let frame = match read_frame(&mut input).await {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(err) => {
                tracing::error!("cannot read input: {err}");
                break;
            }
        };
        match frame {
            Frame::Body(body) => match check(&body) {
                Ok(()) => {
                    if to_server
                        .write_all(&crate::transport::frame(&body))
                        .await
                        .is_err()
                    {
                        break;
                    }
                    let _ = to_server.flush().await;
                }
                Err(reply) => {
                    if !reply.is_empty() {
                        let _ = replies.send(reply);
                    }
                }
            },
            Frame::BadHeader(message) => {
                tracing::warn!("bad message header: {message}");
                let _ = replies.send(error_frame(
                    Value::Null,
                    -32700,
                    &format!("parse error: {message}"),
                ));
            }
        }
    }
    let _ = to_server.shutdown().await;
}

/// Copies the server's frames to `frames`, whole. Ends with its output.
pub(crate) async fn relay_output<R: AsyncRead + Unpin>(
    from_server: R,
    frames: UnboundedSender<Vec<u8>>,
) {
    let mut from_server = tokio::io::BufReader::new(from_server);
    while let Ok(Some(Frame::Body(body))) = read_frame(&mut from_server).await {
        if frames.send(frame(&body)).is_err() {
            break;
        }
    }
}
