//! Finding an address's mail servers from the address alone, in the order
//! Thunderbird and Delta Chat use:
//!
//! 1. mailmesh's own provider table (`providers.rs`): no network at all;
//! 2. the domain's autoconfig document: `autoconfig.<domain>` and then
//!    `<domain>/.well-known/…`, HTTPS before plain HTTP;
//! 3. RFC 6186 SRV records (`_imaps._tcp`, `_submissions._tcp`, …);
//! 4. the domain's mail exchanger (MX): a provider the table knows by its
//!    MX hosts (a company on Microsoft 365 or Google Workspace), else the
//!    autoconfig of the MX host's domain;
//! 5. a guess: `imap.`/`mail.`/`smtp.` names of those domains that answer
//!    on the standard ports.
//!
//! What is found is only a proposal: it is shown with where it came from
//! and can be edited, and nothing is saved before both logins work.
//! Plain HTTP and DNS can be forged on a hostile network, so a finding
//! never offers an unencrypted server, and one found over plain HTTP says so.
//!
//! The order is here, the network is behind [`Lookups`] ([`Net`] is the
//! real one), so the order is tested without a network.

pub mod autoconfig;
mod net;

use std::future::Future;

use futures_util::future::join_all;

pub use net::Net;

use super::providers::{self, Provider};
use crate::api::{OAuth, Security, Server};

/// Servers found for an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The provider's name, when the table or the document gives one.
    pub provider: Option<String>,
    pub imap: Server,
    pub smtp: Server,
    /// The login name, when it is not the address itself.
    pub user: Option<String>,
    /// Where the servers came from, in words.
    pub source: String,
    /// What the provider wants instead of the account password.
    pub advice: Option<String>,
    /// Where to sign in with OAuth 2, if the provider offers it.
    pub oauth: Option<OAuth>,
    /// The provider takes OAuth 2 and no password.
    pub oauth_only: bool,
}

impl Found {
    fn from_table(provider: &Provider, source: String) -> Found {
        Found {
            provider: Some(provider.name.to_string()),
            imap: provider.imap(),
            smtp: provider.smtp(),
            user: None,
            source,
            advice: provider.advice.map(str::to_string),
            oauth: provider.oauth_issuer.map(|issuer| OAuth {
                issuer: issuer.to_string(),
                auth_url: String::new(),
                token_url: String::new(),
                scopes: Vec::new(),
                client_id: String::new(),
                client_secret: None,
            }),
            oauth_only: provider.oauth_only,
        }
    }
}

/// What the control socket answers for a discovery.
pub fn view(found: Option<Found>) -> crate::api::ServersFound {
    let Some(found) = found else { return crate::api::ServersFound::default() };
    crate::api::ServersFound {
        provider: found.provider,
        imap: Some(found.imap),
        smtp: Some(found.smtp),
        user: found.user,
        oauth: found.oauth,
        oauth_only: found.oauth_only,
        source: Some(found.source),
        advice: found.advice,
    }
}

/// One SRV record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Srv {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    /// The host, without the final dot; "" when the service is not offered.
    pub target: String,
}

/// The network lookups discovery needs. Each one gives up on its own
/// within seconds and answers "nothing" rather than an error: a step that
/// finds nothing hands over to the next.
pub trait Lookups: Sync {
    /// The body of a successful HTTP(S) GET, bounded in size.
    fn fetch(&self, url: String) -> impl Future<Output = Option<Vec<u8>>> + Send;
    fn srv(&self, name: String) -> impl Future<Output = Vec<Srv>> + Send;
    /// The mail exchangers of a domain, most preferred first.
    fn mx(&self, domain: String) -> impl Future<Output = Vec<String>> + Send;
    /// Whether something accepts a TCP connection there.
    fn reachable(&self, host: String, port: u16) -> impl Future<Output = bool> + Send;
}

/// The servers of `email`, or None when no step finds both.
pub async fn discover(email: &str, lookups: &impl Lookups) -> Option<Found> {
    let domain = domain_of(email)?;
    if let Some(provider) = providers::by_email(email) {
        return Some(Found::from_table(provider, "mailmesh's list of providers".into()));
    }
    if let Some(found) = autoconfig_of(&domain, email, lookups).await {
        return Some(found);
    }
    if let Some(found) = srv_of(&domain, lookups).await {
        return Some(found);
    }
    let exchanger = lookups.mx(domain.clone()).await.into_iter().next();
    let mut guess_domains = vec![domain.clone()];
    if let Some(host) = exchanger.as_deref() {
        if let Some(provider) = providers::by_mx_host(host) {
            return Some(Found::from_table(provider, format!("the domain's mail exchanger {host}")));
        }
        for parent in parents(host).into_iter().filter(|d| *d != domain) {
            if let Some(found) = autoconfig_of(&parent, email, lookups).await {
                return Some(found);
            }
            guess_domains.push(parent);
        }
    }
    guess(&guess_domains, lookups).await
}

fn domain_of(email: &str) -> Option<String> {
    let (local, domain) = email.trim().rsplit_once('@')?;
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let valid = !local.is_empty()
        && domain.contains('.')
        && domain.split('.').all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    valid.then_some(domain)
}

