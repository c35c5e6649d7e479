//! What a link has to write, kept apart from the link's event loop so a
//! socket that takes nothing never stops that loop.
//!
//! ```text
//! Session::poll_transmit ─▶ Outgoing::fill (length-prefixed records)
//!     ─▶ pending() ─▶ one cancel-safe `write` in the link's select! ─▶ advance(n)
//! ```
//!
//! A link once wrote everything it had before waiting for anything else.
//! With the cable pulled mid-transfer, that write waited for TCP to give up
//! (a quarter of an hour): no timer ran, so the silent peer was never
//! noticed, and every service sending to it waited as long. Now the loop
//! writes what the socket takes while it also reads and keeps time, takes
//! new frames only while less than [`HIGH_WATER`] waits (the senders'
//! backpressure), and a peer whose socket has taken nothing for
//! [`STALL_MS`] while bytes wait is dropped, whatever else it sends: one
//! that pings but never reads would otherwise hold every sender to it.

use mailmesh_core::peer::session::Session;

/// Frames are taken from senders only while fewer bytes than this wait.
pub const HIGH_WATER: usize = 256 * 1024;
/// How long bytes may wait with the socket taking none of them.
pub const STALL_MS: u64 = 20_000;

/// Length-prefixed records waiting for the socket, and how far it took
/// them.
#[derive(Debug, Default)]
pub struct Outgoing {
    buf: Vec<u8>,
    written: usize,
    /// Since when the socket took nothing of what waits (`None`: nothing
    /// waits).
    waiting_since_ms: Option<u64>,
}

/// A record longer than the wire's length field: the session never makes
/// one (Noise messages are at most 65535 bytes).
#[derive(Debug, thiserror::Error)]
#[error("a record of {0} bytes does not fit the link's length field")]
pub struct RecordTooLarge(usize);

impl Outgoing {
    /// Takes every record the session has ready, each behind its length.
    pub fn fill(&mut self, session: &mut Session, now_ms: u64) -> Result<(), RecordTooLarge> {
        while let Some(record) = session.poll_transmit() {
            let len = u16::try_from(record.len()).map_err(|_| RecordTooLarge(record.len()))?;
            if self.written > 0 && self.written >= self.buf.len() / 2 {
                // What the socket took goes once it is at least half the
                // buffer: each byte is moved at most once on average.
                self.buf.drain(..self.written);
                self.written = 0;
            }
            self.buf.extend_from_slice(&len.to_be_bytes());
            self.buf.extend_from_slice(&record);
            self.waiting_since_ms.get_or_insert(now_ms);
        }
        Ok(())
    }

    /// What waits for the socket.
    pub fn pending(&self) -> &[u8] {
        &self.buf[self.written..]
    }

    pub fn is_pending(&self) -> bool {
        self.written < self.buf.len()
    }

    /// Whether more frames may be taken from senders.
    pub fn has_room(&self) -> bool {
        self.pending().len() < HIGH_WATER
    }

    /// The socket took `n` bytes.
    pub fn advance(&mut self, n: usize, now_ms: u64) {
        self.written = (self.written + n).min(self.buf.len());
        if self.is_pending() {
            self.waiting_since_ms = Some(now_ms);
        } else {
            self.buf.clear();
            self.written = 0;
            self.waiting_since_ms = None;
        }
    }

    /// When what waits has waited too long, if anything waits.
    pub fn stall_deadline_ms(&self) -> Option<u64> {
        self.waiting_since_ms.map(|since| since.saturating_add(STALL_MS))
    }

    /// Whether the socket has taken nothing for [`STALL_MS`] while bytes
    /// waited.
    pub fn is_stalled(&self, now_ms: u64) -> bool {
        self.stall_deadline_ms().is_some_and(|deadline| now_ms >= deadline)
    }
}

#[cfg(test)]
mod tests {
    use mailmesh_core::identity::NodeSecrets;
    use mailmesh_core::peer::frame::Frame;
    use mailmesh_core::peer::handshake::HandshakeConfig;

    use super::*;

    /// An open session (its handshake done with a peer session).
    fn open_session() -> Session {
        let config = || HandshakeConfig {
            network_psk: Some([9; 32]),
            binding: Vec::new(),
            name: "n".into(),
            email: "e@x".into(),
        };
        let (a, b) = (NodeSecrets::from_seeds([1; 32], [1; 32]), NodeSecrets::from_seeds([2; 32], [2; 32]));
        let mut dialer = Session::connect(&a, config(), [3; 32], 0).unwrap();
        let first = dialer.poll_transmit().unwrap();
        let mut listener = Session::accept(&b, config(), &first, [4; 32], 0).unwrap();
        dialer.handle_record(1, &listener.poll_transmit().unwrap()).unwrap();
        listener.handle_record(1, &dialer.poll_transmit().unwrap()).unwrap();
        assert!(dialer.peer().is_some());
        while dialer.poll_transmit().is_some() {}
        dialer
    }

    fn data(bytes: usize) -> Frame {
        Frame::Data { topic: "t".into(), payload: vec![7; bytes] }
    }

    #[test]
    fn records_go_out_behind_their_length_in_as_many_writes_as_the_socket_needs() {
        let mut session = open_session();
        let mut out = Outgoing::default();
        session.send(&data(100)).unwrap();
        out.fill(&mut session, 0).unwrap();
        let whole = out.pending().to_vec();
        let len = usize::from(u16::from_be_bytes([whole[0], whole[1]]));
        assert_eq!(whole.len(), 2 + len, "one record, behind its length");
        out.advance(10, 1);
        assert_eq!(out.pending(), &whole[10..]);
        // More records while part waits: kept in order after it.
        session.send(&data(5)).unwrap();
        out.fill(&mut session, 2).unwrap();
        assert_eq!(&out.pending()[..whole.len() - 10], &whole[10..]);
        let left = out.pending().len();
        out.advance(left, 3);
        assert!(!out.is_pending() && out.stall_deadline_ms().is_none());
    }

    #[test]
    fn frames_are_taken_only_while_less_than_the_high_water_mark_waits() {
        let mut session = open_session();
        let mut out = Outgoing::default();
        while out.has_room() {
            session.send(&data(60_000)).unwrap();
            out.fill(&mut session, 0).unwrap();
        }
        assert!(out.pending().len() >= HIGH_WATER);
        assert!(out.pending().len() < HIGH_WATER + 70_000, "at most one frame past the mark");
        out.advance(out.pending().len() - HIGH_WATER + 1, 1);
        assert!(out.has_room());
    }

    #[test]
    fn a_socket_that_takes_nothing_for_the_stall_time_is_stalled_and_progress_resets_it() {
        let mut session = open_session();
        let mut out = Outgoing::default();
        assert!(!out.is_stalled(u64::MAX), "nothing waits, nothing stalls");
        session.send(&data(1_000)).unwrap();
        out.fill(&mut session, 1_000).unwrap();
        assert_eq!(out.stall_deadline_ms(), Some(1_000 + STALL_MS));
        assert!(!out.is_stalled(1_000 + STALL_MS - 1));
        out.advance(1, 5_000);
        assert!(!out.is_stalled(1_000 + STALL_MS), "it took a byte at 5 s");
        assert!(out.is_stalled(5_000 + STALL_MS));
        // More to send does not make old bytes younger.
        session.send(&data(1_000)).unwrap();
        out.fill(&mut session, 20_000).unwrap();
        assert!(out.is_stalled(5_000 + STALL_MS));
    }
}
