// Issue 17: a mailbox of years. One import shared by the owner's nodes
// (Dovecot serves the mailbox about once, not once per node), at most two
// IMAP connections per node, a daily download budget that pauses the
// import with its progress shown, kept across a restart, and lifted, and
// a server that says it is limiting the account, and the import policy
// (folders, start date, small inline images).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { LanMesh } from '../harness/lan-mesh.js';
import fs from 'node:fs/promises';
import path from 'node:path';
import { ImapProxy } from '../harness/imap-proxy.js';
import { MailServer } from '../harness/mail-server.js';
import { MeshNode } from '../harness/node.js';
import { OwnerNetwork, foundedNode } from '../harness/owner.js';
import { processesUsing } from '../harness/processes.js';
import { tempDir } from '../harness/util.js';
import { appendMessages } from '../harness/mail-client.js';
import { within } from '../harness/idle-time.js';
import { waitFor } from '../harness/util.js';

/** A mail with one attachment of `size` random bytes, named report-NN.bin. */
function report(i, size) {
  const b64 = crypto.randomBytes(size).toString('base64').replace(/.{76}/g, '$&\r\n');
  return ['From: carol@example.org', 'To: owner@mailmesh.test', `Subject: report ${i}`,
    `Message-ID: <report-${i}@example.org>`, 'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="b"', '', '--b', 'Content-Type: text/plain', '', 'attached', '--b',
    'Content-Type: application/octet-stream',
    `Content-Disposition: attachment; filename="report-${String(i).padStart(2, '0')}.bin"`,
    'Content-Transfer-Encoding: base64', '', b64, '--b--', ''].join('\r\n');
}

const reports = async (node) =>
  JSON.parse((await node.mailmesh('files', 'list', '--json')).stdout).filter((f) => f.name.startsWith('report-'));

test('three nodes import a mailbox once between them, each with at most two IMAP connections', async (t) => {
  const mesh = await LanMesh.start(3, 3, { browsers: false });
  t.after(async () => assert.deepEqual(await mesh.stop(), [], 'nothing left running'));
  await waitFor('every engine linked to both others', async () => {
    const s = await Promise.all(mesh.nodes.map((n) => n.status()));
    return s.every((x) => x.peers.filter((p) => p.member && p.online).length === 2);
  }, { timeoutMs: 30_000, everyMs: 250 });
  const before = (await mesh.mail.imapSessions(mesh.owner)).map((s) => s.begin);
  const since = Math.max(...before) + 1;

  const messages = Array.from({ length: 40 }, (_, i) => report(i, 192 * 1024));
  const mailboxBytes = messages.reduce((n, m) => n + Buffer.byteLength(m), 0);
  await appendMessages(mesh.mail.imapPort, mesh.owner, mesh.password, messages);
  await waitFor('all 40 files on every node', async () =>
    (await Promise.all(mesh.nodes.map(reports))).every((files) => files.length === 40),
  { timeoutMs: 180_000, everyMs: 1000 });

  // One node imported; the others say which.
  const states = await Promise.all(mesh.nodes.map(async (n) => (await n.status()).import.state));
  assert.equal(states.filter((s) => s === 'by_device').length, 2, `${states}`);
  assert.match((await mesh.nodes[states.indexOf('by_device')].mailmesh('mail', 'status')).stdout,
    /import: done by your device node\d/);

  // Every session ends with the engines; Dovecot then logs what it served.
  for (const node of mesh.nodes) await node.stop();
  const sessions = await waitFor('every IMAP session logged out', async () => {
    const all = await mesh.mail.imapSessions(mesh.owner);
    return all.every((s) => s.end !== null) && all;
  }, { timeoutMs: 30_000, everyMs: 250 });
  const served = sessions.filter((s) => s.end >= since).reduce((n, s) => n + s.out, 0);
  assert.ok(served < 1.5 * mailboxBytes, `Dovecot served ${served} bytes for a mailbox of ${mailboxBytes}`);

  // At most two connections of one node open at once while it imported.
  const events = sessions.flatMap((s) => [[s.begin, s.rip, 1], [s.end, s.rip, -1]]).sort((a, b) => a[0] - b[0] || a[2] - b[2]);
  const open = new Map();
  const most = new Map();
  for (const [at, rip, step] of events) {
    open.set(rip, (open.get(rip) ?? 0) + step);
    if (at >= since) most.set(rip, Math.max(most.get(rip) ?? 0, open.get(rip)));
  }
  for (const [rip, n] of most) assert.ok(n <= 2, `${rip} held ${n} IMAP connections at once`);
});

