//! The mail providers mailmesh knows: their servers (so `mailmesh init
//! --email you@gmail.com` needs nothing more) and what they want instead
//! of the account password (the words of a refused login, `refusal.rs`).
//!
//! A table shipped with mailmesh, the first step of finding an address's
//! servers; an address it does not know needs its servers given.

use crate::api::{Account, Security, Server};

pub struct Provider {
    pub name: &'static str,
    domains: &'static [&'static str],
    /// IMAP and SMTP: host, port, security.
    imap: (&'static str, u16, Security),
    smtp: (&'static str, u16, Security),
    /// Other server names of the provider (a company domain on it).
    other_hosts: &'static [&'static str],
    /// The domains of its mail exchangers: a company domain whose MX is
    /// under one of them has its mail there.
    mx_domains: &'static [&'static str],
    /// What it wants instead of the account password, if anything.
    pub advice: Option<&'static str>,
    /// Its OAuth 2 issuer (see `oauth-clients/`), if it offers sign-in.
    pub oauth_issuer: Option<&'static str>,
    /// It takes no passwords from mail programs, only OAuth 2.
    pub oauth_only: bool,
    /// What it serves an account over IMAP a day, in MB, where it says.
    pub download_mb_per_day: Option<u64>,
}

impl Provider {
    pub fn imap(&self) -> Server {
        Server { host: self.imap.0.into(), port: self.imap.1, security: self.imap.2 }
    }
    pub fn smtp(&self) -> Server {
        Server { host: self.smtp.0.into(), port: self.smtp.1, security: self.smtp.2 }
    }
    fn serves(&self, host: &str) -> bool {
        host == self.imap.0 || host == self.smtp.0 || self.other_hosts.contains(&host)
    }
}

pub const PROVIDERS: &[Provider] = &[
    Provider {
        name: "Gmail",
        domains: &["gmail.com", "googlemail.com"],
        imap: ("imap.gmail.com", 993, Security::Tls),
        smtp: ("smtp.gmail.com", 465, Security::Tls),
        other_hosts: &[],
        mx_domains: &["google.com", "googlemail.com"],
        advice: Some(
            "Gmail needs an app password: turn on 2-Step Verification, then create one at \
             https://myaccount.google.com/apppasswords and use it here",
        ),
        oauth_issuer: Some("accounts.google.com"),
        oauth_only: false,
        download_mb_per_day: Some(2500),
    },
    Provider {
        name: "Outlook.com",
        domains: &["outlook.com", "hotmail.com", "live.com", "msn.com"],
        imap: ("outlook.office365.com", 993, Security::Tls),
        smtp: ("smtp-mail.outlook.com", 587, Security::Starttls),
        other_hosts: &[],
        mx_domains: &[],
        advice: Some(
            "Outlook.com and Microsoft 365 need Sign in with Microsoft (OAuth 2): they refuse passwords \
             from other mail programs since September 2024",
        ),
        oauth_issuer: Some("login.microsoftonline.com"),
        oauth_only: true,
        download_mb_per_day: None,
    },
    Provider {
        name: "Microsoft 365",
        domains: &[],
        imap: ("outlook.office365.com", 993, Security::Tls),
        smtp: ("smtp.office365.com", 587, Security::Starttls),
        other_hosts: &[],
        mx_domains: &["mail.protection.outlook.com"],
        advice: Some(
            "Microsoft 365 needs Sign in with Microsoft (OAuth 2): it refuses passwords from other mail programs",
        ),
        oauth_issuer: Some("login.microsoftonline.com"),
        oauth_only: true,
        download_mb_per_day: None,
    },
    Provider {
        name: "iCloud Mail",
        domains: &["icloud.com", "me.com", "mac.com"],
        imap: ("imap.mail.me.com", 993, Security::Tls),
        smtp: ("smtp.mail.me.com", 587, Security::Starttls),
        other_hosts: &[],
        mx_domains: &["mail.icloud.com"],
        advice: Some(
            "iCloud Mail needs an app-specific password: create one at https://account.apple.com \
             (Sign-In and Security, App-Specific Passwords) and use it here",
        ),
        oauth_issuer: None,
        oauth_only: false,
        download_mb_per_day: None,
    },
    Provider {
        name: "Yahoo Mail",
        domains: &["yahoo.com", "ymail.com"],
        imap: ("imap.mail.yahoo.com", 993, Security::Tls),
        smtp: ("smtp.mail.yahoo.com", 465, Security::Tls),
        other_hosts: &[],
        mx_domains: &["yahoodns.net"],
        advice: Some(
            "Yahoo needs an app password: create one under Account Security, Generate app password, and use it here",
        ),
        oauth_issuer: None,
        oauth_only: false,
        download_mb_per_day: None,
    },
    Provider {
        name: "AOL Mail",
        domains: &["aol.com"],
        imap: ("imap.aol.com", 993, Security::Tls),
        smtp: ("smtp.aol.com", 465, Security::Tls),
        other_hosts: &[],
        mx_domains: &[],
        advice: Some(
            "AOL needs an app password: create one under Account Security, Generate app password, and use it here",
        ),
        oauth_issuer: None,
        oauth_only: false,
        download_mb_per_day: None,
    },
    Provider {
        name: "Fastmail",
        domains: &["fastmail.com", "fastmail.fm"],
        imap: ("imap.fastmail.com", 993, Security::Tls),
        smtp: ("smtp.fastmail.com", 465, Security::Tls),
        other_hosts: &[],
        mx_domains: &["messagingengine.com"],
        advice: Some(
            "Fastmail needs an app password: create one under Settings, Privacy & Security, \
             Manage app passwords, and use it here",
        ),
        oauth_issuer: None,
        oauth_only: false,
        download_mb_per_day: None,
    },
    Provider {
        name: "GMX",
        domains: &["gmx.net", "gmx.de", "gmx.com", "gmx.at", "gmx.ch"],
        imap: ("imap.gmx.net", 993, Security::Tls),
        smtp: ("mail.gmx.net", 465, Security::Tls),
        other_hosts: &[],
        mx_domains: &["gmx.net"],
        advice: None,
        oauth_issuer: None,
        oauth_only: false,
        download_mb_per_day: None,
    },
    Provider {
        name: "WEB.DE",
        domains: &["web.de"],
        imap: ("imap.web.de", 993, Security::Tls),
        smtp: ("smtp.web.de", 587, Security::Starttls),
        other_hosts: &[],
        mx_domains: &["web.de"],
        advice: None,
        oauth_issuer: None,
        oauth_only: false,
        download_mb_per_day: None,
    },
    Provider {
        name: "Proton Mail (through Proton Mail Bridge on this computer)",
        domains: &["proton.me", "protonmail.com", "protonmail.ch", "pm.me"],
        imap: ("127.0.0.1", 1143, Security::Starttls),
        smtp: ("127.0.0.1", 1025, Security::Starttls),
        other_hosts: &[],
        mx_domains: &["protonmail.ch"],
        advice: Some("Proton Mail Bridge shows its own password for mail programs: use that one here"),
        oauth_issuer: None,
        oauth_only: false,
        download_mb_per_day: None,
    },
];

