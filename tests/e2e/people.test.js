// Issue 7, people and verification: two people, each with a node on the
// same LAN and a mailbox on the same server. Each sees the other unverified;
// a challenge mailed to Bob is answered by Bob's node over the LAN and Alice
// pins him as verified (and the other way round). A third node that claims
// Bob's address without reading his mailbox stays unverified, with a
// warning beside Bob's verified node (also in the app page); rename, block
// and remove work.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Lan } from '../harness/lan.js';
import { MailServer } from '../harness/mail-server.js';
import { MeshNode } from '../harness/node.js';
import { OwnerNetwork } from '../harness/owner.js';
import { processesUsing } from '../harness/processes.js';
import { tempDir, waitFor } from '../harness/util.js';

const people = async (node) => JSON.parse((await node.mailmesh('people', 'list', '--json')).stdout);
const personIn = async (node, email) => (await people(node)).find((p) => p.email === email);

test('a challenge mailed to a person is answered by their node only; pins, warnings and edits', async (t) => {
  const dir = await tempDir('mailmesh-people-');
  await fs.chmod(dir, 0o755);
  const lan = Lan.create(3);
  const nodes = ['alice', 'bob', 'mallory'].map((name, host) =>
    MeshNode.prepare({ name, dir: path.join(dir, name), lan, host }));
  let mail;
  t.after(async () => {
    for (const n of nodes) await n.stop();
    await mail?.destroy();
    lan.destroy();
    assert.deepEqual(processesUsing(dir), [], 'nothing left running');
    await fs.rm(dir, { recursive: true, force: true });
  });
  mail = await MailServer.start(path.join(dir, 'mail'), { host: lan.gateway });
  const [alice, bob, mallory] = nodes;
  const networks = {};
  // Every mailbox first: Dovecot rereads its user file only when it looks
  // changed, which a second write within the same second may not.
  for (const node of nodes) {
    networks[node.name] = await OwnerNetwork.create(mail, await mail.addUser(node.name, `${node.name}-pw`), `${node.name}-pw`, dir);
  }
  await new Promise((resolve) => setTimeout(resolve, 1_100));
  for (const node of nodes) await networks[node.name].found(node);
  const bobAddress = networks.bob.owner;
  const aliceAddress = networks.alice.owner;

  await waitFor('Alice to see Bob, unverified', async () => (await personIn(alice, bobAddress))?.state === 'unverified',
    { timeoutMs: 30_000, everyMs: 500 });
  assert.equal((await personIn(alice, bobAddress)).devices.length, 1);

  await alice.mailmesh('people', 'verify', bobAddress);
  assert.equal((await personIn(alice, bobAddress)).state, 'pending');
  await waitFor('Bob verified on Alice\'s node', async () => (await personIn(alice, bobAddress))?.state === 'verified',
    { timeoutMs: 60_000, everyMs: 500 });
  assert.ok(await networks.bob.mailWith('mailmesh: verification'), 'the challenge went through Bob\'s mailbox');
  const bobId = (await bob.status()).node_id;
  assert.equal((await alice.status()).peers.find((p) => p.id === bobId)?.verified, true, 'status marks Bob\'s node verified');

  await bob.mailmesh('people', 'verify', aliceAddress);
  await waitFor('Alice verified on Bob\'s node', async () => (await personIn(bob, aliceAddress))?.state === 'verified',
    { timeoutMs: 60_000, everyMs: 500 });

  // Mallory's node now claims Bob's address: same account settings, but it
  // logs in to Mallory's own mailbox, so it never sees Bob's mail.
  await mallory.mailmesh('stop');
  const account = path.join(mallory.home, 'account.json');
  const settings = JSON.parse(await fs.readFile(account, 'utf8'));
  settings.email = bobAddress;
  await fs.writeFile(account, JSON.stringify(settings), { mode: 0o600 });
  await mallory.startEngine();
  await waitFor('a second node claiming Bob\'s address, with a warning', async () => {
    const bobs = await personIn(alice, bobAddress);
    return bobs?.devices.length === 2 && bobs.state === 'warning';
  }, { timeoutMs: 30_000, everyMs: 500 });
  // Verifying again challenges the new claimant through Bob's mailbox,
  // which Mallory's node never reads: once the challenge is there, her
  // device must still be pending.
  const challenges = await networks.bob.countMails('mailmesh: verification');
  await alice.mailmesh('people', 'verify', bobAddress);
  await waitFor('the new challenge in Bob\'s mailbox', async () =>
    (await networks.bob.countMails('mailmesh: verification')) > challenges, { timeoutMs: 30_000, everyMs: 250 });
  const bobs = await personIn(alice, bobAddress);
  const malloryId = (await mallory.status()).node_id;
  assert.equal(bobs.devices.find((d) => d.node_id === malloryId).trust, 'pending', 'the claimant never answers');
  assert.equal(bobs.state, 'warning');

  // The app page shows the same, and blocks from its button.
  await alice.startBrowser();
  const app = await alice.openPage('app/app.html#people');
  const row = app.locator(`#people li[data-email="${bobAddress}"]`);
  await waitFor('Bob in Alice\'s app, with the warning', async () => (await row.getAttribute('data-state')) === 'warning',
    { timeoutMs: 30_000, everyMs: 250 });
  await row.locator('button.block').click();
  await waitFor('the block to show', async () => /blocked/.test(await row.textContent()), { timeoutMs: 10_000, everyMs: 250 });
  assert.equal((await personIn(alice, bobAddress)).blocked, true);
  await row.locator('button.block').click();
  await waitFor('the unblock to show', async () => (await personIn(alice, bobAddress)).blocked === false, { timeoutMs: 10_000, everyMs: 250 });

  await alice.mailmesh('people', 'rename', bobAddress, 'Bob B.');
  assert.equal((await personIn(alice, bobAddress)).name, 'Bob B.');
  await alice.mailmesh('people', 'block', bobAddress);
  await assert.rejects(alice.mailmesh('people', 'verify', bobAddress), /is blocked/);
  await alice.mailmesh('people', 'rm', bobAddress);
  assert.equal(await personIn(alice, bobAddress), undefined);
});
