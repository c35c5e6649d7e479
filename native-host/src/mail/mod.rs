//! Talking to the owner's mail servers: IMAP to read (never to change) the
//! mailbox, SMTP to send. TLS is rustls with the Mozilla roots, plus a CA
//! file for self-hosted servers; accepting an untrusted certificate is an
//! explicit setting, never a fallback.
//!
//! Every failure is classified into a [`MailError`] whose message says what
//! went wrong in words a user understands.

pub mod compose;
pub mod discover;
pub mod error;
pub mod imap;
pub mod oauth;
pub mod providers;
pub mod refusal;
pub mod smtp;
pub mod tls;

pub use error::MailError;

/// Tries an IMAP and an SMTP login at once with this account and login
/// secret (a password, or an OAuth access token).
pub async fn test_logins(
    account: &crate::api::Account,
    login: &crate::api::Secret,
) -> (Result<(), MailError>, Result<(), MailError>) {
    tokio::join!(imap::test_login(account, login), smtp::test_login(account, login))
}