/// The provider of an address, by its domain.
pub fn by_email(email: &str) -> Option<&'static Provider> {
    let domain = email.rsplit_once('@').map(|(_, d)| d.trim().to_ascii_lowercase())?;
    PROVIDERS.iter().find(|p| p.domains.contains(&domain.as_str()))
}

/// The provider of an account, by its address or its servers.
pub fn of(account: &Account) -> Option<&'static Provider> {
    by_email(&account.email).or_else(|| of_servers(&account.imap, &account.smtp))
}

/// The provider whose servers these are.
pub fn of_servers(imap: &Server, smtp: &Server) -> Option<&'static Provider> {
    let hosts = [imap.host.to_ascii_lowercase(), smtp.host.to_ascii_lowercase()];
    // Not by 127.0.0.1: a local test server or bridge is not Proton's.
    PROVIDERS.iter().find(|p| hosts.iter().any(|h| h != "127.0.0.1" && p.serves(h)))
}

/// The provider a mail exchanger belongs to (`x.mail.protection.outlook.com`
/// is Microsoft 365's).
pub fn by_mx_host(host: &str) -> Option<&'static Provider> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    PROVIDERS.iter().find(|p| {
        p.mx_domains.iter().any(|d| host.strip_suffix(d).is_some_and(|rest| rest.is_empty() || rest.ends_with('.')))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_addresses_get_their_servers() {
        let gmail = by_email("Someone@GMail.com ").unwrap();
        assert_eq!((gmail.imap().host.as_str(), gmail.imap().port), ("imap.gmail.com", 993));
        let outlook = by_email("me@hotmail.com").unwrap();
        assert_eq!((outlook.smtp().port, outlook.smtp().security), (587, Security::Starttls));
        for (email, name) in [
            ("a@icloud.com", "iCloud Mail"),
            ("a@yahoo.com", "Yahoo Mail"),
            ("a@aol.com", "AOL Mail"),
            ("a@fastmail.com", "Fastmail"),
            ("a@gmx.de", "GMX"),
            ("a@web.de", "WEB.DE"),
            ("a@proton.me", "Proton Mail (through Proton Mail Bridge on this computer)"),
        ] {
            assert_eq!(by_email(email).map(|p| p.name), Some(name), "{email}");
        }
        assert!(by_email("a@example.org").is_none());
        assert_eq!(by_mx_host("contoso-com.mail.protection.outlook.com.").map(|p| p.name), Some("Microsoft 365"));
        assert_eq!(by_mx_host("ASPMX.L.GOOGLE.COM").map(|p| p.name), Some("Gmail"));
        assert!(by_mx_host("notgoogle.com").is_none());
        assert!(by_email("not an address").is_none());
    }
}
