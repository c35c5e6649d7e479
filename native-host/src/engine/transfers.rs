//! Files to and from the browser over the `/bulk` socket.
//!
//! - Upload: `{"type":"put_file","name":…,"size":N}`; the engine answers
//!   `send`. Then the file's bytes in binary messages
//!   `[7][offset u64 LE][bytes]` (`mailmesh_core::drive::upload`, which
//!   frames them in the page too), any size up to [`MAX_BULK_MESSAGE`]. The
//!   engine seals and codes each chunk they complete, stores its share and
//!   sends the rest to the members it is placed on, and answers each
//!   message with `progress` (`bytes` taken); after the last, `file_added`
//!   (the file already there, if the drive had this content), or `error`.
//!   Each chunk is sealed under a key from its own bytes (drive manifest
//!   version 2), so nothing of the file is needed before its first byte.
//!   The record is written last, so an interrupted upload leaves no file
//!   behind. No key ever leaves the engine.
//! - Download: `{"type":"get_file","file_id":…,"from":N}` (`from` 0 if
//!   left out); the engine answers `file_start` with the file, then sends
//!   it from byte N in binary messages of 256 KiB as chunks are restored
//!   (from the chunk holding byte N; fragments not stored here are asked
//!   of other nodes ahead of the decoder), at most `WINDOW` ahead of the
//!   client's `{"type":"ack"}`s (one per message it consumed), and
//!   `file_end`; `error` instead of `file_start` when the file cannot be
//!   had (unknown, or no node online to fetch from), or instead of
//!   `file_end` when the restore fails part way. The window keeps the
//!   browser's memory bounded whatever the file size: a WebSocket has no
//!   flow control of its own on receive.
//!
//! The raw-byte operations of [`super::sockets`] (echo, discard, generate)
//! share the socket.

use std::collections::VecDeque;
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket};
use mailmesh_core::drive::upload;
use serde::Deserialize;
use serde_json::json;
use tokio::task::JoinHandle;

use super::drive_net::Placing;
use super::Engine;
use crate::clock::now_ms;
use crate::drive::{DriveError, Upload};

/// The largest message `/bulk` accepts (a page sends 1 MiB at a time).
pub const MAX_BULK_MESSAGE: usize = 8 * 1024 * 1024;
const SEND_CHUNK: usize = 256 * 1024;
/// Chunks whose fragments may be being written while the next are coded.
const STORES_IN_FLIGHT: usize = 4;
/// Download messages in flight before the client acknowledges (4 MiB).
const WINDOW: usize = 16;

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Command {
    PutFile {
        name: String,
        size: u64,
    },
    GetFile {
        file_id: String,
        /// Where to start: a preview's media element asks for the rest of
        /// the file from where the viewer seeks to.
        #[serde(default)]
        from: u64,
    },
    Ack,
}

pub async fn serve_bulk(mut socket: WebSocket, engine: Arc<Engine>) {
    let mut discarded = 0u64;
    let mut upload: Option<Receiving> = None;
    while let Some(Ok(message)) = socket.recv().await {
        let outcome = match message {
            Message::Binary(bytes) if upload::is_put_bytes(&bytes) => {
                let answer = receive_bytes(&engine, &mut upload, bytes).await;
                reply(&mut socket, answer).await
            }
            Message::Binary(bytes) => raw_operation(&mut socket, bytes, &mut discarded).await,
            Message::Text(text) => match serde_json::from_str::<Command>(text.as_str()) {
                Ok(Command::PutFile { name, size }) => {
                    upload = None;
                    let answer = put_file(&engine, &mut upload, name, size).await;
                    reply(&mut socket, answer).await
                }
                Ok(Command::GetFile { file_id, from }) => send_file(&engine, &mut socket, file_id, from).await,
                Ok(Command::Ack) => Ok(()),
                Err(e) => {
                    reply(&mut socket, json!({"type": "error", "message": format!("not a bulk command: {e}")})).await
                }
            },
            _ => Ok(()),
        };
        if outcome.is_err() {
            break;
        }
    }
}

