//! The control socket server: one task per client connection, one JSON
//! request per line, one JSON reply per line.
//!
//! Lines are capped a little above the largest native message so a client
//! cannot make the engine buffer without bound; a client that sends an
//! over-long line gets an error and is disconnected.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::codec::{Framed, LinesCodec, LinesCodecError};

use super::Engine;
use crate::api::{self, ErrorCode, Reply, ReplyEnvelope};
use crate::framing::MAX_INBOUND;

/// Longest request line accepted: a full native message plus headroom.
pub const MAX_LINE: usize = MAX_INBOUND + 1024;

pub async fn serve(listener: UnixListener, state: Arc<Engine>) {
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(handle_connection(stream, state.clone()));
                }
                Err(e) => tracing::warn!("control socket accept failed: {e}"),
            },
        }
    }
}

async fn handle_connection(stream: UnixStream, state: Arc<Engine>) {
    let mut lines = Framed::new(stream, LinesCodec::new_with_max_length(MAX_LINE));
    let mut events = state.events.subscribe();
    loop {
        let line = tokio::select! {
            _ = state.shutdown.cancelled() => return,
            event = events.recv() => {
                if let Ok(event) = event {
                    let pushed = ReplyEnvelope::new(None, event);
                    if lines.send(String::from_utf8_lossy(&pushed.encode()).into_owned()).await.is_err() {
                        return;
                    }
                }
                continue;
            }
            line = lines.next() => line,
        };
        let reply = match line {
            None => return,
            Some(Ok(line)) => match api::decode_request(line.as_bytes()) {
                Ok(envelope) => {
                    ReplyEnvelope::new(envelope.id, super::handlers::handle(&state, envelope.request).await)
                }
                Err(error_reply) => error_reply,
            },
            Some(Err(LinesCodecError::MaxLineLengthExceeded)) => {
                let reply = ReplyEnvelope::error(None, ErrorCode::MessageTooLarge, "the request is too large");
                let _ = lines.send(String::from_utf8_lossy(&reply.encode()).into_owned()).await;
                return;
            }
            Some(Err(LinesCodecError::Io(e))) => {
                tracing::debug!("control connection ended: {e}");
                return;
            }
        };
        let stopping = matches!(reply.reply, Reply::Stopping);
        if lines.send(String::from_utf8_lossy(&reply.encode()).into_owned()).await.is_err() {
            return;
        }
        if stopping {
            state.shutdown.cancel();
        }
    }
}
