//! The engine lock: at most one engine per node home.
//!
//! An exclusive `flock` on `engine.lock`, held for the life of the process
//! and released by the kernel however the process ends, so a crash never
//! leaves a stale lock. The holder writes its pid into the file so that a
//! second engine can say who is already running.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum LockError {
    #[error("an engine is already running for this home (pid {0})")]
    Held(String),
    #[error("cannot open the engine lock {0}: {1}")]
    Io(String, io::Error),
}

/// Holds the lock until dropped.
#[derive(Debug)]
pub struct EngineLock {
    _file: File,
}

impl EngineLock {
    pub fn acquire(path: &Path) -> Result<EngineLock, LockError> {
        let io_err = |e| LockError::Io(path.display().to_string(), e);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(io_err)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                return Err(LockError::Held(if pid.is_empty() { "unknown".into() } else { pid.into() }));
            }
            Err(TryLockError::Error(e)) => return Err(io_err(e)),
        }
        file.set_len(0).map_err(io_err)?;
        file.rewind().map_err(io_err)?;
        write!(file, "{}", std::process::id()).map_err(io_err)?;
        file.sync_all().map_err(io_err)?;
        Ok(EngineLock { _file: file })
    }
}

/// Whether an engine holds the lock at `path` now (asked without taking
/// it: a shared lock is refused while the engine's exclusive one stands).
pub fn is_held(path: &Path) -> bool {
    match File::open(path) {
        Ok(file) => matches!(file.try_lock_shared(), Err(TryLockError::WouldBlock)),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_home_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("engine.lock");
        let first = EngineLock::acquire(&path).unwrap();
        assert!(is_held(&path));
        match EngineLock::acquire(&path) {
            Err(LockError::Held(pid)) => assert_eq!(pid, std::process::id().to_string()),
            other => panic!("expected Held, got {other:?}"),
        }
        drop(first);
        assert!(!is_held(&path));
        EngineLock::acquire(&path).unwrap();
        assert!(!is_held(&dir.path().join("never-made.lock")));
    }
}
