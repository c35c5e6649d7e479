//! Signing in with OAuth 2 where a provider takes no passwords (Outlook.com,
//! Microsoft 365) or prefers not to (Gmail): the authorization-code flow
//! with PKCE, the code brought back to the engine's loopback endpoint, the
//! refresh token kept where the password would be (0600, a [`Secret`],
//! never logged), and XOAUTH2 for IMAP and SMTP with the access token.
//!
//! ```text
//! authorize (URL, state, PKCE verifier) ─▶ the owner's browser ─▶ issuer
//!   ─▶ http://127.0.0.1:PORT/oauth/callback?code&state ─▶ exchange ─▶ Tokens
//! Tokens.refresh ─▶ refresh (before the access token expires) ─▶ Tokens
//! ```
//!
//! Who this program is to an issuer (its client id) is configuration:
//! a file per issuer shipped in `oauth-clients/`, overridden by
//! `HOME/oauth-clients/ISSUER.json` (see the README for registering one).

use std::path::{Path, PathBuf};
use std::time::Duration;

use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl,
    RefreshToken, RequestTokenError, Scope, TokenResponse, TokenUrl,
};
use serde::Deserialize;
use thiserror::Error;

use crate::api::{OAuth, Secret};
use crate::home::NodeHome;

const HTTP_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Error)]
pub enum OAuthError {
    #[error(
        "mailmesh has no client id for {issuer}: register mailmesh with {issuer} (see the README, \"Sign in with OAuth 2\") and put its client id in {file}"
    )]
    NoClient { issuer: String, file: String },
    #[error("the sign-in with {0} expired or was revoked: sign in again")]
    Revoked(String),
    #[error("the sign-in with {issuer} failed: {detail}")]
    Failed { issuer: String, detail: String },
    #[error("the OAuth settings of {issuer} are not usable: {detail}")]
    Settings { issuer: String, detail: String },
}

/// What an issuer's token endpoint gave.
pub struct Tokens {
    pub access: Secret,
    /// Issuers may hand out a new refresh token with each refresh.
    pub refresh: Option<Secret>,
    /// When the access token stops working (unix ms).
    pub expires_ms: u64,
}

/// A client file: who mailmesh is to one issuer, and where it is.
#[derive(Debug, Default, Deserialize)]
struct ClientFile {
    client_id: Option<String>,
    client_secret: Option<String>,
    auth_url: Option<String>,
    token_url: Option<String>,
    scopes: Option<Vec<String>>,
}

/// The client files shipped with mailmesh.
const SHIPPED: &[(&str, &str)] = &[
    ("login.microsoftonline.com", include_str!("../../oauth-clients/login.microsoftonline.com.json")),
    ("accounts.google.com", include_str!("../../oauth-clients/accounts.google.com.json")),
];

/// Where an owner or distributor puts their own client file for `issuer`.
pub fn override_file(home: &NodeHome, issuer: &str) -> PathBuf {
    home.root().join("oauth-clients").join(format!("{issuer}.json"))
}

/// The OAuth settings for `issuer`: what discovery found (URLs, scopes),
/// completed and overridden by the client file.
pub fn settings(home: &NodeHome, issuer: &str, found: Option<OAuth>) -> Result<OAuth, OAuthError> {
    let bad = |detail: String| OAuthError::Settings { issuer: issuer.to_string(), detail };
    let file = override_file(home, issuer);
    let client: ClientFile = match std::fs::read(&file) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| bad(format!("{}: {e}", file.display())))?,
        Err(_) => SHIPPED
            .iter()
            .find(|(name, _)| *name == issuer)
            .map(|(_, text)| serde_json::from_str(text).map_err(|e| bad(e.to_string())))
            .transpose()?
            .unwrap_or_default(),
    };
    let no_client = || OAuthError::NoClient { issuer: issuer.to_string(), file: file.display().to_string() };
    let client_id = client.client_id.filter(|id| !id.is_empty()).ok_or_else(no_client)?;
    let found = found.as_ref();
    let given = |pick: fn(&OAuth) -> &String| found.map(pick).filter(|s| !s.is_empty()).cloned();
    let auth_url =
        client.auth_url.or_else(|| given(|f| &f.auth_url)).ok_or_else(|| bad("no authorization URL".into()))?;
    let token_url = client.token_url.or_else(|| given(|f| &f.token_url)).ok_or_else(|| bad("no token URL".into()))?;
    Ok(OAuth {
        issuer: issuer.to_string(),
        auth_url,
        token_url,
        scopes: client.scopes.or_else(|| found.map(|f| f.scopes.clone()).filter(|s| !s.is_empty())).unwrap_or_default(),
        client_id,
        client_secret: client.client_secret,
    })
}

