// Issue 2, end to end: one node in real Chromium with the unpacked
// extension and a real engine; then the whole harness with a real Postfix +
// Dovecot and three nodes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { MeshNode } from '../harness/node.js';
import { Cluster } from '../harness/cluster.js';
import { processesUsing } from '../harness/processes.js';
import { sendMail, countInbox } from '../harness/mail-client.js';
import { tempDir, waitFor } from '../harness/util.js';

const text = (page, selector) => page.locator(selector).textContent();

async function waitForConnection(page, state) {
  await waitFor(`popup to show "${state}"`, async () => (await text(page, '#conn-state')) === state, { timeoutMs: 20_000 });
}

test('the popup shows the engine, follows it going down and coming back', async (t) => {
  const dir = await tempDir('mailmesh-e2e-');
  const node = await MeshNode.start({ name: 'solo', dir: path.join(dir, 'solo') });
  t.after(async () => {
    const killed = await node.stop();
    assert.deepEqual(killed, [], 'the node stops cleanly');
  });

  const popup = await node.openPage('popup/popup.html');
  await waitForConnection(popup, 'connected');
  const status = await node.status();
  // The fingerprint in the popup is computed by the wasm core from the
  // host's public key; the CLI's comes from the native core.
  await waitFor('the fingerprint', async () => (await text(popup, '#fingerprint')) === status.fingerprint);
  assert.equal(await text(popup, '#host-version'), status.version);
  assert.match(status.fingerprint, /^([a-z2-7]{4}-){7}[a-z2-7]{4}$/);

  // The engine dies: the popup says so and offers to start it.
  const oldPid = await node.killEngine();
  await waitForConnection(popup, 'disconnected');
  assert.match(await text(popup, '#conn-detail'), /engine/i);
  assert.ok(await popup.locator('#start-engine').isVisible());

  // Started again from the command line: connected without any reload.
  await node.startEngine();
  await waitForConnection(popup, 'connected');
  const restarted = await node.status();
  assert.notEqual(restarted.engine_pid, oldPid);
  assert.equal(await text(popup, '#fingerprint'), status.fingerprint, 'same identity after restart');

  // Killed again, started from the popup's button.
  await node.killEngine();
  await waitForConnection(popup, 'disconnected');
  await popup.locator('#start-engine').click();
  await waitForConnection(popup, 'connected');

  // The native host process itself dies: the service worker reconnects.
  const bridges = processesUsing(node.home).filter((p) => p.cmdline.includes('chrome-extension://'));
  assert.equal(bridges.length, 1, 'one native host per browser');
  process.kill(bridges[0].pid, 'SIGKILL');
  await waitFor('a new native host', () => processesUsing(node.home).some((p) => p.cmdline.includes('chrome-extension://') && p.pid !== bridges[0].pid), { timeoutMs: 20_000 });
  await waitForConnection(popup, 'connected');

  // Chrome stops the service worker (as it may at any moment): the native
  // port closes with it, and the next page that needs it brings it back,
  // connected, with nothing lost.
  // (The popup may wake a new worker at once: it is that native host,
  // not none at all, that the check looks for.)
  const hosts = () => processesUsing(node.home).filter((p) => p.cmdline.includes('chrome-extension://')).map((p) => p.pid);
  const [host] = hosts();
  const cdp = await node.context.newCDPSession(popup);
  await cdp.send('ServiceWorker.enable');
  await cdp.send('ServiceWorker.stopAllWorkers');
  await waitFor('the native host to exit with the worker', () => !hosts().includes(host), { timeoutMs: 20_000 });
  await popup.reload();
  // The restarted worker resets the stored state before it opens a new
  // port, so once a new native host runs, "connected" is fresh.
  await waitFor('the restarted worker to start a native host', () => hosts().some((pid) => pid !== host),
    { timeoutMs: 20_000 });
  await waitForConnection(popup, 'connected');
  assert.equal(await text(popup, '#fingerprint'), status.fingerprint);

  // doctor is happy with this profile, and says what to fix once the
  // manifest is gone.
  const doctor = await node.mailmesh('doctor', '--user-data-dir', node.profile);
  assert.match(doctor.stdout, /everything looks right/);
  await node.mailmesh('uninstall', '--user-data-dir', node.profile);
  const broken = await node.mailmesh('doctor', '--user-data-dir', node.profile).then(
    () => assert.fail('doctor must fail without a manifest'),
    (e) => e.stdout,
  );
  assert.match(broken, /FAIL no browser has the mailmesh native host manifest/);
  assert.match(broken, /fix: run `mailmesh --home .* install --user-data-dir/);
});

test('the harness runs a mail server and three nodes and leaves nothing behind', async () => {
  const cluster = await Cluster.up({ nodes: 3 });
  let root;
  try {
    root = cluster.root;
    const { mail } = cluster;
    await sendMail(mail.smtpPort, {
      from: 'someone@example.org',
      to: cluster.owner,
      message: `From: someone@example.org\nTo: ${cluster.owner}\nSubject: harness check\n\nhello\n`,
    });
    await waitFor('the mail in the owner\'s inbox', async () => (await countInbox(mail.imapPort, cluster.owner, cluster.ownerPassword)) === 1);

    const fingerprints = new Set();
    for (const node of cluster.nodes) {
      const popup = await node.openPage('popup/popup.html');
      await waitForConnection(popup, 'connected');
      fingerprints.add(await waitFor('a fingerprint', async () => {
        const fp = await text(popup, '#fingerprint');
        return fp !== '—' && fp;
      }));
    }
    assert.equal(fingerprints.size, 3, 'every node has its own identity');
    const description = cluster.describe();
    assert.equal(description.nodes.length, 3);
    assert.ok(description.nodes.every((n) => n.cdp.startsWith('http://127.0.0.1:')));
  } finally {
    const killed = await cluster.down();
    assert.deepEqual(killed, [], 'everything stopped by itself');
  }
  assert.deepEqual(processesUsing(root), [], 'no process of the cluster is left');
});
