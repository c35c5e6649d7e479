//! The table of nodes this engine knows on the LAN, and the view of it that
//! `status` and the extension show.
//!
//! A node enters the table only once a link handshake has proven its key
//! (or when it is in the owner's roster): an mDNS advertisement alone is a
//! claim anyone can make, so it only gives an address to try.

use std::collections::HashMap;
use std::net::SocketAddr;

use mailmesh_core::identity::NodeId;
use mailmesh_core::peer::handshake::PeerIdentity;

use super::link::LinkHandle;
use crate::api::{PeerPath, PeerView};

#[derive(Debug, Default)]
pub struct PeerEntry {
    pub name: String,
    pub email: String,
    pub member: bool,
    /// Where mDNS says the peer listens.
    pub addresses: Vec<SocketAddr>,
    /// The network key id the peer advertises (to pick member or stranger mode).
    pub advertised_key: Option<String>,
    pub first_advertised_ms: Option<u64>,
    pub dialing: bool,
    pub dial_attempts: u32,
    pub next_dial_ms: u64,
    pub dial_backoff_ms: u64,
    pub link: Option<LinkHandle>,
    pub link_rtt_ms: Option<u32>,
    pub last_seen_ms: Option<u64>,
    /// Set by the extension while an authenticated data channel is open.
    pub channel_rtt_ms: Option<Option<u32>>,
    /// The peer proved its key at least once.
    pub authenticated: bool,
}

#[derive(Debug, Default)]
pub struct PeerTable {
    pub entries: HashMap<NodeId, PeerEntry>,
}

impl PeerTable {
    pub fn entry(&mut self, id: NodeId) -> &mut PeerEntry {
        self.entries.entry(id).or_default()
    }

    /// Records a proven identity when its link opens. Returns the link to
    /// close if there already was one: of two links between the same pair,
    /// both sides keep the one dialed by the smaller node id.
    pub fn link_opened(&mut self, peer: &PeerIdentity, handle: LinkHandle, now_ms: u64) -> Option<LinkHandle> {
        let entry = self.entry(peer.node_id);
        entry.name = peer.name.clone();
        entry.email = peer.email.clone();
        entry.member = peer.member;
        entry.authenticated = true;
        entry.last_seen_ms = Some(now_ms);
        match entry.link.take() {
            Some(old) if old.dialed_by <= handle.dialed_by => {
                entry.link = Some(old);
                Some(handle)
            }
            old => {
                entry.link = Some(handle);
                old
            }
        }
    }

    /// Forgets a link that ended (if it is still the current one).
    pub fn link_closed(&mut self, peer: &NodeId, link_id: u64, now_ms: u64) {
        if let Some(entry) = self.entries.get_mut(peer) {
            if entry.link.as_ref().is_some_and(|l| l.id == link_id) {
                entry.link = None;
                entry.link_rtt_ms = None;
                entry.channel_rtt_ms = None;
                entry.last_seen_ms = Some(now_ms);
            }
        }
    }

    pub fn link(&self, peer: &NodeId) -> Option<&LinkHandle> {
        self.entries.get(peer).and_then(|e| e.link.as_ref())
    }

    /// The rows to show: every authenticated peer, plus the roster's other
    /// members even if they were never seen.
    pub fn view(&self, roster: &[(NodeId, String)], self_id: &NodeId, now_ms: u64) -> Vec<PeerView> {
        let mut rows: Vec<PeerView> = Vec::new();
        for (id, entry) in &self.entries {
            let in_roster = roster.iter().any(|(r, _)| r == id);
            if !entry.authenticated && !in_roster {
                continue;
            }
            let online = entry.link.is_some();
            let path = match (online, entry.channel_rtt_ms) {
                (false, _) => None,
                (true, Some(_)) => Some(PeerPath::Webrtc),
                (true, None) => Some(PeerPath::Relay),
            };
            let rtt_ms = match entry.channel_rtt_ms {
                Some(Some(rtt)) if online => Some(rtt),
                _ => entry.link_rtt_ms.filter(|_| online),
            };
            let name = match roster.iter().find(|(r, _)| r == id) {
                Some((_, roster_name)) if entry.name.is_empty() => roster_name.clone(),
                _ => entry.name.clone(),
            };
            rows.push(PeerView {
                id: id.to_string(),
                fingerprint: id.fingerprint(),
                name,
                email: entry.email.clone(),
                member: entry.member && in_roster,
                verified: false,
                online,
                last_seen: if online { Some(now_ms) } else { entry.last_seen_ms },
                rtt_ms,
                path,
            });
        }
        for (id, name) in roster {
            if id != self_id && !self.entries.contains_key(id) {
                rows.push(PeerView {
                    id: id.to_string(),
                    fingerprint: id.fingerprint(),
                    name: name.clone(),
                    email: String::new(),
                    member: true,
                    verified: false,
                    online: false,
                    last_seen: None,
                    rtt_ms: None,
                    path: None,
                });
            }
        }
        rows.sort_by(|a, b| (!a.member, !a.online, &a.name, &a.id).cmp(&(!b.member, !b.online, &b.name, &b.id)));
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> NodeId {
        NodeId::from_bytes([n; 20])
    }

    fn identity(n: u8, member: bool) -> PeerIdentity {
        PeerIdentity {
            node_id: id(n),
            ed25519: [n; 32],
            x25519: [n; 32],
            name: format!("node{n}"),
            email: "owner@mailmesh.test".into(),
            member,
        }
    }

    fn handle(link: u64, dialed_by: u8) -> LinkHandle {
        LinkHandle { id: link, commands: tokio::sync::mpsc::channel(1).0, dialed_by: id(dialed_by) }
    }

    #[test]
    fn of_two_crossing_links_both_sides_keep_the_one_the_smaller_id_dialed() {
        let mut table = PeerTable::default();
        assert!(table.link_opened(&identity(2, true), handle(1, 2), 0).is_none());
        let dropped = table.link_opened(&identity(2, true), handle(2, 1), 0).expect("one link is dropped");
        assert_eq!(dropped.id, 1);
        assert_eq!(table.link(&id(2)).map(|l| l.id), Some(2));
        let dropped = table.link_opened(&identity(2, true), handle(3, 2), 0).expect("the newcomer loses");
        assert_eq!(dropped.id, 3);
    }

    #[test]
    fn the_view_shows_members_strangers_and_absent_members() {
        let mut table = PeerTable::default();
        table.link_opened(&identity(2, true), handle(1, 1), 100);
        table.link_opened(&identity(3, false), handle(2, 1), 100);
        table.entry(id(2)).channel_rtt_ms = Some(Some(4));
        let roster = vec![(id(1), "me".to_string()), (id(2), "node2".to_string()), (id(4), "nas".to_string())];
        let view = table.view(&roster, &id(1), 500);
        let row = |n: u8| view.iter().find(|p| p.id == id(n).to_string()).cloned();
        let two = row(2).unwrap();
        assert!(two.member && two.online);
        assert_eq!((two.path, two.rtt_ms), (Some(PeerPath::Webrtc), Some(4)));
        let three = row(3).unwrap();
        assert!(!three.member && three.online);
        assert_eq!(three.path, Some(PeerPath::Relay));
        let nas = row(4).unwrap();
        assert!(nas.member && !nas.online && nas.last_seen.is_none());
        assert!(row(1).is_none(), "this node is not its own peer");

        table.link_closed(&id(2), 1, 900);
        let two = table.view(&roster, &id(1), 1000).into_iter().find(|p| p.id == id(2).to_string()).unwrap();
        assert_eq!((two.online, two.last_seen, two.path), (false, Some(900), None));
    }
}
