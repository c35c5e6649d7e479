// Throughput measurements between two nodes, for `scripts/bench link`:
//
// - raw: a plain RTCDataChannel with no mailmesh framing or handshake,
//   signaled through the engines like the mesh's own links;
// - mesh: mailmesh's authenticated, framed, flow-controlled channel;
// - loopback: the bulk socket to this node's own engine.
//
// All three send the same bytes in the largest messages their channel
// takes, with the same flow control, and stop the clock when the receiver
// confirms the last byte.

import { openEngineSocket, sleep } from '../shared/loopback.js';

const RAW_MESSAGE = 256 * 1024;
const HIGH_WATER = 8 * 1024 * 1024;
const LOW_WATER = 2 * 1024 * 1024;
const SINK = 'bench.sink';
const ACK = 'bench.ack';

export class Bench {
  /** @param {import('./mesh.js').Mesh} mesh */
  constructor(mesh) {
    this.mesh = mesh;
    this.received = 0;
    this.acks = new Map();
    this.rawAnswered = new Map();
    mesh.on(SINK, (peer, payload) => {
      this.received += payload.length - 1;
      if (payload[0] === 1) {
        const ack = new Uint8Array(8);
        new DataView(ack.buffer).setFloat64(0, this.received);
        this.received = 0;
        mesh.send(peer, ACK, ack).catch(() => {});
      }
    });
    mesh.on(ACK, (peer, payload) => this.acks.get(peer)?.(new DataView(payload.buffer, payload.byteOffset).getFloat64(0)));
    mesh.signalHandlers.set('bench-offer', (from, p) => this.answerRaw(from, p));
    mesh.signalHandlers.set('bench-answer', (from, p) => this.rawAnswered.get(p.session)?.(p.sdp));
    mesh.signalHandlers.set('bench-candidate', (from, p) => this.rawCandidates?.get(p.session)?.(p.candidate));
  }

  /** @returns {Promise<{mode: string, bytes: number, ms: number, mbps: number}>} */
  async run(peer, bytes, mode) {
    const started = performance.now();
    if (mode === 'mesh') await this.sendMesh(peer, bytes);
    else if (mode === 'raw') await this.sendRaw(peer, bytes, () => (this.rawStarted = performance.now()));
    else if (mode === 'loopback') await this.sendLoopback(bytes);
    else throw new Error(`unknown benchmark mode ${mode}`);
    const from = mode === 'raw' ? this.rawStarted : started;
    const ms = performance.now() - from;
    return { mode, bytes, ms, mbps: (bytes * 8) / (ms * 1000) };
  }

  async sendMesh(peer, total) {
    // The largest frame: 3 header bytes, the topic, a flag byte, the data.
    const size = 256 * 1024 - 3 - SINK.length - 1;
    const acked = new Promise((resolve) => this.acks.set(peer, resolve));
    const body = new Uint8Array(size + 1);
    for (let sent = 0; sent < total; sent += size) {
      const n = Math.min(size, total - sent);
      body[0] = sent + n >= total ? 1 : 0;
      await this.mesh.send(peer, SINK, n === size ? body : body.subarray(0, n + 1));
    }
    const got = await withTimeout(acked, 120_000, 'no acknowledgement from the peer');
    if (got !== total) throw new Error(`the peer received ${got} of ${total} bytes`);
  }

  async sendRaw(peer, total, onOpen) {
    const session = crypto.randomUUID();
    const pc = new RTCPeerConnection({ iceServers: [] });
    const dc = pc.createDataChannel('bench-raw', { ordered: true });
    dc.binaryType = 'arraybuffer';
    dc.bufferedAmountLowThreshold = LOW_WATER;
    this.trickle(pc, peer, session);
    const answered = new Promise((resolve) => this.rawAnswered.set(session, resolve));
    await pc.setLocalDescription(await pc.createOffer());
    this.mesh.signal(peer, { kind: 'bench-offer', session, sdp: pc.localDescription.sdp });
    await pc.setRemoteDescription({ type: 'answer', sdp: await withTimeout(answered, 10_000, 'no answer') });
    await withTimeout(new Promise((resolve) => (dc.onopen = resolve)), 10_000, 'the raw channel did not open');
    const done = new Promise((resolve) => (dc.onmessage = resolve));
    const header = new Uint8Array(8);
    new DataView(header.buffer).setFloat64(0, total);
    onOpen();
    dc.send(header);
    const body = new Uint8Array(RAW_MESSAGE);
    for (let sent = 0; sent < total; sent += RAW_MESSAGE) {
      while (dc.bufferedAmount > HIGH_WATER) await new Promise((resolve) => (dc.onbufferedamountlow = resolve));
      dc.send(body.subarray(0, Math.min(RAW_MESSAGE, total - sent)));
    }
    await withTimeout(done, 120_000, 'no acknowledgement on the raw channel');
    pc.close();
  }

  async answerRaw(from, offer) {
    const pc = new RTCPeerConnection({ iceServers: [] });
    this.trickle(pc, from, offer.session);
    pc.ondatachannel = ({ channel }) => {
      channel.binaryType = 'arraybuffer';
      let expected = -1;
      let got = 0;
      channel.onmessage = ({ data }) => {
        if (expected < 0) expected = new DataView(data).getFloat64(0);
        else got += data.byteLength;
        if (got >= expected) {
          channel.send(new Uint8Array([1]));
          setTimeout(() => pc.close(), 1000);
        }
      };
    };
    await pc.setRemoteDescription({ type: 'offer', sdp: offer.sdp });
    await pc.setLocalDescription(await pc.createAnswer());
    this.mesh.signal(from, { kind: 'bench-answer', session: offer.session, sdp: pc.localDescription.sdp });
  }

  trickle(pc, peer, session) {
    this.rawCandidates ??= new Map();
    this.rawCandidates.set(session, (c) => pc.addIceCandidate(c).catch(() => {}));
    pc.onicecandidate = ({ candidate }) => {
      if (candidate) this.mesh.signal(peer, { kind: 'bench-candidate', session, candidate: candidate.toJSON() });
    };
  }

  async sendLoopback(total) {
    const ws = await openEngineSocket('/bulk');
    const done = new Promise((resolve) => {
      ws.onmessage = ({ data }) => {
        if (typeof data === 'string' && JSON.parse(data).bytes >= total) resolve();
      };
    });
    const body = new Uint8Array(RAW_MESSAGE + 1);
    body[0] = 2;
    for (let sent = 0; sent < total; sent += RAW_MESSAGE) {
      while (ws.bufferedAmount > HIGH_WATER) await sleep(1);
      const n = Math.min(RAW_MESSAGE, total - sent);
      ws.send(n === RAW_MESSAGE ? body : body.subarray(0, n + 1));
    }
    await withTimeout(done, 120_000, 'the engine did not confirm the bytes');
    ws.close();
  }
}

function withTimeout(promise, ms, message) {
  return Promise.race([promise, new Promise((_, reject) => setTimeout(() => reject(new Error(message)), ms))]);
}
