// Issue 7, calls: three people, each with one node and a browser with fake
// camera and microphone, verified by email. Alice starts a call from her
// app page; Bob and Carol join it from theirs. Every participant decodes
// video from both others (framesDecoded growing in getStats), a mute shows
// on the others' screens, and one who leaves is gone from theirs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PeopleLan } from '../harness/people-lan.js';
import { waitFor } from '../harness/util.js';

const FAKE_MEDIA = ['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', '--autoplay-policy=no-user-gesture-required'];
const stats = (page) => page.evaluate(() => window.mailmeshCall.stats());

/** Opens `name`'s app at Calls; returns the page. */
async function callsPage(node) {
  const app = await node.openPage('app/app.html#calls');
  return app;
}

test('a three-person call: video both ways for everyone, mute and leave', async (t) => {
  const lan = await PeopleLan.start({ alice: 1, bob: 1, carol: 1 });
  t.after(async () => assert.deepEqual(await lan.stop(), [], 'nothing left running'));
  const { alice1, bob1, carol1 } = lan.nodes;
  const { alice, bob, carol } = lan.email;
  for (const [node, others] of [[alice1, ['bob', 'carol']], [bob1, ['alice', 'carol']], [carol1, ['alice', 'bob']]]) {
    for (const other of others) await lan.verify(node, other);
  }
  await Promise.all([alice1, bob1, carol1].map((n) => n.startBrowser(FAKE_MEDIA)));

  // Alice starts it from her app page; the call opens in a tab of its own.
  const aliceApp = await callsPage(alice1);
  for (const email of [bob, carol]) {
    await waitFor(`${email} to be offered for a call`, async () =>
      (await aliceApp.locator(`#call-people input[value="${email}"]`).count()) === 1, { timeoutMs: 30_000, everyMs: 250 });
    await aliceApp.locator(`#call-people input[value="${email}"]`).check();
  }
  await aliceApp.fill('#call-title', 'standup');
  const [aliceCall] = await Promise.all([alice1.context.waitForEvent('page'), aliceApp.click('#call-new button[type="submit"]')]);

  /** Joins from the app's invitation list; returns the call tab. */
  const join = async (node) => {
    const app = await callsPage(node);
    const button = app.locator('#calls li[data-room] button.join');
    await waitFor(`${node.name}'s invitation`, async () => (await button.count()) === 1, { timeoutMs: 30_000, everyMs: 250 });
    assert.match(await app.locator('#calls li[data-room]').textContent(), new RegExp(alice));
    const [call] = await Promise.all([node.context.waitForEvent('page'), button.click()]);
    return call;
  };
  const bobCall = await join(bob1);
  const carolCall = await join(carol1);
  const calls = { alice: aliceCall, bob: bobCall, carol: carolCall };

  // Everyone decodes video from both others, and keeps doing so.
  for (const [name, page] of Object.entries(calls)) {
    const first = await waitFor(`${name} to decode video from two others`, async () => {
      const peers = await stats(page);
      return peers.length === 2 && peers.every((p) => p.framesDecoded > 0) && peers;
    }, { timeoutMs: 60_000, everyMs: 500 });
    // More frames from each, however long the machine takes to decode them.
    const later = await waitFor(`${name} to keep decoding both others`, async () => {
      const peers = await stats(page);
      return first.every((peer) => peers.find((p) => p.node === peer.node)?.framesDecoded > peer.framesDecoded) && peers;
    }, { timeoutMs: 15_000, everyMs: 250 });
    assert.deepEqual(later.map((p) => p.email).sort(), [alice, bob, carol].filter((e) => e !== lan.email[name]).sort());
  }

  // Alice mutes: Bob sees it on her tile.
  await aliceCall.click('#mute');
  const aliceId = (await alice1.status()).node_id;
  await waitFor('Alice shown muted to Bob', async () =>
    /muted/.test(await bobCall.locator(`#tile-${aliceId} figcaption`).textContent()), { timeoutMs: 15_000, everyMs: 250 });

  // Carol leaves: gone from the others' calls.
  await carolCall.click('#leave');
  for (const page of [aliceCall, bobCall]) {
    await waitFor('Carol gone from the call', async () => (await stats(page)).length === 1, { timeoutMs: 15_000, everyMs: 250 });
  }
});
