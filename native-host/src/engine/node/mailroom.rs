//! What the node does with mailmesh mails from the mailbox, and the mails
//! it sends to move a join along (see `mailmesh_core::join` for the proofs
//! each step carries). Every handler is idempotent: a renumbered folder is
//! read again whole.

use mailmesh_core::confirm::{code_text, token_text};
use mailmesh_core::identity::NodeId;
use mailmesh_core::join::{approval_key, Approval, JoinProof, JoinRequest, Welcome};
use mailmesh_core::roster::Roster;

use super::{NodeService, NodeState};
use crate::api::JoinRequestView;
use crate::clock::now_ms;
use crate::enroll::{Enrollment, Network};
use crate::joining::{self, ApproveError, Issued, Joining, APPROVAL_TTL_MS};
use crate::mail::MailError;
use crate::mailbox::{Found, Kind};

impl NodeService {
    /// Announces the roster in the mailbox, so that new nodes find the network
    /// and members that were away learn of changes.
    pub async fn announce_roster(&self) {
        let Some(roster) = self.state.lock().await.enrollment.network().map(|n| n.roster.encode()) else { return };
        let text = "This mail carries your mailmesh roster, the list of your confirmed devices. mailmesh reads it; you can ignore it.\n".to_string();
        if let Err(e) = self.send_mail(Kind::Roster, "mailmesh roster", text, roster).await {
            tracing::warn!("could not mail the roster: {e}");
        }
    }

    /// Asks to join the network found in the mailbox.
    pub async fn start_join(&self) -> Result<(), MailError> {
        let (request, name) = {
            let state = self.state.lock().await;
            let name = state.config.device_name.clone();
            let request = JoinRequest {
                node: self.secrets.public(),
                join_secret: crate::rng::bytes().map_err(|e| MailError::Protocol(e.to_string()))?,
                loopback_port: self.loopback_port,
                created_ms: now_ms(),
                device_name: name.clone(),
            };
            (request, name)
        };
        let wire = request.encode(&self.secrets);
        let text = format!(
            "The device \"{name}\" (fingerprint {}) asks to join your mailmesh network.\n\n\
             One of your devices will mail you a code to type on \"{name}\". If this was not you, ignore both mails.\n",
            self.secrets.node_id().fingerprint()
        );
        self.send_mail(Kind::JoinRequest, &format!("mailmesh: {name} asks to join"), text, wire.clone()).await?;
        let joining = Joining {
            version: joining::STATE_VERSION,
            request: hex::encode(&wire),
            approvals: Vec::new(),
            confirmed: None,
        };
        joining::save_joining(&self.home, &joining).map_err(|e| MailError::Protocol(e.to_string()))?;
        self.state.lock().await.enrollment = Enrollment::Joining(joining);
        self.changed().await;
        Ok(())
    }

    /// The owner gave this joining node a code or link token: find the
    /// approval it opens and tell the member.
    pub async fn confirm_join(&self, secret_text: &str) -> Result<(), String> {
        // The approval may be in the mailbox but not seen by the watcher yet.
        if let Err(e) = self.read_approvals_now().await {
            tracing::warn!("could not look for approvals: {e}");
        }
        let (member, key) = {
            let mut state = self.state.lock().await;
            let Enrollment::Joining(joining) = &mut state.enrollment else {
                return Err("this node is not joining a network".into());
            };
            let now = now_ms();
            let Some((approval, key)) = joining
                .approvals()
                .into_iter()
                .filter(|a| a.expires_ms > now)
                .find_map(|a| a.accepts(secret_text).map(|k| (a, k)))
            else {
                return Err(if joining.approvals().is_empty() {
                    "no approval has arrived yet; wait for the mail from one of your devices".into()
                } else {
                    "this code does not match any approval for this device".into()
                });
            };
            joining.confirmed = Some((hex::encode(approval.member.as_bytes()), hex::encode(key)));
            joining::save_joining(&self.home, joining).map_err(|e| e.to_string())?;
            (approval.member, key)
        };
        self.changed().await;
        let proof = JoinProof { node: self.secrets.node_id(), member }.encode(&key);
        let text =
            "This device confirmed the approval; your device that approved it will now welcome it.\n".to_string();
        self.send_mail(Kind::JoinProof, "mailmesh: join confirmed", text, proof).await.map_err(|e| e.to_string())
    }

