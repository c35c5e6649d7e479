// Downloads from the drive, streamed to disk by Chrome's own download
// manager, so a file of any size never sits whole in memory.
//
//   page: FILES_DOWNLOAD ─▶ prepareDownload: /bulk get_file ─▶ file_start
//         (the engine has begun restoring the file, or said why it cannot)
//   page: hidden iframe → /download/<ticket> ─▶ this worker's fetch
//         handler answers with a stream fed by the socket, as an attachment
//   page: FILES_PREVIEW ─▶ preparePreview: the same, and a ticket the tab
//         may ask again for any byte range (a video's viewer seeks)
//   page: new tab → /preview/<ticket> ─▶ the stream, shown in the tab
//         (images, PDFs, audio, video, text as plain text), where no
//         script may run: a file from a stranger's mail must never run as
//         this extension
//
// A download that fails part way (a device with needed fragments gone
// mid-file) ends as a failed Chrome download, which only says "network
// error": the engine's words come as a notification.
//
// chrome.downloads does not go through the worker's fetch handler, but a
// navigation from an extension page does. The stream acknowledges each
// socket message only when Chrome wants more bytes, and the engine never
// runs more than a few messages ahead of the acknowledgements, so memory
// stays bounded even when the disk is slower than the socket.

import { request } from '../shared/messages/native.js';
import { previewType } from '../shared/preview.js';
import { downloadFailed } from './alerts.js';

export const DOWNLOAD_PATH = '/download/';
export const PREVIEW_PATH = '/preview/';
/** A prepared download nobody fetches is dropped after this long. */
const TICKET_TTL_MS = 60_000;
const HIGH_WATER_BYTES = 4 * 1024 * 1024;
const ACK = JSON.stringify({ type: 'ack' });

/** @type {Map<string, {file: object, stream: ReadableStream, timer: number}>} */
const downloads = new Map();

/**
 * Asks the engine for a file from byte `from` and resolves once the engine
 * has begun restoring it: to the file's listing and a stream of its bytes
 * (which errors with the engine's words if the restore fails part way), or
 * throws the engine's words for why it cannot.
 * @param {import('./native-link.js').NativeLink} link
 * @param {string} fileId
 */
async function openFile(link, fileId, from = 0, onFailure = () => {}) {
  link.connect();
  const { port, token } = await link.request(request.socketToken());
  const ws = new WebSocket(`ws://127.0.0.1:${port}/bulk?token=${encodeURIComponent(token)}`);
  ws.binaryType = 'arraybuffer';
  const file = await new Promise((resolve, reject) => {
    ws.onopen = () => ws.send(JSON.stringify({ type: 'get_file', file_id: fileId, from }));
    ws.onerror = () => reject(new Error('the engine refused the socket'));
    ws.onclose = () => reject(new Error('the engine closed the connection'));
    ws.onmessage = ({ data }) => {
      const message = typeof data === 'string' ? JSON.parse(data) : {};
      if (message.type === 'file_start') resolve(message.file);
      else reject(new Error(message.message ?? 'the engine sent something unexpected'));
    };
  }).catch((e) => {
    ws.close();
    throw e;
  });
  return { file, stream: streamFrom(ws, (message) => onFailure(file, message)) };
}

/**
 * Asks the engine for a file and resolves once the engine has begun on it:
 * to a ticket for {@link answerDownload} and the file's listing, or throws
 * the engine's words for why it cannot.
 * @param {import('./native-link.js').NativeLink} link
 * @param {string} fileId
 */
export async function prepareDownload(link, fileId) {
  const { file, stream } = await openFile(link, fileId, 0, downloadFailed);
  const ticket = crypto.randomUUID();
  const timer = setTimeout(() => {
    downloads.delete(ticket);
    stream.cancel();
  }, TICKET_TTL_MS);
  downloads.set(ticket, { file, stream, timer });
  return { ticket, file };
}

/**
 * A preview serves its tab for as long as the tab asks: a media element
 * asks again from wherever the viewer seeks to (HTTP ranges), each time a
 * stream of its own from the engine. The tickets are also kept in
 * chrome.storage.session (file id and listing, when last asked), since
 * Chrome stops this worker when it idles, say while a video plays from
 * what its player holds: a seek after that must still find the file.
 * @type {Map<string, {fileId: string, file: object, first: ReadableStream | null}>}
 */
