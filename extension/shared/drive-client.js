// The drive from extension pages: list (native messaging, through the
// service worker), upload (sent over the engine's `/bulk` socket, which
// seals and codes it as it comes) and download (streamed by the service worker into a
// Chrome download). See native-host/src/engine/transfers.rs for the
// socket's commands and background/downloads.js for downloads.

import { RuntimeType, callWorker } from './messages/runtime.js';
import { openEngineSocket } from './loopback.js';
import { hexToBytes, loadCore } from './core.js';
import { frameBlob } from './drive-codec.js';
import { previewType } from './preview.js';
import { watchState } from './host-state.js';

/**
 * Bytes sent ahead of what the engine has coded: enough to keep its coder
 * busy while the next messages cross the socket, little enough to keep
 * both sides' memory at a few MiB.
 */
const BYTES_IN_FLIGHT = 8 * 1024 * 1024;

/** @returns {Promise<object[]>} the files, newest first, with health */
export async function listFiles() {
  return (await callWorker({ type: RuntimeType.FILES_LIST })).files;
}

/**
 * A page of the files that match (the engine filters and sorts; only the
 * page's files come, with their health).
 * @returns {Promise<{files: object[], total: number, offset: number}>}
 */
export async function searchFiles(query) {
  return callWorker({ type: RuntimeType.FILES_SEARCH, query });
}

/**
 * Adds a File/Blob to the drive: the page sends its bytes and the engine
 * seals, codes, stores and spreads them as they come (content the drive
 * already has gives the file already there).
 * @param {File} file
 * @param {(done: number, total: number) => void} onProgress bytes coded by the engine
 */
export async function uploadFile(file, onProgress = () => {}) {
  const core = await loadCore();
  const ws = await openEngineSocket('/bulk');
  const window = new SendWindow(BYTES_IN_FLIGHT);
  try {
    const replies = new ReplyQueue(ws);
    ws.send(JSON.stringify({ type: 'put_file', name: file.name, size: file.size }));
    const start = await replies.next();
    if (start.type === 'file_added') return start.file; // an empty file
    frameBlob(core, file, async (message, end) => {
      replies.throwIfFailed();
      // Chrome's socket takes whatever it is given and queues it outside
      // the page, so the engine's answers are the only real backpressure.
      await window.room(end, () => replies.throwIfFailed());
      ws.send(message);
    }).catch((e) => replies.fail(e)); // a file that cannot be read ends the wait below
    for (;;) {
      const reply = await replies.next();
      if (reply.type === 'progress') {
        window.taken(reply.bytes);
        onProgress(reply.bytes, file.size);
      }
      if (reply.type === 'file_added') {
        onProgress(file.size, file.size);
        return reply.file;
      }
    }
  } finally {
    window.wake(); // a sender still waiting finds the failure and stops
    ws.close();
  }
}

/** How far ahead of the engine the page may send. */
class SendWindow {
  constructor(size) {
    this.size = size;
    this.acknowledged = 0;
    this.waiting = null;
  }

  /** Resolves once sending up to byte `end` keeps within the window. */
  async room(end, check) {
    while (end - this.acknowledged > this.size) {
      await new Promise((resolve) => { this.waiting = resolve; });
      check();
    }
  }

  /** The engine has taken every byte before `end`. */
  taken(end) {
    this.acknowledged = Math.max(this.acknowledged, end);
    this.wake();
  }

  wake() {
    const waiting = this.waiting;
    this.waiting = null;
    waiting?.();
  }
}

/** The engine's JSON replies in order; an `error` reply throws. */
class ReplyQueue {
  constructor(ws) {
    this.queue = [];
    this.waiting = null;
    this.failure = null;
    ws.onmessage = ({ data }) => {
      if (typeof data === 'string') this.#settle(JSON.parse(data));
    };
    ws.onclose = () => this.#settle({ type: 'error', message: 'the engine closed the connection' });
  }

  /** Ends the queue with `error`: `next` throws it from now on. */
  fail(error) {
    this.failure ??= error;
    this.#wake();
  }

  #settle(reply) {
    if (reply.type === 'error') this.fail(new Error(reply.message));
    else this.queue.push(reply);
    this.#wake();
  }

  #wake() {
    const waiting = this.waiting;
    this.waiting = null;
    waiting?.();
  }

  throwIfFailed() {
    if (this.failure) throw this.failure;
  }

  async next() {
    while (this.queue.length === 0) {
      this.throwIfFailed();
      await new Promise((resolve) => { this.waiting = resolve; });
    }
    return this.queue.shift();
  }
}

/**
 * Has Chrome download a file from the drive, streamed to disk. Resolves
 * once the engine has begun restoring the file and the download has started;
 * throws the engine's words if it cannot be restored.
 * @param {{id: string, name: string}} file
 */
export async function downloadFile(file) {
  const { ticket } = await callWorker({ type: RuntimeType.FILES_DOWNLOAD, fileId: file.id });
  const frame = Object.assign(document.createElement('iframe'), { hidden: true, src: `/download/${ticket}` });
  document.body.append(frame);
  setTimeout(() => frame.remove(), 60_000);
}

/**
 * Shows a file in a new tab (images, PDFs, media, text), streamed from the
 * engine through the service worker.
 * @param {{id: string, name: string}} file
 */
export async function previewFile(file) {
  // Opened now, while the click still counts as one, and pointed at the
  // file once the engine has it.
  const tab = window.open('about:blank', '_blank');
  try {
    const { ticket } = await callWorker({ type: RuntimeType.FILES_PREVIEW, fileId: file.id });
    tab.location.href = chrome.runtime.getURL(`/preview/${ticket}`);
  } catch (e) {
    tab?.close();
    throw e;
  }
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
    status.textContent = `${file.name} is being saved to your downloads.`;
  } catch (e) {
    status.textContent = `${file.name} could not be downloaded: ${e.message}`;
  } finally {
    button.disabled = false;
  }
}

/**
 * Shows in `status` every download that fails part way from now on (a
 * device with needed fragments gone mid-file): Chrome's download list
 * says only "network error"; the service worker records the engine's
 * words in the state.
 * @param {HTMLElement} status
 */
export function showDownloadFailures(status) {
  let since = Date.now();
  watchState(({ downloadFailure: failure }) => {
    if (!failure || failure.at <= since) return;
    since = failure.at;
    status.textContent = `${failure.name} could not be downloaded: ${failure.message}`;
  });
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
export function renderFileList(list, files, { onDownload, onPreview, onRename, onDelete, limit } = {}) {
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
    const date = new Date(file.origin?.date || file.added_ms);
    const origin = file.origin ? ` · from ${file.origin.from}: ${file.origin.subject}` : '';
    const facts = Object.assign(document.createElement('span'), {
      className: 'file-facts muted',
      textContent: `${file.kind || 'file'} · ${Number.isNaN(date.getTime()) ? '' : date.toLocaleDateString()} · ` +
        `${formatSize(file.size)} · ${describeHealth(file.health)}${origin}`,
    });
    item.append(name, facts);
    if (onPreview && previewType(file.media_type)) {
      const preview = Object.assign(document.createElement('button'), { className: 'preview', textContent: 'Preview' });
      preview.addEventListener('click', () => onPreview(file, preview));
      item.append(preview);
    }
    const download = Object.assign(document.createElement('button'), { className: 'download', textContent: 'Download' });
    download.addEventListener('click', () => onDownload?.(file, download));
    item.append(download);
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
