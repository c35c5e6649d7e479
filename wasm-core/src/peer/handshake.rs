//! The peer handshake: Noise, plus a signed statement of who each side is.
//!
//! Both ends of every link run it: the host-to-host link on the LAN and the
//! WebRTC data channel between two extensions (where the host runs it on
//! the extension's behalf, because only the host holds the node's keys).
//!
//! - **Members** of one owner's network use `Noise_XXpsk0` with a PSK
//!   derived from the network key, so a node without the key fails on the
//!   very first message and learns nothing, not even a name.
//! - **Other people's nodes** use plain `Noise_XX`; they are authenticated by
//!   node key only and shown as unverified.
//! - In both, each side's payload carries its Ed25519 public key and a
//!   signature over the handshake hash so far and its Noise static key
//!   (the node's X25519 key), which binds the Noise session to the node id.
//! - The **binding** goes into the Noise prologue. For a data channel it is
//!   the two DTLS fingerprints taken from the SDP: if anyone altered the SDP
//!   to sit between the two browsers, the prologues differ and the handshake
//!   fails.
//!
//! First message layout: `[version u8 = 1][mode u8: b'M' | b'S'][noise …]`;
//! later messages are bare Noise messages. Each is at most [`MAX_MESSAGE`].

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::types::{Cipher, Dh, Hash, Random};
use thiserror::Error;

use crate::identity::{NodeId, NodeSecrets};

pub const HANDSHAKE_VERSION: u8 = 1;
pub const MAX_MESSAGE: usize = 65535;
pub const MAX_NAME: usize = 64;
pub const MAX_EMAIL: usize = 254;
const MODE_MEMBER: u8 = b'M';
const MODE_STRANGER: u8 = b'S';
const MEMBER_PATTERN: &str = "Noise_XXpsk0_25519_ChaChaPoly_BLAKE2s";
const STRANGER_PATTERN: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2s";
const PROLOGUE: &[u8] = b"mailmesh peer v1\0";
const SIGNATURE_CONTEXT: &[u8] = b"mailmesh peer identity v1";
const PROOF_VERSION: u8 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Initiator,
    Responder,
}

/// What this side says about itself and how it wants the link protected.
#[derive(Debug, Clone)]
pub struct HandshakeConfig {
    /// Set for a member link: the network's link PSK
    /// ([`crate::drive::keys::NetworkKey::link_psk`]).
    pub network_psk: Option<[u8; 32]>,
    /// Bytes both sides must agree on (empty, or the DTLS fingerprints).
    pub binding: Vec<u8>,
    pub name: String,
    pub email: String,
}

/// Who is on the other end, as proven by the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    pub node_id: NodeId,
    pub ed25519: [u8; 32],
    pub x25519: [u8; 32],
    pub name: String,
    /// The address the peer claims; proven only for members (by the
    /// network key), a claim to verify for everyone else.
    pub email: String,
    /// The peer proved it holds our network key.
    pub member: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HandshakeError {
    #[error("the handshake message is malformed")]
    Malformed,
    #[error("handshake version {0} is not supported")]
    Version(u8),
    #[error("the peer asked for a member link, but this node is in no network")]
    NoNetwork,
    #[error("the handshake failed: wrong network key, altered channel, or tampered message")]
    Crypto,
    #[error("the peer's identity proof is invalid")]
    BadIdentity,
    #[error("a handshake message arrived out of turn")]
    OutOfTurn,
}

/// The handshake as a sans-IO state machine: feed it the peer's messages,
/// send what [`Handshake::poll_transmit`] returns.
pub struct Handshake {
    noise: snow::HandshakeState,
    signing: SigningKey,
    x25519: [u8; 32],
    config: HandshakeConfig,
    outbox: Option<Vec<u8>>,
    peer: Option<PeerIdentity>,
}

impl std::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshake").field("peer", &self.peer).finish_non_exhaustive()
    }
}

impl Handshake {
    /// Starts a handshake as the initiator; the first message is ready to send.
    pub fn initiate(
        secrets: &NodeSecrets,
        config: HandshakeConfig,
        seed: [u8; 32],
    ) -> Result<Handshake, HandshakeError> {
        let mode = if config.network_psk.is_some() { MODE_MEMBER } else { MODE_STRANGER };
        let header = [HANDSHAKE_VERSION, mode];
        let mut noise = build(secrets, &config, mode, seed, Role::Initiator)?;
        let mut buf = vec![0u8; MAX_MESSAGE];
        let n = noise.write_message(&[], &mut buf).map_err(|_| HandshakeError::Crypto)?;
        let mut first = header.to_vec();
        first.extend_from_slice(&buf[..n]);
        Ok(Handshake::with(secrets, noise, config, Some(first)))
    }

