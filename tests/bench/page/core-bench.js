// In-page half of `scripts/bench core`: the drive pipeline as wasm, and a
// pure-JavaScript baseline (@noble/ciphers + @noble/hashes), on the same
// data in the same page. Results in MB/s (10^6 bytes) of file data.

import { chacha20poly1305 } from '/noble/ciphers/chacha.js';
import { blake3 } from '/noble/hashes/blake3.js';

const CHUNK = 1024 * 1024;
const K = 4;
const M = 2;

function randomBytes(size) {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i += 65536) crypto.getRandomValues(out.subarray(i, Math.min(size, i + 65536)));
  return out;
}

function best(runs, fn) {
  let min = Infinity;
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    fn();
    min = Math.min(min, performance.now() - start);
  }
  return min / 1000;
}

window.benchWasm = async (moduleUrl, mib) => {
  const core = await import(moduleUrl);
  await core.default();
  const size = mib * CHUNK;
  const data = randomBytes(size);
  const id = new Uint8Array(32).fill(9);
  const key = new Uint8Array(32).fill(7);
  // Encodes the file, handing each chunk's fragments to `take` as a sender
  // would receive them (copied out of wasm memory).
  const encode = (take) => {
    const encoder = new core.Encoder(K, M, CHUNK, id, key, size);
    for (let at = 0; at < size; at += CHUNK) {
      encoder.push(data.subarray(at, at + CHUNK));
      for (let c = encoder.pollChunk(); c; c = encoder.pollChunk()) {
        take(c.index, c.shardLen, c.bytes());
        c.free();
      }
    }
    const ids = encoder.finish();
    encoder.free();
    return ids;
  };
  let sent = 0;
  const encodeSecs = best(3, () => encode((index, shardLen, bytes) => { sent += bytes[0]; }));
  // Untimed: keep the fragments for the decode runs.
  const chunks = [];
  const ids = encode((index, shardLen, bytes) => chunks.push({ index, shardLen, bytes }));
  const decoder = new core.Decoder(K, M, CHUNK, id, key, size, ids);
  let total = 0;
  const decodeSecs = best(3, () => {
    total = 0;
    for (const c of chunks) {
      const fragments = [];
      for (let i = 0; i < K + M; i++) fragments.push(i < K ? c.bytes.subarray(i * c.shardLen, (i + 1) * c.shardLen) : undefined);
      total += decoder.decodeChunk(c.index, fragments).length;
    }
  });
  if (total !== size) throw new Error(`decoded ${total} of ${size} bytes`);
  return { encode_mbps: size / 1e6 / encodeSecs, decode_mbps: size / 1e6 / decodeSecs };
};

// The baseline seals each chunk and hashes as many bytes as the real
// pipeline's k + m fragments; it does no Reed-Solomon coding, which favours it.
window.benchJs = async (mib) => {
  const size = mib * CHUNK;
  const data = randomBytes(size);
  const key = new Uint8Array(32).fill(7);
  const aad = new Uint8Array(45);
  const nonceFor = (i) => { const n = new Uint8Array(12); new DataView(n.buffer).setUint32(0, i, true); return n; };
  let sealed = [];
  const encodeSecs = best(2, () => {
    sealed = [];
    for (let at = 0, i = 0; at < size; at += CHUNK, i++) {
      const s = chacha20poly1305(key, nonceFor(i), aad).encrypt(data.subarray(at, at + CHUNK));
      const shard = Math.ceil(s.length / K);
      for (let j = 0; j < K + M; j++) blake3(s.subarray((j % K) * shard, (j % K + 1) * shard));
      sealed.push(s);
    }
  });
  const decodeSecs = best(2, () => {
    sealed.forEach((s, i) => {
      const shard = Math.ceil(s.length / K);
      for (let j = 0; j < K; j++) blake3(s.subarray(j * shard, (j + 1) * shard));
      chacha20poly1305(key, nonceFor(i), aad).decrypt(s);
    });
  });
  return { encode_mbps: size / 1e6 / encodeSecs, decode_mbps: size / 1e6 / decodeSecs };
};

window.benchReady = true;
