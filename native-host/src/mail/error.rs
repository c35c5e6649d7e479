//! What can go wrong talking to a mail server, in words.

use std::io;

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum MailError {
    #[error("the name {0} was not found (check the server name)")]
    NameNotFound(String),
    #[error("the connection to {0} was refused (check the port, and that the server is running)")]
    ConnectionRefused(String),
    #[error("{0} did not answer in time (timeout)")]
    Timeout(String),
    #[error(
        "the TLS certificate of {host} is not trusted ({detail}); give its CA with --tls-ca, or accept it explicitly"
    )]
    CertificateNotTrusted { host: String, detail: String },
    #[error("TLS with {host} failed: {detail}")]
    Tls { host: String, detail: String },
    #[error("the server refused the user name or password ({})", advice.unwrap_or("wrong password?"))]
    WrongPassword {
        /// What the owner's provider wants instead, when mailmesh knows it.
        advice: Option<&'static str>,
    },
    #[error("the server refused the sign-in (it expired or was revoked): sign in again")]
    SignInRefused,
    #[error("{0} could not check the password just now (a temporary failure on the server; the password may well be right); try again in a few minutes")]
    LoginUnavailable(String),
    #[error("the server does not offer STARTTLS; choose TLS or plain")]
    NoStartTls,
    #[error("the CA file {path} cannot be used: {detail}")]
    BadCaFile { path: String, detail: String },
    #[error("the server refused the message: {0}")]
    Rejected(String),
    #[error("the mail server is limiting this account for now ({0}); mailmesh waits and goes on later")]
    Throttled(String),
    #[error("the mail server said something unexpected: {0}")]
    Protocol(String),
}

impl MailError {
    /// A short stable code for the UI.
    pub fn code(&self) -> &'static str {
        match self {
            MailError::NameNotFound(_) => "name_not_found",
            MailError::ConnectionRefused(_) => "connection_refused",
            MailError::Timeout(_) => "timeout",
            MailError::CertificateNotTrusted { .. } => "certificate_not_trusted",
            MailError::Tls { .. } => "tls",
            MailError::WrongPassword { .. } => "wrong_password",
            MailError::SignInRefused => "sign_in_refused",
            MailError::LoginUnavailable(_) => "login_unavailable",
            MailError::NoStartTls => "no_starttls",
            MailError::BadCaFile { .. } => "bad_ca_file",
            MailError::Rejected(_) => "rejected",
            MailError::Throttled(_) => "throttled",
            MailError::Protocol(_) => "protocol",
        }
    }

    /// A login the server at `host` refused, saying `server_text`: a
    /// temporary failure, or the password refused (with the provider's
    /// words on what it wants instead).
    pub fn refused_login(account: &crate::api::Account, host: &str, server_text: &str) -> MailError {
        if super::refusal::is_throttling(server_text) {
            MailError::Throttled(server_text.to_string())
        } else if super::refusal::is_temporary(server_text) {
            MailError::LoginUnavailable(host.to_string())
        } else if account.oauth.is_some() {
            MailError::SignInRefused
        } else {
            MailError::WrongPassword { advice: super::refusal::provider_advice(account) }
        }
    }

    /// Classifies an IO error from connecting to `addr` (`host:port`).
    pub fn from_io(addr: &str, host: &str, e: &io::Error) -> MailError {
        if let Some(tls) = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
            return MailError::from_tls(host, tls);
        }
        match e.kind() {
            io::ErrorKind::ConnectionRefused => MailError::ConnectionRefused(addr.to_string()),
            io::ErrorKind::TimedOut => MailError::Timeout(addr.to_string()),
            _ => {
                let text = e.to_string();
                if text.contains("failed to lookup address")
                    || text.contains("Name or service not known")
                    || text.contains("nodename nor servname")
                {
                    MailError::NameNotFound(host.to_string())
                } else {
                    MailError::Protocol(format!("{addr}: {text}"))
                }
            }
        }
    }

    pub fn from_tls(host: &str, e: &rustls::Error) -> MailError {
        match e {
            rustls::Error::InvalidCertificate(why) => {
                MailError::CertificateNotTrusted { host: host.to_string(), detail: format!("{why:?}") }
            }
            other => MailError::Tls { host: host.to_string(), detail: other.to_string() },
        }
    }
}
