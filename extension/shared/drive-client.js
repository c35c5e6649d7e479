// The drive from extension pages: list (native messaging, through the
// service worker), upload and download (the engine's `/bulk` socket, so
// bytes never pass through native messaging). See
// native-host/src/engine/transfers.rs for the socket's commands.

import { RuntimeType, callWorker } from './messages/runtime.js';
import { openEngineSocket, sleep } from './loopback.js';

const CHUNK = 256 * 1024;
const HIGH_WATER = 8 * 1024 * 1024;
const OP_PUT_DATA = 4;

/** @returns {Promise<object[]>} the files, newest first, with health */
export async function listFiles() {
  return (await callWorker({ type: RuntimeType.FILES_LIST })).files;
}

/**
 * Uploads a File/Blob; the engine encodes and spreads it.
 * @param {File} file
 * @param {(sent: number, total: number) => void} onProgress
 */
export async function uploadFile(file, onProgress = () => {}) {
  const ws = await openEngineSocket('/bulk');
  try {
    const done = new Promise((resolve, reject) => {
      ws.onmessage = ({ data }) => {
        if (typeof data !== 'string') return;
        const message = JSON.parse(data);
        if (message.type === 'file_added') resolve(message.file);
        else if (message.type === 'error') reject(new Error(message.message));
      };
      ws.onclose = () => reject(new Error('the engine closed the connection'));
    });
    ws.send(JSON.stringify({ type: 'put_file', name: file.name, size: file.size }));
    for (let offset = 0; offset < file.size; offset += CHUNK) {
      const piece = new Uint8Array(await file.slice(offset, offset + CHUNK).arrayBuffer());
      const message = new Uint8Array(piece.length + 1);
      message[0] = OP_PUT_DATA;
      message.set(piece, 1);
      while (ws.bufferedAmount > HIGH_WATER) await sleep(5);
      ws.send(message);
      onProgress(Math.min(file.size, offset + piece.length - ws.bufferedAmount), file.size);
    }
    onProgress(file.size, file.size);
    return await done;
  } finally {
    ws.close();
  }
}

/**
 * Fetches a file from the drive (from whichever nodes hold it) and hands it
 * to the browser's download.
 * @param {{id: string, name: string, size: number, media_type: string}} file
 */
export async function downloadFile(file, onProgress = () => {}) {
  const ws = await openEngineSocket('/bulk');
  const parts = [];
  let received = 0;
  try {
    await new Promise((resolve, reject) => {
      ws.onmessage = ({ data }) => {
        if (typeof data !== 'string') {
          parts.push(data);
          received += data.byteLength;
          onProgress(received, file.size);
          return;
        }
        const message = JSON.parse(data);
        if (message.type === 'file_end') resolve();
        else if (message.type === 'error') reject(new Error(message.message));
      };
      ws.onclose = () => reject(new Error('the engine closed the connection'));
      ws.send(JSON.stringify({ type: 'get_file', file_id: file.id }));
    });
  } finally {
    ws.close();
  }
  const url = URL.createObjectURL(new Blob(parts, { type: file.media_type || 'application/octet-stream' }));
  const link = Object.assign(document.createElement('a'), { href: url, download: file.name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/**
 * A Download button's action: fetches the file and says in `status` how it
 * went; the button is disabled meanwhile.
 */
export async function downloadWithStatus(file, button, status) {
  button.disabled = true;
  status.textContent = `Fetching ${file.name}…`;
  try {
    await downloadFile(file);
    status.textContent = `${file.name} downloaded.`;
  } catch (e) {
    status.textContent = `${file.name} could not be downloaded: ${e.message}`;
  } finally {
    button.disabled = false;
  }
}

/** "3.2 MB" */
export function formatSize(bytes) {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

/** "full · 6/6", "degraded · 4/6", "unreadable · 2/6" */
export function describeHealth(health) {
  return `${health.state} · ${health.fragments_present}/${health.fragments_total}`;
}

/**
 * Renders files as rows <li data-file-id data-health> with a download
 * button (and, with `onRename` / `onDelete`, rename and delete buttons).
 */
export function renderFileList(list, files, { onDownload, onRename, onDelete, limit } = {}) {
  if (!list) return;
  list.replaceChildren();
  const shown = limit ? files.slice(0, limit) : files;
  if (shown.length === 0) {
    list.append(Object.assign(document.createElement('li'), { className: 'muted', textContent: 'No files yet.' }));
    return;
  }
  for (const file of shown) {
    const item = document.createElement('li');
    item.className = 'file';
    item.dataset.fileId = file.id;
    item.dataset.health = file.health.state;
    const name = Object.assign(document.createElement('span'), { className: 'file-name', textContent: file.name });
    const facts = Object.assign(document.createElement('span'), {
      className: 'file-facts muted',
      textContent: `${formatSize(file.size)} · ${describeHealth(file.health)}${file.origin ? ` · from ${file.origin.from}` : ''}`,
    });
    const download = Object.assign(document.createElement('button'), { className: 'download', textContent: 'Download' });
    download.addEventListener('click', () => onDownload?.(file, download));
    item.append(name, facts, download);
    if (onRename) {
      const rename = Object.assign(document.createElement('button'), { className: 'rename', textContent: 'Rename' });
      rename.addEventListener('click', () => onRename(file));
      item.append(rename);
    }
    if (onDelete) {
      const remove = Object.assign(document.createElement('button'), { className: 'delete', textContent: 'Delete' });
      remove.addEventListener('click', () => onDelete(file));
      item.append(remove);
    }
    list.append(item);
  }
}
