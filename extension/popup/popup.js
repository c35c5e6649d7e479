// The popup: connection state and this node at a glance, plus shortcuts.

import { onEngineChange, watchState } from '../shared/host-state.js';
import { mountJoinCard, renderJoinRequests } from '../shared/join-requests.js';
import { renderNodeCard } from '../shared/node-card.js';
import { renderPeerList } from '../shared/peer-list.js';
import { renderImport } from '../shared/import-progress.js';
import {
  downloadWithStatus, previewFile, renderFileList, searchFiles, showDownloadFailures, uploadFile,
} from '../shared/drive-client.js';
import { RuntimeType, callWorker } from '../shared/messages/runtime.js';

// Waking the worker also makes it (re)connect if Chrome had stopped it.
callWorker({ type: RuntimeType.GET_STATE }).catch(() => {});
mountJoinCard(document);
watchState((state) => {
  renderNodeCard(document, state);
  renderJoinRequests(document, state.status);
  renderPeerList(document.getElementById('peers'), state.status?.peers);
  renderUnread(state.status?.chat_unread ?? 0);
  renderImport(document.getElementById('import-state'), document.getElementById('import-progress'), state.status);
});

function renderUnread(count) {
  const unread = document.getElementById('chat-unread');
  unread.dataset.count = String(count);
  unread.textContent = count ? `${count} unread message${count === 1 ? '' : 's'}` : 'No unread messages';
}
// Files (and their health, which counts online nodes) when the engine says.
onEngineChange(['files', 'peers'], () => showFiles());

const result = document.getElementById('files-result');
showDownloadFailures(result);

async function showFiles() {
  try {
    // The five newest: only those come from the engine.
    const { files } = await searchFiles({ limit: 5 });
    renderFileList(document.getElementById('files'), files, {
      onDownload: (file, button) => downloadWithStatus(file, button, result),
      onPreview: (file) => previewFile(file).catch((e) => { result.textContent = e.message; }),
    });
  } catch (e) {
    result.textContent = e.message;
  }
}

const picker = document.getElementById('add-file');
const progress = document.getElementById('upload-progress');
document.getElementById('pick-file').addEventListener('click', () => picker.click());
picker.addEventListener('change', async () => {
  const [file] = picker.files;
  if (!file) return;
  progress.hidden = false;
  try {
    const added = await uploadFile(file, (sent, total) => { progress.value = total ? sent / total : 1; });
    result.textContent = `${added.name} added to your drive.`;
    showFiles();
  } catch (e) {
    result.textContent = `${file.name} was not added: ${e.message}`;
  } finally {
    progress.hidden = true;
    picker.value = '';
  }
});
showFiles();

document.getElementById('start-engine').addEventListener('click', () =>
  callWorker({ type: RuntimeType.START_ENGINE }).catch((e) => {
    document.getElementById('conn-detail').textContent = e.message;
  }));
document.getElementById('open-app').addEventListener('click', () =>
  chrome.tabs.create({ url: chrome.runtime.getURL('app/app.html') }));
document.getElementById('open-chat').addEventListener('click', () =>
  chrome.tabs.create({ url: chrome.runtime.getURL('app/app.html#chat') }));
document.getElementById('open-setup').addEventListener('click', () =>
  chrome.tabs.create({ url: chrome.runtime.getURL('onboarding/onboarding.html') }));