/// A sign-in under way: the URL to open, and what checks its answer.
pub struct Authorization {
    pub url: String,
    /// The `state` the answer must carry (against forged callbacks).
    pub state: String,
    verifier: PkceCodeVerifier,
    redirect: String,
}

/// Starts a sign-in whose answer comes to `redirect`.
pub fn authorize(oauth: &OAuth, redirect: String, login_hint: &str) -> Result<Authorization, OAuthError> {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let client = BasicClient::new(ClientId::new(oauth.client_id.clone()))
        .set_auth_uri(AuthUrl::new(oauth.auth_url.clone()).map_err(|e| unusable(oauth, e))?)
        .set_redirect_uri(RedirectUrl::new(redirect.clone()).map_err(|e| unusable(oauth, e))?);
    let (url, state) = client
        .authorize_url(CsrfToken::new_random)
        .add_scopes(oauth.scopes.iter().cloned().map(Scope::new))
        .add_extra_param("login_hint", login_hint)
        .set_pkce_challenge(challenge)
        .url();
    Ok(Authorization { url: url.to_string(), state: state.secret().clone(), verifier, redirect })
}

/// Trades the code the issuer sent back for tokens.
pub async fn exchange(
    oauth: &OAuth,
    tls_ca: Option<&Path>,
    sign_in: Authorization,
    code: String,
) -> Result<Tokens, OAuthError> {
    let http = http(oauth, tls_ca)?;
    let client =
        token_client(oauth)?.set_redirect_uri(RedirectUrl::new(sign_in.redirect).map_err(|e| unusable(oauth, e))?);
    let answer = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(sign_in.verifier)
        .request_async(&http)
        .await
        .map_err(|e| failed(oauth, e))?;
    Ok(tokens(&answer))
}

/// A new access token for the refresh token.
pub async fn refresh(oauth: &OAuth, tls_ca: Option<&Path>, refresh: &Secret) -> Result<Tokens, OAuthError> {
    let http = http(oauth, tls_ca)?;
    let token = RefreshToken::new(refresh.expose().to_string());
    let answer =
        token_client(oauth)?.exchange_refresh_token(&token).request_async(&http).await.map_err(|e| failed(oauth, e))?;
    Ok(tokens(&answer))
}

fn token_client(
    oauth: &OAuth,
) -> Result<
    BasicClient<
        oauth2::EndpointNotSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointSet,
    >,
    OAuthError,
> {
    let mut client = BasicClient::new(ClientId::new(oauth.client_id.clone()))
        .set_token_uri(TokenUrl::new(oauth.token_url.clone()).map_err(|e| unusable(oauth, e))?);
    if let Some(secret) = &oauth.client_secret {
        client = client.set_client_secret(ClientSecret::new(secret.clone()));
    }
    Ok(client)
}

fn tokens(answer: &oauth2::basic::BasicTokenResponse) -> Tokens {
    // Without a lifetime, assume an hour, the common one.
    let lifetime = answer.expires_in().unwrap_or(Duration::from_secs(3600));
    Tokens {
        access: Secret::new(answer.access_token().secret().clone()),
        refresh: answer.refresh_token().map(|r| Secret::new(r.secret().clone())),
        expires_ms: crate::clock::now_ms().saturating_add(lifetime.as_millis() as u64),
    }
}

/// The token endpoint's HTTP client: the account's CA trusted, and no
/// redirects (a token request must not be sent on elsewhere).
fn http(oauth: &OAuth, tls_ca: Option<&Path>) -> Result<reqwest::Client, OAuthError> {
    let tls = super::tls::trusting(tls_ca).map_err(|e| unusable(oauth, e))?;
    reqwest::Client::builder()
        .use_preconfigured_tls((*tls).clone())
        .timeout(HTTP_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| unusable(oauth, e))
}

fn unusable(oauth: &OAuth, e: impl std::fmt::Display) -> OAuthError {
    OAuthError::Settings { issuer: oauth.issuer.clone(), detail: e.to_string() }
}

