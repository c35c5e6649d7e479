// The app page: one tab with every section; the hash picks the section.

import { watchState } from '../shared/host-state.js';
import { renderNodeCard } from '../shared/node-card.js';
import { RuntimeType, callWorker } from '../shared/messages/runtime.js';

function showSection() {
  const name = location.hash.slice(1) || 'nodes';
  for (const section of document.querySelectorAll('main > section')) {
    section.classList.toggle('active', section.dataset.section === name);
  }
  for (const link of document.querySelectorAll('nav a')) {
    if (link.getAttribute('href') === `#${name}`) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

window.addEventListener('hashchange', showSection);
showSection();
callWorker({ type: RuntimeType.GET_STATE }).catch(() => {});
watchState((state) => renderNodeCard(document, state));
document.getElementById('start-engine').addEventListener('click', () =>
  callWorker({ type: RuntimeType.START_ENGINE }).catch(() => {}));
