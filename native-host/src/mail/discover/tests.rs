//! The discovery order over a fake network: what each step finds, and that
//! a step is reached only when the ones before it found nothing.

use std::collections::HashMap;
use std::sync::Mutex;

use super::*;

#[derive(Default)]
struct FakeNet {
    documents: HashMap<String, String>,
    srv: HashMap<String, Vec<Srv>>,
    mx: HashMap<String, Vec<String>>,
    open: Vec<(String, u16)>,
    asked: Mutex<Vec<String>>,
}

impl FakeNet {
    fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
    fn note(&self, what: String) {
        self.asked.lock().unwrap().push(what);
    }
}

impl Lookups for FakeNet {
    async fn fetch(&self, url: String) -> Option<Vec<u8>> {
        self.note(url.clone());
        self.documents.get(&url).map(|d| d.clone().into_bytes())
    }
    async fn srv(&self, name: String) -> Vec<Srv> {
        self.note(name.clone());
        self.srv.get(&name).cloned().unwrap_or_default()
    }
    async fn mx(&self, domain: String) -> Vec<String> {
        self.note(format!("MX {domain}"));
        self.mx.get(&domain).cloned().unwrap_or_default()
    }
    async fn reachable(&self, host: String, port: u16) -> bool {
        self.note(format!("{host}:{port}"));
        self.open.contains(&(host, port))
    }
}

fn document(imap_host: &str, smtp_host: &str) -> String {
    format!(
        r#"<clientConfig version="1.1"><emailProvider id="x"><displayName>Hosted</displayName>
        <incomingServer type="imap"><hostname>{imap_host}</hostname><port>993</port><socketType>SSL</socketType>
        <username>%EMAILADDRESS%</username></incomingServer>
        <outgoingServer type="smtp"><hostname>{smtp_host}</hostname><port>465</port><socketType>SSL</socketType>
        <username>%EMAILADDRESS%</username></outgoingServer></emailProvider></clientConfig>"#
    )
}

fn server(host: &str, port: u16, security: Security) -> Server {
    Server { host: host.into(), port, security }
}

fn srv(priority: u16, weight: u16, port: u16, target: &str) -> Srv {
    Srv { priority, weight, port, target: target.into() }
}

async fn run(net: &FakeNet, email: &str) -> Option<Found> {
    discover(email, net).await
}

#[tokio::test]
async fn a_provider_in_the_table_needs_no_network() {
    let net = FakeNet::default();
    let found = run(&net, "ann@outlook.com").await.unwrap();
    assert_eq!(found.provider.as_deref(), Some("Outlook.com"));
    assert!(found.advice.unwrap().contains("Sign in with Microsoft"));
    assert!(net.asked().is_empty(), "{:?}", net.asked());
}

#[tokio::test]
async fn autoconfig_over_https_is_believed_before_plain_http() {
    let mut net = FakeNet::default();
    let https = "https://autoconfig.example.org/mail/config-v1.1.xml?emailaddress=ann%40example.org";
    let http = "http://autoconfig.example.org/mail/config-v1.1.xml?emailaddress=ann%40example.org";
    net.documents.insert(https.into(), document("imap.example.org", "smtp.example.org"));
    net.documents.insert(http.into(), document("evil.example.net", "evil.example.net"));
    let found = run(&net, "ann@example.org").await.unwrap();
    assert_eq!(found.imap, server("imap.example.org", 993, Security::Tls));
    assert_eq!(found.smtp, server("smtp.example.org", 465, Security::Tls));
    assert_eq!(found.provider.as_deref(), Some("Hosted"));
    assert_eq!(found.user, None, "the login name is the address itself");
    assert_eq!(found.source, "the autoconfig document at https://autoconfig.example.org/mail/config-v1.1.xml");
    assert!(!net.asked().iter().any(|a| a.contains("_tcp") || a.starts_with("MX")), "{:?}", net.asked());
}

#[tokio::test]
async fn the_well_known_place_and_plain_http_are_tried_and_plain_http_is_flagged() {
    let mut net = FakeNet::default();
    net.documents.insert(
        "http://example.org/.well-known/autoconfig/mail/config-v1.1.xml".into(),
        document("imap.example.org", "smtp.example.org"),
    );
    let found = run(&net, "ann@example.org").await.unwrap();
    assert!(found.source.contains("plain HTTP"), "{}", found.source);
    assert_eq!(found.imap.host, "imap.example.org");
}

