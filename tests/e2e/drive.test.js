// Issue 6, first part: the drive on one node. Attachments of mail sent over
// SMTP are imported within seconds (nested parts, base64, quoted-printable,
// RFC 2231 and encoded-word names, inline images, attached messages), come
// back byte for byte, are imported once across restarts, and the mailbox is
// unchanged; a file added from disk round-trips and can be deleted.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { blake3 } from '@noble/hashes/blake3.js';
import { inboxFlags, sendMail } from '../harness/mail-client.js';
import { LanMesh } from '../harness/lan-mesh.js';
import { foundedNode } from '../harness/owner.js';
import { waitFor } from '../harness/util.js';

const hex = (bytes) => Buffer.from(bytes).toString('hex');
const b64 = (bytes) => Buffer.from(bytes).toString('base64').replace(/.{76}/g, '$&\r\n');

/** A mail with every kind of attachment the importer must find. */
function richMail(to, files) {
  return [
    'From: Alice <alice@example.org>',
    `To: ${to}`,
    'Subject: =?UTF-8?Q?Quarterly_r=C3=A9sults?=',
    'Message-ID: <q3@example.org>',
    'Date: Tue, 24 Nov 2026 09:00:00 +0000',
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="outer"',
    '',
    '--outer',
    'Content-Type: multipart/related; boundary="rel"',
    '',
    '--rel',
    'Content-Type: text/html; charset=utf-8',
    '',
    '<p>See the chart <img src="cid:chart"></p>',
    '--rel',
    'Content-Type: image/png',
    'Content-ID: <chart>',
    'Content-Transfer-Encoding: base64',
    '',
    b64(files.chart),
    '--rel--',
    '--outer',
    'Content-Type: application/octet-stream',
    'Content-Disposition: attachment; filename*=UTF-8\'\'donn%C3%A9es%20brutes.bin',
    'Content-Transfer-Encoding: base64',
    '',
    b64(files.data),
    '--outer',
    'Content-Type: text/plain; charset=utf-8; name="=?UTF-8?B?0L/RgNC40LzQtdGH0LDQvdC40LUudHh0?="',
    'Content-Disposition: attachment',
    'Content-Transfer-Encoding: quoted-printable',
    '',
    'caf=C3=A9 cr=C3=A8me',
    // Text files in other charsets: stored as attached, never transcoded.
    '--outer',
    'Content-Type: text/csv; charset=windows-1252',
    'Content-Disposition: attachment; filename="export.csv"',
    'Content-Transfer-Encoding: base64',
    '',
    b64(files.csv),
    '--outer',
    'Content-Type: text/plain; charset=shift_jis',
    'Content-Disposition: attachment; filename="memo.txt"',
    'Content-Transfer-Encoding: quoted-printable',
    '',
    '=93=FA=96=7B=8C=EA',
    '=83=65=83=58=83=67',
    '--outer',
    'Content-Type: message/rfc822',
    'Content-Disposition: attachment; filename="forwarded.eml"',
    '',
    'From: Bob <bob@example.org>',
    'Subject: the original',
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="inner"',
    '',
    '--inner',
    'Content-Type: text/plain',
    '',
    'see attached',
    '--inner',
    'Content-Type: application/pdf',
    'Content-Disposition: attachment; filename="contract.pdf"',
    'Content-Transfer-Encoding: base64',
    '',
    b64(files.pdf),
    '--inner--',
    '--outer--',
    '',
  ].join('\r\n');
}

