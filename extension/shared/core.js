// Loads the wasm build of mailmesh-core once per page.

import init, { nodeFingerprint, coreVersion } from '../wasm/mailmesh_core.js';

let ready = null;

/** Resolves to the core's functions once the wasm module is instantiated. */
export function loadCore() {
  ready ??= init().then(() => ({ nodeFingerprint, coreVersion }));
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
