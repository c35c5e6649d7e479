//! A Thunderbird autoconfig document (`config-v1.1.xml`) read into the
//! servers mailmesh would use: the first IMAP and SMTP server that speak
//! TLS or STARTTLS. The XML's types are `pimconf`'s.
//!
//! A document that offers only unencrypted servers gives nothing: the
//! password would cross the network in the clear.

use pimconf::autoconfig::types::{Autoconfig, SecurityType, Server as XmlServer, ServerType};

use crate::api::{Security, Server};

/// What one autoconfig document says.
#[derive(Debug, PartialEq, Eq)]
pub struct Config {
    pub name: Option<String>,
    pub imap: Server,
    pub smtp: Server,
    /// The login name, placeholders filled in for `email`.
    pub user: Option<String>,
}

/// The servers of an autoconfig document, or None when it is not one or
/// offers no encrypted IMAP and SMTP.
pub fn read(xml: &[u8], email: &str) -> Option<Config> {
    let text = std::str::from_utf8(xml).ok()?;
    let doc: Autoconfig = serde_xml_rs::from_str(text).ok()?;
    let provider = doc.email_provider;
    let imap = best(&provider.incoming_server, ServerType::Imap)?;
    let smtp = best(&provider.outgoing_server, ServerType::Smtp)?;
    Some(Config {
        name: provider.display_name.or(provider.display_short_name),
        user: imap.1.map(|template| fill(&template, email)),
        imap: imap.0,
        smtp: smtp.0,
    })
}

/// The first encrypted server of a kind, TLS before STARTTLS, in the
/// document's order (its order is the provider's preference).
fn best(servers: &[XmlServer], kind: ServerType) -> Option<(Server, Option<String>)> {
    let of_kind = || servers.iter().filter(|s| std::mem::discriminant(&s.r#type) == std::mem::discriminant(&kind));
    let with = |wanted: Security| {
        of_kind().find_map(|s| {
            let security = match s.socket_type.as_ref()? {
                SecurityType::Tls => Security::Tls,
                SecurityType::Starttls => Security::Starttls,
                SecurityType::Plain => return None,
            };
            let host = s.hostname.as_deref()?.trim().trim_end_matches('.');
            (security == wanted && !host.is_empty() && !host.contains(char::is_whitespace)).then(|| {
                let port = s.port.unwrap_or(match (&kind, security) {
                    (ServerType::Smtp, Security::Tls) => 465,
                    (ServerType::Smtp, _) => 587,
                    (_, Security::Tls) => 993,
                    _ => 143,
                });
                (Server { host: host.to_ascii_lowercase(), port, security }, s.username.clone())
            })
        })
    };
    with(Security::Tls).or_else(|| with(Security::Starttls))
}

/// Fills the placeholders a login name may hold.
fn fill(template: &str, email: &str) -> String {
    let (local, domain) = email.rsplit_once('@').unwrap_or((email, ""));
    template.replace("%EMAILADDRESS%", email).replace("%EMAILLOCALPART%", local).replace("%EMAILDOMAIN%", domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FASTMAIL_LIKE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1">
  <emailProvider id="example.org">
    <domain>example.org</domain>
    <displayName>Example Mail</displayName>
    <incomingServer type="pop3">
      <hostname>pop.example.org</hostname><port>995</port><socketType>SSL</socketType>
      <username>%EMAILADDRESS%</username><authentication>password-cleartext</authentication>
    </incomingServer>
    <incomingServer type="imap">
      <hostname>imap-plain.example.org</hostname><port>143</port><socketType>plain</socketType>
      <username>%EMAILLOCALPART%</username><authentication>password-cleartext</authentication>
    </incomingServer>
    <incomingServer type="imap">
      <hostname>IMAP.example.org</hostname><port>143</port><socketType>STARTTLS</socketType>
      <username>%EMAILLOCALPART%</username><authentication>password-cleartext</authentication>
    </incomingServer>
    <incomingServer type="imap">
      <hostname>imap.example.org</hostname><port>993</port><socketType>SSL</socketType>
      <username>%EMAILLOCALPART%</username><authentication>password-cleartext</authentication>
    </incomingServer>
    <outgoingServer type="smtp">
      <hostname>smtp.example.org</hostname><port>587</port><socketType>STARTTLS</socketType>
      <username>%EMAILADDRESS%</username><authentication>password-cleartext</authentication>
    </outgoingServer>
  </emailProvider>
</clientConfig>"#;

    #[test]
    fn the_first_tls_servers_are_taken_and_the_login_name_filled_in() {
        let config = read(FASTMAIL_LIKE.as_bytes(), "ann@example.org").unwrap();
        assert_eq!(config.name.as_deref(), Some("Example Mail"));
        assert_eq!(config.imap, Server { host: "imap.example.org".into(), port: 993, security: Security::Tls });
        assert_eq!(config.smtp, Server { host: "smtp.example.org".into(), port: 587, security: Security::Starttls });
        assert_eq!(config.user.as_deref(), Some("ann"));
    }

    #[test]
    fn unencrypted_servers_and_other_documents_give_nothing() {
        let plain_only = FASTMAIL_LIKE.replace("STARTTLS", "plain").replace("SSL", "plain");
        assert_eq!(read(plain_only.as_bytes(), "ann@example.org"), None);
        for junk in [&b"<html><body>404</body></html>"[..], b"", b"\xff\xfe", b"<clientConfig version=\"1.1\"/>"] {
            assert_eq!(read(junk, "ann@example.org"), None);
        }
    }
}
