//! Composing a mail with attachments as a stream: the owner's text and
//! files from the drive become one MIME message written to any `Write`
//! (a temp file), attachment by attachment, a block at a time, so a large
//! attachment is never whole in memory.
//!
//! ```text
//! Draft ─▶ headers (lettre's header types: encoded words, folding)
//!       ─▶ multipart/mixed: text/plain (base64), then each file (base64,
//!          Content-Disposition: attachment with its name) ─▶ Write
//! ```
//!
//! Every header goes through lettre, which encodes non-ASCII subjects and
//! file names; only the boundaries and the base64 lines are written here.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::time::SystemTime;

use data_encoding::BASE64_MIME;
use lettre::message::header::{
    ContentDisposition, ContentTransferEncoding, ContentType, Date, Headers, MessageId, Subject, To, MIME_VERSION_1_0,
};
use lettre::message::{Mailbox, Mailboxes};
use thiserror::Error;

/// Bytes of input per base64 block: a multiple of 57, so every block ends
/// on a whole 76-character line.
const BLOCK: usize = 57 * 1024;

#[derive(Debug, Error)]
pub enum ComposeError {
    #[error("{0:?} is not an email address")]
    BadAddress(String),
    #[error("a mail needs at least one recipient")]
    NoRecipient,
    #[error("{name} has a media type that cannot be used: {media_type}")]
    BadMediaType { name: String, media_type: String },
    #[error("cannot read the attachment {name}: {source}")]
    Attachment { name: String, source: io::Error },
    #[error("cannot write the mail: {0}")]
    Write(#[from] io::Error),
}

/// A file to attach, already on this node's disk.
pub struct Attachment {
    pub path: PathBuf,
    pub name: String,
    pub media_type: String,
}

/// What the owner wrote.
pub struct Draft {
    pub to: Vec<String>,
    pub subject: String,
    pub body: String,
    pub attachments: Vec<Attachment>,
}

/// Parses the recipients: every one must be an address.
pub fn recipients(to: &[String]) -> Result<Vec<Mailbox>, ComposeError> {
    let parsed: Vec<Mailbox> = to
        .iter()
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
        .map(|t| t.parse().map_err(|_| ComposeError::BadAddress(t.to_string())))
        .collect::<Result<_, _>>()?;
    if parsed.is_empty() {
        return Err(ComposeError::NoRecipient);
    }
    Ok(parsed)
}

/// Writes `draft` from `from` as a complete message; returns its Message-ID.
/// `token` (random bytes) makes the Message-ID and the boundary unique.
pub fn write_message(
    from: &Mailbox,
    draft: &Draft,
    token: [u8; 16],
    now: SystemTime,
    out: &mut impl Write,
) -> Result<String, ComposeError> {
    let to: Mailboxes = recipients(&draft.to)?.into_iter().collect();
    let token = data_encoding::HEXLOWER.encode(&token);
    let domain = from.email.domain().to_string();
    let message_id = format!("<{token}@{domain}>");
    let boundary = format!("mailmesh-{token}");

    let mut headers = Headers::new();
    headers.set(lettre::message::header::From::from(Mailboxes::from(from.clone())));
    headers.set(To::from(to));
    headers.set(Subject::from(draft.subject.clone()));
    headers.set(Date::new(now));
    headers.set(MessageId::from(message_id.clone()));
    headers.set(MIME_VERSION_1_0);
    headers.set(content_type(&format!("multipart/mixed; boundary=\"{boundary}\""), "the message")?);
    write!(out, "{headers}\r\nThis is a MIME message.\r\n")?;

    let mut text = Headers::new();
    text.set(ContentType::TEXT_PLAIN);
    text.set(ContentTransferEncoding::Base64);
    write!(out, "\r\n--{boundary}\r\n{text}\r\n")?;
    write_base64(draft.body.as_bytes(), out).map_err(ComposeError::Write)?;

    for attachment in &draft.attachments {
        let mut part = Headers::new();
        part.set(
            content_type(&attachment.media_type, &attachment.name)
                .or_else(|_| content_type("application/octet-stream", &attachment.name))?,
        );
        part.set(ContentDisposition::attachment(&attachment.name));
        part.set(ContentTransferEncoding::Base64);
        write!(out, "\r\n--{boundary}\r\n{part}\r\n")?;
        let file = std::fs::File::open(&attachment.path)
            .map_err(|source| ComposeError::Attachment { name: attachment.name.clone(), source })?;
        write_base64(file, out).map_err(|source| ComposeError::Attachment { name: attachment.name.clone(), source })?;
    }
    write!(out, "\r\n--{boundary}--\r\n")?;
    Ok(message_id)
}

fn content_type(value: &str, name: &str) -> Result<ContentType, ComposeError> {
    ContentType::parse(value)
        .map_err(|_| ComposeError::BadMediaType { name: name.to_string(), media_type: value.to_string() })
}

/// Base64 in 76-character CRLF lines, a block at a time.
fn write_base64(mut source: impl Read, out: &mut impl Write) -> io::Result<()> {
    let mut block = vec![0u8; BLOCK];
    loop {
        let mut filled = 0;
        while filled < BLOCK {
            match source.read(&mut block[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if filled == 0 {
            return Ok(());
        }
        let encoded = BASE64_MIME.encode(&block[..filled]);
        out.write_all(encoded.as_bytes())?;
        if !encoded.ends_with("\r\n") {
            out.write_all(b"\r\n")?;
        }
        if filled < BLOCK {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use mail_parser::MimeHeaders;

    use super::*;

    fn draft(attachment: Option<(&std::path::Path, &str)>) -> Draft {
        Draft {
            to: vec!["bob@example.org".into(), " carol@example.org ".into()],
            subject: "Q3 — résumé".into(),
            body: "Hello Bob,\nhere it is.\n".into(),
            attachments: attachment
                .map(|(path, name)| Attachment {
                    path: path.to_path_buf(),
                    name: name.into(),
                    media_type: "application/pdf".into(),
                })
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn a_composed_mail_parses_back_to_the_same_text_and_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.pdf");
        let bytes: Vec<u8> = (0..300_001u32).map(|i| (i * 7 % 256) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let from: Mailbox = "owner@example.org".parse().unwrap();
        let mut out = Vec::new();
        let id = write_message(&from, &draft(Some((&path, "plan ü.pdf"))), [9; 16], SystemTime::UNIX_EPOCH, &mut out)
            .unwrap();
        assert!(id.ends_with("@example.org>"));
        assert!(out.split(|&b| b == b'\n').all(|line| line.len() <= 998), "no line longer than SMTP allows");

        let parsed = mail_parser::MessageParser::default().parse(&out).unwrap();
        assert_eq!(parsed.subject(), Some("Q3 — résumé"));
        assert_eq!(parsed.to().unwrap().iter().count(), 2);
        assert_eq!(parsed.body_text(0).unwrap().trim_end(), "Hello Bob,\nhere it is.");
        let attachment = parsed.attachments().next().unwrap();
        assert_eq!(attachment.attachment_name(), Some("plan ü.pdf"));
        assert_eq!(attachment.contents(), &bytes[..]);
    }

    #[test]
    fn bad_recipients_are_refused_in_words() {
        assert!(matches!(recipients(&["not an address".into()]), Err(ComposeError::BadAddress(_))));
        assert!(matches!(recipients(&[" ".into()]), Err(ComposeError::NoRecipient)));
        let from: Mailbox = "owner@example.org".parse().unwrap();
        let missing = Draft {
            attachments: vec![Attachment {
                path: "/nonexistent/x".into(),
                name: "x".into(),
                media_type: "text/plain".into(),
            }],
            ..draft(None)
        };
        let err = write_message(&from, &missing, [1; 16], SystemTime::UNIX_EPOCH, &mut Vec::new()).unwrap_err();
        assert!(err.to_string().starts_with("cannot read the attachment x"), "{err}");
    }
}
