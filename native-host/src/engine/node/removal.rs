//! Removing a device: the owner confirms by mail, the remaining members get
//! a new network key (`Rekey`, sealed to each of them), and the removed
//! device learns from the roster that it is out.

use mailmesh_core::confirm::PendingConfirmation;
use mailmesh_core::confirm::{code_text, token_text};
use mailmesh_core::drive::NetworkKey;
use mailmesh_core::join::{Rekey, SealedKey};
use mailmesh_core::roster::Roster;

use super::mailroom::removes_us;
use super::{NodeService, NodeState};
use crate::clock::now_ms;
use crate::enroll::{Enrollment, Proof};
use crate::joining::{self, Removal};
use crate::mailbox::Kind;

impl NodeService {
    /// Asks the owner, by mail, to confirm removing `node_id`.
    pub async fn request_removal(&self, node_id: &str) -> Result<(), String> {
        let (name, fingerprint) = {
            let state = self.state.lock().await;
            let network = state.enrollment.network().ok_or("this node is not in a network")?;
            let entry = network
                .roster
                .members()
                .into_iter()
                .find(|e| e.node.node_id().to_string() == node_id.replace('-', ""))
                .ok_or_else(|| format!("{node_id} is not one of your devices"))?;
            if entry.node.node_id() == self.secrets.node_id() {
                return Err("a device cannot remove itself; run this on one of your other devices".into());
            }
            (entry.device_name.clone(), entry.node.node_id())
        };
        let token = token_text(&crate::rng::bytes_or_zeros());
        let code = code_text(&crate::rng::bytes_or_zeros());
        let pending = PendingConfirmation::new(&token, &code, now_ms(), crate::enroll::confirm_ttl_ms());
        let me = self.state.lock().await.config.device_name.clone();
        let text = format!(
            "Your device \"{me}\" asks you to confirm removing the device \"{name}\" (fingerprint {}) from your mailmesh network.\n\n\
             To confirm, open this link on \"{me}\":\n\n    http://127.0.0.1:{}/remove/{token}\n\n\
             or confirm there with this code (`mailmesh confirm CODE`):\n\n    {code}\n\n\
             The removed device gets no new keys after that.\n\
             The link and the code work once, within 15 minutes. If you did not ask for this, ignore this mail.\n",
            fingerprint.fingerprint(),
            self.loopback_port
        );
        let subject = format!("Remove {name} from mailmesh?");
        let Some((account, _)) = self.account().await else {
            return Err("no mail account is set up".into());
        };
        let message = crate::enroll::plain_mail(&account, &subject, text).map_err(|e| e.to_string())?;
        self.mail().await.map_err(|e| e.to_string())?.send(message).await.map_err(|e| e.to_string())?;
        let removal = Removal {
            version: joining::STATE_VERSION,
            node_id: fingerprint.to_string(),
            pending: hex::encode(pending.encode()),
        };
        joining::save_removal(&self.home, &removal).map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Whether a removal waits for the owner's confirmation.
    pub fn removal_pending(&self) -> bool {
        joining::load_removal(&self.home).ok().flatten().is_some()
    }

    /// Checks the owner's link token or code; on success removes the node,
    /// draws a new network key and mails it to the remaining members only.
    pub async fn confirm_removal(&self, proof: Proof<'_>) -> Result<(), String> {
        let removal = joining::load_removal(&self.home).map_err(|e| e.to_string())?.ok_or("no removal is pending")?;
        let mut pending = hex::decode(&removal.pending)
            .ok()
            .and_then(|b| PendingConfirmation::decode(&b).ok())
            .ok_or("the pending removal is damaged")?;
        let outcome = match proof {
            Proof::Token(t) => pending.confirm_token(t, now_ms()),
            Proof::Code(c) => pending.confirm_code(c, now_ms()),
        };
        let saved = Removal { pending: hex::encode(pending.encode()), ..removal.clone() };
        joining::save_removal(&self.home, &saved).map_err(|e| e.to_string())?;
        outcome.map_err(|e| e.to_string())?;

        let payload = {
            let mut state = self.state.lock().await;
            let NodeState { enrollment: Enrollment::Enrolled(network), .. } = &mut *state else {
                return Err("this node is not in a network".into());
            };
            let node = network
                .roster
                .members()
                .into_iter()
                .map(|e| e.node.node_id())
                .find(|id| id.to_string() == removal.node_id)
                .ok_or("that device is no longer a member")?;
            network.roster.remove(&self.secrets, &node, now_ms()).map_err(|e| e.to_string())?;
            let new_key = NetworkKey::from_bytes(crate::rng::bytes_or_zeros());
            self.rewrap_drive(&network.key, &new_key);
            network.key = new_key;
            let keys = network
                .roster
                .members()
                .into_iter()
                .map(|e| {
                    SealedKey::seal(&e.node, &network.key, crate::rng::bytes_or_zeros(), crate::rng::bytes_or_zeros())
                })
                .collect();
            let rekey = Rekey { signer: self.secrets.node_id(), roster: network.roster.encode(), keys };
            state.enrollment.save_roster(&self.home).map_err(|e| e.to_string())?;
            state.enrollment.save_key(&self.home).map_err(|e| e.to_string())?;
            rekey.encode(&self.secrets)
        };
        joining::remove_removal(&self.home);
        self.changed().await;
        let text =
            "A device was removed from your mailmesh network; this mail carries the new network key for the others.\n"
                .to_string();
        self.send_mail(Kind::Rekey, "mailmesh: new network key", text, payload).await.map_err(|e| e.to_string())?;
        tracing::info!(node = %removal.node_id, "removed a device and rotated the network key");
        Ok(())
    }

    /// Rewraps the drive's file keys under a new network key (before the
    /// key is saved: the rewrap is idempotent, so a crash in between is
    /// finished when the rekey is handled again).
    fn rewrap_drive(&self, old: &NetworkKey, new: &NetworkKey) {
        match self.drive.drive().rewrap(old, new) {
            Ok(0) => {}
            Ok(n) => tracing::info!(files = n, "rewrapped the drive's file keys under the new network key"),
            Err(e) => tracing::warn!("could not rewrap the drive under the new network key: {e}"),
        }
    }

    pub(super) async fn on_rekey(&self, payload: &[u8]) -> Result<(), String> {
        let (rekey, signature) = Rekey::decode(payload).map_err(|e| e.to_string())?;
        let roster = Roster::decode(&rekey.roster).map_err(|e| e.to_string())?;
        roster.verify().map_err(|e| e.to_string())?;
        let signer = roster
            .members()
            .into_iter()
            .find(|e| e.node.node_id() == rekey.signer)
            .map(|e| e.node)
            .ok_or("signed by a device that is not a member")?;
        rekey.verify(&signature, &signer).map_err(|e| e.to_string())?;
        let mut state = self.state.lock().await;
        let NodeState { enrollment: Enrollment::Enrolled(network), .. } = &mut *state else {
            return Err("not a member".into());
        };
        if removes_us(&roster, &network.roster, &self.secrets.node_id())? {
            return self.mark_removed(state, roster);
        }
        let new_key = rekey.open(&self.secrets).map_err(|e| e.to_string())?;
        self.rewrap_drive(&network.key, &new_key);
        network.key = new_key;
        network.roster = roster;
        state.enrollment.save_roster(&self.home).map_err(|e| e.to_string())?;
        state.enrollment.save_key(&self.home).map_err(|e| e.to_string())?;
        drop(state);
        tracing::info!("took the new network key after a removal");
        self.changed().await;
        Ok(())
    }
}