    async fn read_approvals_now(&self) -> Result<(), MailError> {
        if self.account().await.is_none() {
            return Ok(());
        }
        let found = self.mail().await?.mailmesh_mails(&[Kind::Approval]).await?;
        for mail in found {
            self.on_mail(mail).await;
        }
        Ok(())
    }

    /// Handles one mailmesh mail from the mailbox (a challenge is the
    /// contact book's: the engine hands it there).
    pub async fn on_mail(&self, mail: Found) {
        if mail.from_older_version {
            self.heard_older_version().await;
        }
        let outcome = match mail.kind {
            Kind::Roster => self.adopt_roster(&mail.payload, "the mailbox").await,
            Kind::JoinRequest => self.on_join_request(&mail.payload).await,
            Kind::Approval => self.on_approval(&mail.payload).await,
            Kind::JoinProof => self.on_join_proof(&mail.payload).await,
            Kind::Welcome => self.on_welcome(&mail.payload).await,
            Kind::Rekey => self.on_rekey(&mail.payload).await,
            Kind::Challenge => Ok(()),
        };
        if let Err(why) = outcome {
            tracing::info!(uid = mail.uid, kind = mail.kind.as_str(), "ignored a mail: {why}");
        }
    }

    /// Takes a roster found in the mailbox or sent by a member over the LAN,
    /// if its signatures hold and it extends ours.
    pub async fn adopt_roster(&self, payload: &[u8], source: &str) -> Result<(), String> {
        let roster = Roster::decode(payload).map_err(|e| e.to_string())?;
        roster.verify().map_err(|e| e.to_string())?;
        let mut state = self.state.lock().await;
        let NodeState { enrollment: Enrollment::Enrolled(network), .. } = &mut *state else {
            return Err("not a member".into());
        };
        if removes_us(&roster, &network.roster, &self.secrets.node_id())? {
            return self.mark_removed(state, roster);
        }
        network.roster = roster;
        state.enrollment.save_roster(&self.home).map_err(|e| e.to_string())?;
        drop(state);
        tracing::info!("adopted a newer roster from {source}");
        self.changed().await;
        Ok(())
    }

    /// A join request from the mailbox waits for the owner's approval on a
    /// member device (`approve_join`): the mailbox alone (which a stolen
    /// device or a forwarding rule can read) lets no device in, and a
    /// forged request costs one bounded entry, never a mail.
    async fn on_join_request(&self, payload: &[u8]) -> Result<(), String> {
        let request = JoinRequest::decode(payload).map_err(|e| e.to_string())?;
        let node = request.node.node_id();
        {
            let state = self.state.lock().await;
            let network = state.enrollment.network().ok_or("not a member")?;
            if network.roster.contains(&node) {
                return Err("already a member".into());
            }
            if network.roster.was_removed(&node) {
                return Err("a removed device cannot join again".into());
            }
        }
        let mut issuer = joining::load_issuer(&self.home).map_err(|e| e.to_string())?;
        if !issuer.hold(&request, payload, now_ms()) {
            return Ok(());
        }
        joining::save_issuer(&self.home, &issuer).map_err(|e| e.to_string())?;
        tracing::info!(node = %node, "a device asks to join; waiting for the owner to approve it here");
        self.changed().await;
        Ok(())
    }

    /// The devices waiting for the owner to approve them.
    pub async fn join_requests(&self) -> Vec<JoinRequestView> {
        let home = self.home.clone();
        let loaded = tokio::task::spawn_blocking(move || joining::load_issuer(&home)).await;
        let Ok(Ok(mut issuer)) = loaded else { return Vec::new() };
        issuer.prune(now_ms());
        issuer
            .requests
            .iter()
            .filter_map(|r| {
                let request = r.request()?;
                let node = request.node.node_id();
                Some(JoinRequestView {
                    node_id: node.to_string(),
                    fingerprint: node.fingerprint(),
                    device_name: mailmesh_core::names::visible(&request.device_name),
                    requested_at: r.received_ms,
                })
            })
            .collect()
    }