const previews = new Map();
const PREVIEWS_KEY = 'previews';
/** A preview nobody asked anything of for this long is forgotten. */
const PREVIEW_IDLE_MS = 60 * 60_000;

/**
 * Like {@link prepareDownload}, for a tab that shows the file: the ticket
 * can be asked for ranges of it again and again.
 * @param {import('./native-link.js').NativeLink} link
 * @param {string} fileId
 */
export async function preparePreview(link, fileId) {
  const { file, stream } = await openFile(link, fileId);
  const ticket = crypto.randomUUID();
  previews.set(ticket, { fileId, file, first: stream });
  await keep(ticket, { fileId, file });
  // The first stream holds a socket and a restore under way: not for long.
  setTimeout(() => previews.get(ticket)?.first?.cancel(), TICKET_TTL_MS);
  return { ticket, file };
}

let keeping = Promise.resolve();

/**
 * Notes that `ticket` (with `entry` if new) was used now, forgetting
 * previews idle too long. Writes are chained: two ranges asked at once
 * must not each write back what the other did not see.
 */
function keep(ticket, entry) {
  keeping = keeping.then(async () => {
    const now = Date.now();
    const stored = (await chrome.storage.session.get(PREVIEWS_KEY))[PREVIEWS_KEY] ?? {};
    const kept = Object.fromEntries(Object.entries(stored).filter(([, p]) => now - p.at < PREVIEW_IDLE_MS));
    if (entry ?? kept[ticket]) kept[ticket] = { ...(entry ?? kept[ticket]), at: now };
    await chrome.storage.session.set({ [PREVIEWS_KEY]: kept });
  }).catch((e) => console.warn('mailmesh: cannot keep a preview', e));
  return keeping;
}

/** A preview's ticket, from memory or, after a restart of this worker, from storage. */
async function previewOf(ticket) {
  if (previews.has(ticket)) return previews.get(ticket);
  const stored = (await chrome.storage.session.get(PREVIEWS_KEY))[PREVIEWS_KEY]?.[ticket];
  if (!stored || Date.now() - stored.at >= PREVIEW_IDLE_MS) return null;
  const preview = { fileId: stored.fileId, file: stored.file, first: null };
  previews.set(ticket, preview);
  return preview;
}

/**
 * A byte stream of the socket's binary messages until `file_end`; if the
 * engine fails part way, the stream errors and `onFailure` gets its words
 * (not when the reader cancels).
 */
function streamFrom(ws, onFailure) {
  let owed = 0;
  return new ReadableStream({
    start(controller) {
      const fail = (message) => {
        ws.onclose = null;
        onFailure(message);
        controller.error(new Error(message));
      };
      ws.onmessage = ({ data }) => {
        if (typeof data !== 'string') {
          controller.enqueue(new Uint8Array(data));
          if (controller.desiredSize > 0) ws.send(ACK);
          else owed++;
          return;
        }
        const message = JSON.parse(data);
        if (message.type === 'file_end') {
          controller.close();
          ws.onclose = null;
          ws.close();
        } else if (message.type === 'error') {
          fail(message.message);
          ws.close();
        }
      };
      ws.onclose = () => fail('the engine closed the connection mid-file');
    },
    pull(controller) {
      while (owed > 0 && controller.desiredSize > 0 && ws.readyState === WebSocket.OPEN) {
        ws.send(ACK);
        owed--;
      }
    },
    cancel() {
      ws.onclose = null;
      ws.close();
    },
  }, new ByteLengthQueuingStrategy({ highWaterMark: HIGH_WATER_BYTES }));
}

/** The ticket's file and stream, taken (a ticket serves once), or null. */
function take(ticket) {
  const entry = downloads.get(ticket);
  if (!entry) return null;
  downloads.delete(ticket);
  clearTimeout(entry.timer);
  return entry;
}

const expired = (what) => new Response(`This ${what} has expired. Start it again from mailmesh.`, {
  status: 404,
  headers: { 'Content-Type': 'text/plain; charset=utf-8' },
});

/**
 * The fetch handler's answer for `/download/<ticket>`: the file as an
 * attachment, or a plain-words page if the ticket is unknown.
 * @param {string} ticket
 */
export function answerDownload(ticket) {
  const entry = take(ticket);
  if (!entry) return expired('download');
  const { file, stream } = entry;
  return new Response(stream, {
    headers: {
      'Content-Type': file.media_type || 'application/octet-stream',
      'Content-Length': String(file.size),
      'Content-Disposition': contentDisposition(file.name),
    },
  });
}

