//! Signing in with OAuth 2 (see `mail::oauth`): the sign-ins under way,
//! the access token kept in memory and renewed before it expires, and
//! "sign in again" once the issuer refuses the refresh token.
//!
//! ```text
//! start_sign_in ─▶ URL (the owner's browser) ─▶ issuer ─▶ loopback /oauth/callback
//!   ─▶ finish_sign_in: exchange ─▶ access token (memory), refresh token (saved
//!      as the account's secret) ─▶ setup, as with a password
//! keep_signed_in: refresh at half the lifetime ─▶ new access token ─▶ watchers
//!   reconnect with it; refused ─▶ sign_in_again
//! ```
//!
//! The stored secret of an OAuth account is its refresh token; what logs
//! in ([`NodeService::login`]) is the access token.

use std::time::Duration;

use super::{NodeService, SetupError};
use crate::api::{Account, EnrollmentView, Secret};
use crate::clock::now_ms;
use crate::mail::oauth::{self, Authorization, OAuthError};

/// Sign-ins under way at once; the oldest goes.
const MAX_PENDING: usize = 4;
/// How long a sign-in may take in the browser.
const PENDING_FOR_MS: u64 = 15 * 60 * 1000;
/// Waits between refresh attempts that failed for other reasons than a
/// refusal (the issuer unreachable).
const RETRY_EVERY: Duration = Duration::from_secs(60);

/// A sign-in started and not finished.
pub(super) struct Pending {
    account: Account,
    device_name: Option<String>,
    new_network: bool,
    authorization: Authorization,
    started_ms: u64,
}

/// The access token in use, and when it stops working.
#[derive(Default)]
pub(super) struct SignedIn {
    pub access: Option<(Secret, u64)>,
    pub pending: Vec<Pending>,
    /// The issuer refused the refresh token: the owner must sign in again.
    pub refused: bool,
    /// Answers being traded for tokens right now.
    pub finishing: usize,
    /// Why the last sign-in failed, until the next one starts.
    pub failed: Option<String>,
}

impl NodeService {
    /// The account and what logs in to it now: the password, or for an
    /// OAuth account the current access token.
    pub async fn login(&self) -> Option<(Account, Secret)> {
        let (account, secret) = self.account().await?;
        Some(self.login_for(account, secret))
    }

    pub fn login_for(&self, account: Account, secret: Secret) -> (Account, Secret) {
        if account.oauth.is_none() {
            return (account, secret);
        }
        let access = crate::sync::lock(&self.signed_in).access.as_ref().map(|(token, _)| token.clone());
        (account, access.unwrap_or_else(|| Secret::new(String::new())))
    }

    /// The mail servers for `account`, logging in as [`Self::login_for`] says.
    pub(super) fn mail_for(&self, account: &Account, secret: &Secret) -> Box<dyn crate::mailbox::MailAccount> {
        let (account, login) = self.login_for(account.clone(), secret.clone());
        (self.mail)(&account, &login)
    }

    /// Whether the owner must sign in again.
    pub fn sign_in_again(&self) -> bool {
        crate::sync::lock(&self.signed_in).refused
    }

    /// Whether a sign-in is under way, and why the last one failed.
    pub fn sign_in_progress(&self) -> (bool, Option<String>) {
        let mut signed_in = crate::sync::lock(&self.signed_in);
        let now = now_ms();
        signed_in.pending.retain(|p| now.saturating_sub(p.started_ms) < PENDING_FOR_MS);
        (!signed_in.pending.is_empty() || signed_in.finishing > 0, signed_in.failed.clone())
    }

    /// Starts signing in `account` (its `oauth` set): the URL to open in a
    /// browser. The answer comes to this engine's loopback endpoint.
    pub async fn start_sign_in(
        &self,
        account: Account,
        device_name: Option<String>,
        new_network: bool,
    ) -> Result<String, OAuthError> {
        let settings = account.oauth.clone().ok_or_else(|| OAuthError::Settings {
            issuer: account.email.clone(),
            detail: "the account has no OAuth settings".into(),
        })?;
        let redirect = format!("http://127.0.0.1:{}/oauth/callback", self.loopback_port);
        let authorization = oauth::authorize(&settings, redirect, &account.email)?;
        let url = authorization.url.clone();
        {
            let mut signed_in = crate::sync::lock(&self.signed_in);
            let now = now_ms();
            signed_in.pending.retain(|p| now.saturating_sub(p.started_ms) < PENDING_FOR_MS);
            if signed_in.pending.len() >= MAX_PENDING {
                signed_in.pending.remove(0);
            }
            signed_in.pending.push(Pending { account, device_name, new_network, authorization, started_ms: now });
            signed_in.failed = None;
        }
        self.changed().await;
        Ok(url)
    }

