//! Every attachment of a mail, found with mail-parser.
//!
//! "Attachment" means every part a person would call a file: parts with a
//! `Content-Disposition: attachment`, inline parts that are not the text of
//! the message (images with or without a disposition), and the attachments
//! of attached messages (`message/rfc822`), recursively. Transfer encodings
//! (base64, quoted-printable) and file-name encodings (RFC 2231, encoded
//! words, non-ASCII) are mail-parser's job, except that a text part is
//! decoded here from the raw message: a file is stored byte for byte as it
//! was attached, never transcoded to UTF-8. A message that cannot be parsed
//! at all is an error the caller logs and skips.

use std::borrow::Cow;

use crate::api::Origin;
use mail_parser::decoders::base64::base64_decode;
use mail_parser::decoders::quoted_printable::quoted_printable_decode;
use mail_parser::{Encoding, Message, MessageParser, MessagePart, MimeHeaders, PartType};
use thiserror::Error;

/// How deep attached messages are followed (a mail bomb of nested messages
/// stops here).
const MAX_DEPTH: usize = 3;
/// Files taken from one message, nested ones included (a mail of ten
/// thousand parts gives this many files, and a log line for the rest).
pub const MAX_ATTACHMENTS: usize = 100;

/// One attachment, borrowed from the parsed message where it can be: a
/// binary part's bytes are never copied before the drive reads them; a
/// text part's are decoded afresh from the raw message (see [`as_attached`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment<'a> {
    pub name: String,
    pub media_type: String,
    pub bytes: Cow<'a, [u8]>,
    /// Shown in the message rather than attached to it (no
    /// `Content-Disposition: attachment`): a logo, a picture in the text.
    pub inline: bool,
}

/// Which attachments the import keeps: the owner's import policy
/// (`config.json`, `mailmesh mail settings`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// A larger file is left in the mailbox.
    pub max_bytes: u64,
    /// Inline images smaller than this are not imported: signature logos,
    /// social icons, tracking pixels.
    pub inline_images_under: u64,
}

impl Default for Policy {
    /// A clean drive: files up to 100 MB, no inline images under 16 kB (logos and icons
    /// mostly are; a picture in the text mostly is not).
    fn default() -> Policy {
        Policy { max_bytes: 100_000_000, inline_images_under: 16_000 }
    }
}

