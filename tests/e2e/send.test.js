// Issue 7, direct file send: Alice offers Bob files over the LAN (her
// link slowed so that "the middle" lasts). Bob's cable pulled mid-transfer,
// Bob's engine killed mid-transfer, Alice's engine killed mid-transfer: each
// time it goes on from the last verified chunk and the bytes arrive
// identical. Declining leaves nothing behind. In the browser, Bob sees the
// offer with progress and takes a file into his drive.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { blake3 } from '@noble/hashes/blake3.js';
import { PeopleLan } from '../harness/people-lan.js';
import { waitFor } from '../harness/util.js';

const MiB = 1024 * 1024;
const transfers = async (node) => JSON.parse((await node.mailmesh('send', 'list', '--json')).stdout);
const transfer = async (node, name) => (await transfers(node)).find((t) => t.name === name);
const sha = async (file) => crypto.createHash('sha256').update(await fs.readFile(file)).digest('hex');

test('direct send: resumes after a cut cable and either side restarting; decline keeps nothing', async (t) => {
  const lan = await PeopleLan.start({ alice: 1, bob: 1 });
  t.after(async () => assert.deepEqual(await lan.stop(), [], 'nothing left running'));
  const { alice1, bob1 } = lan.nodes;
  const { alice, bob } = lan.email;
  // Each has verified the other: a file is offered only by a node verified
  // for the address it claims.
  await lan.verify(alice1, 'bob');
  await lan.verify(bob1, 'alice');
  lan.lan.limitRate(alice1.host, 24);
  const saveTo = path.join(bob1.dir, 'received');

  /** A file of random bytes in Alice's directory. */
  const makeFile = async (name, size) => {
    const file = path.join(alice1.dir, name);
    await fs.writeFile(file, crypto.randomBytes(size));
    return file;
  };
  /** Alice offers `file`; Bob accepts it into `saveTo`; returns its id. */
  const offerAndAccept = async (file) => {
    const name = path.basename(file);
    await alice1.mailmesh('send', 'file', bob, file);
    const offered = await waitFor(`the offer of ${name} at Bob`, () => transfer(bob1, name),
      { timeoutMs: 30_000, everyMs: 250 });
    assert.equal(offered.state, 'offered');
    assert.equal(offered.peer, alice);
    assert.equal(offered.size, (await fs.stat(file)).size);
    await bob1.mailmesh('send', 'accept', offered.id, '--save-to', saveTo);
    return offered.id;
  };
  const midway = (name) => waitFor(`${name} to be under way`, async () => {
    const t = await transfer(bob1, name);
    return t.done > 2 * MiB && t.done < t.size && t;
  }, { timeoutMs: 60_000, everyMs: 100 });
  const arrived = async (file) => {
    const name = path.basename(file);
    const done = await waitFor(`${name} to arrive`, async () => {
      const t = await transfer(bob1, name);
      assert.notEqual(t.state, 'failed', t.detail);
      return t.state === 'done' && t;
    }, { timeoutMs: 120_000, everyMs: 250 });
    assert.equal(await sha(done.saved_as), await sha(file), `${name} arrived byte for byte`);
    await waitFor(`${name} done on Alice's side`, async () => (await transfer(alice1, name)).state === 'done',
      { timeoutMs: 30_000, everyMs: 250 });
  };

  // Bob's cable pulled in the middle.
  const first = await makeFile('cable.bin', 16 * MiB);
  await offerAndAccept(first);
  const before = await midway('cable.bin');
  assert.ok(before.rate_bps > 0 && before.eta_secs !== null, 'speed and time left while it runs');
  lan.lan.cut(bob1.host);
  // Until both engines have given the link up (6.5 s of silence).
  for (const node of [alice1, bob1]) {
    await waitFor(`${node.name} to see the link gone`, async () => !(await node.status()).peers.some((p) => p.online),
      { timeoutMs: 30_000, everyMs: 250 });
  }
  const during = await transfer(bob1, 'cable.bin');
  assert.ok(during.done < during.size, 'nothing arrives while the cable is out');
  lan.lan.reconnect(bob1.host);
  await arrived(first);

  // Bob's engine killed in the middle, then started again.
  const second = await makeFile('receiver-crash.bin', 12 * MiB);
  await offerAndAccept(second);
  await midway('receiver-crash.bin');
  await bob1.killEngine();
  await bob1.startEngine();
  await arrived(second);

  // Alice's engine killed in the middle, then started again.
  const third = await makeFile('sender-crash.bin', 12 * MiB);
  await offerAndAccept(third);
  const held = await midway('sender-crash.bin');
  await alice1.killEngine();
  await alice1.startEngine();
  const after = await transfer(bob1, 'sender-crash.bin');
  assert.ok(after.done >= held.done, 'what Bob held before the restart is kept');
  await arrived(third);

  // Declined: nothing of it stays on Bob's side.
  const fourth = await makeFile('unwanted.bin', 2 * MiB);
  await alice1.mailmesh('send', 'file', bob, fourth);
  const offered = await waitFor('the unwanted offer', () => transfer(bob1, 'unwanted.bin'), { timeoutMs: 30_000, everyMs: 250 });
  await bob1.mailmesh('send', 'decline', offered.id);
  await waitFor('Alice to hear it was declined', async () => (await transfer(alice1, 'unwanted.bin')).state === 'declined',
    { timeoutMs: 30_000, everyMs: 250 });
  assert.equal(await transfer(bob1, 'unwanted.bin'), undefined);
  const left = await fs.readdir(path.join(bob1.home, 'transfers'));
  assert.deepEqual(left.filter((f) => f.startsWith(offered.id)), [], 'no record and no part file kept');
  assert.ok(!(await fs.readdir(saveTo)).includes('unwanted.bin'));
  // One offer retry period (3 s, wall-clock): a declined offer is not
  // offered again.
  await new Promise((resolve) => setTimeout(resolve, 3_500));
  assert.equal(await transfer(bob1, 'unwanted.bin'), undefined, 'a declined offer is not shown again');

  // Bob's disk fills up midway: both sides say so, and no torn file stays.
  // The engine runs in a mount namespace of its own (ip netns exec), so
  // the small filesystem is mounted in there.
  const transfersDir = path.join(bob1.home, 'transfers');
  const inBobsEngine = async (...argv) => execFileSync('nsenter',
    ['-t', String((await bob1.status()).engine_pid), '-m', '--', ...argv]).toString();
  await inBobsEngine('mount', '-t', 'tmpfs', '-o', 'size=4m,mode=0700', 'tmpfs', transfersDir);
  try {
    const big = await makeFile('too-big.bin', 8 * MiB);
    await offerAndAccept(big);
    const failed = await waitFor('the full disk to stop it', async () => {
      const t = await transfer(bob1, 'too-big.bin');
      return t.state === 'failed' && t;
    }, { timeoutMs: 60_000, everyMs: 250 });
    assert.match(failed.detail, /disk full/);
    await waitFor('Alice told why', async () => /disk full/.test((await transfer(alice1, 'too-big.bin')).detail),
      { timeoutMs: 30_000, everyMs: 250 });
    assert.doesNotMatch(await inBobsEngine('ls', transfersDir), /\.part/, 'no part file kept');
  } finally {
    await inBobsEngine('umount', '-l', transfersDir);
  }

  // In Bob's browser: the offer waits for his answer there, with progress,
  // and goes into his drive; a file he picks goes the other way.
  await bob1.startBrowser();
  const app = await bob1.openPage('app/app.html#people');
  const photo = await makeFile('photo.bin', 3 * MiB);
  await alice1.mailmesh('send', 'file', bob, photo);
  const row = app.locator('#transfers li[data-name="photo.bin"]');
  await waitFor('the offer in Bob\'s app', async () => (await row.getAttribute('data-state')) === 'offered',
    { timeoutMs: 30_000, everyMs: 250 });
  await row.locator('button.accept-drive').click();
  await waitFor('the file done in Bob\'s app', async () => (await row.getAttribute('data-state')) === 'done',
    { timeoutMs: 60_000, everyMs: 250 });
  const hash = Buffer.from(blake3(await fs.readFile(photo))).toString('hex');
  const files = JSON.parse((await bob1.mailmesh('files', 'list', '--json')).stdout);
  assert.ok(files.some((f) => f.name === 'photo.bin' && f.blake3 === hash), 'the file is in Bob\'s drive, byte for byte');

  const picked = path.join(bob1.dir, 'from-bob.bin');
  await fs.writeFile(picked, crypto.randomBytes(MiB + 17));
  await app.locator(`#people li[data-email="${alice}"] button.send-file`).click();
  await app.setInputFiles('#send-input', picked);
  const incoming = await waitFor('Bob\'s offer at Alice', () => transfer(alice1, 'from-bob.bin'), { timeoutMs: 60_000, everyMs: 250 });
  const aliceDir = path.join(alice1.dir, 'received');
  await alice1.mailmesh('send', 'accept', incoming.id, '--save-to', aliceDir);
  const got = await waitFor('Bob\'s file at Alice', async () => {
    const t = await transfer(alice1, 'from-bob.bin');
    return t.state === 'done' && t;
  }, { timeoutMs: 60_000, everyMs: 250 });
  assert.equal(await sha(got.saved_as), await sha(picked));
  await waitFor('done in Bob\'s app', async () =>
    (await app.locator('#transfers li[data-name="from-bob.bin"]').getAttribute('data-state')) === 'done',
  { timeoutMs: 30_000, everyMs: 250 });
});
