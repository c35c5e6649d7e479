// Issue 7, chat: three people on one LAN (Alice with two nodes, Bob and
// Carol with one each), verified by real email challenges. Messages go both
// ways with delivered and read receipts; Alice's history is the same on both
// of her nodes; a message written while Bob is stopped reaches him when he
// starts, from Alice's other node even though the one that wrote it is off;
// a group of three talks, and a member removed from it hears nothing more.
// Bob verified on one of Alice's devices is verified on the other too.
// In the browser: the unread count on the icon and in the popup, a
// notification while no app page is open, and the app's chat section shows,
// reads (a read receipt goes back) and sends. With both browsers up, chat
// goes over a data channel between them; with UDP blocked between the two
// machines, over the engines' link instead.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Control } from '../harness/control.js';
import { PeopleLan } from '../harness/people-lan.js';
import { waitFor } from '../harness/util.js';

const show = async (node, conversation) =>
  JSON.parse((await node.mailmesh('chat', 'show', conversation, '--json')).stdout);
const list = async (node) => JSON.parse((await node.mailmesh('chat', 'list', '--json')).stdout);
const texts = (conversation) => conversation.messages.map((m) => m.text);
/** Waits until `node` has a message with `text` in `conversation`; returns it. */
const arrives = (node, conversation, text) => waitFor(`"${text}" on ${node.name}`, async () =>
  (await show(node, conversation)).messages.find((m) => m.text === text), { timeoutMs: 30_000, everyMs: 250 });