test('a daily budget pauses the import with its progress shown, kept across a restart, and lifted', async (t) => {
  const { mail, node, owner, password } = await foundedNode(t, 'mailmesh-budget-');
  // The owner sets the budget in the app's settings.
  await node.startBrowser();
  const app = await node.openPage('app/app.html#settings');
  await app.locator('#import-budget').fill('1');
  await app.locator('#import-save').click();
  await within('the budget saved', app.locator('#import-result', { hasText: 'Saved.' }).waitFor({ timeout: 0 }));
  assert.match(await app.locator('#import-budget-source').textContent(), /Set by you/);
  // Ten messages of about 350 kB: the first two fit in a megabyte.
  const messages = Array.from({ length: 10 }, (_, i) => report(i, 256 * 1024));
  await appendMessages(mail.imapPort, owner, password, messages);

  const paused = await waitFor('the import paused by the budget', async () => {
    const view = (await node.status()).import;
    return view.state === 'paused_budget' && view;
  }, { timeoutMs: 60_000, everyMs: 250 });
  assert.equal(paused.messages_done, 2);
  assert.equal(paused.messages_total, 10);
  assert.ok(paused.resumes_at_ms > Date.now(), 'it says when it goes on');
  assert.equal((await reports(node)).length, 2);
  assert.match((await node.mailmesh('mail', 'status')).stdout,
    /import: paused until \d{4}-\d\d-\d\d 00:00 UTC: the day's download budget is spent — 2 of 10 messages/);
  const popup = await node.openPage('popup/popup.html');
  await within('the popup shows the pause', popup.locator('#import-state',
    { hasText: /^Paused until .*: the day's download budget is spent — 2 of 10 messages/ }).waitFor({ timeout: 0 }));
  assert.equal(await popup.locator('#import-progress').isVisible(), true, 'with a bar');

  // A restart keeps where it stands and fetches nothing more.
  await node.mailmesh('stop');
  await node.startEngine();
  const after = (await node.status()).import;
  assert.deepEqual([after.messages_done, after.messages_total], [2, 10]);

  // No budget: it goes on from its checkpoint.
  const settings = JSON.parse((await node.mailmesh('mail', 'settings', '--budget-mb', '0', '--json')).stdout);
  assert.equal(settings.budget_bytes_per_day, null);
  await waitFor('the other eight imported', async () => (await reports(node)).length === 10,
    { timeoutMs: 60_000, everyMs: 250 });
  await waitFor('the import up to date', async () => (await node.status()).import.state === 'idle');
  const names = (await reports(node)).map((f) => f.name).sort();
  assert.deepEqual(names, Array.from({ length: 10 }, (_, i) => `report-${String(i).padStart(2, '0')}.bin`));
});

test('the import policy: folders, a start date, and no signature logos', async (t) => {
  const { mail, node, owner, password } = await foundedNode(t, 'mailmesh-policy-');
  const settings = JSON.parse((await node.mailmesh('mail', 'settings', '--folders', 'INBOX,Archive',
    '--since', '2024-01-01', '--json')).stdout);
  assert.deepEqual(settings.folders, ['INBOX', 'Archive']);
  assert.equal(settings.since, '2024-01-01');
  assert.equal(settings.inline_images_under_bytes, 16_000, 'signature logos left out by default');
  await assert.rejects(node.mailmesh('mail', 'settings', '--since', '1/1/2024'), /YYYY-MM-DD/);

  const logo = crypto.randomBytes(3000).toString('base64');
  const photo = crypto.randomBytes(60_000).toString('base64').replace(/.{76}/g, '$&\r\n');
  const withLogo = ['From: dave@example.org', `To: ${owner}`, 'Subject: signed', 'MIME-Version: 1.0',
    'Content-Type: multipart/related; boundary="r"', '', '--r', 'Content-Type: text/html', '',
    '<p>Hi <img src="cid:logo"> <img src="cid:photo"></p>', '--r', 'Content-Type: image/png', 'Content-ID: <logo>',
    'Content-Disposition: inline; filename="logo.png"', 'Content-Transfer-Encoding: base64', '', logo, '--r',
    'Content-Type: image/jpeg', 'Content-ID: <photo>', 'Content-Disposition: inline; filename="beach.jpg"',
    'Content-Transfer-Encoding: base64', '', photo, '--r--', ''].join('\r\n');
  // Archive first: a new message in INBOX wakes the watcher, which then
  // reads every folder.
  await appendMessages(mail.imapPort, owner, password, [report(3, 2000)], 'Archive', { create: true });
  await appendMessages(mail.imapPort, owner, password, [report(1, 2000)], 'INBOX', { date: '01-Jan-2020 10:00:00 +0000' });
  await appendMessages(mail.imapPort, owner, password, [withLogo, report(2, 2000)]);

  const names = async () => JSON.parse((await node.mailmesh('files', 'list', '--json')).stdout).map((f) => f.name).sort();
  await waitFor('the archived report and the new mail imported', async () => (await names()).length >= 3,
    { timeoutMs: 60_000, everyMs: 250 });
  await node.mailmesh('mail', 'sync');
  assert.deepEqual(await names(), ['beach.jpg', 'report-02.bin', 'report-03.bin'],
    'not the 2020 report, not the logo');
});

test('a server limiting the account pauses the import, which goes on from its checkpoint later', async (t) => {
  // The first wait is 3 s here (a minute by default), doubled each time.
  process.env.MAILMESH_IMPORT_BACKOFF_SECS = '3';
  t.after(() => { delete process.env.MAILMESH_IMPORT_BACKOFF_SECS; });
  const dir = await tempDir('mailmesh-throttled-');
  await fs.chmod(dir, 0o755);
  const mail = await MailServer.start(path.join(dir, 'mail'));
  const proxy = await ImapProxy.start(mail.imapPort);
  const node = MeshNode.prepare({ name: 'laptop', dir: path.join(dir, 'laptop') });
  t.after(async () => {
    await node.stop();
    await proxy.stop();
    await mail.destroy();
    assert.deepEqual(processesUsing(dir), [], 'nothing left running');
    await fs.rm(dir, { recursive: true, force: true });
  });
  const password = crypto.randomBytes(9).toString('base64url');
  const owner = await mail.addUser('owner', password);
  // The node reaches IMAP through the proxy only.
  const network = await OwnerNetwork.create(Object.create(mail, { imapPort: { value: proxy.port } }), owner, password, dir);
  await network.found(node);

  proxy.throttling = true;
  await appendMessages(mail.imapPort, owner, password, Array.from({ length: 4 }, (_, i) => report(i, 20_000)));
  const engineLog = () => fs.readFile(path.join(node.home, 'logs/engine.log'), 'utf8');
  const paused = await waitFor('the import paused by the server', async () => {
    const view = (await node.status()).import;
    return view.state === 'paused_server' && view;
  }, { timeoutMs: 60_000, everyMs: 100 }).catch(async (e) => {
    throw new Error(`${e.message} (${proxy.refused} fetches refused)\n${(await engineLog()).slice(-3000)}`);
  });
  assert.ok(proxy.refused >= 1);
  assert.ok(paused.resumes_at_ms > Date.now() - 1000, 'it says when it tries again');
  assert.match((await node.mailmesh('mail', 'status')).stdout, /paused until .*: the mail server is limiting the account/);
  assert.equal((await reports(node)).length, 0);
  assert.match(await engineLog(), /the server is limiting the account \(\[THROTTLED\]/);

  // Still limited when it tries again: it waits twice as long.
  await waitFor('a second refusal', async () => proxy.refused >= 2, { timeoutMs: 60_000, everyMs: 100 });
  proxy.throttling = false;
  await waitFor('all four imported', async () => (await reports(node)).length === 4, { timeoutMs: 60_000, everyMs: 250 });
  await waitFor('the import up to date', async () => (await node.status()).import.state === 'idle');
});