test('mail attachments are imported once, come back intact, and the mailbox is untouched', async (t) => {
  const { dir, mail, node, owner, password } = await foundedNode(t, 'mailmesh-drive-');
  const files = async () => JSON.parse((await node.mailmesh('files', 'list', '--json')).stdout);

  const sent = {
    chart: crypto.randomBytes(20_000),
    data: crypto.randomBytes(2_500_000),
    pdf: Buffer.concat([Buffer.from('%PDF-1.4\n'), crypto.randomBytes(50_000)]),
    csv: Buffer.from('name;price\r\ncaf\xe9;3\x80\r\nna\xefve;\xa35\r\n', 'latin1'),
  };
  await sendMail(mail.smtpPort, { from: 'alice@example.org', to: owner, message: 'Subject: broken\r\nContent-Type: multipart/mixed; boundary="x"\r\n\r\n--x\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64\r\n' });
  await sendMail(mail.smtpPort, { from: 'alice@example.org', to: owner, message: richMail(owner, sent) });
  // The confirmation, the broken mail and the rich one (the roster is in mailmesh's folder).
  const flagsBefore = await waitFor('both mails delivered', async () => {
    const flags = await inboxFlags(mail.imapPort, owner, password);
    return flags.length >= 3 && flags;
  });

  const listed = await waitFor('the attachments in the drive', async () => {
    const all = await files();
    return all.some((f) => f.name === 'contract.pdf') && all;
  }, { timeoutMs: 30_000, everyMs: 250 });
  const byName = Object.fromEntries(listed.map((f) => [f.name, f]));
  const expect = {
    'attachment-1.png': sent.chart,
    'données brutes.bin': sent.data,
    'примечание.txt': Buffer.from('café crème'),
    'export.csv': sent.csv,
    'memo.txt': Buffer.from([0x93, 0xfa, 0x96, 0x7b, 0x8c, 0xea, 0x0d, 0x0a, 0x83, 0x65, 0x83, 0x58, 0x83, 0x67]),
    'contract.pdf': sent.pdf,
  };
  for (const [name, bytes] of Object.entries(expect)) {
    const file = byName[name];
    assert.ok(file, `${name} imported (got ${Object.keys(byName).join(', ')})`);
    assert.equal(file.size, bytes.length, name);
    assert.equal(file.blake3, hex(blake3(bytes)), name);
    assert.equal(file.health.state, 'full');
    assert.equal(file.origin.subject, 'Quarterly résults');
    assert.equal(file.origin.from, 'alice@example.org');
    const out = path.join(dir, `out-${file.id.slice(0, 8)}`);
    await node.mailmesh('files', 'get', file.id, '-o', out);
    assert.deepEqual(await fs.readFile(out), bytes, `${name} comes back byte for byte`);
  }
  assert.ok(byName['forwarded.eml'], 'the attached message itself is kept');
  // The broken message was delivered first: that the rich one after it was
  // imported shows a bad message is skipped and the import goes on.

  // Restarting imports nothing twice; the mailbox is exactly as it was.
  await node.mailmesh('stop');
  await node.startEngine();
  const { stdout } = await node.mailmesh('mail', 'sync');
  assert.match(stdout, /read 0 new messages, imported 0 files/);
  assert.equal((await files()).length, listed.length);
  assert.deepEqual(await inboxFlags(mail.imapPort, owner, password), flagsBefore, 'no flag changed, nothing removed');

  // A file from disk: added, restored, deleted.
  const local = path.join(dir, 'holiday.bin');
  const localBytes = crypto.randomBytes(3_000_000);
  await fs.writeFile(local, localBytes);
  const added = (await node.mailmesh('files', 'add', local)).stdout.match(/added ([0-9a-f]{64})/)[1];
  const back = path.join(dir, 'holiday.back');
  await node.mailmesh('files', 'get', added.slice(0, 12), '-o', back);
  assert.deepEqual(await fs.readFile(back), localBytes);
  await node.mailmesh('files', 'rm', added);
  assert.equal((await files()).some((f) => f.id === added), false);
  await assert.rejects(node.mailmesh('files', 'get', added, '-o', back), /no file with id/);
});

