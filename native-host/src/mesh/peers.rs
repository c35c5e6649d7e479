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
    /// The round-trip time last announced to clients, and when (see
    /// [`PeerTable::rtt_news`]).
    pub announced_rtt_ms: Option<u32>,
    pub rtt_announced_at_ms: u64,
    /// The peer proved its key at least once.
    pub authenticated: bool,
    /// The address at which a dial last completed a handshake with this
    /// very node: kept first, whatever anyone advertises in its name.
    pub proven: Option<SocketAddr>,
    /// In the owner's roster when last advertised: kept and dialed first.
    pub in_roster: bool,
}

impl PeerEntry {
    /// The round-trip time a client shows: the data channel's while the
    /// extension has one open, else the engines' link's; none offline.
    fn shown_rtt_ms(&self) -> Option<u32> {
        self.link.as_ref()?;
        match self.channel_rtt_ms {
            Some(Some(rtt)) => Some(rtt),
            _ => self.link_rtt_ms,
        }
    }

    /// Whether a flood of advertisements may push this entry out: only a
    /// claim nobody proved, that is not in the roster and not in use.
    fn evictable(&self) -> bool {
        !self.authenticated && !self.in_roster && self.link.is_none() && !self.dialing
    }
}

#[derive(Debug, Default)]
pub struct PeerTable {
    pub entries: HashMap<NodeId, PeerEntry>,
}

/// The least time between two announcements of a moved round-trip time.
pub const RTT_NEWS_EVERY_MS: u64 = 10_000;

/// After first seeing a peer, how long to leave dialing to it (the smaller
/// id dials) before dialing ourselves.
const DIAL_GRACE_MS: u64 = 3_000;
/// Addresses remembered per node.
const MAX_ADDRESSES: usize = 4;
/// Nodes the table keeps (roster members and peers that proved their key
/// are always kept; the rest are only advertised claims).
const MAX_PEERS: usize = 256;
/// Dials in flight at once.
const MAX_DIALING: usize = 8;

impl PeerTable {
    /// Whether the round-trip time a client shows for `id` is news worth
    /// announcing; if so, notes it as announced. Pages show times as they
    /// are announced rather than asking again and again. A time appearing
    /// is news at once; a time that moved by at least half (and 2 ms) is
    /// news at most once per [`RTT_NEWS_EVERY_MS`], so the jitter of a busy
    /// link (pings every 2 s) does not become a stream of status refreshes.
    pub fn rtt_news(&mut self, id: &NodeId, now_ms: u64) -> bool {
        let Some(entry) = self.entries.get_mut(id) else { return false };
        let shown = entry.shown_rtt_ms();
        let news = match (entry.announced_rtt_ms, shown) {
            (Some(before), Some(now)) => {
                let moved = before.abs_diff(now);
                moved >= 2
                    && moved.saturating_mul(2) >= before
                    && now_ms.saturating_sub(entry.rtt_announced_at_ms) >= RTT_NEWS_EVERY_MS
            }
            (before, now) => before.is_some() != now.is_some(),
        };
        if news {
            entry.announced_rtt_ms = shown;
            entry.rtt_announced_at_ms = now_ms;
        }
        news
    }

    pub fn entry(&mut self, id: NodeId) -> &mut PeerEntry {
        self.entries.entry(id).or_default()
    }

    /// Notes where an mDNS advertisement says `id` listens. An
    /// advertisement is a claim anyone can make: it adds an address to try
    /// (never one no node listens on), never removes one that proved itself,
    /// and a flood of made-up ids pushes out only other unproven claims.
    pub fn advertised(
        &mut self,
        id: NodeId,
        addresses: Vec<SocketAddr>,
        key_id: Option<String>,
        now_ms: u64,
        in_roster: &dyn Fn(&NodeId) -> bool,
    ) {
        let addresses: Vec<SocketAddr> = addresses.into_iter().filter(dialable).collect();
        if addresses.is_empty() {
            return;
        }
        let in_roster = in_roster(&id);
        if !self.entries.contains_key(&id) && self.entries.len() >= MAX_PEERS && !self.evict_one() && !in_roster {
            return;
        }
        let entry = self.entry(id);
        entry.in_roster = in_roster;
        if entry.first_advertised_ms.is_none() {
            entry.first_advertised_ms = Some(now_ms);
        }
        let news = addresses.iter().any(|a| !entry.addresses.contains(a));
        // A node seen again (or at a new address) is worth dialing at once;
        // a claim that never proved itself waits out its backoff.
        if entry.authenticated || news {
            entry.next_dial_ms = 0;
        }
        // Newest first after the proven one; the oldest claims drop off.
        let proven = entry.proven;
        for address in addresses.into_iter().rev() {
            if Some(address) == proven {
                continue;
            }
            entry.addresses.retain(|a| *a != address);
            entry.addresses.insert(usize::from(proven.is_some()), address);
        }
        entry.addresses.truncate(MAX_ADDRESSES);
        entry.advertised_key = key_id;
    }

