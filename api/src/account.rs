//! The owner's mail account as clients send it and `account.json` keeps it.
//! The password is a [`Secret`]: it never shows in `Debug` output, so never
//! in a log.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How a connection to a mail server is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
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
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// An address that cannot be anyone's mailbox.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an email address")]
pub struct NotAnEmail(pub String);

/// Signing in with OAuth 2 instead of a password: where and as whom. The
/// login secret is then an access token, refreshed with the refresh token
/// the engine keeps where it would keep the password.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuth {
    /// The issuer's name ("login.microsoftonline.com"), as autoconfig
    /// gives it; also the name of its client file.
    pub issuer: String,
    pub auth_url: String,
    pub token_url: String,
    pub scopes: Vec<String>,
    /// This program's registration with the issuer.
    pub client_id: String,
    /// Only for issuers that give installed programs a (public) secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
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
    /// Set when the account signs in with OAuth 2 (XOAUTH2) instead of a password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<OAuth>,
}

impl Account {
    /// Checks what can be checked without a server: the address's shape.
    pub fn validate(&self) -> Result<(), NotAnEmail> {
        let ok = !self.email.contains(char::is_whitespace)
            && self.email.split_once('@').is_some_and(|(user, domain)| {
                let has_dot = domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.');
                !user.is_empty() && (has_dot || domain == "localhost")
            });
        if ok {
            Ok(())
        } else {
            Err(NotAnEmail(self.email.clone()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_addresses_are_checked() {
        let server = |port| Server { host: "127.0.0.1".into(), port, security: Security::Plain };
        let mut a = Account {
            email: "not an address".into(),
            imap: server(143),
            smtp: server(25),
            user: "owner".into(),
            tls_ca: None,
            accept_invalid_certs: false,
            oauth: None,
        };
        assert!(a.validate().is_err());
        a.email = "owner@mailmesh.test".into();
        assert!(a.validate().is_ok());
        a.email = "owner@localhost".into();
        assert!(a.validate().is_ok());
        a.email = "@mailmesh.test".into();
        assert!(a.validate().is_err());
    }
}
