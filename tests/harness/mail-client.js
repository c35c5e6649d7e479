// Minimal SMTP and IMAP clients over plain TCP, enough for tests to send a
// message and to look into a mailbox the way any mail client would.

import net from 'node:net';
import { IdleDeadline } from './idle-time.js';

/** A line-oriented conversation on a socket. */
class Conversation {
  constructor(port) {
    this.socket = net.connect(port, '127.0.0.1');
    this.buffer = '';
    this.waiters = [];
    // latin1 keeps one character per byte, so IMAP literal lengths hold.
    this.socket.setEncoding('latin1');
    this.socket.on('data', (d) => { this.buffer += d; this.#wake(); });
    this.socket.on('error', (e) => { this.error = e; this.#wake(); });
    this.socket.on('close', () => { this.closed = true; this.#wake(); });
  }

  #wake() {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Resolves with everything up to and including the first line matching `re`. */
  async until(re, timeoutMs = 10_000) {
    const deadline = new IdleDeadline(timeoutMs);
    for (;;) {
      const lines = this.buffer.split('\r\n');
      for (let i = 0; i < lines.length - 1; i++) {
        if (re.test(lines[i])) {
          const taken = lines.slice(0, i + 1).join('\r\n');
          this.buffer = lines.slice(i + 1).join('\r\n');
          return taken;
        }
      }
      if (this.error) throw this.error;
      if (this.closed) throw new Error(`connection closed while waiting for ${re}`);
      if (deadline.passed) throw new Error(`timed out waiting for ${re}; got ${this.buffer}`);
      await new Promise((r) => { this.waiters.push(r); setTimeout(r, 200); });
    }
  }

  send(line) {
    this.socket.write(`${line}\r\n`);
  }

  close() {
    this.socket.destroy();
  }
}

/** Sends `message` (full RFC 5322 text) from `from` to `to` over SMTP. */
export async function sendMail(port, { from, to, message }) {
  const c = new Conversation(port);
  try {
    await c.until(/^220 /);
    c.send('EHLO test.local');
    await c.until(/^250 /);
    c.send(`MAIL FROM:<${from}>`);
    await c.until(/^250 /);
    c.send(`RCPT TO:<${to}>`);
    await c.until(/^250 /);
    c.send('DATA');
    await c.until(/^354 /);
    const body = message.replace(/\r?\n/g, '\r\n').replace(/^\./gm, '..');
    c.send(`${body}\r\n.`);
    await c.until(/^250 /);
    c.send('QUIT');
  } finally {
    c.close();
  }
}

/**
 * Appends raw messages (ASCII, CRLF lines) to a folder over IMAP, as a
 * mail client or a migration would: much faster than SMTP for a mailbox
 * of many messages. With `date` (an IMAP date-time, "01-Jan-2020 10:00:00
 * +0000") they arrived then; with `create`, the folder is made first.
 */
export async function appendMessages(port, user, password, messages, folder = 'INBOX', { date, create = false } = {}) {
  const c = new Conversation(port);
  try {
    await c.until(/^\* OK/);
    c.send(`a1 LOGIN "${user}" "${password}"`);
    const login = await c.until(/^a1 /);
    if (!/^a1 OK/m.test(login)) throw new Error(`IMAP login failed: ${login}`);
    if (create) {
      c.send(`c1 CREATE "${folder}"`);
      await c.until(/^c1 /);
    }
    for (const [i, message] of messages.entries()) {
      const tag = `p${i}`;
      const arrived = date ? ` "${date}"` : '';
      c.send(`${tag} APPEND "${folder}"${arrived} {${Buffer.byteLength(message, 'latin1')}}`);
      await c.until(/^\+/);
      c.socket.write(`${message}\r\n`, 'latin1');
      const done = await c.until(new RegExp(`^${tag} `));
      if (!new RegExp(`^${tag} OK`, 'm').test(done)) throw new Error(`APPEND refused: ${done}`);
    }
    c.send('a2 LOGOUT');
  } finally {
    c.close();
  }
}

/** A mail from `from` with one attachment of `bytes`, base64. */
export function mailWithAttachment({ from, subject, name, type, bytes, date = new Date().toUTCString() }) {
  const b64 = Buffer.from(bytes).toString('base64').replace(/.{76}/g, '$&\r\n');
  return [`From: ${from}`, 'To: owner@mailmesh.test', `Subject: ${subject}`, `Date: ${date}`, 'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="b"', '', '--b', 'Content-Type: text/plain', '', 'attached', '--b',
    `Content-Type: ${type}`, `Content-Disposition: attachment; filename="${name}"`, 'Content-Transfer-Encoding: base64', '',
    b64, '--b--', ''].join('\r\n');
}

/** mailmesh's own folder in the owner's mailbox. */
export const MAILMESH_FOLDER = 'Mailmesh';

/** Logs in and opens a folder read-only (EXAMINE); returns its message count (0 for none). */
async function examineInbox(c, user, password, folder = 'INBOX') {
  await c.until(/^\* OK/);
  c.send(`a1 LOGIN "${user}" "${password}"`);
  const login = await c.until(/^a1 /);
  if (!/^a1 OK/m.test(login)) throw new Error(`IMAP login failed: ${login}`);
  c.send(`a2 EXAMINE "${folder}"`);
  const examine = await c.until(/^a2 /);
  return Number(/^\* (\d+) EXISTS/m.exec(examine)?.[1] ?? 0);
}

/** Logs in over IMAP and returns the number of messages in INBOX. */
export async function countInbox(port, user, password) {
  const c = new Conversation(port);
  try {
    const exists = await examineInbox(c, user, password);
    c.send('a3 LOGOUT');
    return exists;
  } finally {
    c.close();
  }
}

/** Logs in over IMAP (read-only) and returns every message of a folder (INBOX by default) as raw text. */
export async function fetchInbox(port, user, password, folder = 'INBOX') {
  const c = new Conversation(port);
  try {
    const exists = await examineInbox(c, user, password, folder);
    if (exists === 0) return [];
    c.send('a3 FETCH 1:* (FLAGS BODY.PEEK[])');
    const text = await c.until(/^a3 /, 20_000);
    const messages = [];
    const literal = /\* \d+ FETCH \(.*?\{(\d+)\}\r\n/gs;
    for (let m = literal.exec(text); m; m = literal.exec(text)) {
      const start = m.index + m[0].length;
      messages.push(text.slice(start, start + Number(m[1])));
      literal.lastIndex = start + Number(m[1]);
    }
    c.send('a4 LOGOUT');
    return messages;
  } finally {
    c.close();
  }
}

/** Every message in INBOX and in mailmesh's folder. */
export async function fetchInboxAndFolder(port, user, password) {
  return [...await fetchInbox(port, user, password), ...await fetchInbox(port, user, password, MAILMESH_FOLDER)];
}

/** Decodes a quoted-printable body enough to read links and codes. */
export function unfoldQuotedPrintable(text) {
  return text.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16)));
}

/** The flags of every message of a folder (INBOX by default), read without changing them. */
export async function inboxFlags(port, user, password, folder = 'INBOX') {
  const c = new Conversation(port);
  try {
    if ((await examineInbox(c, user, password, folder)) === 0) return [];
    c.send('a3 FETCH 1:* (FLAGS)');
    const text = await c.until(/^a3 /);
    return [...text.matchAll(/FLAGS \(([^)]*)\)/g)].map((m) => m[1].split(' ').filter(Boolean));
  } finally {
    c.close();
  }
}

/** A raw mail with a mailmesh header and payload, as anyone could send. */
export function mailmeshMessage({ from, to, kind, payload, subject = 'mailmesh' }) {
  const boundary = 'b' + Math.random().toString(16).slice(2);
  const body = Buffer.from(payload).toString('base64').replace(/.{76}/g, '$&\n');
  return `From: ${from}\nTo: ${to}\nSubject: ${subject}\nX-Mailmesh: ${kind}/1\nMIME-Version: 1.0\n` +
    `Content-Type: multipart/mixed; boundary="${boundary}"\n\n--${boundary}\nContent-Type: text/plain\n\nhello\n` +
    `--${boundary}\nContent-Type: application/x-mailmesh\nContent-Disposition: attachment; filename="${kind}.mailmesh"\n` +
    `Content-Transfer-Encoding: base64\n\n${body}\n--${boundary}--\n`;
}