/// The autoconfig locations of a domain, in the order they are believed.
fn autoconfig_urls(domain: &str, email: &str) -> Vec<String> {
    let query = serde_urlencoded::to_string([("emailaddress", email)]).unwrap_or_default();
    ["https", "http"]
        .into_iter()
        .flat_map(|scheme| {
            [
                format!("{scheme}://autoconfig.{domain}/mail/config-v1.1.xml?{query}"),
                format!("{scheme}://{domain}/.well-known/autoconfig/mail/config-v1.1.xml"),
            ]
        })
        .collect()
}

async fn autoconfig_of(domain: &str, email: &str, lookups: &impl Lookups) -> Option<Found> {
    let urls = autoconfig_urls(domain, email);
    // All at once, then believed in order: a slow HTTPS answer does not
    // wait for the plain HTTP one to time out, nor the other way round.
    let bodies = join_all(urls.iter().map(|url| lookups.fetch(url.clone()))).await;
    urls.iter().zip(bodies).find_map(|(url, body)| {
        let config = autoconfig::read(&body?, email)?;
        let place = url.split('?').next().unwrap_or(url);
        let secure = place.starts_with("https:");
        let source = if secure {
            format!("the autoconfig document at {place}")
        } else {
            format!(
                "the autoconfig document at {place} (plain HTTP, which anyone on the network can forge: check them)"
            )
        };
        let provider = providers::of_servers(&config.imap, &config.smtp);
        Some(Found {
            provider: config.name.or_else(|| provider.map(|p| p.name.to_string())),
            advice: provider.and_then(|p| p.advice).map(str::to_string),
            user: config.user.filter(|user| user != email),
            imap: config.imap,
            smtp: config.smtp,
            source,
            // Where to sign in is believed only over HTTPS: a forged
            // document would send the owner to sign in at a stranger's.
            oauth: config.oauth.filter(|_| secure),
            oauth_only: config.oauth_only && secure,
        })
    })
}

async fn srv_of(domain: &str, lookups: &impl Lookups) -> Option<Found> {
    // RFC 8314: implicit TLS is preferred over STARTTLS.
    let services = [
        ("_imaps", Security::Tls),
        ("_imap", Security::Starttls),
        ("_submissions", Security::Tls),
        ("_submission", Security::Starttls),
    ];
    let answers = join_all(services.iter().map(|(s, _)| lookups.srv(format!("{s}._tcp.{domain}")))).await;
    let mut best = services.iter().zip(answers).map(|(&(_, security), records)| {
        let record = records.into_iter().min_by_key(|r| (r.priority, std::cmp::Reverse(r.weight)))?;
        // A target of "." says the service is not offered (RFC 2782).
        (!record.target.is_empty()).then_some(Server { host: record.target, port: record.port, security })
    });
    let (imaps, imap, submissions, submission) = (best.next()?, best.next()?, best.next()?, best.next()?);
    let (imap, smtp) = (imaps.or(imap)?, submissions.or(submission)?);
    Some(Found {
        provider: providers::of_servers(&imap, &smtp).map(|p| p.name.to_string()),
        advice: providers::of_servers(&imap, &smtp).and_then(|p| p.advice).map(str::to_string),
        imap,
        smtp,
        user: None,
        source: format!("the SRV records of {domain}"),
        oauth: None,
        oauth_only: false,
    })
}

/// The domains above a host, nearest first, down to two labels
/// (`mx1.mail.example.net` gives `mail.example.net`, `example.net`).
fn parents(host: &str) -> Vec<String> {
    let labels: Vec<&str> = host.trim_end_matches('.').split('.').collect();
    (1..labels.len().saturating_sub(1)).take(2).map(|i| labels[i..].join(".").to_ascii_lowercase()).collect()
}

/// The common names of these domains that answer on the standard ports.
async fn guess(domains: &[String], lookups: &impl Lookups) -> Option<Found> {
    let candidates = |names: [&str; 2], ports: [(u16, Security); 2]| {
        let mut servers = Vec::new();
        for domain in domains {
            for (port, security) in ports {
                for name in names {
                    servers.push(Server { host: format!("{name}.{domain}"), port, security });
                }
            }
        }
        servers
    };
    let first_answering = |servers: Vec<Server>| async move {
        let answers = join_all(servers.iter().map(|s| lookups.reachable(s.host.clone(), s.port))).await;
        servers.into_iter().zip(answers).find_map(|(server, up)| up.then_some(server))
    };
    let (imap, smtp) = futures_util::join!(
        first_answering(candidates(["imap", "mail"], [(993, Security::Tls), (143, Security::Starttls)])),
        first_answering(candidates(["smtp", "mail"], [(465, Security::Tls), (587, Security::Starttls)])),
    );
    Some(Found {
        provider: None,
        imap: imap?,
        smtp: smtp?,
        user: None,
        source: "a guess: these servers answer on the usual ports".into(),
        advice: None,
        oauth: None,
        oauth_only: false,
    })
}

#[cfg(test)]
mod tests;