test('three machines: a mailed attachment reaches every node, survives one node lost, fails clearly past that', async (t) => {
  const mesh = await LanMesh.start(3, 3, { browsers: false });
  t.after(async () => assert.deepEqual(await mesh.stop(), [], 'nothing left running'));
  const [one, two, three] = mesh.nodes;
  const list = async (node) => JSON.parse((await node.mailmesh('files', 'list', '--json')).stdout);
  await waitFor('every engine linked to both others', async () => {
    const s = await Promise.all(mesh.nodes.map((n) => n.status()));
    return s.every((x) => x.peers.filter((p) => p.member && p.online).length === 2);
  }, { timeoutMs: 30_000, everyMs: 250 });

  const report = crypto.randomBytes(3_500_000);
  await sendMail(mesh.mail.smtpPort, {
    from: 'carol@example.org',
    to: mesh.owner,
    message: ['From: carol@example.org', `To: ${mesh.owner}`, 'Subject: the report', 'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="b"', '', '--b', 'Content-Type: text/plain', '', 'attached', '--b',
      'Content-Type: application/octet-stream', 'Content-Disposition: attachment; filename="report.bin"',
      'Content-Transfer-Encoding: base64', '', b64(report), '--b--', ''].join('\r\n'),
  });
  const id = await waitFor('report.bin on every node, fully spread', async () => {
    const lists = await Promise.all(mesh.nodes.map(list));
    const files = lists.map((l) => l.find((f) => f.name === 'report.bin'));
    return files.every((f) => f?.health.state === 'full') && files[0].id;
  }, { timeoutMs: 60_000, everyMs: 500 });
  const flagsBefore = await inboxFlags(mesh.mail.imapPort, mesh.owner, mesh.password);

  // The fragments are spread: every node ends up holding its share (a
  // third of the 4 + 2 fragments of each chunk), none holds them all.
  const total = (await list(one)).find((f) => f.id === id).health.fragments_total;
  const held = await waitFor('the fragments spread over the three nodes', async () => {
    const counts = await Promise.all(mesh.nodes.map(async (n) => (await fragmentFiles(n)).length));
    return counts.every((n) => n === total / 3) && counts;
  }, { timeoutMs: 60_000, everyMs: 500 }).catch(async (e) => {
    throw new Error(`${e.message}: ${await Promise.all(mesh.nodes.map(async (n) => (await fragmentFiles(n)).length))}`);
  });
  t.diagnostic(`fragments held per node: ${held.join(', ')} of ${total}`);

  // A rename on one node shows on the others.
  await one.mailmesh('files', 'mv', id, 'Q3 report.bin');
  await waitFor('the new name everywhere', async () =>
    (await Promise.all(mesh.nodes.map(list))).every((l) => l.find((f) => f.id === id)?.name === 'Q3 report.bin'),
  { timeoutMs: 15_000, everyMs: 250 });

  // Any node restores it; with one node gone, still; with two, a clear
  // error and no partial file; with one back, it works again.
  const out = (name) => path.join(mesh.dir, name);
  await three.mailmesh('files', 'get', id, '-o', out('from-three'));
  assert.deepEqual(await fs.readFile(out('from-three')), report);
  await one.mailmesh('stop');
  await two.mailmesh('files', 'get', id, '-o', out('one-gone'));
  assert.deepEqual(await fs.readFile(out('one-gone')), report, 'restored with a node gone');
  await three.mailmesh('stop');
  await waitFor('two to see both others gone', async () =>
    (await two.status()).peers.filter((p) => p.online).length === 0, { timeoutMs: 15_000 });
  await assert.rejects(two.mailmesh('files', 'get', id, '-o', out('two-gone')), /has 2 of the 4 fragments it needs/);
  await assert.rejects(fs.access(out('two-gone')), 'no partial file is left');
  await three.startEngine();
  await waitFor('three back', async () => (await two.status()).peers.some((p) => p.online), { timeoutMs: 30_000 });
  await two.mailmesh('files', 'get', id, '-o', out('three-back'));
  assert.deepEqual(await fs.readFile(out('three-back')), report);
  assert.deepEqual(await inboxFlags(mesh.mail.imapPort, mesh.owner, mesh.password), flagsBefore, 'mailbox unchanged');
});

/** The fragment files a node stores (named by their id; not a write's temp file). */
async function fragmentFiles(node) {
  const root = path.join(node.home, 'drive/fragments');
  const shards = await fs.readdir(root).catch(() => []);
  const files = await Promise.all(shards.map(async (s) => (await fs.readdir(path.join(root, s)))
    .filter((f) => /^[0-9a-f]{64}$/.test(f)).map((f) => path.join(root, s, f))));
  return files.flat();
}

