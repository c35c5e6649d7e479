//! Admission to the link port: anyone on the LAN can dial it, so what a
//! connection may cost before its handshake proves anything is bounded.
//!
//! - At most [`MAX_PER_ADDRESS`] connections from one IP address, linked
//!   or not (a machine runs one node, a few in tests): one host cannot
//!   fill the port.
//! - At most [`MAX_HANDSHAKING`] connections waiting for their handshake in
//!   all; a new one pushes out the one that has waited longest, so a crowd
//!   of silent connections from many addresses never keeps a member out —
//!   its fresh connection always gets its turn (and each waits at most the
//!   first-record and handshake timeouts anyway).
//!
//! Each admitted connection holds a [`Permit`]; dropping it frees the slot.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

pub const MAX_PER_ADDRESS: usize = 16;
pub const MAX_HANDSHAKING: usize = 64;

#[derive(Default)]
struct Counts {
    per_address: HashMap<IpAddr, usize>,
    /// Connections still handshaking, oldest first: (id, push-out token).
    handshaking: VecDeque<(u64, CancellationToken)>,
    next_id: u64,
}

#[derive(Clone, Default)]
pub struct Gate(Arc<Mutex<Counts>>);

/// One admitted connection's slot.
pub struct Permit {
    gate: Gate,
    address: IpAddr,
    id: u64,
    /// Cancelled when a newer connection pushed this one out before its
    /// handshake finished.
    pub pushed_out: CancellationToken,
}

impl Gate {
    /// Admits a connection from `address`, or refuses it (None) when that
    /// address already holds its share.
    pub fn admit(&self, address: IpAddr) -> Option<Permit> {
        let mut counts = crate::sync::lock(&self.0);
        let held = counts.per_address.entry(address).or_default();
        if *held >= MAX_PER_ADDRESS {
            return None;
        }
        *held += 1;
        if counts.handshaking.len() >= MAX_HANDSHAKING {
            if let Some((_, oldest)) = counts.handshaking.pop_front() {
                oldest.cancel();
            }
        }
        counts.next_id += 1;
        let (id, pushed_out) = (counts.next_id, CancellationToken::new());
        counts.handshaking.push_back((id, pushed_out.clone()));
        Some(Permit { gate: self.clone(), address, id, pushed_out })
    }

    /// How many connections wait for their handshake.
    pub fn handshaking(&self) -> usize {
        crate::sync::lock(&self.0).handshaking.len()
    }
}

impl Permit {
    /// The handshake finished: the connection no longer counts as waiting.
    pub fn established(&self) {
        crate::sync::lock(&self.gate.0).handshaking.retain(|(id, _)| *id != self.id);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counts = crate::sync::lock(&self.gate.0);
        counts.handshaking.retain(|(id, _)| *id != self.id);
        if let Some(held) = counts.per_address.get_mut(&self.address) {
            *held -= 1;
            if *held == 0 {
                counts.per_address.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n))
    }

    #[test]
    fn one_address_gets_its_share_and_no_more() {
        let gate = Gate::default();
        let held: Vec<Permit> = (0..2000).filter_map(|_| gate.admit(ip(1))).collect();
        assert_eq!(held.len(), MAX_PER_ADDRESS);
        assert!(gate.admit(ip(2)).is_some(), "another address still gets in");
        drop(held);
        assert!(gate.admit(ip(1)).is_some(), "freed slots are free again");
    }

    #[test]
    fn a_crowd_from_many_addresses_is_pushed_out_oldest_first_and_a_newcomer_always_gets_in() {
        let gate = Gate::default();
        let crowd: Vec<Permit> = (0..2000).filter_map(|n| gate.admit(ip(100 + n))).collect();
        assert_eq!(gate.handshaking(), MAX_HANDSHAKING);
        let pushed = crowd.iter().filter(|p| p.pushed_out.is_cancelled()).count();
        assert_eq!(pushed, 2000 - MAX_HANDSHAKING);
        assert!(!crowd.last().unwrap().pushed_out.is_cancelled(), "the newest stay");
        let member = gate.admit(ip(7)).expect("a member's connection is admitted");
        member.established();
        assert!(gate.admit(ip(8)).is_some());
        assert!(!member.pushed_out.is_cancelled(), "a link that finished its handshake is never pushed out");
    }
}