/**
 * The fetch handler's answer for `/preview/<ticket>`: the file shown in
 * the tab, whole or the range asked for, under {@link contentPolicy}.
 * @param {import('./native-link.js').NativeLink} link
 * @param {string} ticket
 * @param {string | null} rangeHeader the request's `Range`
 */
export async function answerPreview(link, ticket, rangeHeader) {
  const preview = await previewOf(ticket);
  if (!preview) return expired('preview');
  await keep(ticket);
  const { file } = preview;
  const type = previewType(file.media_type);
  if (!type) {
    return new Response(`${file.name} cannot be shown here; download it instead.`, {
      status: 415,
      headers: { 'Content-Type': 'text/plain; charset=utf-8' },
    });
  }
  const range = byteRange(rangeHeader, file.size);
  if (range === UNSATISFIABLE) {
    return new Response(null, { status: 416, headers: { 'Content-Range': `bytes */${file.size}` } });
  }
  const from = range?.start ?? 0;
  let stream = from === 0 ? preview.first : null;
  preview.first = null;
  if (!stream) {
    try {
      ({ stream } = await openFile(link, preview.fileId, from));
    } catch (e) {
      return new Response(`${file.name} cannot be read now: ${e.message}`, {
        status: 503,
        headers: { 'Content-Type': 'text/plain; charset=utf-8' },
      });
    }
  }
  const length = range ? range.end - from + 1 : file.size;
  if (from + length < file.size) stream = stream.pipeThrough(firstBytes(length));
  const headers = {
    'Content-Type': type,
    'Content-Length': String(length),
    'Accept-Ranges': 'bytes',
    'Content-Disposition': contentDisposition(file.name).replace(/^attachment/, 'inline'),
    'X-Content-Type-Options': 'nosniff',
  };
  if (range) headers['Content-Range'] = `bytes ${from}-${range.end}/${file.size}`;
  const policy = contentPolicy(type);
  if (policy) headers['Content-Security-Policy'] = policy;
  return new Response(stream, { status: range ? 206 : 200, headers });
}

/**
 * What the tab showing a file may do: never run script. Images and text
 * are shown in a CSP sandbox, an origin of their own. Audio and video are
 * not: the browser's player fetches the file again, with ranges, and only
 * a document of this origin reaches this worker; with no script allowed it
 * can do nothing as the extension. PDF gets no policy: its viewer will not
 * run under one.
 */
function contentPolicy(type) {
  if (type === 'application/pdf') return null;
  if (/^(audio|video)\//.test(type)) return 'default-src \'none\'; media-src \'self\'';
  return 'sandbox; default-src \'none\'; img-src \'self\'';
}

const UNSATISFIABLE = 'unsatisfiable';

/**
 * The one byte range a `Range` header asks of a file of `size` bytes
 * (RFC 9110 §14.1.2): `{start, end}` (inclusive), null to send it whole
 * (no header, several ranges, or an empty file), or UNSATISFIABLE.
 */
function byteRange(header, size) {
  const match = /^bytes=(\d*)-(\d*)$/.exec(header?.trim() ?? '');
  if (!match || size === 0 || (match[1] === '' && match[2] === '')) return null;
  let start;
  let end;
  if (match[1] === '') {
    start = Math.max(0, size - Number(match[2]));
    end = size - 1;
  } else {
    start = Number(match[1]);
    end = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1);
  }
  return start >= size || start > end ? UNSATISFIABLE : { start, end };
}

/** Passes the first `count` bytes on, then ends the stream (and the socket). */
function firstBytes(count) {
  let left = count;
  return new TransformStream({
    transform(chunk, controller) {
      if (chunk.byteLength >= left) {
        controller.enqueue(chunk.subarray(0, left));
        left = 0;
        controller.terminate();
      } else {
        controller.enqueue(chunk);
        left -= chunk.byteLength;
      }
    },
  });
}

/** `attachment` with the name for old and new parsers (RFC 6266 / 5987). */
export function contentDisposition(name) {
  const fallback = name.replace(/[^\x20-\x7e]|["\\%]/g, '_');
  const encoded = encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `attachment; filename="${fallback}"; filename*=UTF-8''${encoded}`;
}
