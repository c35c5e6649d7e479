//! The real network under discovery: HTTP(S) with reqwest (trusting the
//! Mozilla roots plus the owner's CA file), DNS with hickory's resolver
//! (the system's resolv.conf), and TCP connects for the guess. Every
//! lookup is bounded in time and size.

use std::path::Path;
use std::time::Duration;

use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;

use super::{Lookups, Srv};
use crate::mail::{tls, MailError};

/// An autoconfig document is a few kilobytes; anything past this is not one.
const MAX_DOCUMENT: usize = 64 * 1024;
const HTTP_TIMEOUT: Duration = Duration::from_secs(8);
const DNS_TIMEOUT: Duration = Duration::from_secs(4);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(4);

pub struct Net {
    http: reqwest::Client,
    /// None when the system has no resolver configuration: DNS steps then
    /// find nothing.
    dns: Option<TokioResolver>,
}

impl Net {
    /// `tls_ca`: a CA file the owner trusts for their servers, trusted for
    /// the autoconfig fetches too.
    pub fn new(tls_ca: Option<&Path>) -> Result<Net, MailError> {
        let tls = tls::trusting(tls_ca)?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls((*tls).clone())
            .timeout(HTTP_TIMEOUT)
            .connect_timeout(HTTP_TIMEOUT)
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("mailmesh/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| MailError::Tls { host: String::new(), detail: e.to_string() })?;
        let dns = TokioResolver::builder_tokio()
            .map(|mut builder| {
                builder.options_mut().timeout = DNS_TIMEOUT;
                builder.options_mut().attempts = 1;
                builder
            })
            .and_then(|builder| builder.build())
            .inspect_err(|e| tracing::warn!(error = %e, "no DNS resolver: discovery skips SRV and MX"))
            .ok();
        Ok(Net { http, dns })
    }
}

impl Lookups for Net {
    async fn fetch(&self, url: String) -> Option<Vec<u8>> {
        let mut response = self.http.get(&url).send().await.inspect_err(|e| tracing::debug!(%url, error = %e)).ok()?;
        if !response.status().is_success() {
            return None;
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.ok()? {
            if body.len() + chunk.len() > MAX_DOCUMENT {
                tracing::debug!(%url, "autoconfig answer too large");
                return None;
            }
            body.extend_from_slice(&chunk);
        }
        Some(body)
    }

    async fn srv(&self, name: String) -> Vec<Srv> {
        let Some(dns) = &self.dns else { return Vec::new() };
        let Ok(lookup) = dns.srv_lookup(format!("{name}.")).await else { return Vec::new() };
        lookup
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::SRV(srv) => Some(Srv {
                    priority: srv.priority,
                    weight: srv.weight,
                    port: srv.port,
                    target: srv.target.to_ascii().trim_end_matches('.').to_ascii_lowercase(),
                }),
                _ => None,
            })
            .collect()
    }

    async fn mx(&self, domain: String) -> Vec<String> {
        let Some(dns) = &self.dns else { return Vec::new() };
        let Ok(lookup) = dns.mx_lookup(format!("{domain}.")).await else { return Vec::new() };
        let mut exchangers: Vec<(u16, String)> = lookup
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::MX(mx) => {
                    Some((mx.preference, mx.exchange.to_ascii().trim_end_matches('.').to_ascii_lowercase()))
                }
                _ => None,
            })
            .filter(|(_, host)| !host.is_empty())
            .collect();
        exchangers.sort();
        exchangers.into_iter().map(|(_, host)| host).collect()
    }

    async fn reachable(&self, host: String, port: u16) -> bool {
        let connect = tokio::net::TcpStream::connect((host.as_str(), port));
        matches!(tokio::time::timeout(CONNECT_TIMEOUT, connect).await, Ok(Ok(_)))
    }
}
