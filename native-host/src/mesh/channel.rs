//! The data-channel handshake, run by the engine for its extension.
//!
//! When a WebRTC data channel to a peer opens, both extensions hand their
//! engines the DTLS fingerprints from the SDP and then pass handshake
//! messages between the channel and the engine. The engines run the core's
//! [`Handshake`] with those fingerprints bound in; only if it proves the
//! expected member (or verified person's node, for chat) does the
//! extension start using the channel. The node's
//! keys never leave the engine.

use std::collections::HashMap;
use std::sync::Mutex;

use data_encoding::BASE64;
use mailmesh_core::identity::NodeId;
use mailmesh_core::peer::dtls_binding;
use mailmesh_core::peer::handshake::Handshake;

use super::extension_api::{ChannelRole, ToExtension};
use super::{Mesh, MeshError};

/// Handshakes in progress at once; more means a confused extension.
const MAX_PENDING: usize = 64;

struct Pending {
    expected: NodeId,
    binding: Vec<u8>,
    /// `None` until a responder receives the first message.
    handshake: Option<Handshake>,
}

#[derive(Default)]
pub struct Channels {
    pending: Mutex<HashMap<(String, String), Pending>>,
}

impl Mesh {
    /// A data channel opened: start (or get ready to answer) its handshake.
    pub fn channel_open(&self, peer: &str, channel: &str, role: ChannelRole, local_fp: &str, remote_fp: &str) {
        let key = (peer.to_string(), channel.to_string());
        let outcome = (|| {
            let expected = peer.parse::<NodeId>().map_err(|_| MeshError::BadNodeId(peer.to_string()))?;
            let member = self.in_roster(&expected);
            if !member && !self.is_trusted_person(&expected) {
                return Err(MeshError::NotMember(peer.to_string()));
            }
            let binding = match role {
                ChannelRole::Initiator => dtls_binding(local_fp, remote_fp),
                ChannelRole::Responder => dtls_binding(remote_fp, local_fp),
            };
            let handshake = match role {
                ChannelRole::Initiator => Some(
                    Handshake::initiate(
                        &self.secrets,
                        self.handshake_config_for(binding.clone(), member),
                        self.seed()?,
                    )
                    .map_err(|e| MeshError::Handshake(e.to_string()))?,
                ),
                ChannelRole::Responder => None,
            };
            Ok(Pending { expected, binding, handshake })
        })();
        match outcome {
            Ok(pending) => {
                let mut map = self.channels.lock();
                if map.len() >= MAX_PENDING {
                    map.clear();
                }
                map.insert(key.clone(), pending);
                drop(map);
                self.channel_flush(&key);
            }
            Err(e) => self.channel_result(&key, Err(e.to_string())),
        }
    }

    /// A handshake message arrived on the data channel.
    pub fn channel_message(&self, peer: &str, channel: &str, data: &str) {
        let key = (peer.to_string(), channel.to_string());
        let outcome = (|| {
            let bytes =
                BASE64.decode(data.as_bytes()).map_err(|_| "the handshake message is not base64".to_string())?;
            let mut map = self.channels.lock();
            let pending = map.get_mut(&key).ok_or("no handshake is waiting on this channel")?;
            match pending.handshake.as_mut() {
                Some(handshake) => handshake.handle_message(&bytes).map_err(|e| e.to_string()),
                None => {
                    let config = self.handshake_config_for(pending.binding.clone(), self.in_roster(&pending.expected));
                    let seed = self.seed().map_err(|e| e.to_string())?;
                    let handshake =
                        Handshake::accept(&self.secrets, config, &bytes, seed).map_err(|e| e.to_string())?;
                    pending.handshake = Some(handshake);
                    Ok(())
                }
            }
        })();
        match outcome {
            Ok(()) => self.channel_flush(&key),
            Err(e) => self.channel_result(&key, Err(e)),
        }
    }

    /// Sends what the handshake has to say and reports the outcome when done.
    fn channel_flush(&self, key: &(String, String)) {
        let (out, finished) = {
            let mut map = self.channels.lock();
            let Some(pending) = map.get_mut(key) else { return };
            let Some(handshake) = pending.handshake.as_mut() else { return };
            let out = handshake.poll_transmit();
            let finished = handshake.peer().map(|peer| {
                if peer.node_id != pending.expected {
                    Err(format!("the channel reached {} instead of {}", peer.node_id, pending.expected))
                } else if self.in_roster(&peer.node_id) && peer.member {
                    Ok(())
                } else if !peer.member && self.is_trusted_person(&peer.node_id) {
                    // Another person's node, verified by email challenge.
                    Ok(())
                } else {
                    Err("the peer is neither a member of your network nor a verified person".to_string())
                }
            });
            (out, finished)
        };
        if let Some(out) = out {
            let _ = self.to_extension.send(ToExtension::ChannelMessage {
                peer: key.0.clone(),
                channel: key.1.clone(),
                data: BASE64.encode(&out),
            });
        }
        if let Some(result) = finished {
            self.channel_result(key, result);
        }
    }

    fn channel_result(&self, key: &(String, String), result: Result<(), String>) {
        self.channels.lock().remove(key);
        if let Err(e) = &result {
            tracing::info!(peer = %key.0, "data channel not authenticated: {e}");
        }
        let _ = self.to_extension.send(ToExtension::ChannelResult {
            peer: key.0.clone(),
            channel: key.1.clone(),
            ok: result.is_ok(),
            error: result.err(),
        });
    }
}

impl Channels {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Pending>> {
        crate::sync::lock(&self.pending)
    }
}