    /// Answers a peer's first message. `config.network_psk` is this node's
    /// PSK if it is in a network; it is used only if the peer asks for a
    /// member link, so a stranger's handshake never touches the key.
    pub fn accept(
        secrets: &NodeSecrets,
        mut config: HandshakeConfig,
        first: &[u8],
        seed: [u8; 32],
    ) -> Result<Handshake, HandshakeError> {
        let [version, mode, body @ ..] = first else {
            return Err(HandshakeError::Malformed);
        };
        if *version != HANDSHAKE_VERSION {
            return Err(HandshakeError::Version(*version));
        }
        match *mode {
            MODE_MEMBER if config.network_psk.is_none() => return Err(HandshakeError::NoNetwork),
            MODE_MEMBER => {}
            MODE_STRANGER => config.network_psk = None,
            _ => return Err(HandshakeError::Malformed),
        }
        if first.len() > MAX_MESSAGE {
            return Err(HandshakeError::Malformed);
        }
        let mut noise = build(secrets, &config, *mode, seed, Role::Responder)?;
        let mut payload = vec![0u8; MAX_MESSAGE];
        noise.read_message(body, &mut payload).map_err(|_| HandshakeError::Crypto)?;
        let mut handshake = Handshake::with(secrets, noise, config, None);
        handshake.write_proof()?;
        Ok(handshake)
    }

    fn with(secrets: &NodeSecrets, noise: snow::HandshakeState, config: HandshakeConfig, out: Option<Vec<u8>>) -> Self {
        Handshake {
            noise,
            signing: secrets.signing_key().clone(),
            x25519: secrets.public().x25519,
            config,
            outbox: out,
            peer: None,
        }
    }

    /// Reads the peer's next message (the second for the initiator, the
    /// third for the responder).
    pub fn handle_message(&mut self, message: &[u8]) -> Result<(), HandshakeError> {
        if self.noise.is_handshake_finished() || self.noise.is_my_turn() {
            return Err(HandshakeError::OutOfTurn);
        }
        if message.len() > MAX_MESSAGE {
            return Err(HandshakeError::Malformed);
        }
        let hash_before = self.noise.get_handshake_hash().to_vec();
        let mut payload = vec![0u8; MAX_MESSAGE];
        let n = self.noise.read_message(message, &mut payload).map_err(|_| HandshakeError::Crypto)?;
        let remote_static: [u8; 32] =
            self.noise.get_remote_static().and_then(|s| s.try_into().ok()).ok_or(HandshakeError::Crypto)?;
        let proof = Proof::decode(&payload[..n])?;
        proof.verify(&hash_before, &remote_static)?;
        self.peer = Some(PeerIdentity {
            node_id: NodeId::from_public_key(&proof.ed25519),
            ed25519: proof.ed25519,
            x25519: remote_static,
            name: proof.name,
            email: proof.email,
            member: self.config.network_psk.is_some(),
        });
        if !self.noise.is_handshake_finished() && self.noise.is_my_turn() {
            self.write_proof()?;
        }
        Ok(())
    }

    fn write_proof(&mut self) -> Result<(), HandshakeError> {
        let hash_before = self.noise.get_handshake_hash().to_vec();
        let proof = Proof::sign(&self.signing, &hash_before, &self.x25519, &self.config.name, &self.config.email);
        let mut buf = vec![0u8; MAX_MESSAGE];
        let n = self.noise.write_message(&proof.encode(), &mut buf).map_err(|_| HandshakeError::Crypto)?;
        buf.truncate(n);
        self.outbox = Some(buf);
        Ok(())
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.outbox.take()
    }

    /// The proven peer, once the handshake is complete on this side.
    pub fn peer(&self) -> Option<&PeerIdentity> {
        self.peer.as_ref().filter(|_| self.noise.is_handshake_finished())
    }

    pub fn is_finished(&self) -> bool {
        self.peer().is_some()
    }

    /// Turns a finished handshake into the transport keys of the link.
    pub fn into_transport(self) -> Result<(PeerIdentity, snow::TransportState), HandshakeError> {
        let peer = self.peer.filter(|_| self.noise.is_handshake_finished()).ok_or(HandshakeError::OutOfTurn)?;
        let transport = self.noise.into_transport_mode().map_err(|_| HandshakeError::Crypto)?;
        Ok((peer, transport))
    }
}

