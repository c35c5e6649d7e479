//! The loopback WebSockets between the extension and its engine.
//!
//! - `/mesh`: the offscreen document's line to the mesh — signaling,
//!   data-channel handshakes, peer updates and relayed traffic
//!   ([`crate::mesh::extension_api`]).
//! - `/bulk`: bulk bytes to and from the engine in binary frames. Today it
//!   offers `echo`, `discard` and `generate` (the loopback benchmark and
//!   tests); the drive adds its operations here.
//! - `/call`: a call page's signaling ([`super::calls`]).
//!
//! Any web page can try to open `ws://127.0.0.1:<port>`, so both check, before
//! upgrading, that the `Origin` is this extension and that the request
//! carries a one-time token the engine handed out over native messaging
//! moments before. A token is single use and lives [`TOKEN_TTL_MS`].

use std::sync::{Arc, Mutex};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use subtle::ConstantTimeEq;
use tokio::sync::broadcast::error::RecvError;

use super::Engine;
use crate::clock::now_ms;
use crate::mesh::extension_api::{decode_relayed, encode_relayed, FromExtension, ToExtension};

pub const TOKEN_TTL_MS: u64 = 60_000;
/// Outstanding tokens at most; the oldest go first.
const MAX_TOKENS: usize = 32;
/// The largest message `/mesh` accepts (a data frame plus headroom).
const MAX_MESH_MESSAGE: usize = 1024 * 1024;

#[derive(Default)]
pub struct Tokens(Mutex<Vec<(String, u64)>>);

impl Tokens {
    pub fn issue(&self, now_ms: u64) -> String {
        // With no OS randomness the token would be guessable: hand out one
        // that can never be redeemed instead.
        let token = match crate::rng::bytes::<32>() {
            Ok(bytes) => hex::encode(bytes),
            Err(_) => return String::new(),
        };
        let mut tokens = crate::sync::lock(&self.0);
        tokens.retain(|(_, expires)| *expires > now_ms);
        if tokens.len() >= MAX_TOKENS {
            tokens.remove(0);
        }
        tokens.push((token.clone(), now_ms + TOKEN_TTL_MS));
        token
    }

    /// Takes a token if it is outstanding; it cannot be used again.
    pub fn redeem(&self, token: &str, now_ms: u64) -> bool {
        let mut tokens = crate::sync::lock(&self.0);
        tokens.retain(|(_, expires)| *expires > now_ms);
        let found =
            tokens.iter().position(|(t, _)| !token.is_empty() && bool::from(t.as_bytes().ct_eq(token.as_bytes())));
        found.map(|i| tokens.remove(i)).is_some()
    }
}

#[derive(Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    token: String,
}

impl TokenQuery {
    pub fn token(&self) -> &str {
        &self.token
    }
}

/// The origin check and token redemption both sockets share.
fn admit(engine: &Engine, headers: &HeaderMap, token: &str) -> Result<(), (StatusCode, &'static str)> {
    let ours = format!("chrome-extension://{}", crate::EXTENSION_ID);
    let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
    if origin != Some(ours.as_str()) {
        tracing::warn!(origin = ?origin, "refused a loopback socket from a foreign origin");
        return Err((StatusCode::FORBIDDEN, "only the mailmesh extension may open this socket"));
    }
    if !engine.socket_tokens.redeem(token, now_ms()) {
        tracing::warn!("refused a loopback socket with a missing, expired or reused token");
        return Err((StatusCode::FORBIDDEN, "the socket token is missing, expired or already used"));
    }
    Ok(())
}

/// Upgrades an admitted request to a socket served by `serve`.
pub(super) fn upgrade_admitted<F, Fut>(
    engine: Arc<Engine>,
    headers: &HeaderMap,
    token: &str,
    upgrade: WebSocketUpgrade,
    max_message: usize,
    serve: F,
) -> Response
where
    F: FnOnce(WebSocket, Arc<Engine>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    if let Err(refused) = admit(&engine, headers, token) {
        return refused.into_response();
    }
    upgrade.max_message_size(max_message).on_upgrade(move |socket| serve(socket, engine))
}

