//! Client side of the control socket, used by the CLI.

use std::path::Path;

use futures_util::{SinkExt, StreamExt};
use thiserror::Error;
use tokio::net::UnixStream;
use tokio_util::codec::{Framed, LinesCodec};

use crate::api::{Reply, ReplyEnvelope, Request};
use crate::home::NodeHome;

#[derive(Debug, Error)]
pub enum ControlError {
    #[error("the mailmesh engine for {0} is not running; start it with `mailmesh run --detach` (or open the browser with the extension)")]
    NotRunning(String),
    #[error("lost the connection to the engine: {0}")]
    Io(String),
    #[error("the engine sent a reply this mailmesh does not understand: {0}")]
    BadReply(String),
    #[error("the engine refused: {0}")]
    Refused(String),
}

/// An open connection to a running engine.
pub struct Control {
    lines: Framed<UnixStream, LinesCodec>,
    next_id: u64,
}

impl Control {
    pub async fn connect(home: &NodeHome) -> Result<Control, ControlError> {
        let stream = connect_socket(&home.socket())
            .await
            .map_err(|_| ControlError::NotRunning(home.root().display().to_string()))?;
        Ok(Control { lines: Framed::new(stream, LinesCodec::new()), next_id: 1 })
    }

    /// Sends one request and waits for its reply.
    pub async fn request(&mut self, request: Request) -> Result<Reply, ControlError> {
        let id = self.next_id;
        self.next_id += 1;
        let line = request.encode_line(id);
        self.lines.send(line).await.map_err(|e| ControlError::Io(e.to_string()))?;
        loop {
            let line = match self.lines.next().await {
                Some(Ok(line)) => line,
                Some(Err(e)) => return Err(ControlError::Io(e.to_string())),
                None => return Err(ControlError::Io("the engine closed the connection".into())),
            };
            let reply: ReplyEnvelope =
                serde_json::from_str(&line).map_err(|e| ControlError::BadReply(e.to_string()))?;
            if reply.id != Some(id) {
                continue;
            }
            return match reply.reply {
                Reply::Error { message, .. } => Err(ControlError::Refused(message)),
                other => Ok(other),
            };
        }
    }
}

pub async fn connect_socket(path: &Path) -> std::io::Result<UnixStream> {
    UnixStream::connect(path).await
}
