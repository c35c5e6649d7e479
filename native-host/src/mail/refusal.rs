//! A refused login in the words of the owner's provider.
//!
//! Servers refuse a login for two different reasons that used to read the
//! same ("wrong password?"): the password (or the way of signing in) is not
//! accepted, or the server could not check it just now (Dovecot: "auth
//! service reported temporary failure", IMAP `[UNAVAILABLE]`, SMTP 454).
//! The first says what the provider wants instead — an app password, or
//! Sign in with Microsoft — so the owner knows what to do.

use crate::api::Account;

/// What a provider wants instead of the account password, by the address's
/// domain or the server's name.
struct Provider {
    domains: &'static [&'static str],
    hosts: &'static [&'static str],
    advice: &'static str,
}

const PROVIDERS: &[Provider] = &[
    Provider {
        domains: &["gmail.com", "googlemail.com"],
        hosts: &["imap.gmail.com", "smtp.gmail.com"],
        advice: "Gmail needs an app password: turn on 2-Step Verification, then create one at \
                 https://myaccount.google.com/apppasswords and use it here",
    },
    Provider {
        domains: &["outlook.com", "hotmail.com", "live.com", "msn.com"],
        hosts: &["outlook.office365.com", "smtp-mail.outlook.com", "smtp.office365.com"],
        advice: "Outlook.com and Microsoft 365 need Sign in with Microsoft (OAuth 2) and refuse passwords \
                 from other mail programs since September 2024; mailmesh cannot sign in there yet",
    },
    Provider {
        domains: &["icloud.com", "me.com", "mac.com"],
        hosts: &["imap.mail.me.com", "smtp.mail.me.com"],
        advice: "iCloud Mail needs an app-specific password: create one at https://account.apple.com \
                 (Sign-In and Security, App-Specific Passwords) and use it here",
    },
    Provider {
        domains: &["yahoo.com", "ymail.com", "aol.com"],
        hosts: &["imap.mail.yahoo.com", "smtp.mail.yahoo.com", "imap.aol.com", "smtp.aol.com"],
        advice: "Yahoo and AOL need an app password: create one under Account Security, \
                 Generate app password, and use it here",
    },
    Provider {
        domains: &["fastmail.com", "fastmail.fm"],
        hosts: &["imap.fastmail.com", "smtp.fastmail.com"],
        advice: "Fastmail needs an app password: create one under Settings, Privacy & Security, \
                 Manage app passwords, and use it here",
    },
];

/// The provider's advice for this account, if mailmesh knows its provider.
pub fn provider_advice(account: &Account) -> Option<&'static str> {
    let domain = account.email.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase()).unwrap_or_default();
    let hosts = [account.imap.host.to_ascii_lowercase(), account.smtp.host.to_ascii_lowercase()];
    PROVIDERS
        .iter()
        .find(|p| p.domains.contains(&domain.as_str()) || hosts.iter().any(|h| p.hosts.contains(&h.as_str())))
        .map(|p| p.advice)
}

/// Whether the server's words say it could not check the password just
/// now (so the password may well be right).
pub fn is_temporary(server_text: &str) -> bool {
    let text = server_text.to_ascii_lowercase();
    text.contains("[unavailable]") || text.contains("temporary") || text.contains("try again later")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Security, Server};

    fn account(email: &str, host: &str) -> Account {
        let server = Server { host: host.into(), port: 993, security: Security::Tls };
        Account {
            email: email.into(),
            imap: server.clone(),
            smtp: server,
            user: email.into(),
            tls_ca: None,
            accept_invalid_certs: false,
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
}
