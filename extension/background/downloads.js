// Downloads from the drive, streamed to disk by Chrome's own download
// manager, so a file of any size never sits whole in memory.
//
//   page: FILES_DOWNLOAD ─▶ prepareDownload: /bulk get_file ─▶ file_start
//         (the engine has restored the file, or said why it cannot)
//   page: hidden iframe → /download/<ticket> ─▶ this worker's fetch
//         handler answers with a stream fed by the socket, as an attachment
//   page: new tab → /preview/<ticket> ─▶ the same stream, shown in the tab
//         (images, PDFs, audio, video, text as plain text), in a sandbox
//         where it can: a file from a stranger's mail must never run as
//         this extension
//
// chrome.downloads does not go through the worker's fetch handler, but a
// navigation from an extension page does. The stream acknowledges each
// socket message only when Chrome wants more bytes, and the engine never
// runs more than a few messages ahead of the acknowledgements, so memory
// stays bounded even when the disk is slower than the socket.

import { request } from '../shared/messages/native.js';
import { previewType } from '../shared/preview.js';

export const DOWNLOAD_PATH = '/download/';
export const PREVIEW_PATH = '/preview/';
/** A prepared download nobody fetches is dropped after this long. */
const TICKET_TTL_MS = 60_000;
const HIGH_WATER_BYTES = 4 * 1024 * 1024;
const ACK = JSON.stringify({ type: 'ack' });

/** @type {Map<string, {file: object, stream: ReadableStream, timer: number}>} */
const tickets = new Map();

/**
 * Asks the engine for a file and resolves once the engine has restored it:
 * to a ticket for {@link answerDownload} and the file's listing, or throws
 * the engine's words for why it cannot.
 * @param {import('./native-link.js').NativeLink} link
 * @param {string} fileId
 */
export async function prepareDownload(link, fileId) {
  link.connect();
  const { port, token } = await link.request(request.socketToken());
  const ws = new WebSocket(`ws://127.0.0.1:${port}/bulk?token=${encodeURIComponent(token)}`);
  ws.binaryType = 'arraybuffer';
  const file = await new Promise((resolve, reject) => {
    ws.onopen = () => ws.send(JSON.stringify({ type: 'get_file', file_id: fileId }));
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
  const ticket = crypto.randomUUID();
  const timer = setTimeout(() => {
    tickets.delete(ticket);
    ws.close();
  }, TICKET_TTL_MS);
  tickets.set(ticket, { file, stream: streamFrom(ws), timer });
  return { ticket, file };
}

/** A byte stream of the socket's binary messages until `file_end`. */
function streamFrom(ws) {
  let owed = 0;
  return new ReadableStream({
    start(controller) {
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
          controller.error(new Error(message.message));
        }
      };
      ws.onclose = () => controller.error(new Error('the engine closed the connection mid-file'));
    },
    pull(controller) {
      while (owed > 0 && controller.desiredSize > 0 && ws.readyState === WebSocket.OPEN) {
        ws.send(ACK);
        owed--;
      }
    },
    cancel() {
      ws.close();
    },
  }, new ByteLengthQueuingStrategy({ highWaterMark: HIGH_WATER_BYTES }));
}

/** The ticket's file and stream, taken (a ticket serves once), or null. */
function take(ticket) {
  const entry = tickets.get(ticket);
  if (!entry) return null;
  tickets.delete(ticket);
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
 * the tab. Every type but PDF (whose viewer will not run in one) is shown
 * in a CSP sandbox, an origin of its own with no script.
 * @param {string} ticket
 */
export function answerPreview(ticket) {
  const entry = take(ticket);
  if (!entry) return expired('preview');
  const { file, stream } = entry;
  const type = previewType(file.media_type);
  if (!type) {
    stream.cancel();
    return new Response(`${file.name} cannot be shown here; download it instead.`, {
      status: 415,
      headers: { 'Content-Type': 'text/plain; charset=utf-8' },
    });
  }
  const headers = {
    'Content-Type': type,
    'Content-Length': String(file.size),
    'Content-Disposition': contentDisposition(file.name).replace(/^attachment/, 'inline'),
    'X-Content-Type-Options': 'nosniff',
  };
  if (type !== 'application/pdf') headers['Content-Security-Policy'] = 'sandbox; default-src \'none\'; img-src \'self\'; media-src \'self\'';
  return new Response(stream, { headers });
}

/** `attachment` with the name for old and new parsers (RFC 6266 / 5987). */
export function contentDisposition(name) {
  const fallback = name.replace(/[^\x20-\x7e]|["\\%]/g, '_');
  const encoded = encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `attachment; filename="${fallback}"; filename*=UTF-8''${encoded}`;
}
