// Issue 6 through the browser, three machines: a mailed attachment shows
// in every node's popup and downloads intact on another node; a file
// dropped in node1's app page survives node1 going away.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { LanMesh } from '../harness/lan-mesh.js';
import { sendMail } from '../harness/mail-client.js';
import { within } from '../harness/idle-time.js';
import { waitFor } from '../harness/util.js';

const b64 = (bytes) => Buffer.from(bytes).toString('base64').replace(/.{76}/g, '$&\r\n');

/** Clicks a file's Download button in `page` and returns the bytes Chrome saved. */
async function downloadInPage(page, name) {
  const download = within('the download to start', page.waitForEvent('download', { timeout: 0 }), { timeoutMs: 60_000 });
  await page.locator('li.file', { hasText: name }).locator('button.download').first().click();
  const saved = await download;
  assert.equal(saved.suggestedFilename(), name);
  assert.equal(await saved.failure(), null);
  return fs.readFile(await saved.path());
}

test('a mailed attachment shows in every popup and downloads intact elsewhere; a dropped file outlives its node', async (t) => {
  const mesh = await LanMesh.start(3);
  t.after(async () => assert.deepEqual(await mesh.stop(), [], 'nothing left running'));
  const [one, two] = mesh.nodes;

  const plan = crypto.randomBytes(2_200_000);
  await sendMail(mesh.mail.smtpPort, {
    from: 'dave@example.org',
    to: mesh.owner,
    message: ['From: dave@example.org', `To: ${mesh.owner}`, 'Subject: the plan', 'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="b"', '', '--b', 'Content-Type: text/plain', '', 'attached', '--b',
      'Content-Type: application/pdf; name="plan.pdf"', 'Content-Disposition: attachment; filename="plan.pdf"',
      'Content-Transfer-Encoding: base64', '', b64(plan), '--b--', ''].join('\r\n'),
  });
  for (const [i, popup] of mesh.popups.entries()) {
    await waitFor(`plan.pdf in node${i + 1}'s popup`, () =>
      popup.locator('li.file', { hasText: 'plan.pdf' }).count(), { timeoutMs: 60_000, everyMs: 250 });
  }
  const downloaded = await downloadInPage(mesh.popups[2], 'plan.pdf');
  assert.equal(downloaded.length, plan.length);
  assert.ok(downloaded.equals(plan), 'node3 downloads the attachment byte for byte');

  // Drop a file on node1's drive page; once it is spread, node1 goes away
  // and node2 still has it.
  const app = await one.openPage('app/app.html#drive');
  const photo = crypto.randomBytes(3_100_000);
  await app.locator('#drive-input').setInputFiles({ name: 'photo.jpg', mimeType: 'image/jpeg', buffer: photo });
  await waitFor('the upload to finish', () => app.locator('.upload[data-done="true"]').count(), { timeoutMs: 60_000 });
  const id = await waitFor('photo.jpg spread to node2 and node3', async () => {
    const file = JSON.parse((await two.mailmesh('files', 'list', '--json')).stdout).find((f) => f.name === 'photo.jpg');
    const spread = await Promise.all(mesh.nodes.map(async (n) => (await fragmentCount(n)) > 0));
    return file?.health.state === 'full' && spread.every(Boolean) && file.id;
  }, { timeoutMs: 60_000, everyMs: 500 });
  // An empty file has no bytes to send: the engine records it at once.
  await app.locator('#drive-input').setInputFiles({ name: 'empty.txt', mimeType: 'text/plain', buffer: Buffer.alloc(0) });
  await waitFor('the empty upload to finish', () => app.locator('.upload[data-done="true"]').count().then((n) => n >= 2),
    { timeoutMs: 60_000 });
  const empty = JSON.parse((await one.mailmesh('files', 'list', '--json')).stdout).find((f) => f.name === 'empty.txt');
  assert.equal(empty?.size, 0, 'the empty file is in the drive');
  await one.killEngine();
  const out = path.join(mesh.dir, 'photo.back');
  await two.mailmesh('files', 'get', id, '-o', out);
  assert.ok((await fs.readFile(out)).equals(photo), 'node2 restores the dropped file with node1 gone');

  // A download that fails part way says why, in the popup (Chrome's own
  // list says only "network error"). node3 needs node2's fragments of a
  // file only the two of them hold; node2's link is slowed, so the
  // download is under way when node2 goes (a slower machine only makes it
  // longer).
  const popup = mesh.popups[2];
  const bigPath = path.join(mesh.dir, 'big.bin');
  await fs.writeFile(bigPath, crypto.randomBytes(24 * 1024 * 1024));
  await two.mailmesh('files', 'add', bigPath);
  await waitFor('big.bin in node3\'s popup', () => popup.locator('li.file', { hasText: 'big.bin' }).count(),
    { timeoutMs: 60_000, everyMs: 250 });
  mesh.lan.limitRate(two.host, 8);
  const started = within('the download of big.bin to start', popup.waitForEvent('download', { timeout: 0 }), { timeoutMs: 60_000 });
  await popup.locator('li.file', { hasText: 'big.bin' }).locator('button.download').first().click();
  const big = await started;
  await two.killEngine();
  assert.notEqual(await big.failure(), null, 'the download fails');
  await waitFor('the popup to say why the download failed', async () =>
    /big\.bin could not be downloaded: .*(restored|fragments|connection)/.test(await popup.locator('#files-result').textContent()),
  { timeoutMs: 60_000, everyMs: 250 });

  // With node2 gone as well, node3's popup says why it cannot download.
  await popup.reload();
  await popup.locator('li.file', { hasText: 'photo.jpg' }).locator('button.download').click();
  await waitFor('the popup to explain the failed download', async () =>
    /photo\.jpg could not be downloaded: .*fragments it needs/.test(await popup.locator('#files-result').textContent()),
  { timeoutMs: 60_000, everyMs: 250 });
});

async function fragmentCount(node) {
  const root = path.join(node.home, 'drive/fragments');
  let count = 0;
  for (const shard of await fs.readdir(root).catch(() => [])) count += (await fs.readdir(path.join(root, shard))).length;
  return count;
}