    /// The owner declined a device on this member: its request is forgotten.
    pub async fn decline_join(&self, node_id: &str) -> Result<(), String> {
        let node = node_id.replace('-', "").parse().map_err(|_| format!("{node_id} is not a node id"))?;
        let mut issuer = joining::load_issuer(&self.home).map_err(|e| e.to_string())?;
        if !issuer.drop_request(&node) {
            return Err(ApproveError::NoRequest(node_id.into()).to_string());
        }
        joining::save_issuer(&self.home, &issuer).map_err(|e| e.to_string())?;
        self.changed().await;
        Ok(())
    }

    /// The owner approved a waiting device on this member: this member (and
    /// only it) mails the approval code, which the owner types on the new
    /// device.
    pub async fn approve_join(&self, node_id: &str) -> Result<(), String> {
        let node = node_id.replace('-', "").parse().map_err(|_| format!("{node_id} is not a node id"))?;
        let mut issuer = joining::load_issuer(&self.home).map_err(|e| e.to_string())?;
        let request = issuer.approvable(&node, now_ms()).map_err(|e| e.to_string())?;
        {
            let state = self.state.lock().await;
            let network = state.enrollment.network().ok_or("this device is not in a network")?;
            if network.roster.contains(&node) || network.roster.was_removed(&node) {
                issuer.drop_request(&node);
                joining::save_issuer(&self.home, &issuer).map_err(|e| e.to_string())?;
                return Err("that device is already a member, or was removed".into());
            }
        }
        let token = token_text(&crate::rng::bytes()?);
        let code = code_text(&crate::rng::bytes()?);
        let expires_ms = now_ms() + APPROVAL_TTL_MS;
        let approval =
            Approval::new(self.secrets.node_id(), node, &token, &code, expires_ms).encode(&request.join_secret);
        let me = self.state.lock().await.config.device_name.clone();
        // Anyone can mail a join request: its name reaches a mail's subject
        // and text only with nothing hidden in it (no newline, no control).
        let name = &mailmesh_core::names::visible(&request.device_name);
        let text = format!(
            "You approved the device \"{name}\" (fingerprint {}) on \"{me}\".\n\n\
             On \"{name}\", open this link:\n\n    http://127.0.0.1:{}/approve/{token}\n\n\
             or type this code there:\n\n    {code}\n\n\
             The link and the code work for 24 hours.\n",
            node.fingerprint(),
            request.loopback_port
        );
        self.send_mail(Kind::Approval, &format!("Approve {name} for mailmesh"), text, approval)
            .await
            .map_err(|e| e.to_string())?;
        issuer.drop_request(&node);
        issuer.issued.push(Issued {
            node_ed25519: hex::encode(request.node.ed25519),
            node_x25519: hex::encode(request.node.x25519),
            device_name: name.clone(),
            token,
            code,
            expires_ms,
            welcomed: false,
        });
        joining::save_issuer(&self.home, &issuer).map_err(|e| e.to_string())?;
        tracing::info!(node = %node, "the owner approved a new device here; its code is mailed");
        self.changed().await;
        Ok(())
    }

    async fn on_approval(&self, payload: &[u8]) -> Result<(), String> {
        let mut state = self.state.lock().await;
        let Enrollment::Joining(joining) = &mut state.enrollment else { return Err("not joining".into()) };
        let secret = joining.request().ok_or("our join request is damaged")?.join_secret;
        let approval = Approval::decode(payload, &secret).map_err(|e| e.to_string())?;
        if approval.node != self.secrets.node_id() {
            return Err("for another device".into());
        }
        let encoded = hex::encode(payload);
        if joining.approvals.contains(&encoded) {
            return Ok(());
        }
        joining.approvals.push(encoded);
        joining::save_joining(&self.home, joining).map_err(|e| e.to_string())?;
        drop(state);
        self.changed().await;
        Ok(())
    }

