//! When to ping a peer, how long it took to answer, and when to give up.
//!
//! One rule for every path (host link, data channel): ping every
//! [`PING_INTERVAL_MS`]; anything heard from the peer counts as a sign of
//! life; silence for [`DEAD_AFTER_MS`] means the peer is gone. With these
//! figures a peer cut off the network is shown offline within 10 seconds.

use super::frame::Frame;

pub const PING_INTERVAL_MS: u64 = 2_000;
pub const DEAD_AFTER_MS: u64 = 6_500;

#[derive(Debug, Clone)]
pub struct Liveness {
    last_heard_ms: u64,
    next_ping_ms: u64,
    seq: u32,
    rtt_ms: Option<u32>,
}

impl Liveness {
    pub fn new(now_ms: u64) -> Liveness {
        Liveness { last_heard_ms: now_ms, next_ping_ms: now_ms, seq: 0, rtt_ms: None }
    }

    /// Anything arrived from the peer.
    pub fn heard(&mut self, now_ms: u64) {
        self.last_heard_ms = self.last_heard_ms.max(now_ms);
    }

    /// The ping to send now, if one is due.
    pub fn poll_ping(&mut self, now_ms: u64) -> Option<Frame> {
        if now_ms < self.next_ping_ms {
            return None;
        }
        self.next_ping_ms = now_ms + PING_INTERVAL_MS;
        self.seq = self.seq.wrapping_add(1);
        Some(Frame::Ping { seq: self.seq, sent_ms: now_ms })
    }

    /// Records a pong and returns the round-trip time it shows. A pong
    /// claiming to be from the future (a confused or lying peer) is ignored.
    pub fn on_pong(&mut self, now_ms: u64, sent_ms: u64) -> Option<u32> {
        self.heard(now_ms);
        let rtt = now_ms.checked_sub(sent_ms)?;
        let rtt = u32::try_from(rtt).ok()?;
        // A light smoothing so one slow answer does not make the number jump.
        self.rtt_ms = Some(match self.rtt_ms {
            Some(old) => ((u64::from(old) * 3 + u64::from(rtt)) / 4) as u32,
            None => rtt,
        });
        self.rtt_ms
    }

    pub fn rtt_ms(&self) -> Option<u32> {
        self.rtt_ms
    }

    pub fn last_heard_ms(&self) -> u64 {
        self.last_heard_ms
    }

    pub fn is_dead(&self, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.last_heard_ms) >= DEAD_AFTER_MS
    }

    /// When to call back: the next ping or the moment the peer counts as gone.
    pub fn next_timeout_ms(&self) -> u64 {
        self.next_ping_ms.min(self.last_heard_ms + DEAD_AFTER_MS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_on_schedule_and_measures_round_trips() {
        let mut l = Liveness::new(1_000);
        let Some(Frame::Ping { sent_ms, .. }) = l.poll_ping(1_000) else { panic!("first ping is due at once") };
        assert_eq!(l.poll_ping(1_500), None);
        assert_eq!(l.on_pong(1_040, sent_ms), Some(40));
        assert!(l.poll_ping(3_000).is_some());
        assert_eq!(l.on_pong(3_000, 4_000), None, "a pong from the future is ignored");
        assert_eq!(l.rtt_ms(), Some(40));
    }

    #[test]
    fn silence_means_gone() {
        let mut l = Liveness::new(0);
        assert!(!l.is_dead(DEAD_AFTER_MS - 1));
        l.heard(5_000);
        assert!(!l.is_dead(5_000 + DEAD_AFTER_MS - 1));
        assert!(l.is_dead(5_000 + DEAD_AFTER_MS));
    }
}
