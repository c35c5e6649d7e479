// `scripts/demo.sh`: a local mail server and three mailmesh nodes, each on
// its own machine of a test LAN, confirmed by mail; an attachment mailed to
// the owner shows up in every node's drive. Each node's drive page is saved
// as a screenshot in demo-output/; with MAILMESH_SHOW_BROWSERS (demo.sh sets
// it when there is a display) the browsers are windows, left open for a
// while at the end. With --keep, the nodes stay up until Ctrl-C (their
// DevTools endpoints are printed). With --pictures, it also takes the
// README's pictures (docs/pictures/): a new device's onboarding after
// typing an address, a node's popup, and a node's drive.

import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { LanMesh } from '../harness/lan-mesh.js';
import { MeshNode } from '../harness/node.js';
import { sendMail } from '../harness/mail-client.js';
import { REPO } from '../harness/paths.js';
import { waitFor } from '../harness/util.js';

const keep = process.argv.includes('--keep');
const pictures = process.argv.includes('--pictures');
const picturesDir = path.join(REPO, 'docs/pictures');
const windows = Boolean(process.env.MAILMESH_SHOW_BROWSERS);
const LOOK_SECONDS = 30;
const out = path.join(REPO, 'demo-output');
const step = (text) => console.log(`\n▶ ${text}`);

step('starting a mail server and three nodes, and confirming them through the mailbox (about a minute)');
// A fourth machine stays free for the new device of the pictures.
const mesh = await LanMesh.start(3, 4);
try {
  for (const node of mesh.nodes) {
    const status = await node.status();
    console.log(`  ${node.name}: ${status.fingerprint} on ${node.ip}, ${status.enrollment}`);
  }
  step(`mailing an attachment to ${mesh.owner}`);
  const text = `mailmesh demo, ${new Date().toISOString()}\n${crypto.randomBytes(600_000).toString('base64')}\n`;
  await sendMail(mesh.mail.smtpPort, {
    from: 'friend@example.org',
    to: mesh.owner,
    message: ['From: friend@example.org', `To: ${mesh.owner}`, 'Subject: holiday notes', 'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="b"', '', '--b', 'Content-Type: text/plain', '', 'here you go', '--b',
      'Content-Type: text/plain; name="notes.txt"', 'Content-Disposition: attachment; filename="notes.txt"', '',
      text, '--b--', ''].join('\r\n'),
  });
  step('waiting for it in every node\'s drive');
  await fs.mkdir(out, { recursive: true });
  for (const node of mesh.nodes) {
    const page = await node.openPage('app/app.html#drive');
    await waitFor(`notes.txt on ${node.name}`, () => page.locator('li.file', { hasText: 'notes.txt' }).count(),
      { timeoutMs: 60_000, everyMs: 500 });
    const shot = path.join(out, `${node.name}-drive.png`);
    await page.screenshot({ path: shot, fullPage: true });
    const files = JSON.parse((await node.mailmesh('files', 'list', '--json')).stdout);
    const file = files.find((f) => f.name === 'notes.txt');
    console.log(`  ${node.name}: notes.txt, ${file.size} bytes, health ${file.health.state} ${file.health.fragments_present}/${file.health.fragments_total} — ${path.relative(REPO, shot)}`);
  }
  if (pictures) await takePictures();
  if (keep) {
    step('the nodes stay up; Ctrl-C stops everything');
    for (const node of mesh.nodes) console.log(`  ${node.name}: DevTools ${node.cdpEndpoint}, home ${node.home}`);
    await new Promise((resolve) => process.once('SIGINT', resolve));
  } else if (windows) {
    step(`the windows close in ${LOOK_SECONDS} s (scripts/demo.sh --keep keeps them)`);
    await new Promise((resolve) => setTimeout(resolve, LOOK_SECONDS * 1000));
  }
} finally {
  step('stopping');
  await mesh.stop();
}

/** The README's pictures, each of a page at a fixed size. */
async function takePictures() {
  step(`taking the README's pictures into ${path.relative(REPO, picturesDir)}/`);
  await fs.mkdir(picturesDir, { recursive: true });
  const save = async (page, name) => {
    const file = path.join(picturesDir, `${name}.png`);
    await page.screenshot({ path: file });
    console.log(`  ${path.relative(REPO, file)}`);
  };
  // The popup and the drive first: a device not in the network, once it
  // has come and gone, shows among the nodes.
  const [node] = mesh.nodes;
  const popup = await node.openPage('popup/popup.html');
  await popup.setViewportSize({ width: 400, height: 640 });
  await waitFor('the other nodes in the popup', async () => (await popup.locator('#peers li').count()) >= 2);
  await save(popup, 'popup');
  const drive = await node.openPage('app/app.html#drive');
  await drive.setViewportSize({ width: 1000, height: 420 });
  await waitFor('notes.txt in the drive', () => drive.locator('li.file', { hasText: 'notes.txt' }).count());
  await save(drive, 'drive');
  // A new device: the address alone fills in the servers and offers the provider's sign-in.
  const laptop = await MeshNode.start({ name: 'new-laptop', dir: path.join(mesh.dir, 'new-laptop'), lan: mesh.lan, host: 3 });
  try {
    const onboarding = await laptop.openPage('onboarding/onboarding.html');
    await onboarding.setViewportSize({ width: 900, height: 1000 });
    await waitFor('the host connection', async () => (await onboarding.locator('#conn-state').textContent()) === 'connected');
    await onboarding.fill('input[name=email]', 'you@gmail.com');
    await onboarding.press('input[name=email]', 'Tab');
    await waitFor('the servers filled in', async () => (await onboarding.inputValue('input[name=imap_host]')) === 'imap.gmail.com');
    await save(onboarding, 'onboarding');
  } finally {
    await laptop.stop();
  }
}
