// The mesh as the rest of the extension sees it: send bytes to a node on a
// topic, receive what others send, with backpressure — over an
// authenticated WebRTC data channel when there is one, through the two
// engines' LAN link (the relay) when there is not.
//
// It keeps one PeerLink to every online member of the owner's network, and
// to every online node of a verified person (for chat: the engine hands
// those frames here to go browser to browser, and takes what arrives), and
// makes a new one, with backoff, whenever a link fails or the network
// changes. The engine's peer list (pushed over the mesh socket) says who is
// online and verified; signaling and the channel handshake also go through
// the engine.

import { EngineSocket } from './engine-socket.js';
import { PeerLink } from './peer-link.js';
import { FromEngine, decodeRelayed, encodeRelayed, fromBase64, toBase64, toEngine } from '../shared/messages/mesh.js';

const RETRY_MIN_MS = 1_000;
/** How often a waiting responder says it is ready for an offer. */
const READY_EVERY_MS = 3_000;
const RETRY_MAX_MS = 20_000;
const MAINTAIN_EVERY_MS = 1_000;

export class Mesh {
  constructor(core) {
    this.core = core;
    this.nodeId = null;
    /** @type {Map<string, import('../shared/messages/native.js').PeerView>} */
    this.peers = new Map();
    /** @type {Map<string, PeerLink>} */
    this.links = new Map();
    /** @type {Map<string, {at: number, delay: number}>} */
    this.retry = new Map();
    /** @type {Map<string, number>} when we last told a peer we are ready */
    this.readySent = new Map();
    /** @type {Map<string, (peer: string, payload: Uint8Array) => void>} */
    this.topics = new Map();
    /** @type {Map<string, (from: string, payload: object) => void>} other signal kinds (benchmarks) */
    this.signalHandlers = new Map();
    /** Frames carried for the engine, per peer (shown by `mesh.state`). */
    this.carried = new Map();
    this.socket = new EngineSocket('/mesh', {
      onMessage: (m) => this.onEngine(m),
      onBinary: (b) => this.onRelayed(b),
      onClose: () => this.peers.clear(),
    });
  }

  start() {
    this.socket.connect();
    setInterval(() => this.maintain(), MAINTAIN_EVERY_MS);
  }

  /** Registers the receiver of one topic. */
  on(topic, handler) {
    this.topics.set(topic, handler);
  }

  /** How `peer` is reached now: 'webrtc', 'relay' or null. */
  pathTo(peer) {
    if (this.links.get(peer)?.isUp) return 'webrtc';
    return this.peers.get(peer)?.online ? 'relay' : null;
  }

  /**
   * Sends `payload` to `peer` on `topic`; resolves once it is handed to the
   * channel, waiting while the channel is full.
   */
  async send(peer, topic, payload) {
    const frame = this.core.encodeDataFrame(topic, payload);
    const link = this.links.get(peer);
    if (link?.isUp) return link.send(frame);
    if (this.peers.get(peer)?.online && this.peers.get(peer)?.member) {
      return this.socket.sendBinary(encodeRelayed(peer, frame));
    }
    throw new Error(`node ${peer} is not reachable`);
  }

  signal(to, payload) {
    this.socket.sendJson(toEngine.signal(to, payload));
  }

  onEngine(message) {
    switch (message.type) {
      case FromEngine.HELLO:
        this.nodeId = message.node_id;
        break;
      case FromEngine.PEERS:
        this.peers = new Map(message.peers.map((p) => [p.id, p]));
        this.maintain();
        break;
      case FromEngine.SIGNAL:
        this.onSignal(message.from, message.payload).catch((e) => console.debug('mailmesh: signaling failed', e));
        break;
      case FromEngine.CHANNEL_MESSAGE: {
        const link = this.links.get(message.peer);
        if (link?.session === message.channel) link.sendHandshake(fromBase64(message.data));
        break;
      }
      case FromEngine.FORWARD: {
        // The engine's own traffic (chat) for a person's node.
        const link = this.links.get(message.to);
        if (link?.isUp) {
          link.send(fromBase64(message.frame)).then(() => this.count(message.to, 'sent'), () => {});
        }
        break;
      }
      case FromEngine.CHANNEL_RESULT: {
        const link = this.links.get(message.peer);
        if (link?.session === message.channel) link.onHandshakeResult(message.ok, message.error);
        break;
      }
    }
  }

