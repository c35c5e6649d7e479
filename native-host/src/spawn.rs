//! Starting an engine in the background.
//!
//! Used by `mailmesh run --detach` and by the native-messaging bridge when
//! the browser starts and no engine runs yet. The engine is the same binary
//! run as `mailmesh --home H run`, in its own process group so that the
//! browser ending the bridge (or a terminal's Ctrl-C) does not end it:
//! closing the browser must not stop work in progress.

use std::fs::OpenOptions;
use std::process::Stdio;
use std::time::Duration;

use thiserror::Error;
use tokio::net::UnixStream;

use crate::control::connect_socket;
use crate::home::NodeHome;

#[derive(Debug, Error)]
pub enum SpawnError {
    #[error("cannot find the mailmesh binary to start the engine: {0}")]
    Exe(std::io::Error),
    #[error("cannot start the engine: {0}")]
    Spawn(std::io::Error),
    #[error("the engine did not come up within {0:?}; see {1}")]
    Timeout(Duration, String),
    #[error("the engine exited at once ({0}); see {1}")]
    Exited(String, String),
}

const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Connects to the engine of `home`, starting one first if none answers.
pub async fn ensure_engine(home: &NodeHome) -> Result<UnixStream, SpawnError> {
    if let Ok(stream) = connect_socket(&home.socket()).await {
        return Ok(stream);
    }
    start_detached(home).await
}

/// Starts an engine in the background and waits until its socket answers.
/// If another engine wins the race for the lock, connects to that one.
pub async fn start_detached(home: &NodeHome) -> Result<UnixStream, SpawnError> {
    let exe = std::env::current_exe().map_err(SpawnError::Exe)?;
    let log = home.engine_log().display().to_string();
    // The engine's stderr goes to its log so that even a panic is recorded.
    let _ = home.ensure();
    let stderr = OpenOptions::new()
        .create(true)
        .append(true)
        .open(home.engine_log())
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null());
    let mut child = tokio::process::Command::new(exe)
        .arg("--home")
        .arg(home.root())
        .arg("run")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .process_group(0)
        .spawn()
        .map_err(SpawnError::Spawn)?;

    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(stream) = connect_socket(&home.socket()).await {
            // Reap the child when it eventually exits so it never lingers as
            // a zombie while this process lives on.
            tokio::spawn(async move {
                let _ = child.wait().await;
            });
            return Ok(stream);
        }
        if let Ok(Some(status)) = child.try_wait() {
            // Lost the race to another engine? Then its socket appears soon.
            if let Ok(stream) = wait_for_socket(home, Duration::from_secs(3)).await {
                return Ok(stream);
            }
            return Err(SpawnError::Exited(status.to_string(), log));
        }
        if tokio::time::Instant::now() > deadline {
            return Err(SpawnError::Timeout(START_TIMEOUT, log));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_for_socket(home: &NodeHome, within: Duration) -> std::io::Result<UnixStream> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match connect_socket(&home.socket()).await {
            Ok(s) => return Ok(s),
            Err(e) if tokio::time::Instant::now() > deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}
