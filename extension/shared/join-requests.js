// What asks for the owner's decision about the network, on the popup and
// the app's nodes page alike: devices waiting to join (approve shows their
// name and fingerprint; this device then mails the code to type on them),
// after a removal the new mail password, and an OAuth 2 sign-in that
// expired or was revoked ("sign in again").

import { element } from './dom.js';
import { RuntimeType, callWorker } from './messages/runtime.js';

/**
 * Renders the waiting devices into `#join-requests` and the password
 * notice into `#change-password`, from the engine's status.
 * @param {Document} doc
 * @param {object | undefined} status
 */
export function renderJoinRequests(doc, status) {
  const requests = status?.join_requests ?? [];
  const card = doc.getElementById('join-card');
  card.hidden = requests.length === 0 && !status?.change_password && !status?.sign_in_again;
  const result = doc.getElementById('join-result');
  doc.getElementById('change-password').hidden = !status?.change_password;
  doc.getElementById('sign-in-again').hidden = !status?.sign_in_again;
  // Re-rendered only when the list changes: a click never meets a button
  // being replaced (the popup re-reads the state every few seconds).
  const list = doc.getElementById('join-requests');
  const key = JSON.stringify(requests.map((r) => [r.node_id, r.device_name]));
  if (list.dataset.key === key) return;
  list.dataset.key = key;
  list.replaceChildren(...requests.map((r) => {
    const approve = element(doc, 'button', { className: 'approve', textContent: 'Approve' });
    const decline = element(doc, 'button', { className: 'decline', textContent: 'Decline' });
    approve.addEventListener('click', () => decide(RuntimeType.JOIN_APPROVE, r, result,
      `Approved: a mail brings the code to type on ${r.device_name}.`));
    decline.addEventListener('click', () => decide(RuntimeType.JOIN_DECLINE, r, result, `${r.device_name} was turned away.`));
    const item = element(doc, 'li', {},
      element(doc, 'span', { className: 'name', textContent: `${r.device_name} asks to join` }),
      element(doc, 'span', { className: 'mono muted', textContent: r.fingerprint }),
      approve, decline);
    item.dataset.nodeId = r.node_id;
    return item;
  }));
}

async function decide(type, request, result, done) {
  try {
    await callWorker({ type, nodeId: request.node_id });
    result.textContent = done;
  } catch (e) {
    result.textContent = e.message;
  }
}

/**
 * Fills `#join-card` (a heading in the page) with the list of waiting
 * devices, the new-password form and a status line; once per page.
 * @param {Document} doc
 */
export function mountJoinCard(doc) {
  const input = element(doc, 'input', { type: 'password', autocomplete: 'new-password', required: true });
  input.setAttribute('aria-label', 'New mail password');
  const form = element(doc, 'form', { id: 'change-password', hidden: true },
    element(doc, 'p', {}, 'A device was removed, and it knew your mail password. Change the password at your mail provider, then give the new one here: your other devices take it from this one.'),
    input, ' ', element(doc, 'button', { type: 'submit', textContent: 'Save new password' }));
  const signIn = element(doc, 'button', { type: 'button', textContent: 'Sign in again' });
  const signInAgain = element(doc, 'p', { id: 'sign-in-again', hidden: true },
    'Your sign-in to your mail account expired or was revoked, so mailmesh cannot read or send mail. ', signIn);
  const result = element(doc, 'p', { id: 'join-result', className: 'muted' });
  result.setAttribute('role', 'status');
  doc.getElementById('join-card').append(element(doc, 'ul', { id: 'join-requests', className: 'members' }), form, signInAgain, result);
  signIn.addEventListener('click', async () => {
    try {
      const { url } = await callWorker({ type: RuntimeType.SIGN_IN_AGAIN });
      await chrome.tabs.create({ url });
      result.textContent = 'Finish signing in in the new tab.';
    } catch (e) {
      result.textContent = e.message;
    }
  });
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      await callWorker({ type: RuntimeType.ACCOUNT_PASSWORD, password: input.value });
      result.textContent = 'The new password works and is stored on this device; your other devices take it from here.';
    } catch (e) {
      result.textContent = e.message;
    } finally {
      input.value = '';
    }
  });
}
