//! Loading and creating the node's key material on disk.
//!
//! The format of the key file belongs to `mailmesh_core::identity`; this
//! module only does the IO: random seeds from the operating system, a
//! mode-0600 file written atomically, and a refusal to start on a key file
//! that is readable by others.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use mailmesh_core::identity::{IdentityError, NodeSecrets};
use thiserror::Error;

use crate::home::{write_private, NodeHome};

#[derive(Debug, Error)]
pub enum KeyError {
    #[error("cannot read the node key {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write the node key {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("the node key {path} is damaged: {source}")]
    Corrupt { path: PathBuf, source: IdentityError },
    #[error("the node key {path} can be read by other users (mode {mode:o}); run `chmod 600 {path}`")]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("the operating system gave no randomness: {0}")]
    Random(String),
}

/// Returns the node's secrets, creating them on first start.
pub fn load_or_create(home: &NodeHome) -> Result<NodeSecrets, KeyError> {
    let path = home.key_file();
    match fs::read(&path) {
        Ok(bytes) => {
            let mode = fs::metadata(&path)
                .map_err(|source| KeyError::Read { path: path.clone(), source })?
                .permissions()
                .mode()
                & 0o777;
            if mode & 0o077 != 0 {
                return Err(KeyError::TooOpen { path, mode });
            }
            NodeSecrets::decode(&bytes).map_err(|source| KeyError::Corrupt { path, source })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let secrets = NodeSecrets::from_seeds(random_seed()?, random_seed()?);
            write_private(&path, &secrets.encode(), 0o600)
                .map_err(|source| KeyError::Write { path: path.clone(), source })?;
            tracing::info!(node_id = %secrets.node_id(), "created a new node identity");
            Ok(secrets)
        }
        Err(source) => Err(KeyError::Read { path, source }),
    }
}

fn random_seed() -> Result<[u8; 32], KeyError> {
    crate::rng::bytes().map_err(|e| KeyError::Random(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_created_private_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let home = NodeHome::at(dir.path());
        home.ensure().unwrap();
        let first = load_or_create(&home).unwrap();
        let mode = fs::metadata(home.key_file()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = load_or_create(&home).unwrap();
        assert_eq!(first.public(), again.public());
    }

    #[test]
    fn an_open_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let home = NodeHome::at(dir.path());
        home.ensure().unwrap();
        load_or_create(&home).unwrap();
        fs::set_permissions(home.key_file(), fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(load_or_create(&home), Err(KeyError::TooOpen { .. })));
    }

    #[test]
    fn a_damaged_key_file_is_refused_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let home = NodeHome::at(dir.path());
        home.ensure().unwrap();
        write_private(&home.key_file(), b"garbage", 0o600).unwrap();
        assert!(matches!(load_or_create(&home), Err(KeyError::Corrupt { .. })));
        assert_eq!(fs::read(home.key_file()).unwrap(), b"garbage");
    }
}
