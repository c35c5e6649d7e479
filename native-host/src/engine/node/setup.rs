//! First setup on a device: the networks already in the mailbox, and the
//! owner's choice between joining one and creating a new one.
//!
//! Anyone can mail the owner a valid-looking roster of a network of their
//! own, so finding one must not force a join: the networks found are shown
//! (their members' names and fingerprints), and `new_network` (`mailmesh
//! init --new-network`, onboarding's "Create a new network instead")
//! creates the owner's own.

use std::collections::BTreeMap;

use mailmesh_core::roster::Roster;

use super::{NodeService, SetupError};
use crate::api::{Account, EnrollmentView, NetworkFound, Secret};
use crate::enroll::{roster_members, Enrollment};
use crate::mail::MailError;
use crate::mailbox::Kind;

/// Networks listed at most (each is one roster someone mailed).
const MAX_NETWORKS_SHOWN: usize = 8;

impl NodeService {
    /// The networks whose valid rosters are in the mailbox: one entry per
    /// network, from its longest roster.
    pub async fn networks_in_mailbox(
        &self,
        account: &Account,
        password: &Secret,
    ) -> Result<Vec<NetworkFound>, MailError> {
        let found = self.mail_for(account, password).mailmesh_mails(&[Kind::Roster]).await?;
        if found.iter().any(|mail| mail.from_older_version) {
            self.heard_older_version().await;
        }
        let mut networks: BTreeMap<String, Roster> = BTreeMap::new();
        for mail in found {
            let Ok(roster) = Roster::decode(&mail.payload) else { continue };
            if roster.verify().is_err() {
                continue;
            }
            let id = roster.network_id();
            let longer = networks.get(&id).is_none_or(|known| roster.entries().len() > known.entries().len());
            if longer && (networks.contains_key(&id) || networks.len() < MAX_NETWORKS_SHOWN) {
                networks.insert(id, roster);
            }
        }
        Ok(networks
            .into_iter()
            .map(|(network_id, roster)| NetworkFound { network_id, members: roster_members(&roster) })
            .collect())
    }

    /// Saves the account and either asks to join the network the mailbox
    /// holds or, with none there or `new_network`, mails the confirmation
    /// that creates one.
    pub async fn setup(
        &self,
        account: Account,
        password: Secret,
        device_name: Option<String>,
        new_network: bool,
    ) -> Result<EnrollmentView, SetupError> {
        let found =
            self.networks_in_mailbox(&account, &password).await.map_err(|e| SetupError::Mail(format!("IMAP: {e}")))?;
        if found.is_empty() || new_network {
            *crate::sync::lock(&self.networks_found) = Vec::new();
            return self.begin_confirmation(account, password, device_name).await;
        }
        *crate::sync::lock(&self.networks_found) = found;
        self.join_found_network(account, password, device_name).await
    }

    /// The owner did not recognise the network this device asked to join:
    /// create a new one with the saved account instead.
    pub async fn start_new_network(&self) -> Result<EnrollmentView, SetupError> {
        let (account, password) =
            self.account().await.ok_or_else(|| SetupError::Mail("no mail account is set up".into()))?;
        if !self.read(|s| matches!(s.enrollment, Enrollment::Joining(_))).await {
            return Err(SetupError::Mail("this device is not joining a network".into()));
        }
        *crate::sync::lock(&self.networks_found) = Vec::new();
        self.begin_confirmation(account, password, None).await
    }
}
