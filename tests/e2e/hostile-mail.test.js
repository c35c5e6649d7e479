// Issue 15, the mailbox: anyone can mail the owner. Twenty forged mailmesh
// mails of 5 MB each cost the engine no memory at its next start: mails
// larger than their kind can be are never fetched, the rest are handled one
// at a time, and a start reads only what came since the last.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import { mailmeshMessage, sendMail } from '../harness/mail-client.js';
import { foundedNode } from '../harness/owner.js';
import { waitFor } from '../harness/util.js';

/** A mail from someone with one attachment named `name`. */
function withAttachment(to, name) {
  const body = crypto.randomBytes(2_000).toString('base64');
  return `From: alice@example.org\r\nTo: ${to}\r\nSubject: ${name}\r\nMIME-Version: 1.0\r\n` +
    'Content-Type: multipart/mixed; boundary="m"\r\n\r\n--m\r\nContent-Type: text/plain\r\n\r\nhi\r\n' +
    `--m\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="${name}"\r\n` +
    `Content-Transfer-Encoding: base64\r\n\r\n${body}\r\n--m--\r\n`;
}

/** The engine's peak resident memory so far, in MB. */
async function peakMb(pid) {
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8');
  return Number(status.match(/^VmHWM:\s+(\d+) kB/m)[1]) / 1024;
}

test('twenty forged 5 MB mailmesh mails cost the engine no memory at its next start', async (t) => {
  const { mail, node, owner } = await foundedNode(t, 'mailmesh-hostile-mail-');
  const names = async () => JSON.parse((await node.mailmesh('files', 'list', '--json')).stdout).map((f) => f.name);

  /** Restarts the engine and waits for its first mailbox pass to end (the
   * pass reads mailmesh's mails, then imports: a marker mail's attachment
   * in the drive shows both are done). Returns the engine's peak memory. */
  const restartAndPass = async (marker) => {
    await node.mailmesh('stop');
    await sendMail(mail.smtpPort, { from: 'alice@example.org', to: owner, message: withAttachment(owner, marker) });
    await node.startEngine();
    const { engine_pid: pid } = await node.status();
    await waitFor(`${marker} imported`, async () => (await names()).includes(marker), { timeoutMs: 60_000, everyMs: 250 });
    return peakMb(pid);
  };
  const before = await restartAndPass('before.bin');

  const forged = crypto.randomBytes(5 << 20);
  for (let i = 0; i < 20; i += 1) {
    const kind = ['roster', 'approval', 'welcome', 'join-request'][i % 4];
    await sendMail(mail.smtpPort, { from: 'mallory@example.org', to: owner, message: mailmeshMessage({ from: 'mallory@example.org', to: owner, kind, payload: forged }) });
  }
  const after = await restartAndPass('after.bin');
  t.diagnostic(`engine peak at start: ${before.toFixed(1)} MB before the forged mails, ${after.toFixed(1)} MB after`);
  assert.ok(after < before + 25, `the peak grew from ${before.toFixed(1)} MB to ${after.toFixed(1)} MB`);
  assert.equal((await node.status()).enrollment, 'enrolled', 'still in its network');
});
