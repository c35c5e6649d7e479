// Issue 17, finding things in a drive of years: the app's drive searches
// by name, sender, subject, type and date, sorts, pages, and previews
// images and text in a tab (text in the charset it was attached with);
// `mailmesh files list` takes the same filters.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { foundedNode } from '../harness/owner.js';
import { appendMessages, mailWithAttachment as mailWith } from '../harness/mail-client.js';
import { within } from '../harness/idle-time.js';
import { waitFor } from '../harness/util.js';

/** A real 2×2 PNG. */
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP4z8DAwMDAxMDAwMDAAAANHQEDasKb6QAAAABJRU5ErkJggg==', 'base64');

test('the drive finds files by name, sender, subject, type and date, sorts, pages, and previews them', async (t) => {
  const { mail, node, owner, password } = await foundedNode(t, 'mailmesh-find-');
  // 120 reports from carol over 2023, then bob's photo and invoice in 2025.
  const reports = Array.from({ length: 120 }, (_, i) => mailWith({
    from: 'carol@example.org', subject: `weekly report ${i}`, name: `report-${String(i).padStart(3, '0')}.txt`,
    type: 'text/plain', bytes: crypto.randomBytes(200 + i).toString('hex'),
    date: new Date(Date.UTC(2023, 0, 1) + i * 86_400_000 * 2).toUTCString(),
  }));
  const bobs = [
    mailWith({ from: 'bob@example.org', subject: 'beach', name: 'beach.png', type: 'image/png', bytes: PNG,
      date: 'Sat, 1 Mar 2025 10:00:00 +0000' }),
    mailWith({ from: 'bob@example.org', subject: 'Invoice March', name: 'invoice-0325.pdf', type: 'application/pdf',
      bytes: Buffer.concat([Buffer.from('%PDF-1.4\n'), crypto.randomBytes(50_000)]), date: 'Sun, 2 Mar 2025 10:00:00 +0000' }),
  ];
  await appendMessages(mail.imapPort, owner, password, [...reports, ...bobs]);
  const list = async (...args) => JSON.parse((await node.mailmesh('files', 'list', '--json', ...args)).stdout);
  await waitFor('all 122 files imported', async () => (await list()).length === 122, { timeoutMs: 120_000, everyMs: 500 });

  // The CLI: every filter, the order, a page.
  assert.deepEqual((await list('--from', 'bob@', '--type', 'pdf')).map((f) => f.name), ['invoice-0325.pdf']);
  assert.deepEqual((await list('--search', 'WEEKLY REPORT 7', '--sort', 'name')).map((f) => f.name),
    ['report-007.txt', 'report-070.txt', 'report-071.txt', 'report-072.txt', 'report-073.txt', 'report-074.txt',
      'report-075.txt', 'report-076.txt', 'report-077.txt', 'report-078.txt', 'report-079.txt']);
  assert.equal((await list('--since', '2025-01-01')).length, 2);
  assert.equal((await list('--until', '2023-01-05')).length, 2, 'the reports of Jan 1 and 3');
  assert.equal((await list('--sort', 'size', '--limit', '1'))[0].name, 'invoice-0325.pdf');
  const page = await node.mailmesh('files', 'list', '--limit', '10', '--offset', '100');
  assert.match(page.stderr, /101 to 110 of 122 files/);
  assert.match(page.stdout, /text +2023-02-12 +report-021\.txt +\(from carol@example\.org: weekly report 21\)/);
  assert.match((await node.mailmesh('files', 'list', '--type', 'image')).stdout,
    /image +2025-03-01 +beach\.png +\(from bob@example\.org: beach\)/);

  // The app: newest first, a page of 100, then the rest.
  await node.startBrowser();
  const app = await node.openPage('app/app.html#drive');
  const rows = app.locator('#drive-files li.file');
  await within('the first page', app.locator('#drive-count', { hasText: '1–100 of 122 files' }).waitFor({ timeout: 0 }));
  assert.equal(await rows.count(), 100);
  assert.match(await rows.first().textContent(), /invoice-0325\.pdf.*pdf.*from bob@example\.org: Invoice March/);
  await app.locator('#drive-next').click();
  await within('the second page', app.locator('#drive-count', { hasText: '101–122 of 122 files' }).waitFor({ timeout: 0 }));
  assert.match(await rows.last().textContent(), /report-000\.txt/, 'the oldest last');

  // Filters: sender and type; the text finds subjects.
  await app.locator('#drive-from').fill('bob');
  await app.locator('#drive-kind').selectOption('image');
  await within('bob\'s image only', app.locator('#drive-count', { hasText: '1–1 of 1 files' }).waitFor({ timeout: 0 }));
  assert.match(await rows.first().textContent(), /beach\.png/);

  // Preview: the image shows in a tab of its own.
  const tab = within('the preview tab', node.context.waitForEvent('page', { timeout: 0 }));
  await rows.first().locator('button.preview').click();
  const preview = await tab;
  await within('the image drawn', preview.waitForFunction(() => document.querySelector('img')?.naturalWidth === 2,
    null, { timeout: 0 }));
  assert.match(preview.url(), /\/preview\//);
  await preview.close();

  await app.locator('#drive-from').fill('');
  await app.locator('#drive-kind').selectOption('');
  await app.locator('#drive-search').fill('invoice march');
  await within('the invoice by its subject', rows.filter({ hasText: 'invoice-0325.pdf' }).waitFor({ timeout: 0 }));
  assert.equal(await rows.count(), 1);
  // A text file previews as plain text.
  await app.locator('#drive-search').fill('report-042');
  await within('report 42', rows.filter({ hasText: 'report-042.txt' }).waitFor({ timeout: 0 }));
  assert.equal(await rows.count(), 1);
  const textTab = within('the text preview tab', node.context.waitForEvent('page', { timeout: 0 }));
  await rows.first().locator('button.preview').click();
  const text = await textTab;
  await within('the text shown', text.waitForFunction(() => /^[0-9a-f]{484}$/.test(document.body?.innerText.trim() ?? ''),
    null, { timeout: 0 }));
  await text.close();

  // Text attached in another charset shows as it was written.
  const windows1252 = Buffer.concat([Buffer.from('caf'), Buffer.from([0xe9]), Buffer.from(';3'), Buffer.from([0x80])]);
  await appendMessages(mail.imapPort, owner, password, [mailWith({ from: 'dave@example.org', subject: 'prices',
    name: 'prices.csv', type: 'text/csv; charset=windows-1252', bytes: windows1252 })]);
  await waitFor('the price list imported', async () => (await list()).length === 123, { timeoutMs: 120_000, everyMs: 500 });
  await app.locator('#drive-search').fill('prices');
  await within('the price list', rows.filter({ hasText: 'prices.csv' }).waitFor({ timeout: 0 }));
  const csvTab = within('the price list\'s preview tab', node.context.waitForEvent('page', { timeout: 0 }));
  await rows.first().locator('button.preview').click();
  const csv = await csvTab;
  await within('café;3€ shown', csv.waitForFunction(() => document.body?.innerText.trim() === 'café;3€',
    null, { timeout: 0 }));
});