  /** Opens links we should initiate and drops links to peers gone offline. */
  maintain() {
    if (!this.nodeId || !this.socket.isOpen) return;
    const now = Date.now();
    for (const [id, link] of this.links) {
      if (!this.peers.get(id)?.online) link.close('the peer went offline');
    }
    for (const peer of this.peers.values()) {
      if (!linkable(peer) || this.links.has(peer.id)) continue;
      if (this.nodeId > peer.id) {
        // The other side offers; tell it we are here, in case its offer
        // went out before this document was listening.
        if ((this.readySent.get(peer.id) ?? 0) + READY_EVERY_MS <= now) {
          this.readySent.set(peer.id, now);
          this.signal(peer.id, { kind: 'ready' });
        }
        continue;
      }
      if ((this.retry.get(peer.id)?.at ?? 0) > now) continue;
      this.startLink(peer.id);
    }
  }

  startLink(peer) {
    const link = this.newLink(peer, 'initiator', crypto.randomUUID());
    link.offer().catch((e) => link.close(`offer failed: ${e?.message ?? e}`));
  }

  async onSignal(from, payload) {
    const peer = this.peers.get(from);
    if (!peer || !linkable(peer) || typeof payload?.kind !== 'string') return;
    const link = this.links.get(from);
    switch (payload.kind) {
      case 'offer':
        if (this.nodeId < from || typeof payload.sdp !== 'string') return;
        link?.close('the peer started over');
        await this.newLink(from, 'responder', String(payload.session)).answer(payload.sdp);
        break;
      case 'answer':
        if (link?.session === payload.session) await link.onAnswer(payload.sdp);
        break;
      case 'candidate':
        if (link?.session === payload.session) await link.onCandidate(payload.candidate);
        break;
      case 'ready':
        // The responder is listening now: offer at once unless a recent
        // attempt may still succeed.
        if (this.nodeId < from && !link?.isUp && !(link && Date.now() - link.createdAt < READY_EVERY_MS)) {
          link?.close('the peer is ready for a new offer');
          this.retry.delete(from);
          this.startLink(from);
        }
        break;
      default:
        this.signalHandlers.get(payload.kind)?.(from, payload);
    }
  }

  newLink(peer, role, session) {
    const link = new PeerLink(peer, role, session, {
      core: this.core,
      signal: (payload) => this.signal(peer, payload),
      toEngine: (m) => {
        if (m.open) this.socket.sendJson(toEngine.channelOpen(peer, session, m.role, m.local, m.remote));
        else this.socket.sendJson(toEngine.channelMessage(peer, session, toBase64(m.message)));
      },
      onFrame: (frame) => this.deliver(peer, frame),
      onUp: () => {
        this.retry.delete(peer);
        this.socket.sendJson(toEngine.path(peer, 'webrtc', null));
      },
      onRtt: (_, rtt) => this.socket.sendJson(toEngine.path(peer, 'webrtc', rtt)),
      onClosed: (closed, why, wasUp) => {
        if (this.links.get(peer) === closed) this.links.delete(peer);
        if (wasUp) this.socket.sendJson(toEngine.path(peer, null, null));
        const delay = Math.min((this.retry.get(peer)?.delay ?? RETRY_MIN_MS / 2) * 2, RETRY_MAX_MS);
        this.retry.set(peer, { at: Date.now() + (wasUp ? RETRY_MIN_MS : delay), delay: wasUp ? RETRY_MIN_MS : delay });
        console.debug(`mailmesh: link to ${peer} closed: ${why}`);
      },
    });
    this.links.set(peer, link);
    return link;
  }

  onRelayed(buffer) {
    const relayed = decodeRelayed(buffer);
    if (!relayed) return;
    let frame;
    try {
      frame = this.core.decodeFrame(relayed.frame);
    } catch {
      return;
    }
    this.deliver(relayed.peer, frame);
    frame.free();
  }

  deliver(peer, frame) {
    if (frame.kind !== 'data') return;
    if (frame.topic.startsWith(ENGINE_PREFIX) && !this.peers.get(peer)?.member) {
      // Chat from a person's node: the engine keeps it.
      const bytes = this.core.encodeDataFrame(frame.topic, frame.takePayload());
      this.socket.sendJson(toEngine.deliver(peer, toBase64(bytes)));
      this.count(peer, 'received');
      return;
    }
    // The page-level services (echo, benchmarks) are for our own devices.
    if (!this.peers.get(peer)?.member) return;
    const handler = this.topics.get(frame.topic);
    if (handler) handler(peer, frame.takePayload());
  }

  count(peer, way) {
    const counts = this.carried.get(peer) ?? { sent: 0, received: 0 };
    counts[way] += 1;
    this.carried.set(peer, counts);
  }
}

/** Topics between engines that a person's channel carries. */
const ENGINE_PREFIX = 'chat.';

/** Whom to keep a link to: online members, and online verified people. */
function linkable(peer) {
  return peer.online && (peer.member || peer.verified);
}
