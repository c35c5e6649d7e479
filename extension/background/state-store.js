// Writes the host connection state to chrome.storage.session, where pages
// read it (see shared/host-state.js). Writes are chained so that two quick
// updates cannot land out of order.

import { STATE_KEY, initialState, readState } from '../shared/host-state.js';

let chain = Promise.resolve();

/**
 * Merges `patch` into the stored state (a function gets the current state
 * and returns the patch).
 * @param {Partial<import('../shared/host-state.js').HostState>
 *   | ((state: import('../shared/host-state.js').HostState) => object)} patch
 */
export function updateState(patch) {
  chain = chain.then(async () => {
    const current = await readState();
    const next = { ...current, ...(typeof patch === 'function' ? patch(current) : patch), updatedAt: Date.now() };
    await chrome.storage.session.set({ [STATE_KEY]: next });
  }).catch((e) => console.warn('mailmesh: cannot store state', e));
  return chain;
}

/** Starts a fresh record, as a newly started worker knows nothing yet. */
export function resetState() {
  return updateState(initialState());
}

/** Change events within this long are written as one update. */
const MARK_COALESCE_MS = 100;
const marked = new Set();
let markTimer = null;

/**
 * Records that the engine said `kind` changed ('files', 'chat', …), where
 * pages watching it see it (shared/host-state.js `onEngineChange`). A burst
 * of events (a chat message and its receipts) is one storage write, not one
 * per event: each write reads and rewrites the whole state, and the worker
 * shares the machine with the data channels.
 * @param {string} kind
 */
export function markChanged(kind) {
  marked.add(kind);
  if (markTimer) return;
  markTimer = setTimeout(() => {
    markTimer = null;
    const at = Date.now();
    const kinds = [...marked];
    marked.clear();
    updateState((state) => ({ changed: { ...state.changed, ...Object.fromEntries(kinds.map((k) => [k, at])) } }));
  }, MARK_COALESCE_MS);
}
