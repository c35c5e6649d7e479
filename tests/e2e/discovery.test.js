// Issue 16, end to end: an address alone finds its servers on a test LAN
// with its own DNS server (A, SRV and MX records) and autoconfig documents
// over HTTPS and plain HTTP, against a real Postfix + Dovecot with TLS; and
// signing in with OAuth 2 through an issuer on that LAN, Dovecot checking
// the access tokens (its oauth2 passdb, local JWT validation).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Lan } from '../harness/lan.js';
import { DnsServer } from '../harness/dns-server.js';
import { AutoconfigServer, autoconfigXml } from '../harness/autoconfig-server.js';
import { MailServer, MAIL_DOMAIN } from '../harness/mail-server.js';
import { fetchInbox, unfoldQuotedPrintable } from '../harness/mail-client.js';
import { Control } from '../harness/control.js';
import { TokenIssuer } from '../harness/token-issuer.js';
import { MeshNode } from '../harness/node.js';
import { mailmeshBin } from '../harness/paths.js';
import { processesUsing } from '../harness/processes.js';
import { runCommand } from '../harness/idle-time.js';
import { tempDir, waitFor } from '../harness/util.js';

let dir, lan, mail, dns, web, issuer, owner;
const PASSWORD = 'found-pw';

before(async () => {
  dir = await tempDir('mailmesh-discovery-');
  await fs.chmod(dir, 0o755);
  lan = Lan.create(1);
  const oauthKey = crypto.randomBytes(32);
  mail = await MailServer.start(path.join(dir, 'mail'), { tls: true, host: lan.gateway, oauthKey });
  owner = await mail.addUser('owner', PASSWORD);
  // Access tokens live 20 seconds: the engine renews them every 10, so a
  // token in use has at least 10 seconds left even on a stalled machine.
  issuer = await TokenIssuer.start({ host: lan.gateway, tls: mail.tls, hmacKey: oauthKey, clientId: 'mailmesh-test', lifetimeS: 20 });
  const signIn = `https://id.${MAIL_DOMAIN}:${issuer.port}`;
  const at = (name) => ({ type: 'A', name, data: lan.gateway });
  const imaps = { host: `imap.${MAIL_DOMAIN}`, port: mail.imapsPort, socketType: 'SSL' };
  const smtps = { host: `smtp.${MAIL_DOMAIN}`, port: mail.smtpsPort, socketType: 'SSL' };
  dns = await DnsServer.start(lan.gateway, [
    at(`autoconfig.${MAIL_DOMAIN}`), at(`imap.${MAIL_DOMAIN}`), at(`smtp.${MAIL_DOMAIN}`), at(`id.${MAIL_DOMAIN}`),
    // srv.test: only SRV records (RFC 6186, RFC 8314).
    { type: 'SRV', name: '_imaps._tcp.srv.test', data: { priority: 0, weight: 1, port: mail.imapsPort, target: `imap.${MAIL_DOMAIN}` } },
    { type: 'SRV', name: '_submissions._tcp.srv.test', data: { priority: 0, weight: 1, port: mail.smtpsPort, target: `smtp.${MAIL_DOMAIN}` } },
    // mx.test: its mail exchanger's domain has a document, over plain HTTP only.
    { type: 'MX', name: 'mx.test', data: { preference: 10, exchange: 'mx1.hoster.test' } },
    at('autoconfig.hoster.test'),
  ]);
  lan.useDns(lan.gateway);
  web = await AutoconfigServer.start(lan.gateway, mail.tls, {
    https: { [`autoconfig.${MAIL_DOMAIN}/mail/config-v1.1.xml`]: autoconfigXml({ name: 'Test Mail', imap: imaps, smtp: smtps,
      oauth: { issuer: `id.${MAIL_DOMAIN}`, scope: 'mail offline_access', authURL: `${signIn}/authorize`, tokenURL: `${signIn}/token` } }) },
    http: { 'autoconfig.hoster.test/mail/config-v1.1.xml': autoconfigXml({ name: 'Hoster', imap: imaps, smtp: smtps }) },
  });
});