    /// Drops the oldest unproven claim; false if there is none.
    fn evict_one(&mut self) -> bool {
        let oldest = self
            .entries
            .iter()
            .filter(|(_, e)| e.evictable())
            .min_by_key(|(id, e)| (e.first_advertised_ms, **id))
            .map(|(id, _)| *id);
        oldest.is_some_and(|id| self.entries.remove(&id).is_some())
    }

    /// The dials to start now: advertised peers without a link that are
    /// ours to dial (the smaller id dials; the other after a grace period),
    /// roster members and proven peers first, at most [`MAX_DIALING`] in
    /// flight.
    pub fn dials_due(&mut self, me: &NodeId, now_ms: u64) -> Vec<(SocketAddr, NodeId)> {
        let in_flight = self.entries.values().filter(|e| e.dialing).count();
        let mut due: Vec<(&NodeId, &mut PeerEntry)> = self
            .entries
            .iter_mut()
            .filter(|(id, e)| {
                !e.addresses.is_empty()
                    && e.link.is_none()
                    && !e.dialing
                    && e.next_dial_ms <= now_ms
                    && (me < *id || e.first_advertised_ms.is_some_and(|t| now_ms.saturating_sub(t) > DIAL_GRACE_MS))
            })
            .collect();
        due.sort_by_key(|(id, e)| (!e.in_roster, !e.authenticated, e.next_dial_ms, **id));
        let mut dials = Vec::new();
        for (id, entry) in due.into_iter().take(MAX_DIALING.saturating_sub(in_flight)) {
            let attempt = entry.dial_attempts as usize;
            // With a proven address, every other try goes there; the other
            // addresses take turns in between.
            let addr = match entry.proven {
                Some(proven) if attempt.is_multiple_of(2) || entry.addresses.len() < 2 => proven,
                Some(_) => entry.addresses[1 + (attempt / 2) % (entry.addresses.len() - 1)],
                None => entry.addresses[attempt % entry.addresses.len()],
            };
            entry.dialing = true;
            entry.dial_attempts = entry.dial_attempts.wrapping_add(1);
            dials.push((addr, *id));
        }
        dials
    }

    /// A dial ended (its link, if any, closed): try again in a second, and
    /// after failures wait longer each time (up to 10 s for a node that
    /// proved itself, a minute for a claim that never did), so a node gone
    /// from the LAN costs little yet is found soon after it returns.
    pub fn dial_finished(&mut self, id: &NodeId, addr: SocketAddr, proven: bool, now_ms: u64) {
        let Some(entry) = self.entries.get_mut(id) else { return };
        entry.dialing = false;
        if proven {
            // The next try goes back to where it worked.
            entry.dial_attempts = 0;
            entry.proven = Some(addr);
            entry.addresses.retain(|a| *a != addr);
            entry.addresses.insert(0, addr);
            entry.addresses.truncate(MAX_ADDRESSES);
        }
        let cap = if entry.authenticated || entry.in_roster { 10_000 } else { 60_000 };
        entry.dial_backoff_ms = (entry.dial_backoff_ms * 2).clamp(1_000, cap);
        entry.next_dial_ms = now_ms + entry.dial_backoff_ms;
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
                // Announced with the closing.
                entry.announced_rtt_ms = None;
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
            let rtt_ms = entry.shown_rtt_ms();
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

/// Whether a node could listen at `addr`: never loopback (a LAN peer is
/// not on this machine), unspecified, multicast, broadcast or port 0.
fn dialable(addr: &SocketAddr) -> bool {
    let ip = addr.ip();
    let broadcast = matches!(ip, std::net::IpAddr::V4(v4) if v4.is_broadcast());
    addr.port() != 0 && !ip.is_loopback() && !ip.is_unspecified() && !ip.is_multicast() && !broadcast
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
    fn a_round_trip_time_is_announced_when_it_moves_not_when_it_jitters() {
        let mut table = PeerTable::default();
        let later = |n: u64| 1_000 + n * RTT_NEWS_EVERY_MS;
        table.link_opened(&identity(2, true), handle(1, 1), 100);
        assert!(!table.rtt_news(&id(2), 1_000), "no time measured yet");
        table.entry(id(2)).link_rtt_ms = Some(10);
        assert!(table.rtt_news(&id(2), 1_000), "the first time is news at once");
        assert!(!table.rtt_news(&id(2), later(1)), "announced once");
        table.entry(id(2)).link_rtt_ms = Some(14);
        assert!(!table.rtt_news(&id(2), later(1)), "jitter under half the time");
        table.entry(id(2)).link_rtt_ms = Some(16);
        assert!(!table.rtt_news(&id(2), later(1) - 1), "not twice within the interval");
        assert!(table.rtt_news(&id(2), later(1)), "moved by half of what was announced");
        table.entry(id(2)).channel_rtt_ms = Some(Some(1));
        assert!(table.rtt_news(&id(2), later(2)), "the data channel's time is shown instead");
        table.entry(id(2)).channel_rtt_ms = Some(Some(2));
        assert!(!table.rtt_news(&id(2), later(3)), "a millisecond is not news");
        table.link_closed(&id(2), 1, later(3));
        assert!(!table.rtt_news(&id(2), later(3)), "the closing itself is announced");
        table.link_opened(&identity(2, true), handle(2, 1), later(3));
        table.entry(id(2)).link_rtt_ms = Some(10);
        assert!(table.rtt_news(&id(2), later(3)), "a time on the new link is news at once");
        assert!(!table.rtt_news(&id(9), later(4)), "an unknown node is no news");
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

    fn addr(n: u8, port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, n], port))
    }

