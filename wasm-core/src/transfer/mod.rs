//! Direct file send between people: the messages, the sealing of each
//! chunk, and the two state machines ([`Outgoing`], [`Incoming`]).
//!
//! ```text
//! sender                                   receiver
//! Offer (name, size, content hash, key) ─▶ shown; the person accepts or declines
//!                                       ◀─ Accept { next }   (also after any break)
//! Chunk { index, sealed } × window      ─▶ open_chunk: tag, index, length checked
//!                                       ◀─ Ack { next }      (in-order, verified)
//! …                                        BLAKE3 of the whole file = offer's hash
//!                                       ◀─ Done
//! ```
//!
//! The receiver is the authority on progress: it keeps only chunks that
//! verified, in order, so after a disconnect or a restart of either side it
//! says `Accept { next }` with the count it holds and the sender goes on
//! from there. Each chunk is sealed with ChaCha20-Poly1305 under a key
//! drawn for this transfer (carried in the offer, inside the link's own
//! encryption), nonce = chunk index, associated data = transfer id, index
//! and whether it is the last: a chunk can be neither altered, moved nor
//! cut off unnoticed. Nothing here does IO; randomness and time come in.
//!
//! Two timers keep a transfer going over a link that loses messages, both
//! driven by the caller's clock as `peer::session`'s are (`poll_timeout`
//! says when, `handle_timeout(now)` acts): chunks the receiver has not
//! acknowledged within [`STALL_MS`] of the last progress are sent again, and
//! a receiver that heard nothing for [`QUIET_MS`] asks the sender to go on
//! from what it holds.
//!
//! Every message is `MMTX | version u8 | tag u8 | fields`, little endian.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use thiserror::Error;

use crate::wire::{self, Reader, WireError};

#[cfg(test)]
mod tests;

pub const TRANSFER_VERSION: u8 = 1;
/// Plaintext bytes per chunk: one link frame each, with room to spare.
pub const CHUNK_SIZE: u32 = 256 * 1024;
/// Chunks the sender may have in flight before an acknowledgement.
pub const WINDOW: u64 = 16;
/// Unacknowledged chunks this long after the last progress were lost: the
/// sender goes back to the first unacknowledged one.
pub const STALL_MS: u64 = 8_000;
/// Silence from the sender this long: the receiver asks it to go on.
pub const QUIET_MS: u64 = 4_000;
/// Longest file name or media type kept.
pub const MAX_NAME: usize = 1024;
const TAG_LEN: usize = 16;
const MAGIC: &[u8; 4] = b"MMTX";

wire::id16!(
    /// Names one transfer; drawn at random by the sender.
    TransferId
);

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TransferError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("a text of the transfer message is too long or not valid UTF-8")]
    BadText,
    #[error("unknown transfer message")]
    UnknownMessage,
    #[error("the file is too large to send")]
    TooLarge,
    #[error("chunk {0} does not verify: it was altered, or is not from this transfer")]
    BadChunk(u64),
    #[error("the received file does not match what was offered (its content hash differs)")]
    WrongContent,
}

/// What the sender proposes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub id: TransferId,
    /// The file name, without any path.
    pub name: String,
    pub size: u64,
    pub media_type: String,
    pub chunk_size: u32,
    /// BLAKE3 of the whole plaintext.
    pub content_hash: [u8; 32],
    pub key: [u8; 32],
}

impl Offer {
    /// An offer with a file name stripped of any directory part.
    pub fn new(
        id: TransferId,
        name: &str,
        size: u64,
        media_type: &str,
        content_hash: [u8; 32],
        key: [u8; 32],
    ) -> Result<Offer, TransferError> {
        let name = safe_name(name);
        if name.len() > MAX_NAME || media_type.len() > MAX_NAME {
            return Err(TransferError::BadText);
        }
        let offer = Offer { id, name, size, media_type: media_type.into(), chunk_size: CHUNK_SIZE, content_hash, key };
        // Chunk indexes must fit the nonce and the counts stay sane.
        if offer.chunk_count() > u32::MAX as u64 {
            return Err(TransferError::TooLarge);
        }
        Ok(offer)
    }

