// Issue 4, end to end against a real Postfix + Dovecot: onboarding through
// the page, the confirmation mail, the link, and every refusal.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { Cluster } from '../harness/cluster.js';
import { MailServer } from '../harness/mail-server.js';
import { fetchInbox, unfoldQuotedPrintable } from '../harness/mail-client.js';
import { mailmeshBin } from '../harness/paths.js';
import { processesUsing } from '../harness/processes.js';
import { runCommand } from '../harness/idle-time.js';
import { tempDir, waitFor } from '../harness/util.js';

/** Waits for the confirmation mail for `device` and returns its link and code. */
async function confirmationMail(mail, user, password, device) {
  const body = await waitFor('the confirmation mail', async () => {
    const messages = await fetchInbox(mail.imapPort, user, password);
    return messages.map(unfoldQuotedPrintable).reverse().find((m) => m.includes(`Subject: Confirm mailmesh on ${device}`));
  });
  return {
    link: /http:\/\/127\.0\.0\.1:\d+\/confirm\/[0-9a-f]{64}/.exec(body)[0],
    code: /^ {4}([a-z0-9]{4}-[a-z0-9]{4})$/m.exec(body)[1],
  };
}

/** A home with an engine started from the CLI, for tests without a browser. */
async function cliNode(dir, env = {}) {
  const home = path.join(dir, 'home');
  const mm = (...args) => runCommand(mailmeshBin(), ['--home', home, ...args], { env: { ...process.env, ...env } });
  await mm('run', '--detach');
  return { home, mm, stop: () => mm('stop').catch(() => {}) };
}

function initArgs(mail, user, passwordFile, extra = []) {
  return ['init', '--email', user, '--imap-host', '127.0.0.1', '--imap-port', String(mail.imapPort), '--imap-security', 'plain',
    '--smtp-host', '127.0.0.1', '--smtp-port', String(mail.smtpPort), '--smtp-security', 'plain', '--password-file', passwordFile, ...extra];
}

const failure = (promise) => promise.then(() => assert.fail('expected the command to fail'), (e) => `${e.stdout}${e.stderr}`);

test('onboarding through the page: wrong password refused, mail sent, link confirms, popup shows it', async (t) => {
  const cluster = await Cluster.up({ nodes: 1 });
  t.after(async () => assert.deepEqual(await cluster.down(), []));
  const [node] = cluster.nodes;
  const { mail } = cluster;
  const page = await node.openPage('onboarding/onboarding.html');
  await waitFor('the host connection', async () => (await page.locator('#conn-state').textContent()) === 'connected');

  const fill = async (password) => {
    await page.fill('input[name=email]', cluster.owner);
    await page.fill('input[name=device_name]', 'laptop');
    await page.fill('input[name=imap_host]', '127.0.0.1');
    await page.fill('input[name=imap_port]', String(mail.imapPort));
    await page.selectOption('select[name=imap_security]', 'plain');
    await page.fill('input[name=smtp_host]', '127.0.0.1');
    await page.fill('input[name=smtp_port]', String(mail.smtpPort));
    await page.selectOption('select[name=smtp_security]', 'plain');
    await page.fill('input[name=password]', password);
  };

  // A wrong password: both checks say so, saving is refused, nothing changes.
  await fill('not-the-password');
  await page.click('#test-connection');
  await waitFor('the login checks', async () => (await page.locator('#checks li').count()) === 2);
  for (const server of ['imap', 'smtp']) {
    const item = page.locator(`#checks li[data-server=${server}]`);
    assert.equal(await item.getAttribute('data-ok'), 'false');
    assert.match(await item.textContent(), /wrong password/);
  }
  await page.click('#save-account');
  await waitFor('the refusal', async () => /wrong password/.test(await page.locator('#account-result').textContent()));
  let status = await node.status();
  assert.equal(status.enrollment, 'none');
  assert.equal(status.account_email, null);
  await assert.rejects(fs.access(path.join(node.home, 'mail-password')), 'no password stored');

  // The right password: checks pass, the mail goes out.
  await fill(cluster.ownerPassword);
  await page.click('#test-connection');
  await waitFor('both checks to pass', async () => (await page.locator('#checks li[data-ok=true]').count()) === 2);
  await page.click('#save-account');
  await waitFor('the mail to be sent', async () => /confirmation mail was sent/.test(await page.locator('#account-result').textContent()));
  const { link } = await confirmationMail(mail, cluster.owner, cluster.ownerPassword, 'laptop');
  status = await node.status();
  assert.equal(status.enrollment, 'awaiting_confirmation');
  const saved = await fs.readFile(path.join(node.home, 'account.json'), 'utf8');
  assert.doesNotMatch(saved, new RegExp(cluster.ownerPassword), 'the password is not in the account file');
  assert.equal((await fs.stat(path.join(node.home, 'mail-password'))).mode & 0o777, 0o600);

  // The owner opens the link on this device and confirms.
  const tab = await node.context.newPage();
  await tab.goto(link);
  await tab.click('#confirm');
  await waitFor('the confirmation page', async () => (await tab.locator('#result').getAttribute('data-ok')) === 'true');

  const popup = await node.openPage('popup/popup.html');
  await waitFor('the popup to show the node confirmed', async () => (await popup.locator('#enrollment').textContent()) === 'confirmed');
  status = await node.status();
  assert.equal(status.enrolled, true);
  assert.match(status.network_id, /^[a-z2-7]{32}$/);
  assert.deepEqual(status.roster.map((m) => [m.node_id, m.device_name, m.signed_by]), [[status.node_id, 'laptop', status.node_id]]);
  for (const secret of ['network.key', 'roster.bin', 'node.key']) {
    assert.equal((await fs.stat(path.join(node.home, secret))).mode & 0o777, 0o600, secret);
  }

  // The app's nodes page lists this device as the only member.
  const app = await node.openPage('app/app.html#nodes');
  await waitFor('the roster on the nodes page', async () => (await app.locator('#members li').count()) === 1);
  assert.match(await app.locator('#members li').textContent(), /laptop.*this device/);

  // The same link again: refused, and nothing changes.
  await tab.goto(link);
  await tab.click('#confirm');
  await waitFor('the refusal page', async () => (await tab.locator('#result').getAttribute('data-ok')) === 'false');
  assert.match(await tab.locator('#result').textContent(), /already confirmed/);
  assert.equal((await node.status()).network_id, status.network_id);

  // Logs never hold the password.
  for (const log of ['engine.log', 'native-host.log']) {
    const text = await fs.readFile(path.join(node.home, 'logs', log), 'utf8');
    assert.ok(!text.includes(cluster.ownerPassword), `${log} has no password`);
  }
});

