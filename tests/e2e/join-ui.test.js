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
