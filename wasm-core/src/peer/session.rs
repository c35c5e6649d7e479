//! An encrypted link between two nodes over a byte stream (the host-to-host
//! link on the LAN), as a sans-IO state machine.
//!
//! Input: records the caller has cut out of the stream (the host frames each
//! with a 16-bit length), the time, and frames to send. Output: records to
//! write, events, and when to be called back. The [`Handshake`] comes
//! first; after it every record is a Noise transport message. Frames ride
//! in a length-prefixed plaintext stream cut into records, so a frame may
//! be larger than one Noise message.

use std::collections::VecDeque;

use thiserror::Error;

use super::frame::{Frame, FrameError, MAX_LINK_FRAME, MAX_STRANGER_FRAME};
use super::handshake::{Handshake, HandshakeConfig, HandshakeError, PeerIdentity, MAX_MESSAGE};
use super::liveness::Liveness;
use crate::identity::NodeSecrets;

/// Noise adds a 16-byte tag to each transport message.
const MAX_RECORD_PLAINTEXT: usize = MAX_MESSAGE - 16;
/// How long a handshake may take before the link is dropped.
pub const HANDSHAKE_TIMEOUT_MS: u64 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Established(PeerIdentity),
    /// A `Data` or `Signal` frame from the peer (pings are answered inside).
    Frame(Frame),
    /// A new round-trip measurement, in milliseconds.
    Rtt(u32),
    Closed(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SessionError {
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    #[error("bad frame from the peer: {0}")]
    Frame(#[from] FrameError),
    #[error("a record from the peer could not be decrypted")]
    Decrypt,
    #[error("the link is not open")]
    NotOpen,
    #[error("the peer did not finish the handshake in time")]
    HandshakeTimeout,
    #[error("the peer stopped answering")]
    Silent,
}

enum State {
    Handshaking { handshake: Box<Handshake>, started_ms: u64 },
    Open { transport: Box<snow::TransportState>, peer: PeerIdentity },
    Closed,
}

pub struct Session {
    state: State,
    liveness: Liveness,
    /// Plaintext received but not yet a whole frame.
    inbound: Vec<u8>,
    /// The largest frame taken from the peer: a member's link carries drive
    /// fragments, another person's only what its topics need.
    max_inbound_frame: usize,
    outbox: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
}

impl Session {
    /// Opens a link to a peer; the first record is ready to send.
    pub fn connect(
        secrets: &NodeSecrets,
        config: HandshakeConfig,
        seed: [u8; 32],
        now_ms: u64,
    ) -> Result<Session, SessionError> {
        let handshake = Handshake::initiate(secrets, config, seed)?;
        Ok(Session::start(handshake, now_ms))
    }

    /// Answers a peer that opened a link with `first`.
    pub fn accept(
        secrets: &NodeSecrets,
        config: HandshakeConfig,
        first: &[u8],
        seed: [u8; 32],
        now_ms: u64,
    ) -> Result<Session, SessionError> {
        let handshake = Handshake::accept(secrets, config, first, seed)?;
        Ok(Session::start(handshake, now_ms))
    }

    fn start(mut handshake: Handshake, now_ms: u64) -> Session {
        let mut outbox = VecDeque::new();
        outbox.extend(handshake.poll_transmit());
        Session {
            state: State::Handshaking { handshake: Box::new(handshake), started_ms: now_ms },
            liveness: Liveness::new(now_ms),
            inbound: Vec::new(),
            max_inbound_frame: MAX_STRANGER_FRAME,
            outbox,
            events: VecDeque::new(),
        }
    }

    /// One record from the peer. An error closes the link (a `Closed` event
    /// says why) and is also returned for the caller's log.
    pub fn handle_record(&mut self, now_ms: u64, record: &[u8]) -> Result<(), SessionError> {
        let outcome = self.read_record(now_ms, record);
        if let Err(e) = &outcome {
            self.close(e.to_string());
        }
        outcome
    }

    fn read_record(&mut self, now_ms: u64, record: &[u8]) -> Result<(), SessionError> {
        self.liveness.heard(now_ms);
        match &mut self.state {
            State::Closed => Err(SessionError::NotOpen),
            State::Handshaking { handshake, .. } => {
                handshake.handle_message(record)?;
                self.outbox.extend(handshake.poll_transmit());
                if handshake.is_finished() {
                    let State::Handshaking { handshake, .. } = std::mem::replace(&mut self.state, State::Closed) else {
                        return Err(SessionError::NotOpen);
                    };
                    let (peer, transport) = handshake.into_transport()?;
                    if peer.member {
                        self.max_inbound_frame = MAX_LINK_FRAME;
                    }
                    self.events.push_back(Event::Established(peer.clone()));
                    self.state = State::Open { transport: Box::new(transport), peer };
                }
                Ok(())
            }
            State::Open { transport, .. } => {
                let mut plain = vec![0u8; record.len()];
                let n = transport.read_message(record, &mut plain).map_err(|_| SessionError::Decrypt)?;
                self.inbound.extend_from_slice(&plain[..n]);
                self.drain_frames(now_ms)
            }
        }
    }

    fn drain_frames(&mut self, now_ms: u64) -> Result<(), SessionError> {
        loop {
            let Some(len_bytes) = self.inbound.get(..4) else { return Ok(()) };
            let len = u32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]) as usize;
            if len > self.max_inbound_frame {
                return Err(FrameError::TooLarge.into());
            }
            if self.inbound.len() < 4 + len {
                return Ok(());
            }
            let frame = Frame::decode_limited(&self.inbound[4..4 + len], self.max_inbound_frame)?;
            self.inbound.drain(..4 + len);
            match frame {
                Frame::Ping { seq, sent_ms } => self.send(&Frame::Pong { seq, sent_ms })?,
                Frame::Pong { sent_ms, .. } => {
                    if let Some(rtt) = self.liveness.on_pong(now_ms, sent_ms) {
                        self.events.push_back(Event::Rtt(rtt));
                    }
                }
                Frame::Close(reason) => {
                    self.close(format!("the peer closed the link: {reason}"));
                    return Ok(());
                }
                other => self.events.push_back(Event::Frame(other)),
            }
        }
    }

    /// Queues a frame for the peer.
    pub fn send(&mut self, frame: &Frame) -> Result<(), SessionError> {
        let State::Open { transport, .. } = &mut self.state else {
            return Err(SessionError::NotOpen);
        };
        let body = frame.encode_limited(MAX_LINK_FRAME)?;
        let mut plain = Vec::with_capacity(4 + body.len());
        plain.extend_from_slice(&(body.len() as u32).to_be_bytes());
        plain.extend_from_slice(&body);
        for piece in plain.chunks(MAX_RECORD_PLAINTEXT) {
            let mut record = vec![0u8; piece.len() + 16];
            let n = transport.write_message(piece, &mut record).map_err(|_| SessionError::NotOpen)?;
            record.truncate(n);
            self.outbox.push_back(record);
        }
        Ok(())
    }

    /// Sends pings that are due and notices a silent or stuck peer.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        match &self.state {
            State::Closed => {}
            State::Handshaking { started_ms, .. } => {
                if now_ms.saturating_sub(*started_ms) >= HANDSHAKE_TIMEOUT_MS {
                    self.close(SessionError::HandshakeTimeout.to_string());
                }
            }
            State::Open { .. } => {
                if self.liveness.is_dead(now_ms) {
                    self.close(SessionError::Silent.to_string());
                } else if let Some(ping) = self.liveness.poll_ping(now_ms) {
                    // Sending on an open link only fails if it just closed.
                    let _ = self.send(&ping);
                }
            }
        }
    }

    /// When [`Session::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<u64> {
        match &self.state {
            State::Closed => None,
            State::Handshaking { started_ms, .. } => Some(started_ms + HANDSHAKE_TIMEOUT_MS),
            State::Open { .. } => Some(self.liveness.next_timeout_ms()),
        }
    }

    /// Closes the link, telling the peer why if it is open.
    pub fn close(&mut self, reason: String) {
        if matches!(self.state, State::Closed) {
            return;
        }
        if matches!(self.state, State::Open { .. }) {
            let _ = self.send(&Frame::Close(reason.clone()));
        }
        self.state = State::Closed;
        self.events.push_back(Event::Closed(reason));
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.outbox.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    pub fn peer(&self) -> Option<&PeerIdentity> {
        match &self.state {
            State::Open { peer, .. } => Some(peer),
            _ => None,
        }
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    pub fn rtt_ms(&self) -> Option<u32> {
        self.liveness.rtt_ms()
    }
}
