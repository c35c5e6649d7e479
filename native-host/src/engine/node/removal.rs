//! Removing a device: the owner confirms by mail, the remaining members get
//! a new network key (`Rekey`, sealed to each of them), and the removed
//! device learns from the roster that it is out.

use mailmesh_core::confirm::PendingConfirmation;
use mailmesh_core::confirm::{code_text, token_text};
use mailmesh_core::drive::NetworkKey;
use mailmesh_core::join::{Rekey, SealedKey};
use mailmesh_core::roster::Roster;
use mailmesh_core::rotation::KeyRotation;

use super::mailroom::removes_us;
use super::{NodeService, NodeState};
use crate::clock::now_ms;
use crate::enroll::{load_rotation, remove_rotation, save_rotation, Enrollment, Proof};
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
        let token = token_text(&crate::rng::bytes()?);
        let code = code_text(&crate::rng::bytes()?);
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

        let rotation = {
            let state = self.state.lock().await;
            let network = state.enrollment.network().ok_or("this node is not in a network")?;
            let node = network
                .roster
                .members()
                .into_iter()
                .map(|e| e.node.node_id())
                .find(|id| id.to_string() == removal.node_id)
                .ok_or("that device is no longer a member")?;
            let mut roster = network.roster.clone();
            roster.remove(&self.secrets, &node, now_ms()).map_err(|e| e.to_string())?;
            let new_key = NetworkKey::from_bytes(crate::rng::bytes()?);
            let mut keys = Vec::new();
            for member in roster.members() {
                keys.push(SealedKey::seal(&member.node, &new_key, crate::rng::bytes()?, crate::rng::bytes()?));
            }
            let rekey = Rekey { signer: self.secrets.node_id(), roster: roster.encode(), keys };
            KeyRotation {
                old_key: network.key.clone(),
                new_key,
                roster: roster.encode(),
                rekey: rekey.encode(&self.secrets),
            }
        };
        // From here the rotation is on disk: whatever stops it, the next
        // start (or the next mailbox pass) finishes it.
        save_rotation(&self.home, &rotation).map_err(|e| e.to_string())?;
        joining::remove_removal(&self.home);
        self.finish_rotation().await?;
        tracing::info!(node = %removal.node_id, "removed a device and rotated the network key");
        Ok(())
    }

    /// Finishes the key rotation under way, if any: every drive record
    /// rewrapped under the new key (idempotently, so from wherever a kill
    /// stopped it), the new key and roster saved, the rekey mailed. Until all
    /// of that is done the rotation file stays, and this runs again at the
    /// next start and after every mailbox pass.
    pub async fn finish_rotation(&self) -> Result<(), String> {
        let Some(rotation) = load_rotation(&self.home).map_err(|e| e.to_string())? else { return Ok(()) };
        let roster = Roster::decode(&rotation.roster).map_err(|e| e.to_string())?;
        roster.verify().map_err(|e| e.to_string())?;
        {
            // Held through the rewrap, so nothing else changes the key meanwhile.
            let mut state = self.state.lock().await;
            if !matches!(state.enrollment, Enrollment::Enrolled(_)) {
                // Removed since (or never enrolled): nothing to finish.
                return remove_rotation(&self.home).map_err(|e| e.to_string());
            }
            self.rewrap_drive(&rotation).await?;
            state
                .enrollment
                .commit_rotation(&self.home, rotation.new_key.clone(), roster)
                .map_err(|e| e.to_string())?;
            self.publish(&state);
        }
        // The removed device knew the mail password.
        self.advise_password_change().await;
        // A file added while the rewrap ran may have taken the old key from
        // the standing published before: this pass catches it.
        self.rewrap_drive(&rotation).await?;
        if !rotation.rekey.is_empty() {
            let text = "A device was removed from your mailmesh network; this mail carries the new network key for the others.\n"
                .to_string();
            self.send_mail(Kind::Rekey, "mailmesh: new network key", text, rotation.rekey.clone())
                .await
                .map_err(|e| format!("the new network key is in use here, but mailing it to your other devices failed ({e}); it is mailed again at the next mailbox pass"))?;
        }
        remove_rotation(&self.home).map_err(|e| e.to_string())
    }

    /// Rewraps the drive's file keys from the rotation's old key to its new
    /// one, on a blocking thread (every record is read, opened and maybe
    /// written).
    async fn rewrap_drive(&self, rotation: &KeyRotation) -> Result<(), String> {
        let drive = self.drive.drive().clone();
        let (old, new) = (rotation.old_key.clone(), rotation.new_key.clone());
        let rewrapped = tokio::task::spawn_blocking(move || drive.rewrap(&old, &new))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("could not rewrap the drive under the new network key: {e}"))?;
        if rewrapped > 0 {
            tracing::info!(files = rewrapped, "rewrapped the drive's file keys under the new network key");
        }
        Ok(())
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
        let rotation = KeyRotation { old_key: network.key.clone(), new_key, roster: rekey.roster, rekey: Vec::new() };
        save_rotation(&self.home, &rotation).map_err(|e| e.to_string())?;
        drop(state);
        self.finish_rotation().await?;
        tracing::info!("took the new network key after a removal");
        Ok(())
    }
}
