// The app's drive section: drop or choose files (each with a progress
// bar); find files by name, sender, subject, type and date, in the order
// asked, a page at a time (the engine searches and sorts; only the page
// comes, so a drive of 50,000 files stays quick); preview, download,
// rename and delete. Uploads and downloads go over the engine's /bulk
// socket (shared/drive-client.js).

import { onEngineChange } from '../shared/host-state.js';
import { RuntimeType, callWorker } from '../shared/messages/runtime.js';
import {
  downloadWithStatus, previewFile, renderFileList, searchFiles, showDownloadFailures, uploadFile,
} from '../shared/drive-client.js';

/** Files a page shows. */
const PAGE = 100;

/** @param {Document} doc */
export function showDrive(doc) {
  const field = (id) => doc.getElementById(id);
  const list = field('drive-files');
  const result = field('drive-result');
  showDownloadFailures(result);
  const input = field('drive-input');
  const zone = field('drop-zone');
  let offset = 0;
  let total = 0;

  /** The query the filters say, for the current page. */
  const query = () => {
    const day = (id) => (field(id).value ? Date.parse(`${field(id).value}T00:00:00Z`) : undefined);
    const [sort, reverse] = field('drive-sort').value.split('-');
    const until = day('drive-until');
    return {
      text: field('drive-search').value.trim() || undefined,
      from: field('drive-from').value.trim() || undefined,
      kind: field('drive-kind').value || undefined,
      since_ms: day('drive-since'),
      // The "until" day is included.
      until_ms: until === undefined ? undefined : until + 86_400_000,
      sort,
      reverse: reverse === 'reverse',
      offset,
      limit: PAGE,
    };
  };

  const actions = {
    onDownload: (file, button) => downloadWithStatus(file, button, result),
    onPreview: (file) => previewFile(file).catch((e) => { result.textContent = `${file.name} cannot be shown: ${e.message}`; }),
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
  };

  // Answers can come back out of order while someone types: only the
  // latest is shown.
  let asked = 0;
  const refresh = async () => {
    const mine = ++asked;
    try {
      const page = await searchFiles(query());
      if (mine !== asked) return;
      total = page.total;
      renderFileList(list, page.files, actions);
      field('drive-count').textContent = total === 0 ? ''
        : `${offset + 1}–${offset + page.files.length} of ${total.toLocaleString()} files`;
      field('drive-prev').disabled = offset === 0;
      field('drive-next').disabled = offset + PAGE >= total;
    } catch (e) {
      result.textContent = e.message;
    }
  };
  const fromStart = () => {
    offset = 0;
    refresh();
  };

  const upload = async (file) => {
    const row = doc.createElement('div');
    row.className = 'upload';
    row.dataset.name = file.name;
    const label = Object.assign(doc.createElement('span'), { textContent: file.name });
    const bar = Object.assign(doc.createElement('progress'), { max: 1, value: 0 });
    row.append(label, bar);
    field('uploads').append(row);
    try {
      await uploadFile(file, (sent, size) => { bar.value = size ? sent / size : 1; });
      row.dataset.done = 'true';
      result.textContent = `${file.name} added to your drive.`;
      refresh();
    } catch (e) {
      row.dataset.failed = 'true';
      result.textContent = `${file.name} was not added: ${e.message}`;
    }
  };

  field('choose-files').addEventListener('click', () => input.click());
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
  field('drive-filters').addEventListener('input', fromStart);
  field('drive-filters').addEventListener('submit', (e) => e.preventDefault());
  field('drive-prev').addEventListener('click', () => {
    offset = Math.max(0, offset - PAGE);
    refresh();
  });
  field('drive-next').addEventListener('click', () => {
    offset += PAGE;
    refresh();
  });
  refresh();
  // Health counts fragments on online nodes: peers coming and going change it.
  onEngineChange(['files', 'peers'], refresh);
}
