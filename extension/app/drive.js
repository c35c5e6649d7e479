// The app's drive section: drop or choose files (each with a progress
// bar), search by name, download, rename and delete. Uploads and downloads
// go over the engine's /bulk socket (shared/drive-client.js).

import { onEngineChange } from '../shared/host-state.js';
import { RuntimeType, callWorker } from '../shared/messages/runtime.js';
import { downloadWithStatus, listFiles, renderFileList, uploadFile } from '../shared/drive-client.js';

/** @param {Document} doc */
export function showDrive(doc) {
  const list = doc.getElementById('drive-files');
  const result = doc.getElementById('drive-result');
  const search = doc.getElementById('drive-search');
  const input = doc.getElementById('drive-input');
  const zone = doc.getElementById('drop-zone');
  let files = [];

  const render = () => {
    const query = search.value.trim().toLowerCase();
    renderFileList(list, files.filter((f) => f.name.toLowerCase().includes(query)), {
      onDownload: (file, button) => downloadWithStatus(file, button, result),
      onRename: async (file) => {
        const name = prompt(`New name for ${file.name}`, file.name);
        if (!name || name === file.name) return;
        try {
          await callWorker({ type: RuntimeType.FILES_RENAME, fileId: file.id, name });
          result.textContent = `Renamed to ${name}.`;
          refresh();
        } catch (e) {
          result.textContent = e.message;
        }
      },
      onDelete: async (file) => {
        if (!confirm(`Delete ${file.name} from all your devices?`)) return;
        try {
          await callWorker({ type: RuntimeType.FILES_REMOVE, fileId: file.id });
          result.textContent = `${file.name} deleted.`;
          refresh();
        } catch (e) {
          result.textContent = e.message;
        }
      },
    });
  };

  const refresh = async () => {
    try {
      files = await listFiles();
      render();
    } catch (e) {
      result.textContent = e.message;
    }
  };

  const upload = async (file) => {
    const row = doc.createElement('div');
    row.className = 'upload';
    row.dataset.name = file.name;
    const label = Object.assign(doc.createElement('span'), { textContent: file.name });
    const bar = Object.assign(doc.createElement('progress'), { max: 1, value: 0 });
    row.append(label, bar);
    doc.getElementById('uploads').append(row);
    try {
      await uploadFile(file, (sent, total) => { bar.value = total ? sent / total : 1; });
      row.dataset.done = 'true';
      result.textContent = `${file.name} added to your drive.`;
      refresh();
    } catch (e) {
      row.dataset.failed = 'true';
      result.textContent = `${file.name} was not added: ${e.message}`;
    }
  };

  doc.getElementById('choose-files').addEventListener('click', () => input.click());
  input.addEventListener('change', () => {
    for (const file of input.files) upload(file);
    input.value = '';
  });
  zone.addEventListener('dragover', (e) => {
    e.preventDefault();
    zone.classList.add('over');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    for (const file of e.dataTransfer.files) upload(file);
  });
  search.addEventListener('input', render);
  refresh();
  // Health counts fragments on online nodes: peers coming and going change it.
  onEngineChange(['files', 'peers'], refresh);
}
