// The popup: connection state and this node at a glance, plus shortcuts.

import { watchState } from '../shared/host-state.js';
import { renderNodeCard } from '../shared/node-card.js';
import { renderPeerList } from '../shared/peer-list.js';
import { RuntimeType, callWorker } from '../shared/messages/runtime.js';

// Waking the worker also makes it (re)connect if Chrome had stopped it.
callWorker({ type: RuntimeType.GET_STATE }).catch(() => {});
watchState((state) => {
  renderNodeCard(document, state);
  renderPeerList(document.getElementById('peers'), state.status?.peers);
});
// Round-trip times change without an event: re-read them while open.
setInterval(() => callWorker({ type: RuntimeType.REFRESH }).catch(() => {}), 3000);

document.getElementById('start-engine').addEventListener('click', () =>
  callWorker({ type: RuntimeType.START_ENGINE }).catch((e) => {
    document.getElementById('conn-detail').textContent = e.message;
  }));
document.getElementById('open-app').addEventListener('click', () =>
  chrome.tabs.create({ url: chrome.runtime.getURL('app/app.html') }));
document.getElementById('open-setup').addEventListener('click', () =>
  chrome.tabs.create({ url: chrome.runtime.getURL('onboarding/onboarding.html') }));
