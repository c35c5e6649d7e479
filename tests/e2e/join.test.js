// Issue 4, joining: further nodes join through the mailbox, also when the
// member that approves them was off; rosters agree; forgeries mailed by an
// outsider change nothing; the mailbox is never modified.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { blake3 } from '@noble/hashes/blake3.js';
import { MailServer } from '../harness/mail-server.js';
import { MAILMESH_FOLDER, fetchInbox, fetchInboxAndFolder, inboxFlags, mailmeshMessage, sendMail, unfoldQuotedPrintable } from '../harness/mail-client.js';
import { mailmeshBin } from '../harness/paths.js';
import { processesUsing } from '../harness/processes.js';
import { runCommand } from '../harness/idle-time.js';
import { tempDir, waitFor } from '../harness/util.js';

const PASSWORD = 'owner-pw';
const CODE = /^ {4}([a-z0-9]{4}-[a-z0-9]{4})$/m;

async function setup(t) {
  const dir = await tempDir('mailmesh-join-');
  await fs.chmod(dir, 0o755);
  const mail = await MailServer.start(path.join(dir, 'mail'));
  const owner = await mail.addUser('owner', PASSWORD);
  const passwordFile = path.join(dir, 'pw');
  await fs.writeFile(passwordFile, PASSWORD, { mode: 0o600 });
  const nodes = [];
  t.after(async () => {
    for (const n of nodes) await n.mm('stop').catch(() => {});
    await mail.destroy();
    assert.deepEqual(processesUsing(dir), [], 'nothing left running');
    await fs.rm(dir, { recursive: true, force: true });
  });

  const mailWith = (subject) => waitFor(`a mail "${subject}"`, async () =>
    (await fetchInboxAndFolder(mail.imapPort, owner, PASSWORD)).map(unfoldQuotedPrintable).find((m) => m.includes(`Subject: ${subject}`)),
  { timeoutMs: 30_000 });

  /** A node called `name`, its home in `dir/<folder>`, set up for `email`. */
  const node = (name, folder = name, email = owner) => {
    const home = path.join(dir, folder);
    const mm = (...args) => runCommand(mailmeshBin(), ['--home', home, ...args]).then((r) => r.stdout);
    const n = {
      name, home, mm,
      status: async () => JSON.parse(await mm('status', '--json')),
      init: (...extra) => mm('init', ...extra, '--email', email, '--imap-host', '127.0.0.1', '--imap-port', String(mail.imapPort),
        '--imap-security', 'plain', '--smtp-host', '127.0.0.1', '--smtp-port', String(mail.smtpPort),
        '--smtp-security', 'plain', '--password-file', passwordFile, '--device-name', name),
      start: () => mm('run', '--detach'),
      stop: () => mm('stop'),
    };
    nodes.push(n);
    return n;
  };

  /** The first node: confirmed by the code in its confirmation mail. */
  const founder = async (name) => {
    const n = node(name);
    await n.start();
    await n.init();
    const code = CODE.exec(await mailWith(`Confirm mailmesh on ${name}`))[1];
    await n.mm('confirm', code);
    await mailWith('mailmesh roster');
    return n;
  };

  /** A node that asks to join and is approved with the mailed code. */
  const joiner = async (name) => {
    const n = node(name);
    await n.start();
    assert.match(await n.init(), /asked to join/);
    assert.equal((await n.status()).enrollment, 'awaiting_approval');
    return n;
  };

  /** The owner sees `n` waiting on `member`, with its name and fingerprint, and approves it there. */
  const approveOn = async (member, n) => {
    const { node_id: id, fingerprint } = await n.status();
    const waiting = await waitFor(`${n.name} waiting on ${member.name}`, async () =>
      (await member.status()).join_requests.find((r) => r.node_id === id), { timeoutMs: 30_000 });
    assert.deepEqual([waiting.device_name, waiting.fingerprint], [n.name, fingerprint]);
    assert.match(await member.mm('nodes', 'list'), new RegExp(`${fingerprint}  ${n.name}  asks to join`));
    await member.mm('nodes', 'approve', id);
  };

  const approve = async (n) => {
    const code = CODE.exec(await mailWith(`Approve ${n.name} for mailmesh`))[1];
    await n.mm('confirm', code);
    await waitFor(`${n.name} to be welcomed`, async () => (await n.status()).enrolled, { timeoutMs: 30_000 });
  };

  return { mail, owner, mailWith, node, founder, joiner, approveOn, approve };
}

