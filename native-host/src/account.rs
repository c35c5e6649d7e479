//! The owner's mail account: servers, user name, and the password.
//!
//! `account.json` (mode 0600) holds everything but the password, which
//! lives alone in `mail-password` (mode 0600) so that showing or copying the
//! configuration never shows the password. The password travels from the
//! onboarding page or the CLI to the engine once and never back; [`Secret`]
//! keeps it out of `Debug` output and therefore out of logs.

use std::fs;
use std::io;
use std::path::PathBuf;

use thiserror::Error;

use crate::api::account::NotAnEmail;
use crate::api::{Account, Secret};
use crate::home::{write_private, NodeHome};

#[derive(Debug, Error)]
pub enum AccountError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("{path} is not a valid account file: {source}")]
    Invalid { path: PathBuf, source: serde_json::Error },
    #[error(transparent)]
    BadEmail(#[from] NotAnEmail),
}

fn account_file(home: &NodeHome) -> PathBuf {
    home.root().join("account.json")
}

fn password_file(home: &NodeHome) -> PathBuf {
    home.root().join("mail-password")
}

pub fn save(home: &NodeHome, account: &Account, password: &Secret) -> Result<(), AccountError> {
    let path = account_file(home);
    let mut body = serde_json::to_vec_pretty(account).unwrap_or_default();
    body.push(b'\n');
    write_private(&path, &body, 0o600).map_err(|source| AccountError::Write { path, source })?;
    let path = password_file(home);
    write_private(&path, password.expose().as_bytes(), 0o600).map_err(|source| AccountError::Write { path, source })
}

/// The saved account and password, if the node has one.
pub fn load(home: &NodeHome) -> Result<Option<(Account, Secret)>, AccountError> {
    let path = account_file(home);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(AccountError::Read { path, source }),
    };
    let account: Account = serde_json::from_slice(&bytes).map_err(|source| AccountError::Invalid { path, source })?;
    let path = password_file(home);
    let password = fs::read_to_string(&path).map_err(|source| AccountError::Read { path, source })?;
    Ok(Some((account, Secret::new(password))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Security, Server};
    use std::os::unix::fs::PermissionsExt;

    fn account() -> Account {
        let server = |port| Server { host: "127.0.0.1".into(), port, security: Security::Plain };
        Account {
            email: "owner@mailmesh.test".into(),
            imap: server(143),
            smtp: server(25),
            user: "owner@mailmesh.test".into(),
            tls_ca: None,
            accept_invalid_certs: false,
            oauth: None,
        }
    }

    #[test]
    fn the_password_is_stored_apart_privately_and_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let home = NodeHome::at(dir.path());
        home.ensure().unwrap();
        let password = Secret::new("hunter2".into());
        save(&home, &account(), &password).unwrap();
        let json = fs::read_to_string(account_file(&home)).unwrap();
        assert!(!json.contains("hunter2"));
        for f in [account_file(&home), password_file(&home)] {
            assert_eq!(fs::metadata(f).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let (back, pw) = load(&home).unwrap().unwrap();
        assert_eq!(back, account());
        assert_eq!(pw.expose(), "hunter2");
        assert_eq!(format!("{pw:?}"), "Secret(…)");
    }
}
