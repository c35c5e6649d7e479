//! JavaScript bindings, compiled only for `wasm32`.
//!
//! Extension pages load the generated `extension/wasm/mailmesh_core.js`
//! and use these. Bytes cross as `Uint8Array`; sizes and indexes as
//! JavaScript numbers (exact up to 2^53, beyond the largest file the format
//! allows). Errors become JavaScript `Error`s carrying the same message a
//! native caller would see.

use wasm_bindgen::prelude::*;

use crate::drive::{self, CodingParams, FileDecoder, FileEncoder, FileId, FileKey, FragmentId, NetworkKey};
use crate::identity::NodeId;
use crate::peer::{self, frame::Frame};

/// The human-readable fingerprint (`k4pq-7x2m-…`) of a node's Ed25519
/// public key.
#[wasm_bindgen(js_name = nodeFingerprint)]
pub fn node_fingerprint(ed25519_public: &[u8]) -> Result<String, JsError> {
    Ok(NodeId::from_public_key_slice(ed25519_public)?.fingerprint())
}

/// The node id (unbroken lowercase base32) of a node's Ed25519 public key.
#[wasm_bindgen(js_name = nodeId)]
pub fn node_id(ed25519_public: &[u8]) -> Result<String, JsError> {
    Ok(NodeId::from_public_key_slice(ed25519_public)?.to_string())
}

/// The version of the core compiled into this wasm module.
#[wasm_bindgen(js_name = coreVersion)]
pub fn core_version() -> String {
    crate::VERSION.to_string()
}

fn bytes32(what: &str, bytes: &[u8]) -> Result<[u8; 32], JsError> {
    bytes.try_into().map_err(|_| JsError::new(&format!("{what} must be 32 bytes, not {}", bytes.len())))
}

fn size_from(n: f64) -> Result<u64, JsError> {
    if n.is_finite() && n >= 0.0 && n.fract() == 0.0 && n <= 9_007_199_254_740_991.0 {
        Ok(n as u64)
    } else {
        Err(JsError::new(&format!("{n} is not a valid size or index")))
    }
}

fn params(k: u8, m: u8, chunk_size: u32) -> Result<CodingParams, JsError> {
    Ok(CodingParams::new(k, m, chunk_size)?)
}

/// Streams plaintext into its BLAKE3 content hash.
#[wasm_bindgen]
pub struct ContentHasher(drive::ContentHasher);

#[wasm_bindgen]
impl ContentHasher {
    #[wasm_bindgen(constructor)]
    pub fn new() -> ContentHasher {
        ContentHasher(drive::ContentHasher::new())
    }

    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The 32-byte hash of everything fed so far.
    pub fn finalize(&self) -> Vec<u8> {
        self.0.finalize().0.to_vec()
    }
}

impl Default for ContentHasher {
    fn default() -> Self {
        ContentHasher::new()
    }
}

/// File id (bytes 0..32) and file key (bytes 32..64) for a content hash in
/// a network, with the given coding parameters.
#[wasm_bindgen(js_name = convergentKeys)]
pub fn convergent_keys(
    network_key: &[u8],
    content_hash: &[u8],
    k: u8,
    m: u8,
    chunk_size: u32,
) -> Result<Vec<u8>, JsError> {
    let network = NetworkKey::from_bytes(bytes32("the network key", network_key)?);
    let content = drive::ContentHash(bytes32("the content hash", content_hash)?);
    let (id, key) = drive::convergent_keys(&network, &content, &params(k, m, chunk_size)?);
    let mut out = id.0.to_vec();
    out.extend_from_slice(key.as_bytes());
    Ok(out)
}

/// One coded chunk: `shardCount` fragments of `shardLen` bytes, back to back.
#[wasm_bindgen]
pub struct Chunk(drive::EncodedChunk);

#[wasm_bindgen]
impl Chunk {
    #[wasm_bindgen(getter)]
    pub fn index(&self) -> f64 {
        self.0.index as f64
    }
    #[wasm_bindgen(getter, js_name = shardLen)]
    pub fn shard_len(&self) -> usize {
        self.0.shard_len
    }
    #[wasm_bindgen(getter, js_name = shardCount)]
    pub fn shard_count(&self) -> usize {
        self.0.ids.len()
    }
    /// All fragments, concatenated.
    pub fn bytes(&self) -> Vec<u8> {
        self.0.bytes.clone()
    }
    /// Length of [`Chunk::bytes`].
    #[wasm_bindgen(getter, js_name = byteLength)]
    pub fn byte_length(&self) -> usize {
        self.0.bytes.len()
    }
    /// Copies all fragments into `out` at `offset`, so a page can reuse one
    /// buffer for every chunk instead of making garbage of each.
    #[wasm_bindgen(js_name = copyInto)]
    pub fn copy_into(&self, out: &js_sys::Uint8Array, offset: u32) -> Result<(), JsError> {
        let end = offset as usize + self.0.bytes.len();
        if end > out.length() as usize {
            return Err(JsError::new("the buffer is too small for the chunk"));
        }
        out.subarray(offset, end as u32).copy_from(&self.0.bytes);
        Ok(())
    }
    /// All fragment ids (32 bytes each), in shard order.
    pub fn ids(&self) -> Vec<u8> {
        self.0.ids.iter().flat_map(|id| id.0).collect()
    }
}