    /// Chunks in the file (an empty file has one, empty).
    pub fn chunk_count(&self) -> u64 {
        self.size.div_ceil(self.chunk_size.max(1) as u64).max(1)
    }

    /// Plaintext length of chunk `index`.
    pub fn chunk_len(&self, index: u64) -> usize {
        let start = index.saturating_mul(self.chunk_size as u64);
        self.size.saturating_sub(start).min(self.chunk_size as u64) as usize
    }

    fn is_last(&self, index: u64) -> bool {
        index + 1 == self.chunk_count()
    }

    fn aad(&self, index: u64) -> Vec<u8> {
        let mut aad = self.id.0.to_vec();
        aad.extend_from_slice(&index.to_le_bytes());
        aad.push(self.is_last(index) as u8);
        aad
    }

    fn nonce(index: u64) -> Nonce {
        let mut nonce = [0u8; 12];
        nonce[..8].copy_from_slice(&index.to_le_bytes());
        Nonce::from(nonce)
    }

    /// Seals chunk `index` for the wire.
    pub fn seal_chunk(&self, index: u64, plain: &[u8]) -> Vec<u8> {
        ChaCha20Poly1305::new((&self.key).into())
            .encrypt(&Self::nonce(index), Payload { msg: plain, aad: &self.aad(index) })
            // Only inputs beyond 256 GiB fail; a chunk is 256 KiB.
            .unwrap_or_default()
    }

    /// Opens and checks chunk `index` (tag and length).
    pub fn open_chunk(&self, index: u64, sealed: &[u8]) -> Result<Vec<u8>, TransferError> {
        if index >= self.chunk_count() || sealed.len() != self.chunk_len(index) + TAG_LEN {
            return Err(TransferError::BadChunk(index));
        }
        ChaCha20Poly1305::new((&self.key).into())
            .decrypt(&Self::nonce(index), Payload { msg: sealed, aad: &self.aad(index) })
            .map_err(|_| TransferError::BadChunk(index))
    }
}

/// A file name with no directory part and nothing hidden
/// ([`crate::names::visible`]: no control characters, no bidirectional
/// overrides).
pub fn safe_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let clean = crate::names::visible(base);
    match clean.as_str() {
        "" | "." | ".." => "file".into(),
        name => name.into(),
    }
}

/// Every message of a transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferMessage {
    Offer(Offer),
    /// The receiver takes the file from chunk `next` on (0 at first; the
    /// chunks it already holds after a break).
    Accept {
        id: TransferId,
        next: u64,
    },
    Decline {
        id: TransferId,
    },
    Chunk {
        id: TransferId,
        index: u64,
        sealed: Vec<u8>,
    },
    /// The receiver holds every chunk before `next`, verified.
    Ack {
        id: TransferId,
        next: u64,
    },
    /// The whole file arrived and matched the offer's hash.
    Done {
        id: TransferId,
    },
    /// Either side gives up; the reason is for the person.
    Cancel {
        id: TransferId,
        reason: String,
    },
}

