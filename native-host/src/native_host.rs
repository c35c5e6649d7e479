//! The native-messaging bridge: what Chrome starts for the extension.
//!
//! Chrome runs `mailmesh [--home H] chrome-extension://<id>/` with a pipe
//! on stdin/stdout. The bridge attaches to the engine of the home (starting
//! one if none runs), then shuttles messages both ways:
//!
//! ```text
//! stdin frames ─▶ check UTF-8 + JSON ─▶ one line on engine.sock
//! stdout frames ◀─ check ≤ 1 MB ◀────── one line from engine.sock
//! ```
//!
//! When the engine goes away the bridge stays: it tells the extension
//! (`engine_state: down`), answers requests with `engine_unavailable`, and
//! re-attaches as soon as an engine is back. It does not restart a stopped
//! engine by itself — a stop may be deliberate — but the extension can ask
//! it to (`start_engine`). When the browser closes stdin the bridge exits
//! and the engine keeps running.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::mpsc;
use tokio_util::codec::{Framed, LinesCodec};

use crate::api::{self, EngineState, ErrorCode, Reply, ReplyEnvelope};
use crate::clock::now_unix;
use crate::control::connect_socket;
use crate::framing::{self, Decoded, FrameDecoder, FrameError};
use crate::home::NodeHome;
use crate::spawn;

type EngineLink = Framed<UnixStream, LinesCodec>;

/// How often the bridge looks for an engine that went away.
const REATTACH_EVERY: Duration = Duration::from_millis(500);

/// Events from the stdin reader.
enum Inbound {
    Frame(Vec<u8>),
    Oversized(usize),
    Truncated(FrameError),
}

pub async fn run(home: NodeHome, origin: String) -> anyhow::Result<()> {
    home.ensure()?;
    crate::logging::init_file(&home.bridge_log())?;
    tracing::info!(origin = %origin, pid = std::process::id(), at = now_unix(), "browser attached");
    let expected = format!("chrome-extension://{}/", crate::EXTENSION_ID);
    if origin != expected {
        tracing::warn!(origin = %origin, "started by an origin other than the mailmesh extension");
    }

    let (out_tx, out_rx) = mpsc::channel::<Vec<u8>>(64);
    let writer = tokio::spawn(write_frames(out_rx));
    let (in_tx, mut in_rx) = mpsc::channel::<Inbound>(64);
    tokio::spawn(read_frames(in_tx));

    let mut engine = match spawn::ensure_engine(&home).await {
        Ok(stream) => {
            send(&out_tx, engine_state(None, EngineState::Up, "attached to the engine")).await;
            Some(link(stream))
        }
        Err(e) => {
            tracing::warn!("no engine: {e}");
            send(&out_tx, engine_state(None, EngineState::Down, &e.to_string())).await;
            None
        }
    };
    let mut reattach = tokio::time::interval(REATTACH_EVERY);

    loop {
        tokio::select! {
            inbound = in_rx.recv() => match inbound {
                Some(Inbound::Frame(body)) => on_frame(&body, &mut engine, &home, &out_tx).await,
                Some(Inbound::Oversized(len)) => {
                    let e = FrameError::InboundTooLarge(len);
                    send(&out_tx, ReplyEnvelope::error(None, ErrorCode::MessageTooLarge, e.to_string())).await;
                }
                Some(Inbound::Truncated(e)) => {
                    tracing::warn!("{e}; exiting");
                    break;
                }
                None => {
                    tracing::info!("the browser closed the connection; exiting");
                    break;
                }
            },
            line = next_line(&mut engine) => match line {
                Some(Ok(line)) => {
                    if out_tx.send(line.into_bytes()).await.is_err() {
                        break;
                    }
                }
                other => {
                    if let Some(Err(e)) = other {
                        tracing::warn!("engine link error: {e}");
                    }
                    tracing::warn!("the engine went away");
                    engine = None;
                    send(&out_tx, engine_state(None, EngineState::Down, "the mailmesh engine stopped")).await;
                }
            },
            _ = reattach.tick(), if engine.is_none() => {
                if let Ok(stream) = connect_socket(&home.socket()).await {
                    tracing::info!("re-attached to the engine");
                    engine = Some(link(stream));
                    send(&out_tx, engine_state(None, EngineState::Up, "attached to the engine")).await;
                }
            }
        }
    }
    drop(out_tx);
    let _ = writer.await;
    Ok(())
}