    /// The issuer's answer to a sign-in: trades the code for tokens, then
    /// sets the account up as a password would.
    pub async fn finish_sign_in(&self, state: &str, code: String) -> Result<EnrollmentView, String> {
        let pending = {
            let mut signed_in = crate::sync::lock(&self.signed_in);
            let at = signed_in.pending.iter().position(|p| p.authorization.state == state);
            let pending = at
                .map(|i| signed_in.pending.remove(i))
                .ok_or("no sign-in of this engine is waiting for that answer")?;
            signed_in.finishing += 1;
            pending
        };
        let outcome = self.sign_in_with(pending, code).await;
        {
            let mut signed_in = crate::sync::lock(&self.signed_in);
            signed_in.finishing -= 1;
            signed_in.failed = outcome.as_ref().err().cloned();
        }
        self.changed().await;
        outcome
    }

    async fn sign_in_with(&self, pending: Pending, code: String) -> Result<EnrollmentView, String> {
        let Pending { account, device_name, new_network, authorization, .. } = pending;
        let settings = account.oauth.clone().ok_or("the account has no OAuth settings")?;
        let tokens = oauth::exchange(&settings, account.tls_ca.as_deref(), authorization, code)
            .await
            .map_err(|e| e.to_string())?;
        let refresh = tokens.refresh.ok_or("the issuer gave no refresh token (was offline access granted?)")?;
        {
            let mut signed_in = crate::sync::lock(&self.signed_in);
            signed_in.access = Some((tokens.access, tokens.expires_ms));
            signed_in.refused = false;
        }
        let (login_account, login) = self.login_for(account.clone(), refresh.clone());
        let (imap, smtp) = crate::mail::test_logins(&login_account, &login).await;
        imap.map_err(|e| format!("IMAP: {e}"))?;
        smtp.map_err(|e| format!("SMTP: {e}"))?;
        // Signing in again (the last sign-in was revoked or expired): the
        // node keeps its place, only the token is new.
        let same = self.account().await.is_some_and(|(saved, _)| saved.email == account.email);
        if same && self.read(|s| s.enrollment.network().is_some()).await {
            {
                let mut state = self.lock().await;
                crate::account::save(&self.home, &account, &refresh).map_err(|e| e.to_string())?;
                state.account = Some((account, refresh));
            }
            self.account_saved();
            return Ok(self.enrollment_view().await);
        }
        self.setup(account, refresh, device_name, new_network).await.map_err(|e: SetupError| e.to_string())
    }

    /// Keeps an OAuth account's access token fresh, for as long as the
    /// engine runs: renewed at half its lifetime (so a slow issuer still
    /// answers before it expires), the mail watchers told to reconnect
    /// with the new one.
    pub async fn keep_signed_in(&self) {
        loop {
            let Some((account, refresh)) = self.account().await.filter(|(a, _)| a.oauth.is_some()) else {
                self.signin_changed.notified().await;
                continue;
            };
            let due = {
                let signed_in = crate::sync::lock(&self.signed_in);
                match &signed_in.access {
                    _ if signed_in.refused => None,
                    None => Some(0),
                    Some((_, expires)) => Some(now_ms() + expires.saturating_sub(now_ms()) / 2),
                }
            };
            let Some(due) = due else {
                self.signin_changed.notified().await;
                continue;
            };
            let wait = Duration::from_millis(due.saturating_sub(now_ms()));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.signin_changed.notified() => continue,
            }
            let Some(settings) = account.oauth.as_ref() else { continue };
            match oauth::refresh(settings, account.tls_ca.as_deref(), &refresh).await {
                Ok(tokens) => {
                    tracing::info!(issuer = %settings.issuer, "renewed the sign-in");
                    crate::sync::lock(&self.signed_in).access = Some((tokens.access, tokens.expires_ms));
                    if let Some(newer) = tokens.refresh.filter(|r| r != &refresh) {
                        self.replace_secret(newer).await;
                    }
                    // The watchers reconnect with the new token.
                    self.account_changed.notify_one();
                }
                Err(e @ OAuthError::Revoked(_)) => {
                    tracing::warn!("{e}");
                    crate::sync::lock(&self.signed_in).refused = true;
                    self.changed().await;
                }
                Err(e) => {
                    tracing::warn!("could not renew the sign-in: {e}; trying again");
                    tokio::time::sleep(RETRY_EVERY).await;
                }
            }
        }
    }

    /// Keeps a new refresh token the issuer handed out.
    async fn replace_secret(&self, secret: Secret) {
        let mut state = self.lock().await;
        let Some((account, _)) = state.account.clone() else { return };
        if let Err(e) = crate::account::save(&self.home, &account, &secret) {
            tracing::warn!("cannot keep the renewed sign-in: {e}");
            return;
        }
        state.account = Some((account, secret));
    }
}
