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
pub mod providers;
pub mod refusal;
pub mod smtp;
pub mod tls;
pub mod watch;

pub use error::MailError;