/// Streaming encoder: `push` file bytes, take chunks with `pollChunk` until
/// it returns `undefined`, and call `finish` at the end.
#[wasm_bindgen]
pub struct Encoder(Option<FileEncoder>);

#[wasm_bindgen]
impl Encoder {
    #[wasm_bindgen(constructor)]
    pub fn new(k: u8, m: u8, chunk_size: u32, file_id: &[u8], file_key: &[u8], size: f64) -> Result<Encoder, JsError> {
        let id = FileId(bytes32("the file id", file_id)?);
        let key = FileKey::from_bytes(bytes32("the file key", file_key)?);
        Ok(Encoder(Some(FileEncoder::new(params(k, m, chunk_size)?, id, &key, size_from(size)?)?)))
    }

    pub fn push(&mut self, data: &[u8]) -> Result<(), JsError> {
        Ok(self.inner()?.push(data)?)
    }

    #[wasm_bindgen(js_name = pollChunk)]
    pub fn poll_chunk(&mut self) -> Result<Option<Chunk>, JsError> {
        Ok(self.inner()?.poll_chunk().map(Chunk))
    }

    /// Every fragment id of the file (32 bytes each), for the manifest.
    pub fn finish(&mut self) -> Result<Vec<u8>, JsError> {
        let encoder = self.0.take().ok_or_else(|| JsError::new("the encoder was already finished"))?;
        Ok(encoder.finish()?.fragment_ids.iter().flat_map(|id| id.0).collect())
    }

    fn inner(&mut self) -> Result<&mut FileEncoder, JsError> {
        self.0.as_mut().ok_or_else(|| JsError::new("the encoder was already finished"))
    }
}

/// Writes the `/bulk` upload header for the file's bytes from `offset`
/// (`drive::upload`) into the first bytes of `out`, so a page reads the
/// file straight into the message after it.
#[wasm_bindgen(js_name = writePutBytesHeader)]
pub fn write_put_bytes_header(out: &js_sys::Uint8Array, offset: f64) -> Result<(), JsError> {
    let header = drive::upload::put_bytes_header(size_from(offset)?);
    if out.length() < header.len() as u32 {
        return Err(JsError::new("the buffer is too small for the upload header"));
    }
    out.subarray(0, header.len() as u32).copy_from(&header);
    Ok(())
}

/// Bytes [`write_put_bytes_header`] writes.
#[wasm_bindgen(js_name = putBytesHeaderLength)]
pub fn put_bytes_header_length() -> usize {
    drive::upload::HEADER_LEN
}

/// Restores chunks from any `k` of their fragments.
#[wasm_bindgen]
pub struct Decoder(FileDecoder);

#[wasm_bindgen]
impl Decoder {
    /// `ids` are all fragment ids of the file, 32 bytes each, chunk by chunk.
    #[wasm_bindgen(constructor)]
    pub fn new(
        k: u8,
        m: u8,
        chunk_size: u32,
        file_id: &[u8],
        file_key: &[u8],
        size: f64,
        ids: &[u8],
    ) -> Result<Decoder, JsError> {
        if !ids.len().is_multiple_of(32) {
            return Err(JsError::new("fragment ids must be 32 bytes each"));
        }
        let ids =
            ids.chunks_exact(32).map(|c| bytes32("a fragment id", c).map(FragmentId)).collect::<Result<Vec<_>, _>>()?;
        let keys = drive::FileKeys::Whole {
            file_id: FileId(bytes32("the file id", file_id)?),
            key: FileKey::from_bytes(bytes32("the file key", file_key)?),
        };
        Ok(Decoder(FileDecoder::new(params(k, m, chunk_size)?, keys, size_from(size)?, ids)?))
    }

    #[wasm_bindgen(js_name = chunkCount)]
    pub fn chunk_count(&self) -> f64 {
        self.0.chunk_count() as f64
    }

    /// The plaintext of chunk `index`. `fragments` holds one entry per shard:
    /// a `Uint8Array`, or `undefined`/`null` where the fragment is missing.
    #[wasm_bindgen(js_name = decodeChunk)]
    pub fn decode_chunk(&self, index: f64, fragments: js_sys::Array) -> Result<Vec<u8>, JsError> {
        let owned = fragments
            .iter()
            .enumerate()
            .map(|(i, v)| {
                if v.is_undefined() || v.is_null() {
                    Ok(None)
                } else {
                    v.dyn_ref::<js_sys::Uint8Array>()
                        .map(|a| Some(a.to_vec()))
                        .ok_or_else(|| JsError::new(&format!("fragment {i} is not a Uint8Array")))
                }
            })
            .collect::<Result<Vec<Option<Vec<u8>>>, JsError>>()?;
        let borrowed: Vec<Option<&[u8]>> = owned.iter().map(|f| f.as_deref()).collect();
        Ok(self.0.decode_chunk(size_from(index)?, &borrowed)?)
    }
}