test('expired tokens, too many wrong codes and foreign pages are refused without any state change', async (t) => {
  const dir = await tempDir('mailmesh-refusals-');
  await fs.chmod(dir, 0o755);
  const mail = await MailServer.start(path.join(dir, 'mail'));
  t.after(() => mail.destroy());
  const owner = await mail.addUser('owner', 'secret-pw');
  const passwordFile = path.join(dir, 'pw');
  await fs.writeFile(passwordFile, 'secret-pw\n', { mode: 0o600 });

  // Expired: a 2-second confirmation window, then the code is too late.
  const quick = await cliNode(path.join(dir, 'quick'), { MAILMESH_CONFIRM_TTL_SECS: '2' });
  t.after(quick.stop);
  await quick.mm(...initArgs(mail, owner, passwordFile, ['--device-name', 'quick']));
  const expired = await confirmationMail(mail, owner, 'secret-pw', 'quick');
  await new Promise((r) => setTimeout(r, 2500));
  assert.match(await failure(quick.mm('confirm', expired.code)), /expired; ask for a new confirmation mail/);
  assert.equal(JSON.parse((await quick.mm('status', '--json')).stdout).enrolled, false);

  // Wrong codes use up the attempts; then even the right code is refused.
  const slow = await cliNode(path.join(dir, 'slow'));
  t.after(slow.stop);
  await slow.mm(...initArgs(mail, owner, passwordFile, ['--device-name', 'slow']));
  const { code, link } = await confirmationMail(mail, owner, 'secret-pw', 'slow');
  for (const left of [4, 3, 2, 1]) {
    assert.match(await failure(slow.mm('confirm', 'zzzz-zzzz')), new RegExp(`wrong code; ${left} attempts left`));
  }
  assert.match(await failure(slow.mm('confirm', 'zzzz-zzzz')), /too many wrong codes/);
  assert.match(await failure(slow.mm('confirm', code)), /too many wrong codes/);
  const status = JSON.parse((await slow.mm('status', '--json')).stdout);
  assert.equal(status.enrolled, false);
  assert.equal(status.enrollment, 'awaiting_confirmation');

  // The loopback endpoint refuses requests from other origins or hosts.
  const { port, pathname } = new URL(link);
  const post = (headers) => new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: pathname, method: 'POST', headers }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('error', reject);
    req.end();
  });
  assert.equal(await post({ Origin: 'http://evil.example' }), 403, 'a web page cannot post the confirmation');
  assert.equal(await post({ Host: 'evil.example' }), 403, 'a rebound DNS name is refused');
});

