//! IMAP: connecting, logging in, and (later) watching the mailbox.
//!
//! mailmesh never changes the mailbox: mailboxes are opened with EXAMINE
//! (read-only) and bodies fetched with BODY.PEEK, so no flag is ever set.

use std::fmt;
use std::time::Duration;

use futures_util::TryStreamExt;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::oauth::{Bearer, BearerAuth};
use super::tls::{client_config, server_name};
use super::MailError;
use crate::api::{Account, Secret, Security};

/// Any byte stream an IMAP session can run over (plain TCP or TLS).
pub trait MailStream: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug> MailStream for T {}

pub type ImapSession = async_imap::Session<Box<dyn MailStream>>;

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Opens a TCP connection, classifying failures.
pub async fn tcp(host: &str, port: u16) -> Result<TcpStream, MailError> {
    let addr = format!("{host}:{port}");
    match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addr)).await {
        Err(_) => Err(MailError::Timeout(addr)),
        Ok(Err(e)) => Err(MailError::from_io(&addr, host, &e)),
        Ok(Ok(stream)) => Ok(stream),
    }
}

/// Wraps a connected stream in TLS for `host`.
pub async fn tls<S: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug + 'static>(
    account: &Account,
    host: &str,
    stream: S,
) -> Result<Box<dyn MailStream>, MailError> {
    let connector = TlsConnector::from(client_config(account)?);
    let addr = host.to_string();
    match tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(server_name(host)?, stream)).await {
        Err(_) => Err(MailError::Timeout(addr)),
        Ok(Err(e)) => Err(MailError::from_io(&addr, host, &e)),
        Ok(Ok(tls)) => Ok(Box::new(tls)),
    }
}

/// Logs in to the account's IMAP server.
pub async fn connect(account: &Account, password: &Secret) -> Result<ImapSession, MailError> {
    let server = &account.imap;
    let tcp = tcp(&server.host, server.port).await?;
    let stream: Box<dyn MailStream> = match server.security {
        Security::Plain => Box::new(tcp),
        Security::Tls => tls(account, &server.host, tcp).await?,
        Security::Starttls => tls(account, &server.host, starttls(tcp).await?).await?,
    };
    let mut client = async_imap::Client::new(stream);
    let mut bearer = Bearer::XOAuth2;
    if server.security != Security::Starttls {
        // The greeting; after STARTTLS there is none.
        match tokio::time::timeout(CONNECT_TIMEOUT, client.read_response()).await {
            Err(_) => return Err(MailError::Timeout(server.host.clone())),
            Ok(Err(e)) => return Err(MailError::from_io(&server.host, &server.host, &e)),
            Ok(Ok(None)) => return Err(MailError::Protocol("the server closed the connection at once".into())),
            Ok(Ok(Some(greeting))) if offers_oauthbearer(greeting.parsed()) => bearer = Bearer::OAuthBearer,
            Ok(Ok(Some(_))) => {}
        }
    }
    let login = async {
        if account.oauth.is_some() {
            // With OAuth 2 the secret is an access token: OAUTHBEARER where
            // the greeting offers it, else XOAUTH2.
            let response = bearer.response(&account.user, password, &server.host, server.port);
            let mut auth = BearerAuth { bearer, response, sent: false };
            client.authenticate(bearer.name(), &mut auth).await
        } else {
            client.login(&account.user, password.expose()).await
        }
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, login).await {
        Err(_) => Err(MailError::Timeout(server.host.clone())),
        Ok(Ok(session)) => Ok(session),
        Ok(Err((async_imap::error::Error::No(text), _))) => Err(MailError::refused_login(account, &server.host, &text)),
        Ok(Err((e, _))) => Err(classify(&server.host, e)),
    }
}

/// Whether a greeting lists `AUTH=OAUTHBEARER` among its capabilities.
fn offers_oauthbearer(greeting: &async_imap::imap_proto::Response<'_>) -> bool {
    use async_imap::imap_proto::{Capability, Outcome, Response, ResponseCode};
    match greeting {
        Response::Data { outcome: Outcome { code: Some(ResponseCode::Capabilities(capabilities)), .. }, .. } => {
            capabilities.iter().any(|c| matches!(c, Capability::Auth(m) if m.eq_ignore_ascii_case("OAUTHBEARER")))
        }
        _ => false,
    }
}