test('rotten fragments are never served and are rebuilt; a lost node is replaced; an upload killed midway leaves nothing', async (t) => {
  // Short grace before a gone node's fragments are re-created (the default is an hour).
  process.env.MAILMESH_REPAIR_GRACE_SECS = '2';
  t.after(() => { delete process.env.MAILMESH_REPAIR_GRACE_SECS; });
  const mesh = await LanMesh.start(3, 3, { browsers: false });
  t.after(async () => assert.deepEqual(await mesh.stop(), [], 'nothing left running'));
  const [one, two, three] = mesh.nodes;
  await waitFor('every engine linked to both others', async () => {
    const s = await Promise.all(mesh.nodes.map((n) => n.status()));
    return s.every((x) => x.peers.filter((p) => p.member && p.online).length === 2);
  }, { timeoutMs: 30_000, everyMs: 250 });

  const bytes = crypto.randomBytes(3_000_000);
  const source = path.join(mesh.dir, 'album.zip');
  await fs.writeFile(source, bytes);
  const id = (await one.mailmesh('files', 'add', source)).stdout.match(/added ([0-9a-f]{64})/)[1];
  const total = JSON.parse((await one.mailmesh('files', 'list', '--json')).stdout).find((f) => f.id === id).health.fragments_total;
  await waitFor('the fragments spread', async () =>
    (await Promise.all(mesh.nodes.map(fragmentFiles))).every((f) => f.length === total / 3), { timeoutMs: 60_000, everyMs: 500 });

  // Flip a byte in a fragment on node2: a download there is still exact
  // (the rotten fragment is not used), and a repair rebuilds it.
  const [victim] = await fragmentFiles(two);
  const rotten = await fs.readFile(victim);
  rotten[100] ^= 0xff;
  await fs.writeFile(victim, rotten);
  const out = (name) => path.join(mesh.dir, name);
  await two.mailmesh('files', 'get', id, '-o', out('despite-rot'));
  assert.ok((await fs.readFile(out('despite-rot'))).equals(bytes), 'a rotten fragment is never served');
  await two.mailmesh('files', 'repair');
  const healed = await fs.readFile(victim);
  assert.equal(hex(blake3(healed)), path.basename(victim), 'the damaged fragment was rebuilt in place');

  // node3 is gone for good: after the grace period its fragments are
  // re-created on the others and health is full again.
  await three.mailmesh('stop');
  await waitFor('node3 seen gone', async () =>
    (await one.status()).peers.filter((p) => p.online).length === 1, { timeoutMs: 15_000 });
  const degraded = JSON.parse((await one.mailmesh('files', 'list', '--json')).stdout).find((f) => f.id === id);
  assert.equal(degraded.health.state, 'degraded');
  // The grace period (2 s of wall-clock time) passes.
  await new Promise((r) => setTimeout(r, 2500));
  await one.mailmesh('files', 'repair');
  await two.mailmesh('files', 'repair');
  for (const node of [one, two]) {
    const file = JSON.parse((await node.mailmesh('files', 'list', '--json')).stdout).find((f) => f.id === id);
    assert.deepEqual([file.health.state, file.health.fragments_present], ['full', total], `${node.name} sees full health`);
  }
  const held = (await fragmentFiles(one)).length + (await fragmentFiles(two)).length;
  assert.equal(held, total, 'every fragment exists again on the two remaining nodes');

  // An add killed midway: nothing half-added, earlier files intact, and a
  // retry works. node1's link is slowed to 8 Mbit/s, so placing node2's
  // half of 60 MB takes half a minute at least however fast the machine
  // is: the kill lands once part of the file is stored here.
  const big = crypto.randomBytes(60_000_000);
  const bigPath = path.join(mesh.dir, 'video.bin');
  await fs.writeFile(bigPath, big);
  const fragmentsBefore = (await fragmentFiles(one)).length;
  mesh.lan.limitRate(one.host, 8);
  const adding = one.mailmesh('files', 'add', bigPath).then(() => 'finished', (e) => e.stderr);
  await waitFor('part of the file stored here', async () => (await fragmentFiles(one)).length > fragmentsBefore);
  await one.killEngine();
  mesh.lan.unlimitRate(one.host);
  assert.match(await adding, /lost the connection to the engine/, 'the interrupted add reports failure');
  await one.startEngine();
  await waitFor('node1 linked to node2 again', async () =>
    (await one.status()).peers.some((p) => p.member && p.online), { timeoutMs: 30_000 });
  const after = JSON.parse((await one.mailmesh('files', 'list', '--json')).stdout);
  assert.equal(after.some((f) => f.name === 'video.bin'), false, 'no partial file is listed');
  await one.mailmesh('files', 'get', id, '-o', out('after-kill'));
  assert.ok((await fs.readFile(out('after-kill'))).equals(bytes), 'what was stored before is intact');
  await one.mailmesh('files', 'add', bigPath);
  assert.ok(JSON.parse((await one.mailmesh('files', 'list', '--json')).stdout).some((f) => f.name === 'video.bin'));
});
