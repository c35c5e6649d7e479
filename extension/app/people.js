// The app's people section: other people seen on the LAN, what is
// verified, and the actions on a contact (verify by email, rename, block,
// remove). The engine keeps the contact book; this page only shows it.

import { onEngineChange } from '../shared/host-state.js';
import { RuntimeType, callWorker } from '../shared/messages/runtime.js';

const STATE_WORDS = {
  verified: 'verified',
  pending: 'verification asked, waiting for their devices',
  unverified: 'unverified',
  warning: 'a new, unverified device claims this address',
};

/**
 * @param {Document} doc
 * @param {{onSendFile: (email: string) => void}} actions
 */
export function showPeople(doc, { onSendFile }) {
  const list = doc.getElementById('people');
  const result = doc.getElementById('people-result');

  const act = async (message, done) => {
    try {
      render((await callWorker(message)).people);
      result.textContent = done;
    } catch (e) {
      result.textContent = e.message;
    }
  };

  const button = (label, className, onClick) => {
    const b = Object.assign(doc.createElement('button'), { textContent: label, className });
    b.addEventListener('click', onClick);
    return b;
  };

  const render = (people) => {
    if (!people.length) {
      list.replaceChildren(Object.assign(doc.createElement('li'), { className: 'muted', textContent: 'Nobody else seen on this network yet.' }));
      return;
    }
    list.replaceChildren(...people.map((person) => {
      const item = doc.createElement('li');
      item.dataset.email = person.email;
      item.dataset.state = person.state;
      const who = Object.assign(doc.createElement('span'), {
        className: 'name',
        textContent: person.name ? `${person.name} <${person.email}>` : person.email,
      });
      const facts = Object.assign(doc.createElement('span'), {
        className: `state muted${person.state === 'warning' ? ' warning' : ''}`,
        textContent: `${STATE_WORDS[person.state] ?? person.state}${person.blocked ? ' · blocked' : ''} · ${person.devices.length} device(s)`,
      });
      item.append(who, facts,
        button('Verify', 'verify', () => act({ type: RuntimeType.PEOPLE_VERIFY, email: person.email },
          `A verification mail went to ${person.email}; their devices answer by themselves.`)),
        ...(person.state === 'verified' && !person.blocked
          ? [button('Send file…', 'send-file', () => onSendFile(person.email))] : []),
        button('Rename', 'rename', () => {
          const name = prompt(`Name for ${person.email}`, person.name);
          if (name !== null) act({ type: RuntimeType.PEOPLE_RENAME, email: person.email, name }, 'Renamed.');
        }),
        button(person.blocked ? 'Unblock' : 'Block', 'block', () =>
          act({ type: RuntimeType.PEOPLE_BLOCK, email: person.email, blocked: !person.blocked },
            person.blocked ? 'Unblocked.' : 'Blocked.')),
        button('Remove', 'remove', () => {
          if (confirm(`Forget ${person.email} and what was verified?`)) {
            act({ type: RuntimeType.PEOPLE_REMOVE, email: person.email }, `${person.email} removed.`);
          }
        }));
      return item;
    }));
  };

  const refresh = () => callWorker({ type: RuntimeType.PEOPLE_LIST }).then(({ people }) => render(people), (e) => {
    result.textContent = e.message;
  });
  refresh();
  onEngineChange(['peers'], refresh);
}
