// Issue 5, the mesh: three nodes, each in its own network namespace on one
// bridge (separate machines), find each other, link by WebRTC with the
// handshake bound to the channel, notice a cut within 10 s, reconnect by
// themselves, fall back to the engines' relay when UDP is blocked; an
// impostor without the network key gets nothing; no web page can open the
// loopback channel.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Lan } from '../harness/lan.js';
import { MailServer } from '../harness/mail-server.js';
import { MeshNode } from '../harness/node.js';
import { OwnerNetwork } from '../harness/owner.js';
import { processesUsing } from '../harness/processes.js';
import { tempDir, waitFor } from '../harness/util.js';

/** Three enrolled nodes on a test LAN, browsers running, popups open. */
async function meshOfThree(t) {
  const dir = await tempDir('mailmesh-mesh-');
  await fs.chmod(dir, 0o755);
  const lan = Lan.create(3);
  const nodes = [0, 1, 2].map((i) => MeshNode.prepare({ name: `node${i + 1}`, dir: path.join(dir, `node${i + 1}`), lan, host: i }));
  let mail;
  t.after(async () => {
    for (const n of nodes) await n.stop();
    await mail?.destroy();
    lan.destroy();
    assert.deepEqual(processesUsing(dir), [], 'nothing left running');
    await fs.rm(dir, { recursive: true, force: true });
  });
  mail = await MailServer.start(path.join(dir, 'mail'), { host: lan.gateway });
  const password = crypto.randomBytes(9).toString('base64url');
  const network = await OwnerNetwork.create(mail, await mail.addUser('owner', password), password, dir);
  await network.found(nodes[0]);
  await network.join(nodes[1]);
  await network.join(nodes[2]);
  await Promise.all(nodes.map((n) => n.startBrowser()));
  const popups = await Promise.all(nodes.map((n) => n.openPage('popup/popup.html')));
  const ids = await Promise.all(nodes.map(async (n) => (await n.status()).node_id));
  return { dir, lan, mail, nodes, popups, ids };
}

/** The popup's row for a peer, as data attributes. */
function row(popup, id) {
  return popup.evaluate((peer) => {
    const li = document.querySelector(`#peers li[data-peer="${peer}"]`);
    return li && { ...li.dataset, text: li.textContent };
  }, id);
}

/** Asks a node's offscreen mesh to echo `size` bytes off `peer`. */
function echo(page, peer, size) {
  return page.evaluate(({ peer, size }) => chrome.runtime.sendMessage({ type: 'mesh.echo', peer, size }), { peer, size });
}

/** What each node knows, for a failure message. */
async function explain(nodes, popups) {
  const lines = [];
  for (const [i, n] of nodes.entries()) {
    const status = await n.status().catch((e) => ({ error: e.message }));
    const mesh = await popups[i].evaluate(() => chrome.runtime.sendMessage({ type: 'mesh.state' })).catch((e) => e.message);
    lines.push(`${n.name}: peers ${JSON.stringify(status.peers)}\n  offscreen ${JSON.stringify(mesh)}`);
  }
  return lines.join('\n');
}

test('three machines find each other, link directly, notice a cut, reconnect and fall back to the relay', async (t) => {
  const { lan, nodes, popups, ids } = await meshOfThree(t);
  const others = (i) => [0, 1, 2].filter((j) => j !== i);

  // Every popup lists both other nodes online, direct, with a round-trip time.
  const started = Date.now();
  for (const i of [0, 1, 2]) {
    await waitFor(`node${i + 1}'s popup to show both others online and direct`, async () => {
      const rows = await Promise.all(others(i).map((j) => row(popups[i], ids[j])));
      return rows.every((r) => r?.online === 'true' && r.path === 'webrtc' && / ms/.test(r.text));
    }, { timeoutMs: 30_000, everyMs: 250 }).catch(async (e) => {
      throw new Error(`${e.message}\n${await explain(nodes, popups)}`);
    });
  }
  t.diagnostic(`all links direct after ${Date.now() - started} ms`);
  const status = await nodes[0].status();
  assert.equal(status.link_port > 0, true);
  for (const j of [1, 2]) {
    const peer = status.peers.find((p) => p.id === ids[j]);
    assert.equal(peer.member, true);
    assert.equal(peer.online, true);
    assert.equal(peer.path, 'webrtc');
    assert.equal(typeof peer.rtt_ms, 'number');
  }

  // Bytes cross the authenticated data channel intact, both ways.
  const there = await echo(popups[0], ids[1], 200_000);
  assert.deepEqual([there.equal, there.path], [true, 'webrtc'], JSON.stringify(there));
  const back = await echo(popups[1], ids[0], 1000);
  assert.deepEqual([back.equal, back.path], [true, 'webrtc'], JSON.stringify(back));

  // Cut node3 off: the others show it offline within 10 s.
  lan.cut(2);
  const cutAt = Date.now();
  for (const i of [0, 1]) {
    await waitFor(`node${i + 1} to see node3 offline`, async () => (await row(popups[i], ids[2]))?.online === 'false',
      { timeoutMs: 10_000, everyMs: 200 });
  }
  t.diagnostic(`node3 shown offline ${Date.now() - cutAt} ms after the cut`);
  assert.match((await row(popups[0], ids[2])).text, /offline · seen/);

  // Plug it back in: online again, without restarting anything.
  lan.reconnect(2);
  for (const i of [0, 1]) {
    await waitFor(`node${i + 1} to see node3 online again`, async () => (await row(popups[i], ids[2]))?.online === 'true',
      { timeoutMs: 30_000, everyMs: 250 });
  }
  const again = await echo(popups[0], ids[2], 5000);
  assert.equal(again.equal, true);

  // Block UDP between node1 and node2: their link falls back to the relay,
  // messages still arrive, and the popup says so.
  lan.blockUdp(0, 1);
  await waitFor('node1 to reach node2 through the relay', async () => (await row(popups[0], ids[1]))?.path === 'relay',
    { timeoutMs: 30_000, everyMs: 250 });
  assert.match((await row(popups[0], ids[1])).text, /relayed/);
  const relayed = await echo(popups[0], ids[1], 250_000);
  assert.deepEqual([relayed.equal, relayed.path], [true, 'relay'], JSON.stringify(relayed));
  const relayedBack = await echo(popups[1], ids[0], 1000);
  assert.deepEqual([relayedBack.equal, relayedBack.path], [true, 'relay'], JSON.stringify(relayedBack));
  // node3 still reaches both directly.
  assert.equal((await echo(popups[2], ids[0], 1000)).path, 'webrtc');
});