impl TransferMessage {
    pub fn id(&self) -> TransferId {
        match self {
            TransferMessage::Offer(o) => o.id,
            TransferMessage::Accept { id, .. }
            | TransferMessage::Decline { id }
            | TransferMessage::Chunk { id, .. }
            | TransferMessage::Ack { id, .. }
            | TransferMessage::Done { id }
            | TransferMessage::Cancel { id, .. } => *id,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = wire::header(MAGIC, TRANSFER_VERSION);
        let tag = match self {
            TransferMessage::Offer(_) => 0,
            TransferMessage::Accept { .. } => 1,
            TransferMessage::Decline { .. } => 2,
            TransferMessage::Chunk { .. } => 3,
            TransferMessage::Ack { .. } => 4,
            TransferMessage::Done { .. } => 5,
            TransferMessage::Cancel { .. } => 6,
        };
        out.push(tag);
        out.extend_from_slice(&self.id().0);
        match self {
            TransferMessage::Offer(o) => {
                wire::put_text(&mut out, &o.name);
                out.extend_from_slice(&o.size.to_le_bytes());
                wire::put_text(&mut out, &o.media_type);
                out.extend_from_slice(&o.chunk_size.to_le_bytes());
                out.extend_from_slice(&o.content_hash);
                out.extend_from_slice(&o.key);
            }
            TransferMessage::Accept { next, .. } | TransferMessage::Ack { next, .. } => {
                out.extend_from_slice(&next.to_le_bytes())
            }
            TransferMessage::Chunk { index, sealed, .. } => {
                out.extend_from_slice(&index.to_le_bytes());
                out.extend_from_slice(sealed);
            }
            TransferMessage::Cancel { reason, .. } => wire::put_text(&mut out, reason),
            TransferMessage::Decline { .. } | TransferMessage::Done { .. } => {}
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<TransferMessage, TransferError> {
        let mut r = Reader::new(bytes, MAGIC, TRANSFER_VERSION, "transfer message")?;
        let tag = r.array::<1>()?[0];
        let id = TransferId(r.array()?);
        let message = match tag {
            0 => {
                let name = r.text(MAX_NAME)?;
                let size = r.u64()?;
                let media_type = r.text(MAX_NAME)?;
                let chunk_size = r.u32()?;
                let content_hash = r.array()?;
                let key = r.array()?;
                if chunk_size == 0 || chunk_size > CHUNK_SIZE || safe_name(&name) != name {
                    return Err(TransferError::BadText);
                }
                TransferMessage::Offer(Offer { id, name, size, media_type, chunk_size, content_hash, key })
            }
            1 => TransferMessage::Accept { id, next: r.u64()? },
            2 => TransferMessage::Decline { id },
            3 => {
                let index = r.u64()?;
                TransferMessage::Chunk { id, index, sealed: r.rest().to_vec() }
            }
            4 => TransferMessage::Ack { id, next: r.u64()? },
            5 => TransferMessage::Done { id },
            6 => TransferMessage::Cancel { id, reason: r.text(MAX_NAME)? },
            _ => return Err(TransferError::UnknownMessage),
        };
        r.end()?;
        Ok(message)
    }
}

/// The sender's side: which chunk to send next, within the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub offer: Offer,
    /// Every chunk before this is acknowledged.
    pub acked: u64,
    /// The next chunk to send.
    pub next: u64,
    pub accepted: bool,
    /// When the receiver last made progress (or the window last opened),
    /// Unix ms: the start of the stall timer.
    progress_at: u64,
}

impl Outgoing {
    pub fn new(offer: Offer) -> Outgoing {
        Outgoing { offer, acked: 0, next: 0, accepted: false, progress_at: 0 }
    }

    /// The receiver (re)starts at `next`: what it holds counts as acked.
    pub fn handle_accept(&mut self, next: u64, now_ms: u64) {
        let next = next.min(self.offer.chunk_count());
        self.accepted = true;
        self.acked = next;
        self.next = next;
        self.progress_at = now_ms;
    }

    pub fn handle_ack(&mut self, next: u64, now_ms: u64) {
        let next = next.min(self.offer.chunk_count());
        if next > self.acked {
            self.acked = next;
            self.next = self.next.max(next);
            self.progress_at = now_ms;
        }
    }

    /// The chunk to read and send now, if the window has room.
    pub fn poll_chunk(&mut self, now_ms: u64) -> Option<u64> {
        if !self.accepted || self.next >= self.offer.chunk_count() || self.next >= self.acked + WINDOW {
            return None;
        }
        if self.next == self.acked {
            // Nothing was in flight: the stall timer starts now.
            self.progress_at = now_ms;
        }
        self.next += 1;
        Some(self.next - 1)
    }

    /// When [`Outgoing::handle_timeout`] has something to do: only while
    /// chunks are in flight.
    pub fn poll_timeout(&self) -> Option<u64> {
        (self.next > self.acked).then(|| self.progress_at.saturating_add(STALL_MS))
    }

    /// Chunks in flight with no progress for [`STALL_MS`] were lost: send
    /// again from the first unacknowledged one. Returns whether it did.
    pub fn handle_timeout(&mut self, now_ms: u64) -> bool {
        if self.poll_timeout().is_some_and(|at| now_ms >= at) {
            self.next = self.acked;
            self.progress_at = now_ms;
            return true;
        }
        false
    }

    /// Bytes the receiver holds.
    pub fn done_bytes(&self) -> u64 {
        self.acked.saturating_mul(self.offer.chunk_size as u64).min(self.offer.size)
    }

    pub fn is_complete(&self) -> bool {
        self.acked >= self.offer.chunk_count()
    }
}

/// What the receiver does with a chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// Verified and next in order: append it, then acknowledge `next`.
    Append { plain: Vec<u8>, next: u64 },
    /// A chunk already held: acknowledge `next` again (the last
    /// acknowledgement may have been lost, and the sender sent it again).
    Again { next: u64 },
    /// A chunk ahead of the gap (after a break): ignore it.
    Ignore,
}

/// The receiver's side: keeps verified chunks in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub offer: Offer,
    /// Chunks held (verified, in order).
    pub next: u64,
    /// When the sender was last heard from, Unix ms (`None`: not since this
    /// receiver was made, so the first timeout asks at once).
    heard_at: Option<u64>,
}