pub async fn mesh_socket(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Query(query): Query<TokenQuery>,
    upgrade: WebSocketUpgrade,
) -> Response {
    upgrade_admitted(engine, &headers, &query.token, upgrade, MAX_MESH_MESSAGE, serve_mesh)
}

async fn serve_mesh(socket: WebSocket, engine: Arc<Engine>) {
    let mesh = engine.mesh.clone();
    let (mut tx, mut rx) = socket.split();
    let mut updates = mesh.to_extension.subscribe();
    let hello = [
        ToExtension::Hello { node_id: engine.secrets.node_id().to_string() },
        ToExtension::Peers { peers: mesh.peers() },
    ];
    for message in hello {
        if tx.send(to_message(&message)).await.is_err() {
            return;
        }
    }
    loop {
        tokio::select! {
            _ = engine.shutdown.cancelled() => return,
            update = updates.recv() => match update {
                Ok(update) => {
                    if tx.send(to_message(&update)).await.is_err() {
                        return;
                    }
                }
                Err(RecvError::Lagged(n)) => tracing::warn!("the extension fell {n} mesh messages behind"),
                Err(RecvError::Closed) => return,
            },
            incoming = rx.next() => match incoming {
                Some(Ok(Message::Text(text))) => match serde_json::from_str::<FromExtension>(text.as_str()) {
                    Ok(message) => on_mesh_message(&engine, message),
                    Err(e) => tracing::info!("ignoring a malformed mesh message: {e}"),
                },
                Some(Ok(Message::Binary(bytes))) => match decode_relayed(&bytes) {
                    Some((to, frame)) => {
                        if let Err(e) = mesh.relay(to, frame).await {
                            tracing::debug!("cannot relay: {e}");
                        }
                    }
                    None => tracing::info!("ignoring a malformed relay message"),
                },
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            },
        }
    }
}

fn on_mesh_message(engine: &Engine, message: FromExtension) {
    let mesh = &engine.mesh;
    match message {
        FromExtension::Signal { to, payload } => {
            if let Err(e) = mesh.signal(&to, &payload) {
                tracing::debug!("cannot signal: {e}");
            }
        }
        FromExtension::ChannelOpen { peer, channel, role, local_fingerprint, remote_fingerprint } => {
            mesh.channel_open(&peer, &channel, role, &local_fingerprint, &remote_fingerprint)
        }
        FromExtension::ChannelMessage { peer, channel, data } => mesh.channel_message(&peer, &channel, &data),
        FromExtension::Path { peer, path, rtt_ms } => mesh.set_path(&peer, path, rtt_ms),
        FromExtension::Deliver { from, frame } => {
            let delivered = data_encoding::BASE64
                .decode(frame.as_bytes())
                .map_err(|_| crate::mesh::MeshError::BadFrame("not base64".into()))
                .and_then(|frame| mesh.from_person_channel(&from, &frame));
            if let Err(e) = delivered {
                tracing::info!("ignoring a frame from the extension: {e}");
            }
        }
    }
}

fn to_message(message: &ToExtension) -> Message {
    match message {
        ToExtension::Relayed { from, frame } => Message::Binary(encode_relayed(from, frame).into()),
        other => Message::Text(serde_json::to_string(other).unwrap_or_default().into()),
    }
}

pub async fn bulk_socket(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Query(query): Query<TokenQuery>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let max = super::transfers::MAX_BULK_MESSAGE;
    upgrade_admitted(engine, &headers, &query.token, upgrade, max, super::transfers::serve_bulk)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_single_use_and_expire() {
        let tokens = Tokens::default();
        let a = tokens.issue(0);
        assert_eq!(a.len(), 64);
        assert!(!tokens.redeem("", 1));
        assert!(!tokens.redeem("nope", 1));
        assert!(tokens.redeem(&a, 1));
        assert!(!tokens.redeem(&a, 2), "a token works once");
        let b = tokens.issue(10);
        assert!(!tokens.redeem(&b, 10 + TOKEN_TTL_MS), "an expired token is refused");
    }
}
