// The onboarding page: checks the host, takes the mail account, tests the
// logins, and confirms this device with the mailed link or code.

import { element } from '../shared/dom.js';
import { watchState } from '../shared/host-state.js';
import { renderNodeCard } from '../shared/node-card.js';
import { RuntimeType, callWorker } from '../shared/messages/runtime.js';

const $ = (id) => document.getElementById(id);
const form = $('account-form');

/** The account as the engine expects it (api::AccountInput). */
function accountFromForm() {
  const f = new FormData(form);
  const server = (kind) => ({
    host: String(f.get(`${kind}_host`)).trim(),
    port: Number(f.get(`${kind}_port`)),
    security: String(f.get(`${kind}_security`)),
  });
  const email = String(f.get('email')).trim();
  return {
    email,
    imap: server('imap'),
    smtp: server('smtp'),
    user: String(f.get('user')).trim() || email,
    password: String(f.get('password')),
    tls_ca: String(f.get('tls_ca')).trim() || null,
    accept_invalid_certs: f.get('accept_invalid_certs') === 'on',
  };
}

function say(element, text, ok) {
  element.textContent = text;
  element.className = ok ? 'ok' : 'error';
}

function showChecks(result) {
  const list = $('checks');
  list.replaceChildren(...[['IMAP', result.imap], ['SMTP', result.smtp]].map(([name, check]) => {
    const item = document.createElement('li');
    item.dataset.ok = String(check.ok);
    item.dataset.server = name.toLowerCase();
    item.textContent = `${name}: ${check.message}`;
    return item;
  }));
}

async function busy(button, work) {
  button.disabled = true;
  try {
    await work();
  } finally {
    button.disabled = false;
  }
}

/** Fields the owner typed into: never overwritten by what is found. */
const edited = new Set();
for (const name of ['user', 'imap_host', 'imap_port', 'imap_security', 'smtp_host', 'smtp_port', 'smtp_security']) {
  form.elements[name].addEventListener('input', () => edited.add(name));
}

function fill(name, value) {
  if (!edited.has(name)) form.elements[name].value = value;
}

/** Where the address's provider signs in (OAuth 2), as discovery found it. */
let signIn = null;

/** Offers "Sign in with …" where the provider signs in with OAuth 2; where it takes no password, the password field goes. */
function offerSignIn(found) {
  signIn = found?.oauth ?? null;
  $('sign-in-row').hidden = !signIn;
  $('sign-in').textContent = `Sign in with ${found?.provider ?? 'your provider'}`;
  const passwordless = Boolean(signIn && found.oauth_only);
  form.elements.password.required = !passwordless;
  form.elements.password.closest('label').hidden = passwordless;
  $('save-account').hidden = passwordless;
}

/**
 * Finds the address's servers (mailmesh's table, the domain's autoconfig,
 * SRV and MX records) and fills them in, still editable, saying where they
 * came from. An answer for an address since changed is dropped.
 */
async function findServers() {
  const email = String(form.elements.email.value).trim();
  if (!email.includes('@')) return;
  $('provider-note').textContent = `Looking for the mail servers of ${email.split('@').pop()}…`;
  try {
    const tlsCa = String(form.elements.tls_ca.value).trim();
    const found = await callWorker({ type: RuntimeType.ACCOUNT_DISCOVER, email, tlsCa });
    if (String(form.elements.email.value).trim() !== email) return;
    offerSignIn(found);
    if (!found.imap || !found.smtp) {
      $('provider-note').textContent = 'mailmesh could not find your mail servers: give them below (your provider\'s help pages name them).';
      return;
    }
    for (const kind of ['imap', 'smtp']) {
      const server = found[kind];
      fill(`${kind}_host`, server.host);
      fill(`${kind}_port`, String(server.port));
      fill(`${kind}_security`, server.security);
    }
    if (found.user) fill('user', found.user);
    const who = found.provider ? `${found.provider}: its` : 'Your';
    $('provider-note').textContent = `${who} servers are filled in below, from ${found.source}. Check them.${found.advice ? ` ${found.advice}.` : ''}`;
  } catch (e) {
    $('provider-note').textContent = e.message;
  }
}
form.elements.email.addEventListener('change', findServers);
form.elements.tls_ca.addEventListener('change', findServers);