impl Policy {
    /// Why the policy leaves an attachment out, if it does.
    pub fn leaves_out(&self, attachment: &Attachment<'_>) -> Option<&'static str> {
        let size = attachment.bytes.len() as u64;
        if size > self.max_bytes {
            Some("larger than the import's maximum attachment size")
        } else if attachment.inline && attachment.media_type.starts_with("image/") && size < self.inline_images_under {
            Some("a small inline image (a logo or an icon)")
        } else {
            None
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum AttachmentError {
    #[error("the message could not be parsed as MIME")]
    Unparsable,
}

/// Hands each attachment of a raw message to `each`, with the message's
/// origin; returns how many there were beyond [`MAX_ATTACHMENTS`] (not
/// handed over). What is held meanwhile is the raw message and the parsed
/// one (whose decoded parts are what `each` reads).
pub fn extract(raw: &[u8], mut each: impl FnMut(&Origin, Attachment<'_>)) -> Result<usize, AttachmentError> {
    let message = MessageParser::default().parse(raw).ok_or(AttachmentError::Unparsable)?;
    let origin = Origin {
        message_id: message.message_id().unwrap_or_default().to_string(),
        from: message.from().and_then(|from| from.first()).and_then(|a| a.address()).unwrap_or_default().to_string(),
        subject: message.subject().unwrap_or_default().to_string(),
        date: message.date().map(|d| d.to_rfc3339()).unwrap_or_default(),
    };
    let mut count = 0;
    collect(&message, 0, &mut count, &mut |a| each(&origin, a));
    Ok(count.saturating_sub(MAX_ATTACHMENTS))
}

fn collect<'a>(message: &'a Message<'a>, depth: usize, count: &mut usize, each: &mut dyn FnMut(Attachment<'a>)) {
    for part in message.attachments() {
        *count += 1;
        if *count > MAX_ATTACHMENTS {
            continue;
        }
        if let PartType::Message(inner) = &part.body {
            // The attached message is kept as a file too (it is what the
            // sender attached), and its own attachments are imported.
            let name = part.attachment_name().map(str::to_string).unwrap_or_else(|| {
                format!("{}.eml", inner.subject().filter(|s| !s.is_empty()).unwrap_or("attached message"))
            });
            each(Attachment {
                name: named(&name).unwrap_or_else(|| "attached message.eml".into()),
                media_type: "message/rfc822".into(),
                bytes: Cow::Borrowed(inner.raw_message()),
                inline: false,
            });
            if depth < MAX_DEPTH {
                collect(inner, depth + 1, count, each);
            }
            continue;
        }
        let media_type = part.content_type().map_or_else(|| "application/octet-stream".into(), declared_type);
        if media_type == "application/x-mailmesh" {
            continue;
        }
        let name = part
            .attachment_name()
            .and_then(named)
            .unwrap_or_else(|| format!("attachment-{count}{}", extension_for(&media_type)));
        let inline = part.content_disposition().is_none_or(|d| !d.ctype().eq_ignore_ascii_case("attachment"));
        each(Attachment { name, media_type, bytes: as_attached(message, part), inline });
    }
}

/// The bytes that were attached. mail-parser decodes a text part into
/// UTF-8 (a Windows-1252 or Shift-JIS file would come out changed), so a
/// text part is decoded here from the raw message, transfer encoding only.
fn as_attached<'a>(message: &'a Message<'a>, part: &'a MessagePart<'a>) -> Cow<'a, [u8]> {
    if !matches!(part.body, PartType::Text(_) | PartType::Html(_)) {
        return Cow::Borrowed(part.contents());
    }
    let range = part.raw_body_offset() as usize..part.raw_end_offset() as usize;
    let Some(raw) = message.raw_message().get(range) else { return Cow::Borrowed(part.contents()) };
    // (mail-parser's part ends before the line break that belongs to the
    // next boundary.)
    let decoded = match part.encoding {
        Encoding::Base64 => base64_decode(raw),
        Encoding::QuotedPrintable => quoted_printable_decode(raw),
        Encoding::None => return Cow::Borrowed(raw),
    };
    decoded.map_or(Cow::Borrowed(part.contents()), Cow::Owned)
}

/// The media type a part declares, lowercased; a text part's with its
/// charset when that is a plain label, because its bytes are kept as
/// attached (never transcoded): a preview shows Windows-1252 or Shift_JIS
/// text as it was written only if it knows which it is.
fn declared_type(ct: &mail_parser::ContentType) -> String {
    let mut media_type = match ct.subtype() {
        Some(sub) => format!("{}/{}", ct.ctype(), sub),
        None => ct.ctype().to_string(),
    }
    .to_ascii_lowercase();
    let label = ct.attribute("charset").filter(|label| {
        (1..=40).contains(&label.len())
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
    });
    if let Some(label) = label.filter(|_| media_type.starts_with("text/")) {
        media_type.push_str("; charset=");
        media_type.push_str(&label.to_ascii_lowercase());
    }
    media_type
}

/// [`sanitize`]d, if anything is left.
fn named(name: &str) -> Option<String> {
    Some(sanitize(name)).filter(|n| !n.is_empty())
}

/// A file name safe to show and to save: no path, nothing hidden (control
/// characters, bidirectional overrides).
fn sanitize(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    mailmesh_core::names::visible(base).chars().take(255).collect()
}

fn extension_for(media_type: &str) -> &'static str {
    // (Without a text part's charset.)
    match media_type.split(';').next().unwrap_or_default() {
        "image/png" => ".png",
        "image/jpeg" => ".jpg",
        "image/gif" => ".gif",
        "application/pdf" => ".pdf",
        "text/plain" => ".txt",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An attachment copied out: name, media type, bytes.
    type Found = (String, String, Vec<u8>);

    /// Every attachment of a raw message, copied out, with its origin.
    fn all(raw: &[u8]) -> Result<(Origin, Vec<Found>), AttachmentError> {
        let mut found = Vec::new();
        let mut origin = None;
        extract(raw, |o, a| {
            origin.get_or_insert_with(|| o.clone());
            found.push((a.name, a.media_type, a.bytes.into_owned()));
        })?;
        Ok((
            origin.unwrap_or_else(|| Origin {
                message_id: String::new(),
                from: String::new(),
                subject: String::new(),
                date: String::new(),
            }),
            found,
        ))
    }

    pub(super) const NESTED: &str = "From: Alice <alice@example.org>\r\n\
To: owner@mailmesh.test\r\n\
Subject: =?UTF-8?Q?R=C3=A9sum=C3=A9s?=\r\n\
Message-ID: <m1@example.org>\r\n\
Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"outer\"\r\n\
\r\n\
--outer\r\n\
Content-Type: multipart/alternative; boundary=\"alt\"\r\n\
\r\n\
--alt\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Hello\r\n\
--alt\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<p>Hello <img src=\"cid:logo\"></p>\r\n\
--alt--\r\n\
--outer\r\n\
Content-Type: image/png\r\n\
Content-ID: <logo>\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
iVBORw0KGgo=\r\n\
--outer\r\n\
Content-Type: text/plain\r\n\
Content-Disposition: attachment; filename*=UTF-8''na%C3%AFve%20notes.txt\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
caf=C3=A9 au lait=\r\n\
\r\n\
--outer\r\n\
Content-Type: application/pdf; name=\"=?UTF-8?B?0L7RgtGH0LXRgi5wZGY=?=\"\r\n\
Content-Disposition: attachment\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
JVBERi0xLjQK\r\n\
--outer\r\n\
Content-Type: message/rfc822\r\n\
Content-Disposition: attachment; filename=\"fwd.eml\"\r\n\
\r\n\
From: Bob <bob@example.org>\r\n\
Subject: inner\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"inner\"\r\n\
\r\n\
--inner\r\n\
Content-Type: text/plain\r\n\
\r\n\
see attached\r\n\
--inner\r\n\
Content-Type: application/octet-stream\r\n\
Content-Disposition: attachment; filename=\"../../etc/data.bin\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
AAEC/w==\r\n\
--inner--\r\n\
--outer--\r\n";

    #[test]
    fn nested_parts_encodings_and_names_are_all_found() {
        let (origin, found) = all(NESTED.as_bytes()).unwrap();
        assert_eq!(origin.subject, "Résumés");
        assert_eq!(origin.from, "alice@example.org");
        assert_eq!(origin.message_id, "m1@example.org");
        assert!(origin.date.starts_with("2026-11-24T10:00:00"));
        let summary: Vec<(&str, &str, &[u8])> = found
            .iter()
            .map(|(name, media_type, bytes)| (name.as_str(), media_type.as_str(), bytes.as_slice()))
            .collect();
        assert_eq!(summary[0], ("attachment-1.png", "image/png", &b"\x89PNG\r\n\x1a\n"[..]));
        assert_eq!(summary[1], ("naïve notes.txt", "text/plain", "café au lait".as_bytes()));
        assert_eq!(summary[2], ("отчет.pdf", "application/pdf", &b"%PDF-1.4\n"[..]));
        assert_eq!((summary[3].0, summary[3].1), ("fwd.eml", "message/rfc822"));
        assert_eq!(summary[4], ("data.bin", "application/octet-stream", &[0, 1, 2, 255][..]), "no path survives");
        assert_eq!(found.len(), 5);
    }

    #[test]
    fn a_name_that_hides_its_direction_is_shown_plainly() {
        let raw = "Subject: invoice\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
                   Content-Type: application/octet-stream\r\n\
                   Content-Disposition: attachment; filename=\"invoice\u{202E}fdp.exe\"\r\n\r\nMZ\r\n--b--\r\n";
        let (_, found) = all(raw.as_bytes()).unwrap();
        assert_eq!(found[0].0, "invoicefdp.exe");
    }

    #[test]
    fn plain_mail_has_no_attachments_and_garbage_is_not_a_panic() {
        let (_, found) = all(b"Subject: hi\r\n\r\njust text").unwrap();
        assert!(found.is_empty());
        for junk in [&b""[..], b"\xff\xfe", b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n--x"] {
            let _ = all(junk);
        }
    }
}

#[cfg(test)]
mod byte_exact {
    //! Text attachments are files too: what comes out is exactly what was
    //! attached, whatever its charset, never transcoded.

    use super::*;

    fn attached(bytes: &[u8], media_type: &str, encoding: &str) -> Vec<u8> {
        use data_encoding::BASE64_MIME;
        let body = match encoding {
            "base64" => BASE64_MIME.encode(bytes),
            _ => {
                // Quoted-printable (RFC 2045): every byte outside printable
                // ASCII as =XX, line breaks kept as CRLF.
                let mut out = String::new();
                for line in bytes.split(|b| *b == b'\n') {
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    for &b in line {
                        if (33..=126).contains(&b) && b != b'=' {
                            out.push(b as char);
                        } else {
                            out.push_str(&format!("={b:02X}"));
                        }
                    }
                    out.push_str("\r\n");
                }
                out.truncate(out.len() - 2);
                out
            }
        };
        format!(
            "From: a@example.org\r\nSubject: export\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n\
             --b\r\nContent-Type: {media_type}\r\nContent-Disposition: attachment; filename=\"export\"\r\n\
             Content-Transfer-Encoding: {encoding}\r\n\r\n{body}\r\n--b--\r\n"
        )
        .into_bytes()
    }

    fn extracted(raw: &[u8]) -> Vec<u8> {
        let mut out = None;
        extract(raw, |_, a| {
            out.get_or_insert_with(|| a.bytes.to_vec());
        })
        .unwrap();
        out.expect("an attachment")
    }

    #[test]
    fn text_attachments_in_any_charset_come_out_as_attached() {
        let windows_1252 = b"name;price\r\ncaf\xe9;3\x80\r\nna\xefve;\xa35\r\n".to_vec();
        let shift_jis = b"\x93\xfa\x96\x7b\x8c\xea\r\n\x83\x65\x83\x58\x83\x67\r\n".to_vec();
        let utf8_no_final_break = "ünïcode ✓ ends here".as_bytes().to_vec();
        let cases = [
            (&windows_1252, "text/csv; charset=windows-1252"),
            (&shift_jis, "text/plain; charset=shift_jis"),
            (&utf8_no_final_break, "text/plain; charset=utf-8"),
            (&windows_1252, "text/plain"),
        ];
        for (bytes, media_type) in cases {
            for encoding in ["base64", "quoted-printable"] {
                let raw = attached(bytes, media_type, encoding);
                assert_eq!(extracted(&raw), *bytes, "{media_type}, {encoding}");
            }
        }
    }

    fn extracted_type(raw: &[u8]) -> String {
        let mut out = None;
        extract(raw, |_, a| {
            out.get_or_insert(a.media_type);
        })
        .unwrap();
        out.expect("an attachment")
    }

    #[test]
    fn a_text_attachment_keeps_its_charset_so_it_can_be_shown_as_written() {
        let bytes = b"caf\xe9".to_vec();
        let cases = [
            ("text/csv; charset=windows-1252", "text/csv; charset=windows-1252"),
            ("Text/Plain; Charset=\"ISO-8859-1\"", "text/plain; charset=iso-8859-1"),
            ("text/plain", "text/plain"),
            // Not a label: dropped, never passed on to a header.
            ("text/plain; charset=\"utf-8\\r\\nX-Evil: 1\"", "text/plain"),
            ("text/plain; charset=\"a b\"", "text/plain"),
            // Only text has a charset that matters.
            ("application/pdf; charset=utf-8", "application/pdf"),
        ];
        for (declared, kept) in cases {
            assert_eq!(extracted_type(&attached(&bytes, declared, "base64")), kept, "{declared}");
        }
        assert_eq!(extension_for("text/plain; charset=iso-8859-1"), ".txt", "an unnamed text part");
    }

    #[test]
    fn the_default_policy_leaves_out_small_inline_images_and_files_over_the_maximum() {
        let mut kept = Vec::new();
        let policy = Policy::default();
        extract(super::tests::NESTED.as_bytes(), |_, a| {
            if policy.leaves_out(&a).is_none() {
                kept.push(a.name);
            }
        })
        .unwrap();
        assert!(!kept.iter().any(|n| n.ends_with(".png")), "the logo is left out: {kept:?}");
        assert!(kept.contains(&"naïve notes.txt".to_string()), "{kept:?}");

        let big = |inline| Attachment {
            name: "x".into(),
            media_type: "image/jpeg".into(),
            bytes: Cow::Owned(vec![0; 40_000]),
            inline,
        };
        assert_eq!(policy.leaves_out(&big(true)), None, "a photo in the text is kept");
        let strict = Policy { max_bytes: 39_999, ..policy };
        assert!(strict.leaves_out(&big(false)).is_some());
        let everything = Policy { inline_images_under: 0, ..policy };
        let logo = Attachment { bytes: Cow::Owned(vec![0; 100]), ..big(true) };
        assert_eq!(everything.leaves_out(&logo), None);
    }
}
