// The app's calls section: start a call with verified people, and join
// one you are invited to. Each call runs in its own tab (call/call.html).

import { element } from '../shared/dom.js';
import { onEngineChange } from '../shared/host-state.js';
import { RuntimeType, callWorker } from '../shared/messages/runtime.js';


const callPage = (hash) => chrome.tabs.create({ url: chrome.runtime.getURL(`call/call.html#${hash}`) });

/** @param {Document} doc */
export function showCalls(doc) {
  const result = doc.getElementById('calls-result');
  const el = (...args) => element(doc, ...args);

  let shownPeople = '';

  async function refresh() {
    const { people } = await callWorker({ type: RuntimeType.PEOPLE_LIST });
    const verified = people.filter((p) => p.state === 'verified' && !p.blocked);
    // Re-rendered only when it changes, so a click never meets a list
    // being replaced, and ticks stay.
    const key = JSON.stringify(verified.map((p) => [p.email, p.name]));
    if (key !== shownPeople) {
      shownPeople = key;
      const list = doc.getElementById('call-people');
      const checked = new Set([...list.querySelectorAll('input:checked')].map((i) => i.value));
      list.replaceChildren(...verified.map((p) => el('li', {}, el('label', {},
        el('input', { type: 'checkbox', value: p.email, checked: checked.has(p.email) }), ` ${p.name || p.email}`))));
    }
    const { calls } = await callWorker({ type: RuntimeType.CALLS_LIST });
    doc.getElementById('calls').replaceChildren(...(calls.length ? calls.map((c) => {
      const join = el('button', { textContent: c.joined ? 'Open' : 'Join', className: 'join' });
      join.addEventListener('click', () => callPage(`room=${encodeURIComponent(c.room)}&title=${encodeURIComponent(c.title)}`));
      const item = el('li', {}, el('span', { className: 'name', textContent: c.title || c.members.join(', ') }),
        el('span', { className: 'muted', textContent: `from ${c.invited_by}` }), join);
      item.dataset.room = c.room;
      return item;
    }) : [el('li', { className: 'muted', textContent: 'No calls right now.' })]));
  }

  doc.getElementById('call-new').addEventListener('submit', (event) => {
    event.preventDefault();
    const members = [...doc.querySelectorAll('#call-people input:checked')].map((i) => i.value);
    if (!members.length) {
      result.textContent = 'Choose at least one person.';
      return;
    }
    const title = doc.getElementById('call-title').value;
    callPage(`with=${encodeURIComponent(members.join(','))}&title=${encodeURIComponent(title)}`);
  });
  const tick = () => refresh().catch((e) => { result.textContent = e.message; });
  tick();
  onEngineChange(['calls', 'peers'], tick);
}