fn failed<RE: std::error::Error + 'static>(
    oauth: &OAuth,
    e: RequestTokenError<RE, oauth2::basic::BasicErrorResponse>,
) -> OAuthError {
    match e {
        RequestTokenError::ServerResponse(answer) if *answer.error() == BasicErrorResponseType::InvalidGrant => {
            OAuthError::Revoked(oauth.issuer.clone())
        }
        RequestTokenError::ServerResponse(answer) => OAuthError::Failed {
            issuer: oauth.issuer.clone(),
            detail: answer.error_description().cloned().unwrap_or_else(|| answer.error().to_string()),
        },
        other => OAuthError::Failed { issuer: oauth.issuer.clone(), detail: error_chain(&other) },
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// A SASL mechanism that carries an OAuth 2 bearer token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bearer {
    /// Google's and Microsoft's, offered nearly everywhere.
    XOAuth2,
    /// RFC 7628's, used where the server offers it.
    OAuthBearer,
}

impl Bearer {
    pub fn name(self) -> &'static str {
        match self {
            Bearer::XOAuth2 => "XOAUTH2",
            Bearer::OAuthBearer => "OAUTHBEARER",
        }
    }

    /// The initial response for `user` with `token` at `host:port`.
    pub fn response(self, user: &str, token: &Secret, host: &str, port: u16) -> String {
        let token = token.expose();
        match self {
            Bearer::XOAuth2 => format!("user={user}\x01auth=Bearer {token}\x01\x01"),
            Bearer::OAuthBearer => format!("n,a={user},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01"),
        }
    }
}

/// A bearer mechanism for async-imap's AUTHENTICATE: the response to the
/// first challenge; after a refusal (a challenge with the error) what the
/// mechanism answers so the server can say NO (empty, or %x01).
pub struct BearerAuth {
    pub bearer: Bearer,
    pub response: String,
    pub sent: bool,
}

impl async_imap::Authenticator for &mut BearerAuth {
    type Response = String;
    fn process(&mut self, _challenge: &[u8]) -> String {
        if !std::mem::replace(&mut self.sent, true) {
            return self.response.clone();
        }
        match self.bearer {
            Bearer::XOAuth2 => String::new(),
            Bearer::OAuthBearer => "\x01".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found() -> OAuth {
        OAuth {
            issuer: "id.example.org".into(),
            auth_url: "https://id.example.org/authorize".into(),
            token_url: "https://id.example.org/token".into(),
            scopes: vec!["mail".into(), "offline_access".into()],
            client_id: String::new(),
            client_secret: None,
        }
    }

    #[test]
    fn without_a_client_id_the_error_says_where_one_goes() {
        let dir = tempfile::tempdir().unwrap();
        let home = NodeHome::at(dir.path());
        let Err(e) = settings(&home, "id.example.org", Some(found())) else { panic!("a client id out of nowhere") };
        let text = e.to_string();
        assert!(text.contains("no client id for id.example.org"), "{text}");
        assert!(text.contains("oauth-clients/id.example.org.json"), "{text}");
        // Microsoft's shipped file has its endpoints but no registration yet.
        assert!(matches!(settings(&home, "login.microsoftonline.com", None), Err(OAuthError::NoClient { .. })));
    }

    #[test]
    fn the_override_file_gives_the_client_and_discovery_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let home = NodeHome::at(dir.path());
        std::fs::create_dir_all(dir.path().join("oauth-clients")).unwrap();
        std::fs::write(override_file(&home, "id.example.org"), r#"{"client_id": "mine"}"#).unwrap();
        let oauth = settings(&home, "id.example.org", Some(found())).unwrap();
        assert_eq!((oauth.client_id.as_str(), oauth.token_url.as_str()), ("mine", "https://id.example.org/token"));
        assert_eq!(oauth.scopes, ["mail", "offline_access"]);
        std::fs::write(override_file(&home, "id.example.org"), "not json").unwrap();
        assert!(matches!(settings(&home, "id.example.org", Some(found())), Err(OAuthError::Settings { .. })));
    }

    #[test]
    fn the_sign_in_address_carries_pkce_state_and_the_address() {
        let oauth = OAuth { client_id: "mine".into(), ..found() };
        let sign_in = authorize(&oauth, "http://127.0.0.1:4000/oauth/callback".into(), "ann@example.org").unwrap();
        let url = reqwest::Url::parse(&sign_in.url).unwrap();
        let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(query["code_challenge_method"], "S256");
        assert_eq!(query["state"], sign_in.state);
        assert_eq!(query["login_hint"], "ann@example.org");
        assert_eq!(query["redirect_uri"], "http://127.0.0.1:4000/oauth/callback");
        assert_eq!(query["scope"], "mail offline_access");
        let other = authorize(&oauth, "http://127.0.0.1:4000/oauth/callback".into(), "ann@example.org").unwrap();
        assert_ne!(other.state, sign_in.state, "each sign-in has its own state");
    }

    #[test]
    fn the_bearer_responses_carry_user_and_token() {
        let token = Secret::new("t0k".into());
        assert_eq!(
            Bearer::XOAuth2.response("ann@example.org", &token, "imap.example.org", 993),
            "user=ann@example.org\x01auth=Bearer t0k\x01\x01"
        );
        assert_eq!(
            Bearer::OAuthBearer.response("ann@example.org", &token, "imap.example.org", 993),
            "n,a=ann@example.org,\x01host=imap.example.org\x01port=993\x01auth=Bearer t0k\x01\x01"
        );
    }
}