    fn no_roster(_: &NodeId) -> bool {
        false
    }

    #[test]
    fn fake_advertisements_never_push_out_an_address_that_proved_itself() {
        let mut table = PeerTable::default();
        let me = id(1);
        let real = addr(2, 4000);
        table.advertised(id(2), vec![real], None, 0, &no_roster);
        assert_eq!(table.dials_due(&me, 0), vec![(real, id(2))]);
        table.dial_finished(&id(2), real, true, 10);
        // Anyone can advertise the member's id with addresses of their own.
        for n in 0..4 {
            table.advertised(id(2), vec![addr(100 + n, 666)], None, 20 + u64::from(n), &no_roster);
        }
        assert!(table.entries[&id(2)].addresses.contains(&real), "the proven address is kept");
        let first = table.dials_due(&me, 10_000);
        assert_eq!(first, vec![(real, id(2))], "and dialed first");
        // Even after the proven address fails once, it stays and comes back.
        table.dial_finished(&id(2), real, false, 10_001);
        let mut dialed = Vec::new();
        for t in 0..20u64 {
            let now = 100_000 + t * 1_000_000;
            for (a, peer) in table.dials_due(&me, now) {
                dialed.push(a);
                table.dial_finished(&peer, a, false, now);
            }
        }
        assert!(dialed.iter().filter(|a| **a == real).count() >= dialed.len() / 2, "{dialed:?}");
    }

    #[test]
    fn advertised_ids_that_never_prove_themselves_cannot_grow_the_table_without_bound() {
        let mut table = PeerTable::default();
        let member = NodeId::from_bytes([7; 20]);
        table.advertised(member, vec![addr(7, 4000)], None, 0, &|id| *id == NodeId::from_bytes([7; 20]));
        table.link_opened(&identity(3, false), handle(1, 1), 0);
        for n in 0..10_000u32 {
            let mut bytes = [0u8; 20];
            bytes[..4].copy_from_slice(&n.to_le_bytes());
            bytes[19] = 0xee;
            table.advertised(NodeId::from_bytes(bytes), vec![addr(200, 5000)], None, u64::from(n), &no_roster);
        }
        assert!(table.entries.len() <= MAX_PEERS, "{} entries", table.entries.len());
        assert!(table.entries.contains_key(&member), "a roster member is never evicted");
        assert!(table.entries.contains_key(&id(3)), "nor a peer that proved its key");
    }

    #[test]
    fn addresses_no_peer_listens_on_are_never_dialed() {
        let mut table = PeerTable::default();
        let bad = vec![
            SocketAddr::from(([127, 0, 0, 1], 4000)),
            SocketAddr::from(([0, 0, 0, 0], 4000)),
            SocketAddr::from(([224, 0, 0, 251], 5353)),
            SocketAddr::from(([255, 255, 255, 255], 4000)),
            SocketAddr::from(([10, 0, 0, 9], 0)),
        ];
        table.advertised(id(9), bad, None, 0, &no_roster);
        assert!(table.dials_due(&id(1), 0).is_empty());
    }

    #[test]
    fn dials_in_flight_are_bounded_and_members_go_first() {
        let mut table = PeerTable::default();
        let member = NodeId::from_bytes([0xfe; 20]);
        for n in 0..100u32 {
            let mut bytes = [0xf0u8; 20];
            bytes[..4].copy_from_slice(&n.to_le_bytes());
            table.advertised(NodeId::from_bytes(bytes), vec![addr(200, 5000)], None, 0, &no_roster);
        }
        table.advertised(member, vec![addr(7, 4000)], None, 0, &|id| *id == NodeId::from_bytes([0xfe; 20]));
        let dials = table.dials_due(&id(1), 0);
        assert!(dials.len() <= MAX_DIALING, "{} dials at once", dials.len());
        assert!(dials.iter().any(|(_, peer)| *peer == member), "the member is among them");
    }
}
