//! Logging to a file in the node home.
//!
//! Never to stdout: in the native-messaging bridge stdout carries frames to
//! the browser, and a stray log line would corrupt the stream. Secrets are
//! never passed to `tracing` macros; types holding them do not implement
//! `Debug`.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;

/// Installs a subscriber that appends to `path` (mode 0600). Filter with
/// `MAILMESH_LOG` (for example `MAILMESH_LOG=debug`); `info` by default.
pub fn init_file(path: &Path) -> std::io::Result<()> {
    let file = OpenOptions::new().create(true).append(true).mode(0o600).open(path)?;
    let filter = EnvFilter::try_from_env("MAILMESH_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // A second init in one process (tests) is harmless; ignore it.
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_writer(Mutex::new(file)).try_init();
    Ok(())
}
