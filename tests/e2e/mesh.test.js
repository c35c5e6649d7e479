// Issue 5, the mesh: three nodes, each in its own network namespace on one
// bridge (separate machines), find each other, link by WebRTC with the
// handshake bound to the channel, notice a cut within 10 s, reconnect by
// themselves, fall back to the engines' relay when UDP is blocked; an
// impostor without the network key gets nothing; a stranger flooding frames
// holds up neither the drive between members nor status; 2,000 silent
// connections to the link port keep out neither a member nor status; no web
// page can open the loopback channel.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import http from 'node:http';
import fs from 'node:fs/promises';
import path from 'node:path';
import { MeshNode } from '../harness/node.js';
import { LanMesh } from '../harness/lan-mesh.js';
import { impostorBin } from '../harness/paths.js';
import { runCommand } from '../harness/idle-time.js';
import { tempDir, waitFor } from '../harness/util.js';

/** A mesh of `count` nodes on `hosts` machines, stopped after the test. */
async function meshOnLan(t, count, hosts = count) {
  const mesh = await LanMesh.start(count, hosts);
  t.after(async () => assert.deepEqual(await mesh.stop(), [], 'nothing left running'));
  return mesh;
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
  const { lan, nodes, popups, ids } = await meshOnLan(t, 3);
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

  // Chrome stopping the service worker does not touch the links.
  const cdp = await nodes[0].context.newCDPSession(popups[0]);
  await cdp.send('ServiceWorker.enable');
  await cdp.send('ServiceWorker.stopAllWorkers');
  const afterStop = await echo(popups[0], ids[1], 1000);
  assert.deepEqual([afterStop.equal, afterStop.path], [true, 'webrtc'], 'links survive a stopped service worker');

  // An engine killed and started again: its node is back online and direct.
  await nodes[1].killEngine();
  await nodes[1].startEngine();
  for (const i of [0, 2]) {
    await waitFor(`node${i + 1} to reach node2 directly again`, async () => (await row(popups[i], ids[1]))?.path === 'webrtc',
      { timeoutMs: 30_000, everyMs: 250 });
  }

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
  for (const [i, j] of [[0, 1], [1, 0]]) {
    await waitFor(`node${i + 1} to reach node${j + 1} through the relay`,
      async () => (await row(popups[i], ids[j]))?.path === 'relay', { timeoutMs: 30_000, everyMs: 250 });
  }
  assert.match((await row(popups[0], ids[1])).text, /relayed/);
  const relayed = await echo(popups[0], ids[1], 250_000);
  assert.deepEqual([relayed.equal, relayed.path], [true, 'relay'], JSON.stringify(relayed));
  const relayedBack = await echo(popups[1], ids[0], 1000);
  assert.deepEqual([relayedBack.equal, relayedBack.path], [true, 'relay'], JSON.stringify(relayedBack));
  // node3 still reaches both directly.
  assert.equal((await echo(popups[2], ids[0], 1000)).path, 'webrtc');
});

/** Waits until both nodes reach each other directly. */
async function directly(popups, ids) {
  for (const [i, j] of [[0, 1], [1, 0]]) {
    await waitFor(`node${i + 1} to reach node${j + 1} directly`, async () => (await row(popups[i], ids[j]))?.path === 'webrtc',
      { timeoutMs: 30_000, everyMs: 250 });
  }
}

test('an impostor without the network key gets no link and no data; the real nodes keep working', async (t) => {
  const { lan, nodes, popups, ids } = await meshOnLan(t, 2, 3);
  await directly(popups, ids);
  const victim = await nodes[1].status();

  // The impostor claims node2's id and network key id over mDNS, and
  // attacks node1's link port with a made-up key, a stranger handshake
  // carrying signaling and data, and garbage.
  const [command, args] = lan.exec(2, [impostorBin(), `${nodes[0].ip}:${(await nodes[0].status()).link_port}`,
    victim.node_id, victim.network_key_id, '4']);
  const { stdout } = await runCommand(command, args);
  const report = JSON.parse(stdout);
  t.diagnostic(`impostor: ${stdout.trim()}`);
  assert.equal(report.member_link, false, 'no member link without the network key');
  assert.equal(report.frames_received, 0, 'the impostor received no data and no signaling');

  // It is nobody's member, and no data channel was made with it.
  for (const [i, node] of nodes.entries()) {
    const status = await node.status();
    const members = status.peers.filter((p) => p.member).map((p) => p.id);
    assert.deepEqual(members, [ids[1 - i]], `${node.name} counts only the real node as a member`);
    const impostor = status.peers.find((p) => p.id === report.impostor_id);
    if (impostor) assert.equal(impostor.member, false);
    const mesh = await popups[i].evaluate(() => chrome.runtime.sendMessage({ type: 'mesh.state' }));
    assert.equal(mesh.peers.find((p) => p.id === report.impostor_id)?.link ?? null, null, 'no link to the impostor');
  }

  // The real nodes never lost each other.
  const check = await echo(popups[0], ids[1], 100_000);
  assert.deepEqual([check.equal, check.path], [true, 'webrtc']);
  assert.equal((await row(popups[1], ids[0])).online, 'true');
});