const rosterIds = (status) => status.roster.map((m) => m.node_id).sort();

/** A node id as bytes, from an Ed25519 public key (as wasm-core derives it). */
const nodeIdOf = (ed25519) => Buffer.from(blake3(ed25519, { context: new TextEncoder().encode('mailmesh 2026-11 node id v1') }).subarray(0, 20));

/** Base32 (RFC 4648, lowercase, no padding) to bytes. */
function base32(text) {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
  let bits = '';
  for (const c of text) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  return Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
}

const engineLog = (n) => fs.readFile(path.join(n.home, 'logs/engine.log'), 'utf8');

test('a second and a third node join; the third while every member is off; all rosters agree', async (t) => {
  const { mail, owner, mailWith, node, founder, joiner, approveOn, approve } = await setup(t);
  const one = await founder('one');
  const two = await joiner('two');
  await approveOn(one, two);
  await approve(two);

  // Every member is off when three asks.
  await one.stop();
  await two.stop();
  const three = await joiner('three');
  assert.equal((await three.status()).enrollment, 'awaiting_approval', 'nobody could approve yet');

  // One comes back, finds the request in the mailbox, the owner approves
  // it there, and the join completes.
  await one.start();
  await approveOn(one, three);
  await approve(three);
  await two.start();

  const statuses = await waitFor('all three rosters to agree', async () => {
    const s = await Promise.all([one, two, three].map((n) => n.status()));
    return s.every((x) => x.roster.length === 3) && s;
  }, { timeoutMs: 30_000 });
  const ids = statuses.map((s) => s.node_id).sort();
  for (const s of statuses) {
    assert.deepEqual(rosterIds(s), ids);
    assert.equal(s.network_id, statuses[0].network_id);
    assert.equal(s.enrolled, true);
  }
  // The inbox holds what the owner reads (confirmation, approval codes);
  // what only the devices read went to mailmesh's own folder.
  const kinds = (messages) => messages.map((m) => /^X-Mailmesh: ([a-z-]+)\//m.exec(m)?.[1]).filter(Boolean);
  assert.deepEqual([...new Set(kinds(await fetchInbox(mail.imapPort, owner, PASSWORD)))].sort(), ['approval', 'confirm']);
  const filed = kinds(await fetchInbox(mail.imapPort, owner, PASSWORD, MAILMESH_FOLDER));
  for (const kind of ['roster', 'join-request', 'join-proof', 'welcome']) assert.ok(filed.includes(kind), `${kind} in ${filed}`);

  // Removing three, confirmed by mail on one: one and two move to a new
  // network key, three gets nothing and knows it was removed.
  const oldKey = statuses[0].network_key_id;
  const threeId = (await three.status()).node_id;
  await one.mm('nodes', 'remove', threeId);
  const code = CODE.exec(await mailWith('Remove three from mailmesh?'))[1];
  await one.mm('confirm', code);
  const [s1, s2] = await waitFor('the new key on one and two', async () => {
    const s = await Promise.all([one.status(), two.status()]);
    return s.every((x) => x.roster.length === 2 && x.network_key_id !== oldKey) && s;
  }, { timeoutMs: 30_000 });
  assert.equal(s1.network_key_id, s2.network_key_id);
  assert.ok(!rosterIds(s1).includes(threeId));
  const removed = await waitFor('three to learn it was removed', async () => {
    const s = await three.status();
    return s.enrollment === 'removed' && s;
  }, { timeoutMs: 30_000 });
  assert.equal(removed.network_key_id, null);
  await assert.rejects(fs.access(path.join(three.home, 'network.key')), 'the removed node keeps no network key');

  // Whoever holds three (or just reads the mailbox) makes a fresh key and
  // asks again: the mailbox alone lets nothing in. The members show the
  // request, no code is mailed, and the owner declines it.
  assert.match(await one.mm('nodes', 'list'), /change the password at your mail provider/);
  const thief = node('three', 'three-again');
  await thief.start();
  assert.match(await thief.init(), /asked to join/);
  const { node_id: thiefId } = await thief.status();
  await waitFor('the request on one', async () => (await one.status()).join_requests.some((r) => r.node_id === thiefId),
    { timeoutMs: 30_000 });
  const approvals = (await fetchInbox(mail.imapPort, owner, PASSWORD)).filter((m) => m.includes('Subject: Approve three for mailmesh'));
  assert.equal(approvals.length, 1, 'only the approval the owner gave three the first time');
  await one.mm('nodes', 'decline', thiefId);
  assert.deepEqual((await one.status()).join_requests, []);
  await assert.rejects(thief.mm('confirm', CODE.exec(unfoldQuotedPrintable(approvals[0]))[1]), /does not match|no approval/);
  assert.equal((await thief.status()).enrollment, 'awaiting_approval');

  // The owner gives the new mail password on one; it is tried, stored, and
  // handed to two over their link.
  assert.equal((await two.status()).change_password, true, 'two asks for it too');
  await one.mm('account', 'password', '--password-file', path.join(path.dirname(one.home), 'pw'));
  assert.doesNotMatch(await one.mm('nodes', 'list'), /change the password/);
  await waitFor('two to take the password from one', async () => !(await two.status()).change_password, { timeoutMs: 30_000 });

  // mailmesh never changed the inbox: no message was flagged or deleted;
  const flags = await inboxFlags(mail.imapPort, owner, PASSWORD);
  assert.ok(flags.length >= 4, 'the confirmation, two approvals and the removal code are there');
  assert.deepEqual(flags.filter((f) => f.includes('\\Seen') || f.includes('\\Deleted')), []);
  // its own mails are all in its folder, marked seen (not for the owner to read).
  const filedFlags = await inboxFlags(mail.imapPort, owner, PASSWORD, MAILMESH_FOLDER);
  assert.ok(filedFlags.length >= 8, 'the join mails are all there');
  assert.deepEqual(filedFlags.filter((f) => !f.includes('\\Seen') || f.includes('\\Deleted')), []);
});

test('forged join requests, approvals and roster entries from an outsider change nothing', async (t) => {
  const { mail, owner, mailWith, founder, joiner } = await setup(t);
  const one = await founder('one');
  const before = await one.status();
  const send = (kind, payload, subject) => sendMail(mail.smtpPort, {
    from: 'mallory@evil.example', to: owner, message: mailmeshMessage({ from: 'mallory@evil.example', to: owner, kind, payload, subject }),
  });

  // An outsider asks to join with a correctly signed request of its own...
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ed25519');
  const ed = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  const body = Buffer.concat([Buffer.from('MMJR'), Buffer.from([1]), ed, crypto.randomBytes(32), crypto.randomBytes(32),
    Buffer.from([0x10, 0x27]), Buffer.alloc(8), Buffer.from([4]), Buffer.from('evil')]);
  await send('join-request', Buffer.concat([body, crypto.sign(null, body, privateKey)]), 'join');
  // ...the member shows it and mails nothing until the owner approves it...
  await waitFor('the request shown on one', async () => (await one.status()).join_requests.some((r) => r.device_name === 'evil'),
    { timeoutMs: 30_000 });
  assert.equal((await fetchInbox(mail.imapPort, owner, PASSWORD)).filter((m) => m.includes('Approve evil')).length, 0,
    'a join request alone makes the owner\'s account send nothing');
  // ...and a proof the outsider makes without the code is ignored.
  assert.equal(base32(before.node_id).length, 20);
  const proof = Buffer.concat([Buffer.from('MMJP'), Buffer.from([1]), nodeIdOf(ed), base32(before.node_id), crypto.randomBytes(32)]);
  await send('join-proof', proof, 'proof');
  await waitFor('the forged proof to be refused', async () => /ignored a mail: no open approval for this device/.test(await engineLog(one)));

  // A roster with an extra entry the outsider signed.
  const rosterMail = (await fetchInbox(mail.imapPort, owner, PASSWORD, MAILMESH_FOLDER)).find((m) => m.includes('X-Mailmesh: roster/1'));
  const rosterB64 = /Content-Transfer-Encoding: base64\r?\n\r?\n([A-Za-z0-9+/=\r\n]+?)\r?\n--/.exec(rosterMail)[1];
  const roster = Buffer.from(rosterB64.replace(/\s/g, ''), 'base64');
  // entry: kind (0 = add) | keys | time | signer id: the genesis node's, copied | name
  const entry = Buffer.concat([Buffer.from([0]), ed, crypto.randomBytes(32), Buffer.alloc(8), roster.subarray(7 + 73, 7 + 93), Buffer.from([4]), Buffer.from('evil')]);
  const signed = Buffer.concat([Buffer.from('mailmesh roster entry v1'), entry]);
  const forgedRoster = Buffer.concat([roster.subarray(0, 5), Buffer.from([2, 0]), roster.subarray(7), entry, crypto.sign(null, signed, privateKey)]);
  await send('roster', forgedRoster, 'roster');
  await waitFor('the forged roster to be refused', async () => /ignored a mail: entry 1 \(\w+\) has a signature that does not verify/.test(await engineLog(one)));

  // A joining device, with its member off, gets only a forged approval.
  await one.stop();
  const two = await joiner('two');
  const approval = Buffer.concat([Buffer.from('MMAP'), Buffer.from([1]), crypto.randomBytes(40), crypto.randomBytes(64), Buffer.alloc(8, 0xff), crypto.randomBytes(32)]);
  await send('approval', approval, 'Approve two for mailmesh: code abcd-efgh');
  await waitFor('the forged approval to be refused', async () => /ignored a mail: the approval does not prove knowledge/.test(await engineLog(two)));
  await assert.rejects(two.mm('confirm', 'abcd-efgh'), /no approval has arrived yet/);
  assert.equal((await two.status()).enrollment, 'awaiting_approval');

  await one.start();
  // Back, it reads what came meanwhile, the forged approval last.
  await waitFor('the forged approval read by one', async () =>
    /ignored a mail: not joining uid=\d+ kind="approval"/.test(await engineLog(one)));
  const after = await one.status();
  assert.deepEqual(rosterIds(after), rosterIds(before), 'nobody was added by the forgeries');
  const inbox = (await fetchInbox(mail.imapPort, owner, PASSWORD)).map(unfoldQuotedPrintable);
  assert.ok(!inbox.some((m) => m.includes('Subject: mailmesh: welcome evil')), 'no welcome for the outsider');
});

test('a foreign network mailed to the owner is shown, and init --new-network makes the owner\'s own', async (t) => {
  const { mail, owner, mailWith, node } = await setup(t);
  // Mallory sets up a network of her own and mails its (valid) roster to the owner.
  const mallory = await mail.addUser('mallory', PASSWORD);
  await new Promise((resolve) => setTimeout(resolve, 1_100)); // Dovecot rereads its users a second later
  const hers = node('definitely-yours', 'mallory-node', mallory);
  await hers.start();
  await hers.init();
  const inbox = (user) => fetchInbox(mail.imapPort, user, PASSWORD);
  const confirm = await waitFor('Mallory\'s confirmation', async () =>
    (await inbox(mallory)).map(unfoldQuotedPrintable).find((m) => m.includes('Subject: Confirm mailmesh on definitely-yours')));
  await hers.mm('confirm', CODE.exec(confirm)[1]);
  const roster = await waitFor('Mallory\'s roster mail', async () =>
    (await fetchInbox(mail.imapPort, mallory, PASSWORD, MAILMESH_FOLDER)).find((m) => m.includes('X-Mailmesh: roster/1')));
  await sendMail(mail.smtpPort, { from: mallory, to: owner, message: roster.replace(/^To: .*$/m, `To: ${owner}`) });
  await mailWith('mailmesh roster');
  const foreign = await hers.status();

  // The owner's first device finds it: init shows whose it is, and asks to join.
  const one = node('one');
  await one.start();
  const said = await one.init();
  assert.match(said, new RegExp(`Found the network ${foreign.network_id}`));
  assert.match(said, new RegExp(`${foreign.fingerprint}  definitely-yours`));
  assert.match(said, /--new-network/);
  assert.equal((await one.status()).networks_found[0].network_id, foreign.network_id);

  // Not the owner's: a new network, confirmed by mail like any first device.
  assert.match(await one.init('--new-network'), /confirmation mail was sent/);
  const code = CODE.exec(await mailWith('Confirm mailmesh on one'))[1];
  await one.mm('confirm', code);
  const mine = await one.status();
  assert.equal(mine.enrolled, true);
  assert.notEqual(mine.network_id, foreign.network_id);
  assert.deepEqual(mine.networks_found, []);
});
