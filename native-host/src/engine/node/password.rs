//! The mail password after a removal: the removed (say stolen) device knew
//! it, and with it could read the mailbox. Every remaining device says so
//! until the owner gives the new password (`mailmesh account password`,
//! the app), which is tried before it replaces the stored one.

use super::NodeService;
use crate::api::Secret;

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

    /// Stores the new mail password once the server takes it.
    pub async fn change_password(&self, password: Secret) -> Result<(), String> {
        let (account, _) = self.account().await.ok_or("no mail account is set up")?;
        (self.mail)(&account, &password).login().await.map_err(|e| e.to_string())?;
        {
            let mut state = self.state.lock().await;
            crate::account::save(&self.home, &account, &password).map_err(|e| e.to_string())?;
            state.account = Some((account, password));
            state.config.change_password = false;
            crate::config::save(&self.home, &state.config).map_err(|e| e.to_string())?;
            self.publish(&state);
        }
        // The watcher logs in again with it.
        self.account_changed.notify_one();
        tracing::info!("stored the new mail password");
        Ok(())
    }
}
