// Issue 16: mailmesh's own mails in a folder of its own, and a server
// that will not have that folder (every folder under `INBOX.`, as on
// Courier and some hosts): the mails then come to the inbox, and the node
// works as before.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { foundedNode } from '../harness/owner.js';
import { fetchInbox } from '../harness/mail-client.js';
import { waitFor } from '../harness/util.js';

const REFUSED = "the server refuses mailmesh's folder";

test('a server that will not have mailmesh\'s folder gets its mails in the inbox, and the node is founded all the same', async (t) => {
  const { mail, node, owner, password } = await foundedNode(t, 'mailmesh-no-folder-', { inboxNamespace: true });
  assert.equal((await node.status()).enrollment, 'enrolled');
  const roster = (await fetchInbox(mail.imapPort, owner, password)).find((m) => m.includes('X-Mailmesh: roster/1'));
  assert.ok(roster, 'the roster came to the inbox');
  assert.match(roster, /^X-Mailmesh-Copy: Mailmesh/m, 'marked, so no node takes it for an older one');

  // The folder's watch said why once, and stopped asking.
  const log = () => fs.readFile(path.join(node.home, 'logs/engine.log'), 'utf8');
  await waitFor('the refusal in the log', async () => (await log()).includes(REFUSED));
  await node.mailmesh('mail', 'sync');
  assert.equal((await log()).split(REFUSED).length - 1, 1, 'said once');
});
