// Issue 7, mail from the app: a mail written in node2's app page with a
// drive file attached (its fragments spread over both nodes) arrives in
// the recipient's Dovecot mailbox with the same bytes; the CLI sends one
// too; a refused recipient and a malformed address are said plainly.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { LanMesh } from '../harness/lan-mesh.js';
import { fetchInbox } from '../harness/mail-client.js';
import { REFUSED_RECIPIENT } from '../harness/mail-server.js';
import { waitFor } from '../harness/util.js';

/** The decoded attachment called `name` in a raw message, or null. */
function attachmentOf(raw, name) {
  const header = raw.indexOf(`filename="${name}"`);
  if (header < 0) return null;
  const start = raw.indexOf('\r\n\r\n', header) + 4;
  const end = raw.indexOf('\r\n--', start);
  return Buffer.from(raw.slice(start, end).replace(/\r\n/g, ''), 'base64');
}

test('a mail from the app carries a drive file to the recipient byte for byte; errors are plain', async (t) => {
  const mesh = await LanMesh.start(2);
  t.after(async () => assert.deepEqual(await mesh.stop(), [], 'nothing left running'));
  const [one, two] = mesh.nodes;
  const bob = await mesh.mail.addUser('bob', 'bob-secret');

  const report = crypto.randomBytes(1_700_000);
  const source = path.join(mesh.dir, 'report.bin');
  await fs.writeFile(source, report);
  const fileId = (await one.mailmesh('files', 'add', source)).stdout.match(/added ([0-9a-f]{64})/)[1];
  await waitFor('report.bin in node2\'s drive', async () =>
    JSON.parse((await two.mailmesh('files', 'list', '--json')).stdout).some((f) => f.id === fileId && f.health.state === 'full'),
  { timeoutMs: 60_000, everyMs: 500 });

  const app = await two.openPage('app/app.html#mail');
  const attach = app.locator(`#mail-files li[data-file-id="${fileId}"] input`);
  await waitFor('report.bin in the mail form', () => attach.count(), { timeoutMs: 30_000, everyMs: 250 });
  await attach.check();
  await app.fill('#mail-to', bob);
  await app.fill('#mail-subject', 'Quarterly report — final');
  await app.fill('#mail-body', 'Hi Bob,\nthe report is attached.\n');
  await app.click('#mail-send');
  await waitFor('the app to say the mail was sent', async () =>
    (await app.locator('#mail-result').textContent()).startsWith('Sent to'), { timeoutMs: 60_000, everyMs: 250 });

  const inbox = await waitFor('the mail in Bob\'s mailbox', async () => {
    const messages = await fetchInbox(mesh.mail.imapPort, bob, 'bob-secret');
    return messages.length > 0 && messages;
  }, { timeoutMs: 30_000, everyMs: 500 });
  const mail = inbox[0];
  assert.match(mail, /^Subject: Quarterly report =\?utf-8\?b\?4oCU\?= final\r?$/mi, 'the non-ASCII word of the subject is encoded');
  assert.match(mail, new RegExp(`^From: .*${mesh.owner}`, 'mi'));
  const received = attachmentOf(mail, 'report.bin');
  assert.ok(received, 'the mail has the attachment');
  assert.ok(received.equals(report), 'the attachment arrives byte for byte');

  // The same from the command line.
  const body = path.join(mesh.dir, 'body.txt');
  await fs.writeFile(body, 'Sent from the command line.\n');
  const sent = await one.mailmesh('mail', 'send', '--to', bob, '--subject', 'from the CLI', '--body-file', body, '--attach', fileId.slice(0, 12));
  assert.match(sent.stdout, /sent to 1 recipient/);
  await waitFor('the second mail in Bob\'s mailbox', async () =>
    (await fetchInbox(mesh.mail.imapPort, bob, 'bob-secret')).some((m) => /Subject: from the CLI/.test(m) && attachmentOf(m, 'report.bin')?.equals(report)),
  { timeoutMs: 30_000, everyMs: 500 });

  // A recipient the server refuses, and something that is not an address.
  await app.fill('#mail-to', REFUSED_RECIPIENT);
  await app.fill('#mail-subject', 'to nobody');
  await app.click('#mail-send');
  await waitFor('the refusal in the app', async () => {
    const said = await app.locator('#mail-result').textContent();
    return said.startsWith(`Not sent: the server refused the message: `) && said.includes(REFUSED_RECIPIENT);
  }, { timeoutMs: 60_000, everyMs: 250 });
  await app.fill('#mail-to', 'bob at example');
  await app.click('#mail-send');
  await waitFor('the bad address in the app', async () =>
    (await app.locator('#mail-result').textContent()) === 'Not sent: "bob at example" is not an email address',
  { timeoutMs: 30_000, everyMs: 250 });
});