#[tokio::test]
async fn where_to_sign_in_is_believed_only_over_https() {
    let with_sign_in = document("imap.example.org", "smtp.example.org").replace(
        "</emailProvider>",
        "</emailProvider><oAuth2><issuer>id.example.org</issuer><scope>mail</scope>\
         <authURL>https://id.example.org/a</authURL><tokenURL>https://id.example.org/t</tokenURL></oAuth2>",
    );
    let with_sign_in = with_sign_in.replace("</username>", "</username><authentication>OAuth2</authentication>");
    for (scheme, believed) in [("https", true), ("http", false)] {
        let mut net = FakeNet::default();
        let url = format!("{scheme}://example.org/.well-known/autoconfig/mail/config-v1.1.xml");
        net.documents.insert(url, with_sign_in.clone());
        let found = run(&net, "ann@example.org").await.unwrap();
        assert_eq!(found.oauth.is_some(), believed, "{scheme}");
        assert_eq!(found.oauth_only, believed, "{scheme}: the servers still come, and a password");
    }
}

#[tokio::test]
async fn srv_records_give_the_best_offered_servers_implicit_tls_first() {
    let mut net = FakeNet::default();
    net.srv.insert(
        "_imaps._tcp.example.org".into(),
        vec![srv(20, 0, 993, "backup.example.org"), srv(10, 5, 993, "imap.example.org")],
    );
    net.srv.insert("_imap._tcp.example.org".into(), vec![srv(0, 0, 143, "imap.example.org")]);
    // "." : no implicit-TLS submission here, so STARTTLS it is.
    net.srv.insert("_submissions._tcp.example.org".into(), vec![srv(0, 0, 0, "")]);
    net.srv.insert("_submission._tcp.example.org".into(), vec![srv(0, 0, 587, "smtp.example.org")]);
    let found = run(&net, "ann@example.org").await.unwrap();
    assert_eq!(found.imap, server("imap.example.org", 993, Security::Tls));
    assert_eq!(found.smtp, server("smtp.example.org", 587, Security::Starttls));
    assert_eq!(found.source, "the SRV records of example.org");
}

#[tokio::test]
async fn a_company_domain_on_microsoft_365_is_known_by_its_mail_exchanger() {
    let mut net = FakeNet::default();
    net.mx.insert("contoso.com".into(), vec!["contoso-com.mail.protection.outlook.com".into()]);
    let found = run(&net, "ann@contoso.com").await.unwrap();
    assert_eq!(found.provider.as_deref(), Some("Microsoft 365"));
    assert_eq!(found.imap.host, "outlook.office365.com");
    assert!(found.source.contains("contoso-com.mail.protection.outlook.com"));
}

#[tokio::test]
async fn the_mail_exchangers_domain_is_asked_for_its_autoconfig() {
    let mut net = FakeNet::default();
    net.mx.insert("ann.example".into(), vec!["mx1.hoster.net".into()]);
    net.documents.insert(
        "https://autoconfig.hoster.net/mail/config-v1.1.xml?emailaddress=ann%40ann.example".into(),
        document("imap.hoster.net", "smtp.hoster.net"),
    );
    let found = run(&net, "ann@ann.example").await.unwrap();
    assert_eq!(found.imap.host, "imap.hoster.net");
    assert!(found.source.contains("autoconfig.hoster.net"));
}

#[tokio::test]
async fn at_last_the_usual_names_that_answer_are_guessed() {
    let mut net = FakeNet::default();
    net.mx.insert("ann.example".into(), vec!["mx.hoster.net".into()]);
    net.open = vec![("mail.ann.example".into(), 143), ("imap.hoster.net".into(), 993), ("smtp.hoster.net".into(), 587)];
    let found = run(&net, "ann@ann.example").await.unwrap();
    // The address's own domain first, implicit TLS before STARTTLS.
    assert_eq!(found.imap, server("mail.ann.example", 143, Security::Starttls));
    assert_eq!(found.smtp, server("smtp.hoster.net", 587, Security::Starttls));
    assert!(found.source.starts_with("a guess"));
}

#[tokio::test]
async fn nothing_found_and_not_an_address_give_nothing() {
    let net = FakeNet::default();
    assert_eq!(run(&net, "ann@nowhere.example").await, None);
    for bad in ["no-at-sign", "@example.org", "ann@localhost", "ann@exa mple.org", "ann@-.x/y"] {
        let net = FakeNet::default();
        assert_eq!(run(&net, bad).await, None, "{bad}");
        assert!(net.asked().is_empty(), "{bad}: {:?}", net.asked());
    }
}

#[test]
fn the_domains_above_a_mail_exchanger() {
    assert_eq!(parents("mx1.mail.example.net."), ["mail.example.net", "example.net"]);
    assert_eq!(parents("mx.example.net"), ["example.net"]);
    assert!(parents("example.net").is_empty());
}
