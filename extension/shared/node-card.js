// Renders "this node" facts from the host state into elements found by id.
// Shared by the popup, the app page and the onboarding page, which all show
// the connection, the host version and the fingerprint.

import { loadCore, hexToBytes } from './core.js';

/**
 * @param {Document} doc
 * @param {import('./host-state.js').HostState} state
 */
export async function renderNodeCard(doc, state) {
  const set = (id, text) => {
    const el = doc.getElementById(id);
    if (el) el.textContent = text;
  };
  const badge = doc.getElementById('conn-state');
  if (badge) {
    badge.textContent = state.connection;
    badge.dataset.state = state.connection;
  }
  set('host-version', state.hostVersion ?? '—');
  set('device-name', state.status?.device_name ?? '—');
  set('conn-detail', state.connection === 'connected' ? '' : explain(state));
  const enrollment = { enrolled: 'confirmed', awaiting_confirmation: 'awaiting confirmation', none: 'not set up' };
  set('enrollment', state.status ? enrollment[state.status.enrollment] ?? state.status.enrollment : '—');
  set('network-id', state.status?.network_id ?? '—');
  set('account-email', state.status?.account_email ?? '—');
  const startButton = doc.getElementById('start-engine');
  if (startButton) startButton.hidden = state.engine !== 'down';

  let fingerprint = '—';
  if (state.status?.public_key) {
    try {
      const core = await loadCore();
      fingerprint = core.nodeFingerprint(hexToBytes(state.status.public_key));
      set('core-version', core.coreVersion());
    } catch (e) {
      fingerprint = `cannot compute: ${e.message}`;
    }
  }
  set('fingerprint', fingerprint);
}

/** Says in words why there is no connection and what to do. */
function explain(state) {
  if (state.connection === 'connecting') return 'Connecting to the mailmesh host…';
  const error = state.error ?? '';
  if (/not found/i.test(error)) {
    return 'The mailmesh host is not installed for this browser. Run scripts/install.sh, or `mailmesh doctor` to see what is missing.';
  }
  if (/forbidden/i.test(error)) {
    return 'The mailmesh host does not allow this extension. Run `mailmesh install` again, then `mailmesh doctor`.';
  }
  if (state.engine === 'down') return 'The mailmesh engine is not running. Start it here, or run `mailmesh run --detach`.';
  return error ? `Not connected: ${error}` : 'Not connected.';
}
