// Issue 15, case 1, in the browser: a device that asks to join is shown on a
// member's popup and app nodes page with its name and fingerprint, and only
// the owner's Approve there makes the member mail the code.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster } from '../harness/cluster.js';
import { fetchInbox } from '../harness/mail-client.js';
import { OwnerNetwork } from '../harness/owner.js';
import { waitFor } from '../harness/util.js';

test('a member\'s popup and app show a device asking to join, and Approve there lets it in', async (t) => {
  const cluster = await Cluster.up({ nodes: 2 });
  t.after(async () => assert.deepEqual(await cluster.down(), []));
  const [laptop, phone] = cluster.nodes;
  const network = await OwnerNetwork.create(cluster.mail, cluster.owner, cluster.ownerPassword, cluster.root);
  await network.found(laptop);

  const { stdout } = await network.init(phone);
  assert.match(stdout, /asked to join/);
  const { node_id: id, fingerprint } = await phone.status();
  const popup = await laptop.openPage('popup/popup.html');
  const app = await laptop.openPage('app/app.html#nodes');
  for (const page of [popup, app]) {
    const row = page.locator(`#join-requests li[data-node-id="${id}"]`);
    await waitFor('the request shown', async () => (await row.count()) === 1, { timeoutMs: 30_000, everyMs: 250 });
    const text = await row.textContent();
    assert.match(text, new RegExp(`${phone.name} asks to join`));
    assert.ok(text.includes(fingerprint), 'with its fingerprint');
  }
  const approvals = async () => (await fetchInbox(cluster.mail.imapPort, cluster.owner, cluster.ownerPassword))
    .filter((m) => m.includes(`Subject: Approve ${phone.name} for mailmesh`)).length;
  assert.equal(await approvals(), 0, 'no code before the owner approves');

  await popup.locator(`#join-requests li[data-node-id="${id}"] button.approve`).click();
  await waitFor('the approval shown', async () => /Approved/.test(await popup.locator('#join-result').textContent()),
    { timeoutMs: 30_000, everyMs: 250 });
  const code = /^ {4}([a-z0-9]{4}-[a-z0-9]{4})$/m.exec(await network.mailWith(`Approve ${phone.name} for mailmesh`))[1];
  await phone.mailmesh('confirm', code);
  await waitFor('the phone welcomed', async () => (await phone.status()).enrolled, { timeoutMs: 30_000 });
  await waitFor('the request gone from the app', async () => (await app.locator('#join-requests li').count()) === 0,
    { timeoutMs: 30_000, everyMs: 250 });
  assert.equal(await approvals(), 1, 'one member mailed one code');
});

test('onboarding shows the network found in the mailbox, and a new one can be made instead', async (t) => {
  const cluster = await Cluster.up({ nodes: 2 });
  t.after(async () => assert.deepEqual(await cluster.down(), []));
  const [laptop, phone] = cluster.nodes;
  const { mail } = cluster;
  // Whoever mailed it, the mailbox holds a network (here the first node's).
  const network = await OwnerNetwork.create(mail, cluster.owner, cluster.ownerPassword, cluster.root);
  await network.found(laptop);
  const theirs = await laptop.status();

  const page = await phone.openPage('onboarding/onboarding.html');
  await waitFor('the host connection', async () => (await page.locator('#conn-state').textContent()) === 'connected');
  for (const [name, value] of Object.entries({
    email: cluster.owner, device_name: 'phone', imap_host: '127.0.0.1', imap_port: String(mail.imapPort),
    smtp_host: '127.0.0.1', smtp_port: String(mail.smtpPort), password: cluster.ownerPassword,
  })) await page.fill(`input[name=${name}]`, value);
  await page.selectOption('select[name=imap_security]', 'plain');
  await page.selectOption('select[name=smtp_security]', 'plain');
  await page.click('#save-account');

  const shown = page.locator(`#networks-found li[data-network-id="${theirs.network_id}"]`);
  await waitFor('the network found, with its devices', async () => (await shown.count()) === 1, { timeoutMs: 30_000, everyMs: 250 });
  assert.match(await shown.textContent(), new RegExp(`${laptop.name} ${theirs.fingerprint}`));
  await page.click('#new-network');
  await network.mailWith('Confirm mailmesh on phone');
  await waitFor('a confirmation pending instead of a join', async () => (await phone.status()).enrollment === 'awaiting_confirmation',
    { timeoutMs: 30_000, everyMs: 250 });
  await waitFor('the list gone', async () => await page.locator('#networks-section').isHidden(), { timeoutMs: 30_000, everyMs: 250 });
});
