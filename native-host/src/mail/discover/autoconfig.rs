//! A Thunderbird autoconfig document (`config-v1.1.xml`) read into the
//! servers mailmesh would use: the first IMAP and SMTP server that speak
//! TLS or STARTTLS. The XML's types are `pimconf`'s.
//!
//! A document that offers only unencrypted servers gives nothing: the
//! password would cross the network in the clear.

use pimconf::autoconfig::types::{AuthenticationType, Autoconfig, SecurityType, Server as XmlServer, ServerType};

use crate::api::{OAuth, Security, Server};

/// What one autoconfig document says.
#[derive(Debug, PartialEq, Eq)]
pub struct Config {
    pub name: Option<String>,
    pub imap: Server,
    pub smtp: Server,
    /// The login name, placeholders filled in for `email`.
    pub user: Option<String>,
    /// Where to sign in, when the IMAP server takes OAuth 2 (the client id
    /// is left empty: it is mailmesh's, not the document's).
    pub oauth: Option<OAuth>,
    /// The IMAP server takes OAuth 2 and no password.
    pub oauth_only: bool,
}

/// The servers of an autoconfig document, or None when it is not one or
/// offers no encrypted IMAP and SMTP.
pub fn read(xml: &[u8], email: &str) -> Option<Config> {
    let text = std::str::from_utf8(xml).ok()?;
    let doc: Autoconfig = serde_xml_rs::from_str(text).ok()?;
    let provider = doc.email_provider;
    let (imap, template, auth) = best(&provider.incoming_server, ServerType::Imap)?;
    let (smtp, _, _) = best(&provider.outgoing_server, ServerType::Smtp)?;
    let takes_oauth = auth.iter().any(|a| matches!(a, AuthenticationType::OAuth2));
    let takes_password = auth.is_empty()
        || auth
            .iter()
            .any(|a| matches!(a, AuthenticationType::PasswordCleartext | AuthenticationType::PasswordEncrypted));
    let oauth = doc.oauth2.filter(|_| takes_oauth).map(|o| OAuth {
        issuer: o.issuer,
        auth_url: o.auth_url,
        token_url: o.token_url,
        scopes: o.scope.split_whitespace().map(str::to_string).collect(),
        client_id: String::new(),
        client_secret: None,
    });
    Some(Config {
        name: provider.display_name.or(provider.display_short_name),
        user: template.map(|template| fill(&template, email)),
        oauth_only: oauth.is_some() && !takes_password,
        oauth,
        imap,
        smtp,
    })
}

/// The first encrypted server of a kind, TLS before STARTTLS, in the
/// document's order (its order is the provider's preference).
fn best(servers: &[XmlServer], kind: ServerType) -> Option<(Server, Option<String>, &[AuthenticationType])> {
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
                (
                    Server { host: host.to_ascii_lowercase(), port, security },
                    s.username.clone(),
                    s.authentication.as_slice(),
                )
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
        assert_eq!((config.oauth, config.oauth_only), (None, false));
    }

    #[test]
    fn a_server_that_takes_oauth_gives_where_to_sign_in() {
        let xml = FASTMAIL_LIKE
            .replace("<authentication>password-cleartext</authentication>", "<authentication>OAuth2</authentication>")
            .replace(
                "</emailProvider>",
                "</emailProvider><oAuth2><issuer>id.example.org</issuer><scope>mail offline</scope>\
                 <authURL>https://id.example.org/authorize</authURL><tokenURL>https://id.example.org/token</tokenURL></oAuth2>",
            );
        let config = read(xml.as_bytes(), "ann@example.org").unwrap();
        let oauth = config.oauth.unwrap();
        assert_eq!(
            (oauth.issuer.as_str(), oauth.token_url.as_str()),
            ("id.example.org", "https://id.example.org/token")
        );
        assert_eq!(oauth.scopes, ["mail", "offline"]);
        assert!(config.oauth_only);
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