/// Speaks the plain part of STARTTLS: greeting, `STARTTLS`, `OK`.
async fn starttls(stream: TcpStream) -> Result<TcpStream, MailError> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    read_line(&mut reader, &mut line).await?;
    reader.get_mut().write_all(b"m0 STARTTLS\r\n").await.map_err(|e| MailError::Protocol(e.to_string()))?;
    loop {
        read_line(&mut reader, &mut line).await?;
        if line.starts_with("m0 OK") {
            return Ok(reader.into_inner());
        }
        if line.starts_with("m0 ") {
            return Err(MailError::NoStartTls);
        }
    }
}

async fn read_line(reader: &mut BufReader<TcpStream>, line: &mut String) -> Result<(), MailError> {
    line.clear();
    match tokio::time::timeout(CONNECT_TIMEOUT, reader.read_line(line)).await {
        Ok(Ok(n)) if n > 0 => Ok(()),
        Ok(Err(e)) => Err(MailError::Protocol(e.to_string())),
        _ => Err(MailError::Protocol("the server closed the connection during STARTTLS".into())),
    }
}

/// Maps an async-imap error to words.
pub fn classify(host: &str, e: async_imap::error::Error) -> MailError {
    use async_imap::error::Error;
    match e {
        Error::No(text) | Error::Bad(text) if super::refusal::is_throttling(&text) => MailError::Throttled(text),
        Error::No(text) => MailError::Protocol(format!("the server refused: {text}")),
        Error::Io(io) => MailError::from_io(host, host, &io),
        Error::ConnectionLost => MailError::Protocol("the server closed the connection".into()),
        other => MailError::Protocol(other.to_string()),
    }
}

/// Checks that the account can log in over IMAP.
pub async fn test_login(account: &Account, password: &Secret) -> Result<(), MailError> {
    let mut session = connect(account, password).await?;
    let _ = session.logout().await;
    Ok(())
}

/// Opens a folder read-only (EXAMINE): how many messages it holds and the
/// UID the next one will get, which change when mail comes or goes.
pub async fn folder_state(
    session: &mut ImapSession,
    host: &str,
    folder: &str,
) -> Result<(u32, Option<u32>), MailError> {
    let mailbox = session.examine(folder).await.map_err(|e| classify(host, e))?;
    Ok((mailbox.exists, mailbox.uid_next))
}

/// Whether a folder of that name exists (LIST).
pub async fn folder_exists(session: &mut ImapSession, host: &str, folder: &str) -> Result<bool, MailError> {
    let names: Vec<_> = session
        .list(None, Some(&format!("\"{folder}\"")))
        .await
        .map_err(|e| classify(host, e))?
        .try_collect()
        .await
        .map_err(|e| classify(host, e))?;
    Ok(names.iter().any(|n| n.name().eq_ignore_ascii_case(folder)))
}

/// Makes the folder unless it exists. Two nodes may race to make it: a
/// CREATE refused because the other won is fine.
pub async fn ensure_folder(session: &mut ImapSession, host: &str, folder: &str) -> Result<(), MailError> {
    if folder_exists(session, host, folder).await? {
        return Ok(());
    }
    match session.create(folder).await {
        Ok(()) => {
            tracing::info!(folder, "made mailmesh's folder in the mailbox");
            Ok(())
        }
        Err(e) if folder_exists(session, host, folder).await.unwrap_or(false) => {
            tracing::debug!(folder, error = %e, "another node made the folder first");
            Ok(())
        }
        // The server says no (not a lost connection): the caller does without.
        Err(async_imap::error::Error::No(why)) => Err(MailError::Rejected(why)),
        Err(e) => Err(classify(host, e)),
    }
}

/// Appends a message to a folder, marked seen (it is not mail for the
/// owner to read).
pub async fn append_seen(session: &mut ImapSession, host: &str, folder: &str, raw: &[u8]) -> Result<(), MailError> {
    session.append(folder, Some("(\\Seen)"), None, raw).await.map_err(|e| classify(host, e))
}