test('TLS with a private CA: refused as untrusted without it, accepted with --tls-ca', async (t) => {
  const dir = await tempDir('mailmesh-tls-');
  await fs.chmod(dir, 0o755);
  const mail = await MailServer.start(path.join(dir, 'mail'), { tls: true });
  t.after(() => mail.destroy());
  const owner = await mail.addUser('owner', 'tls-pw');
  const passwordFile = path.join(dir, 'pw');
  await fs.writeFile(passwordFile, 'tls-pw', { mode: 0o600 });
  const node = await cliNode(path.join(dir, 'node'));
  t.after(node.stop);
  const args = ['init', '--email', owner, '--imap-host', '127.0.0.1', '--imap-port', String(mail.imapsPort), '--imap-security', 'tls',
    '--smtp-host', '127.0.0.1', '--smtp-port', String(mail.smtpsPort), '--smtp-security', 'tls', '--password-file', passwordFile, '--device-name', 'tls-node'];

  assert.match(await failure(node.mm(...args)), /certificate of 127\.0\.0\.1 is not trusted/);
  assert.equal(JSON.parse((await node.mm('status', '--json')).stdout).account_email, null);

  await node.mm(...args, '--tls-ca', mail.caFile);
  await confirmationMail(mail, owner, 'tls-pw', 'tls-node');
  assert.equal(JSON.parse((await node.mm('status', '--json')).stdout).enrollment, 'awaiting_confirmation');
});

test('a server that cannot check passwords just now is not called a wrong password', async (t) => {
  const dir = await tempDir('mailmesh-auth-down-');
  await fs.chmod(dir, 0o755);
  const mail = await MailServer.start(path.join(dir, 'mail'));
  const owner = await mail.addUser('owner', 'secret-pw');
  const passwordFile = path.join(dir, 'pw');
  await fs.writeFile(passwordFile, 'secret-pw\n', { mode: 0o600 });
  const node = await cliNode(path.join(dir, 'node'));
  // One hook, in order: the engine stops while its home still exists.
  t.after(async () => {
    await node.stop();
    await mail.destroy();
    assert.deepEqual(processesUsing(dir), [], 'nothing left running');
    await fs.rm(dir, { recursive: true, force: true });
  });
  // An address whose provider mailmesh does not know needs its servers.
  assert.match(await failure(node.mm('init', '--email', owner, '--password-file', passwordFile)),
    /could not find the mail servers of mailmesh\.test: give --imap-host and --smtp-host/);

  // Dovecot's auth service cannot read its user database: it reports a
  // temporary failure ("[UNAVAILABLE] Temporary authentication failure").
  const users = path.join(mail.root, 'dovecot/users');
  await fs.chmod(users, 0);
  const said = await failure(node.mm(...initArgs(mail, owner, passwordFile, ['--device-name', 'laptop'])));
  assert.match(said, /could not check the password just now/);
  assert.doesNotMatch(said, /wrong password/);

  // Back: the same password works.
  await fs.chmod(users, 0o600);
  await node.mm(...initArgs(mail, owner, passwordFile, ['--device-name', 'laptop']));
  assert.equal(JSON.parse((await node.mm('status', '--json')).stdout).enrollment, 'awaiting_confirmation');
});

test('onboarding fills in the servers of a provider mailmesh knows, and says what it wants', async (t) => {
  const cluster = await Cluster.up({ nodes: 1 });
  t.after(async () => assert.deepEqual(await cluster.down(), []));
  const page = await cluster.nodes[0].openPage('onboarding/onboarding.html');
  await waitFor('the host connection', async () => (await page.locator('#conn-state').textContent()) === 'connected');
  await page.fill('input[name=smtp_port]', '2525'); // typed by the owner: kept
  await page.fill('input[name=email]', 'someone@gmail.com');
  await page.press('input[name=email]', 'Tab');
  await waitFor('the servers filled in', async () => (await page.inputValue('input[name=imap_host]')) === 'imap.gmail.com',
    { timeoutMs: 30_000, everyMs: 250 });
  assert.equal(await page.inputValue('input[name=imap_port]'), '993');
  assert.equal(await page.inputValue('select[name=imap_security]'), 'tls');
  assert.equal(await page.inputValue('input[name=smtp_host]'), 'smtp.gmail.com');
  assert.equal(await page.inputValue('input[name=smtp_port]'), '2525', 'what the owner typed stays');
  assert.match(await page.locator('#provider-note').textContent(), /Gmail needs an app password/);
});
