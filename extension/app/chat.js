// The app's chat section: conversations on the left, the open one on the
// right, with receipts on our own messages. The engine keeps the history
// (replicated to every device of the owner); this page only shows it and
// sends what the owner writes. `#chat/<conversation id>` opens one.

import { onEngineChange, watchState } from '../shared/host-state.js';
import { element } from '../shared/dom.js';
import { RuntimeType, callWorker } from '../shared/messages/runtime.js';


/** Words for where one of our messages is. */
function fate(message) {
  if (message.pending.length) return `waiting for ${message.pending.join(', ')}`;
  if (message.read.length) return `read by ${message.read.join(', ')}`;
  if (message.delivered.length) return 'delivered';
  return 'sent';
}

/** Messages shown at first, and added by each "Show earlier messages". */
const PAGE = 100;
const time = (ms) => new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });

/**
 * @param {Document} doc
 * @param {{onSendFile: (email: string) => void}} actions files go by direct send
 */
export function showChat(doc, { onSendFile }) {
  const $ = (id) => doc.getElementById(id);
  const result = $('chat-result');
  let me = null;
  let current = null;
  /** How many of the newest messages are shown: a page more at each "earlier". */
  let shown = PAGE;
  /** @type {object[]} verified people, for new chats and groups */
  let people = [];

  const el = (...args) => element(doc, ...args);
  const say = (e) => { result.textContent = e?.message ?? String(e); };

  const isOpen = () => doc.visibilityState === 'visible' && $('section-chat').classList.contains('active');

  async function refreshList() {
    const { conversations } = await callWorker({ type: RuntimeType.CHAT_LIST });
    $('chat-list').replaceChildren(...conversations.map((c) => {
      const item = el('li', { tabIndex: 0 },
        el('span', { className: 'title', textContent: c.title }),
        ...(c.unread ? [el('span', { className: 'unread', textContent: String(c.unread) })] : []),
        el('span', { className: 'last muted', textContent: c.last_text }));
      item.dataset.id = c.id;
      item.dataset.kind = c.kind;
      item.dataset.unread = String(c.unread);
      item.setAttribute('aria-current', String(c.id === current));
      item.addEventListener('click', () => { location.hash = `chat/${c.id}`; });
      return item;
    }));
  }

  let shownPeople = '';

  async function refreshPeople() {
    const all = (await callWorker({ type: RuntimeType.PEOPLE_LIST })).people;
    people = all.filter((p) => p.state === 'verified' && !p.blocked);
    // Re-rendered only when it changes: a choice being made stays made.
    const key = JSON.stringify(people.map((p) => [p.email, p.name]));
    if (key === shownPeople) return;
    shownPeople = key;
    const ticked = new Set([...$('chat-group-people').querySelectorAll('input:checked')].map((i) => i.value));
    const chosen = $('chat-new-person').value;
    const label = (p) => (p.name ? `${p.name} <${p.email}>` : p.email);
    const options = people.map((p) => el('option', { value: p.email, textContent: label(p) }));
    $('chat-new-person').replaceChildren(...(options.length ? options
      : [el('option', { value: '', textContent: 'Verify someone under People first' })]));
    $('chat-group-people').replaceChildren(...people.map((p) => el('li', {},
      el('label', {}, el('input', { type: 'checkbox', value: p.email, checked: ticked.has(p.email) }), ` ${label(p)}`))));
    if (people.some((p) => p.email === chosen)) $('chat-new-person').value = chosen;
  }

  async function refreshConversation() {
    if (!current) return;
    let conversation;
    try {
      ({ conversation } = await callWorker({ type: RuntimeType.CHAT_SHOW, conversation: current, limit: shown }));
    } catch (e) {
      // A direct conversation not started yet has nothing to show.
      $('chat-messages').replaceChildren();
      $('chat-title').textContent = current;
      $('chat-members').textContent = '';
      return;
    }
    current = conversation.id;
    $('chat-title').textContent = conversation.title;
    $('chat-title').classList.remove('muted');
    renderMembers(conversation);
    const list = $('chat-messages');
    const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 20;
    list.replaceChildren(...conversation.messages.map((m) => {
      const mine = m.author === me;
      const meta = el('span', { className: 'meta' },
        `${mine ? 'you' : m.author} · ${time(m.sent_at)}${mine ? ` · ${fate(m)}` : ''}`);
      if (!m.verified) meta.append(el('span', { className: 'unverified', textContent: ' · unverified sender' }));
      const item = el('li', { className: m.kind === 'members' ? 'members' : mine ? 'mine' : 'theirs' },
        el('span', { className: 'text', textContent: m.text }), meta);
      item.dataset.id = m.id;
      item.dataset.author = m.author;
      item.dataset.state = mine ? (m.pending.length ? 'pending' : m.read.length ? 'read' : 'delivered') : 'received';
      return item;
    }));
    if (atBottom) list.scrollTop = list.scrollHeight;
    const earlier = $('chat-earlier');
    earlier.hidden = !conversation.earlier;
    earlier.textContent = `Show earlier messages (${conversation.earlier} more)`;
    // A message request (an unverified sender) is read, not answered.
    $('chat-compose').hidden = conversation.kind === 'request';
    if (isOpen() && conversation.unread > 0) {
      await callWorker({ type: RuntimeType.CHAT_READ, conversation: current }).catch(say);
    }
  }

  function renderMembers(conversation) {
    const group = conversation.kind === 'group';
    const peer = conversation.members.find((m) => m !== me);
    $('chat-send-file').hidden = group || !peer || conversation.kind === 'request';
    if (conversation.kind === 'request') {
      $('chat-member-edit').hidden = true;
      $('chat-members').textContent = `A message request: nobody verified this node. Verify ${peer} under People to answer.`;
      return;
    }
    $('chat-send-file').onclick = () => onSendFile(peer);
    $('chat-member-edit').hidden = !group;
    if (!group) {
      $('chat-members').textContent = '';
      return;
    }
    $('chat-members').replaceChildren('Members: ', ...conversation.members.map((email) => {
      const chip = el('span', { className: 'member' }, email);
      if (email !== me && conversation.members.includes(me)) {
        const remove = el('button', { type: 'button', className: 'remove', textContent: '×', title: `Remove ${email}` });
        remove.addEventListener('click', () => editMembers([], [email]));
        chip.append(' ', remove);
      }
      return el('span', {}, chip, ' ');
    }));
    const addable = people.filter((p) => !conversation.members.includes(p.email));
    const chosen = $('chat-member-add').value;
    $('chat-member-add').replaceChildren(...addable.map((p) => el('option', { value: p.email, textContent: p.email })));
    if (addable.some((p) => p.email === chosen)) $('chat-member-add').value = chosen;
  }

  async function editMembers(add, remove) {
    try {
      await callWorker({ type: RuntimeType.CHAT_GROUP_MEMBERS, conversation: current, add, remove });
      await refresh();
    } catch (e) { say(e); }
  }

  async function refresh() {
    try {
      await refreshList();
      await refreshConversation();
    } catch (e) { say(e); }
  }

  function openFromHash() {
    const [section, id] = location.hash.slice(1).split('/');
    if (section !== 'chat') return;
    if (id && id !== current) {
      current = id;
      shown = PAGE;
      result.textContent = '';
    }
    refresh();
  }

  $('chat-earlier').addEventListener('click', () => {
    shown += PAGE;
    refreshConversation().catch(say);
  });
  $('chat-new').addEventListener('submit', (event) => {
    event.preventDefault();
    const email = $('chat-new-person').value;
    if (email) location.hash = `chat/${email}`;
  });
  $('chat-new-group').addEventListener('submit', async (event) => {
    event.preventDefault();
    const members = [...$('chat-group-people').querySelectorAll('input:checked')].map((i) => i.value);
    try {
      const { conversation } = await callWorker({
        type: RuntimeType.CHAT_GROUP_CREATE, title: $('chat-group-title').value, members,
      });
      location.hash = `chat/${conversation}`;
    } catch (e) { say(e); }
  });
  $('chat-member-edit').addEventListener('submit', (event) => {
    event.preventDefault();
    const email = $('chat-member-add').value;
    if (email) editMembers([email], []);
  });
  $('chat-compose').addEventListener('submit', async (event) => {
    event.preventDefault();
    const text = $('chat-text').value;
    if (!text.trim() || !current) return;
    try {
      await callWorker({ type: RuntimeType.CHAT_SEND, conversation: current, text });
      $('chat-text').value = '';
      result.textContent = '';
      await refresh();
    } catch (e) { say(e); }
  });

  window.addEventListener('hashchange', openFromHash);
  doc.addEventListener('visibilitychange', () => { if (isOpen()) refreshConversation().catch(say); });
  watchState((state) => {
    me = state.status?.account_email?.toLowerCase() ?? me;
  });
  onEngineChange(['chat'], refresh);
  onEngineChange(['peers'], () => refreshPeople().catch(() => {}));
  refreshPeople().catch(say);
  openFromHash();
  refresh();
}