after(async () => {
  await issuer?.stop();
  await web?.stop();
  await dns?.stop();
  await mail?.destroy();
  lan?.destroy();
  assert.deepEqual(processesUsing(dir), [], 'nothing left running');
  await fs.rm(dir, { recursive: true, force: true });
});

/** A home on the LAN host with an engine started from the CLI there. */
async function lanNode(t, name) {
  const home = path.join(dir, name);
  const mm = (...args) => runCommand(...lan.exec(0, [mailmeshBin(), '--home', home, ...args]));
  await mm('run', '--detach');
  t.after(() => mm('stop').catch(() => {}));
  const control = await Control.connect(home);
  t.after(() => control.close());
  return { home, mm, control };
}

test('init with the address alone finds the servers in the autoconfig document over HTTPS and enrols', async (t) => {
  const node = await lanNode(t, 'cli');
  const passwordFile = path.join(dir, 'pw');
  await fs.writeFile(passwordFile, PASSWORD, { mode: 0o600 });
  const { stdout } = await node.mm('init', '--email', owner, '--password-file', passwordFile, '--tls-ca', mail.caFile,
    '--device-name', 'found-node');
  assert.match(stdout, new RegExp(`Test Mail's servers from the autoconfig document at https://autoconfig\\.${MAIL_DOMAIN}/mail/config-v1\\.1\\.xml: ` +
    `IMAP imap\\.${MAIL_DOMAIN}:${mail.imapsPort} \\(Tls\\), SMTP smtp\\.${MAIL_DOMAIN}:${mail.smtpsPort} \\(Tls\\)`));
  // The engine logged in and sent over the servers found: the mail is there.
  await waitFor('the confirmation mail', async () => (await fetchInbox(mail.imapPort, owner, PASSWORD))
    .map(unfoldQuotedPrintable).some((m) => m.includes('Subject: Confirm mailmesh on found-node')));
  const status = JSON.parse((await node.mm('status', '--json')).stdout);
  assert.equal(status.enrollment, 'awaiting_confirmation');
});

test('an HTTPS document from a CA not trusted is not believed, and nothing else is guessed', async (t) => {
  const { control } = await lanNode(t, 'untrusted');
  const found = await control.request({ type: 'account_discover', email: owner });
  assert.deepEqual([found.imap, found.smtp, found.source], [null, null, null]);
  assert.ok(web.requests.includes(`http://autoconfig.${MAIL_DOMAIN}/mail/config-v1.1.xml`), 'plain HTTP was tried after HTTPS');
});

test('SRV records give the servers, and both logins work with them', async (t) => {
  const { control } = await lanNode(t, 'srv');
  const found = await control.request({ type: 'account_discover', email: 'someone@srv.test', tls_ca: mail.caFile });
  assert.equal(found.source, 'the SRV records of srv.test');
  assert.deepEqual(found.imap, { host: `imap.${MAIL_DOMAIN}`, port: mail.imapsPort, security: 'tls' });
  assert.deepEqual(found.smtp, { host: `smtp.${MAIL_DOMAIN}`, port: mail.smtpsPort, security: 'tls' });
  const checks = await control.request({ type: 'account_test', account: {
    email: owner, user: owner, imap: found.imap, smtp: found.smtp, tls_ca: mail.caFile, password: PASSWORD,
  } });
  assert.deepEqual([checks.imap.ok, checks.smtp.ok], [true, true], JSON.stringify(checks));
});

test('the mail exchanger leads to its domain\'s document, found over plain HTTP and flagged', async (t) => {
  const { control } = await lanNode(t, 'mx');
  const found = await control.request({ type: 'account_discover', email: 'someone@mx.test' });
  assert.equal(found.provider, 'Hoster');
  assert.equal(found.imap.host, `imap.${MAIL_DOMAIN}`);
  assert.match(found.source, /autoconfig\.hoster\.test.*plain HTTP, which anyone on the network can forge/);
  assert.ok(dns.asked.includes('MX mx.test'), dns.asked.join(', '));
});

