// The host connection state, as the service worker records it.
//
// The service worker may be stopped by Chrome at any moment, so it keeps
// nothing that matters only in memory: it writes this record to
// chrome.storage.session, and pages read and watch it there.

export const STATE_KEY = 'host';

/**
 * @typedef {'connecting' | 'connected' | 'disconnected'} Connection
 * @typedef {{
 *   connection: Connection,
 *   engine: 'up' | 'down' | 'unknown',
 *   hostVersion: string | null,
 *   status: import('./messages/native.js').StatusReply | null,
 *   error: string | null,
 *   changed?: Record<string, number>,
 *   downloadFailure?: {name: string, message: string, at: number},
 *   updatedAt: number,
 * }} HostState
 */

/** @returns {HostState} */
export function initialState() {
  return { connection: 'connecting', engine: 'unknown', hostVersion: null, status: null, error: null, updatedAt: Date.now() };
}

/** @returns {Promise<HostState>} */
export async function readState() {
  const stored = await chrome.storage.session.get(STATE_KEY);
  return stored[STATE_KEY] ?? initialState();
}

/**
 * Calls `onState` now and on every change.
 * @param {(state: HostState) => void} onState
 */
export async function watchState(onState) {
  chrome.storage.onChanged.addListener((changes, area) => {
    if (area === 'session' && changes[STATE_KEY]?.newValue) onState(changes[STATE_KEY].newValue);
  });
  onState(await readState());
}

/**
 * Calls `refresh` whenever the engine reports a change of one of `kinds`
 * ('files', 'chat', 'transfers', 'calls', 'peers', 'status') or comes back
 * up, so a page shows what is new without asking over and over.
 * @param {string[]} kinds
 * @param {() => void} refresh
 */
export function onEngineChange(kinds, refresh) {
  let seen = null;
  return watchState((state) => {
    const now = [state.engine, ...kinds.map((kind) => state.changed?.[kind] ?? 0)].join();
    if (seen !== null && now !== seen) refresh();
    seen = now;
  });
}
