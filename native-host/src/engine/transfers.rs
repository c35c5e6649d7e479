//! Files to and from the browser over the `/bulk` socket.
//!
//! - Upload: `{"type":"put_file","name":…,"size":N}`, then binary messages
//!   `[4][bytes …]` until N bytes came; the engine answers `progress`
//!   messages as bytes land on disk, then `file_added` with the file (or
//!   `error`). The bytes go to a temp file inside the home; only a complete
//!   upload is added (and spread), so an interrupted one leaves nothing.
//! - Download: `{"type":"get_file","file_id":…}`; the engine restores the
//!   file (fetching fragments from other nodes), then sends it in binary
//!   messages of 256 KiB and `file_end` (or `error`).
//!
//! The raw-byte operations of [`super::sockets`] (echo, discard, generate)
//! share the socket.

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket};
use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{now_ms, Engine};

const OP_PUT_DATA: u8 = 4;
const SEND_CHUNK: usize = 256 * 1024;
/// How often an upload reports progress.
const PROGRESS_EVERY: u64 = 1024 * 1024;

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Command {
    PutFile { name: String, size: u64 },
    GetFile { file_id: String },
}

struct Upload {
    name: String,
    size: u64,
    received: u64,
    reported: u64,
    path: std::path::PathBuf,
    file: tokio::fs::File,
}

pub async fn serve_bulk(mut socket: WebSocket, engine: Arc<Engine>) {
    let mut discarded = 0u64;
    let mut upload: Option<Upload> = None;
    while let Some(Ok(message)) = socket.recv().await {
        let outcome = match message {
            Message::Binary(bytes) if bytes.first() == Some(&OP_PUT_DATA) => {
                receive(&engine, &mut socket, &mut upload, &bytes[1..]).await
            }
            Message::Binary(bytes) => super::sockets::raw_operation(&mut socket, bytes, &mut discarded).await,
            Message::Text(text) => match serde_json::from_str::<Command>(text.as_str()) {
                Ok(Command::PutFile { name, size }) => {
                    start_upload(&engine, &mut socket, &mut upload, name, size).await
                }
                Ok(Command::GetFile { file_id }) => send_file(&engine, &mut socket, file_id).await,
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
    if let Some(upload) = upload {
        let _ = tokio::fs::remove_file(&upload.path).await;
    }
}

async fn reply(socket: &mut WebSocket, value: serde_json::Value) -> Result<(), ()> {
    socket.send(Message::Text(value.to_string().into())).await.map_err(|_| ())
}

async fn start_upload(
    engine: &Engine,
    socket: &mut WebSocket,
    upload: &mut Option<Upload>,
    name: String,
    size: u64,
) -> Result<(), ()> {
    if let Some(old) = upload.take() {
        let _ = tokio::fs::remove_file(&old.path).await;
    }
    let mut token = [0u8; 8];
    let _ = getrandom::fill(&mut token);
    let path = engine.drive.temp_dir().join(format!("upload-{}", hex::encode(token)));
    match tokio::fs::File::create(&path).await {
        Ok(file) => {
            *upload = Some(Upload { name, size, received: 0, reported: 0, path, file });
            if size == 0 {
                return receive(engine, socket, upload, &[]).await;
            }
            Ok(())
        }
        Err(e) => reply(socket, json!({"type": "error", "message": format!("cannot store the upload: {e}")})).await,
    }
}

async fn receive(engine: &Engine, socket: &mut WebSocket, upload: &mut Option<Upload>, data: &[u8]) -> Result<(), ()> {
    let Some(current) = upload.as_mut() else {
        return reply(socket, json!({"type": "error", "message": "data before put_file"})).await;
    };
    if current.received + data.len() as u64 > current.size {
        let _ = tokio::fs::remove_file(&current.path).await;
        *upload = None;
        return reply(socket, json!({"type": "error", "message": "more bytes than announced"})).await;
    }
    if let Err(e) = current.file.write_all(data).await {
        let _ = tokio::fs::remove_file(&current.path).await;
        *upload = None;
        return reply(
            socket,
            json!({"type": "error", "message": format!("cannot store the upload (disk full?): {e}")}),
        )
        .await;
    }
    current.received += data.len() as u64;
    if current.received - current.reported >= PROGRESS_EVERY {
        current.reported = current.received;
        reply(socket, json!({"type": "progress", "bytes": current.received})).await?;
    }
    if current.received < current.size {
        return Ok(());
    }
    let Some(done) = upload.take() else { return Ok(()) };
    let _ = done.file.sync_all().await;
    drop(done.file);
    let Some(network) = engine.network_key().await else {
        let _ = tokio::fs::remove_file(&done.path).await;
        return reply(socket, json!({"type": "error", "message": crate::drive::DriveError::NoNetwork.to_string()}))
            .await;
    };
    let (path, name) = (done.path.clone(), done.name.clone());
    let added = engine.drive_blocking(move |drive| drive.add_named(&network, &path, &name, now_ms())).await;
    let _ = tokio::fs::remove_file(&done.path).await;
    match added {
        Ok(file) => {
            engine.spread(file.id.clone());
            reply(socket, json!({"type": "file_added", "file": file})).await
        }
        Err(e) => reply(socket, json!({"type": "error", "message": e.to_string()})).await,
    }
}

async fn send_file(engine: &Engine, socket: &mut WebSocket, file_id: String) -> Result<(), ()> {
    let Some(network) = engine.network_key().await else {
        return reply(socket, json!({"type": "error", "message": crate::drive::DriveError::NoNetwork.to_string()}))
            .await;
    };
    let mut token = [0u8; 8];
    let _ = getrandom::fill(&mut token);
    let path = engine.drive.temp_dir().join(format!("download-{}", hex::encode(token)));
    let file = match engine.restore(network, file_id, path.clone()).await {
        Ok(file) => file,
        Err(e) => return reply(socket, json!({"type": "error", "message": e.to_string()})).await,
    };
    let result = async {
        let mut reader = tokio::fs::File::open(&path).await.map_err(|_| ())?;
        let mut buf = vec![0u8; SEND_CHUNK];
        loop {
            let n = reader.read(&mut buf).await.map_err(|_| ())?;
            if n == 0 {
                break;
            }
            socket.send(Message::Binary(buf[..n].to_vec().into())).await.map_err(|_| ())?;
        }
        reply(socket, json!({"type": "file_end", "file": file})).await
    }
    .await;
    let _ = tokio::fs::remove_file(&path).await;
    result
}
