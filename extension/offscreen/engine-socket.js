// The offscreen document's line to its engine: the loopback mesh socket.
//
// A one-time token comes from the service worker (which asks the engine
// over native messaging); the engine also checks that our Origin is this
// extension. The socket reconnects by itself with backoff, so an engine
// restart or a stopped service worker only causes a short gap.

import { openEngineSocket, sleep } from '../shared/loopback.js';

const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 5_000;
/** Above this many queued bytes, senders wait (backpressure). */
const HIGH_WATER = 4 * 1024 * 1024;

export class EngineSocket {
  /**
   * @param {string} path '/mesh' or '/bulk'
   * @param {{onMessage: (m: object) => void, onBinary: (b: ArrayBuffer) => void, onOpen?: () => void,
   *   onClose?: () => void}} handlers
   */
  constructor(path, handlers) {
    this.path = path;
    this.handlers = handlers;
    /** @type {WebSocket | null} */
    this.ws = null;
    this.backoff = BACKOFF_MIN_MS;
    this.stopped = false;
  }

  get isOpen() {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  async connect() {
    if (this.stopped) return;
    try {
      this.ws = await openEngineSocket(this.path);
    } catch (e) {
      console.debug('mailmesh: engine socket unavailable', e?.message ?? e);
      this.retry();
      return;
    }
    this.backoff = BACKOFF_MIN_MS;
    const ws = this.ws;
    ws.onmessage = (event) => {
      if (typeof event.data === 'string') {
        let message;
        try {
          message = JSON.parse(event.data);
        } catch {
          return;
        }
        this.handlers.onMessage(message);
      } else {
        this.handlers.onBinary(event.data);
      }
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.handlers.onClose?.();
      this.retry();
    };
    this.handlers.onOpen?.();
  }

  retry() {
    const delay = this.backoff;
    this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX_MS);
    setTimeout(() => this.connect(), delay);
  }

  sendJson(message) {
    if (this.isOpen) this.ws.send(JSON.stringify(message));
  }

  /** Sends binary data, waiting while too much is queued. */
  async sendBinary(bytes) {
    while (this.isOpen && this.ws.bufferedAmount > HIGH_WATER) await sleep(2);
    if (!this.isOpen) throw new Error('the engine socket is closed');
    this.ws.send(bytes);
  }
}

