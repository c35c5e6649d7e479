//! This node's own standing: its mail account, its config and its place in
//! the owner's network, and everything that changes them — first setup,
//! confirmation, joining, roster changes and removals, most of it by mail.
//!
//! ```text
//! account_save ─▶ begin_confirmation (mail) ─▶ confirm (link or code) ─▶ enrolled
//!            └──▶ join_found_network ─▶ mailroom: join request ─▶ approval ─▶ proof ─▶ welcome
//! mailmesh mails from the watcher ─▶ on_mail (mailroom.rs, removal.rs)
//! every change ─▶ publish: Standing (services, mesh) + StatusChanged (clients)
//! ```
//!
//! [`NodeService`] is a service: it alone holds the [`NodeState`] (behind a
//! private async lock: changes are written to the home before they are
//! published), reaches the mail servers through a [`MailConnector`], and
//! publishes each change as a new [`Standing`] before it tells the
//! clients, so no one acts on the old one. Its unit tests (`tests.rs`) run
//! a join between two nodes through an in-memory mailbox.

mod filing;
mod mailroom;
mod password;
mod removal;
mod setup;
mod signin;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use mailmesh_core::identity::NodeSecrets;
use mailmesh_core::people::normalize_email;
use tokio::sync::{broadcast, watch, Mutex, MutexGuard, Notify};

use super::drive_net::DriveNet;
use super::standing::{Membership, Standing};
use crate::api::{Account, EnrollmentView, Event, Secret};
use crate::clock::now_ms;
use crate::config::Config;
use crate::enroll::{save_pending, start_confirmation, ConfirmationMail, Enrollment, Proof};
use crate::home::NodeHome;
use crate::mail::MailError;
use crate::mailbox::{MailAccount, MailConnector};
use crate::mesh::MeshIdentity;

/// What the node knows of itself that changes while it runs.
pub struct NodeState {
    pub config: Config,
    pub account: Option<(Account, Secret)>,
    pub enrollment: Enrollment,
}

impl NodeState {
    /// What services and the mesh are told of this node (published on
    /// every change).
    pub fn standing(&self) -> Standing {
        let network = self.enrollment.network().map(|network| Membership {
            key: network.key.clone(),
            members: network.roster.members().iter().map(|e| e.node.node_id()).collect(),
        });
        Standing {
            address: self.account.as_ref().map(|(a, _)| normalize_email(&a.email)),
            network,
            mesh: self.mesh_identity(),
        }
    }

    fn mesh_identity(&self) -> MeshIdentity {
        let network = self.enrollment.network();
        MeshIdentity {
            name: self.config.device_name.clone(),
            email: self.account.as_ref().map(|(a, _)| a.email.clone()).unwrap_or_default(),
            psk: network.map(|n| n.key.link_psk()),
            key_id: network.map(|n| n.key.key_id()),
            roster: network
                .map(|n| n.roster.members().into_iter().map(|e| (e.node.node_id(), e.device_name.clone())).collect())
                .unwrap_or_default(),
            removed: network.map(|n| n.roster.removed()).unwrap_or_default(),
            roster_bytes: network.map(|n| n.roster.encode()).unwrap_or_default(),
        }
    }
}

/// Why setting up the account went no further.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("this node is already confirmed")]
    AlreadyConfirmed,
    #[error("{0}")]
    Disk(String),
    #[error("{0}")]
    Mail(String),
}

pub struct NodeService {
    home: NodeHome,
    secrets: NodeSecrets,
    loopback_port: u16,
    state: Mutex<NodeState>,
    standing: watch::Sender<Standing>,
    events: broadcast::Sender<Event>,
    mail: MailConnector,
    drive: Arc<DriveNet>,
    /// Signalled when the mail account was saved or changed, for the mail
    /// watcher; `signin_changed` the same, for the sign-in keeper.
    account_changed: Notify,
    signin_changed: Notify,
    /// The networks setup found in the mailbox (shown while joining).
    networks_found: std::sync::Mutex<Vec<crate::api::NetworkFound>>,
    /// OAuth 2 sign-ins under way and the access token in use (`signin.rs`).
    signed_in: std::sync::Mutex<signin::SignedIn>,
}

