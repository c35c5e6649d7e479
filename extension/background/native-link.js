// The service worker's connection to the native host.
//
// One port at a time. If it closes (host missing, crashed, browser policy)
// the link reconnects with exponential backoff; the port staying open keeps
// the worker alive, and an alarm (see service-worker.js) restarts the link
// if Chrome stopped the worker in between. Requests carry an id and resolve
// with the reply of the same id; events without an id update the state.

import { HOST_NAME, request, reply } from '../shared/messages/native.js';

/** The engine's change events, by the name pages watch them under. */
const CHANGE_KINDS = {
  [reply.FILES_CHANGED]: 'files',
  [reply.CHAT_CHANGED]: 'chat',
  [reply.TRANSFERS_CHANGED]: 'transfers',
  [reply.CALLS_CHANGED]: 'calls',
  [reply.PEERS_CHANGED]: 'peers',
  [reply.STATUS_CHANGED]: 'status',
};
import { updateState } from './state-store.js';

const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 30_000;
const REQUEST_TIMEOUT_MS = 15_000;
/** Mail logins may take a server's full timeout, twice. */
export const SLOW_REQUEST_TIMEOUT_MS = 60_000;

export class NativeLink {
  /**
   * @param {{onStatus?: (status: object) => void, onChanged?: (kind: string) => void,
   *   onChatChanged?: () => void, onTransfersChanged?: () => void,
   *   onCallsChanged?: () => void}} hooks
   *   called with every fresh status, and when the engine says chat, transfers or calls changed
   */
  constructor(hooks = {}) {
    this.hooks = hooks;
    /** @type {chrome.runtime.Port | null} */
    this.port = null;
    this.nextId = 1;
    /** @type {Map<number, {resolve: Function, reject: Function, timer: number}>} */
    this.pending = new Map();
    this.backoff = BACKOFF_MIN_MS;
    this.retryTimer = null;
    this.refreshTimer = null;
  }

  get isOpen() {
    return this.port !== null;
  }

  /** Opens the port unless it is open or a retry is already scheduled. */
  connect() {
    if (this.port || this.retryTimer) return;
    updateState({ connection: 'connecting' });
    let port;
    try {
      port = chrome.runtime.connectNative(HOST_NAME);
    } catch (e) {
      this.onClosed(String(e?.message ?? e));
      return;
    }
    this.port = port;
    port.onMessage.addListener((message) => this.onMessage(message));
    port.onDisconnect.addListener(() => {
      const why = chrome.runtime.lastError?.message ?? 'the native host closed the connection';
      if (this.port === port) this.onClosed(why);
    });
  }

  /** Closes the port now and reconnects at once (the user asked to). */
  reconnect() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.backoff = BACKOFF_MIN_MS;
    if (this.port) {
      this.port.disconnect();
      this.port = null;
    }
    this.connect();
  }

  /**
   * Sends a request and resolves with its reply; rejects on an error reply,
   * a closed port, or no answer in time.
   */
  request(message, timeoutMs = REQUEST_TIMEOUT_MS) {
    if (!this.port) return Promise.reject(new Error('not connected to the mailmesh host'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error('the mailmesh host did not answer in time'));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.port.postMessage({ ...message, id });
    });
  }

  onMessage(message) {
    const waiting = message?.id != null ? this.pending.get(message.id) : undefined;
    if (waiting) {
      this.pending.delete(message.id);
      clearTimeout(waiting.timer);
      if (message.type === reply.ERROR) waiting.reject(new Error(message.message));
      else waiting.resolve(message);
    }
    if (message?.type === reply.ENGINE_STATE) this.onEngineState(message);
    if (message?.type === reply.STATUS_CHANGED || message?.type === reply.PEERS_CHANGED) this.refreshSoon();
    // Chat has its own look (the unread badge from `chat_list`): a chat
    // change needs no status refresh.
    if (message?.type === reply.CHAT_CHANGED) this.hooks.onChatChanged?.();
    if (message?.type === reply.TRANSFERS_CHANGED) this.hooks.onTransfersChanged?.();
    if (message?.type === reply.CALLS_CHANGED) this.hooks.onCallsChanged?.();
    const kind = CHANGE_KINDS[message?.type];
    if (kind) this.hooks.onChanged?.(kind);
  }

  async onEngineState(event) {
    if (event.state === 'down') {
      await updateState({ connection: 'disconnected', engine: 'down', error: event.message });
      return;
    }
    await updateState({ engine: 'up', error: null });
    await this.refresh();
  }

  /** Refreshes once for a burst of change events. */
  refreshSoon() {
    if (this.refreshTimer) return;
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = null;
      this.refresh();
    }, 100);
  }

  /** Asks the engine who it is and records the answer. */
  async refresh() {
    try {
      const hello = await this.request(request.hello('service-worker', chrome.runtime.getManifest().version));
      const status = await this.request(request.status());
      this.backoff = BACKOFF_MIN_MS;
      await updateState({ connection: 'connected', engine: 'up', hostVersion: hello.host_version, status, error: null });
      this.hooks.onStatus?.(status);
    } catch (e) {
      await updateState({ connection: 'disconnected', error: String(e?.message ?? e) });
    }
  }

  onClosed(why) {
    this.port = null;
    for (const { reject, timer } of this.pending.values()) {
      clearTimeout(timer);
      reject(new Error(why));
    }
    this.pending.clear();
    updateState({ connection: 'disconnected', engine: 'unknown', error: why });
    const delay = this.backoff;
    this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX_MS);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.connect();
    }, delay);
  }
}
