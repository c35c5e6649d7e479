//! The mail password after a removal: the removed (say stolen) device knew
//! it, and with it could read the mailbox. Every remaining device says so
//! until the owner gives the new password on one of them (`mailmesh
//! account password`, the popup or app), which is tried before it replaces
//! the stored one and is then handed to the other devices over member links
//! (`node.password`, `mailmesh_core::password`): each stores the newest once
//! its own login with it works.

use mailmesh_core::password::PasswordUpdate;

use super::NodeService;
use crate::api::Secret;
use crate::clock::now_ms;

impl NodeService {
    /// A device was removed: ask the owner to change the mail password.
    pub(super) async fn advise_password_change(&self) {
        let mut state = self.state.lock().await;
        if state.config.change_password {
            return;
        }
        state.config.change_password = true;
        if let Err(e) = crate::config::save(&self.home, &state.config) {
            tracing::warn!("cannot note that the mail password should change: {e}");
        }
        self.publish(&state);
    }

    /// The owner gave the new mail password here: stored once the server
    /// takes it.
    pub async fn change_password(&self, password: Secret) -> Result<(), String> {
        self.store_password(password, now_ms()).await
    }

    /// A password another of the owner's devices was given: stored if it is
    /// newer than ours and the server takes it.
    pub async fn on_password_update(&self, payload: &[u8]) -> Result<(), String> {
        let update = PasswordUpdate::decode(payload).map_err(|e| e.to_string())?;
        if update.set_ms <= self.state.lock().await.config.password_set_ms {
            return Ok(());
        }
        self.store_password(Secret::new(update.password), update.set_ms).await
    }

    /// What to hand the owner's other devices, if the password was ever
    /// given after a removal.
    pub async fn password_update(&self) -> Option<Vec<u8>> {
        let state = self.state.lock().await;
        let (_, password) = state.account.as_ref()?;
        let set_ms = state.config.password_set_ms;
        (set_ms > 0).then(|| PasswordUpdate { set_ms, password: password.expose().to_string() }.encode())
    }

    async fn store_password(&self, password: Secret, set_ms: u64) -> Result<(), String> {
        let (account, _) = self.account().await.ok_or("no mail account is set up")?;
        if account.oauth.is_some() {
            return Err("this account signs in with OAuth 2, not a password: sign in again instead".into());
        }
        (self.mail)(&account, &password).login().await.map_err(|e| e.to_string())?;
        {
            let mut state = self.state.lock().await;
            crate::account::save(&self.home, &account, &password).map_err(|e| e.to_string())?;
            state.account = Some((account, password));
            state.config.change_password = false;
            state.config.password_set_ms = set_ms;
            crate::config::save(&self.home, &state.config).map_err(|e| e.to_string())?;
            self.publish(&state);
        }
        // The watcher logs in again with it.
        self.account_saved();
        tracing::info!("stored the new mail password");
        Ok(())
    }
}
