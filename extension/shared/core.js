// Loads the wasm build of mailmesh-core once per page and hands out the
// module's exports (nodeFingerprint, Encoder, Decoder, ContentHasher, …).

import init, * as core from '../wasm/mailmesh_core.js';

let ready = null;

/** Resolves to the core's exports once the wasm module is instantiated. */
export function loadCore() {
  ready ??= init().then(() => core);
  return ready;
}

/** Lowercase hex to bytes; throws on anything else. */
export function hexToBytes(hex) {
  if (typeof hex !== 'string' || hex.length % 2 !== 0 || /[^0-9a-f]/i.test(hex)) {
    throw new Error('not a hex string');
  }
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

export function bytesToHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}
