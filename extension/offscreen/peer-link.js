// One WebRTC link to one of the owner's other nodes.
//
// Life of a link: the node with the smaller id makes the offer; signaling
// travels through the two engines' authenticated LAN link. When the data
// channel opens, both sides hand their engine the DTLS fingerprints from
// the SDP and pass the engine's handshake messages over the channel (the
// first inbound message(s) are handshake, the rest are frames). Only when
// the engine says the handshake proved the expected node does the link
// carry frames. Pings keep it honest; silence or a failed connection
// closes it, and the mesh makes a new one.

const CONNECT_TIMEOUT_MS = 10_000;
const LIVENESS_TICK_MS = 500;
/** Senders wait while more than this is queued on the channel. */
const HIGH_WATER = 8 * 1024 * 1024;
const LOW_WATER = 2 * 1024 * 1024;

/**
 * @typedef {{
 *   core: any,
 *   signal: (payload: object) => void,
 *   toEngine: (message: object) => void,
 *   onFrame: (frame: any) => void,
 *   onUp: (link: PeerLink) => void,
 *   onClosed: (link: PeerLink, why: string) => void,
 *   onRtt: (link: PeerLink, rttMs: number) => void,
 * }} LinkHooks
 */

export class PeerLink {
  /**
   * @param {string} peer the peer's node id
   * @param {'initiator' | 'responder'} role
   * @param {string} session this attempt's id (chosen by the initiator)
   * @param {LinkHooks} hooks
   */
  constructor(peer, role, session, hooks) {
    this.peer = peer;
    this.role = role;
    this.session = session;
    this.hooks = hooks;
    this.state = 'connecting';
    this.createdAt = Date.now();
    this.pc = new RTCPeerConnection({ iceServers: [] });
    /** @type {RTCDataChannel | null} */
    this.dc = null;
    this.pendingCandidates = [];
    this.handshakeInbound = role === 'initiator' ? 1 : 2;
    /** Frames that arrived after the handshake but before the engine's verdict. */
    this.early = [];
    this.liveness = null;
    this.sendQueue = Promise.resolve();
    this.pc.onicecandidate = ({ candidate }) => {
      if (candidate) this.hooks.signal({ kind: 'candidate', session, candidate: candidate.toJSON() });
    };
    this.pc.onconnectionstatechange = () => {
      if (['failed', 'closed'].includes(this.pc.connectionState)) this.close(`connection ${this.pc.connectionState}`);
    };
    this.timeout = setTimeout(() => {
      if (this.state !== 'up') this.close('no data channel in time');
    }, CONNECT_TIMEOUT_MS);
  }

  get isUp() {
    return this.state === 'up';
  }

  /** Initiator: create the channel and send the offer. */
  async offer() {
    this.attach(this.pc.createDataChannel('mailmesh', { ordered: true }));
    const offer = await this.pc.createOffer();
    await this.pc.setLocalDescription(offer);
    this.hooks.signal({ kind: 'offer', session: this.session, sdp: this.pc.localDescription.sdp });
  }

  /** Responder: answer an offer. */
  async answer(sdp) {
    this.pc.ondatachannel = ({ channel }) => this.attach(channel);
    await this.pc.setRemoteDescription({ type: 'offer', sdp });
    await this.flushCandidates();
    const answer = await this.pc.createAnswer();
    await this.pc.setLocalDescription(answer);
    this.hooks.signal({ kind: 'answer', session: this.session, sdp: this.pc.localDescription.sdp });
  }

  async onAnswer(sdp) {
    await this.pc.setRemoteDescription({ type: 'answer', sdp });
    await this.flushCandidates();
  }

  async onCandidate(candidate) {
    if (this.pc.remoteDescription) await this.pc.addIceCandidate(candidate).catch(() => {});
    else this.pendingCandidates.push(candidate);
  }

  async flushCandidates() {
    for (const candidate of this.pendingCandidates.splice(0)) await this.pc.addIceCandidate(candidate).catch(() => {});
  }