    async fn on_join_proof(&self, payload: &[u8]) -> Result<(), String> {
        let (proof, tag) = JoinProof::decode(payload).map_err(|e| e.to_string())?;
        if proof.member != self.secrets.node_id() {
            return Err("for another member".into());
        }
        let mut issuer = joining::load_issuer(&self.home).map_err(|e| e.to_string())?;
        let now = now_ms();
        let issued = issuer
            .issued
            .iter_mut()
            .find(|i| i.node_id() == Some(proof.node) && !i.welcomed && i.expires_ms > now)
            .ok_or("no open approval for this device")?;
        let key = proof
            .verify(&tag, &[approval_key(&issued.token), approval_key(&issued.code)])
            .ok_or("the proof does not match the approval")?;
        let node = issued.node().ok_or("damaged approval record")?;
        let (roster, network_key) = {
            let mut state = self.state.lock().await;
            let NodeState { enrollment: Enrollment::Enrolled(network), .. } = &mut *state else {
                return Err("not a member".into());
            };
            if !network.roster.contains(&proof.node) {
                network.roster.add(&self.secrets, node, &issued.device_name, now).map_err(|e| e.to_string())?;
            }
            let out = (network.roster.encode(), network.key.clone());
            state.enrollment.save_roster(&self.home).map_err(|e| e.to_string())?;
            out
        };
        let welcome = Welcome::new(
            &node,
            self.secrets.node_id(),
            roster,
            &network_key,
            crate::rng::bytes()?,
            crate::rng::bytes()?,
        )
        .encode(&key);
        let text = format!("Your device \"{}\" is now part of your mailmesh network.\n", issued.device_name);
        self.send_mail(Kind::Welcome, &format!("mailmesh: welcome {}", issued.device_name), text, welcome)
            .await
            .map_err(|e| e.to_string())?;
        issued.welcomed = true;
        joining::save_issuer(&self.home, &issuer).map_err(|e| e.to_string())?;
        tracing::info!(node = %proof.node, "signed a new device into the roster");
        self.changed().await;
        self.announce_roster().await;
        Ok(())
    }

    async fn on_welcome(&self, payload: &[u8]) -> Result<(), String> {
        let mut state = self.state.lock().await;
        let Enrollment::Joining(joining) = &state.enrollment else { return Err("not joining".into()) };
        let key = joining.confirmed_key().ok_or("not confirmed here yet")?;
        let welcome = Welcome::decode(payload, &key).map_err(|e| e.to_string())?;
        if welcome.node != self.secrets.node_id() {
            return Err("for another device".into());
        }
        let network_key = welcome.open(&self.secrets).map_err(|e| e.to_string())?;
        let roster = Roster::decode(&welcome.roster).map_err(|e| e.to_string())?;
        roster.verify().map_err(|e| e.to_string())?;
        if !roster.contains(&self.secrets.node_id()) {
            return Err("the roster does not list this device".into());
        }
        let network_id = roster.network_id();
        state.enrollment.adopt(&self.home, Network { key: network_key, roster }).map_err(|e| e.to_string())?;
        drop(state);
        tracing::info!(network_id = %network_id, "joined the network");
        self.changed().await;
        Ok(())
    }
}

impl NodeService {
    /// The owner removed this device: forget the network key, keep the
    /// roster that says so, and tell the clients.
    pub(super) fn mark_removed(
        &self,
        mut state: tokio::sync::MutexGuard<'_, NodeState>,
        roster: Roster,
    ) -> Result<(), String> {
        state.enrollment.mark_removed(&self.home, roster).map_err(|e| e.to_string())?;
        self.publish(&state);
        drop(state);
        tracing::warn!("the owner removed this device from the network");
        Ok(())
    }
}

/// True if `newer` has the same genesis and keeps every entry of `current`
/// in order, with more after them.
fn extends(newer: &Roster, current: &Roster) -> bool {
    newer.entries().len() > current.entries().len() && newer.entries()[..current.entries().len()] == *current.entries()
}

/// Whether a verified roster that must extend ours removes this node.
pub(super) fn removes_us(newer: &Roster, current: &Roster, me: &NodeId) -> Result<bool, String> {
    if !extends(newer, current) {
        return Err("not newer than ours".into());
    }
    Ok(newer.was_removed(me))
}
