//! The owner's mail account: servers, user name, and the password.
//!
//! `account.json` (mode 0600) holds everything but the password, which
//! lives alone in `mail-password` (mode 0600) so that showing or copying the
//! configuration never shows the password. The password travels from the
//! onboarding page or the CLI to the engine once and never back; [`Secret`]
//! keeps it out of `Debug` output and therefore out of logs.

use std::fmt;
use std::fs;
use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::home::{write_private, NodeHome};

/// How a connection to a mail server is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Security {
    /// TLS from the first byte (IMAPS 993, SMTPS 465).
    Tls,
    /// Plain connection upgraded with STARTTLS (IMAP 143, submission 587).
    Starttls,
    /// No encryption: only for a server on this machine or in tests.
    Plain,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Server {
    pub host: String,
    pub port: u16,
    pub security: Security,
}

/// A string that never shows itself in `Debug` output.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Secret {
        Secret(s)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// The account settings, without the password.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub email: String,
    pub imap: Server,
    pub smtp: Server,
    pub user: String,
    /// A PEM file of extra trusted CA certificates (self-hosted servers).
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
    /// The user explicitly chose to accept certificates nobody vouches for.
    #[serde(default)]
    pub accept_invalid_certs: bool,
}

#[derive(Debug, Error)]
pub enum AccountError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("{path} is not a valid account file: {source}")]
    Invalid { path: PathBuf, source: serde_json::Error },
    #[error("{0:?} is not an email address")]
    BadEmail(String),
}

impl Account {
    pub fn validate(&self) -> Result<(), AccountError> {
        let ok = !self.email.contains(char::is_whitespace)
            && self.email.split_once('@').is_some_and(|(user, domain)| {
                let has_dot = domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.');
                !user.is_empty() && (has_dot || domain == "localhost")
            });
        if ok {
            Ok(())
        } else {
            Err(AccountError::BadEmail(self.email.clone()))
        }
    }
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

    #[test]
    fn email_addresses_are_checked() {
        let mut a = account();
        a.email = "not an address".into();
        assert!(a.validate().is_err());
        a.email = "owner@mailmesh.test".into();
        assert!(a.validate().is_ok());
    }
}
