// The app's mail section: write a mail and send it from the owner's
// account, with drive files attached (the engine restores and streams
// them into the message; nothing is loaded into this page).

import { RuntimeType, callWorker } from '../shared/messages/runtime.js';
import { formatSize, searchFiles } from '../shared/drive-client.js';

/** Drive files offered to attach at a time (find others by name). */
const OFFERED = 100;

/** @param {Document} doc */
export function showMail(doc) {
  const form = doc.getElementById('mail-form');
  const files = doc.getElementById('mail-files');
  const result = doc.getElementById('mail-result');
  const send = doc.getElementById('mail-send');

  const search = doc.getElementById('mail-files-search');
  /** Files ticked, kept while other searches show other files. */
  const ticked = new Map();
  files.addEventListener('change', (event) => {
    const box = event.target;
    if (box.checked) ticked.set(box.value, JSON.parse(box.dataset.file));
    else ticked.delete(box.value);
  });

  const renderFiles = async () => {
    let list;
    try {
      list = (await searchFiles({ text: search.value.trim() || undefined, limit: OFFERED })).files;
    } catch (e) {
      files.replaceChildren(Object.assign(doc.createElement('li'), { className: 'muted', textContent: e.message }));
      return;
    }
    list = [...ticked.values(), ...list.filter((f) => !ticked.has(f.id))];
    const checked = new Set(ticked.keys());
    files.replaceChildren(...list.map((file) => {
      const box = Object.assign(doc.createElement('input'), { type: 'checkbox', value: file.id, checked: checked.has(file.id) });
      box.dataset.file = JSON.stringify({ id: file.id, name: file.name, size: file.size });
      const label = doc.createElement('label');
      label.append(box, ` ${file.name} (${formatSize(file.size)})`);
      const item = doc.createElement('li');
      item.dataset.fileId = file.id;
      item.append(label);
      return item;
    }));
    if (list.length === 0) files.append(Object.assign(doc.createElement('li'), { className: 'muted', textContent: 'Your drive is empty.' }));
  };

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const to = doc.getElementById('mail-to').value.split(',').map((a) => a.trim()).filter(Boolean);
    const attachments = [...ticked.keys()];
    send.disabled = true;
    result.textContent = attachments.length ? 'Sending (fetching the attachments from your devices)…' : 'Sending…';
    try {
      const sent = await callWorker({
        type: RuntimeType.MAIL_SEND,
        to,
        subject: doc.getElementById('mail-subject').value,
        body: doc.getElementById('mail-body').value,
        attachments,
      });
      result.textContent = `Sent to ${to.join(', ')}.`;
      result.dataset.messageId = sent.message_id;
      form.reset();
      ticked.clear();
      renderFiles();
    } catch (e) {
      result.textContent = `Not sent: ${e.message}`;
    } finally {
      send.disabled = false;
    }
  });
  search.addEventListener('input', renderFiles);
  window.addEventListener('hashchange', () => { if (location.hash === '#mail') renderFiles(); });
  renderFiles();
}