// ---- Links: the frames extensions trade on data channels, and liveness ----

fn encode(frame: &Frame) -> Result<Vec<u8>, JsError> {
    Ok(frame.encode()?)
}

/// A `Data` frame for `topic` (at most 256 KiB of payload).
#[wasm_bindgen(js_name = encodeDataFrame)]
pub fn encode_data_frame(topic: &str, payload: &[u8]) -> Result<Vec<u8>, JsError> {
    encode(&Frame::Data { topic: topic.to_string(), payload: payload.to_vec() })
}

#[wasm_bindgen(js_name = encodePongFrame)]
pub fn encode_pong_frame(seq: u32, sent_ms: f64) -> Result<Vec<u8>, JsError> {
    encode(&Frame::Pong { seq, sent_ms: size_from(sent_ms)? })
}

/// A frame read off a data channel or the relay.
#[wasm_bindgen]
pub struct DecodedFrame {
    kind: &'static str,
    topic: String,
    payload: Vec<u8>,
    seq: u32,
    sent_ms: u64,
}

#[wasm_bindgen]
impl DecodedFrame {
    /// `ping`, `pong`, `data`, `signal` or `close`.
    #[wasm_bindgen(getter)]
    pub fn kind(&self) -> String {
        self.kind.to_string()
    }
    #[wasm_bindgen(getter)]
    pub fn topic(&self) -> String {
        self.topic.clone()
    }
    /// The payload (moved out: a second call returns an empty array).
    #[wasm_bindgen(js_name = takePayload)]
    pub fn take_payload(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.payload)
    }
    #[wasm_bindgen(getter)]
    pub fn seq(&self) -> u32 {
        self.seq
    }
    #[wasm_bindgen(getter, js_name = sentMs)]
    pub fn sent_ms(&self) -> f64 {
        self.sent_ms as f64
    }
}

#[wasm_bindgen(js_name = decodeFrame)]
pub fn decode_frame(bytes: &[u8]) -> Result<DecodedFrame, JsError> {
    let mut out = DecodedFrame { kind: "", topic: String::new(), payload: Vec::new(), seq: 0, sent_ms: 0 };
    match Frame::decode(bytes)? {
        Frame::Ping { seq, sent_ms } => (out.kind, out.seq, out.sent_ms) = ("ping", seq, sent_ms),
        Frame::Pong { seq, sent_ms } => (out.kind, out.seq, out.sent_ms) = ("pong", seq, sent_ms),
        Frame::Data { topic, payload } => (out.kind, out.topic, out.payload) = ("data", topic, payload),
        Frame::Signal(payload) => (out.kind, out.payload) = ("signal", payload),
        Frame::Close(reason) => (out.kind, out.topic) = ("close", reason),
    }
    Ok(out)
}

/// The ping schedule and "gone" rule of [`peer::liveness::Liveness`] for a
/// data channel; the caller sends what `pollPing` returns.
#[wasm_bindgen]
pub struct ChannelLiveness(peer::liveness::Liveness);

#[wasm_bindgen]
impl ChannelLiveness {
    #[wasm_bindgen(constructor)]
    pub fn new(now_ms: f64) -> ChannelLiveness {
        ChannelLiveness(peer::liveness::Liveness::new(now_ms as u64))
    }
    pub fn heard(&mut self, now_ms: f64) {
        self.0.heard(now_ms as u64);
    }
    /// An encoded ping frame if one is due now.
    #[wasm_bindgen(js_name = pollPing)]
    pub fn poll_ping(&mut self, now_ms: f64) -> Option<Vec<u8>> {
        self.0.poll_ping(now_ms as u64).and_then(|ping| ping.encode().ok())
    }
    /// Records a pong; returns the smoothed round-trip time in ms.
    #[wasm_bindgen(js_name = onPong)]
    pub fn on_pong(&mut self, now_ms: f64, sent_ms: f64) -> Option<u32> {
        self.0.on_pong(now_ms as u64, sent_ms as u64)
    }
    #[wasm_bindgen(js_name = isDead)]
    pub fn is_dead(&self, now_ms: f64) -> bool {
        self.0.is_dead(now_ms as u64)
    }
    #[wasm_bindgen(js_name = nextTimeoutMs)]
    pub fn next_timeout_ms(&self) -> f64 {
        self.0.next_timeout_ms() as f64
    }
}