  /** @param {RTCDataChannel} dc */
  attach(dc) {
    this.dc = dc;
    dc.binaryType = 'arraybuffer';
    dc.bufferedAmountLowThreshold = LOW_WATER;
    dc.onopen = () => {
      this.state = 'handshaking';
      const local = fingerprint(this.pc.localDescription?.sdp);
      const remote = fingerprint(this.pc.remoteDescription?.sdp);
      this.hooks.toEngine({ open: true, role: this.role, local, remote });
    };
    dc.onclose = () => this.close('the data channel closed');
    dc.onmessage = ({ data }) => this.onMessage(new Uint8Array(data));
  }

  onMessage(bytes) {
    if (this.handshakeInbound > 0) {
      this.handshakeInbound--;
      this.hooks.toEngine({ message: bytes });
      return;
    }
    if (this.state === 'up') this.onFrameBytes(bytes);
    else if (this.state === 'handshaking') this.early.push(bytes);
  }

  /** A handshake message from our engine, for the peer. */
  sendHandshake(bytes) {
    if (this.dc?.readyState === 'open') this.dc.send(bytes);
  }

  /** The engine's verdict on the handshake. */
  onHandshakeResult(ok, error) {
    if (!ok) {
      this.close(`handshake refused: ${error}`);
      return;
    }
    clearTimeout(this.timeout);
    this.state = 'up';
    this.liveness = new this.hooks.core.ChannelLiveness(Date.now());
    this.ticker = setInterval(() => this.tick(), LIVENESS_TICK_MS);
    this.hooks.onUp(this);
    for (const bytes of this.early.splice(0)) this.onFrameBytes(bytes);
  }

  tick() {
    const now = Date.now();
    if (this.liveness.isDead(now)) {
      this.close('the peer stopped answering');
      return;
    }
    const ping = this.liveness.pollPing(now);
    if (ping && this.dc?.readyState === 'open') this.dc.send(ping);
  }

  onFrameBytes(bytes) {
    const now = Date.now();
    this.liveness.heard(now);
    let frame;
    try {
      frame = this.hooks.core.decodeFrame(bytes);
    } catch (e) {
      console.warn('mailmesh: bad frame from', this.peer, e?.message ?? e);
      return;
    }
    if (frame.kind === 'ping') {
      this.dc.send(this.hooks.core.encodePongFrame(frame.seq, frame.sentMs));
    } else if (frame.kind === 'pong') {
      const rtt = this.liveness.onPong(now, frame.sentMs);
      if (rtt !== undefined) this.hooks.onRtt(this, rtt);
    } else {
      this.hooks.onFrame(frame);
    }
    frame.free();
  }

  /**
   * Sends an encoded frame once there is room: callers are served in order,
   * and each waits while the channel's buffer is above the high-water mark.
   */
  send(frameBytes) {
    const sent = this.sendQueue.then(async () => {
      const dc = this.dc;
      if (!this.isUp || !dc) throw new Error('the link is down');
      while (dc.bufferedAmount > HIGH_WATER) {
        await new Promise((resolve) => {
          dc.onbufferedamountlow = resolve;
          setTimeout(resolve, 1000);
        });
        if (!this.isUp) throw new Error('the link went down');
      }
      dc.send(frameBytes);
    });
    this.sendQueue = sent.catch(() => {});
    return sent;
  }

  close(why) {
    if (this.state === 'closed') return;
    const wasUp = this.state === 'up';
    this.state = 'closed';
    clearTimeout(this.timeout);
    clearInterval(this.ticker);
    try {
      this.dc?.close();
      this.pc.close();
    } catch {}
    this.hooks.onClosed(this, why, wasUp);
  }
}

/** The `a=fingerprint:` value of an SDP ("sha-256 AB:CD:…"). */
export function fingerprint(sdp) {
  const match = /^a=fingerprint:(.+)$/m.exec(sdp ?? '');
  return match ? match[1].trim() : '';
}