test('onboarding fills in what the address\'s domain publishes, and says where it came from', async (t) => {
  const node = await MeshNode.start({ name: 'onboard', dir: path.join(dir, 'browser'), lan, host: 0 });
  t.after(() => node.stop());
  const page = await node.openPage('onboarding/onboarding.html');
  await waitFor('the host connection', async () => (await page.locator('#conn-state').textContent()) === 'connected');
  await page.click('summary:has-text("Self-hosted server")');
  await page.fill('input[name=tls_ca]', mail.caFile);
  await page.fill('input[name=email]', owner);
  await page.press('input[name=email]', 'Tab');
  await waitFor('the servers filled in', async () => (await page.inputValue('input[name=imap_host]')) === `imap.${MAIL_DOMAIN}`,
    { timeoutMs: 60_000, everyMs: 250 });
  assert.equal(await page.inputValue('input[name=imap_port]'), String(mail.imapsPort));
  assert.equal(await page.inputValue('input[name=smtp_host]'), `smtp.${MAIL_DOMAIN}`);
  assert.equal(await page.inputValue('select[name=smtp_security]'), 'tls');
  assert.match(await page.locator('#provider-note').textContent(),
    new RegExp(`Test Mail: its servers are filled in below, from the autoconfig document at https://autoconfig\\.${MAIL_DOMAIN}`));
});

const failure = (promise) => promise.then(() => assert.fail('expected the command to fail'), (e) => `${e.stdout}${e.stderr}`);

/** Runs a command on the LAN host, its output collected as it comes. */
function started(argv, env = {}) {
  const [command, args] = lan.exec(0, argv);
  const child = spawn(command, args, { env: { ...process.env, ...env } });
  const run = { output: '', exited: new Promise((resolve) => child.on('exit', resolve)) };
  child.stdout.on('data', (d) => { run.output += d; });
  child.stderr.on('data', (d) => { run.output += d; });
  return run;
}

test('init --oauth signs in through the issuer, logs in with the token (IMAP OAUTHBEARER, SMTP XOAUTH2), renews it, and asks to sign in again once revoked', async (t) => {
  const ann = await mail.addUser('ann', 'not-used-by-mailmesh');
  await new Promise((resolve) => setTimeout(resolve, 1_100)); // Dovecot rereads its users a second later
  const { home, mm } = await lanNode(t, 'oauth');
  const init = ['init', '--email', ann, '--oauth', '--no-browser', '--tls-ca', mail.caFile, '--device-name', 'oauth-node'];

  // No client id registered for this issuer: said plainly, nothing saved.
  assert.match(await failure(mm(...init)), new RegExp(`no client id for id\\.${MAIL_DOMAIN}.*oauth-clients/id\\.${MAIL_DOMAIN}\\.json`, 's'));
  await fs.mkdir(path.join(home, 'oauth-clients'));
  await fs.writeFile(path.join(home, 'oauth-clients', `id.${MAIL_DOMAIN}.json`), JSON.stringify({ client_id: 'mailmesh-test' }));

  // init prints where to sign in and waits; a browser on that host goes there.
  const signingIn = started([mailmeshBin(), '--home', home, ...init]);
  const url = await waitFor('the sign-in address', () => /https:\/\/id\.\S+\/authorize\?\S+/.exec(signingIn.output)?.[0]);
  const browser = started([process.execPath, '-e', 'fetch(process.argv[1]).then(async (r) => console.log(r.status, await r.text()))', url],
    { NODE_EXTRA_CA_CERTS: mail.caFile });
  assert.equal(await browser.exited, 0, browser.output);
  assert.match(browser.output, /^200 .*Signed in as ann@/s, 'the page the browser comes back to');
  assert.equal(await signingIn.exited, 0, signingIn.output);
  assert.match(signingIn.output, /A confirmation mail was sent to ann@/);
  assert.deepEqual(issuer.grants, ['authorization_code']);

  // The confirmation went out over SMTP with the access token (XOAUTH2).
  await waitFor('the confirmation mail', async () => (await fetchInbox(mail.imapPort, ann, 'not-used-by-mailmesh'))
    .some((m) => m.includes('Subject: Confirm mailmesh on oauth-node')));
  // IMAP used OAUTHBEARER, which this Dovecot's greeting offers.
  assert.match(await mail.logs(), new RegExp(`Login: user=<${ann}>, method=OAUTHBEARER`));
  const saved = await fs.readFile(path.join(home, 'mail-password'), 'utf8');
  assert.ok(!saved.includes('.'), 'what is kept is the refresh token, not a JWT access token');
  assert.equal(((await fs.stat(path.join(home, 'mail-password'))).mode & 0o777), 0o600);

  // Renewed before it expires: after the first token is long dead, IMAP
  // still logs in with the current one.
  await waitFor('three renewals', () => issuer.grants.filter((g) => g === 'refresh_token').length >= 3, { timeoutMs: 120_000 });
  assert.match((await mm('mail', 'sync')).stdout, /read \d+ new messages/);

  // The owner revokes mailmesh's access: the next renewal is refused, and
  // the node says to sign in again.
  issuer.revokeAll();
  await waitFor('"sign in again"', async () => JSON.parse((await mm('status', '--json')).stdout).sign_in_again === true,
    { timeoutMs: 60_000 });
});