fn link(stream: UnixStream) -> EngineLink {
    Framed::new(stream, LinesCodec::new_with_max_length(framing::MAX_INBOUND + 1024))
}

async fn next_line(engine: &mut Option<EngineLink>) -> Option<Result<String, tokio_util::codec::LinesCodecError>> {
    match engine {
        Some(link) => link.next().await,
        None => std::future::pending().await,
    }
}

fn engine_state(id: Option<u64>, state: EngineState, message: &str) -> ReplyEnvelope {
    ReplyEnvelope::new(id, Reply::EngineState { state, message: message.to_string() })
}

async fn send(out: &mpsc::Sender<Vec<u8>>, reply: ReplyEnvelope) {
    let _ = out.send(reply.encode()).await;
}

/// One message from the browser: validated, then forwarded or answered.
async fn on_frame(body: &[u8], engine: &mut Option<EngineLink>, home: &NodeHome, out: &mpsc::Sender<Vec<u8>>) {
    let value = match api::parse_json(body) {
        Ok(value) => value,
        Err(reply) => {
            tracing::warn!("refused a malformed message from the browser");
            return send(out, reply).await;
        }
    };
    let id = api::message_id(&value);
    let is_start = value.get("type").and_then(|t| t.as_str()) == Some("start_engine");
    if engine.is_none() && is_start {
        match spawn::start_detached(home).await {
            Ok(stream) => {
                *engine = Some(link(stream));
                send(out, engine_state(id, EngineState::Up, "started the engine")).await;
            }
            Err(e) => send(out, ReplyEnvelope::error(id, ErrorCode::EngineUnavailable, e.to_string())).await,
        }
        return;
    }
    let Some(link) = engine.as_mut() else {
        return send(out, ReplyEnvelope::error(id, ErrorCode::EngineUnavailable, "the mailmesh engine is not running"))
            .await;
    };
    // Re-serialized compactly, so the line holds no raw newline.
    if let Err(e) = link.send(value.to_string()).await {
        tracing::warn!("cannot reach the engine: {e}");
        *engine = None;
        send(out, ReplyEnvelope::error(id, ErrorCode::EngineUnavailable, "the mailmesh engine stopped")).await;
        send(out, engine_state(None, EngineState::Down, "the mailmesh engine stopped")).await;
    }
}

async fn read_frames(tx: mpsc::Sender<Inbound>) {
    let mut stdin = tokio::io::stdin();
    let mut decoder = FrameDecoder::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match stdin.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                tracing::warn!("reading from the browser failed: {e}");
                break;
            }
        };
        decoder.feed(&buf[..n]);
        while let Some(decoded) = decoder.next_frame() {
            let event = match decoded {
                Decoded::Frame(body) => Inbound::Frame(body),
                Decoded::Oversized(len) => Inbound::Oversized(len),
            };
            if tx.send(event).await.is_err() {
                return;
            }
        }
    }
    if let Err(e) = decoder.finish() {
        let _ = tx.send(Inbound::Truncated(e)).await;
    }
}

async fn write_frames(mut rx: mpsc::Receiver<Vec<u8>>) {
    let mut stdout = tokio::io::stdout();
    while let Some(body) = rx.recv().await {
        let frame = match framing::encode_frame(&body) {
            Ok(frame) => frame,
            Err(e) => {
                tracing::warn!("dropped an oversized reply: {e}");
                let id = serde_json::from_slice(&body).ok().as_ref().and_then(api::message_id);
                let reply = ReplyEnvelope::error(id, ErrorCode::ReplyTooLarge, e.to_string());
                match framing::encode_frame(&reply.encode()) {
                    Ok(frame) => frame,
                    Err(_) => continue,
                }
            }
        };
        if stdout.write_all(&frame).await.is_err() || stdout.flush().await.is_err() {
            tracing::info!("the browser stopped reading; exiting");
            return;
        }
    }
}
