// Renders the engine's peer view (status.peers) as a list: the owner's
// devices first, online or not, then other people's nodes nearby, which
// stay marked unverified until their address is verified.
//
// Each row is <li data-peer=ID data-online=true|false data-path=webrtc|relay|
// data-member=true|false>, which the tests read as well as people.

const PATH_WORDS = { webrtc: 'direct', relay: 'relayed' };

/**
 * @param {HTMLElement | null} list
 * @param {import('./messages/native.js').PeerView[] | undefined} peers
 */
export function renderPeerList(list, peers) {
  if (!list) return;
  list.replaceChildren();
  if (!peers || peers.length === 0) {
    const empty = document.createElement('li');
    empty.className = 'muted';
    empty.textContent = 'No other nodes yet.';
    list.append(empty);
    return;
  }
  for (const peer of peers) {
    const item = document.createElement('li');
    item.className = 'peer';
    item.dataset.peer = peer.id;
    item.dataset.online = String(peer.online);
    item.dataset.member = String(peer.member);
    item.dataset.path = peer.path ?? '';
    const dot = document.createElement('span');
    dot.className = 'dot';
    const name = document.createElement('span');
    name.className = 'peer-name';
    name.textContent = peer.name || 'unnamed node';
    const who = document.createElement('span');
    who.className = 'peer-who muted';
    who.textContent = peer.member ? '' : `${peer.email || 'someone'} · ${peer.verified ? 'verified' : 'unverified'}`;
    const fingerprint = document.createElement('span');
    fingerprint.className = 'mono peer-fingerprint';
    fingerprint.textContent = peer.fingerprint;
    const state = document.createElement('span');
    state.className = 'peer-state';
    state.textContent = describe(peer);
    item.append(dot, name, who, fingerprint, state);
    list.append(item);
  }
}

/** "online · 3 ms · direct" or "offline · seen 5 min ago". */
export function describe(peer, now = Date.now()) {
  if (peer.online) {
    const parts = ['online'];
    if (peer.rtt_ms != null) parts.push(`${peer.rtt_ms} ms`);
    if (peer.path) parts.push(PATH_WORDS[peer.path] ?? peer.path);
    return parts.join(' · ');
  }
  return peer.last_seen ? `offline · seen ${ago(now - peer.last_seen)}` : 'offline · never seen';
}

function ago(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}