fn error(e: DriveError) -> serde_json::Value {
    json!({"type": "error", "message": e.to_string()})
}

async fn reply(socket: &mut WebSocket, value: serde_json::Value) -> Result<(), ()> {
    socket.send(Message::Text(value.to_string().into())).await.map_err(|_| ())
}

/// Starts an upload (`upload` holds it until its last byte): `send`, or
/// `file_added` at once for an empty file.
async fn put_file(engine: &Engine, upload: &mut Option<Receiving>, name: String, size: u64) -> serde_json::Value {
    let Some(network) = engine.network_key() else {
        return error(DriveError::NoNetwork);
    };
    match engine.drive_blocking(move |drive| drive.begin_upload(&network, &name, size)).await {
        Ok(started) => {
            let placing = engine.drive_net.placing(started.params.shards());
            *upload = Some(Receiving { upload: started, stores: VecDeque::new(), placing });
            if size == 0 {
                // Complete before any byte: the page sends none.
                return take_bytes(engine, upload, 0, axum::body::Bytes::new()).await;
            }
            json!({"type": "send"})
        }
        Err(e) => error(e),
    }
}

/// An upload in progress: the file being coded, the fragment writes of
/// chunks already coded, and their placing on the other members. Writing
/// (with its fsyncs) and sending overlap receiving and coding the next
/// bytes, which is what keeps an upload at the speed of the socket rather
/// than of the disk's latency, and has the file spread when it is stored.
pub struct Receiving {
    upload: Upload,
    stores: VecDeque<JoinHandle<Result<(), DriveError>>>,
    placing: Placing,
}

impl Receiving {
    async fn wait_stores(&mut self, keep: usize) -> Result<(), DriveError> {
        while self.stores.len() > keep {
            if let Some(store) = self.stores.pop_front() {
                store.await.map_err(|e| DriveError::Open(std::io::Error::other(e.to_string())))??;
            }
        }
        Ok(())
    }
}

/// One upload message: the reply to send.
async fn receive_bytes(
    engine: &Engine,
    upload: &mut Option<Receiving>,
    message: axum::body::Bytes,
) -> serde_json::Value {
    if upload.is_none() {
        return json!({"type": "error", "message": "file bytes arrived before put_file"});
    }
    match upload::decode_put_bytes(&message) {
        Ok((offset, _)) => take_bytes(engine, upload, offset, message.slice(upload::HEADER_LEN..)).await,
        Err(e) => {
            *upload = None;
            json!({"type": "error", "message": e.to_string()})
        }
    }
}

/// Codes the chunks the file's bytes from `offset` complete and starts
/// storing them (here, and on the members they are placed on); after the
/// last byte, records the file and announces it. Any failure ends the
/// upload.
async fn take_bytes(
    engine: &Engine,
    upload: &mut Option<Receiving>,
    offset: u64,
    bytes: axum::body::Bytes,
) -> serde_json::Value {
    let Some(current) = upload.take() else {
        return json!({"type": "error", "message": "no upload is in progress"});
    };
    match code_and_store(engine, current, offset, bytes).await {
        Ok((Some(current), answer)) => {
            *upload = Some(current);
            answer
        }
        Ok((None, answer)) => answer,
        Err(e) => error(e),
    }
}

/// [`take_bytes`]'s work: the upload to go on with (none once the file is
/// recorded) and the reply.
async fn code_and_store(
    engine: &Engine,
    mut current: Receiving,
    offset: u64,
    bytes: axum::body::Bytes,
) -> Result<(Option<Receiving>, serde_json::Value), DriveError> {
    let coding = {
        let mut upload = current.upload;
        tokio::task::spawn_blocking(move || upload.push(offset, &bytes).map(|chunks| (upload, chunks)))
    };
    let (coded, chunks) = coding.await.map_err(|e| DriveError::Open(std::io::Error::other(e.to_string())))??;
    current.upload = coded;
    for chunk in chunks {
        let here = current.placing.place(chunk).await;
        let drive = engine.drive_net.drive().clone();
        current.stores.push_back(tokio::task::spawn_blocking(move || drive.store_fragments(&here)));
        current.wait_stores(STORES_IN_FLIGHT).await?;
    }
    if !current.upload.is_complete() {
        let bytes = current.upload.received_bytes();
        return Ok((Some(current), json!({"type": "progress", "bytes": bytes})));
    }
    current.wait_stores(0).await?;
    current.placing.finish().await?;
    let network = engine.network_key().ok_or(DriveError::NoNetwork)?;
    let finished = current.upload;
    let file = engine.drive_blocking(move |drive| drive.finish_upload(&network, finished, now_ms())).await?;
    engine.drive_net.spread(file.id.clone());
    // Its health counts the fragments the members took on the way.
    let file = engine.drive_net.file(file.id.clone()).await.unwrap_or(file);
    Ok((None, json!({"type": "file_added", "file": file})))
}