impl NodeService {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        home: NodeHome,
        secrets: NodeSecrets,
        loopback_port: u16,
        state: NodeState,
        standing: watch::Sender<Standing>,
        events: broadcast::Sender<Event>,
        mail: MailConnector,
        drive: Arc<DriveNet>,
    ) -> NodeService {
        standing.send_replace(state.standing());
        NodeService {
            home,
            secrets,
            loopback_port,
            state: Mutex::new(state),
            standing,
            events,
            mail,
            drive,
            account_changed: Notify::new(),
            signin_changed: Notify::new(),
            networks_found: Default::default(),
            signed_in: Default::default(),
        }
    }

    /// Reads the state (briefly: the lock is held while `read` runs).
    pub async fn read<T>(&self, read: impl FnOnce(&NodeState) -> T) -> T {
        read(&*self.state.lock().await)
    }

    /// Changes how the import behaves in `config.json` (checked whole).
    pub async fn change_import_settings(&self, change: &crate::api::ImportSettingsChange) -> Result<(), String> {
        let mut state = self.lock().await;
        let mut config = state.config.clone();
        crate::engine::import::settings::apply(&mut config, change).map_err(|e| e.to_string())?;
        crate::config::save(&self.home, &config).map_err(|e| e.to_string())?;
        state.config = config;
        Ok(())
    }

    pub async fn account(&self) -> Option<(Account, Secret)> {
        self.state.lock().await.account.clone()
    }

    /// Waits until the account is saved or changed, or its sign-in renewed
    /// (for the mail watcher, the one waiter).
    pub async fn account_changed(&self) {
        self.account_changed.notified().await
    }

    /// Tells the mail watcher and the sign-in keeper the account changed.
    fn account_saved(&self) {
        self.account_changed.notify_one();
        self.signin_changed.notify_one();
    }

    /// After a change: the services and the mesh get the new standing at
    /// once (before anyone can act on the old one), then the clients hear.
    fn publish(&self, state: &NodeState) {
        self.standing.send_replace(state.standing());
        let _ = self.events.send(Event::StatusChanged);
    }

    /// [`NodeService::publish`] for callers not holding the state.
    async fn changed(&self) {
        let state = self.state.lock().await;
        self.publish(&state);
    }

    async fn lock(&self) -> MutexGuard<'_, NodeState> {
        self.state.lock().await
    }

    pub async fn enrollment_view(&self) -> EnrollmentView {
        let state = self.state.lock().await;
        EnrollmentView {
            state: state.enrollment.state().to_string(),
            email: state.account.as_ref().map(|(a, _)| a.email.clone()),
            network_id: state.enrollment.network().map(|n| n.roster.network_id()),
            networks_found: match state.enrollment {
                Enrollment::Joining(_) => self.networks_found(),
                _ => Vec::new(),
            },
        }
    }

    /// While joining, the networks setup found in the mailbox.
    pub fn networks_found(&self) -> Vec<crate::api::NetworkFound> {
        crate::sync::lock(&self.networks_found).clone()
    }

    /// The saved account's mail, or why there is none.
    async fn mail(&self) -> Result<Box<dyn MailAccount>, MailError> {
        let (account, password) =
            self.login().await.ok_or_else(|| MailError::Protocol("no mail account is set up".into()))?;
        Ok((self.mail)(&account, &password))
    }

    /// Sets the device name (trimmed, bounded) if one is given.
    fn set_device_name(&self, config: &mut Config, name: Option<String>) -> Result<(), SetupError> {
        if let Some(name) = name.map(|n| mailmesh_core::names::visible(&n)).filter(|n| !n.is_empty()) {
            config.device_name = name.chars().take(mailmesh_core::roster::MAX_DEVICE_NAME).collect();
            crate::config::save(&self.home, config).map_err(|e| SetupError::Disk(e.to_string()))?;
        }
        Ok(())
    }

    /// A network exists in the mailbox: save the account and ask to join it.
    pub async fn join_found_network(
        &self,
        account: Account,
        password: Secret,
        device_name: Option<String>,
    ) -> Result<EnrollmentView, SetupError> {
        {
            let mut state = self.lock().await;
            if state.enrollment.network().is_some() {
                return Err(SetupError::AlreadyConfirmed);
            }
            self.set_device_name(&mut state.config, device_name)?;
            crate::account::save(&self.home, &account, &password).map_err(|e| SetupError::Disk(e.to_string()))?;
            state.account = Some((account, password));
        }
        self.account_saved();
        self.start_join().await.map_err(|e| SetupError::Mail(format!("the join request could not be sent: {e}")))?;
        Ok(self.enrollment_view().await)
    }

    /// No network yet: mail the owner a confirmation for this node, and
    /// keep the account once the mail is out.
    pub async fn begin_confirmation(
        &self,
        account: Account,
        password: Secret,
        device_name: Option<String>,
    ) -> Result<EnrollmentView, SetupError> {
        let (pending, message) = {
            let mut state = self.lock().await;
            if state.enrollment.network().is_some() {
                return Err(SetupError::AlreadyConfirmed);
            }
            self.set_device_name(&mut state.config, device_name)?;
            let fingerprint = self.secrets.node_id().fingerprint();
            let mail = ConfirmationMail {
                account: &account,
                device_name: &state.config.device_name,
                fingerprint: &fingerprint,
                loopback_port: self.loopback_port,
            };
            start_confirmation(mail, now_ms()).map_err(|e| SetupError::Disk(e.to_string()))?
        };
        // Sent without holding the state, so status requests stay quick.
        self.mail_for(&account, &password)
            .send(message)
            .await
            .map_err(|e| SetupError::Mail(format!("the confirmation mail could not be sent: {e}")))?;
        tracing::info!(email = %account.email, "confirmation mail sent");
        {
            let mut state = self.lock().await;
            crate::account::save(&self.home, &account, &password).map_err(|e| SetupError::Disk(e.to_string()))?;
            save_pending(&self.home, &pending).map_err(|e| SetupError::Disk(e.to_string()))?;
            // A join asked for before the owner chose a new network instead.
            crate::joining::remove_joining(&self.home);
            state.account = Some((account, password));
            state.enrollment = Enrollment::Pending(pending);
            self.publish(&state);
        }
        self.account_saved();
        Ok(self.enrollment_view().await)
    }

    /// Confirms this node with a link token or a typed code.
    pub async fn confirm(&self, proof: Proof<'_>) -> Result<EnrollmentView, crate::enroll::EnrollError> {
        {
            let mut guard = self.lock().await;
            let state = &mut *guard;
            state.enrollment.confirm(&self.home, &self.secrets, &state.config.device_name, proof, now_ms())?;
            self.publish(state);
        }
        // Later devices find the network by this roster in the mailbox.
        self.announce_roster().await;
        Ok(self.enrollment_view().await)
    }

    /// A typed code: for a pending removal, a join, or this node's own
    /// confirmation, whichever waits for one.
    pub async fn confirm_code(&self, code: &str) -> Result<EnrollmentView, String> {
        let joining = matches!(self.lock().await.enrollment, Enrollment::Joining(_));
        if self.removal_pending() {
            self.confirm_removal(Proof::Code(code)).await?;
        } else if joining {
            self.confirm_join(code).await?;
        } else {
            self.confirm(Proof::Code(code)).await.map_err(|e| e.to_string())?;
        }
        Ok(self.enrollment_view().await)
    }
}