test('chat: both ways, receipts, replicated history, offline delivery, groups', async (t) => {
  const lan = await PeopleLan.start({ alice: 2, bob: 1, carol: 1 });
  t.after(async () => assert.deepEqual(await lan.stop(), [], 'nothing left running'));
  const { alice1, alice2, bob1, carol1 } = lan.nodes;
  const { alice, bob, carol } = lan.email;

  await waitFor('Alice to see Bob', async () => (await PeopleLan.person(alice1, bob))?.devices.length === 1,
    { timeoutMs: 30_000, everyMs: 500 });
  await assert.rejects(alice1.mailmesh('chat', 'send', bob, 'too early'), /no verified device yet/,
    'nothing goes to a person not verified');

  await lan.verify(alice1, 'bob');
  // Verified on one of Alice's devices is verified on both.
  await waitFor('Bob verified on Alice\'s other device too', async () =>
    (await PeopleLan.person(alice2, bob))?.state === 'verified', { timeoutMs: 30_000, everyMs: 250 });
  await lan.verify(alice1, 'carol');
  await lan.verify(bob1, 'alice', 2);
  await lan.verify(bob1, 'carol');
  await lan.verify(carol1, 'alice', 2);
  await lan.verify(carol1, 'bob');

  // One to one, both ways.
  await alice1.mailmesh('chat', 'send', bob, 'hello', 'Bob');
  const got = await arrives(bob1, alice, 'hello Bob');
  assert.equal(got.author, alice);
  assert.equal(got.verified, true);
  await waitFor('the delivered receipt on Alice\'s node', async () =>
    (await show(alice1, bob)).messages[0].delivered.includes(bob), { timeoutMs: 30_000, everyMs: 250 });
  await bob1.mailmesh('chat', 'send', alice, 'hello Alice');
  await arrives(alice1, bob, 'hello Alice');
  await arrives(alice2, bob, 'hello Alice');
  assert.equal((await alice1.status()).chat_unread, 1, 'Bob\'s answer is unread');
  await alice1.mailmesh('chat', 'read', bob);
  assert.equal((await alice1.status()).chat_unread, 0);
  await waitFor('the read mark on Alice\'s other node', async () => (await alice2.status()).chat_unread === 0,
    { timeoutMs: 30_000, everyMs: 250 });
  await bob1.mailmesh('chat', 'read', alice);
  await waitFor('Bob\'s read receipt at Alice', async () =>
    (await show(alice1, bob)).messages[0].read.includes(bob), { timeoutMs: 30_000, everyMs: 250 });

  // While Bob is stopped: Alice writes from one node, that node stops too,
  // and her other node delivers when Bob is back.
  await bob1.mailmesh('stop');
  await alice1.mailmesh('chat', 'send', bob, 'while you were away');
  await waitFor('the pending message on Alice\'s other node', async () =>
    (await show(alice2, bob)).messages.find((m) => m.text === 'while you were away')?.pending.includes(bob),
  { timeoutMs: 30_000, everyMs: 250 });
  await alice1.mailmesh('stop');
  await bob1.startEngine();
  await arrives(bob1, alice, 'while you were away');
  await waitFor('delivery noted on Alice\'s other node', async () =>
    (await show(alice2, bob)).messages.find((m) => m.text === 'while you were away').delivered.includes(bob),
  { timeoutMs: 30_000, everyMs: 250 });
  await alice1.startEngine();
  const strip = (c) => c.messages.map(({ id, author, sent_at, text, pending, delivered }) =>
    ({ id, author, sent_at, text, pending, delivered }));
  await waitFor('the same history on both of Alice\'s nodes', async () =>
    JSON.stringify(strip(await show(alice1, bob))) === JSON.stringify(strip(await show(alice2, bob))),
  { timeoutMs: 30_000, everyMs: 250 });
  assert.deepEqual(texts(await show(alice1, bob)), ['hello Bob', 'hello Alice', 'while you were away'],
    'one order on every node');
  assert.deepEqual(texts(await show(bob1, alice)), ['hello Bob', 'hello Alice', 'while you were away']);

  // A group of three.
  const { stdout } = await alice1.mailmesh('chat', 'group', '--title', 'trip', bob, carol);
  const group = stdout.trim();
  await alice1.mailmesh('chat', 'send', group, 'group hello');
  await arrives(bob1, group, 'group hello');
  await arrives(carol1, group, 'group hello');
  const onCarol = (await list(carol1)).find((c) => c.id === group);
  assert.equal(onCarol.title, 'trip');
  assert.deepEqual(onCarol.members, [alice, bob, carol].sort());
  await carol1.mailmesh('chat', 'send', group, 'carol here');
  await arrives(alice1, group, 'carol here');
  await arrives(bob1, group, 'carol here');

  await alice1.mailmesh('chat', 'members', group, '--remove', carol);
  await waitFor('Carol to learn she was removed', async () =>
    !(await list(carol1)).find((c) => c.id === group).members.includes(carol), { timeoutMs: 30_000, everyMs: 250 });
  await alice1.mailmesh('chat', 'send', group, 'after Carol left');
  await arrives(bob1, group, 'after Carol left');
  // Fences, not a timer: what Alice's and Bob's nodes send Carol after the
  // group message travels behind it, so once both arrive it would have too.
  await alice1.mailmesh('chat', 'send', carol, 'fence from Alice');
  await bob1.mailmesh('chat', 'send', carol, 'fence from Bob');
  await arrives(carol1, alice, 'fence from Alice');
  await arrives(carol1, bob, 'fence from Bob');
  assert.ok(!texts(await show(carol1, group)).includes('after Carol left'), 'a removed member hears nothing more');
  await assert.rejects(carol1.mailmesh('chat', 'send', group, 'still here?'), /no longer a member/);

  // The extension: Bob's browser with no app page open, all read so far.
  await bob1.mailmesh('chat', 'read', group);
  await bob1.mailmesh('chat', 'read', alice);
  assert.equal((await bob1.status()).chat_unread, 0);
  await bob1.startBrowser();
  const worker = () => bob1.serviceWorker();
  await alice1.mailmesh('chat', 'send', bob, 'ping from Alice');
  await arrives(bob1, alice, 'ping from Alice');
  await waitFor('the unread count on Bob\'s icon', async () =>
    (await (await worker()).evaluate(() => chrome.action.getBadgeText({}))) === '1', { timeoutMs: 30_000, everyMs: 250 });
  const notifications = await waitFor('a notification for the message', async () => {
    const all = await (await worker()).evaluate(() => chrome.notifications.getAll());
    return Object.keys(all).length ? all : null;
  }, { timeoutMs: 30_000, everyMs: 250 });
  assert.ok(Object.keys(notifications).some((id) => id.startsWith('chat:')));
  const popup = await bob1.openPage('popup/popup.html');
  await waitFor('the unread count in the popup', async () =>
    (await popup.locator('#chat-unread').getAttribute('data-count')) === '1', { timeoutMs: 30_000, everyMs: 250 });
  await popup.close();

  const app = await bob1.openPage('app/app.html#chat');
  const direct = (await list(bob1)).find((c) => c.kind === 'direct' && c.members.includes(alice)).id;
  await app.locator(`#chat-list li[data-id="${direct}"]`).click();
  await waitFor('Alice\'s message in Bob\'s app', async () =>
    (await app.locator('#chat-messages li .text').allTextContents()).includes('ping from Alice'),
  { timeoutMs: 30_000, everyMs: 250 });
  await waitFor('the read receipt for the message Bob saw in the app', async () =>
    (await show(alice1, bob)).messages.find((m) => m.text === 'ping from Alice').read.includes(bob),
  { timeoutMs: 30_000, everyMs: 250 });
  await waitFor('the icon to clear', async () =>
    (await (await worker()).evaluate(() => chrome.action.getBadgeText({}))) === '', { timeoutMs: 30_000, everyMs: 250 });
  await app.fill('#chat-text', 'typed in the app');
  await app.click('#chat-compose button[type="submit"]');
  await arrives(alice1, bob, 'typed in the app');
  await waitFor('the receipt shown in Bob\'s app', async () =>
    (await app.locator('#chat-messages li.mine').last().getAttribute('data-state')) !== 'pending',
  { timeoutMs: 30_000, everyMs: 250 });

  // Alice's browser too: chat takes the data channel between the browsers.
  await alice1.startBrowser();
  const bobId = (await bob1.status()).node_id;
  const pathTo = async (node, id) => (await node.status()).peers.find((p) => p.id === id)?.path;
  await waitFor('a data channel from Alice to Bob', async () => (await pathTo(alice1, bobId)) === 'webrtc',
    { timeoutMs: 60_000, everyMs: 250 });
  const carried = async () => (await app.evaluate(() => chrome.runtime.sendMessage({ type: 'mesh.state' })))
    .peers.find((p) => p.email === alice && p.link === 'webrtc')?.carried?.received ?? 0;
  const before = await carried();
  await alice1.mailmesh('chat', 'send', bob, 'over the data channel');
  await arrives(bob1, alice, 'over the data channel');
  // Alice's other node may deliver its copy over the relay first (the
  // history replicates to it at once, and any node of the author
  // delivers); the copy on the channel still comes, a moment later.
  await waitFor('the message over the data channel', async () => await carried() > before,
    { timeoutMs: 30_000, everyMs: 100 });

  // No UDP between the two machines: the channel goes, the relay carries on.
  lan.lan.blockUdp(alice1.host, bob1.host);
  await waitFor('the channel to give up', async () => (await pathTo(alice1, bobId)) === 'relay',
    { timeoutMs: 60_000, everyMs: 250 });
  await alice1.mailmesh('chat', 'send', bob, 'over the relay');
  await arrives(bob1, alice, 'over the relay');

  // A long conversation: the app shows the newest hundred messages (what
  // each new one costs to show), and the earlier ones when asked.
  const control = await Control.connect(alice1.home);
  for (let i = 0; i < 100; i++) await control.request({ type: 'chat_send', conversation: bob, text: `batch ${i}` });
  control.close();
  await arrives(bob1, alice, 'batch 99');
  const whole = JSON.parse((await bob1.mailmesh('chat', 'show', alice, '--limit', '1000', '--json')).stdout);
  assert.ok(whole.messages.length > 100 && whole.earlier === 0);
  const shown = app.locator('#chat-messages li');
  await waitFor('the newest hundred in the app', async () =>
    (await shown.last().locator('.text').textContent()) === 'batch 99', { timeoutMs: 30_000, everyMs: 250 });
  assert.equal(await shown.count(), 100);
  assert.equal(await shown.first().locator('.text').textContent(), whole.messages[whole.messages.length - 100].text);
  assert.equal(await app.locator('#chat-earlier').textContent(), `Show earlier messages (${whole.messages.length - 100} more)`);
  await app.click('#chat-earlier');
  await waitFor('every message in the app', async () => (await shown.count()) === whole.messages.length,
    { timeoutMs: 30_000, everyMs: 250 });
  assert.equal(await shown.first().locator('.text').textContent(), whole.messages[0].text);
  assert.ok(await app.locator('#chat-earlier').isHidden());
});
