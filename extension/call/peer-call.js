// One participant of a call seen from this page: one RTCPeerConnection
// carrying our camera and microphone to them and theirs to us. Of each
// pair the node with the smaller id makes the offer, so two pages never
// offer at once. No STUN or TURN: host candidates only, media stays on the
// LAN, browser to browser.

const RETRY_MS = 2_000;

export class PeerCall {
  /**
   * @param {string} node their node id
   * @param {string} email their address
   * @param {{me: string, stream: MediaStream, signal: (data: object) => void,
   *   onTrack: (call: PeerCall, stream: MediaStream) => void, onState: (call: PeerCall) => void}} hooks
   */
  constructor(node, email, hooks) {
    this.node = node;
    this.email = email;
    this.hooks = hooks;
    this.offerer = hooks.me < node;
    this.remote = { muted: false, camera: true };
    this.closed = false;
    this.open();
  }

  open() {
    this.pendingCandidates = [];
    this.pc = new RTCPeerConnection({ iceServers: [] });
    for (const track of this.hooks.stream.getTracks()) this.pc.addTrack(track, this.hooks.stream);
    this.pc.onicecandidate = ({ candidate }) => {
      if (candidate) this.hooks.signal({ candidate: candidate.toJSON() });
    };
    this.pc.ontrack = ({ streams }) => {
      if (streams[0]) this.hooks.onTrack(this, streams[0]);
    };
    this.pc.onconnectionstatechange = () => {
      this.hooks.onState(this);
      if (this.pc.connectionState === 'failed' && !this.closed) this.retry();
    };
  }

  /** The offerer starts (or starts over). */
  async offer() {
    if (!this.offerer || this.closed) return;
    const offer = await this.pc.createOffer();
    await this.pc.setLocalDescription(offer);
    this.hooks.signal({ sdp: this.pc.localDescription.toJSON() });
  }

  /** A description or candidate from them. */
  async handle(data) {
    if (this.closed) return;
    if (data?.sdp) {
      if (data.sdp.type === 'offer' && this.pc.signalingState !== 'stable') {
        // They started over (a reload or a retry): so do we.
        this.pc.close();
        this.open();
      }
      await this.pc.setRemoteDescription(data.sdp);
      for (const candidate of this.pendingCandidates.splice(0)) await this.pc.addIceCandidate(candidate);
      if (data.sdp.type === 'offer') {
        await this.pc.setLocalDescription(await this.pc.createAnswer());
        this.hooks.signal({ sdp: this.pc.localDescription.toJSON() });
      }
    } else if (data?.candidate) {
      if (this.pc.remoteDescription) await this.pc.addIceCandidate(data.candidate);
      else this.pendingCandidates.push(data.candidate);
    }
  }

  retry() {
    this.pc.close();
    this.open();
    if (this.offerer) setTimeout(() => this.offer().catch(() => {}), RETRY_MS);
  }

  /** Video frames decoded and the audio level heard from them, now. */
  async stats() {
    let framesDecoded = 0;
    let audioLevel = 0;
    const report = await this.pc.getStats();
    report.forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      if (s.kind === 'video') framesDecoded += s.framesDecoded ?? 0;
      if (s.kind === 'audio') audioLevel = Math.max(audioLevel, s.audioLevel ?? 0);
    });
    return { node: this.node, email: this.email, state: this.pc.connectionState, framesDecoded, audioLevel };
  }

  close() {
    this.closed = true;
    this.pc.close();
  }
}