impl Incoming {
    /// A receiver that already holds `next` chunks (0 for a new transfer).
    pub fn new(offer: Offer, next: u64) -> Incoming {
        let next = next.min(offer.chunk_count());
        Incoming { offer, next, heard_at: None }
    }

    /// The sender said something (a chunk, even one not kept).
    pub fn heard(&mut self, now_ms: u64) {
        self.heard_at = Some(self.heard_at.map_or(now_ms, |at| at.max(now_ms)));
    }

    /// When [`Incoming::handle_timeout`] has something to do: while chunks
    /// are missing.
    pub fn poll_timeout(&self) -> Option<u64> {
        (!self.is_complete()).then(|| self.heard_at.map_or(0, |at| at.saturating_add(QUIET_MS)))
    }

    /// After [`QUIET_MS`] without a word from the sender: the chunk to ask
    /// it to go on from (an `Accept { next }`), once per quiet spell.
    pub fn handle_timeout(&mut self, now_ms: u64) -> Option<u64> {
        if self.poll_timeout().is_some_and(|at| now_ms >= at) {
            self.heard_at = Some(now_ms);
            return Some(self.next);
        }
        None
    }

    /// How many whole chunks a partial file of `len` bytes holds.
    pub fn chunks_in(&self, len: u64) -> u64 {
        if len >= self.offer.size {
            return if self.offer.size == 0 { 0 } else { self.offer.chunk_count() };
        }
        len / self.offer.chunk_size as u64
    }

    pub fn handle_chunk(&mut self, index: u64, sealed: &[u8]) -> Result<Received, TransferError> {
        if index < self.next {
            return Ok(Received::Again { next: self.next });
        }
        if index > self.next {
            return Ok(Received::Ignore);
        }
        let plain = self.offer.open_chunk(index, sealed)?;
        self.next += 1;
        Ok(Received::Append { plain, next: self.next })
    }

    pub fn done_bytes(&self) -> u64 {
        self.next.saturating_mul(self.offer.chunk_size as u64).min(self.offer.size)
    }

    pub fn is_complete(&self) -> bool {
        self.next >= self.offer.chunk_count()
    }

    /// The last check, over the whole file as written.
    pub fn finish(&self, content_hash: &[u8; 32]) -> Result<(), TransferError> {
        use subtle::ConstantTimeEq;
        if self.is_complete() && bool::from(content_hash.ct_eq(&self.offer.content_hash)) {
            Ok(())
        } else {
            Err(TransferError::WrongContent)
        }
    }
}
