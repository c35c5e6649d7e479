// Typed messages on the mesh socket: the loopback WebSocket between the
// offscreen document and its engine. Mirrors
// native-host/src/mesh/extension_api.rs: keep the two in step.
//
// Text frames carry one JSON object; binary frames carry relayed traffic:
// [id length u8][node id, ASCII][frame bytes].

/** Messages from the engine. */
export const FromEngine = {
  HELLO: 'hello',
  PEERS: 'peers',
  SIGNAL: 'signal',
  CHANNEL_MESSAGE: 'channel_message',
  CHANNEL_RESULT: 'channel_result',
  /** {to, frame: base64}: the engine's frame for a person's node, to put on the channel. */
  FORWARD: 'forward',
};

/** Messages to the engine. */
export const toEngine = {
  signal: (to, payload) => ({ type: 'signal', to, payload }),
  /** @param {'initiator' | 'responder'} role */
  channelOpen: (peer, channel, role, localFingerprint, remoteFingerprint) => ({
    type: 'channel_open',
    peer,
    channel,
    role,
    local_fingerprint: localFingerprint,
    remote_fingerprint: remoteFingerprint,
  }),
  channelMessage: (peer, channel, data) => ({ type: 'channel_message', peer, channel, data }),
  /** A frame (base64) from a person's node, for the engine. */
  deliver: (from, frame) => ({ type: 'deliver', from, frame }),
  /** @param {'webrtc' | null} path */
  path: (peer, path, rttMs) => ({ type: 'path', peer, path, rtt_ms: rttMs ?? null }),
};

const ascii = new TextEncoder();
const fromAscii = new TextDecoder();

/** Packs a frame for `peer` into a binary socket message. */
export function encodeRelayed(peer, frame) {
  const id = ascii.encode(peer);
  const out = new Uint8Array(1 + id.length + frame.length);
  out[0] = id.length;
  out.set(id, 1);
  out.set(frame, 1 + id.length);
  return out;
}

/** @returns {{peer: string, frame: Uint8Array} | null} */
export function decodeRelayed(buffer) {
  const bytes = new Uint8Array(buffer);
  if (bytes.length < 1 || bytes.length < 1 + bytes[0]) return null;
  return { peer: fromAscii.decode(bytes.subarray(1, 1 + bytes[0])), frame: bytes.subarray(1 + bytes[0]) };
}

export function toBase64(bytes) {
  let text = '';
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

export function fromBase64(text) {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}