fn build(
    secrets: &NodeSecrets,
    config: &HandshakeConfig,
    mode: u8,
    seed: [u8; 32],
    role: Role,
) -> Result<snow::HandshakeState, HandshakeError> {
    let pattern = if mode == MODE_MEMBER { MEMBER_PATTERN } else { STRANGER_PATTERN };
    let params = pattern.parse().map_err(|_| HandshakeError::Crypto)?;
    let mut prologue = PROLOGUE.to_vec();
    prologue.extend_from_slice(&[HANDSHAKE_VERSION, mode]);
    prologue.extend_from_slice(&config.binding);
    let private = secrets.agreement_secret().to_bytes();
    let mut builder = snow::Builder::with_resolver(params, Box::new(SeededResolver { seed }))
        .local_private_key(&private)
        .and_then(|b| b.prologue(&prologue))
        .map_err(|_| HandshakeError::Crypto)?;
    if let (MODE_MEMBER, Some(psk)) = (mode, config.network_psk.as_ref()) {
        builder = builder.psk(0, psk).map_err(|_| HandshakeError::Crypto)?;
    }
    match role {
        Role::Initiator => builder.build_initiator(),
        Role::Responder => builder.build_responder(),
    }
    .map_err(|_| HandshakeError::Crypto)
}

/// A signed statement "I am this Ed25519 key, and this Noise static key and
/// this handshake are mine".
struct Proof {
    ed25519: [u8; 32],
    signature: [u8; 64],
    name: String,
    email: String,
}

impl Proof {
    fn message(hash: &[u8], x25519: &[u8; 32]) -> Vec<u8> {
        [SIGNATURE_CONTEXT, hash, x25519].concat()
    }

    fn sign(key: &SigningKey, hash: &[u8], x25519: &[u8; 32], name: &str, email: &str) -> Proof {
        Proof {
            ed25519: key.verifying_key().to_bytes(),
            signature: key.sign(&Proof::message(hash, x25519)).to_bytes(),
            name: truncate(name, MAX_NAME),
            email: truncate(email, MAX_EMAIL),
        }
    }

    fn verify(&self, hash: &[u8], x25519: &[u8; 32]) -> Result<(), HandshakeError> {
        let key = VerifyingKey::from_bytes(&self.ed25519).map_err(|_| HandshakeError::BadIdentity)?;
        key.verify(&Proof::message(hash, x25519), &Signature::from_bytes(&self.signature))
            .map_err(|_| HandshakeError::BadIdentity)
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = vec![PROOF_VERSION];
        out.extend_from_slice(&self.ed25519);
        out.extend_from_slice(&self.signature);
        for text in [&self.name, &self.email] {
            out.push(text.len() as u8);
            out.extend_from_slice(text.as_bytes());
        }
        out
    }

    fn decode(bytes: &[u8]) -> Result<Proof, HandshakeError> {
        let [version, rest @ ..] = bytes else {
            return Err(HandshakeError::Malformed);
        };
        if *version != PROOF_VERSION {
            return Err(HandshakeError::Version(*version));
        }
        if rest.len() < 96 {
            return Err(HandshakeError::Malformed);
        }
        let (keys, mut rest) = rest.split_at(96);
        let mut texts = Vec::with_capacity(2);
        for max in [MAX_NAME, MAX_EMAIL] {
            let [len, tail @ ..] = rest else {
                return Err(HandshakeError::Malformed);
            };
            let len = *len as usize;
            if len > max || tail.len() < len {
                return Err(HandshakeError::Malformed);
            }
            texts.push(std::str::from_utf8(&tail[..len]).map_err(|_| HandshakeError::Malformed)?.to_string());
            rest = &tail[len..];
        }
        if !rest.is_empty() {
            return Err(HandshakeError::Malformed);
        }
        let email = texts.pop().unwrap_or_default();
        let name = texts.pop().unwrap_or_default();
        let mut ed25519 = [0u8; 32];
        ed25519.copy_from_slice(&keys[..32]);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&keys[32..]);
        Ok(Proof { ed25519, signature, name, email })
    }
}

fn truncate(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// Snow's default primitives, with randomness drawn from a seed the caller
/// supplies (BLAKE3 in XOF mode as the generator): the core never draws
/// random numbers itself.
struct SeededResolver {
    seed: [u8; 32],
}

struct SeededRandom(blake3::OutputReader);

impl Random for SeededRandom {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        self.0.fill(dest);
        Ok(())
    }
}

impl CryptoResolver for SeededResolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        let mut hasher = blake3::Hasher::new_derive_key("mailmesh 2026-11 handshake rng v1");
        hasher.update(&self.seed);
        Some(Box::new(SeededRandom(hasher.finalize_xof())))
    }

    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        DefaultResolver.resolve_dh(choice)
    }

    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        DefaultResolver.resolve_hash(choice)
    }

    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        DefaultResolver.resolve_cipher(choice)
    }
}
