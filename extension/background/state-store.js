// Writes the host connection state to chrome.storage.session, where pages
// read it (see shared/host-state.js). Writes are chained so that two quick
// updates cannot land out of order.

import { STATE_KEY, initialState, readState } from '../shared/host-state.js';

let chain = Promise.resolve();

/**
 * Merges `patch` into the stored state.
 * @param {Partial<import('../shared/host-state.js').HostState>} patch
 */
export function updateState(patch) {
  chain = chain.then(async () => {
    const next = { ...(await readState()), ...patch, updatedAt: Date.now() };
    await chrome.storage.session.set({ [STATE_KEY]: next });
  }).catch((e) => console.warn('mailmesh: cannot store state', e));
  return chain;
}

/** Starts a fresh record, as a newly started worker knows nothing yet. */
export function resetState() {
  return updateState(initialState());
}
