// The app page: one tab with every section; the hash picks the section.

import { watchState } from '../shared/host-state.js';
import { mountJoinCard, renderJoinRequests } from '../shared/join-requests.js';
import { renderNodeCard } from '../shared/node-card.js';
import { renderPeerList } from '../shared/peer-list.js';
import { showCalls } from './calls.js';
import { showChat } from './chat.js';
import { showDrive } from './drive.js';
import { showMail } from './mail.js';
import { showPeople } from './people.js';
import { showSettings } from './settings.js';
import { renderImport } from '../shared/import-progress.js';
import { showTransfers } from './transfers.js';
import { RuntimeType, callWorker } from '../shared/messages/runtime.js';

function showSection() {
  // `#chat/<id>` is the chat section with a conversation open.
  const name = location.hash.slice(1).split('/')[0] || 'nodes';
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
showDrive(document);
showMail(document);
showSettings(document);
const transfers = showTransfers(document);
showPeople(document, { onSendFile: (email) => transfers.pickFileFor(email) });
showChat(document, {
  onSendFile: (email) => transfers.pickFileFor(email, (text) => { document.getElementById('chat-result').textContent = text; }),
});
showCalls(document);
callWorker({ type: RuntimeType.GET_STATE }).catch(() => {});
mountJoinCard(document);
watchState((state) => {
  renderNodeCard(document, state);
  renderJoinRequests(document, state.status);
  renderMembers(state);
  renderPeerList(document.getElementById('peers'), state.status?.peers);
  renderImport(document.getElementById('import-state'), document.getElementById('import-progress'), state.status);
});

/** The roster: one row per device, with a Remove button for the others. */
function renderMembers(state) {
  const list = document.getElementById('members');
  const status = state.status;
  list.replaceChildren(...(status?.roster ?? []).map((member) => {
    const item = document.createElement('li');
    item.dataset.nodeId = member.node_id;
    const name = Object.assign(document.createElement('span'), { className: 'name', textContent: member.device_name });
    const fingerprint = Object.assign(document.createElement('span'), { className: 'mono muted', textContent: member.fingerprint });
    item.append(name, fingerprint);
    if (member.node_id === status.node_id) {
      item.append(Object.assign(document.createElement('span'), { className: 'muted', textContent: 'this device' }));
    } else {
      const remove = Object.assign(document.createElement('button'), { textContent: 'Remove…' });
      remove.addEventListener('click', () => requestRemoval(member));
      item.append(remove);
    }
    return item;
  }));
}

async function requestRemoval(member) {
  const result = document.getElementById('members-result');
  if (!confirm(`Remove ${member.device_name} from your network? You will confirm it from a mail.`)) return;
  try {
    await callWorker({ type: RuntimeType.NODE_REMOVE, nodeId: member.node_id });
    result.textContent = `A mail asks you to confirm removing ${member.device_name}: open its link on this device.`;
  } catch (e) {
    result.textContent = e.message;
  }
}
document.getElementById('start-engine').addEventListener('click', () =>
  callWorker({ type: RuntimeType.START_ENGINE }).catch(() => {}));
