// Direct file send in the app: offers to answer, transfers with progress,
// speed and time left, and "Send file…" for a person. The engine does the
// sending (it resumes after breaks); a file picked here is added to the
// drive first and offered from there.

import { uploadFile } from '../shared/drive-client.js';
import { onEngineChange } from '../shared/host-state.js';
import { RuntimeType, callWorker } from '../shared/messages/runtime.js';


const mb = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;

function facts(t) {
  const arrow = t.direction === 'out' ? `to ${t.peer}` : `from ${t.peer}`;
  const progress = `${mb(t.done)} of ${mb(t.size)}`;
  switch (t.state) {
    case 'offered': return `${arrow} · ${mb(t.size)} · ${t.direction === 'in' ? 'offered to you' : 'waiting for an answer'}`;
    case 'active': return t.rate_bps
      ? `${arrow} · ${progress} · ${mb(t.rate_bps)}/s · ${t.eta_secs ?? '?'} s left`
      : `${arrow} · ${progress} · waiting for the link`;
    case 'done': return `${arrow} · ${mb(t.size)} · done${t.saved_as && t.direction === 'in' ? ` · saved to ${t.saved_as}` : ''}`;
    default: return `${arrow} · ${t.state}${t.detail ? `: ${t.detail}` : ''}`;
  }
}

/** @param {Document} doc */
export function showTransfers(doc) {
  const list = doc.getElementById('transfers');
  const result = doc.getElementById('transfers-result');
  const input = doc.getElementById('send-input');
  let sendTo = null;
  let report = (text) => { result.textContent = text; };

  const button = (label, className, onClick) => {
    const b = Object.assign(doc.createElement('button'), { textContent: label, className });
    b.addEventListener('click', onClick);
    return b;
  };
  const act = async (message, done) => {
    try {
      render((await callWorker(message)).transfers);
      result.textContent = done;
    } catch (e) {
      result.textContent = e.message;
    }
  };

  let shown = '';

  function render(transfers) {
    // Unchanged, nothing is replaced (a button being clicked stays put).
    const key = JSON.stringify(transfers);
    if (key === shown) return;
    shown = key;
    if (!transfers.length) {
      list.replaceChildren(Object.assign(doc.createElement('li'), { className: 'muted', textContent: 'Nothing sent or received yet.' }));
      return;
    }
    list.replaceChildren(...transfers.map((t) => {
      const item = doc.createElement('li');
      Object.assign(item.dataset, { id: t.id, state: t.state, direction: t.direction, name: t.name });
      const actions = Object.assign(doc.createElement('span'), { className: 'actions' });
      if (t.direction === 'in' && t.state === 'offered') {
        actions.append(
          button('Save to drive', 'accept-drive', () => act({ type: RuntimeType.SEND_ACCEPT, transfer: t.id, to: 'drive' })),
          button('Save to Downloads', 'accept-downloads', () => act({ type: RuntimeType.SEND_ACCEPT, transfer: t.id, to: 'downloads' })),
          button('Decline', 'decline', () => act({ type: RuntimeType.SEND_DECLINE, transfer: t.id }, `${t.name} declined.`)));
      } else if (t.state === 'offered' || t.state === 'active') {
        actions.append(button('Cancel', 'cancel', () => act({ type: RuntimeType.SEND_CANCEL, transfer: t.id }, 'Cancelled.')));
      }
      const progress = Object.assign(doc.createElement('progress'), { max: Math.max(t.size, 1), value: t.done });
      item.append(
        Object.assign(doc.createElement('span'), { className: 'name', textContent: t.name }),
        actions,
        progress,
        Object.assign(doc.createElement('span'), { className: 'facts muted', textContent: facts(t) }));
      return item;
    }));
  }

  const refresh = () => callWorker({ type: RuntimeType.SEND_LIST }).then(({ transfers }) => render(transfers), (e) => {
    result.textContent = e.message;
  });

  input.addEventListener('change', async () => {
    const [file] = input.files;
    input.value = '';
    if (!file || !sendTo) return;
    try {
      report(`Adding ${file.name} to your drive…`);
      const added = await uploadFile(file);
      await callWorker({ type: RuntimeType.SEND_FILE, to: sendTo, fileId: added.id });
      report(`${file.name} offered to ${sendTo}; its progress is under People.`);
      refresh();
    } catch (e) {
      report(`${file.name} was not sent: ${e.message}`);
    }
  });

  refresh();
  onEngineChange(['transfers'], refresh);
  return {
    /** Asks for a file and offers it to `email`, reporting to `say`. */
    pickFileFor(email, say = (text) => { result.textContent = text; }) {
      sendTo = email;
      report = say;
      input.click();
    },
  };
}