test('a stranger flooding send, chat and call frames holds up neither the drive between members nor status', async (t) => {
  const mesh = await LanMesh.start(2, 3, { browsers: false });
  t.after(async () => assert.deepEqual(await mesh.stop(), [], 'nothing left running'));
  const [one, two] = mesh.nodes;
  await waitFor('both engines linked', async () =>
    (await Promise.all(mesh.nodes.map((n) => n.status()))).every((s) => s.peers.some((p) => p.member && p.online)),
  { timeoutMs: 30_000, everyMs: 250 });

  // Another person's node links to node1 and floods it until told to stop.
  const [command, args] = mesh.lan.exec(2, [impostorBin(), 'flood', `${one.ip}:${(await one.status()).link_port}`]);
  const flooder = spawn(command, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  t.after(() => { if (flooder.exitCode === null) flooder.kill('SIGKILL'); });
  let said = '';
  flooder.stdout.on('data', (d) => { said += d; });
  const ended = new Promise((resolve) => flooder.on('exit', resolve));
  const sent = () => Math.max(0, ...[...said.matchAll(/sent (\d+)/g)].map((m) => Number(m[1])));
  await waitFor('the flood to start', () => said.includes('flooding'), { timeoutMs: 30_000 });

  // Meanwhile node2 adds a file: its record and fragments reach node1,
  // node1 restores it byte for byte, and answers status all along.
  const bytes = crypto.randomBytes(3_000_000);
  const source = path.join(mesh.dir, 'during-the-flood.bin');
  await fs.writeFile(source, bytes);
  const id = (await two.mailmesh('files', 'add', source)).stdout.match(/added ([0-9a-f]{64})/)[1];
  const list = async (node) => JSON.parse((await node.mailmesh('files', 'list', '--json')).stdout);
  await waitFor('the file listed on node1, every fragment reachable', async () =>
    (await list(one)).find((f) => f.id === id)?.health.state === 'full', { timeoutMs: 60_000, everyMs: 250 });
  const back = path.join(mesh.dir, 'back.bin');
  await one.mailmesh('files', 'get', id, '-o', back);
  assert.deepEqual(await fs.readFile(back), bytes, 'restored on node1 during the flood');
  const status = await one.status();
  assert.ok(status.peers.some((p) => !p.member && p.online), 'the flooder stayed linked: the flood went on throughout');
  await waitFor('3,000 frames flooded', () => sent() >= 3000, { timeoutMs: 60_000 });
  assert.equal(flooder.exitCode, null, 'still flooding when the file was back');

  flooder.stdin.end();
  await ended;
  const report = JSON.parse(said.trim().split('\n').pop());
  t.diagnostic(`flooder: ${JSON.stringify(report)}`);
  assert.equal(report.link_kept, true, 'a flood costs its sender its own frames, not its link');
  assert.ok((await one.status()).peers.some((p) => p.member && p.online), 'the members are still linked');
});

test('2,000 silent connections to the link port hold up neither a member\'s link nor status, and cost few files', async (t) => {
  const mesh = await LanMesh.start(2, 3, { browsers: false });
  t.after(async () => assert.deepEqual(await mesh.stop(), [], 'nothing left running'));
  const [one, two] = mesh.nodes;
  const linked = async () =>
    (await Promise.all(mesh.nodes.map((n) => n.status()))).every((s) => s.peers.some((p) => p.member && p.online));
  await waitFor('both engines linked', linked, { timeoutMs: 30_000, everyMs: 250 });
  // The open-file limit a desktop session gives a program.
  const { engine_pid: pid } = await one.status();
  await runCommand('prlimit', [`--pid=${pid}`, '--nofile=1024:1024']);

  // Someone on the LAN opens 2,000 connections to node1's link port and
  // says nothing, opening a new one whenever one is closed.
  const [command, args] = mesh.lan.exec(2, [impostorBin(), 'hold', `${one.ip}:${(await one.status()).link_port}`, '2000']);
  const holder = spawn(command, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  t.after(() => { if (holder.exitCode === null) holder.kill('SIGKILL'); });
  let said = '';
  holder.stdout.on('data', (d) => { said += d; });
  const ended = new Promise((resolve) => holder.on('exit', resolve));
  await waitFor('all 2,000 connections tried', () => said.includes('holding'), { timeoutMs: 60_000 });

  // node2 starts again: its link to node1 must get through the crowd.
  await two.killEngine();
  await two.startEngine();
  await waitFor('node2 linked to node1 again, during the crowd', linked, { timeoutMs: 60_000, everyMs: 250 });
  const files = (await fs.readdir(`/proc/${pid}/fd`)).length;
  t.diagnostic(`node1's engine has ${files} files open`);
  assert.ok(files < 300, `node1's engine holds ${files} files open for 2,000 silent connections`);
  assert.equal((await one.status()).engine_pid, pid, 'status answers, from the same engine');

  holder.stdin.end();
  await ended;
  t.diagnostic(`holder: ${said.trim().split('\n').pop()}`);
});

test('a web page served from http://127.0.0.1 cannot open the loopback channel', async (t) => {
  const dir = await tempDir('mailmesh-loopback-');
  const node = await MeshNode.start({ name: 'solo', dir });
  const server = http.createServer((_, res) => res.end('<!doctype html><title>not mailmesh</title>'));
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(async () => {
    server.close();
    await node.stop();
    await fs.rm(dir, { recursive: true, force: true });
  });
  const popup = await waitFor('the engine', async () => {
    const page = await node.openPage('popup/popup.html');
    return page;
  });
  const port = (await node.status()).loopback_port;
  const token = () => popup.evaluate(() => chrome.runtime.sendMessage({ type: 'socket_token' }));
  /** Tries a WebSocket from `page`; resolves 'open' or 'refused'. */
  const tryOpen = (page, url) => page.evaluate((url) => new Promise((resolve) => {
    const ws = new WebSocket(url);
    ws.onopen = () => { ws.close(); resolve('open'); };
    ws.onerror = () => resolve('refused');
  }), url);

  const web = await node.context.newPage();
  await web.goto(`http://127.0.0.1:${server.address().port}/`);
  const stolen = await token();
  for (const path of ['mesh', 'bulk']) {
    assert.equal(await tryOpen(web, `ws://127.0.0.1:${port}/${path}`), 'refused', `${path}: no token`);
    assert.equal(await tryOpen(web, `ws://127.0.0.1:${port}/${path}?token=${stolen.token}`), 'refused',
      `${path}: a web page is refused even with a valid token`);
  }
  // The extension itself gets in, once per token.
  const fresh = await token();
  assert.equal(await tryOpen(popup, `ws://127.0.0.1:${port}/bulk?token=${fresh.token}`), 'open');
  assert.equal(await tryOpen(popup, `ws://127.0.0.1:${port}/bulk?token=${fresh.token}`), 'refused', 'a token works once');
  assert.equal(await tryOpen(popup, `ws://127.0.0.1:${port}/bulk?token=${'0'.repeat(64)}`), 'refused', 'a made-up token');

  // What the engine echoes over the bulk channel comes back byte for byte.
  const echoed = await popup.evaluate(async ({ port, token }) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/bulk?token=${token}`);
    ws.binaryType = 'arraybuffer';
    await new Promise((resolve) => { ws.onopen = resolve; });
    const sent = new Uint8Array(100_000).map((_, i) => (i * 7) % 256);
    sent[0] = 1;
    const back = await new Promise((resolve) => { ws.onmessage = ({ data }) => resolve(new Uint8Array(data)); ws.send(sent); });
    ws.close();
    return back.length === sent.length && back.every((b, i) => b === sent[i]);
  }, await token());
  assert.equal(echoed, true);
});
