//! SMTP through lettre: building the transport for the account, checking
//! the login, and sending.

use std::error::Error as _;

use lettre::address::Envelope;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::path::Path;

use super::imap::CONNECT_TIMEOUT;
use super::MailError;
use crate::api::{Account, Secret, Security};

fn transport(account: &Account, password: &Secret) -> Result<AsyncSmtpTransport<Tokio1Executor>, MailError> {
    let server = &account.smtp;
    let tls_params = || -> Result<TlsParameters, MailError> {
        let mut builder = TlsParameters::builder(server.host.clone());
        if let Some(path) = &account.tls_ca {
            let bad = |detail: String| MailError::BadCaFile { path: path.display().to_string(), detail };
            let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
            builder = builder.add_root_certificate(Certificate::from_pem(&pem).map_err(|e| bad(e.to_string()))?);
        }
        if account.accept_invalid_certs {
            builder = builder.dangerous_accept_invalid_certs(true);
        }
        builder.build_rustls().map_err(|e| MailError::Tls { host: server.host.clone(), detail: e.to_string() })
    };
    let tls = match server.security {
        Security::Plain => Tls::None,
        Security::Tls => Tls::Wrapper(tls_params()?),
        Security::Starttls => Tls::Required(tls_params()?),
    };
    let builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&server.host)
        .port(server.port)
        .tls(tls)
        .timeout(Some(CONNECT_TIMEOUT))
        .credentials(Credentials::new(account.user.clone(), password.expose().to_string()));
    // With OAuth 2 the secret is an access token, and only XOAUTH2 takes it.
    let builder = if account.oauth.is_some() { builder.authentication(vec![Mechanism::Xoauth2]) } else { builder };
    Ok(builder.build())
}

/// Maps a lettre error to words, looking through its causes.
fn classify(account: &Account, e: lettre::transport::smtp::Error) -> MailError {
    let server = &account.smtp;
    let addr = format!("{}:{}", server.host, server.port);
    if e.is_timeout() {
        return MailError::Timeout(addr);
    }
    if let Some(code) = e.status() {
        let text = e.to_string();
        return match u16::from(code) {
            // 454: "temporary authentication failure".
            454 => MailError::LoginUnavailable(server.host.clone()),
            535 | 534 | 530 => MailError::refused_login(account, &server.host, &text),
            _ if e.is_permanent() => MailError::Rejected(text),
            _ => MailError::Protocol(text),
        };
    }
    let mut cause = e.source();
    while let Some(c) = cause {
        if let Some(tls) = c.downcast_ref::<rustls::Error>() {
            return MailError::from_tls(&server.host, tls);
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return MailError::from_io(&addr, &server.host, io);
        }
        cause = c.source();
    }
    let text = e.to_string();
    if text.contains("STARTTLS") {
        return MailError::NoStartTls;
    }
    MailError::Protocol(text)
}

/// Checks that the account can connect and log in over SMTP.
pub async fn test_login(account: &Account, password: &Secret) -> Result<(), MailError> {
    let transport = transport(account, password)?;
    match transport.test_connection().await {
        Ok(true) => Ok(()),
        Ok(false) => Err(MailError::Protocol("the server did not accept the connection".into())),
        Err(e) => Err(classify(account, e)),
    }
}

/// Sends one message.
pub async fn send(account: &Account, password: &Secret, message: Message) -> Result<(), MailError> {
    transport(account, password)?.send(message).await.map(|_| ()).map_err(|e| classify(account, e))
}

/// Sends a message already written to `path` (see `compose`) to the
/// envelope's recipients. The file is mapped, not read, so a message with
/// large attachments costs address space and page cache, not heap.
pub async fn send_file(
    account: &Account,
    password: &Secret,
    envelope: &Envelope,
    path: &Path,
) -> Result<(), MailError> {
    let file = std::fs::File::open(path).map_err(|e| MailError::Protocol(format!("the composed mail is gone: {e}")))?;
    // SAFETY: the file is the engine's own temp file (0600, inside the
    // node's home), written completely before this and removed only after
    // the send returns; nothing truncates or rewrites it while mapped.
    let mapped = unsafe { memmap2::Mmap::map(&file) }
        .map_err(|e| MailError::Protocol(format!("the composed mail cannot be read: {e}")))?;
    transport(account, password)?.send_raw(envelope, &mapped).await.map(|_| ()).map_err(|e| classify(account, e))
}

/// The owner's address as a mailbox, for From and To.
pub fn owner_mailbox(account: &Account) -> Result<Mailbox, MailError> {
    account.email.parse().map_err(|_| MailError::Protocol(format!("{:?} is not an email address", account.email)))
}