test('in the browser: onboarding signs in with the provider in a tab, and the popup signs in again once revoked', async (t) => {
  const bea = await mail.addUser('bea', 'not-used-by-mailmesh');
  await new Promise((resolve) => setTimeout(resolve, 1_100)); // Dovecot rereads its users a second later
  // The test issuer's page has a certificate from the test CA, which this
  // browser does not know (the engine trusts it through --tls-ca).
  const node = await MeshNode.start({ name: 'signin', dir: path.join(dir, 'signin'), lan, host: 0, args: ['--ignore-certificate-errors'] });
  t.after(() => node.stop());
  await fs.mkdir(path.join(node.home, 'oauth-clients'), { recursive: true });
  await fs.writeFile(path.join(node.home, 'oauth-clients', `id.${MAIL_DOMAIN}.json`), JSON.stringify({ client_id: 'mailmesh-test' }));
  const status = async () => JSON.parse((await node.mailmesh('status', '--json')).stdout);
  /** Clicks `button` and waits for the tab it opens to come back from the issuer. */
  const signInTab = async (button) => {
    const [tab] = await Promise.all([node.context.waitForEvent('page'), button.click()]);
    await tab.waitForSelector('#result', { timeout: 60_000 });
    assert.equal(await tab.getAttribute('#result', 'data-ok'), 'true', await tab.textContent('#result'));
    return tab.close();
  };

  const page = await node.openPage('onboarding/onboarding.html');
  await waitFor('the host connection', async () => (await page.locator('#conn-state').textContent()) === 'connected');
  await page.click('summary:has-text("Self-hosted server")');
  await page.fill('input[name=tls_ca]', mail.caFile);
  await page.fill('input[name=device_name]', 'browser-node');
  await page.fill('input[name=email]', bea);
  await page.press('input[name=email]', 'Tab');
  await page.waitForSelector('#sign-in-row:not([hidden])', { timeout: 60_000 });
  assert.equal(await page.textContent('#sign-in'), 'Sign in with Test Mail');
  await signInTab(page.locator('#sign-in'));
  await page.waitForSelector('#confirm-section:not([hidden])', { timeout: 60_000 });
  assert.equal((await status()).enrollment, 'awaiting_confirmation');
  await waitFor('the confirmation mail', async () => (await fetchInbox(mail.imapPort, bea, 'not-used-by-mailmesh'))
    .some((m) => m.includes('Subject: Confirm mailmesh on browser-node')));

  // Revoked: the popup says so and signs in again; the node keeps its place.
  issuer.revokeAll();
  const popup = await node.openPage('popup/popup.html');
  await popup.waitForSelector('#sign-in-again:not([hidden])', { timeout: 60_000 });
  await signInTab(popup.locator('#sign-in-again button'));
  await waitFor('signed in again', async () => !(await status()).sign_in_again, { timeoutMs: 30_000 });
  assert.equal((await status()).enrollment, 'awaiting_confirmation');
});