$('sign-in').addEventListener('click', () => busy($('sign-in'), async () => {
  if (!signIn) return;
  try {
    const deviceName = String(new FormData(form).get('device_name')).trim();
    const { password: _unused, ...account } = accountFromForm();
    const { url } = await callWorker({ type: RuntimeType.SIGN_IN_START, account: { ...account, oauth: signIn }, deviceName });
    await chrome.tabs.create({ url });
    say($('account-result'), 'Finish signing in in the new tab; this page goes on once you are back.', true);
  } catch (e) {
    say($('account-result'), e.message, false);
  }
}));

/** How a sign-in in the other tab went, from the engine's status. */
function renderSignIn(status) {
  if (!status || status.signing_in) return;
  if (status.sign_in_failed) say($('account-result'), status.sign_in_failed, false);
}

$('test-connection').addEventListener('click', () => busy($('test-connection'), async () => {
  if (!form.reportValidity()) return;
  $('account-result').textContent = 'Testing…';
  try {
    const result = await callWorker({ type: RuntimeType.ACCOUNT_TEST, account: accountFromForm() });
    showChecks(result);
    const ok = result.imap.ok && result.smtp.ok;
    say($('account-result'), ok ? 'Both logins work.' : 'Fix what is marked above, then test again.', ok);
  } catch (e) {
    say($('account-result'), e.message, false);
  }
}));

form.addEventListener('submit', (event) => {
  event.preventDefault();
  busy($('save-account'), async () => {
    $('account-result').textContent = 'Checking the logins and sending the mail…';
    try {
      const deviceName = String(new FormData(form).get('device_name')).trim();
      const result = await callWorker({ type: RuntimeType.ACCOUNT_SAVE, account: accountFromForm(), deviceName });
      form.elements.password.value = '';
      say($('account-result'), result.state === 'awaiting_approval'
        ? `This device asked to join your network; watch ${result.email} for the approval.`
        : `A confirmation mail was sent to ${result.email}.`, true);
      $('confirm-section').hidden = false;
    } catch (e) {
      say($('account-result'), e.message, false);
    }
  });
});

$('confirm-form').addEventListener('submit', (event) => {
  event.preventDefault();
  callWorker({ type: RuntimeType.CONFIRM_CODE, code: $('code').value })
    .then(() => say($('confirm-result'), 'This device is confirmed.', true))
    .catch((e) => say($('confirm-result'), e.message, false));
});

/** The networks setup found in the mailbox, each with its devices. */
function renderNetworksFound(status) {
  const networks = status?.networks_found ?? [];
  $('networks-section').hidden = networks.length === 0;
  $('networks-found').replaceChildren(...networks.map((n) => {
    const item = element(document, 'li', {}, element(document, 'span', { className: 'mono muted', textContent: `network ${n.network_id}` }), ' ',
      element(document, 'ul', {}, ...n.members.map((m) => element(document, 'li', {},
        element(document, 'span', { className: 'name', textContent: m.device_name }), ' ',
        element(document, 'span', { className: 'mono muted', textContent: m.fingerprint })))));
    item.dataset.networkId = n.network_id;
    return item;
  }));
}

$('new-network').addEventListener('click', () => busy($('new-network'), async () => {
  try {
    const result = await callWorker({ type: RuntimeType.NETWORK_NEW });
    say($('networks-result'), `A new network it is: a confirmation mail was sent to ${result.email}.`, true);
  } catch (e) {
    say($('networks-result'), e.message, false);
  }
}));

callWorker({ type: RuntimeType.GET_STATE }).catch(() => {});
watchState((state) => {
  renderNodeCard(document, state);
  renderNetworksFound(state.status);
  renderSignIn(state.status);
  const enrollment = state.status?.enrollment;
  const joining = enrollment === 'awaiting_approval' || enrollment === 'approved';
  if (enrollment === 'awaiting_confirmation' || joining) $('confirm-section').hidden = false;
  $('confirm-hint').textContent = joining
    ? 'Your network exists already, so this device asked to join it. One of your other devices mails you an approval: open its link on this device, or type its code:'
    : 'Open the link in the mail on this device, or type the code from it:';
  if (enrollment === 'approved') say($('confirm-result'), 'Approved. Your other device is welcoming this one…', true);
  if (enrollment === 'enrolled') {
    $('confirm-section').hidden = true;
    $('account-section').hidden = true;
  }
});
$('retry').addEventListener('click', () => callWorker({ type: RuntimeType.REFRESH }).catch(() => {}));
$('start-engine').addEventListener('click', () => callWorker({ type: RuntimeType.START_ENGINE }).catch(() => {}));