async fn send_file(engine: &Engine, socket: &mut WebSocket, file_id: String, from: u64) -> Result<(), ()> {
    let (file, mut restoring) = match engine.drive_net.restore_stream(file_id, from).await {
        Ok(started) => started,
        Err(e) => return reply(socket, json!({"type": "error", "message": e.to_string()})).await,
    };
    if from > file.size {
        let message = format!("{} is {} bytes long; it has no byte {from}", file.name, file.size);
        return reply(socket, json!({"type": "error", "message": message})).await;
    }
    reply(socket, json!({"type": "file_start", "file": file, "from": from})).await?;
    let mut in_flight = 0usize;
    while let Some(chunk) = restoring.bytes.recv().await {
        for piece in chunk.chunks(SEND_CHUNK) {
            while in_flight >= WINDOW {
                match socket.recv().await {
                    Some(Ok(Message::Text(text))) if matches!(serde_json::from_str(&text), Ok(Command::Ack)) => {
                        in_flight -= 1
                    }
                    Some(Ok(_)) => {}
                    _ => return Err(()),
                }
            }
            socket.send(Message::Binary(piece.to_vec().into())).await.map_err(|_| ())?;
            in_flight += 1;
        }
    }
    match restoring.done.await {
        Ok(file) => reply(socket, json!({"type": "file_end", "file": file})).await,
        Err(e) => reply(socket, json!({"type": "error", "message": e.to_string()})).await,
    }
}

/// The bulk operations on raw bytes, one per binary message: `[op u8][…]`.
pub const OP_ECHO: u8 = 1;
pub const OP_DISCARD: u8 = 2;
/// `[3][total u64 big-endian]`: the engine sends `total` bytes back in
/// 256 KiB messages.
pub const OP_GENERATE: u8 = 3;
const GENERATE_CHUNK: usize = 256 * 1024;

/// Answers one raw-bytes operation (echo, discard, generate).
pub async fn raw_operation(socket: &mut WebSocket, bytes: axum::body::Bytes, discarded: &mut u64) -> Result<(), ()> {
    {
        let reply = match bytes.split_first() {
            Some((&OP_ECHO, _)) => vec![Message::Binary(bytes)],
            Some((&OP_DISCARD, rest)) => {
                *discarded += rest.len() as u64;
                vec![Message::Text(format!("{{\"type\":\"discarded\",\"bytes\":{discarded}}}").into())]
            }
            Some((&OP_GENERATE, rest)) if rest.len() == 8 => {
                let mut total = [0u8; 8];
                total.copy_from_slice(rest);
                let mut left = u64::from_be_bytes(total);
                let chunk = vec![0x5a_u8; GENERATE_CHUNK];
                while left > 0 {
                    let n = left.min(GENERATE_CHUNK as u64) as usize;
                    if socket.send(Message::Binary(chunk[..n].to_vec().into())).await.is_err() {
                        return Err(());
                    }
                    left -= n as u64;
                }
                vec![Message::Text("{\"type\":\"generated\"}".into())]
            }
            _ => vec![Message::Text("{\"type\":\"error\",\"message\":\"unknown bulk operation\"}".into())],
        };
        for message in reply {
            socket.send(message).await.map_err(|_| ())?;
        }
    }
    Ok(())
}
