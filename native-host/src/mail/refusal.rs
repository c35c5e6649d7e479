//! A refused login in the words of the owner's provider.
//!
//! Servers refuse a login for two different reasons that used to read the
//! same ("wrong password?"): the password (or the way of signing in) is not
//! accepted, or the server could not check it just now (Dovecot: "auth
//! service reported temporary failure", IMAP `[UNAVAILABLE]`, SMTP 454).
//! The first says what the provider wants instead — an app password, or
//! Sign in with Microsoft — so the owner knows what to do.

use crate::api::Account;

/// The provider's advice for this account, if mailmesh knows its provider
/// (by the address's domain or the server's name).
pub fn provider_advice(account: &Account) -> Option<&'static str> {
    super::providers::of(account).and_then(|p| p.advice)
}

/// Whether the server's words say it could not check the password just
/// now (so the password may well be right).
pub fn is_temporary(server_text: &str) -> bool {
    let text = server_text.to_ascii_lowercase();
    text.contains("[unavailable]") || text.contains("temporary") || text.contains("try again later")
}

/// Whether the server's words say it is limiting this account: Gmail's
/// "Account exceeded command or bandwidth limits", Outlook's `[THROTTLED]`,
/// Yahoo's and Dovecot's "too many connections", RFC 5530's `[LIMIT]`.
/// The import then waits and resumes from its checkpoint.
pub fn is_throttling(server_text: &str) -> bool {
    let text = server_text.to_ascii_lowercase();
    // (The bracketed code may be gone: a client library keeps only the words.)
    ["throttl", "[limit]", "bandwidth limit", "exceeded command", "too many", "maximum number of connections"]
        .iter()
        .any(|words| text.contains(words))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Security, Server};
    use crate::mail::MailError;

    fn account(email: &str, host: &str) -> Account {
        let server = Server { host: host.into(), port: 993, security: Security::Tls };
        Account {
            email: email.into(),
            imap: server.clone(),
            smtp: server,
            user: email.into(),
            tls_ca: None,
            accept_invalid_certs: false,
            oauth: None,
        }
    }

    #[test]
    fn each_provider_says_what_it_wants() {
        assert!(provider_advice(&account("me@gmail.com", "imap.gmail.com")).unwrap().contains("app password"));
        assert!(provider_advice(&account("me@Hotmail.com", "outlook.office365.com"))
            .unwrap()
            .contains("Sign in with Microsoft"));
        // A company domain on Microsoft 365 is known by its server.
        assert!(provider_advice(&account("me@example.com", "outlook.office365.com")).unwrap().contains("Microsoft"));
        assert!(provider_advice(&account("me@icloud.com", "imap.mail.me.com")).unwrap().contains("app-specific"));
        assert!(provider_advice(&account("me@yahoo.com", "imap.mail.yahoo.com")).unwrap().contains("Yahoo"));
        assert!(provider_advice(&account("me@fastmail.com", "imap.fastmail.com")).unwrap().contains("Fastmail"));
        assert_eq!(provider_advice(&account("me@example.org", "mail.example.org")), None);
    }

    #[test]
    fn a_temporary_failure_is_told_from_a_refusal() {
        // Dovecot, when its auth service fails.
        assert!(is_temporary("[UNAVAILABLE] Temporary authentication failure. [mail:2026-12-02 19:00:00]"));
        assert!(is_temporary("454 4.7.0 Temporary authentication failure"));
        assert!(!is_temporary("[AUTHENTICATIONFAILED] Authentication failed."));
        assert!(!is_temporary("535 5.7.8 Error: authentication failed"));
    }

    #[test]
    fn a_refused_token_asks_to_sign_in_again_not_for_a_password() {
        let mut signed_in = account("me@outlook.com", "outlook.office365.com");
        signed_in.oauth = Some(crate::api::OAuth {
            issuer: "login.microsoftonline.com".into(),
            auth_url: String::new(),
            token_url: String::new(),
            scopes: Vec::new(),
            client_id: "x".into(),
            client_secret: None,
        });
        let refused = MailError::refused_login(&signed_in, "outlook.office365.com", "AUTHENTICATE failed.");
        assert_eq!(refused.to_string(), "the server refused the sign-in (it expired or was revoked): sign in again");
        let password =
            MailError::refused_login(&account("me@gmail.com", "imap.gmail.com"), "imap.gmail.com", "Invalid");
        assert!(password.to_string().contains("app password"), "{password}");
    }

    #[test]
    fn throttling_is_told_apart_from_other_refusals() {
        for text in [
            "[ALERT] Account exceeded command or bandwidth limits. (Failure)",
            "[THROTTLED] Request is throttled. Suggested Backoff Time: 92415 milliseconds",
            "Maximum number of connections from user+IP exceeded (mail_max_userip_connections=2)",
            "[LIMIT] Too many concurrent FETCH commands",
            "Request is throttled. Suggested Backoff Time: 3000 milliseconds",
        ] {
            assert!(is_throttling(text), "{text}");
        }
        assert!(!is_throttling("Invalid messageset"));
        assert!(!is_throttling("[AUTHENTICATIONFAILED] Authentication failed."));
    }
}
